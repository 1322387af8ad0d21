//! Running it: a scheduled pass without dates, a backfill with progress that stops
//! cleanly on SIGTERM and goes on where it stopped, and `status`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::{Days, NaiveDate, Utc};

use crate::util::{Run, json, local_config, run_range, tree};

fn config(work: &Path, drop: &Path, extra: &str) -> PathBuf {
    let path = work.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"cdr\", \"queue\"]\n{extra}",
            drop.display(),
            work.join("out").display()
        ),
    )
    .unwrap();
    path
}

fn cdr_ingest(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command.args(args).env("CDR_INGEST_LOG_FORMAT", "json");
    command
}

fn drop_of(work: &Path, from: NaiveDate, to: NaiveDate, rows: usize) -> PathBuf {
    let drop = work.join("drop");
    let mut spec = DropSpec::new(41, from, to);
    spec.cdr_rows_per_day = rows;
    spec.recordings_per_day = Some(0);
    write_drop(&drop, &spec).unwrap();
    drop
}

#[test]
fn a_pass_without_dates_covers_the_look_back_window_and_yesterday_is_not_a_failure() {
    let work = tempfile::tempdir().unwrap();
    let today = Utc::now().date_naive();
    let (first, second, yesterday) = (
        today - Days::new(3),
        today - Days::new(2),
        today - Days::new(1),
    );
    // The provider has not uploaded yesterday yet.
    let drop = drop_of(work.path(), first, second, 50);
    let config = config(
        work.path(),
        &drop,
        "[schedule]\nlookback_days = 3\nlate_after_hours = 48\n",
    );
    let run = Run::from(
        cdr_ingest(&["run", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    for day in [first, second] {
        assert!(
            work.path()
                .join(format!("out/_state/ledger/cdr/{day}.json"))
                .exists(),
            "{day}: {run:?}"
        );
    }
    let waiting = run
        .stdout
        .contains(&format!("{yesterday} CDRs/{yesterday}.csv: not due yet"))
        || run
            .stdout
            .contains(&format!("{yesterday} CDRs/{yesterday}.csv: late, due"));
    assert!(waiting, "{run:?}");
    assert!(run.stdout.contains("2 not there yet, 0 failed"), "{run:?}");
    assert!(
        run.stderr.contains("\"message\":\"pass finished\""),
        "one summary log line per pass: {run:?}"
    );
    // Each ingested file says where its time went.
    let ingested: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.contains("\"message\":\"ingested\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!ingested.is_empty(), "{run:?}");
    for line in &ingested {
        let phases: u64 = ["transfer_ms", "parse_ms", "write_ms"]
            .iter()
            .map(|p| line[p].as_u64().unwrap_or_else(|| panic!("{p} in {line}")))
            .sum();
        assert!(
            phases <= line["duration_ms"].as_u64().unwrap() + 1,
            "{line}"
        );
    }

    let status = Run::from(
        cdr_ingest(&[
            "status",
            "--config",
            config.to_str().unwrap(),
            "--json",
            "--days",
            "3",
        ])
        .output()
        .unwrap(),
    );
    assert_eq!(status.code, 0, "{status:?}");
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["last_pass"]["mode"], "run");
    assert_eq!(status["last_pass"]["outcome"], "ok");
    let rows = status["days"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let state = |day: NaiveDate, category: &str| {
        rows.iter()
            .find(|r| r["day"] == day.to_string() && r["category"] == category)
            .map(|r| r["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state(first, "cdr"), "ingested");
    assert_eq!(state(second, "queue"), "ingested");
    assert!(matches!(
        state(yesterday, "cdr").as_str(),
        "not_due" | "late"
    ));
}

#[test]
fn status_exits_non_zero_when_a_day_is_overdue() {
    let work = tempfile::tempdir().unwrap();
    let today = Utc::now().date_naive();
    let drop = drop_of(work.path(), today - Days::new(2), today - Days::new(2), 20);
    let config = config(
        work.path(),
        &drop,
        "[schedule]\nlookback_days = 2\nlate_after_hours = 0\n",
    );
    let run = Run::from(
        cdr_ingest(&["run", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let status = Run::from(
        cdr_ingest(&["status", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    // Yesterday is due at 01:00 today with no grace: overdue unless it is before 01:00 now.
    if Utc::now().time() >= chrono::NaiveTime::from_hms_opt(1, 0, 0).unwrap() {
        assert_eq!(run.code, 1, "{run:?}");
        assert_eq!(status.code, 1, "{status:?}");
        assert!(status.stdout.contains("overdue"), "{status:?}");
    }
    assert!(
        status.stdout.starts_with("last pass: run from"),
        "{status:?}"
    );
}

#[test]
fn a_backfill_stopped_by_sigterm_exits_4_and_goes_on_where_it_stopped() {
    let work = tempfile::tempdir().unwrap();
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2024, 2, 9).unwrap();
    let drop = drop_of(work.path(), from, to, 3000);
    let config = config(work.path(), &drop, "shutdown_grace_secs = 5\n");
    let args = [
        "backfill",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2024-01-01",
        "--to",
        "2024-02-09",
        "--parallel",
        "2",
    ];

    let mut child = cdr_ingest(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it as soon as the first file is in (its log line says so), while most days
    // are still to do.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("\"message\":\"ingested\"") {
        line.clear();
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr));
    let rest = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let status = child.wait().unwrap();
    let log = drain.join().unwrap().unwrap();
    assert_eq!(status.code(), Some(4), "{rest}\n{log}");
    assert!(log.contains("stopping: no new files"), "{log}");
    assert!(rest.contains("stopped by a signal"), "{rest}");
    let done = |out: &Path| {
        std::fs::read_dir(out.join("_state/ledger/cdr"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let after_stop = done(&work.path().join("out"));
    let queue_after_stop = std::fs::read_dir(work.path().join("out/_state/ledger/queue"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        after_stop < 40,
        "it stopped before the end ({after_stop} days in)"
    );
    // Every day in the ledger is complete: its output is all there.
    for entry in std::fs::read_dir(work.path().join("out/_state/ledger/cdr")).unwrap() {
        let ledger = json(&entry.unwrap().path());
        for key in ledger["outputs"].as_array().unwrap() {
            assert!(work.path().join("out").join(key.as_str().unwrap()).exists());
        }
    }

    let again = Run::from(cdr_ingest(&args).output().unwrap());
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(done(&work.path().join("out")), 40);
    assert!(
        again.stdout.contains(&format!(
            "{} already up to date",
            after_stop + queue_after_stop
        )) || after_stop == 0,
        "{again:?}"
    );
    assert!(
        again.stderr.contains("\"message\":\"backfill progress\""),
        "{again:?}"
    );

    // The same as one uninterrupted backfill.
    let reference = work.path().join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &work.path().join("out").display().to_string(),
        &reference.display().to_string(),
    );
    let reference_config = work.path().join("reference.toml");
    std::fs::write(&reference_config, text).unwrap();
    let reference_args = [
        "backfill",
        "--config",
        reference_config.to_str().unwrap(),
        "--from",
        "2024-01-01",
        "--to",
        "2024-02-09",
    ];
    assert_eq!(
        Run::from(cdr_ingest(&reference_args).output().unwrap()).code,
        0
    );
    let data = |root: &Path| {
        tree(root)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("_state/"))
            .collect::<Vec<_>>()
    };
    assert!(data(&work.path().join("out")) == data(&reference));
}

/// Regression: without a terminal the last `backfill progress` line said all files
/// were done (recordings were not counted) and `mb_per_sec` was a string.
#[test]
fn backfill_progress_counts_recordings_and_its_numbers_are_numbers() {
    let work = tempfile::tempdir().unwrap();
    let from = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2024, 3, 2).unwrap();
    let drop = work.path().join("drop");
    let mut spec = DropSpec::new(45, from, to);
    spec.cdr_rows_per_day = 20;
    spec.recordings_per_day = Some(3);
    write_drop(&drop, &spec).unwrap();
    let config = local_config(
        &work.path().join("config.toml"),
        &drop,
        &work.path().join("out"),
    );
    let run = Run::from(
        cdr_ingest(&[
            "backfill",
            "--config",
            config.to_str().unwrap(),
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
        ])
        .output()
        .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let last: serde_json::Value = run
        .stderr
        .lines()
        .rfind(|l| l.contains("\"message\":\"backfill progress\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no progress line: {run:?}"));
    for (field, want) in [
        ("files_done", 4),
        ("files_total", 4),
        ("recordings_done", 6),
        ("recordings_total", 6),
        ("eta_secs", 0),
    ] {
        assert_eq!(last[field].as_u64(), Some(want), "{field}: {last}");
    }
    assert!(last["bytes"].as_u64().unwrap() > 0, "{last}");
    assert!(last["mb_per_sec"].is_number(), "{last}");
}

/// Regression: after a later pass (of another day), `status` said a day whose file
/// had failed was "overdue, not ingested yet" and no longer why; `--days 100000`
/// printed every day back to 1753.
#[test]
fn status_keeps_why_a_day_failed_and_takes_a_range_of_days() {
    let work = tempfile::tempdir().unwrap();
    let first = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let second = NaiveDate::from_ymd_opt(2024, 3, 2).unwrap();
    let drop = drop_of(work.path(), first, second, 20);
    let csv = drop.join("CDRs/2024-03-01.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    assert!(header.contains(",billsec,"), "{header}");
    let header = header.replace(",billsec,", ",bill_seconds,");
    std::fs::write(&csv, format!("{header}\n{rows}")).unwrap();
    let config = config(work.path(), &drop, "");
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| Run::from(cdr_ingest(args).output().unwrap());

    let failed = run(&["run", "--config", config, "--date", "2024-03-01"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let later = run(&["run", "--config", config, "--date", "2024-03-02"]);
    assert_eq!(later.code, 0, "{later:?}");

    let status = run(&[
        "status",
        "--config",
        config,
        "--json",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
    ]);
    assert_eq!(status.code, 1, "a failed day is reported: {status:?}");
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let rows = parsed["days"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "two days, two categories: {status:?}");
    let row = |day: &str, category: &str| {
        rows.iter()
            .find(|r| r["day"] == day && r["category"] == category)
            .unwrap_or_else(|| panic!("{day} {category}: {status:?}"))
    };
    assert_eq!(row("2024-03-01", "cdr")["state"], "failed", "{status:?}");
    let detail = row("2024-03-01", "cdr")["detail"].as_str().unwrap();
    assert!(detail.contains("billsec"), "{detail}");
    assert_eq!(row("2024-03-01", "queue")["state"], "ingested");
    assert_eq!(row("2024-03-02", "cdr")["state"], "ingested");

    // Once the file is fixed and in, the failure is forgotten.
    std::fs::write(&csv, &text).unwrap();
    let fixed = run(&["run", "--config", config, "--date", "2024-03-01"]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let status = run(&[
        "status",
        "--config",
        config,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-01",
    ]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains("failed"), "{status:?}");
    assert!(
        !work
            .path()
            .join("out/_state/attempts/cdr/2024-03-01.json")
            .exists()
    );

    for bad in [
        &["--days", "100000"][..],
        &["--days", "0"][..],
        &["--from", "1753-01-01", "--to", "2024-03-01"][..],
        &["--from", "2024-03-02", "--to", "2024-03-01"][..],
        &["--days", "3", "--from", "2024-03-01", "--to", "2024-03-02"][..],
    ] {
        let refused = run(&[&["status", "--config", config][..], bad].concat());
        assert_eq!(refused.code, 2, "{bad:?}: {refused:?}");
        assert!(refused.stdout.is_empty(), "{bad:?}: {refused:?}");
    }
}

/// Regression: a daemon stopped while it waited for its next pass exited 4, so every
/// normal stop (a rollout, a node drain) was recorded as a failure.
#[test]
fn a_daemon_stopped_while_waiting_exits_0() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let config = config(work.path(), &drop, "[schedule]\nlookback_days = 1\n");
    let mut child = cdr_ingest(&["daemon", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0
        && !line.contains("\"message\":\"waiting for the next pass\"")
    {
        line.clear();
    }
    assert!(line.contains("waiting for the next pass"), "{line}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr));
    let status = child.wait().unwrap();
    let log = drain.join().unwrap().unwrap();
    assert!(log.contains("stopping: no new files"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn the_quarantine_command_lists_what_was_set_aside_per_day() {
    let work = tempfile::tempdir().unwrap();
    let today = Utc::now().date_naive();
    let first = today - Days::new(2);
    let drop = work.path().join("drop");
    let mut spec = DropSpec::new(43, first, first);
    spec.cdr_rows_per_day = 100;
    spec.recordings_per_day = Some(0);
    spec.quirks = cdr_ingest::generate::Quirks::all();
    let manifest = write_drop(&drop, &spec).unwrap();
    let config = config(work.path(), &drop, "");
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--date",
        &first.to_string(),
    ];
    let run = Run::from(cdr_ingest(&args).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");

    let listed = Run::from(
        cdr_ingest(&[
            "quarantine",
            "--config",
            config.to_str().unwrap(),
            "--json",
            "--days",
            "3",
        ])
        .output()
        .unwrap(),
    );
    assert_eq!(listed.code, 0, "{listed:?}");
    let days: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let cdr = days
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "cdr")
        .unwrap();
    assert_eq!(cdr["day"], first.to_string());
    assert_eq!(cdr["rows"], manifest.days[0].cdr_bad_rows);
    assert!(cdr["entries"][0]["line"].as_u64().unwrap() > 1);
    let text = Run::from(
        cdr_ingest(&[
            "quarantine",
            "--config",
            config.to_str().unwrap(),
            "--days",
            "3",
        ])
        .output()
        .unwrap(),
    );
    assert!(
        text.stdout.contains(&format!(
            "{first} cdr: {} row(s) set aside",
            manifest.days[0].cdr_bad_rows
        )),
        "{text:?}"
    );
}

/// Regression: output piped into a reader that has gone (`| head`) made `println!`
/// panic; the report is cut short, the work is not.
#[test]
fn a_closed_stdout_does_not_stop_the_pass() {
    let work = tempfile::tempdir().unwrap();
    let first = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let last = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap();
    let source = drop_of(work.path(), first, last, 20);
    let config = config(work.path(), &source, "");
    let mut child = run_range(&config, "2024-03-01", "2024-03-05")
        .env("CDR_INGEST_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for day in 1..=5 {
        let ledger = work
            .path()
            .join(format!("out/_state/ledger/cdr/2024-03-0{day}.json"));
        assert!(ledger.exists(), "day {day}: {stderr}");
    }
}
