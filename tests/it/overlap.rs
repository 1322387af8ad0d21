//! Two workers on one destination: leases keep them off each other's units of work,
//! so running twice at once gives the same dataset as running once.

use std::path::Path;
use std::process::{Child, Stdio};

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::util::{Run, local_config, run_range, tree};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A generated week in a local folder and a config writing to `out`.
fn setup(work: &Path, out: &Path) -> std::path::PathBuf {
    let drop = work.join("drop");
    if !drop.exists() {
        let mut spec = DropSpec::new(21, day(1), day(4));
        spec.cdr_rows_per_day = 3000;
        spec.recordings_per_day = Some(20);
        write_drop(&drop, &spec).unwrap();
    }
    let name = format!("{}.toml", out.file_name().unwrap().to_string_lossy());
    local_config(&work.join(name), &drop, out)
}

fn start(config: &Path) -> Child {
    run_range(config, "2024-03-01", "2024-03-04")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The dataset, without the leases (which come and go).
fn dataset(out: &Path) -> Vec<(String, Vec<u8>)> {
    tree(out)
        .into_iter()
        .filter(|(key, _)| !key.starts_with("_state/leases"))
        .collect()
}

#[test]
fn two_runs_at_once_give_the_same_dataset_as_one() {
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference");
    let run = Run::from(
        start(&setup(work.path(), &reference))
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");

    let shared = work.path().join("shared");
    let config = setup(work.path(), &shared);
    let (first, second) = (start(&config), start(&config));
    for child in [first, second] {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(dataset(&shared), dataset(&reference));
}

#[test]
fn a_unit_another_worker_holds_is_skipped_and_said_so_until_the_lease_expires() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let config = setup(work.path(), &out);
    let lease = out.join("_state/leases/cdr/2024-03-02.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    std::fs::write(
        &lease,
        r#"{"format_version":1,"holder":"replica-b","expires_at":"2999-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let run = Run::from(start(&config).wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("2024-03-02 cdr: skipped, another worker (replica-b) is ingesting it"),
        "{run:?}"
    );
    assert!(!out.join("_state/ledger/cdr/2024-03-02.json").exists());
    assert!(out.join("_state/ledger/queue/2024-03-02.json").exists());
    assert!(lease.exists(), "someone else's lease is left alone");

    // The holder crashed: once its lease has expired, the next run takes the unit over.
    std::fs::write(
        &lease,
        r#"{"format_version":1,"holder":"replica-b","expires_at":"2000-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let run = Run::from(start(&config).wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        out.join("_state/ledger/cdr/2024-03-02.json").exists(),
        "{run:?}"
    );
    assert!(!lease.exists(), "a lease is released after the work");
}
