//! The end of a newest-wins batch (the sessions and call-history feeds): the batch's
//! rows in under `sink::newest` with their partitions leased, then the rows it set
//! aside into the quarantine.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use object_store::path::Path;

use super::{Context, IngestError, partition_lock};
use crate::sink::newest::{self, Candidate, Decision, Group, NewestError};
use crate::sink::partitioned::Part;
use crate::sink::quarantine::QuarantineWriter;
use crate::sink::{layout, partition};
use crate::source::RemoteFile;

/// What a batch's commit did.
pub struct Committed {
    /// One per candidate, in the order given.
    pub decisions: Vec<Decision>,
    /// The main table's rows written per winning file.
    pub written: HashMap<String, u64>,
}

/// Commits a batch: a crash's leftover finished or undone first, then each candidate
/// decided against the index and the winners' rows of `parts` (per table of `group`)
/// written while their partitions are leased; then the set-aside rows of each day
/// into `_quarantine/<dataset>/`, under a name made from the batch's files, so that the
/// same batch again writes the same object.
pub async fn commit(
    ctx: &Context,
    group: &Group,
    candidates: &[Candidate],
    parts: Vec<Vec<Part>>,
    quarantine: BTreeMap<NaiveDate, QuarantineWriter>,
    files: &[RemoteFile],
) -> Result<Committed, IngestError> {
    newest::recover(&ctx.store, &ctx.json, group)
        .await
        .map_err(newest_error)?;
    let plan = newest::plan(&ctx.json, group, candidates)
        .await
        .map_err(newest_error)?;
    let decisions = plan.decisions.clone();
    let held = partition_lock::hold(ctx, plan.partitions(group).into_iter()).await?;
    let applied = partition_lock::fenced(
        &held,
        newest::apply(&ctx.store, &ctx.json, group, plan, parts),
    )
    .await;
    partition_lock::release(&held).await;
    let written = applied?.map_err(newest_error)?;

    let dataset = group.tables[0].0.dataset;
    for (day, set_aside) in quarantine {
        if let Some(file) = set_aside.finish().map_err(IngestError::spool)? {
            let key = quarantine_object(dataset, files, day);
            partition::upload(&ctx.store, &key, &file)
                .await
                .map_err(IngestError::Partition)?;
        }
    }
    Ok(Committed { decisions, written })
}

fn quarantine_object(dataset: &str, files: &[RemoteFile], day: NaiveDate) -> Path {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for file in files {
        hasher.update(file.path.as_bytes());
        hasher.update(b"\n");
    }
    Path::from(format!(
        "{}/{:016x}.jsonl",
        layout::quarantine_folder(dataset, day),
        hasher.digest()
    ))
}

fn newest_error(e: NewestError) -> IngestError {
    match e {
        NewestError::State(e) => IngestError::State(e),
        NewestError::Partition(e) => IngestError::Partition(e),
    }
}
