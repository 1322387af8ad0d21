//! `cdr-ingest ls`: what the destination holds, per day, feed and dataset: partitions,
//! objects, rows and bytes. Rows come from each Parquet object's footer (a ranged read
//! of its tail), never from its data; a feed's own files (recordings' copies) are
//! counted and sized only. Reads the destination alone, so it needs no source secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use crate::feeds::Feed;
use crate::sink::layout;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot list or read the destination: {0}")]
    Store(#[from] object_store::Error),
    #[error("{key}: not a readable Parquet footer: {source}")]
    Footer { key: String, source: ParquetError },
}

/// What one dataset (or a feed's own files) holds for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Holding {
    pub objects: u64,
    /// From the Parquet footers; `None` for files that are not Parquet (recordings).
    pub rows: Option<u64>,
    pub bytes: u64,
}

/// One line: a day, a feed, one of its datasets (or the folder of its own files).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub day: NaiveDate,
    pub feed: String,
    pub dataset: String,
    #[serde(flatten)]
    pub holding: Holding,
}

/// The tail read first for a footer: enough for the footers this program writes, so
/// one request per object.
const FOOTER_GUESS: u64 = 64 * 1024;

/// Parquet footers read at once.
const CONCURRENT_READS: usize = 16;

/// What `feeds` hold, per day (oldest first), feed (in the registry's order) and
/// dataset, for the days of `range` (inclusive) or, without one, every day there is.
pub async fn inventory(
    store: &Arc<dyn ObjectStore>,
    feeds: &[&'static Feed],
    range: Option<(NaiveDate, NaiveDate)>,
) -> Result<Vec<Line>, InventoryError> {
    let mut lines = Vec::new();
    for (order, feed) in feeds.iter().enumerate() {
        for dataset in feed.datasets {
            let objects = listed(store, range, dataset.name, &|day| {
                Path::from(layout::data_folder(dataset.name, day).as_ref())
            })
            .await?;
            let by_day = footers(store, objects, |key| {
                layout::partition_date(dataset.name, key)
            })
            .await?;
            for (day, holding) in by_day {
                lines.push((order, day, feed, dataset.name.to_string(), holding));
            }
        }
        if let Some(files) = feed.files {
            let objects = listed(store, range, files.root(), &|day| {
                Path::from(files.folder_of_day(day))
            })
            .await?;
            let mut by_day: BTreeMap<NaiveDate, Holding> = BTreeMap::new();
            for meta in objects {
                if let Some(day) = files.day_of(meta.location.as_ref()) {
                    let holding = by_day.entry(day).or_default();
                    holding.objects += 1;
                    holding.bytes += meta.size;
                }
            }
            for (day, holding) in by_day {
                lines.push((order, day, feed, format!("{}/", files.root()), holding));
            }
        }
    }
    lines.sort_by_key(|(order, day, ..)| (*day, *order));
    Ok(lines
        .into_iter()
        .filter(|(_, day, ..)| range.is_none_or(|(from, to)| (from..=to).contains(day)))
        .map(|(_, day, feed, dataset, holding)| Line {
            day,
            feed: feed.category.to_string(),
            dataset,
            holding,
        })
        .collect())
}

/// The objects under `root`, or with a range only those of its days' folders (a
/// recordings folder of years is not listed to show a week).
async fn listed(
    store: &Arc<dyn ObjectStore>,
    range: Option<(NaiveDate, NaiveDate)>,
    root: &str,
    folder_of_day: &dyn Fn(NaiveDate) -> Path,
) -> Result<Vec<ObjectMeta>, InventoryError> {
    let folders: Vec<Path> = match range {
        Some((from, to)) => from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(folder_of_day)
            .collect(),
        None => vec![Path::from(root)],
    };
    let mut found = Vec::new();
    for folder in folders {
        found.extend(store.list(Some(&folder)).try_collect::<Vec<_>>().await?);
    }
    Ok(found)
}

/// Objects, rows and bytes per day of Parquet objects whose day `day_of` their key tells.
async fn footers(
    store: &Arc<dyn ObjectStore>,
    objects: Vec<ObjectMeta>,
    day_of: impl Fn(&str) -> Option<NaiveDate>,
) -> Result<BTreeMap<NaiveDate, Holding>, InventoryError> {
    let dated: Vec<(NaiveDate, ObjectMeta)> = objects
        .into_iter()
        .filter(|m| m.location.as_ref().ends_with(".parquet"))
        .filter_map(|m| day_of(m.location.as_ref()).map(|day| (day, m)))
        .collect();
    let counted: Vec<(NaiveDate, u64, u64)> = futures::stream::iter(dated)
        .map(|(day, meta)| async move {
            let rows = rows_of(store, &meta).await?;
            Ok::<_, InventoryError>((day, rows, meta.size))
        })
        .buffer_unordered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let mut by_day: BTreeMap<NaiveDate, Holding> = BTreeMap::new();
    for (day, rows, bytes) in counted {
        let holding = by_day.entry(day).or_default();
        holding.objects += 1;
        *holding.rows.get_or_insert(0) += rows;
        holding.bytes += bytes;
    }
    Ok(by_day)
}

/// The rows of one dataset's partition, from its objects' footers; `None` when it has
/// no object (for `status`).
pub async fn partition_rows(
    store: &Arc<dyn ObjectStore>,
    dataset: &str,
    day: NaiveDate,
) -> Result<Option<u64>, InventoryError> {
    let objects: Vec<ObjectMeta> = store
        .list(Some(&layout::data_folder(dataset, day)))
        .try_collect()
        .await?;
    Ok(footers(store, objects, |_| Some(day))
        .await?
        .remove(&day)
        .and_then(|holding| holding.rows))
}

/// The row count in a Parquet object's footer, from a read of its tail (a second one
/// when the footer is bigger than the first guess).
async fn rows_of(store: &Arc<dyn ObjectStore>, meta: &ObjectMeta) -> Result<u64, InventoryError> {
    let size = meta.size;
    let footer = |source| InventoryError::Footer {
        key: meta.location.to_string(),
        source,
    };
    let tail = |length: u64| async move {
        let start = size.saturating_sub(length);
        store.get_range(&meta.location, start..size).await
    };
    let mut reader = ParquetMetaDataReader::new().with_page_index_policy(PageIndexPolicy::Skip);
    let bytes: Bytes = tail(FOOTER_GUESS).await?;
    match reader.try_parse_sized(&bytes, size) {
        Ok(()) => {}
        Err(ParquetError::NeedMoreData(needed)) => {
            let bytes = tail(needed as u64).await?;
            reader.try_parse_sized(&bytes, size).map_err(footer)?;
        }
        Err(e) => return Err(footer(e)),
    }
    let metadata = reader.finish().map_err(footer)?;
    Ok(metadata.file_metadata().num_rows().max(0) as u64)
}

/// The totals of `lines` per feed and dataset (in the order they first appear), with
/// the number of days (partitions) each has.
pub fn totals(lines: &[Line]) -> Vec<(String, String, u64, Holding)> {
    let mut totals: Vec<(String, String, u64, Holding)> = Vec::new();
    for line in lines {
        let index = match totals
            .iter()
            .position(|(feed, dataset, ..)| *feed == line.feed && *dataset == line.dataset)
        {
            Some(index) => index,
            None => {
                totals.push((
                    line.feed.clone(),
                    line.dataset.clone(),
                    0,
                    Holding::default(),
                ));
                totals.len() - 1
            }
        };
        let (_, _, partitions, total) = &mut totals[index];
        *partitions += 1;
        add(total, &line.holding);
    }
    totals.sort_by_key(|(feed, ..)| {
        lines
            .iter()
            .position(|l| l.feed == *feed)
            .unwrap_or(usize::MAX)
    });
    totals
}

/// Adds `holding` into `total`.
pub fn add(total: &mut Holding, holding: &Holding) {
    total.objects += holding.objects;
    total.bytes += holding.bytes;
    if let Some(rows) = holding.rows {
        *total.rows.get_or_insert(0) += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(day: &str, feed: &str, dataset: &str, rows: Option<u64>) -> Line {
        Line {
            day: day.parse().unwrap(),
            feed: feed.into(),
            dataset: dataset.into(),
            holding: Holding {
                objects: 2,
                rows,
                bytes: 100,
            },
        }
    }

    #[test]
    fn totals_per_feed_and_dataset_count_partitions() {
        let lines = [
            line("2024-03-01", "a", "a1", Some(5)),
            line("2024-03-01", "b", "b/", None),
            line("2024-03-02", "a", "a1", Some(7)),
            line("2024-03-02", "a", "a2", Some(1)),
        ];
        let totals = totals(&lines);
        let names: Vec<(&str, &str, u64)> = totals
            .iter()
            .map(|(f, d, p, _)| (f.as_str(), d.as_str(), *p))
            .collect();
        assert_eq!(names, [("a", "a1", 2), ("a", "a2", 1), ("b", "b/", 1)]);
        assert_eq!(
            totals[0].3,
            Holding {
                objects: 4,
                rows: Some(12),
                bytes: 200
            }
        );
        assert_eq!(totals[2].3.rows, None);
    }
}
