//! The `sessions` feed end to end: session files found by what changed in a folder
//! tree (a local folder, OpenSSH SFTP, a moto bucket), the newest version of each
//! session winning across passes with its child rows, stale versions counted, files
//! taken once; and a seeded explorer of versions arriving in random orders across
//! passes with crashes in between, checked against a clean run of the newest versions.
//!
//! `CDR_TEST_SESSION_SEEDS=N` runs seeds 1..=N (default 3), `CDR_TEST_SESSION_SEED=S`
//! replays one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use object_store::ObjectStoreExt;

use crate::util::{Rng, Run, read_parquet, tree};

/// A session document: `participants` participants and one transfer per `transfers`.
fn document(id: i64, created: &str, updated: Option<&str>, participants: usize) -> String {
    let updated = updated.map_or("null".to_string(), |u| format!("\"{u}\""));
    let people: Vec<String> = (0..participants)
        .map(|n| format!(r#"{{"id": {n}, "type": "agent", "status": "finished"}}"#))
        .collect();
    format!(
        r#"{{"id": {id}, "lang": "en", "status": "finished", "created_at": "{created}", "updated_at": {updated}, "participants": [{}], "transfers": [], "x_later": {{"n": {participants}}}}}"#,
        people.join(", ")
    )
}

fn put(root: &Path, path: &str, text: &str, modified: SystemTime) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// A time in March 2024, `n` minutes after its start.
fn minute(n: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_200 + n * 60)
}

fn config(path: &Path, source: &str, out: &Path) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[source]\n{source}\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"sessions\"]\n",
            out.display()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

fn local(work: &Path, name: &str) -> PathBuf {
    config(
        &work.join(format!("{name}.toml")),
        &format!("url = \"file://{}\"", work.join("drop").display()),
        &work.join(name),
    )
}

fn run(config: &Path, crash_at: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command.args(["run", "--config", config.to_str().unwrap()]);
    match crash_at {
        Some(point) => command.env("CDR_INGEST_CRASH_AT", point),
        None => command.env_remove("CDR_INGEST_CRASH_AT"),
    };
    Run::from(command.output().unwrap())
}

/// Per session id: its partition, the file its row came from, and its participants.
type Sessions = BTreeMap<i64, (String, String, usize)>;

/// What the destination holds, checking one row per session in the whole dataset.
fn sessions(out: &Path) -> Sessions {
    let mut found: Sessions = BTreeMap::new();
    let mut participants: BTreeMap<i64, usize> = BTreeMap::new();
    for (key, _) in tree(out) {
        if !key.ends_with(".parquet") {
            continue;
        }
        let date = key.split('/').nth(1).unwrap_or_default().to_string();
        for batch in read_parquet(&out.join(&key)) {
            if key.starts_with("sessions/") {
                let ids = batch
                    .column_by_name("id")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let files = batch
                    .column_by_name("_source_file")
                    .unwrap()
                    .as_string::<i32>();
                for (id, file) in ids.iter().zip(files.iter()) {
                    let previous =
                        found.insert(id.unwrap(), (date.clone(), file.unwrap().to_string(), 0));
                    assert!(previous.is_none(), "session {id:?} twice ({key})");
                }
            } else if key.starts_with("session_participants/") {
                let ids = batch
                    .column_by_name("session_id")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                for id in ids.iter() {
                    *participants.entry(id.unwrap()).or_default() += 1;
                }
            }
        }
    }
    for (id, count) in participants {
        found
            .get_mut(&id)
            .unwrap_or_else(|| panic!("participants of session {id}, which is not in"))
            .2 = count;
    }
    found
}

#[test]
fn the_newest_version_of_each_session_wins_across_passes() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    put(
        &drop,
        "sessions/2024/03/01/1.json",
        &document(1, "2024-03-01T10:00:00Z", Some("2024-03-01T10:20:00Z"), 2),
        minute(30),
    );
    put(
        &drop,
        "sessions/2024/03/01/2.json",
        &document(
            2,
            "2024-03-01T23:59:00-01:00",
            Some("2024-03-02T01:20:00Z"),
            1,
        ),
        minute(30),
    );
    put(&drop, "sessions/notes.txt", "not a session", minute(30));
    put(
        &drop,
        "sessions/2024/03/01/broken.json",
        "{\"id\": ",
        minute(30),
    );
    let config = local(work.path(), "out");
    let first = run(&config, None);
    assert_eq!(first.code, 0, "a broken document is quarantined: {first:?}");
    assert!(
        first
            .stdout
            .contains("sessions: 3 new or changed file(s) taken"),
        "{first:?}"
    );
    let out = work.path().join("out");
    let got = sessions(&out);
    assert_eq!(
        got[&1],
        (
            "date=2024-03-01".into(),
            "sessions/2024/03/01/1.json".into(),
            2
        )
    );
    assert_eq!(
        got[&2].0, "date=2024-03-02",
        "created_at in UTC decides the partition"
    );

    // Days later: session 1 rewritten (one participant now), an old version of 2 turns
    // up in another folder, and nothing else changed.
    put(
        &drop,
        "sessions/2024/03/05/1-v2.json",
        &document(1, "2024-03-01T10:00:00Z", Some("2024-03-05T08:00:00Z"), 1),
        minute(60 * 24 * 4),
    );
    put(
        &drop,
        "sessions/old/2.json",
        &document(
            2,
            "2024-03-01T23:59:00-01:00",
            Some("2024-03-02T01:00:00Z"),
            3,
        ),
        minute(60 * 24 * 4),
    );
    let second = run(&config, None);
    assert!(
        second
            .stdout
            .contains("sessions: 2 new or changed file(s) taken (")
            && second
                .stdout
                .contains("1 stale version(s) ignored, 3 unchanged"),
        "{second:?}"
    );
    let got = sessions(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[&1],
        (
            "date=2024-03-01".into(),
            "sessions/2024/03/05/1-v2.json".into(),
            1
        )
    );
    assert_eq!(got[&2].1, "sessions/2024/03/01/2.json");
    assert_eq!(got[&2].2, 1);

    // Nothing changed: nothing is read, nothing is written.
    let before = tree(&out);
    let third = run(&config, None);
    assert!(
        third.stdout.contains("0 new or changed file(s) taken"),
        "{third:?}"
    );
    let after = tree(&out);
    let data = |t: &[(String, Vec<u8>)]| {
        t.iter()
            .filter(|(k, _)| !k.starts_with("_state/runs") && !k.starts_with("_state/leases"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(data(&before) == data(&after));

    let quarantine = std::process::Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args([
            "quarantine",
            "--config",
            config.to_str().unwrap(),
            "--days",
            "2000",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&quarantine.stdout);
    assert!(text.contains("broken.json"), "{text}");

    let cli = |args: &[&str]| {
        let mut all = vec![args[0], "--config", config.to_str().unwrap()];
        all.extend(&args[1..]);
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(all)
                .output()
                .unwrap(),
        )
    };
    // The other feeds' folders are not in this drop: validate says so, and lists
    // the sessions at any depth.
    let validated = cli(&["validate", "--connect"]);
    assert!(
        validated.stdout.contains("sessions/: 6 files"),
        "the folder is listed at any depth: {validated:?}"
    );
    let status = cli(&["status", "--from", "2024-03-01", "--to", "2024-03-02"]);
    assert!(status.stdout.contains("sessions"), "{status:?}");

    // A purge takes the data and the state: the next pass takes every file again.
    let purged = cli(&["purge", "--category", "sessions", "--confirm", "YES"]);
    assert_eq!(purged.code, 0, "{purged:?}");
    let left: Vec<String> = tree(&out)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.starts_with("session")
                || k.starts_with("_state/seen")
                || k.starts_with("_state/newest")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let again = run(&config, None);
    assert!(
        again.stdout.contains("5 new or changed file(s) taken"),
        "{again:?}"
    );
    assert_eq!(sessions(&out), got);
}

/// One version of a session as a file.
#[derive(Debug, Clone)]
struct Written {
    id: i64,
    path: String,
    text: String,
    /// Minutes after the start of March 2024.
    modified: u64,
    /// The rank of the version: (updated_at minutes or none, modified, path).
    rank: (Option<u64>, u64, String),
    date: String,
    participants: usize,
}

/// The versions a seed writes, in the order they reach the folder.
fn versions(rng: &mut Rng) -> Vec<Written> {
    let mut all = Vec::new();
    let sessions = 3 + rng.below(5) as i64;
    for id in 1..=sessions {
        let day = 1 + rng.below(3);
        // Late in the day, with an offset: the UTC date is the next one for some.
        let created = format!("2024-03-{day:02}T22:30:00-02:00");
        let date = format!("date=2024-03-{:02}", day + 1);
        let first_path = format!("sessions/{}/{id}.json", rng.below(3));
        for version in 0..1 + rng.below(3) {
            // Ties on updated_at (or none at all) are broken by the file's time.
            let updated = match rng.below(5) {
                0 => None,
                1 => Some(100),
                _ => Some(100 + version * 10),
            };
            let modified = 1_000 + rng.below(10_000);
            let path = if rng.below(2) == 0 {
                first_path.clone()
            } else {
                format!("sessions/v/{}/{id}-{version}.json", rng.below(4))
            };
            let participants = rng.below(4) as usize;
            let updated_text = updated.map(|m| format!("2024-03-{day:02}T23:{:02}:00Z", m % 60));
            let updated_rank = updated.map(|m| m % 60);
            all.push(Written {
                id,
                text: document(id, &created, updated_text.as_deref(), participants),
                modified,
                rank: (updated_rank, modified, path.clone()),
                path,
                date: date.clone(),
                participants,
            });
        }
    }
    // Random order of arrival.
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    all
}

/// The newest version of each session among `written`.
fn newest(written: &[Written]) -> BTreeMap<i64, Written> {
    let mut best: BTreeMap<i64, Written> = BTreeMap::new();
    for w in written {
        match best.get(&w.id) {
            Some(b) if b.rank >= w.rank => {}
            _ => {
                best.insert(w.id, w.clone());
            }
        }
    }
    best
}

const CRASH_POINTS: [&str; 6] = [
    "downloaded",
    "data-written",
    "index-written",
    "before-ledger",
    "ledger-written",
    "replaced-deleted",
];

fn explore(seed: u64) {
    let mut rng = Rng(seed);
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let config = local(work.path(), "out");
    let all = versions(&mut rng);
    let mut schedule = Vec::new();
    let mut seen = Vec::new();
    let mut arrived = 0;
    while arrived < all.len() {
        let count = 1 + rng.below(all.len() as u64 - arrived as u64) as usize;
        // A version overwritten in place before a pass looks is never seen.
        let mut visible: BTreeMap<&str, &Written> = BTreeMap::new();
        for w in &all[arrived..arrived + count] {
            put(&drop, &w.path, &w.text, minute(w.modified));
            visible.insert(&w.path, w);
        }
        seen.extend(visible.into_values().cloned());
        arrived += count;
        let crash = (rng.below(3) > 0).then(|| {
            format!(
                "{}:{}",
                CRASH_POINTS[rng.below(CRASH_POINTS.len() as u64) as usize],
                1 + rng.below(3)
            )
        });
        schedule.push((count, crash.clone()));
        if let Some(point) = &crash {
            let killed = run(&config, Some(point));
            assert!(
                killed.code == 0 || killed.stderr.contains("aborting at"),
                "seed {seed} {schedule:?}: {killed:?}"
            );
        }
        let again = run(&config, None);
        assert_eq!(again.code, 0, "seed {seed} {schedule:?}: {again:?}");
    }
    let want = newest(&seen);
    let expected: Sessions = want
        .values()
        .map(|w| (w.id, (w.date.clone(), w.path.clone(), w.participants)))
        .collect();
    let got = sessions(&work.path().join("out"));
    assert_eq!(got, expected, "seed {seed}: schedule {schedule:?}");

    // A clean run over only the newest versions gives the same rows.
    let clean_drop = work.path().join("clean-drop");
    for w in want.values() {
        put(&clean_drop, &w.path, &w.text, minute(w.modified));
    }
    let clean = config_at(work.path(), &clean_drop, "clean");
    assert_eq!(run(&clean, None).code, 0);
    assert_eq!(
        sessions(&work.path().join("clean")),
        expected,
        "seed {seed}"
    );
}

fn config_at(work: &Path, drop: &Path, name: &str) -> PathBuf {
    config(
        &work.join(format!("{name}.toml")),
        &format!("url = \"file://{}\"", drop.display()),
        &work.join(name),
    )
}

#[test]
fn versions_in_any_order_with_crashes_end_as_a_clean_run_of_the_newest() {
    let seeds: Vec<u64> = match std::env::var("CDR_TEST_SESSION_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => {
            let n = std::env::var("CDR_TEST_SESSION_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(3);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        eprintln!("seed {seed}");
        explore(seed);
    }
}

/// A rewrite merges each date it takes rows out of: afterwards such a date holds one
/// object per table (the small objects of the batches before are compacted into it), a
/// date it does not touch keeps its objects, no next index shard is left, and the rows
/// are those of a clean run over the newest versions.
#[test]
fn a_rewrite_merges_each_date_it_takes_rows_out_of_into_one_object_per_table() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let config = local(work.path(), "out");
    let created = |day: i64| format!("2024-03-{day:02}T10:00:00Z");
    let first = |id: i64| document(id, &created(1 + id % 3), Some("2024-03-05T00:00:00Z"), 2);
    // Two passes: each of dates 1 to 3 gets one object per table from each.
    for (pass, ids) in [(0, 1..=6), (1, 7..=12)] {
        for id in ids {
            put(
                &drop,
                &format!("sessions/{id}.json"),
                &first(id),
                minute(pass),
            );
        }
        let taken = run(&config, None);
        assert_eq!(taken.code, 0, "{taken:?}");
    }
    let out = work.path().join("out");
    let objects = |table: &str, day: u32| {
        tree(&out)
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{table}/date=2024-03-{day:02}/")))
            .count()
    };
    for day in 1..=3 {
        assert_eq!(objects("sessions", day), 2, "date {day}");
        assert_eq!(objects("session_participants", day), 2, "date {day}");
    }
    // Session 3 (date 1) rewritten in place; session 1 moves from date 2 to date 1;
    // date 3 is not touched.
    let newer = Some("2024-03-06T00:00:00Z");
    put(
        &drop,
        "sessions/3.json",
        &document(3, &created(1), newer, 1),
        minute(5),
    );
    put(
        &drop,
        "sessions/1.json",
        &document(1, &created(1), newer, 3),
        minute(5),
    );
    let rewritten = run(&config, None);
    assert_eq!(rewritten.code, 0, "{rewritten:?}");
    assert!(
        rewritten.stdout.contains("2 new or changed file(s) taken"),
        "{rewritten:?}"
    );
    for table in ["sessions", "session_participants"] {
        assert_eq!(objects(table, 1), 1, "{table} date 1 merged");
        assert_eq!(objects(table, 2), 1, "{table} date 2 merged");
        assert_eq!(objects(table, 3), 2, "{table} date 3 untouched");
    }
    let left: Vec<String> = tree(&out)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".next.json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let got = sessions(&out);
    assert_eq!(
        got[&1],
        ("date=2024-03-01".into(), "sessions/1.json".into(), 3)
    );
    assert_eq!(
        got[&3],
        ("date=2024-03-01".into(), "sessions/3.json".into(), 1)
    );
    let clean = config_at(work.path(), &drop, "clean");
    assert_eq!(run(&clean, None).code, 0);
    assert_eq!(got, sessions(&work.path().join("clean")));
}

/// Where the session files are served from.
enum Served {
    Sftp,
    Bucket,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh, which starts the test servers"))
}

/// Two passes over SFTP or a moto bucket: the rewrite replaces, the old version is
/// stale, and unchanged files are not read again.
async fn newest_wins_from(served: Served) {
    let work = tempfile::tempdir().unwrap();
    let name = format!("sessions-{}", std::process::id());
    let (root, source) = match served {
        Served::Sftp => (
            PathBuf::from(var("CDR_TEST_SFTP_ROOT")).join(&name),
            format!(
                "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"\nsessions = \"{name}/sessions\"",
                var("CDR_TEST_SFTP_USER"),
                var("CDR_TEST_SFTP_PORT"),
                var("CDR_TEST_SFTP_KEY"),
                var("CDR_TEST_SFTP_KNOWN_HOSTS")
            ),
        ),
        Served::Bucket => (
            work.path().join("drop"),
            format!(
                "url = \"s3://{}/{name}\"\n[source.options]\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
                var("CDR_TEST_S3_BUCKET"),
                var("CDR_TEST_S3_ENDPOINT"),
                var("CDR_TEST_S3_REGION"),
                var("CDR_TEST_S3_ACCESS_KEY_ID"),
                var("CDR_TEST_S3_SECRET_ACCESS_KEY")
            ),
        ),
    };
    let _ = std::fs::remove_dir_all(&root);
    // Into the bucket: the files named, each uploaded once (as a platform writes them).
    let sync = |paths: &'static [&'static str]| {
        let (root, name) = (root.clone(), name.clone());
        let bucket = matches!(served, Served::Bucket);
        async move {
            if !bucket {
                return;
            }
            let store = crate::s3::bucket();
            for path in paths {
                let bytes = std::fs::read(root.join(path)).unwrap();
                let key = object_store::path::Path::parse(format!("{name}/{path}")).unwrap();
                store.put(&key, bytes.into()).await.unwrap();
            }
        }
    };
    let out = work.path().join("out");
    let config = config(&work.path().join("c.toml"), &source, &out);
    // A bucket's times are upload times: take files at once.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}sessions_min_age_secs = 0\n")).unwrap();

    put(
        &root,
        "sessions/a/1.json",
        &document(1, "2024-03-01T10:00:00Z", Some("2024-03-01T10:20:00Z"), 2),
        minute(30),
    );
    put(
        &root,
        "sessions/a/b/2.json",
        &document(2, "2024-03-02T10:00:00Z", Some("2024-03-02T10:20:00Z"), 1),
        minute(30),
    );
    sync(&["sessions/a/1.json", "sessions/a/b/2.json"]).await;
    let first = tokio::task::block_in_place(|| run(&config, None));
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(sessions(&out).len(), 2);

    put(
        &root,
        "sessions/c/1.json",
        &document(1, "2024-03-01T10:00:00Z", Some("2024-03-03T10:20:00Z"), 1),
        minute(90),
    );
    put(
        &root,
        "sessions/c/2.json",
        &document(2, "2024-03-02T10:00:00Z", Some("2024-03-02T10:00:00Z"), 3),
        minute(90),
    );
    sync(&["sessions/c/1.json", "sessions/c/2.json"]).await;
    let second = tokio::task::block_in_place(|| run(&config, None));
    assert!(
        second
            .stdout
            .contains("sessions: 2 new or changed file(s) taken")
            && second
                .stdout
                .contains("1 stale version(s) ignored, 2 unchanged"),
        "{second:?}"
    );
    let got = sessions(&out);
    let file = match served {
        Served::Sftp => format!("{name}/sessions/c/1.json"),
        Served::Bucket => "sessions/c/1.json".to_string(),
    };
    assert_eq!(got[&1], ("date=2024-03-01".into(), file, 1));
    assert_eq!(got[&2].2, 1, "the stale version changed nothing");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_newest_version_wins_from_sftp() {
    newest_wins_from(Served::Sftp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_newest_version_wins_from_a_bucket() {
    newest_wins_from(Served::Bucket).await;
}

#[test]
fn a_file_over_the_size_limit_is_refused_every_pass_until_it_changes() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let small = document(1, "2024-03-01T10:00:00Z", None, 0);
    let big = document(2, "2024-03-01T10:00:00Z", None, 40);
    put(&drop, "sessions/1.json", &small, minute(1));
    put(&drop, "sessions/2.json", &big, minute(1));
    let config = local(work.path(), "out");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}sessions_max_bytes = 1000\n")).unwrap();
    for _ in 0..2 {
        let refused = run(&config, None);
        assert_eq!(refused.code, 1, "{refused:?}");
        assert!(
            refused.stderr.contains(&format!(
                "sessions/2.json is {} bytes, over ingest.sessions_max_bytes (1000)",
                big.len()
            )),
            "{refused:?}"
        );
    }
    assert_eq!(sessions(&work.path().join("out")).len(), 1);
    put(
        &drop,
        "sessions/2.json",
        &document(2, "2024-03-01T10:00:00Z", None, 1),
        minute(2),
    );
    let taken = run(&config, None);
    assert_eq!(taken.code, 0, "{taken:?}");
    assert_eq!(sessions(&work.path().join("out")).len(), 2);
}

/// Killed at each crash point (first, second and fifth time it is reached) and run
/// again, a pass over a generated session drop leaves byte for byte what an
/// uninterrupted pass leaves: the datasets, the quarantine and the state.
#[test]
fn killed_at_any_point_and_run_again_a_pass_ends_as_if_never_interrupted() {
    use cdr_ingest::generate::{DropSpec, Quirks, write_drop};
    let work = tempfile::tempdir().unwrap();
    let day = |d| chrono::NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    let mut spec = DropSpec::new(18, day(1), day(3));
    spec.cdr_rows_per_day = 5;
    spec.sessions_per_day = 12;
    spec.quirks = Quirks::all();
    write_drop(&work.path().join("drop"), &spec).unwrap();
    let finished = |out: &Path| {
        tree(out)
            .into_iter()
            .filter(|(key, _)| !key.starts_with("_state/runs") && !key.starts_with("_state/leases"))
            .collect::<Vec<_>>()
    };
    let reference = local(work.path(), "reference");
    assert_eq!(run(&reference, None).code, 0);
    let reference = finished(&work.path().join("reference"));
    assert!(
        reference
            .iter()
            .any(|(k, _)| k.starts_with("session_participants/"))
    );
    let mut crashed = 0;
    for point in CRASH_POINTS {
        for nth in [1, 2, 5] {
            let name = format!("{point}-{nth}");
            let config = local(work.path(), &name);
            let first = run(&config, Some(&format!("{point}:{nth}")));
            crashed += usize::from(first.stderr.contains("aborting at"));
            let again = run(&config, None);
            assert_eq!(again.code, 0, "{name}: {again:?}");
            let result = finished(&work.path().join(&name));
            let keys =
                |d: &[(String, Vec<u8>)]| d.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&result), keys(&reference), "{name}");
            assert!(
                result == reference,
                "{name}: other bytes than an uninterrupted pass"
            );
        }
    }
    assert!(
        crashed >= 8,
        "only {crashed} runs reached their crash point"
    );
}
