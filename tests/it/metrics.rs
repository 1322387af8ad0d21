//! Metrics: the daemon's `/metrics` and `/healthz` after a pass over a generated drop,
//! a `run`'s textfile and its push to the real Pushgateway `scripts/test.sh` starts,
//! and `deploy/prometheus-rules.yaml` checked and unit-tested by promtool.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cdr_ingest::generate::{DropManifest, DropSpec, write_drop};
use chrono::{Days, Utc};

use crate::util::Run;

/// A two-day drop (the day before yesterday and yesterday) with every feed, and a
/// config reading it into `work/out` with `metrics`'s keys.
fn setup(work: &Path, metrics: &str) -> (PathBuf, DropManifest) {
    let today = Utc::now().date_naive();
    let drop = work.join("drop");
    let mut spec = DropSpec::new(25, today - Days::new(2), today - Days::new(1));
    spec.cdr_rows_per_day = 40;
    spec.recordings_per_day = Some(3);
    spec.recording_bytes = 1000..=1000;
    let manifest = write_drop(&drop, &spec).unwrap();
    let config = work.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\nrecordings_min_age_secs = 0\n[schedule]\nlookback_days = 2\n[metrics]\n{metrics}",
            drop.display(),
            work.join("out").display()
        ),
    )
    .unwrap();
    (config, manifest)
}

/// The samples a pass over [`setup`]'s drop must show, as lines of the text format,
/// with `labels` (the Pushgateway's) between `feed` and `outcome`, as it sorts them.
fn expected_samples(drop: &Path, manifest: &DropManifest, labels: &str) -> Vec<String> {
    let sum = |f: &dyn Fn(&cdr_ingest::generate::DayManifest) -> u64| -> u64 {
        manifest.days.iter().map(f).sum()
    };
    let size = |path: &str| std::fs::metadata(drop.join(path)).unwrap().len();
    let cdr_bytes = sum(&|d| size(&d.cdr_path));
    let queue_bytes = sum(&|d| size(d.queue_path.as_deref().unwrap()));
    let line = |name: &str, feed: &str, extra: &str, value: u64| {
        format!("{name}{{feed=\"{feed}\"{labels}{extra}}} {value}")
    };
    vec![
        line("cdr_ingest_files_total", "cdr", ",outcome=\"ingested\"", 2),
        line("cdr_ingest_files_total", "cdr", ",outcome=\"failed\"", 0),
        line(
            "cdr_ingest_files_total",
            "queue",
            ",outcome=\"ingested\"",
            2,
        ),
        line(
            "cdr_ingest_files_total",
            "recordings",
            ",outcome=\"ingested\"",
            6,
        ),
        line(
            "cdr_ingest_rows_total",
            "cdr",
            "",
            sum(&|d| d.cdr_rows as u64),
        ),
        line(
            "cdr_ingest_rows_total",
            "queue",
            "",
            sum(&|d| (d.queue_calls + d.queue_user_calls) as u64),
        ),
        line("cdr_ingest_quarantined_rows_total", "cdr", "", 0),
        line("cdr_ingest_bytes_total", "cdr", "", cdr_bytes),
        line("cdr_ingest_bytes_total", "queue", "", queue_bytes),
        line("cdr_ingest_bytes_total", "recordings", "", 6000),
        line("cdr_ingest_overdue_files", "cdr", "", 0),
    ]
}

/// `GET path` on `address`, with a deadline: the status and the body. HTTP/1.0, so the
/// body comes whole (never chunked) and the connection ends with it.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `promtool` from Debian's `prometheus` package, which `scripts/test.sh` installs.
fn promtool(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e}; run the tests through scripts/test.sh, which installs it")
        });
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    Run::from(child.wait_with_output().unwrap())
}

fn assert_has(text: &str, lines: &[String]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
}

#[test]
fn a_daemon_serves_its_metrics_and_health_after_a_pass() {
    let work = tempfile::tempdir().unwrap();
    let (config, manifest) = setup(work.path(), "listen = \"127.0.0.1:0\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args(["daemon", "--config", config.to_str().unwrap()])
        .env("CDR_INGEST_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, log) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut wait_for = |message: &str| -> serde_json::Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no {message:?} in the log within 60 s:\n{}",
                    seen.join("\n")
                )
            });
            seen.push(line.clone());
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == message {
                return event;
            }
        }
    };
    let serving = wait_for("serving GET /metrics, GET /healthz and the status page at GET /");
    let address = serving["address"].as_str().unwrap().to_string();
    assert_eq!(serving["healthy_within_secs"], 26 * 3600, "{serving}");
    // Before the first pass has ended too: a catch-up at start is not a failure.
    assert_eq!(get(&address, "/healthz").0, 200);
    wait_for("waiting for the next pass");

    let (status, health) = get(&address, "/healthz");
    assert_eq!(status, 200, "{health}");
    assert!(
        health.starts_with("ok: the last successful pass ended at "),
        "{health}"
    );
    assert!(health.contains("; the last pass ended ok at "), "{health}");
    let (status, text) = get(&address, "/metrics");
    assert_eq!(status, 200, "{text}");
    let drop = work.path().join("drop");
    assert_has(&text, &expected_samples(&drop, &manifest, ""));
    assert_has(
        &text,
        &[
            "cdr_ingest_passes_total{outcome=\"ok\"} 1".to_string(),
            "cdr_ingest_last_pass_success 1".to_string(),
        ],
    );
    let linted = promtool(&["check", "metrics"], Some(&text));
    assert_eq!(linted.code, 0, "promtool check metrics: {linted:?}");
    assert_eq!(get(&address, "/nothing").0, 404);
    // The status page, the same as `status --html` writes.
    let (status, page) = get(&address, "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("ingested"), "{page}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// The gateway's samples of one group, from its own `/metrics` (labels sorted).
fn pushed(gateway: &str, instance: &str) -> String {
    let address = gateway.trim_start_matches("http://");
    let (status, text) = get(address, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| l.contains(&format!("instance=\"{instance}\"")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_run_writes_the_textfile_and_pushes_to_the_pushgateway() {
    let gateway = std::env::var("CDR_TEST_PUSHGATEWAY_URL").expect(
        "CDR_TEST_PUSHGATEWAY_URL is not set: run the tests through scripts/test.sh, which starts the test servers",
    );
    let work = tempfile::tempdir().unwrap();
    let textfile = work.path().join("node-exporter/cdr-ingest.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    // The gateway is shared by every test run: this run's group is its own.
    let instance = format!("it-{}", std::process::id());
    let (config, manifest) = setup(
        work.path(),
        &format!(
            "pushgateway_url = \"{gateway}\"\npushgateway_instance = \"{instance}\"\ntextfile = \"{}\"\n",
            textfile.display()
        ),
    );
    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["run", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("could not"), "{run:?}");

    let drop = work.path().join("drop");
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert_has(&text, &expected_samples(&drop, &manifest, ""));
    assert!(
        text.contains("\ncdr_ingest_last_pass_success 1\n"),
        "{text}"
    );
    let linted = promtool(&["check", "metrics"], Some(&text));
    assert_eq!(linted.code, 0, "promtool check metrics: {linted:?}");

    // The Pushgateway adds the group's labels (sorted by name: feed, instance, job).
    let group = format!(",instance=\"{instance}\",job=\"cdr-ingest\"");
    let at_gateway = pushed(&gateway, &instance);
    assert_has(&at_gateway, &expected_samples(&drop, &manifest, &group));
    assert_has(
        &at_gateway,
        &[format!(
            "cdr_ingest_last_pass_success{{instance=\"{instance}\",job=\"cdr-ingest\"}} 1"
        )],
    );

    // A second run: nothing new, and the counters are that run's.
    let again = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["run", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(again.code, 0, "{again:?}");
    let at_gateway = pushed(&gateway, &instance);
    assert_has(
        &at_gateway,
        &[
            format!("cdr_ingest_files_total{{feed=\"cdr\"{group},outcome=\"ingested\"}} 0"),
            format!("cdr_ingest_files_total{{feed=\"cdr\"{group},outcome=\"unchanged\"}} 2"),
        ],
    );
}

#[test]
fn a_pushgateway_that_does_not_answer_is_a_warning_not_a_failed_pass() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let work = tempfile::tempdir().unwrap();
    let (config, _) = setup(
        work.path(),
        &format!("pushgateway_url = \"http://127.0.0.1:{port}\"\n"),
    );
    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("could not push the metrics to the Pushgateway"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("127.0.0.1:{port}/metrics/job/cdr-ingest")),
        "{run:?}"
    );
}

#[test]
fn a_daemon_that_cannot_listen_says_so_and_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (config, _) = setup(work.path(), &format!("listen = \"{address}\"\n"));
    let run = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["daemon", "--config", config.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("metrics.listen: cannot listen on {address}")),
        "{run:?}"
    );
    assert!(!work.path().join("out/_state").exists(), "nothing was done");
}

/// Every metric family a pass renders, by name.
fn rendered_names() -> std::collections::BTreeSet<String> {
    let categories: Vec<_> = cdr_ingest::feeds::FEEDS
        .iter()
        .map(|f| f.category)
        .collect();
    let mut metrics = cdr_ingest::metrics::Metrics::new(&categories);
    let now = Utc::now();
    metrics.record(
        &cdr_ingest::pipeline::PassReport::default(),
        cdr_ingest::state::runs::PassOutcome::Ok,
        now,
        now,
    );
    metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// The `cdr_ingest_*` names in `text`.
fn names_in(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("cdr_ingest_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests_and_use_metrics_that_exist() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let rules = deploy.join("prometheus-rules.yaml");
    let checked = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(
        checked.stdout.contains("SUCCESS: 3 rules found"),
        "{checked:?}"
    );
    let tests = deploy.join("prometheus-rules.test.yaml");
    let tested = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert_eq!(tested.code, 0, "{tested:?}");

    let rendered = rendered_names();
    let used = names_in(&std::fs::read_to_string(&rules).unwrap());
    let unknown: Vec<_> = used.difference(&rendered).collect();
    assert!(
        unknown.is_empty(),
        "the rules use metrics no pass renders: {unknown:?}"
    );
}

/// README's Monitoring section lists every metric, and no other.
#[test]
fn every_metric_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Monitoring")
        .expect("README has a Monitoring section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let table: String = section[..end]
        .lines()
        .filter(|l| l.starts_with("| `cdr_ingest_"))
        .map(|l| l.split('|').nth(1).unwrap())
        .collect();
    assert_eq!(names_in(&table), rendered_names());
}
