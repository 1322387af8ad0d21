//! Retention per data category, as the provider's console offers it: keep forever, or
//! for 1 to 999 days by the call's UTC date. A pass deletes what has aged out since the
//! last one (so its cost does not grow with history: the first pass finds the oldest
//! day once, later ones only look at the days that just expired), remembers how far it
//! deleted so that scheduled passes never ingest those days again, and `purge` empties
//! one category after an explicit `YES`.

use std::fmt;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use serde::{Deserialize, Serialize};

use crate::calls;
use crate::feeds::{self, FEEDS};
use crate::model::Category;
use crate::pipeline::Context;
use crate::sink::layout;
use crate::state::json::{FORMAT_VERSION, JsonStore, StateError};

/// How long one category is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Forever,
    /// Kept while at most this many days old (1 to 999).
    Days(u16),
}

impl Keep {
    /// Parses `"forever"` or a whole number of days from 1 to 999.
    pub fn parse(text: &str) -> Option<Keep> {
        match text.trim() {
            "forever" => Some(Keep::Forever),
            days => days
                .parse::<u16>()
                .ok()
                .filter(|d| (1..=999).contains(d))
                .map(Keep::Days),
        }
    }

    /// The oldest call date still kept on `today`, or `None` when everything is.
    pub fn oldest_kept(self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            Keep::Forever => None,
            Keep::Days(days) => today.checked_sub_days(Days::new(u64::from(days))),
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Forever => f.write_str("forever"),
            Keep::Days(days) => write!(f, "{days} days"),
        }
    }
}

/// What the retention rules apply to: the three data categories and the quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Data(Category),
    Quarantine,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Data(category) => category.fmt(f),
            Target::Quarantine => f.write_str("quarantine"),
        }
    }
}

impl Target {
    /// Every feed's data, then the quarantine.
    pub fn all() -> impl Iterator<Item = Target> {
        FEEDS
            .iter()
            .map(|feed| Target::Data(feed.category))
            .chain([Target::Quarantine])
    }

    pub fn parse(name: &str) -> Option<Target> {
        Target::all().find(|t| t.to_string() == name)
    }

    /// The Hive-partitioned folders (`<folder>/date=YYYY-MM-DD/`) this target owns: a
    /// feed's datasets and the rows of other days' files kept for them
    /// (`sink::partition`), or every dataset's quarantine.
    fn partitioned(self) -> Vec<String> {
        match self {
            Target::Data(category) => feeds::feed(category)
                .datasets
                .iter()
                .flat_map(|d| {
                    let spill = d.table.map(|_| layout::spill_root(d.name));
                    std::iter::once(d.name.to_string()).chain(spill)
                })
                .collect(),
            Target::Quarantine => FEEDS
                .iter()
                .flat_map(|feed| feed.datasets.iter())
                .filter(|d| d.quarantine)
                .map(|d| layout::quarantine_root(d.name))
                .collect(),
        }
    }

    /// Everything this target owns for one date: folders to empty and single objects.
    fn of_day(self, day: NaiveDate) -> Vec<Path> {
        let mut paths: Vec<Path> = self
            .partitioned()
            .iter()
            .map(|folder| Path::from(format!("{folder}/date={day}")))
            .collect();
        if let Target::Data(category) = self {
            paths.push(layout::ledger_object(category, day));
            paths.push(layout::attempts_object(category, day));
            if let Some(files) = feeds::feed(category).files {
                paths.push(Path::from(files.folder_of_day(day)));
            }
        }
        paths
    }

    /// Whether its rows go into `calls`, which must then be rebuilt when they go.
    fn feeds_calls(self) -> bool {
        match self {
            Target::Data(category) => !feeds::feed(category).calls.is_empty(),
            Target::Quarantine => false,
        }
    }

    /// Everything this target owns, for `purge`.
    fn roots(self) -> Vec<Path> {
        let mut roots: Vec<Path> = self.partitioned().into_iter().map(Path::from).collect();
        if let Target::Data(category) = self {
            roots.push(Path::from(layout::ledger_root(category)));
            roots.push(Path::from(layout::attempts_root(category)));
            roots.push(state_key(self));
            roots.extend(feed_state_roots(category).into_iter().map(Path::from));
            if let Some(files) = feeds::feed(category).files {
                roots.push(Path::from(files.root()));
            }
        }
        roots
    }
}

/// The state a changed-files feed keeps besides its ledger: the files it took
/// (`state::seen`) and its datasets' newest-wins index (`sink::newest`), which a purge
/// removes with the data so that the files are taken again.
fn feed_state_roots(category: Category) -> Vec<String> {
    let feed = feeds::feed(category);
    if !matches!(feed.unit, feeds::Unit::Changed(_)) {
        return Vec::new();
    }
    let mut roots = vec![crate::state::seen::root(category)];
    roots.extend(
        feed.datasets
            .iter()
            .map(|d| crate::sink::newest::state_root_of(d.name)),
    );
    roots
}

/// How far retention has deleted a target, so the next pass starts there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionState {
    pub format_version: u32,
    /// Every call date up to and including this one has been deleted.
    pub deleted_through: NaiveDate,
}

fn state_key(target: Target) -> Path {
    layout::retention_state(&target.to_string())
}

/// The last day retention deleted for `target`, if it ever ran.
pub async fn deleted_through(
    json: &JsonStore,
    target: Target,
) -> Result<Option<NaiveDate>, StateError> {
    Ok(json
        .get::<RetentionState>(&state_key(target))
        .await?
        .map(|s| s.deleted_through))
}

/// What one retention pass removed (or, dry, would remove) for one target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub days: Vec<NaiveDate>,
    pub objects: u64,
    pub bytes: u64,
}

/// Deletes, for `target`, every call date older than `keep` allows on `today`.
pub async fn enforce(
    store: &Arc<dyn ObjectStore>,
    json: &JsonStore,
    target: Target,
    keep: Keep,
    today: NaiveDate,
    dry_run: bool,
) -> Result<Removed, RetentionError> {
    let Some(oldest_kept) = keep.oldest_kept(today) else {
        return Ok(Removed::default());
    };
    let Some(last_expired) = oldest_kept.pred_opt() else {
        return Ok(Removed::default());
    };
    let start = match deleted_through(json, target).await? {
        Some(done) if done >= last_expired => return Ok(Removed::default()),
        Some(done) => done.succ_opt().unwrap_or(done),
        None => match oldest_day(store, target).await? {
            Some(oldest) => oldest,
            None => last_expired,
        },
    };
    let mut removed = Removed::default();
    for day in start.iter_days().take_while(|d| *d <= last_expired) {
        let mut objects = Vec::new();
        for path in target.of_day(day) {
            objects.extend(list(store, &path).await?);
        }
        if objects.is_empty() {
            continue;
        }
        let bytes: u64 = objects.iter().map(|o| o.size).sum();
        // `category`, not `target`: JSON log lines already carry tracing's own `target`
        // (the module), and collectors keep only one of two equal keys.
        let message = if dry_run {
            "older than the retention limit: would delete"
        } else {
            "older than the retention limit: deleting"
        };
        tracing::info!(category = %target, %day, objects = objects.len(), bytes, dry_run, keep = %keep, "{message}");
        removed.days.push(day);
        removed.objects += objects.len() as u64;
        removed.bytes += bytes;
        if !dry_run {
            if target.feeds_calls() {
                // Marked before its rows go, so that the day's calls are rebuilt from
                // what is left even if the process stops right after the delete: the
                // next pass would find nothing left to delete, and a call would outlive
                // its rows' retention.
                calls::mark(json, [day], &[])
                    .await
                    .map_err(|e| RetentionError::Calls(e.to_string()))?;
            }
            delete(store, objects).await?;
            crate::crash::point("retention-deleted");
        }
    }
    if !dry_run {
        let state = RetentionState {
            format_version: FORMAT_VERSION,
            deleted_through: last_expired,
        };
        json.put(&state_key(target), &state).await?;
    }
    Ok(removed)
}

/// Rebuilds the `calls` of every day retention deleted rows of (marked by [`enforce`]),
/// once, after every target's deletions: a day that expires in every feed at once is
/// not rebuilt from rows about to go, and its calls object goes with them.
pub async fn settle_calls(ctx: &Context) -> Result<(), RetentionError> {
    calls::settle(ctx)
        .await
        .map(|_| ())
        .map_err(|e| RetentionError::Calls(e.to_string()))
}

/// Rebuilds every day's `calls` after `target` was purged.
pub async fn rebuild_after_purge(ctx: &Context, target: Target) -> Result<(), RetentionError> {
    if !target.feeds_calls() {
        return Ok(());
    }
    let days = calls::rebuild::dates(&ctx.store)
        .await
        .map_err(|e| RetentionError::Calls(e.to_string()))?;
    calls::rebuild::rebuild_days(ctx, days, calls::Count::All)
        .await
        .map_err(|e| RetentionError::Calls(e.to_string()))?;
    Ok(())
}

/// Everything `target` owns (and nothing else), listed so that `purge` can say what
/// it will delete before it asks.
pub struct Owned {
    pub target: Target,
    objects: Vec<ObjectMeta>,
}

impl Owned {
    /// How many objects and bytes deleting them would remove.
    pub fn removed(&self) -> Removed {
        Removed {
            days: Vec::new(),
            objects: self.objects.len() as u64,
            bytes: self.objects.iter().map(|o| o.size).sum(),
        }
    }
}

/// Lists everything `target` owns, for `purge`.
pub async fn owned_by(
    store: &Arc<dyn ObjectStore>,
    target: Target,
) -> Result<Owned, RetentionError> {
    let mut objects = Vec::new();
    for root in target.roots() {
        objects.extend(
            list(store, &root)
                .await?
                .into_iter()
                .filter(|o| owned(target, &o.location)),
        );
    }
    Ok(Owned { target, objects })
}

/// Deletes what [`owned_by`] listed; returns what went.
pub async fn purge(store: &Arc<dyn ObjectStore>, owned: Owned) -> Result<Removed, RetentionError> {
    let removed = owned.removed();
    for object in &owned.objects {
        tracing::debug!(category = %owned.target, object = %object.location, "purged");
    }
    delete(store, owned.objects).await?;
    tracing::info!(
        category = %owned.target,
        objects = removed.objects,
        bytes = removed.bytes,
        "purged"
    );
    Ok(removed)
}

/// Whether `key` has the shape of an object the worker writes for `target`, so that
/// a purge leaves anything else in the bucket alone.
fn owned(target: Target, key: &Path) -> bool {
    let key = key.as_ref();
    let dated = |rest: &str| {
        rest.strip_prefix("date=")
            .and_then(|r| r.get(..10))
            .is_some_and(|d| d.parse::<NaiveDate>().is_ok())
    };
    let in_partitioned = target.partitioned().iter().any(|folder| {
        key.strip_prefix(folder)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|rest| {
                dated(rest) && (rest.ends_with(".parquet") || rest.ends_with(".jsonl"))
            })
    });
    let state = match target {
        Target::Data(category) => {
            let in_folder = |root: String| {
                key.strip_prefix(&root)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|r| r.ends_with(".json"))
            };
            in_folder(layout::ledger_root(category))
                || in_folder(layout::attempts_root(category))
                || feed_state_roots(category).into_iter().any(|root| {
                    key.strip_prefix(&root)
                        .and_then(|r| r.strip_prefix('/'))
                        .is_some_and(|r| r.ends_with(".json"))
                })
                || key == state_key(target).as_ref()
                || feeds::feed(category)
                    .files
                    .is_some_and(|files| files.owns(key))
        }
        Target::Quarantine => false,
    };
    in_partitioned || state
}

/// The oldest day `target` holds, from its partition folders and its ledger entries
/// (a one-off listing of one level per folder, made only before retention first runs;
/// the ledger counts too, as a file may have left no partition of its own day).
async fn oldest_day(
    store: &Arc<dyn ObjectStore>,
    target: Target,
) -> Result<Option<NaiveDate>, RetentionError> {
    let mut oldest: Option<NaiveDate> = None;
    if let Target::Data(category) = target {
        let ledger = store
            .list_with_delimiter(Some(&Path::from(layout::ledger_root(category))))
            .await
            .map_err(RetentionError::Store)?;
        for object in ledger.objects {
            let name = object
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"));
            if let Some(day) = name.and_then(|d| d.parse::<NaiveDate>().ok()) {
                oldest = Some(oldest.map_or(day, |o| o.min(day)));
            }
        }
    }
    for folder in target.partitioned() {
        let listing = store
            .list_with_delimiter(Some(&Path::from(folder)))
            .await
            .map_err(RetentionError::Store)?;
        for prefix in listing.common_prefixes {
            let day = prefix
                .filename()
                .and_then(|name| name.strip_prefix("date="))
                .and_then(|d| d.parse::<NaiveDate>().ok());
            if let Some(day) = day {
                oldest = Some(oldest.map_or(day, |o| o.min(day)));
            }
        }
    }
    Ok(oldest)
}

async fn list(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<Vec<ObjectMeta>, RetentionError> {
    // A prefix that names one object (a ledger entry) lists nothing: look it up.
    let mut found: Vec<ObjectMeta> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(RetentionError::Store)?;
    if found.is_empty() {
        match object_store::ObjectStoreExt::head(store.as_ref(), prefix).await {
            Ok(meta) => found.push(meta),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(RetentionError::Store(e)),
        }
    }
    Ok(found)
}

/// Deletes in batches (one request per thousand keys on S3).
async fn delete(
    store: &Arc<dyn ObjectStore>,
    objects: Vec<ObjectMeta>,
) -> Result<(), RetentionError> {
    let locations = futures::stream::iter(objects.into_iter().map(|o| Ok(o.location))).boxed();
    store
        .delete_stream(locations)
        .try_for_each(|path| async move {
            tracing::debug!(object = %path, "deleted");
            Ok(())
        })
        .await
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(RetentionError::Store(e)),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention could not list or delete in the destination: {0}")]
    Store(object_store::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the calls of the deleted days could not be rebuilt: {0}; run retention again")]
    Calls(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::{cdr, recordings};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn limits_are_forever_or_1_to_999_days() {
        assert_eq!(Keep::parse("forever"), Some(Keep::Forever));
        assert_eq!(Keep::parse("1"), Some(Keep::Days(1)));
        assert_eq!(Keep::parse("999"), Some(Keep::Days(999)));
        for bad in ["0", "1000", "-1", "7d", "", "Forever", "1.5"] {
            assert_eq!(Keep::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_day_n_days_old_is_kept_and_one_day_older_is_not() {
        let today = day("2024-03-10");
        assert_eq!(Keep::Days(1).oldest_kept(today), Some(day("2024-03-09")));
        assert_eq!(Keep::Days(7).oldest_kept(today), Some(day("2024-03-03")));
        assert_eq!(Keep::Days(999).oldest_kept(today), Some(day("2021-06-15")));
        assert_eq!(Keep::Forever.oldest_kept(today), None);
    }

    #[test]
    fn purge_only_touches_what_the_worker_writes() {
        let cdr = Target::Data(cdr::CATEGORY);
        assert!(owned(
            cdr,
            &Path::from("cdr/date=2024-03-01/2024-03-01.parquet")
        ));
        assert!(owned(cdr, &Path::from("_state/ledger/cdr/2024-03-01.json")));
        assert!(owned(
            cdr,
            &Path::from("_state/spill/cdr/date=2024-02-29/2024-03-01.parquet")
        ));
        assert!(!owned(cdr, &Path::from("cdr/README.txt")));
        assert!(!owned(cdr, &Path::from("cdr/date=2024-03-01/notes.txt")));
        assert!(!owned(
            cdr,
            &Path::from("_state/ledger/queue/2024-03-01.json")
        ));
        let recordings = Target::Data(recordings::CATEGORY);
        assert!(owned(
            recordings,
            &Path::from("recordings/2024/03/01/a.mp3")
        ));
        assert!(!owned(recordings, &Path::from("recordings/keep-me.txt")));
        assert!(owned(
            Target::Quarantine,
            &Path::from("_quarantine/cdr/date=2024-03-01/2024-03-01.jsonl")
        ));
    }
}
