//! N identical workers on one destination (issue 22): three `cdr-ingest` processes at
//! once over the real FTPS server share the units through the leases and leave the
//! dataset a clean sequential run leaves, with no row twice; one of them killed
//! mid-way (at a seeded crash point) has its units taken over by the others once its
//! lease (10 s here) has expired. Each worker poses as its own machine (`HOSTNAME`), so
//! the takeover waits for the lease rather than seeing a dead process on this host.
//! `source.max_connections = 1` in one of them makes the three take turns to log in.
//! `CDR_TEST_WORKERS_SEED=N` picks the crash. With accounts, a worker takes first the
//! accounts no other worker is on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::util::{Case, Rng, Run, dataset, difference, read_parquet, tree};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-09";
/// How long the three workers may take together (a 10 s lease to wait out included).
const DEADLINE: Duration = Duration::from_secs(300);

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// Nine generated days (CDRs, queue zips, recordings) on the FTPS server.
fn drop_on_server(name: &str) -> Case {
    let case = Case::new(name);
    let mut spec = DropSpec::new(2201, day(1), day(9));
    spec.cdr_rows_per_day = 400;
    spec.recordings_per_day = Some(6);
    write_drop(&case.remote, &spec).unwrap();
    case
}

/// The case's config with its destination at `out`, a 10 s lease and `source_extra`
/// lines in `[source]`.
fn config_into(case: &Case, out: &Path, name: &str, source_extra: &str) -> PathBuf {
    let written = case.config_with(
        source_extra,
        "categories = [\"cdr\", \"queue\", \"recordings\"]\nrecordings_min_age_secs = 0\nlease_secs = 10",
    );
    let text = std::fs::read_to_string(&written).unwrap().replace(
        &case.out().display().to_string(),
        &out.display().to_string(),
    );
    let path = case.work.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Worker `n` of a backfill of the nine days with `config`.
fn worker(case: &Case, config: &Path, n: usize) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command
        .args(["backfill", "--config", config.to_str().unwrap()])
        .args(["--from", FROM, "--to", TO])
        .env("CDR_INGEST_SOURCE_PASSWORD", &case.server.password)
        .env("CDR_INGEST_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .env("HOSTNAME", format!("worker-{n}"))
        .env_remove("CDR_INGEST_CRASH_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for every child, polling until `DEADLINE`; what each printed and how it ended.
fn wait_all(children: Vec<Child>) -> Vec<Run> {
    let deadline = Instant::now() + DEADLINE;
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let mut runs: Vec<Option<Run>> = children.iter().map(|_| None).collect();
    while runs.iter().any(Option::is_none) {
        for (child, run) in children.iter_mut().zip(&mut runs) {
            if let Some(mut running) = child.take() {
                if running.try_wait().unwrap().is_some() {
                    *run = Some(Run::from(running.wait_with_output().unwrap()));
                } else if Instant::now() > deadline {
                    let _ = running.kill();
                    panic!(
                        "a worker did not finish within {DEADLINE:?}: {:?}",
                        Run::from(running.wait_with_output().unwrap())
                    );
                } else {
                    *child = Some(running);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    runs.into_iter().map(Option::unwrap).collect()
}

/// How many times each CDR id is in the output (every one must be once).
fn cdr_ids(out: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for (key, _) in tree(out)
        .into_iter()
        .filter(|(k, _)| k.starts_with("cdr/") && k.ends_with(".parquet"))
    {
        for batch in read_parquet(&out.join(&key)) {
            let column = batch.column_by_name("id").unwrap().as_string::<i32>();
            for row in 0..batch.num_rows() {
                *ids.entry(column.value(row).to_string()).or_default() += 1;
            }
        }
    }
    ids
}

fn assert_no_duplicates(out: &Path) {
    let ids = cdr_ids(out);
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(!ids.is_empty(), "no CDR rows at all");
    assert!(
        twice.is_empty(),
        "CDR ids written more than once: {twice:?}"
    );
}

/// A clean sequential run's dataset: what the workers together must leave.
fn reference(case: &Case) -> Vec<(String, Vec<u8>)> {
    let out = case.work.path().join("reference");
    let config = config_into(case, &out, "reference.toml", "");
    let run = Run::from(worker(case, &config, 9).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_no_duplicates(&out);
    dataset(&out)
}

#[test]
fn three_workers_at_once_ingest_each_unit_once() {
    let case = drop_on_server("workers-three");
    let want = reference(&case);
    let out = case.work.path().join("shared");
    // One login at a time over all three: they take turns, and never wait on each
    // other in a circle (a deadlock would run into the deadline).
    let config = config_into(&case, &out, "shared.toml", "max_connections = 1");
    let children = (0..3)
        .map(|n| worker(&case, &config, n).spawn().unwrap())
        .collect();
    let runs = wait_all(children);
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_no_duplicates(&out);
    let got = dataset(&out);
    assert!(got == want, "{}", difference(&got, &want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_at_once_on_s3_leave_what_one_leaves() {
    let case = drop_on_server("workers-s3");
    let want: Vec<_> = reference(&case)
        .into_iter()
        .filter(|(key, _)| !key.starts_with("_state/"))
        .collect();
    let prefix = "workers-s3";
    crate::s3::clear(prefix).await;
    let config = config_into(&case, &case.out(), "s3.toml", "");
    crate::s3::use_s3(&config, prefix);
    let children = (0..3)
        .map(|n| {
            let mut command = worker(&case, &config, n);
            crate::s3::with_credentials(&mut command).spawn().unwrap()
        })
        .collect();
    let runs = tokio::task::spawn_blocking(move || wait_all(children))
        .await
        .unwrap();
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    let got: Vec<_> = crate::s3::objects(prefix)
        .await
        .into_iter()
        .filter(|(key, _)| !key.starts_with("_state/"))
        .collect();
    assert!(got == want, "{}", difference(&got, &want));
}

#[test]
fn a_worker_killed_mid_way_has_its_units_taken_over_by_the_others() {
    let seed: u64 = std::env::var("CDR_TEST_WORKERS_SEED")
        .map_or(1, |s| s.parse().expect("CDR_TEST_WORKERS_SEED is a number"));
    let mut rng = Rng(seed);
    let points = ["data-written", "before-ledger", "ledger-written"];
    let point = points[rng.below(points.len() as u64) as usize];
    let nth = 1 + rng.below(2);
    let crash = format!("{point}:{nth}");
    println!("seed {seed}: worker 0 crashes at {crash}");

    let case = drop_on_server("workers-killed");
    let want = reference(&case);
    let out = case.work.path().join("shared");
    let config = config_into(&case, &out, "shared.toml", "");
    let children = (0..3)
        .map(|n| {
            let mut command = worker(&case, &config, n);
            if n == 0 {
                command.env("CDR_INGEST_CRASH_AT", &crash);
            }
            command.spawn().unwrap()
        })
        .collect();
    let runs = wait_all(children);
    assert!(
        runs[0].stderr.contains("CDR_INGEST_CRASH_AT: aborting"),
        "seed {seed}: worker 0 did not reach {crash}: {:?}",
        runs[0]
    );
    for run in &runs[1..] {
        assert_eq!(run.code, 0, "seed {seed}: {run:?}");
    }
    assert_no_duplicates(&out);
    let got = dataset(&out);
    assert!(
        got == want,
        "seed {seed} ({crash}):\n{}",
        difference(&got, &want)
    );
}

/// With accounts, a worker first takes those no other worker is on, so that N workers
/// spread over the accounts instead of crowding onto the first (issue 22's benchmark:
/// four workers on one account share its four logins and wait for each other's last
/// units, and were no faster than one). An account whose pass lease a live worker on
/// another machine holds is come back to at the end, and joined then: it is still
/// ingested, and the summary keeps the file's order.
#[test]
fn a_worker_takes_the_accounts_nobody_is_on_first() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut config = format!(
        "[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"cdr\"]\n",
        out.display()
    );
    for (seed, name) in [(1, "alpha"), (2, "beta")] {
        let drop = work.path().join(format!("drop-{name}"));
        let mut spec = DropSpec::new(seed, day(1), day(2));
        spec.cdr_rows_per_day = 20;
        spec.recordings_per_day = Some(0);
        spec.queue = false;
        spec.sessions_per_day = 0;
        write_drop(&drop, &spec).unwrap();
        config.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\n[accounts.source]\nurl = \"file://{}\"\n",
            drop.display()
        ));
    }
    let config_path = work.path().join("accounts.toml");
    std::fs::write(&config_path, config).unwrap();
    // Another worker is on alpha's pass (its lease, as it writes and renews it).
    let lease = out.join("account=alpha/_state/leases/pass.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(10);
    std::fs::write(
        &lease,
        serde_json::json!({
            "format_version": 1,
            "holder": "another-machine/pid-1/1",
            "expires_at": expires_at,
            "token": "t",
        })
        .to_string(),
    )
    .unwrap();

    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["backfill", "--config", config_path.to_str().unwrap()])
            .args(["--from", "2024-03-01", "--to", "2024-03-02"])
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .env("HOSTNAME", "this-machine")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let finished: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("account's pass finished"))
        .collect();
    assert_eq!(finished.len(), 2, "{run:?}");
    assert!(
        finished[0].contains("beta") && finished[1].contains("alpha"),
        "beta (nobody on it) first, then alpha: {finished:#?}"
    );
    assert!(
        run.stdout.contains("accounts: 2 ok, 0 failed, 0 stopped"),
        "{run:?}"
    );
    for name in ["alpha", "beta"] {
        let ids = cdr_ids(&out.join(format!("account={name}")));
        assert_eq!(ids.len(), 40, "{name}: {ids:?}");
    }
    // The other worker's lease is its own: not released by this one.
    assert!(lease.exists());
}
