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

use crate::util::{Run, read_parquet, tree};

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
}
