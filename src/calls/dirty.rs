//! Which dates' `calls` are behind their inputs, kept in the destination so that a
//! crash never leaves them behind for good: whatever changes a mapped dataset's
//! partition of a date marks the date ([`mark`]) under that partition's lease, before
//! it writes rows there (a crash after the mark only costs a rebuild); the end of the
//! pass rebuilds each marked date once ([`settle`]), holding the leases of all its
//! inputs so that no writer is halfway through one, and only then removes the marks it
//! read. A date that several files of a pass touch is rebuilt once, not once per file.
//!
//! Marks are `_state/calls/dirty/date=D/<unique>.json`, each naming the source object
//! that changed the date (for counting unmapped codes once, by the file that brought
//! them). Each mark has a name of its own, so a rebuild removes only the marks it
//! listed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::rebuild::{Count, Rebuilt, lease, rebuild};
use crate::feeds::FEEDS;
use crate::pipeline::{Context, IngestError, partition_lock};
use crate::sink::layout;
use crate::sink::partition::PartitionError;
use crate::sink::retry;
use crate::state::json::{FORMAT_VERSION, JsonStore};
use crate::state::lease::Leases;

const ROOT: &str = "_state/calls/dirty";

#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    format_version: u32,
    /// The source objects whose rows changed the date (none: what brings no outcome
    /// codes, such as a recordings index).
    origins: Vec<String>,
}

/// A name no other mark has: this process, the time, and a counter.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Marks `dates` as changed by the source objects `origins`.
pub async fn mark(
    json: &JsonStore,
    dates: impl IntoIterator<Item = NaiveDate>,
    origins: &[&str],
) -> Result<(), IngestError> {
    for date in dates.into_iter().collect::<BTreeSet<_>>() {
        let key = Path::from(format!("{ROOT}/date={date}/{}.json", unique()));
        let mark = Mark {
            format_version: FORMAT_VERSION,
            origins: origins.iter().map(|o| o.to_string()).collect(),
        };
        json.put(&key, &mark).await?;
    }
    Ok(())
}

/// Every mark (of `date`, or of every date), by date.
async fn marks(
    store: &Arc<dyn ObjectStore>,
    date: Option<NaiveDate>,
) -> Result<BTreeMap<NaiveDate, Vec<Path>>, IngestError> {
    let root = Path::from(match date {
        Some(date) => format!("{ROOT}/date={date}"),
        None => ROOT.to_string(),
    });
    let listed: Vec<_> = retry::with_backoff("list", retry::is_transient, || {
        store.list(Some(&root)).try_collect::<Vec<_>>()
    })
    .await
    .map_err(|source| PartitionError::Read {
        key: root.to_string(),
        source,
    })?;
    let mut by_date: BTreeMap<NaiveDate, Vec<Path>> = BTreeMap::new();
    for object in listed {
        let date = object
            .location
            .parts()
            .nth(3)
            .and_then(|part| part.as_ref().strip_prefix("date=")?.parse().ok());
        if let Some(date) = date {
            by_date.entry(date).or_default().push(object.location);
        }
    }
    Ok(by_date)
}

/// The leases of `date`'s partitions of every mapped dataset, in the order every
/// writer takes them (`pipeline::partition_lock`), then its calls lease: no writer is
/// halfway through an input while its date is rebuilt.
fn inputs_and_calls(date: NaiveDate) -> impl Iterator<Item = Path> {
    let datasets: BTreeSet<&'static str> = FEEDS
        .iter()
        .flat_map(|feed| feed.calls.iter().map(|m| m.dataset))
        .collect();
    datasets
        .into_iter()
        .map(move |dataset| layout::partition_lease(dataset, date))
        .chain(std::iter::once(lease(date)))
}

/// Rebuilds the calls of every marked date, each under the leases of its inputs and
/// its own, and removes the marks it read: what the pass ends with.
pub async fn settle(ctx: &Context) -> Result<Rebuilt, IngestError> {
    let account = super::account(&ctx.settings);
    settle_with(&ctx.store, &ctx.leases, account, None).await
}

/// [`settle`] of the marked dates among `only` (`None`: every marked date), for a
/// writer without a pass (`serve`'s compaction).
pub async fn settle_with(
    store: &Arc<dyn ObjectStore>,
    leases: &Leases,
    account: &str,
    only: Option<&BTreeSet<NaiveDate>>,
) -> Result<Rebuilt, IngestError> {
    let json = JsonStore::new(Arc::clone(store));
    let mut total = Rebuilt::default();
    let dates = marks(store, None).await?.into_keys();
    for date in dates.filter(|d| only.is_none_or(|only| only.contains(d))) {
        let held = partition_lock::hold_with(leases, inputs_and_calls(date)).await?;
        let settled = partition_lock::fenced(&held, async {
            // Listed again under the lease: another worker may have settled it.
            let listed = marks(store, Some(date))
                .await?
                .remove(&date)
                .unwrap_or_default();
            if listed.is_empty() {
                return Ok(Rebuilt::default());
            }
            let mut origins = BTreeSet::new();
            for key in &listed {
                if let Some(mark) = json.get::<Mark>(key).await? {
                    origins.extend(mark.origins);
                }
            }
            let rebuilt = rebuild(store, account, &held, date, Count::From(&origins)).await?;
            for key in &listed {
                json.delete(key).await?;
            }
            Ok::<_, IngestError>(rebuilt)
        })
        .await;
        partition_lock::release(&held).await;
        total.add(settled??);
    }
    Ok(total)
}
