//! The whole job against vsftpd (explicit FTPS, TLS session reuse required):
//! a day in, reruns, changed files, and the failures an operator must understand.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_schema::{DataType, TimeUnit};

use crate::util::{Case, at, json, read_parquet, tree};

/// 2024-03-02 01:00:00 UTC: when the provider uploads the file of 2024-03-01.
const DROP_TIME: u64 = 1_709_341_200;

const HEADER: &str = "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause";

/// A day with the provider's quirks: BOM, CRLF, the previous day's last row repeated,
/// quoted commas and quotes, non-ASCII, a short row, an identical and a conflicting
/// repeat of an id, and an empty charge.
fn quirky_day() -> Vec<u8> {
    let lines = [
        HEADER,
        r#"1709164790.1,2024-02-29 23:59:50,,+48221234567,"""Jan Kowalski"" <+48221234567>",101,Jan Kowalski,30,25,ANSWERED,,,,Normal Clearing"#,
        "1709251200.2,2024-03-01 00:00:00,sales-anna,101,101,+4915112345678,,62,60,ANSWERED,Germany Mobile,0.0120,0.0120,Normal Clearing",
        r#"1709251300.3,2024-03-01 00:01:40,,0221234567,anonymous,102,"Support, 2nd line",10,0,NO ANSWER,,,,No Answer"#,
        "1709251400.4,2024-03-01 00:03:20,,+12125551234",
        "1709251200.2,2024-03-01 00:00:00,sales-anna,101,101,+4915112345678,,62,60,ANSWERED,Germany Mobile,0.0120,0.0120,Normal Clearing",
        "1709251200.2,2024-03-01 00:00:00,sales-anna,101,101,+4915112345678,,62,61,ANSWERED,Germany Mobile,0.0120,0.0122,Normal Clearing",
        "1709251500.5,2024-03-01 00:05:00,sales-anna,101,101,+12125551234,Zoë Łukasiewicz,120,100,ANSWERED,USA,0.0100,,Normal Clearing",
    ];
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    for line in lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

fn simple_day(rows: usize) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for i in 0..rows {
        text.push_str(&format!(
            "1709251200.{i},2024-03-01 00:00:{:02},,101,,102,,10,5,ANSWERED,,,,\n",
            i % 60
        ));
    }
    text.into_bytes()
}

fn strings(batch: &arrow_array::RecordBatch, column: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn a_quirky_day_lands_as_typed_parquet_with_a_quarantine_and_a_ledger() {
    let case = Case::new("quirky-day");
    case.put_cdr("2024-03-01", &quirky_day(), at(DROP_TIME));
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("4 rows, 2 quarantined, 1 duplicates dropped"),
        "{run:?}"
    );

    // The previous day's repeated row goes to the partition of its own call date.
    let out = case.out();
    let previous = read_parquet(&out.join("cdr/date=2024-02-29/2024-03-01.parquet"));
    assert_eq!(strings(&previous[0], "id"), [Some("1709164790.1".into())]);
    assert_eq!(
        strings(&previous[0], "clid"),
        [Some(r#""Jan Kowalski" <+48221234567>"#.into())]
    );

    let batches = read_parquet(&out.join("cdr/date=2024-03-01/2024-03-01.parquet"));
    assert_eq!(batches.len(), 1);
    let day = &batches[0];
    let schema = day.schema();
    assert_eq!(
        schema.field_with_name("calldate").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        schema.field_with_name("charge").unwrap().data_type(),
        &DataType::Decimal128(18, 6)
    );
    assert_eq!(
        schema.field_with_name("duration").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        strings(day, "id"),
        [
            Some("1709251200.2".into()),
            Some("1709251300.3".into()),
            Some("1709251500.5".into())
        ]
    );
    assert_eq!(strings(day, "src")[1].as_deref(), Some("0221234567"));
    assert_eq!(strings(day, "dst")[0].as_deref(), Some("+4915112345678"));
    assert_eq!(
        strings(day, "dst_name")[1].as_deref(),
        Some("Support, 2nd line")
    );
    assert_eq!(
        strings(day, "dst_name")[2].as_deref(),
        Some("Zoë Łukasiewicz")
    );
    assert_eq!(strings(day, "destination")[1], None);
    let charge: Vec<Option<i128>> = day
        .column_by_name("charge")
        .unwrap()
        .as_primitive::<Decimal128Type>()
        .iter()
        .collect();
    assert_eq!(charge, [Some(12_000), None, None]);
    let calldate: Vec<Option<i64>> = day
        .column_by_name("calldate")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(calldate[0], Some(1_709_251_200_000_000));
    let lines: Vec<Option<i64>> = day
        .column_by_name("_source_line")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(lines, [Some(3), Some(4), Some(8)]);
    let remote = format!("{}/CDRs/2024-03-01.csv", case.name);
    assert!(
        strings(day, "_source_file")
            .iter()
            .all(|f| f.as_deref() == Some(remote.as_str()))
    );

    let quarantine =
        std::fs::read_to_string(out.join("_quarantine/cdr/date=2024-03-01/2024-03-01.jsonl"))
            .unwrap();
    let entries: Vec<serde_json::Value> = quarantine
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{quarantine}");
    assert_eq!(entries[0]["line"], 5);
    assert_eq!(entries[0]["reason"], "has 4 fields, the header has 14");
    assert_eq!(
        entries[0]["raw"],
        "1709251400.4,2024-03-01 00:03:20,,+12125551234"
    );
    assert_eq!(entries[1]["line"], 7);
    assert!(
        entries[1]["reason"]
            .as_str()
            .unwrap()
            .contains("appeared earlier in the file with different values")
    );
    assert_eq!(entries[1]["file"], remote);

    let ledger = json(&out.join("_state/ledger/cdr/2024-03-01.json"));
    assert_eq!(ledger["format_version"], 1);
    assert_eq!(ledger["remote_path"], remote);
    assert_eq!(ledger["size"], quirky_day().len());
    assert_eq!(ledger["modified"], "2024-03-02T01:00:00Z");
    assert_eq!(
        ledger["sha256"],
        cdr_ingest::pipeline::hex(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &quirky_day()).as_ref()
        )
    );
    assert_eq!(ledger["rows_written"], 4);
    assert_eq!(ledger["rows_rejected"], 2);
    assert_eq!(ledger["duplicates_dropped"], 1);
}

#[test]
fn a_rerun_transfers_nothing_and_a_changed_file_replaces_the_day() {
    let case = Case::new("rerun");
    case.put_cdr("2024-03-01", &quirky_day(), at(DROP_TIME));
    let config = case.config("");
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--date",
        "2024-03-01",
    ];
    let first = case.run(&args);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(case.downloads_of("2024-03-01"), 1);
    let before = tree(&case.out());

    let again = case.run(&args);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("already ingested, no transfer"),
        "{again:?}"
    );
    assert_eq!(
        case.downloads_of("2024-03-01"),
        1,
        "a rerun must not download"
    );
    assert_eq!(tree(&case.out()), before);

    // The provider re-uploads the day without the previous day's row.
    case.put_cdr("2024-03-01", &simple_day(3), at(DROP_TIME + 3600));
    let changed = case.run(&args);
    assert_eq!(changed.code, 0, "{changed:?}");
    assert!(
        changed
            .stdout
            .contains("re-ingested (changed on the server), 3 rows"),
        "{changed:?}"
    );
    assert!(
        changed.stderr.contains("changed on the server")
            && changed.stderr.contains("CDRs/2024-03-01.csv"),
        "{changed:?}"
    );
    // The log says how the day's rows changed: calls .0 and .1 came, .3 and .5 went.
    assert!(
        changed
            .stderr
            .contains("rows_before=3 rows_after=3 added=2 removed=2"),
        "{changed:?}"
    );
    let after: BTreeMap<String, Vec<u8>> = tree(&case.out()).into_iter().collect();
    assert!(
        !after.contains_key("cdr/date=2024-02-29/2024-03-01.parquet"),
        "stale partition left: {:?}",
        after.keys()
    );
    assert!(
        !after.keys().any(|k| k.starts_with("_quarantine/")),
        "stale quarantine left: {:?}",
        after.keys()
    );
    let rows: usize = read_parquet(&case.out().join("cdr/date=2024-03-01/2024-03-01.parquet"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 3);
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let case = Case::new("deterministic");
    case.put_cdr("2024-03-01", &quirky_day(), at(DROP_TIME));
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    let first = tree(&case.out());
    std::fs::remove_dir_all(case.out()).unwrap();
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(tree(&case.out()), first);
}

#[test]
fn a_wrong_password_is_refused_clearly_and_never_shown() {
    let case = Case::new("wrong-password");
    case.put_cdr("2024-03-01", &simple_day(1), at(DROP_TIME));
    let config = case.config("");
    let wrong = "Wr0ng-pa55word-zz";
    let run = case.run_with_password(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--date",
            "2024-03-01",
        ],
        wrong,
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("refused the login of user"), "{run:?}");
    assert!(
        !run.stderr.contains("connecting again"),
        "530 is not retried: {run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("localhost:{}", case.server.port)),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains(wrong) && !run.stderr.contains(wrong),
        "password leaked: {run:?}"
    );
}

#[test]
fn the_password_appears_nowhere_in_a_successful_run() {
    let case = Case::new("no-leak");
    case.put_cdr("2024-03-01", &quirky_day(), at(DROP_TIME));
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    let password = &case.server.password;
    assert!(
        !run.stdout.contains(password.as_str()) && !run.stderr.contains(password.as_str()),
        "password leaked: {run:?}"
    );
    for (key, bytes) in tree(&case.out()) {
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "password in {key}"
        );
    }
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    let case = Case::new("untrusted-ca");
    case.put_cdr("2024-03-01", &simple_day(1), at(DROP_TIME));
    let config = case.config("");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        case.server.ca_file.to_str().unwrap(),
        case.server.untrusted_ca_file.to_str().unwrap(),
    );
    std::fs::write(&config, text).unwrap();
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("TLS verification of")
            && run.stderr.contains("for the name \"localhost\""),
        "{run:?}"
    );
    assert!(run.stderr.contains("source.ca_file"), "{run:?}");
    assert!(
        !run.stderr.contains("connecting again"),
        "not retried: {run:?}"
    );
    assert!(!case.out().join("_state/ledger").exists());
}

#[test]
fn insecure_mode_connects_but_warns() {
    let case = Case::new("insecure");
    case.put_cdr("2024-03-01", &simple_day(2), at(DROP_TIME));
    let config = case.config("insecure_skip_tls_verify = true");
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, text).unwrap();
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("NOT verified"), "{run:?}");
}

#[test]
fn a_day_not_uploaded_yet_says_when_it_will_be() {
    let case = Case::new("not-yet");
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-05", "2024-03-05");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("CDRs/2024-03-05.csv: not on the server yet"),
        "{run:?}"
    );
    assert!(run.stderr.contains("01:00 GMT"), "{run:?}");
}

#[test]
fn a_range_goes_on_past_a_bad_file_and_exits_non_zero() {
    let case = Case::new("range");
    case.put_cdr("2024-03-01", &simple_day(2), at(DROP_TIME));
    case.put_cdr(
        "2024-03-02",
        b"id,calldate\n1,2024-03-02 00:00:00\n",
        at(DROP_TIME + 86_400),
    );
    case.put_cdr("2024-03-03", &simple_day(4), at(DROP_TIME + 2 * 86_400));
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-03");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("CDRs/2024-03-02.csv: the header row lacks the required columns src, dst"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("2024-03-03") && run.stdout.contains("4 rows"),
        "{run:?}"
    );
    assert!(
        !case
            .out()
            .join("_state/ledger/cdr/2024-03-02.json")
            .exists(),
        "a failed file must not be marked done"
    );
}

/// Regression: when the parser refused a large file's header and stopped reading, the
/// download failed with "could not take the data", which was taken for a broken
/// connection: retried, then reported instead of the header's problem.
#[test]
fn a_large_file_the_parser_refuses_is_reported_for_its_header_and_not_retried() {
    let case = Case::new("refused-header");
    let mut content = b"id,calldate\n".to_vec();
    for i in 0..200_000 {
        content.extend_from_slice(format!("{i},2024-03-01 00:00:00\n").as_bytes());
    }
    case.put_cdr("2024-03-01", &content, at(DROP_TIME));
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("CDRs/2024-03-01.csv: the header row lacks the required columns"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("connecting again"), "{run:?}");
}

#[test]
fn validate_connect_logs_in_and_lists_the_folders() {
    let case = Case::new("validate");
    case.put_cdr("2024-03-01", &simple_day(1), at(DROP_TIME));
    let config = case.config("");
    let offline = case.run(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(offline.code, 0, "{offline:?}");
    let online = case.run(&[
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--connect",
    ]);
    // The queue and recordings folders do not exist in this case's folder.
    assert_eq!(online.code, 1, "{online:?}");
    assert!(online.stdout.contains("CDRs/: 1 files"), "{online:?}");
    assert!(online.stderr.contains("cannot list"), "{online:?}");
}

#[test]
fn a_server_that_never_answers_times_out_with_a_clear_error() {
    // Accepts the connection, then says nothing: the FTP greeting never comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let case = Case::new("silent-server");
    let config = case.config("");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!(":{}\"", case.server.port), &format!(":{port}\""))
        .replace("timeout_secs = 10", "timeout_secs = 1\nretry_max_secs = 0");
    std::fs::write(&config, text).unwrap();
    let run = case.run_days(&config, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "localhost:{port} did not answer within 1 s while waiting for the FTP greeting"
        )),
        "{run:?}"
    );
    drop(holder.join());
}

#[test]
fn a_generated_drop_with_quirks_lands_with_the_counts_the_generator_knows() {
    use cdr_ingest::generate::{DropSpec, Quirks, write_drop};
    let case = Case::new("generated");
    let from = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let to = chrono::NaiveDate::from_ymd_opt(2024, 3, 3).unwrap();
    let mut spec = DropSpec::new(7, from, to);
    spec.recordings_per_day = Some(0);
    spec.queue = false;
    spec.quirks = Quirks::all();
    let manifest = write_drop(&case.remote, &spec).unwrap();
    let config = case.config("");
    let run = case.run_days(&config, "2024-03-01", "2024-03-03");
    assert_eq!(run.code, 0, "{run:?}");
    for (index, day) in manifest.days.iter().enumerate() {
        let ledger = json(
            &case
                .out()
                .join(format!("_state/ledger/cdr/{}.json", day.date)),
        );
        // The previous day's repeated calls are already in from that day's own file,
        // except on the first day, whose previous day was not ingested.
        let repeated = if index == 0 { 0 } else { day.cdr_repeated_rows };
        assert_eq!(
            ledger["rows_written"],
            day.cdr_unique_ids - repeated,
            "{}",
            day.date
        );
        assert_eq!(ledger["rows_rejected"], day.cdr_bad_rows, "{}", day.date);
        assert_eq!(
            ledger["duplicates_dropped"],
            day.cdr_identical_duplicates + repeated,
            "{}",
            day.date
        );
    }
    assert!(
        run.stderr.contains("unknown column ignored") && run.stderr.contains("x_custom"),
        "{run:?}"
    );
}
