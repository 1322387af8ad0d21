//! `cdr-ingest ls`: what a destination holds, per day, feed and dataset, checked
//! against what the generator put in the drop that was ingested.

use std::process::Command;

use cdr_ingest::generate::{DropSpec, Quirks, write_drop};

use crate::util::{Run, local_config, run_range};

#[test]
fn ls_shows_partitions_objects_rows_and_bytes_per_day_and_feed_offline() {
    let work = tempfile::tempdir().unwrap();
    let (drop, out) = (work.path().join("drop"), work.path().join("out"));
    let day = |d: &str| d.parse().unwrap();
    let mut spec = DropSpec::new(9, day("2024-03-01"), day("2024-03-03"));
    spec.cdr_rows_per_day = 80;
    spec.recordings_per_day = Some(4);
    spec.quirks = Quirks::all();
    let manifest = write_drop(&drop, &spec).unwrap();
    let config = local_config(&work.path().join("config.toml"), &drop, &out);
    let run = Run::from(
        run_range(&config, "2024-03-01", "2024-03-03")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    // The source is an FTPS server with no password anywhere: ls never connects.
    let offline = work.path().join("offline.toml");
    std::fs::write(
        &offline,
        format!(
            "[source]\nurl = \"ftps://nobody@127.0.0.1:1\"\n[destination]\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let ls = |args: &[&str]| {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(["ls", "--config", offline.to_str().unwrap()])
                .args(args)
                .env_remove("CDR_INGEST_SOURCE_PASSWORD")
                .output()
                .unwrap(),
        )
    };
    let all = ls(&[]);
    assert_eq!(all.code, 0, "{all:?}");
    let total = |run: &Run, feed: &str, dataset: &str| -> Vec<String> {
        run.stdout
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() == 7 && f[0] == "total" && f[1] == feed && f[2] == dataset)
            .unwrap_or_else(|| panic!("no total of {feed} {dataset}: {run:?}"))
    };
    let before = manifest.before_range.as_ref().unwrap();
    let calls: usize = manifest.days.iter().map(|d| d.calls).sum::<usize>() + before.calls;
    // 3 days and the day before, whose calls the first file repeats.
    assert_eq!(
        total(&all, "cdr", "cdr")[3..6],
        ["4".to_string(), "4".into(), calls.to_string()],
        "{all:?}"
    );
    let queue_calls: usize = manifest.days.iter().map(|d| d.queue_calls).sum();
    assert_eq!(
        total(&all, "queue", "queue_call")[5],
        queue_calls.to_string()
    );
    let user_calls: usize = manifest.days.iter().map(|d| d.queue_user_calls).sum();
    assert_eq!(
        total(&all, "queue", "queue_user_call")[5],
        user_calls.to_string()
    );
    let recordings: usize = manifest.days.iter().map(|d| d.recordings.len()).sum();
    let bytes: u64 = manifest.days.iter().map(|d| d.recording_bytes).sum();
    assert_eq!(
        total(&all, "recordings", "recordings/")[3..],
        [
            "3".to_string(),
            recordings.to_string(),
            "-".into(),
            bytes.to_string()
        ]
    );
    assert_eq!(
        total(&all, "recordings", "recording_index")[5],
        recordings.to_string()
    );
    // Each line's bytes are the objects' sizes on disk.
    let on_disk: u64 = walk(&out.join("cdr"));
    assert_eq!(total(&all, "cdr", "cdr")[6], on_disk.to_string());
    assert!(all.stdout.contains(": 4 day(s), "), "{all:?}");
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with("2024-02-29  cdr         cdr ")),
        "{all:?}"
    );

    let one = ls(&[
        "--feed",
        "queue",
        "--from",
        "2024-03-02",
        "--to",
        "2024-03-02",
    ]);
    assert_eq!(one.code, 0, "{one:?}");
    let days: Vec<&str> = one
        .stdout
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("2024-"))
        .collect();
    assert_eq!(days.len(), 2, "{one:?}");
    assert!(days.iter().all(|l| l.starts_with("2024-03-02  queue ")));
    assert_eq!(
        total(&one, "queue", "queue_call")[5],
        manifest.days[1].queue_calls.to_string()
    );

    let wrong = ls(&["--feed", "cdrs"]);
    assert_eq!(wrong.code, 2, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("the feeds are cdr, queue, recordings"),
        "{wrong:?}"
    );
    let backwards = ls(&["--from", "2024-03-03", "--to", "2024-03-01"]);
    assert_eq!(backwards.code, 2, "{backwards:?}");
}

/// The total size of the files under `dir`.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                std::fs::metadata(&path).unwrap().len()
            }
        })
        .sum()
}
