//! `verify` finds what breaks the one-row-per-id rule in a destination (duplicate rows,
//! objects whose rows all belong to another file, objects no ledger entry lists), and
//! `verify --repair` leaves the data a clean run writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use cdr_ingest::generate::{DropSpec, Quirks, write_drop};
use chrono::NaiveDate;

use crate::util::{Run, local_config_of, run_range, tree};

fn verify(config: &Path, repair: bool) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command.args(["verify", "--config", config.to_str().unwrap()]);
    if repair {
        command.arg("--repair");
    }
    Run::from(command.output().unwrap())
}

fn config(work: &Path, name: &str) -> PathBuf {
    local_config_of(
        &work.join(format!("{name}.toml")),
        &work.join("drop"),
        &work.join(name),
        r#""cdr""#,
    )
}

/// The CDR data objects a reader sees.
fn data(out: &Path) -> Vec<(String, Vec<u8>)> {
    tree(out)
        .into_iter()
        .filter(|(key, _)| key.starts_with("cdr/"))
        .collect()
}

#[test]
fn verify_finds_duplicates_and_stray_objects_and_repair_removes_them() {
    let work = tempfile::tempdir().unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    let mut spec = DropSpec::new(5, day(1), day(3));
    spec.cdr_rows_per_day = 50;
    spec.queue = false;
    spec.recordings_per_day = Some(0);
    spec.quirks = Quirks {
        repeat_previous_tail: 3,
        ..Quirks::default()
    };
    write_drop(&work.path().join("drop"), &spec).unwrap();
    let reference = config(work.path(), "reference");
    let run = Run::from(
        run_range(&reference, "2024-03-01", "2024-03-03")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let clean = verify(&reference, false);
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(clean.stdout.contains("no problems"), "{clean:?}");

    // What the first release could leave: the 2nd's repeated rows written into the 1st's
    // partition beside the 1st's own (the race of two days at once), and an object of
    // a file whose ingestion never finished.
    let out = work.path().join("broken");
    let broken = config(work.path(), "broken");
    let run = Run::from(
        run_range(&broken, "2024-03-01", "2024-03-03")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let partition = out.join("cdr/date=2024-03-01");
    std::fs::rename(
        out.join("_state/spill/cdr/date=2024-03-01/2024-03-02.parquet"),
        partition.join("2024-03-02.parquet"),
    )
    .unwrap();
    std::fs::copy(
        out.join("cdr/date=2024-03-02/2024-03-02.parquet"),
        out.join("cdr/date=2024-03-02/2024-03-09.parquet"),
    )
    .unwrap();

    let found = verify(&broken, false);
    assert_eq!(found.code, 1, "{found:?}");
    for expected in [
        "cdr/date=2024-03-01: 3 row(s) repeat an id another row has",
        "cdr/date=2024-03-01: cdr/date=2024-03-01/2024-03-02.parquet: all 3 of its rows belong to other files",
        "cdr/date=2024-03-02: 50 row(s) repeat an id",
        "cdr/date=2024-03-02: cdr/date=2024-03-02/2024-03-09.parquet: no ledger entry",
        "--repair` to fix them",
    ] {
        assert!(found.stdout.contains(expected), "{expected}: {found:?}");
    }
    assert!(data(&out) != data(&work.path().join("reference")));

    let repaired = verify(&broken, true);
    assert_eq!(repaired.code, 0, "{repaired:?}");
    assert!(repaired.stdout.contains("repaired"), "{repaired:?}");
    assert_eq!(data(&out), data(&work.path().join("reference")));
    let again = verify(&broken, false);
    assert_eq!(again.code, 0, "{again:?}");

    // An output written before `calls` existed (or whose rebuild was cut short): verify
    // says so, and repair writes the calls a clean run does.
    let calls = |out: &Path| -> Vec<(String, Vec<u8>)> {
        tree(out)
            .into_iter()
            .filter(|(key, _)| key.starts_with("calls/"))
            .collect()
    };
    assert_eq!(calls(&out), calls(&work.path().join("reference")));
    std::fs::remove_dir_all(out.join("calls")).unwrap();
    let stale = verify(&broken, false);
    assert_eq!(stale.code, 1, "{stale:?}");
    assert!(
        stale.stdout.contains(
            "calls/date=2024-03-02: the calls of this date are not what its feeds' partitions give"
        ),
        "{stale:?}"
    );
    assert_eq!(verify(&broken, true).code, 0);
    assert_eq!(calls(&out), calls(&work.path().join("reference")));
    assert!(out.join("calls/date=2024-03-02/calls.parquet").is_file());
}
