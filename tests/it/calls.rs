//! The normalized `calls` dataset through the binary: the same calls whatever order a
//! day's CDR file, queue zip and recordings arrive in (a seeded explorer), an unknown
//! outcome code said and counted, a correction carried into `calls`, and purge taking
//! a feed's rows out of it; a sessions feed's calls following its newest version and
//! going with its purge.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use cdr_ingest::generate::{DropSpec, Quirks, cdr_path, queue_zip_path, write_drop};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::{Rng, Run, local_config, run_range, tree};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// One `calls` row, the columns these tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    feed: String,
    outcome: String,
    detail: Option<String>,
    queue_id: Option<String>,
    recording_key: Option<String>,
}

/// Every `calls` row under `out`, by call id.
fn calls(out: &Path) -> BTreeMap<String, Row> {
    let mut found = BTreeMap::new();
    let root = out.join("calls");
    let Ok(dates) = std::fs::read_dir(&root) else {
        return found;
    };
    for date in dates {
        for object in std::fs::read_dir(date.unwrap().path()).unwrap() {
            let file = File::open(object.unwrap().path()).unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                let text = |name: &str, row: usize| {
                    let column = batch.column_by_name(name).unwrap().as_string::<i32>();
                    column.is_valid(row).then(|| column.value(row).to_string())
                };
                for row in 0..batch.num_rows() {
                    let id = text("call_id", row).unwrap();
                    let call = Row {
                        feed: text("feed", row).unwrap(),
                        outcome: text("outcome", row).unwrap(),
                        detail: text("outcome_detail", row),
                        queue_id: text("queue_id", row),
                        recording_key: text("recording_key", row),
                    };
                    assert!(found.insert(id.clone(), call).is_none(), "{id} twice");
                }
            }
        }
    }
    found
}

/// The `calls` objects under `out`, byte for byte.
fn calls_objects(out: &Path) -> Vec<(String, Vec<u8>)> {
    tree(out)
        .into_iter()
        .filter(|(key, _)| key.starts_with("calls/"))
        .collect()
}

/// A generated drop of `days` days with every quirk and a few recordings a day.
fn drop(root: &Path, seed: u64, days: u32) {
    let mut spec = DropSpec::new(seed, day(1), day(days));
    spec.cdr_rows_per_day = 60;
    spec.recordings_per_day = Some(6);
    spec.quirks = Quirks::all();
    write_drop(root, &spec).unwrap();
}

/// The files of one day and one feed, relative to the drop's root.
fn files_of(root: &Path, d: u32, feed: usize) -> Vec<String> {
    match feed {
        0 => vec![cdr_path(day(d))],
        1 => vec![queue_zip_path(day(d))],
        _ => {
            let prefix = day(d).format("%Y_%m_%d").to_string();
            std::fs::read_dir(root.join("recordings"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&prefix))
                .map(|name| format!("recordings/{name}"))
                .collect()
        }
    }
}

fn run(config: &Path, to: u32) -> Run {
    Run::from(
        run_range(config, "2024-03-01", &day(to).to_string())
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .output()
            .unwrap(),
    )
}

/// One seed: the drop's files revealed one feed-day at a time in a random order, a
/// pass after each reveal; the calls must end byte for byte as one pass over the
/// whole drop writes them.
fn explore(seed: u64) -> Result<(), String> {
    const DAYS: u32 = 3;
    let work = tempfile::tempdir().unwrap();
    let (full, server) = (work.path().join("full"), work.path().join("server"));
    drop(&full, seed, DAYS);
    std::fs::create_dir_all(server.join("CDRs")).unwrap();
    std::fs::create_dir_all(server.join("QueueCalls")).unwrap();
    std::fs::create_dir_all(server.join("recordings")).unwrap();
    let mut units: Vec<(u32, usize)> = (1..=DAYS)
        .flat_map(|d| (0..3).map(move |feed| (d, feed)))
        .collect();
    let mut rng = Rng(seed);
    for i in (1..units.len()).rev() {
        units.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let shared = local_config(
        &work.path().join("shared.toml"),
        &server,
        &work.path().join("shared"),
    );
    for &(d, feed) in &units {
        for rel in files_of(&full, d, feed) {
            std::fs::copy(full.join(&rel), server.join(&rel)).unwrap();
            let modified = std::fs::metadata(full.join(&rel))
                .unwrap()
                .modified()
                .unwrap();
            File::options()
                .write(true)
                .open(server.join(&rel))
                .unwrap()
                .set_modified(modified)
                .unwrap();
        }
        // A day with a file still missing is overdue (exit 1) by design.
        let pass = run(&shared, DAYS);
        if pass.code != 0 && pass.code != 1 {
            return Err(format!("after revealing {d}/{feed}: {pass:?}"));
        }
    }
    let reference = local_config(
        &work.path().join("reference.toml"),
        &full,
        &work.path().join("reference"),
    );
    let clean = run(&reference, DAYS);
    assert_eq!(clean.code, 0, "{clean:?}");
    let (got, want) = (
        calls_objects(&work.path().join("shared")),
        calls_objects(&work.path().join("reference")),
    );
    assert!(
        want.len() > DAYS as usize,
        "{:?}",
        want.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    if got != want {
        let (got_rows, want_rows) = (
            calls(&work.path().join("shared")),
            calls(&work.path().join("reference")),
        );
        let differ: Vec<_> = want_rows
            .iter()
            .filter(|(id, row)| got_rows.get(*id) != Some(row))
            .take(5)
            .collect();
        return Err(format!(
            "order {units:?}: objects {:?} vs {:?}; rows that differ: {differ:?}",
            got.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            want.iter().map(|(k, _)| k).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// `CDR_TEST_CALLS_SEEDS=N` runs seeds 1..=N (default 3), `CDR_TEST_CALLS_SEED=S` one.
#[test]
fn the_calls_are_the_same_whatever_order_the_feeds_files_arrive_in() {
    let seeds: Vec<u64> = match std::env::var("CDR_TEST_CALLS_SEED") {
        Ok(seed) => vec![seed.parse().expect("CDR_TEST_CALLS_SEED is a number")],
        Err(_) => (1..=std::env::var("CDR_TEST_CALLS_SEEDS")
            .map_or(3, |n| n.parse().expect("CDR_TEST_CALLS_SEEDS is a number")))
            .collect(),
    };
    let failed: Vec<String> = seeds
        .iter()
        .filter_map(|&seed| {
            explore(seed)
                .err()
                .map(|why| format!("seed {seed} (replay: CDR_TEST_CALLS_SEED={seed}): {why}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Sets a file's modification time later, as a new upload would.
fn touch_later(path: &Path) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap() + Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified.max(SystemTime::UNIX_EPOCH))
        .unwrap();
}

/// A work folder with a quirk-free drop of `days` days and its config.
fn setup(days: u32) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let (root, out) = (work.path().join("drop"), work.path().join("out"));
    let mut spec = DropSpec::new(5, day(1), day(days));
    spec.cdr_rows_per_day = 80;
    spec.recordings_per_day = Some(10);
    write_drop(&root, &spec).unwrap();
    let config = local_config(&work.path().join("c.toml"), &root, &out);
    (work, root, out, config)
}

#[test]
fn an_unknown_outcome_code_becomes_other_and_is_counted_in_the_summary() {
    let (_work, root, out, config) = setup(1);
    let cdr = root.join(cdr_path(day(1)));
    let text = std::fs::read_to_string(&cdr).unwrap();
    // BUSY calls never enter a queue: no other feed has an outcome for this one.
    let line = text
        .lines()
        .find(|l| l.contains(",BUSY,"))
        .unwrap()
        .to_string();
    let id = line.split(',').next().unwrap().to_string();
    std::fs::write(
        &cdr,
        text.replacen(&line, &line.replace(",BUSY,", ",ZAPPED,"), 1),
    )
    .unwrap();
    let pass = run(&config, 1);
    assert_eq!(pass.code, 0, "{pass:?}");
    assert!(
        pass.stdout
            .contains("; 1 calls with an outcome code no mapping knows"),
        "{pass:?}"
    );
    assert!(
        pass.stderr.contains("ZAPPED"),
        "the warning names the code: {pass:?}"
    );
    let row = &calls(&out)[&id];
    assert_eq!(
        (row.outcome.as_str(), row.detail.as_deref()),
        ("other", Some("ZAPPED"))
    );
}

#[test]
fn a_corrected_file_corrects_its_calls_and_purge_takes_a_feeds_rows_out() {
    let (_work, root, out, config) = setup(2);
    let first = run(&config, 2);
    assert_eq!(first.code, 0, "{first:?}");
    let before = calls(&out);
    let queued = before.values().filter(|r| r.queue_id.is_some()).count();
    assert!(queued > 0 && before.values().any(|r| r.recording_key.is_some()));
    assert!(
        before.values().all(|r| r.feed == "cdr"),
        "every call has its CDR"
    );
    assert!(
        before
            .values()
            .any(|r| r.outcome == "abandoned" && r.detail.as_deref() == Some("U/H")),
        "the queue report says which calls were abandoned"
    );

    // The provider removes an outbound call and a queue call from the day's CDR file.
    let cdr = root.join(cdr_path(day(1)));
    let text = std::fs::read_to_string(&cdr).unwrap();
    let id_of = |line: &str| line.split(',').next().unwrap().to_string();
    let outbound = text
        .lines()
        .skip(1)
        .find(|l| l.contains(",BUSY,"))
        .unwrap()
        .to_string();
    let queue_call = text
        .lines()
        .skip(1)
        .map(str::to_string)
        .find(|l| before.get(&id_of(l)).is_some_and(|r| r.queue_id.is_some()))
        .unwrap();
    let corrected: Vec<&str> = text
        .lines()
        .filter(|l| *l != outbound && *l != queue_call)
        .collect();
    std::fs::write(&cdr, corrected.join("\n") + "\n").unwrap();
    touch_later(&cdr);
    let again = run(&config, 2);
    assert_eq!(again.code, 0, "{again:?}");
    let after = calls(&out);
    assert!(
        !after.contains_key(&id_of(&outbound)),
        "the removed call's row went"
    );
    assert_eq!(
        after[&id_of(&queue_call)].feed,
        "queue",
        "the queue report still has that call"
    );
    assert_eq!(after.len(), before.len() - 1);

    let purge = |category: &str| {
        let purged = Run::from(
            Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(["purge", "--config", config.to_str().unwrap()])
                .args(["--category", category, "--confirm", "YES"])
                .output()
                .unwrap(),
        );
        assert_eq!(purged.code, 0, "{purged:?}");
    };
    purge("cdr");
    let without_cdrs = calls(&out);
    assert!(without_cdrs.values().all(|r| r.feed != "cdr"));
    assert!(
        without_cdrs
            .values()
            .filter(|r| r.queue_id.is_some())
            .count()
            == queued
    );
    purge("queue");
    purge("recordings");
    assert!(calls(&out).is_empty());
    assert!(calls_objects(&out).is_empty(), "no calls object is left");
}

/// A session file under `root/sessions/`, dated in the past so a pass takes it.
fn session_file(root: &Path, name: &str, document: &str) {
    let path = root.join("sessions").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, document).unwrap();
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_300_000);
    let later = std::fs::read_dir(path.parent().unwrap()).unwrap().count() as u64;
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified + Duration::from_secs(later))
        .unwrap();
}

fn session(id: u32, kind: &str, status: &str, updated: &str) -> String {
    format!(
        r#"{{"id": {id}, "{kind}": "Voice Inbound (IVR)", "status": "{status}", "created_at": "2024-03-01T10:00:00Z", "updated_at": "{updated}", "connected_at": "2024-03-01T10:00:30Z", "ends_at": "2024-03-01T10:05:00Z", "support_number": "+48221234500", "participants": [], "transfers": []}}"#
    )
}

#[test]
fn a_sessions_voice_calls_follow_its_newest_version_and_go_with_its_purge() {
    let work = tempfile::tempdir().unwrap();
    let (root, out) = (work.path().join("drop"), work.path().join("out"));
    let config = work.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"sessions\"]\n",
            root.display(),
            out.display()
        ),
    )
    .unwrap();
    let pass = || {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(["run", "--config", config.to_str().unwrap()])
                .env("CDR_INGEST_LOG_FORMAT", "text")
                .output()
                .unwrap(),
        )
    };
    session_file(
        &root,
        "a/1.json",
        &session(1, "call_type", "failed", "2024-03-01T10:20:00Z"),
    );
    session_file(
        &root,
        "a/2.json",
        &session(2, "chat_type", "finished", "2024-03-01T10:20:00Z"),
    );
    session_file(
        &root,
        "a/3.json",
        &session(3, "call_type", "ZAPPED", "2024-03-01T10:20:00Z"),
    );
    let first = pass();
    assert_ne!(first.code, 2, "{first:?}");
    let rows = calls(&out);
    assert_eq!(
        rows.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "3"],
        "a chat is not a call: {first:?}"
    );
    assert_eq!(
        (rows["1"].feed.as_str(), rows["1"].outcome.as_str()),
        ("sessions", "failed")
    );
    assert_eq!(
        (rows["3"].outcome.as_str(), rows["3"].detail.as_deref()),
        ("other", Some("ZAPPED"))
    );
    assert!(
        first
            .stdout
            .contains("; 1 calls with an outcome code no mapping knows"),
        "{first:?}"
    );

    // A newer version of session 1, in another file, wins in calls too.
    session_file(
        &root,
        "b/1.json",
        &session(1, "call_type", "finished", "2024-03-01T10:30:00Z"),
    );
    let second = pass();
    assert_ne!(second.code, 2, "{second:?}");
    assert_eq!(calls(&out)["1"].outcome, "answered");
    assert!(
        !second.stdout.contains("no mapping knows"),
        "the unknown code was counted by the pass that brought it: {second:?}"
    );
    assert!(
        !out.join("_state/calls/dirty").exists()
            || tree(&out.join("_state/calls/dirty")).is_empty()
    );

    let purged = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["purge", "--config", config.to_str().unwrap()])
            .args(["--category", "sessions", "--confirm", "YES"])
            .output()
            .unwrap(),
    );
    assert_eq!(purged.code, 0, "{purged:?}");
    assert!(
        calls(&out).is_empty(),
        "purge takes the sessions' calls out"
    );
    assert!(calls_objects(&out).is_empty());
}
