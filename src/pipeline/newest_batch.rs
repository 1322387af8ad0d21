//! The end of a newest-wins batch (the sessions and call-history feeds): the batch's
//! rows in under `sink::newest` with their partitions leased, then the rows it set
//! aside into the quarantine.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use object_store::path::Path;

use super::{Context, IngestError, partition_lock};
use crate::calls;
use crate::sink::newest::{self, Candidate, Decision, Group, NewestError};
use crate::sink::partition::Partition;
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
    let partitions = plan.partitions(group);
    let held =
        partition_lock::hold(ctx, partitions.iter().map(|p| partition_lock::lease_of(*p))).await?;
    let applied = partition_lock::fenced(&held, async {
        mark_calls(ctx, &partitions, files).await?;
        newest::apply(&ctx.store, &ctx.json, group, plan, parts)
            .await
            .map_err(newest_error)
    })
    .await;
    partition_lock::release(&held).await;
    let written = applied??;

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

/// Marks the dates of `partitions` that `calls` reads, for the end of the pass
/// (`calls::dirty`): under their leases, before their rows change.
async fn mark_calls(
    ctx: &Context,
    partitions: &[Partition],
    files: &[RemoteFile],
) -> Result<(), IngestError> {
    let origins: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let dates = partitions
        .iter()
        .filter(|p| calls::rebuild::reads(p.table.dataset))
        .map(|p| p.date);
    calls::mark(&ctx.json, dates, &origins).await
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
