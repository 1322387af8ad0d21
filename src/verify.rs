//! `cdr-ingest verify`: checks a destination against the rule of `sink::partition`
//! (each id once in a partition, no object whose rows all belong to another file,
//! nothing left behind by an ingestion that did not finish; each date's `calls` as its
//! feeds' partitions give it), and with `--repair` makes it so, under each partition's lease, so it is safe beside a running pass.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use object_store::path::Path;
use thiserror::Error;

use crate::calls;
use crate::feeds;
use crate::model::Category;
use crate::pipeline::{Context, partition_lock};
use crate::sink::layout;
use crate::sink::partition::{self, Change, Partition, PartitionError};
use crate::state::json::StateError;

/// What is wrong with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Rows that repeat an id another visible row of the partition has.
    Duplicates(u64),
    /// An object (or kept rows) of a source file whose ledger entry does not list this
    /// partition: left by an ingestion that did not finish, or whose entry was deleted.
    NotInLedger { key: Path },
    /// What the rule would change.
    Change(Change),
    /// A date's `calls` object is not what its feeds' partitions give (a day ingested
    /// before `calls` existed, say).
    CallsNotCurrent,
}

/// One partition's problems.
#[derive(Debug)]
pub struct Finding {
    pub partition: Path,
    pub problems: Vec<Problem>,
}

/// What a check found, and whether it was repaired.
#[derive(Debug, Default)]
pub struct Verified {
    pub partitions: u64,
    pub findings: Vec<Finding>,
    pub repaired: bool,
}

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot list {key} in the destination: {source}")]
    List {
        key: String,
        source: object_store::Error,
    },
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot repair: {0}")]
    Repair(String),
}

/// Checks every partition of every dataset; repairs those with problems if asked.
pub async fn verify(ctx: &Context, repair: bool) -> Result<Verified, VerifyError> {
    let mut verified = Verified {
        repaired: repair,
        ..Verified::default()
    };
    for (table, category) in feeds::tables() {
        for date in dates(ctx, table.dataset).await? {
            let partition = Partition { table, date };
            verified.partitions += 1;
            let problems = check(ctx, partition, category).await?;
            if problems.is_empty() {
                continue;
            }
            if repair {
                repair_partition(ctx, partition, category).await?;
            }
            verified.findings.push(Finding {
                partition: layout::data_folder(table.dataset, date),
                problems,
            });
        }
    }
    // After the feeds' partitions, whose repairs rebuild their dates' calls already.
    for date in calls::rebuild::dates(&ctx.store).await? {
        verified.partitions += 1;
        if calls::rebuild::is_current(&ctx.store, calls::account(&ctx.settings), date).await? {
            continue;
        }
        if repair {
            calls::rebuild::rebuild_days(ctx, [date], calls::Count::All)
                .await
                .map_err(|e| VerifyError::Repair(e.to_string()))?;
        }
        verified.findings.push(Finding {
            partition: layout::data_folder(calls::DATASET, date),
            problems: vec![Problem::CallsNotCurrent],
        });
    }
    Ok(verified)
}

/// The dates with a partition or kept rows of `dataset`.
async fn dates(ctx: &Context, dataset: &str) -> Result<BTreeSet<NaiveDate>, VerifyError> {
    let mut dates = BTreeSet::new();
    for root in [dataset.to_string(), layout::spill_root(dataset)] {
        let root = Path::from(root);
        let listing = ctx
            .store
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|source| VerifyError::List {
                key: root.to_string(),
                source,
            })?;
        dates.extend(listing.common_prefixes.iter().filter_map(|prefix| {
            prefix
                .filename()?
                .strip_prefix("date=")?
                .parse::<NaiveDate>()
                .ok()
        }));
    }
    Ok(dates)
}

async fn check(
    ctx: &Context,
    partition: Partition,
    category: Category,
) -> Result<Vec<Problem>, VerifyError> {
    let mut problems = Vec::new();
    let duplicates = partition::duplicate_rows(&ctx.store, partition).await?;
    if duplicates > 0 {
        problems.push(Problem::Duplicates(duplicates));
    }
    problems.extend(
        not_in_ledger(ctx, partition, category)
            .await?
            .into_iter()
            .map(|key| Problem::NotInLedger { key }),
    );
    let plan = partition::settle(&ctx.store, partition, None, None, false).await?;
    problems.extend(plan.changes.into_iter().map(Problem::Change));
    Ok(problems)
}

/// The objects of `partition` whose source file's ledger entry does not list it.
async fn not_in_ledger(
    ctx: &Context,
    partition: Partition,
    category: Category,
) -> Result<Vec<Path>, VerifyError> {
    let (visible, kept) = partition::contents(&ctx.store, partition).await?;
    let mut found = Vec::new();
    for source in visible.union(&kept) {
        let listed = ctx
            .ledger
            .get(category, *source)
            .await?
            .is_some_and(|entry| {
                // An unfinished attempt's objects are its to clean up, on its next run.
                entry
                    .outputs
                    .iter()
                    .chain(&entry.spill)
                    .chain(&entry.pending)
                    .any(|key| {
                        let written = layout::parse_data_object(key)
                            .or_else(|| layout::parse_spill_object(key));
                        written == Some((partition.table.dataset, partition.date, *source))
                    })
            });
        if !listed {
            if visible.contains(source) {
                found.push(partition.data_object(*source));
            }
            if kept.contains(source) {
                found.push(partition.spill_object(*source));
            }
        }
    }
    Ok(found)
}

/// Removes what no ledger entry lists, then settles, holding the partition's lease.
async fn repair_partition(
    ctx: &Context,
    partition: Partition,
    category: Category,
) -> Result<(), VerifyError> {
    let feeds_calls = calls::rebuild::reads(partition.table.dataset);
    let calls_lease = feeds_calls.then(|| calls::rebuild::lease(partition.date));
    let leases = std::iter::once(partition_lock::lease_of(partition)).chain(calls_lease);
    let held = partition_lock::hold(ctx, leases)
        .await
        .map_err(|e| VerifyError::Repair(e.to_string()))?;
    let repaired = partition_lock::fenced(&held, async {
        let mut sources = BTreeSet::new();
        for key in not_in_ledger(ctx, partition, category).await? {
            if let Some((_, _, source)) = layout::parse_data_object(key.as_ref())
                .or_else(|| layout::parse_spill_object(key.as_ref()))
            {
                sources.insert(source);
            }
        }
        for source in sources {
            tracing::info!(partition = %layout::data_folder(partition.table.dataset, partition.date), %source, "removing rows no ledger entry lists; that day is ingested again on its next run");
            partition::put(&ctx.store, partition, source, None).await?;
        }
        partition::settle(&ctx.store, partition, None, None, true).await?;
        if feeds_calls {
            let account = calls::account(&ctx.settings);
            calls::rebuild(&ctx.store, account, &held, partition.date, calls::Count::All)
                .await
                .map_err(|e| VerifyError::Repair(e.to_string()))?;
        }
        Ok::<_, VerifyError>(())
    })
    .await;
    partition_lock::release(&held).await;
    repaired.map_err(|e| VerifyError::Repair(e.to_string()))?
}

/// The finding as lines for people.
pub fn describe(problem: &Problem) -> String {
    match problem {
        Problem::Duplicates(rows) => format!("{rows} row(s) repeat an id another row has"),
        Problem::NotInLedger { key } => format!(
            "{key}: no ledger entry of its source file lists it (an ingestion that did not finish, or a deleted entry); repair removes it and the day is ingested again on its next run"
        ),
        Problem::Change(Change::Write {
            key,
            rows,
            shadowed,
            ..
        }) => format!(
            "{key}: {shadowed} of its rows belong to a file ranked before it (the file of their own day first); repair rewrites it with {rows} rows"
        ),
        Problem::Change(Change::Delete { key, rows }) => {
            format!("{key}: all {rows} of its rows belong to other files; repair removes it")
        }
        Problem::CallsNotCurrent => "the calls of this date are not what its feeds' partitions give (a day ingested before calls existed, or a rebuild cut short); repair rebuilds them".to_string(),
    }
}
