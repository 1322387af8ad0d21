//! Queue-call zips over FTPS: both datasets land typed; damaged zips are retried and
//! then given up on; zip bombs are refused.

use std::fs::File;

use arrow_array::cast::AsArray;
use cdr_ingest::generate::{DropSpec, upload_time, write_drop};
use chrono::NaiveDate;

use crate::util::{Case, json, read_parquet, tree};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

fn both() -> &'static str {
    "categories = [\"cdr\", \"queue\"]\nmax_tries = 2"
}

fn generated(case: &Case, days: u32) -> cdr_ingest::generate::DropManifest {
    let mut spec = DropSpec::new(11, day(1), day(days));
    spec.recordings_per_day = Some(0);
    write_drop(&case.remote, &spec).unwrap()
}

fn rows_under(case: &Case, dataset: &str) -> usize {
    tree(&case.out())
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{dataset}/")))
        .map(|(key, _)| {
            read_parquet(&case.out().join(key))
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        })
        .sum()
}

#[test]
fn queue_zips_land_as_two_typed_datasets_that_join_to_the_calls() {
    let case = Case::new("queue-normal");
    let manifest = generated(&case, 2);
    let config = case.config_with("", both());
    let run = case.run_days(&config, "2024-03-01", "2024-03-02");
    assert_eq!(run.code, 0, "{run:?}");
    let queue_calls: usize = manifest.days.iter().map(|d| d.queue_calls).sum();
    let queue_user_calls: usize = manifest.days.iter().map(|d| d.queue_user_calls).sum();
    assert!(queue_calls > 0 && queue_user_calls > queue_calls);
    assert_eq!(rows_under(&case, "queue_call"), queue_calls);
    assert_eq!(rows_under(&case, "queue_user_call"), queue_user_calls);

    let batches = read_parquet(
        &case
            .out()
            .join("queue_call/date=2024-03-01/2024-03-01.parquet"),
    );
    let batch = &batches[0];
    let letters = batch
        .column_by_name("final_dst_type")
        .unwrap()
        .as_string::<i32>();
    let names = batch
        .column_by_name("final_dst_type_name")
        .unwrap()
        .as_string::<i32>();
    for (letter, name) in letters.iter().zip(names.iter()) {
        let expected = match letter.unwrap() {
            "V" => "voicemail",
            "U" => "user",
            "Q" => "queue",
            "R" => "ivr",
            other => panic!("unexpected final_dst_type {other}"),
        };
        assert_eq!(name, Some(expected));
    }
    let source = batch
        .column_by_name("_source_file")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert_eq!(
        source,
        "queue-normal/QueueCalls/2024-03-01-queue-calls.zip!2024-03-01-queue_call.csv"
    );
    let ledger = json(&case.out().join("_state/ledger/queue/2024-03-01.json"));
    assert_eq!(
        ledger["rows_written"],
        manifest.days[0].queue_calls + manifest.days[0].queue_user_calls
    );

    let again = case.run_days(&config, "2024-03-01", "2024-03-02");
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again
            .stdout
            .matches("already ingested, no transfer")
            .count(),
        4,
        "{again:?}"
    );
}

#[test]
fn a_truncated_zip_is_retried_then_given_up_until_it_changes() {
    let case = Case::new("queue-truncated");
    generated(&case, 1);
    let zip_path = case.remote.join("QueueCalls/2024-03-01-queue-calls.zip");
    let whole = std::fs::read(&zip_path).unwrap();
    std::fs::write(&zip_path, &whole[..whole.len() / 2]).unwrap();
    File::options()
        .write(true)
        .open(&zip_path)
        .unwrap()
        .set_modified(upload_time(day(1)))
        .unwrap();
    let config = case.config_with("", both());
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--date",
        "2024-03-01",
    ];

    for try_number in 1..=2 {
        let run = case.run(&args);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains("the zip is truncated or damaged"),
            "{run:?}"
        );
        assert!(
            run.stderr.contains(&format!("(try {try_number} of 2)")),
            "{run:?}"
        );
        // Regression: the last try also said it would be tried on the next run.
        assert_eq!(
            run.stderr.contains("tried again on the next run"),
            try_number < 2,
            "{run:?}"
        );
        assert!(
            !case
                .out()
                .join("_state/ledger/queue/2024-03-01.json")
                .exists()
        );
    }
    let gave_up = case.run(&args);
    assert_eq!(gave_up.code, 1, "{gave_up:?}");
    assert!(gave_up.stderr.contains("failed 2 tries"), "{gave_up:?}");
    assert!(!gave_up.stderr.contains("next run"), "{gave_up:?}");
    assert_eq!(
        case.downloads_of_path("QueueCalls/2024-03-01-queue-calls.zip"),
        2,
        "no download once given up"
    );

    // The upload completes: the file changes, so it is tried again and goes in.
    std::fs::write(&zip_path, &whole).unwrap();
    File::options()
        .write(true)
        .open(&zip_path)
        .unwrap()
        .set_modified(upload_time(day(1)) + std::time::Duration::from_secs(60))
        .unwrap();
    let done = case.run(&args);
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        case.out()
            .join("_state/ledger/queue/2024-03-01.json")
            .exists()
    );
    assert!(
        !case
            .out()
            .join("_state/attempts/queue/2024-03-01.json")
            .exists()
    );
}

#[test]
fn a_zip_bomb_is_refused_with_the_limit_to_raise() {
    use std::io::Write;
    let case = Case::new("queue-bomb");
    generated(&case, 1);
    let zip_path = case.remote.join("QueueCalls/2024-03-01-queue-calls.zip");
    let mut writer = zip::ZipWriter::new(File::create(&zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    writer
        .start_file("2024-03-01-queue_call.csv", options)
        .unwrap();
    writer.write_all(b"id,start_time\n").unwrap();
    writer.write_all(&vec![b'0'; 20 << 20]).unwrap();
    writer
        .start_file("2024-03-01-queue_user_call.csv", options)
        .unwrap();
    writer.write_all(b"id,start_time\n").unwrap();
    writer.finish().unwrap();
    let config = case.config_with("", both());
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("ingest.zip_max_compression_ratio") && run.stderr.contains("zip bomb"),
        "{run:?}"
    );
    assert!(
        !tree(&case.out())
            .iter()
            .any(|(key, _)| key.starts_with("queue_call/"))
    );
    // The CDRs of that day are not held back by the bad zip.
    assert!(
        case.out()
            .join("_state/ledger/cdr/2024-03-01.json")
            .exists()
    );
}
