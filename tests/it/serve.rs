//! `cdr-ingest serve` as the provider meets it: the real binary on a loopback port,
//! posts in each format, the replies, the limits, the store failing and recovering,
//! and a seeded explorer that kills replicas with `kill -9` during 1,000 concurrent
//! posts and checks that every acknowledged record is in `push_cdr` exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use cdr_ingest::generate::push_client::Body;
use serde_json::{Map, Value, json};

use crate::util::read_parquet;

pub(crate) const TOKEN: &str = "t0ken-for-tests";

/// A running `serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    /// Its log lines so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `serve` on `config` and waits until it listens.
    pub(crate) fn start(config: &Path, crash_at: Option<&str>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
        command
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .env("CDR_PUSH_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(point) = crash_at {
            command.env("CDR_INGEST_CRASH_AT", point);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(sender) = found.as_ref()
                    && let Ok(event) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = event.get("address").and_then(Value::as_str)
                {
                    let _ = sender.send(address.to_string());
                    found = None;
                }
                if std::env::var_os("SERVE_TEST_LOG").is_some() {
                    eprintln!("serve: {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(30))
            .expect("serve starts listening");
        Server {
            child,
            base: format!("http://{address}"),
            log,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for it to exit; returns its exit code.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(dir: &Path, dest: &Path, serve: &str) -> PathBuf {
    config_with(dir, dest, "", serve)
}

/// A configuration on a `file://` destination with `[ingest]` and `[serve]` keys added.
fn config_with(dir: &Path, dest: &Path, ingest: &str, serve: &str) -> PathBuf {
    let file = dir.join("serve.toml");
    std::fs::write(
        &file,
        format!(
            "[destination]\nurl = \"file://{}\"\n[ingest]\nshutdown_grace_secs = 5\n{ingest}[serve]\nlisten = \"127.0.0.1:0\"\nflush_secs = 1\n{serve}",
            dest.display()
        ),
    )
    .unwrap();
    file
}

fn record(id: &str, kind: &str, time: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "caller": "0501234567", "target": "039876543", "time": time, "duration": 42,
        "ivruniqueid": id, "type": kind, "status": "ANSWER", "price": 125,
        "record": format!("https://rec.example/{id}.mp3"), "queueid": 0,
        "DepartmentName": "Sales & <Support>", "x_custom": "kept",
        "IVR": [
            {"layer_id": 7, "layer_name": "Main", "layer_number": 1, "Dtmf": "2", "dtmf_order": 1},
            {"layer_id": 8, "layer_name": "Sales", "layer_number": 2, "Dtmf": "0", "dtmf_order": 2}
        ]
    }) else {
        unreachable!()
    };
    map
}

/// Posts `body` as `content_type` to `url`; the status, content type and reply.
async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: String,
) -> Option<(u16, String, String)> {
    let reply = client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .ok()?;
    let status = reply.status().as_u16();
    let kind = reply
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some((status, kind, reply.text().await.ok()?))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every (ivruniqueid, type) in the day files of `dataset`, with how often it appears.
fn stored_keys(dest: &Path, dataset: &str) -> BTreeMap<(String, String), usize> {
    let mut keys = BTreeMap::new();
    for file in files_under(&dest.join(dataset)) {
        if file.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        for batch in read_parquet(&file) {
            let ids = batch.column(0).as_string::<i32>();
            let kinds = batch.column(1).as_string::<i32>();
            for (id, kind) in ids.iter().zip(kinds.iter()) {
                *keys
                    .entry((id.unwrap().to_string(), kind.unwrap().to_string()))
                    .or_default() += 1;
            }
        }
    }
    keys
}

/// Waits until the inbox is empty (every stored record compacted), or says what is
/// left there. A put killed half-way on a local disk leaves its temporary file
/// (`<name>#<n>`), which the store never lists: that is not a record.
fn compacted_within(dest: &Path, limit: Duration) -> Result<(), Vec<PathBuf>> {
    let deadline = Instant::now() + limit;
    let inbox = dest.join("_state/push/inbox");
    loop {
        let left: Vec<PathBuf> = files_under(&inbox)
            .into_iter()
            .filter(|f| !f.to_string_lossy().contains('#'))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_compaction(dest: &Path) {
    if let Err(left) = compacted_within(dest, Duration::from_secs(60)) {
        panic!("the inbox was not compacted: {left:?}");
    }
}

fn url(server: &Server) -> String {
    format!("{}/push/{TOKEN}", server.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_is_answered_in_kind_stored_once_and_compacted_typed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let server = Server::start(&config(dir.path(), &dest, ""), None);
    let client = reqwest::Client::new();
    let time = 1_709_287_200; // 2024-03-01 10:00:00 UTC
    let cases = [
        (
            Body::Json,
            "application/json",
            "{\"err\":0,\"errdesc\":\"OK\"}",
        ),
        (
            Body::XmlRpc,
            "text/xml",
            "<name>err</name><value><int>0</int></value>",
        ),
        (
            Body::Form,
            "application/x-www-form-urlencoded",
            "err=0&errdesc=OK",
        ),
    ];
    for (n, (body, reply_type, reply)) in cases.iter().enumerate() {
        let text = body.encode(&record(&format!("1709287200.{n}"), "Incoming Call", time));
        for _ in 0..2 {
            let (status, kind, answer) =
                post(&client, &url(&server), body.content_type(), text.clone())
                    .await
                    .unwrap();
            assert_eq!(status, 200, "{answer}");
            assert!(kind.starts_with(reply_type), "{kind}");
            assert!(answer.contains(reply), "{answer}");
        }
    }
    // The two legs of a click-to-call share the id: two records.
    for leg in ["Click2Call leg1", "Click2Call leg2"] {
        let text = Body::Json.encode(&record("1709287200.9", leg, time + 5));
        let (status, ..) = post(&client, &url(&server), "application/json", text)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    wait_for_compaction(&dest);
    let keys = stored_keys(&dest, "push_cdr");
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
    // A resend after compaction is acknowledged and still stored once.
    let text = Body::Form.encode(&record("1709287200.2", "Incoming Call", time));
    let (status, ..) = post(&client, &url(&server), Body::Form.content_type(), text)
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_for_compaction(&dest);
    assert_eq!(stored_keys(&dest, "push_cdr"), keys);

    let day = dest.join("push_cdr/date=2024-03-01");
    let files = files_under(&day);
    assert_eq!(files.len(), 1, "one generation is left: {files:?}");
    let batches = read_parquet(&files[0]);
    let batch = &batches[0];
    let schema = batch.schema();
    let column = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
    let times = column("time");
    assert_eq!(
        times.as_primitive::<TimestampMicrosecondType>().value(0),
        time * 1_000_000
    );
    let price = column("price");
    let price = price.as_primitive::<Decimal128Type>();
    assert_eq!((price.value(0), price.scale()), (125, 2), "1.25 shekels");
    assert_eq!(
        column("price_agorot").as_primitive::<Int64Type>().value(0),
        125
    );
    let names = column("DepartmentName");
    assert_eq!(names.as_string::<i32>().value(0), "Sales & <Support>");
    assert_eq!(
        column("extra").as_string::<i32>().value(0),
        r#"{"x_custom":"kept"}"#
    );
    assert!(
        column("record")
            .as_string::<i32>()
            .value(0)
            .starts_with("https://rec.example/")
    );
    let layers = stored_keys(&dest, "push_cdr_ivr");
    assert_eq!(layers.len(), 5);
    assert!(
        layers.values().all(|n| *n == 2),
        "two layers per record: {layers:?}"
    );
}

/// `(call_id, outcome, outcome_detail, direction, queue_id)` of each row of a day's
/// `calls`, once the object has `rows` rows (the flush rebuilds it after compacting).
fn calls_of_day(dest: &Path, day: &str, rows: usize) -> Vec<[Option<String>; 5]> {
    let object = dest.join(format!("calls/date={day}/calls.parquet"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found: Vec<[Option<String>; 5]> = if object.exists() {
            read_parquet(&object)
                .iter()
                .flat_map(|batch| {
                    let text = |name: &str, row: usize| {
                        let column = batch.column_by_name(name).unwrap().as_string::<i32>();
                        (!arrow_array::Array::is_null(column, row))
                            .then(|| column.value(row).to_string())
                    };
                    (0..batch.num_rows())
                        .map(|row| {
                            [
                                "call_id",
                                "outcome",
                                "outcome_detail",
                                "direction",
                                "queue_id",
                            ]
                            .map(|name| text(name, row))
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        } else {
            Vec::new()
        };
        if found.len() == rows || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Regression (issue 21): pushed records had no `calls` rows, and serve runs no pass
/// to rebuild them. Each flush now rebuilds the calls of the days it compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_records_become_calls_of_their_day_as_they_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let mut server = Server::start(&config(dir.path(), &dest, ""), None);
    let client = reqwest::Client::new();
    let time = 1_709_287_200; // 2024-03-01 10:00:00 UTC
    let mut abandoned = record("1709287200.3", "Queue", time + 20);
    abandoned.insert("status".into(), json!("ABANDONE"));
    abandoned.insert("queueid".into(), json!("7"));
    abandoned.insert("queuename".into(), json!("Support"));
    let mut unknown = record("1709287200.4", "Incoming Call", time + 30);
    unknown.insert("status".into(), json!("ZAPPED"));
    let records = [
        record("1709287200.1", "Incoming Call", time),
        record("1709287200.2", "Click2Call leg1", time + 10),
        record("1709287200.2", "Click2Call leg2", time + 10),
        abandoned,
        unknown,
    ];
    for (n, one) in records.iter().enumerate() {
        // The first three in one flush, the others in a later one.
        if n == 3 {
            wait_for_compaction(&dest);
            assert_eq!(calls_of_day(&dest, "2024-03-01", 2).len(), 2);
        }
        let (status, ..) = post(
            &client,
            &url(&server),
            "application/json",
            Body::Json.encode(one),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    wait_for_compaction(&dest);
    let some = |text: &str| Some(text.to_string());
    let mut calls = calls_of_day(&dest, "2024-03-01", 4);
    calls.sort();
    assert_eq!(
        calls,
        vec![
            [
                some("1709287200.1"),
                some("answered"),
                some("ANSWER"),
                some("inbound"),
                None
            ],
            [
                some("1709287200.2"),
                some("answered"),
                some("ANSWER"),
                some("outbound"),
                None
            ],
            [
                some("1709287200.3"),
                some("abandoned"),
                some("ABANDONE"),
                some("inbound"),
                some("7")
            ],
            [
                some("1709287200.4"),
                some("other"),
                some("ZAPPED"),
                some("inbound"),
                None
            ],
        ],
        "the two legs of a click-to-call are one call"
    );
    assert!(
        files_under(&dest.join("_state/calls/dirty")).is_empty(),
        "every mark settled"
    );
    assert_eq!(server.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_oversized_and_malformed_bodies_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let server = Server::start(&config(dir.path(), &dest, "max_body_bytes = 2048\n"), None);
    let client = reqwest::Client::new();
    let body = Body::Json.encode(&record("1.1", "Queue", 1_709_287_200));
    let wrong = format!("{}/push/not-{TOKEN}", server.base);
    assert_eq!(
        post(&client, &wrong, "application/json", body.clone())
            .await
            .unwrap()
            .0,
        404
    );
    let header = format!("{}/push", server.base);
    assert_eq!(
        post(&client, &header, "application/json", body.clone())
            .await
            .unwrap()
            .0,
        401
    );
    let answer = client
        .post(&header)
        .header("x-push-token", "nope")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let answer = client
        .post(&header)
        .header("x-push-token", TOKEN)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "the header is a way in too");

    let big = format!(
        "{{\"ivruniqueid\":\"2\",\"type\":\"Queue\",\"time\":1,\"x\":\"{}\"}}",
        "a".repeat(4096)
    );
    let (status, _, answer) = post(&client, &url(&server), "application/json", big)
        .await
        .unwrap();
    assert_eq!(status, 413, "{answer}");
    // Without a length up front: found too large while it streams (and read to its end,
    // so the sender sees the reply). Regression: the connection was cut at the limit, and
    // the sender, still writing, got a broken pipe instead of the 413.
    let chunks = futures::stream::iter(
        (0..16).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 256]))),
    );
    let answer = client
        .post(url(&server))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    // Those connections were closed by the server without reading the rest: a new client.
    let client = reqwest::Client::new();

    for (content_type, body, reply) in [
        ("application/json", "{\"ivruniqueid\":", "\"err\":1"),
        (
            "text/xml",
            "<methodCall><params><param><value><int>1</int></value></param></params></methodCall>",
            "<int>1</int>",
        ),
        (
            "application/x-www-form-urlencoded",
            "caller=1&time=5",
            "err=1",
        ),
    ] {
        let (status, _, answer) = post(&client, &url(&server), content_type, body.into())
            .await
            .unwrap();
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(reply), "{answer}");
    }
    wait_for_compaction(&dest);
    let quarantined = files_under(&dest.join("_quarantine/push_cdr"));
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    let kept = std::fs::read_to_string(&quarantined[0]).unwrap();
    assert!(kept.contains("\"reason\""), "{kept}");
    assert_eq!(
        stored_keys(&dest, "push_cdr").len(),
        1,
        "only the record with the header token"
    );
    // The token is never logged; nothing under the destination holds it either.
    for line in server.log.lock().unwrap().iter() {
        assert!(!line.contains(TOKEN), "{line}");
    }
    for file in files_under(&dest) {
        // A lease the server still renews or releases may go between listing and reading
        // (regression: the compaction lease's release raced this read).
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_gets_err_2_then_the_resend_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    // A file where the inbox folder should be: every put into it fails.
    std::fs::create_dir_all(dest.join("_state/push")).unwrap();
    std::fs::write(dest.join("_state/push/inbox"), b"in the way").unwrap();
    let mut server = Server::start(&config(dir.path(), &dest, ""), None);
    let client = reqwest::Client::new();
    for body in [Body::Json, Body::XmlRpc, Body::Form] {
        let text = body.encode(&record("1709287200.5", "Queue", 1_709_287_200));
        let (status, _, answer) = post(&client, &url(&server), body.content_type(), text)
            .await
            .unwrap();
        assert_eq!(status, 503, "{answer}");
        assert!(
            answer.contains("\"err\":2")
                || answer.contains("<int>2</int>")
                || answer.starts_with("err=2"),
            "{answer}"
        );
    }
    std::fs::remove_file(dest.join("_state/push/inbox")).unwrap();
    let text = Body::Json.encode(&record("1709287200.5", "Queue", 1_709_287_200));
    let (status, _, answer) = post(&client, &url(&server), "application/json", text)
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    wait_for_compaction(&dest);
    assert_eq!(stored_keys(&dest, "push_cdr").len(), 1);
    let lines = [
        "cdr_ingest_push_requests_total{format=\"json\",outcome=\"store_failed\"} 1",
        "cdr_ingest_push_requests_total{format=\"json\",outcome=\"stored\"} 1",
        "cdr_ingest_push_records_compacted_total 1",
    ];
    // Regression: the flush counts its records when it ends, after the inbox is
    // emptied (and the day's calls rebuilt), so the count may come a moment later.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let missing: Vec<&str> = lines.into_iter().filter(|l| !metrics.contains(l)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} missing from:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.stop(), Some(0), "a stop on SIGTERM is a normal end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ready_only_while_the_destination_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let server = Server::start(&config(dir.path(), &dest, ""), None);
    let reply = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    // An S3 endpoint where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.path().join("s3.toml");
    std::fs::write(
        &file,
        format!(
            "[destination]\nurl = \"s3://bucket/p\"\n[destination.options]\nendpoint = \"http://127.0.0.1:{closed}\"\nallow_http = \"true\"\nregion = \"us-east-1\"\naccess_key_id = \"x\"\nsecret_access_key = \"y\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let down = Server::start(&file, None);
    let reply = reqwest::get(format!("{}/healthz", down.base))
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 503);
    assert!(reply.text().await.unwrap().starts_with("unhealthy"));
}

/// The explorer: per seed, replicas on one destination, 1,000 records (some posted
/// twice, some to both replicas at once) posted 64 at a time; one replica is killed
/// with `kill -9` at a seeded moment (after a seeded number of replies, or inside a
/// compaction at a seeded crash point), then restarted; in the end every record that
/// got err 0 is in `push_cdr` exactly once, and nothing is there twice.
/// `SERVE_SEEDS=N` runs more seeds (default 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_1000_concurrent_posts_loses_no_acknowledged_record() {
    let seeds: u64 = std::env::var("SERVE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for seed in 0..seeds {
        explore(seed).await;
    }
}

const CRASH_POINTS: [&str; 3] = [
    "push-ivr-written",
    "push-committed",
    "push-before-inbox-removed",
];

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

async fn explore(seed: u64) {
    let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let file = config(dir.path(), &dest, "");
    let crash_at = (rng.below(2) == 0).then(|| {
        format!(
            "{}:{}",
            CRASH_POINTS[rng.below(3) as usize],
            1 + rng.below(3)
        )
    });
    let victim = Server::start(&file, crash_at.as_deref());
    let other = Server::start(&file, None);
    let kill_after = rng.below(1000) as usize;
    let victim_url = url(&victim);
    let other_url = url(&other);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let records: Vec<(usize, Map<String, Value>)> = (0..1000usize)
        .map(|i| {
            // Three call dates; the last two of every ten are the legs of one call.
            let (id, kind) = match i % 10 {
                8 => (format!("1709{i:06}.1"), "Click2Call leg1"),
                9 => (format!("1709{:06}.1", i - 1), "Click2Call leg2"),
                _ => (format!("1709{i:06}.1"), "Incoming Call"),
            };
            let time = 1_709_251_200 + (i as i64 % 3) * 86_400 + i as i64;
            (i, record(&id, kind, time))
        })
        .collect();
    let plan: Vec<(usize, u64, bool)> = records
        .iter()
        .map(|(i, _)| (*i, rng.below(3), rng.below(5) == 0))
        .collect();
    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    let replies = std::sync::atomic::AtomicUsize::new(0);
    let victim = std::sync::Mutex::new(victim);
    use futures::StreamExt as _;
    futures::stream::iter(plan)
        .for_each_concurrent(64, |(i, target, twice)| {
            let record = &records[i].1;
            let key = (
                record["ivruniqueid"].as_str().unwrap().to_string(),
                record["type"].as_str().unwrap().to_string(),
            );
            let body = [Body::Json, Body::XmlRpc, Body::Form][i % 3];
            let text = body.encode(record);
            let urls: Vec<&str> = match target {
                0 => vec![&victim_url],
                1 => vec![&other_url],
                _ => vec![&victim_url, &other_url],
            };
            let (client, acknowledged, replies, victim) =
                (&client, &acknowledged, &replies, &victim);
            async move {
                let sends = if twice { 2 } else { 1 };
                for _ in 0..sends {
                    let posts = urls
                        .iter()
                        .map(|u| post(client, u, body.content_type(), text.clone()));
                    for reply in futures::future::join_all(posts).await {
                        if let Some((200, _, answer)) = &reply
                            && (answer.contains("\"err\":0")
                                || answer.starts_with("err=0")
                                || answer.contains("<int>0</int>"))
                        {
                            acknowledged.lock().unwrap().insert(key.clone());
                        }
                        if replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == kill_after {
                            victim.lock().unwrap().kill();
                        }
                    }
                }
            }
        })
        .await;
    victim.lock().unwrap().kill();
    // Restarted without a crash point, the replicas finish what was left.
    let restarted = Server::start(&file, None);
    if let Err(left) = compacted_within(&dest, Duration::from_secs(60)) {
        panic!("seed {seed} ({crash_at:?}, kill after {kill_after}): not compacted: {left:?}");
    }
    // A compaction in flight when the inbox emptied: wait for it to settle (its lease).
    let lease = dest.join("_state/leases/push_cdr/compaction.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while lease.exists() {
        assert!(Instant::now() < deadline, "seed {seed}: the lease stays");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(other);
    drop(restarted);
    let stored = stored_keys(&dest, "push_cdr");
    let acknowledged = acknowledged.into_inner().unwrap();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "seed {seed} ({crash_at:?}, kill after {kill_after}): stored twice: {twice:?}"
    );
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|k| !stored.contains_key(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "seed {seed} ({crash_at:?}, kill after {kill_after}): acknowledged and lost: {lost:?}"
    );
    assert!(
        acknowledged.len() > 100,
        "seed {seed}: only {} acknowledged",
        acknowledged.len()
    );
    let layers = stored_keys(&dest, "push_cdr_ivr");
    let extra: Vec<_> = layers
        .iter()
        .filter(|(k, n)| **n != 2 || !stored.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "seed {seed}: IVR layers not two per stored record: {extra:?}"
    );
}

/// Runs a command of the binary on `config`.
fn command(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .output()
        .unwrap()
}

/// A configuration for `serve` alone has no `[source]`: it is valid, and the commands
/// that read a source say what is missing instead of failing on a connection.
#[test]
fn a_configuration_for_serve_alone_needs_no_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &dir.path().join("dest"), "");
    let valid = command(&file, &["validate"]);
    assert_eq!(valid.status.code(), Some(0), "{valid:?}");
    for args in [
        &["run"][..],
        &["validate", "--connect"],
        &["backfill", "--from", "2024-03-01", "--to", "2024-03-01"],
    ] {
        let refused = command(&file, args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("has [serve] and no [source]"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_retention_and_purge_know_the_pushed_records() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let file = config_with(dir.path(), &dest, "categories = [\"push_cdr\"]\n", "");
    let mut server = Server::start(&file, None);
    let client = reqwest::Client::new();
    let today = chrono::Utc::now().timestamp();
    for (id, time) in [
        ("a.1", 1_709_287_200),
        ("a.2", 1_709_290_000),
        ("b.1", 1_709_373_600),
        ("c.1", today),
    ] {
        let text = Body::Json.encode(&record(id, "Incoming Call", time));
        assert_eq!(
            post(&client, &url(&server), "application/json", text)
                .await
                .unwrap()
                .0,
            200
        );
    }
    wait_for_compaction(&dest);
    assert_eq!(server.stop(), Some(0));

    let status = command(
        &file,
        &["status", "--from", "2024-03-01", "--to", "2024-03-03"],
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("2024-03-01  push_cdr    ingested           2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2024-03-02  push_cdr    ingested           1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2024-03-03  push_cdr    not_due"),
        "{stdout}"
    );
    assert!(
        stdout.contains("push_cdr: the last record was received at")
            && stdout.contains("every record received is compacted"),
        "{stdout}"
    );

    // Retention: both 2024 days have aged out of a 30-day limit; today stays.
    let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args(["retention", "--config"])
        .arg(&file)
        .env("CDR_INGEST_RETENTION_PUSH_CDR", "30")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let keys = stored_keys(&dest, "push_cdr");
    assert_eq!(
        keys.keys().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        ["c.1"]
    );
    assert_eq!(stored_keys(&dest, "push_cdr_ivr").len(), 1);

    // Records older than the limit that arrive later are dropped at compaction.
    let file_30 = dir.path().join("serve-30.toml");
    std::fs::write(
        &file_30,
        std::fs::read_to_string(&file).unwrap() + "[retention]\npush_cdr = 30\n",
    )
    .unwrap();
    let server = Server::start(&file_30, None);
    let text = Body::Form.encode(&record("old.1", "Queue", 1_709_287_200));
    assert_eq!(
        post(&client, &url(&server), Body::Form.content_type(), text)
            .await
            .unwrap()
            .0,
        200
    );
    wait_for_compaction(&dest);
    assert!(!stored_keys(&dest, "push_cdr").contains_key(&("old.1".into(), "Queue".into())));
    drop(server);

    let purge = command(
        &file,
        &["purge", "--category", "push_cdr", "--confirm", "YES"],
    );
    assert_eq!(purge.status.code(), Some(0), "{purge:?}");
    assert!(stored_keys(&dest, "push_cdr").is_empty());
    assert!(stored_keys(&dest, "push_cdr_ivr").is_empty());
}

fn s3_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// Against moto: two replicas on one bucket prefix get every record at once (and some
/// twice); the create-only puts store each once, and the compaction leaves one row per
/// key. The moto credentials go in the options, as a deployment's would come from the
/// environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_s3_store_each_record_once() {
    use futures::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("serve-{}", std::process::id());
    let file = dir.path().join("s3.toml");
    std::fs::write(
        &file,
        format!(
            "[destination]\nurl = \"s3://{}/{prefix}\"\n[destination.options]\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n[serve]\nlisten = \"127.0.0.1:0\"\nflush_secs = 1\n",
            s3_env("CDR_TEST_S3_BUCKET"),
            s3_env("CDR_TEST_S3_ENDPOINT"),
            s3_env("CDR_TEST_S3_REGION"),
            s3_env("CDR_TEST_S3_ACCESS_KEY_ID"),
            s3_env("CDR_TEST_S3_SECRET_ACCESS_KEY"),
        ),
    )
    .unwrap();
    let a = Server::start(&file, None);
    let b = Server::start(&file, None);
    let client = reqwest::Client::new();
    let (url_a, url_b) = (url(&a), url(&b));
    let records: Vec<_> = (0..40)
        .map(|i| record(&format!("1709{i:06}.3"), "Queue", 1_709_287_200 + i))
        .collect();
    for (i, r) in records.iter().enumerate() {
        let body = [Body::Json, Body::XmlRpc, Body::Form][i % 3];
        let text = body.encode(r);
        let sends = if i % 4 == 0 { 2 } else { 1 };
        for _ in 0..sends {
            let (x, y) = tokio::join!(
                post(&client, &url_a, body.content_type(), text.clone()),
                post(&client, &url_b, body.content_type(), text.clone())
            );
            assert_eq!(x.unwrap().0, 200);
            assert_eq!(y.unwrap().0, 200);
        }
    }
    let bucket = crate::s3::bucket();
    let inbox = object_store::path::Path::from(format!("{prefix}/_state/push/inbox"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<_> = bucket.list(Some(&inbox)).try_collect().await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted: {} left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b));
    let day = object_store::path::Path::from(format!("{prefix}/push_cdr/date=2024-03-01"));
    let files: Vec<_> = bucket.list(Some(&day)).try_collect().await.unwrap();
    assert_eq!(files.len(), 1, "one generation: {files:?}");
    let bytes = bucket
        .get(&files[0].location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut ids = BTreeMap::new();
    for batch in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
    {
        for id in batch.unwrap().column(0).as_string::<i32>().iter() {
            *ids.entry(id.unwrap().to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(ids.len(), 40);
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
}

/// `generate --push-to` replays a generated day as a provider would (three formats,
/// resends, both legs of click-to-calls, malformed bodies): everything it was told is
/// stored is in `push_cdr` once, with the IVR layers the generator wrote.
#[test]
fn the_generators_push_client_replays_days_into_serve() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let server = Server::start(&config(dir.path(), &dest, ""), None);
    let manifest = dir.path().join("manifest.json");
    let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args(["generate", "--from", "2024-03-01", "--to", "2024-03-02"])
        .args([
            "--rows-per-day",
            "150",
            "--recordings-per-day",
            "0",
            "--out",
        ])
        .arg(dir.path().join("drop"))
        .arg("--manifest")
        .arg(&manifest)
        .args(["--push-to", &server.base])
        .env("CDR_PUSH_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(" 0 given up"), "{stdout}");
    wait_for_compaction(&dest);
    let manifest = crate::util::json(&manifest);
    let days = manifest["days"].as_array().unwrap();
    let sum = |field: &str| days.iter().map(|d| d[field].as_u64().unwrap()).sum::<u64>();
    let stored = stored_keys(&dest, "push_cdr");
    assert_eq!(stored.len() as u64, sum("push_records"));
    assert!(stored.values().all(|n| *n == 1));
    let legs = stored
        .keys()
        .filter(|(_, kind)| kind.starts_with("Click2Call"))
        .count();
    assert!(
        legs >= 2 && legs % 2 == 0,
        "both legs of each click-to-call: {legs}"
    );
    let layers: usize = stored_keys(&dest, "push_cdr_ivr").values().sum();
    assert_eq!(layers as u64, sum("push_ivr_layers"));
    let bad = files_under(&dest.join("_quarantine/push_cdr")).len();
    assert!(bad >= 2, "the malformed bodies are kept: {bad}");
}

/// A CA and a `localhost` certificate signed by it: (ca, cert, key) PEM files.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "serve test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, cert.pem()).unwrap();
    std::fs::write(&files.2, key.serialize_pem()).unwrap();
    files
}

/// `serve` over HTTPS, with `serve.fetch_recordings`: a recording is copied with its
/// index row; one whose server fails at first is copied at a later flush; one that is
/// not https:// stays pending and is counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_recordings_are_fetched_and_failures_tried_again() {
    use axum::routing::get;
    use std::sync::atomic::{AtomicU32, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let (ca, cert, key) = certificates(dir.path());
    // The provider's recording server, over HTTPS with the same CA.
    let failures = std::sync::Arc::new(AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&failures);
    let routes = axum::Router::new()
        .route("/rec/a.mp3", get(|| async { b"ID3 recording a".to_vec() }))
        .route(
            "/rec/flaky.mp3",
            get(move || {
                let seen = std::sync::Arc::clone(&seen);
                async move {
                    // The first four requests fail: one flush's three tries, and one more.
                    if seen.fetch_add(1, Ordering::SeqCst) < 4 {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Vec::new())
                    } else {
                        (axum::http::StatusCode::OK, b"ID3 recording b".to_vec())
                    }
                }
            }),
        );
    let listener = cdr_ingest::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = cdr_ingest::http::tls_config(&cert, &key).unwrap();
    tokio::spawn(cdr_ingest::http::serve_with(
        listener,
        routes,
        cdr_ingest::http::Limits::default(),
        Some(tls),
        std::future::pending(),
    ));
    let file = config(
        dir.path(),
        &dest,
        &format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\nfetch_recordings = true\nrecording_ca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            ca.display()
        ),
    );
    let server = Server::start(&file, None);
    let base = server.base.replace("http://127.0.0.1", "https://localhost");
    let client = reqwest::Client::builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let time = 1_709_287_200;
    for (id, url) in [
        ("r.1", format!("https://localhost:{port}/rec/a.mp3")),
        ("r.2", format!("https://localhost:{port}/rec/flaky.mp3")),
        ("r.3", format!("http://localhost:{port}/rec/a.mp3")),
    ] {
        let mut r = record(id, "Incoming Call", time);
        r.insert("record".into(), Value::String(url));
        let (status, _, answer) = post(
            &client,
            &format!("{base}/push/{TOKEN}"),
            "application/json",
            Body::Json.encode(&r),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    // Plain HTTP is not served on the TLS port.
    assert!(
        post(
            &reqwest::Client::new(),
            &url(&server),
            "application/json",
            "{}".into()
        )
        .await
        .is_none()
    );
    wait_for_compaction(&dest);
    let copies = dest.join("recordings/2024/03/01");
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_under(&copies).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "not fetched: {:?}",
            files_under(&dest)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let copied = files_under(&copies);
    assert_eq!(
        std::fs::read(copies.join("r.1__Incoming_20Call.mp3")).unwrap(),
        b"ID3 recording a"
    );
    assert_eq!(
        std::fs::read(copies.join("r.2__Incoming_20Call.mp3")).unwrap(),
        b"ID3 recording b",
        "{copied:?}"
    );
    assert!(failures.load(Ordering::SeqCst) >= 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_keys(&dest, "push_recording_index").len() < 2 {
        assert!(Instant::now() < deadline, "no index rows");
        std::thread::sleep(Duration::from_millis(100));
    }
    let index = stored_keys(&dest, "push_recording_index");
    assert_eq!(
        index.keys().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        ["r.1", "r.2"]
    );
    // A job is deleted after its index row is written: poll for it too (regression: the
    // test listed the jobs in between and found the copied one still there).
    let deadline = Instant::now() + Duration::from_secs(30);
    let jobs = loop {
        let jobs = files_under(&dest.join("_state/push/fetch"));
        if jobs.len() <= 1 || Instant::now() > deadline {
            break jobs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(jobs.len(), 1, "the http:// one stays: {jobs:?}");
    let job = std::fs::read_to_string(&jobs[0]).unwrap();
    assert!(job.contains("is not an https:// URL"), "{job}");
    // The flush that copied the last one adds it to the metrics as it ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("cdr_ingest_push_recordings_copied_total 2")
            || Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metrics.contains("cdr_ingest_push_recordings_copied_total 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("cdr_ingest_push_recording_fetch_failures_total 0\n"),
        "{metrics}"
    );
}
