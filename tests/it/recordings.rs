//! Recordings over FTPS: selected by name, copied byte for byte over several
//! connections, indexed so they join to their calls, never copied twice, and left
//! alone while they may still be uploading.

use std::fs::File;
use std::time::SystemTime;

use arrow_array::cast::AsArray;
use cdr_ingest::generate::{DropManifest, DropSpec, Quirks, write_drop};
use chrono::NaiveDate;

use crate::util::{Case, read_parquet};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

fn recordings_only(min_age: u64) -> String {
    format!("categories = [\"recordings\"]\ntransfers = 3\nrecordings_min_age_secs = {min_age}")
}

#[test]
fn recordings_are_copied_exactly_once_and_indexed_by_call() {
    let case = Case::new("recordings");
    let mut spec = DropSpec::new(5, day(1), day(2));
    spec.cdr_rows_per_day = 60;
    spec.recordings_per_day = Some(8);
    spec.queue = false;
    spec.quirks = Quirks {
        bad_recording_names: true,
        ..Quirks::default()
    };
    let manifest = write_drop(&case.remote, &spec).unwrap();
    let config = case.config_with("", &recordings_only(0));
    let run = case.run_days(&config, "2024-03-01", "2024-03-02");
    assert_eq!(run.code, 0, "{run:?}");
    let expected: usize = manifest.days.iter().map(|d| d.recordings.len()).sum();
    assert_eq!(expected, 16);
    assert!(
        run.stdout
            .contains(&format!("recordings: {expected} copied")),
        "{run:?}"
    );
    // Names that do not match are listed with the day they name; the impossible
    // timestamp (month 13) names none.
    for d in &manifest.days {
        let dated = d
            .bad_recording_names
            .iter()
            .filter(|n| !n.contains("_13_45_"))
            .count();
        assert_eq!(dated, 3);
        assert!(
            run.stdout.contains(&format!(
                "{} recordings: {dated} file(s) do not match",
                d.date
            )),
            "{run:?}"
        );
    }
    assert!(
        run.stdout
            .contains("recordings: 2 file(s) with no date in the name do not match"),
        "{run:?}"
    );
    // One INFO line per day, not one per recording (those are at debug).
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.contains("recording copied") && l.contains("INFO")),
        "{run:?}"
    );
    assert_eq!(
        run.stderr.matches("recordings of the day copied").count(),
        2,
        "{run:?}"
    );
    // Regression: another day's names were listed on every run.
    let other = case.run_days(&config, "2024-03-02", "2024-03-02");
    assert_eq!(other.code, 0, "{other:?}");
    assert!(
        !other.stdout.contains("2024-03-01 recordings") && !other.stdout.contains("2024_03_01-"),
        "{other:?}"
    );
    assert!(
        other
            .stdout
            .contains("2024-03-02 recordings: 3 file(s) do not match"),
        "{other:?}"
    );

    for d in &manifest.days {
        let batches = read_parquet(&case.out().join(format!(
            "recording_index/date={}/recordings.parquet",
            d.date
        )));
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("unique_id")
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids.len(), d.recordings.len());
        for path in &d.recordings {
            let name = path.rsplit('/').next().unwrap();
            let copy = case
                .out()
                .join(format!("recordings/{}/{name}", d.date.format("%Y/%m/%d")));
            assert_eq!(
                std::fs::read(&copy).unwrap(),
                std::fs::read(case.remote.join(path)).unwrap(),
                "{name}"
            );
            assert!(
                ids.iter().any(|id| name.ends_with(&format!("-{id}.mp3"))),
                "{name} not indexed"
            );
        }
    }
    assert!(
        !case
            .out()
            .join("recordings")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name() == "notes.txt")
    );

    let downloads = |case: &Case| {
        manifest
            .days
            .iter()
            .flat_map(|d| &d.recordings)
            .map(|p| case.downloads_of_path(p))
            .sum::<usize>()
    };
    assert_eq!(downloads(&case), expected);
    let again = case.run_days(&config, "2024-03-01", "2024-03-02");
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains(&format!(
            "recordings: 0 copied (0 bytes), {expected} already copied"
        )),
        "{again:?}"
    );
    assert_eq!(
        downloads(&case),
        expected,
        "a recording already copied is never copied again"
    );
}

#[test]
fn a_recording_still_being_written_is_left_for_the_next_run() {
    let case = Case::new("recordings-fresh");
    let folder = case.remote.join("recordings");
    std::fs::create_dir_all(&folder).unwrap();
    let name = "2024_03_01_10_00_00-sales-anna-+48221234567-101-1709287200.7.mp3";
    std::fs::write(folder.join(name), b"ID3 partial").unwrap();
    File::options()
        .write(true)
        .open(folder.join(name))
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    let config = case.config_with("", &recordings_only(3600));
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("0 copied (0 bytes), 0 already copied, 1 left for the next run"),
        "{run:?}"
    );
    assert!(!case.out().join("recordings").exists());
    assert_eq!(case.downloads_of_path(&format!("recordings/{name}")), 0);
}

/// A generated drop of 2024-03-01 with `recordings` recordings and their CDRs.
fn one_day_of_recordings(case: &Case, seed: u64, recordings: usize) -> DropManifest {
    let mut spec = DropSpec::new(seed, day(1), day(1));
    spec.cdr_rows_per_day = 20;
    spec.recordings_per_day = Some(recordings);
    spec.queue = false;
    write_drop(&case.remote, &spec).unwrap()
}

/// `recording_index.sha256` is each copy's SHA-256, as `sha256sum` prints it; with
/// `ingest.recordings_sha256 = false` the copies are the same and the column is empty.
#[test]
fn the_index_holds_each_copys_sha256_unless_that_is_turned_off() {
    use aws_lc_rs::digest;
    for hashed in [true, false] {
        let case = Case::new(&format!("recordings-sha256-{hashed}"));
        let manifest = one_day_of_recordings(&case, 11, 6);
        let ingest = format!("{}\nrecordings_sha256 = {hashed}", recordings_only(0));
        let run = case.run_days(&case.config_with("", &ingest), "2024-03-01", "2024-03-01");
        assert_eq!(run.code, 0, "{run:?}");
        let batches = read_parquet(
            &case
                .out()
                .join("recording_index/date=2024-03-01/recordings.parquet"),
        );
        let column = |name: &str| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    let values = b.column_by_name(name).unwrap().as_string::<i32>();
                    values
                        .iter()
                        .map(|v| v.unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (names, sums) = (column("file_name"), column("sha256"));
        assert_eq!(names.len(), manifest.days[0].recordings.len());
        for (name, sum) in names.iter().zip(&sums) {
            let path = manifest.days[0]
                .recordings
                .iter()
                .find(|p| p.ends_with(name.as_str()))
                .unwrap_or_else(|| panic!("{name} is not in the drop"));
            let original = std::fs::read(case.remote.join(path)).unwrap();
            let copy = case.out().join(format!("recordings/2024/03/01/{name}"));
            assert!(std::fs::read(&copy).unwrap() == original, "{name}");
            let expected = if hashed {
                cdr_ingest::pipeline::hex(digest::digest(&digest::SHA256, &original).as_ref())
            } else {
                String::new()
            };
            assert_eq!(*sum, expected, "{name}, hashed: {hashed}");
        }
    }
}

/// With `source.tls_max_version = "1.2"` every data connection resumes the control
/// connection's TLS 1.2 session (vsftpd requires the reuse); by default, its TLS 1.3
/// one. The copies are the same either way.
#[test]
fn data_connections_resume_the_session_of_the_tls_version_configured() {
    for (setting, version) in [("", "TLSv1_3"), ("tls_max_version = \"1.2\"", "TLSv1_2")] {
        let case = Case::new(&format!("recordings-tls-{version}"));
        let manifest = one_day_of_recordings(&case, 13, 5);
        let config = case.config_with(setting, &recordings_only(0));
        let run = case.run_days(&config, "2024-03-01", "2024-03-01");
        assert_eq!(run.code, 0, "{run:?}");
        let secured: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("data connection secured"))
            .collect();
        // The listing's data connection, then one per recording.
        assert_eq!(
            secured.len(),
            1 + manifest.days[0].recordings.len(),
            "{run:?}"
        );
        let wanted = format!("version=Some({version}) handshake=Some(Resumed)");
        assert!(
            secured.iter().all(|l| l.contains(&wanted)),
            "{wanted}: {run:?}"
        );
        for path in &manifest.days[0].recordings {
            let name = path.rsplit('/').next().unwrap();
            let copy = case.out().join(format!("recordings/2024/03/01/{name}"));
            assert!(std::fs::read(copy).unwrap() == std::fs::read(case.remote.join(path)).unwrap());
        }
    }
}
