//! `cdr-ingest quarantine`: the rows set aside in the last days, so an operator can
//! see what to fix without opening the bucket: per day and dataset a count, then
//! each row's file, line and reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::feeds::FEEDS;
use crate::pipeline::Context;
use crate::sink::layout;
use crate::sink::quarantine::QuarantineEntry;

/// The datasets that have a quarantine, feed by feed.
fn quarantined_datasets() -> impl Iterator<Item = &'static str> {
    FEEDS
        .iter()
        .flat_map(|feed| feed.datasets.iter())
        .filter(|d| d.quarantine)
        .map(|d| d.name)
}

#[derive(Debug, Serialize)]
struct Day {
    day: String,
    dataset: String,
    rows: usize,
    /// How many rows per reason (the part of the reason before its first `:`).
    reasons: BTreeMap<String, usize>,
    entries: Vec<QuarantineEntry>,
}

/// Prints what was quarantined over the last `days` days (default: the look-back window).
pub async fn show(
    ctx: &Context,
    now: DateTime<Utc>,
    days: Option<u32>,
    json: bool,
) -> Result<(), QuarantineReportError> {
    let window = ctx.settings.schedule.last_days(days, now);
    let mut found = Vec::new();
    for day in window.iter().rev() {
        for dataset in quarantined_datasets() {
            let prefix = layout::quarantine_folder(dataset, *day);
            let read = |source| QuarantineReportError::Read {
                key: prefix.to_string(),
                source,
            };
            let objects: Vec<_> = ctx
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(read)?;
            let mut entries = Vec::new();
            for object in objects {
                let bytes = match ctx.store.get(&object.location).await {
                    Ok(got) => got.bytes().await.map_err(read)?,
                    Err(e) => return Err(read(e)),
                };
                for (number, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                    let entry = serde_json::from_str::<QuarantineEntry>(line).map_err(|e| {
                        QuarantineReportError::Damaged {
                            key: object.location.to_string(),
                            line: number + 1,
                            detail: e.to_string(),
                        }
                    })?;
                    entries.push(entry);
                }
            }
            if entries.is_empty() {
                continue;
            }
            let mut reasons = BTreeMap::new();
            for entry in &entries {
                let kind = entry
                    .reason
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                *reasons.entry(kind).or_insert(0) += 1;
            }
            found.push(Day {
                day: day.to_string(),
                dataset: dataset.to_string(),
                rows: entries.len(),
                reasons,
                entries,
            });
        }
    }
    if json {
        crate::out!(
            "{}",
            serde_json::to_string_pretty(&found).expect("the report serializes")
        );
        return Ok(());
    }
    if found.is_empty() {
        crate::out!("nothing quarantined in the last {} day(s)", window.len());
    }
    for day in &found {
        let reasons: Vec<String> = day
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} × {r}"))
            .collect();
        crate::out!(
            "{} {}: {} row(s) set aside ({})",
            day.day,
            day.dataset,
            day.rows,
            reasons.join(", ")
        );
        for entry in &day.entries {
            crate::out!("  {}:{}: {}", entry.file, entry.line, entry.reason);
        }
    }
    Ok(())
}

/// Why the quarantine could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineReportError {
    #[error("cannot read the quarantine under {key}: {source}")]
    Read {
        key: String,
        source: object_store::Error,
    },
    #[error(
        "{key} line {line} is not a quarantine entry ({detail}); it was not written by cdr-ingest, or is damaged"
    )]
    Damaged {
        key: String,
        line: usize,
        detail: String,
    },
}
