//! Crash safety: the real binary aborted (as abruptly as `kill -9`) at each point of a
//! file's way in — after the download, after each data object, before and after the
//! ledger entry, after a recording — then run again, gives exactly the dataset of a
//! run that was never interrupted, and readers never see a half-written object.

use std::path::{Path, PathBuf};

use cdr_ingest::crash::POINTS;
use cdr_ingest::generate::{DropSpec, Quirks, write_drop};
use chrono::NaiveDate;

use crate::util::{Run, local_config, run_range, tree};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

fn config(work: &Path, name: &str) -> PathBuf {
    local_config(
        &work.join(format!("{name}.toml")),
        &work.join("drop"),
        &work.join(name),
    )
}

fn run(config: &Path, crash_at: Option<&str>) -> Run {
    let mut command = run_range(config, "2024-03-01", "2024-03-03");
    match crash_at {
        Some(point) => command.env("CDR_INGEST_CRASH_AT", point),
        None => command.env_remove("CDR_INGEST_CRASH_AT"),
    };
    Run::from(command.output().unwrap())
}

/// What readers and the next run see: finished objects (staging files of an upload
/// cut short have no such name) and the ledger.
fn dataset(out: &Path) -> Vec<(String, Vec<u8>)> {
    tree(out)
        .into_iter()
        .filter(|(key, _)| {
            let finished = [".parquet", ".jsonl", ".mp3", ".json"]
                .iter()
                .any(|end| key.ends_with(end));
            finished && !key.starts_with("_state/retention")
        })
        .collect()
}

#[test]
fn killed_at_any_point_and_run_again_it_ends_as_if_never_interrupted() {
    let work = tempfile::tempdir().unwrap();
    let mut spec = DropSpec::new(71, day(1), day(3));
    spec.cdr_rows_per_day = 300;
    spec.recordings_per_day = Some(3);
    spec.quirks = Quirks {
        repeat_previous_tail: 3,
        ..Quirks::default()
    };
    write_drop(&work.path().join("drop"), &spec).unwrap();
    let reference = run(&config(work.path(), "reference"), None);
    assert_eq!(reference.code, 0, "{reference:?}");
    let reference = dataset(&work.path().join("reference"));
    assert!(reference.len() > 20);

    let mut crashed = 0;
    for point in POINTS {
        for nth in [1, 2, 5] {
            let name = format!("{point}-{nth}");
            let config = config(work.path(), &name);
            let first = run(&config, Some(&format!("{point}:{nth}")));
            if first.code != 0 {
                crashed += 1;
                assert!(
                    first.stderr.contains(&format!("aborting at {point}")),
                    "{name}: {first:?}"
                );
            }
            let again = run(&config, None);
            assert_eq!(again.code, 0, "{name}: {again:?}");
            let result = dataset(&work.path().join(&name));
            let keys =
                |d: &[(String, Vec<u8>)]| d.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(
                keys(&result),
                keys(&reference),
                "{name}: other objects than an uninterrupted run"
            );
            assert!(
                result == reference,
                "{name}: other bytes than an uninterrupted run"
            );
        }
    }
    assert!(
        crashed >= 12,
        "only {crashed} runs reached their crash point"
    );
}

/// Recordings are committed day by day: a backfill killed on its last day keeps the
/// days it finished, and the next run copies only what that day still lacks.
#[test]
fn a_recordings_backfill_killed_on_its_last_day_keeps_the_days_before() {
    let work = tempfile::tempdir().unwrap();
    let mut spec = DropSpec::new(72, day(1), day(3));
    spec.cdr_rows_per_day = 50;
    spec.recordings_per_day = Some(3);
    write_drop(&work.path().join("drop"), &spec).unwrap();
    let config = config(work.path(), "out");
    let ledger = |d: u32| {
        work.path()
            .join(format!("out/_state/ledger/recordings/{}.json", day(d)))
    };

    let killed = run(&config, Some("recording-copied:7"));
    assert!(
        killed.stderr.contains("aborting at recording-copied"),
        "{killed:?}"
    );
    assert!(ledger(1).exists() && ledger(2).exists(), "{killed:?}");
    assert!(!ledger(3).exists(), "{killed:?}");

    let again = run(&config, None);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("recordings: 3 copied (")
            && again.stdout.contains("6 already copied"),
        "{again:?}"
    );
    assert!(ledger(3).exists());
}
