//! Object keys: the output layout BI tools read, plus quarantine and state.
//!
//! ```text
//! cdr/date=YYYY-MM-DD/<source day>.parquet        rows whose call is on that UTC date
//! _quarantine/cdr/date=<source day>/<source day>.jsonl   rows set aside, one JSON object a line
//! recordings/YYYY/MM/DD/<original name>.mp3       the recordings, by call date
//! recording_index/date=YYYY-MM-DD/recordings.parquet   one row per recording
//! calls/date=YYYY-MM-DD/calls.parquet             one row per call, every feed joined
//! _state/ledger/<category>/<day>.json             what was ingested from each source file
//! _state/spill/cdr/date=YYYY-MM-DD/<source day>.parquet   a file's whole rows for another day (sink::partition)
//! _state/leases/<category>/<day>.json             a worker's claim on a unit of work
//! _state/leases/<category>/folder.json            … on a changed-files feed's folder
//! _state/seen/<category>/<shard>.json             the files a changed-files feed took (state::seen)
//! _state/leases/partitions/<dataset>/<date>.json  a worker's claim on a partition while it writes it
//! _state/leases/pass.json                         with accounts: a worker's pass is on this account
//! ```
//! Keys are derived from the data only (never the clock), so reruns are deterministic.

use chrono::NaiveDate;
use object_store::path::Path;

use crate::model::Category;

/// A Hive-style partition of one dataset for one call date, holding one object per source file.
pub fn data_object(dataset: &str, call_date: NaiveDate, source_day: NaiveDate) -> Path {
    Path::from(format!("{dataset}/date={call_date}/{source_day}.parquet"))
}

/// The folder of one dataset's partition of one call date.
pub fn data_folder(dataset: &str, call_date: NaiveDate) -> Path {
    Path::from(format!("{dataset}/date={call_date}"))
}

/// The partition and source day of a data object's key, if it is one.
pub fn parse_data_object(key: &str) -> Option<(&str, NaiveDate, NaiveDate)> {
    let (dataset, rest) = key.split_once("/date=")?;
    if dataset.contains('/') {
        return None;
    }
    let (date, name) = rest.split_once('/')?;
    let source = name.strip_suffix(".parquet")?;
    Some((dataset, date.parse().ok()?, source.parse().ok()?))
}

/// The call date of an object under one dataset's partitions
/// (`<dataset>/date=YYYY-MM-DD/…`), if `key` is one.
pub fn partition_date(dataset: &str, key: &str) -> Option<NaiveDate> {
    let rest = key.strip_prefix(dataset)?.strip_prefix("/date=")?;
    let (date, name) = rest.split_once('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    date.parse().ok()
}

/// Where a source file's whole rows for another day's partition are kept, so that the
/// partition can be recomputed when that day's own file arrives or changes.
pub fn spill_object(dataset: &str, call_date: NaiveDate, source_day: NaiveDate) -> Path {
    Path::from(format!(
        "{SPILL}/{dataset}/date={call_date}/{source_day}.parquet"
    ))
}

/// The folder of the kept rows of other files for one partition.
pub fn spill_folder(dataset: &str, call_date: NaiveDate) -> Path {
    Path::from(format!("{SPILL}/{dataset}/date={call_date}"))
}

/// The partition and source day of a kept-rows key, if it is one.
pub fn parse_spill_object(key: &str) -> Option<(&str, NaiveDate, NaiveDate)> {
    parse_data_object(key.strip_prefix(SPILL)?.strip_prefix('/')?)
}

/// The root of the kept rows of one dataset (retention and purge empty it by date).
pub fn spill_root(dataset: &str) -> String {
    format!("{SPILL}/{dataset}")
}

const SPILL: &str = "_state/spill";

/// The lease on one account's pass while a worker is on it (`account_turns`).
pub fn account_pass_lease() -> Path {
    Path::from("_state/leases/pass.json")
}

/// The lease on one unit of work (a category of a day).
pub fn unit_lease(category: Category, day: NaiveDate) -> Path {
    Path::from(format!("_state/leases/{category}/{day}.json"))
}

/// The lease on slot `slot` of the source's logins (`source.max_connections`).
pub fn connection_slot(slot: usize) -> Path {
    Path::from(format!("_state/leases/connections/slot-{slot}.json"))
}

/// The lease on a changed-files feed's folder (`pipeline::changed`): one worker a pass.
pub fn folder_lease(category: Category) -> Path {
    Path::from(format!("_state/leases/{category}/folder.json"))
}

/// The lease on writing one partition.
pub fn partition_lease(dataset: &str, call_date: NaiveDate) -> Path {
    Path::from(format!(
        "_state/leases/partitions/{dataset}/{call_date}.json"
    ))
}

/// Where the rows set aside from one source file go.
pub fn quarantine_object(dataset: &str, source_day: NaiveDate) -> Path {
    Path::from(format!(
        "{}/{source_day}.jsonl",
        quarantine_folder(dataset, source_day)
    ))
}

/// The root of the recordings' copies.
pub const RECORDINGS: &str = "recordings";

/// A recording's copy, filed by its call's date, under its original name.
pub fn recording_object(call_date: NaiveDate, name: &str) -> Path {
    Path::from(format!("{}/{name}", recordings_folder(call_date)))
}

/// The folder of one call date's recordings.
pub fn recordings_folder(call_date: NaiveDate) -> String {
    format!("{RECORDINGS}/{}", call_date.format("%Y/%m/%d"))
}

/// Whether `key` has the shape of a recording's copy: `recordings/YYYY/MM/DD/<name>.mp3`.
pub fn is_recording_object(key: &str) -> bool {
    recording_date(key).is_some()
}

/// The call date of a recording's copy (`recordings/YYYY/MM/DD/<name>.mp3`), if `key`
/// is one.
pub fn recording_date(key: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 5
        || parts[0] != RECORDINGS
        || !parts[4].to_ascii_lowercase().ends_with(".mp3")
    {
        return None;
    }
    NaiveDate::parse_from_str(
        &format!("{}-{}-{}", parts[1], parts[2], parts[3]),
        "%Y-%m-%d",
    )
    .ok()
}

/// The dataset of the recordings' index.
pub const RECORDING_INDEX: &str = "recording_index";

/// The index of one date's recordings, which joins them to their calls.
pub fn recording_index_object(call_date: NaiveDate) -> Path {
    Path::from(format!(
        "{RECORDING_INDEX}/date={call_date}/recordings.parquet"
    ))
}

/// The dataset of one row per call, joined from every feed.
pub const CALLS: &str = "calls";

/// The `calls` rows of one call date.
pub fn calls_object(call_date: NaiveDate) -> Path {
    Path::from(format!("{CALLS}/date={call_date}/{CALLS}.parquet"))
}

/// The root of every dataset's quarantine.
pub const QUARANTINE: &str = "_quarantine";

/// The root of one dataset's quarantine.
pub fn quarantine_root(dataset: &str) -> String {
    format!("{QUARANTINE}/{dataset}")
}

/// The folder of the rows one source day's file set aside in one dataset.
pub fn quarantine_folder(dataset: &str, source_day: NaiveDate) -> Path {
    Path::from(format!("{}/date={source_day}", quarantine_root(dataset)))
}

/// The folder of one category's ledger entries.
pub fn ledger_root(category: Category) -> String {
    format!("_state/ledger/{category}")
}

/// The record of failed tries of one source file.
pub fn attempts_object(category: Category, source_day: NaiveDate) -> Path {
    Path::from(format!("{}/{source_day}.json", attempts_root(category)))
}

/// The folder of one category's records of failed tries.
pub fn attempts_root(category: Category) -> String {
    format!("_state/attempts/{category}")
}

/// How far retention has deleted one target (a category, or the quarantine).
pub fn retention_state(target: &str) -> Path {
    Path::from(format!("_state/retention/{target}.json"))
}

/// The record of the last pass.
pub fn last_run() -> Path {
    Path::from("_state/runs/latest.json")
}

/// What `validate --connect` writes, reads back and deletes.
pub const PROBE: &str = "_state/probe";

/// The ledger entry of one source file.
pub fn ledger_object(category: Category, source_day: NaiveDate) -> Path {
    Path::from(format!("{}/{source_day}.json", ledger_root(category)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let prev = d.pred_opt().unwrap();
        assert_eq!(
            data_object("cdr", prev, d).as_ref(),
            "cdr/date=2024-02-29/2024-03-01.parquet"
        );
        assert_eq!(
            quarantine_object("cdr", d).as_ref(),
            "_quarantine/cdr/date=2024-03-01/2024-03-01.jsonl"
        );
        assert_eq!(
            ledger_object(Category::new("cdr"), d).as_ref(),
            "_state/ledger/cdr/2024-03-01.json"
        );
        let spill = spill_object("cdr", prev, d);
        assert_eq!(
            spill.as_ref(),
            "_state/spill/cdr/date=2024-02-29/2024-03-01.parquet"
        );
        assert_eq!(parse_spill_object(spill.as_ref()), Some(("cdr", prev, d)));
        assert_eq!(parse_data_object(spill.as_ref()), None);
        assert_eq!(
            parse_data_object(data_object("queue_call", prev, d).as_ref()),
            Some(("queue_call", prev, d))
        );
        assert_eq!(parse_data_object("recordings/2024/03/01/a.mp3"), None);
        assert_eq!(
            recording_object(d, "a.mp3").as_ref(),
            "recordings/2024/03/01/a.mp3"
        );
        assert!(is_recording_object("recordings/2024/03/01/a.mp3"));
        assert_eq!(recording_date("recordings/2024/03/01/a.mp3"), Some(d));
        assert_eq!(
            partition_date("cdr", data_object("cdr", prev, d).as_ref()),
            Some(prev)
        );
        assert_eq!(
            partition_date(RECORDING_INDEX, recording_index_object(d).as_ref()),
            Some(d)
        );
        assert_eq!(
            partition_date("cdr", "cdr_x/date=2024-03-01/a.parquet"),
            None
        );
        assert_eq!(
            partition_date("cdr", "cdr/date=2024-03-01/x/a.parquet"),
            None
        );
        assert_eq!(partition_date("cdr", spill.as_ref()), None);
        assert!(!is_recording_object("recordings/keep-me.txt"));
    }
}
