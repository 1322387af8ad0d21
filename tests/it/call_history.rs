//! Call-history exports (issue 20): what the generator writes, in either language, as
//! CSV or XLSX, with and without its quirks, is read back call for call; an XLS made by
//! another program (xlwt) too; overlapping exports give the same keys.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use cdr_ingest::formats::call_history::{CALL_HISTORY, ExportFormat, csv_rows};
use cdr_ingest::formats::rows::RowSource;
use cdr_ingest::formats::sheet_rows::Workbook;
use cdr_ingest::formats::table::{FileError, Rejected, Row, Typing, Value, read_rows_with};
use cdr_ingest::generate::call_history::{ExportSpec, ExportedCall, write_export};
use cdr_ingest::pipeline::parse::parse_rows;
use chrono::DateTime;
use chrono_tz::Tz;

/// A row as column name → value text (NULLs left out).
type Fields = BTreeMap<&'static str, String>;

struct Read {
    rows: Vec<Fields>,
    rejected: Vec<Rejected>,
    unknown: Vec<String>,
    sheet: Option<String>,
}

fn fields(row: &Row<'_, '_>) -> Fields {
    let mut out = BTreeMap::new();
    let mut columns = CALL_HISTORY.columns.iter();
    for value in row.values {
        let column = columns.next().unwrap();
        let text = match *value {
            Value::Null => continue,
            Value::Text(t) => t.to_string(),
            Value::Micros(t) => DateTime::from_timestamp_micros(t).unwrap().to_rfc3339(),
            Value::Whole(n) => n.to_string(),
            Value::Decimal(d) => cdr_ingest::model::Decimal(d).to_string(),
            Value::Code(text, code) => {
                out.insert(column.name, code.unwrap_or("?").to_string());
                format!("text:{text}")
            }
        };
        out.entry(column.name).or_insert(text);
    }
    out
}

fn collect<S: RowSource>(source: S, zone: Tz) -> Result<Read, FileError> {
    let mut read = Read {
        rows: Vec::new(),
        rejected: Vec::new(),
        unknown: Vec::new(),
        sheet: None,
    };
    read_rows_with::<_, ()>(
        &CALL_HISTORY,
        source,
        Typing { zone },
        |h| {
            read.unknown.clone_from(&h.unknown);
            Ok(())
        },
        |row, _| {
            match row {
                Ok(r) => read.rows.push(fields(&r)),
                Err(r) => read.rejected.push(r),
            }
            Ok(())
        },
    )?
    .unwrap();
    Ok(read)
}

fn read_export(path: &Path, zone: Tz) -> Result<Read, FileError> {
    let format = ExportFormat::of(&path.to_string_lossy()).unwrap();
    let file = File::open(path).unwrap();
    match format {
        ExportFormat::Csv => collect(csv_rows(file).unwrap(), zone),
        _ => {
            let mut workbook = Workbook::open(file, format)?;
            let rows = workbook.rows(&CALL_HISTORY)?;
            let sheet = rows.sheet.clone();
            let mut read = collect(rows, zone)?;
            read.sheet = Some(sheet);
            Ok(read)
        }
    }
}

fn spec(russian: bool, xlsx: bool, quirks: bool) -> ExportSpec {
    let from = 1_709_251_200; // 2024-03-01 00:00:00 UTC
    ExportSpec {
        seed: 7,
        from,
        to: from + 86_400,
        spacing: 900,
        russian,
        xlsx,
        utc_offset_minutes: 180,
        revised_before: from + 43_200,
        quirks,
    }
}

/// What a correct ingest stores for a generated call.
fn expected(call: &ExportedCall) -> Fields {
    let mut out = BTreeMap::new();
    let time = DateTime::from_timestamp(call.time, 0).unwrap();
    out.insert("time", time.to_rfc3339());
    out.insert(
        "type",
        if call.outbound { "outbound" } else { "inbound" }.to_string(),
    );
    out.insert("from", call.from.clone());
    out.insert("to", call.to.clone());
    for (name, value) in [
        ("operator", call.operator),
        ("queue", call.queue),
        ("campaign", call.campaign),
    ] {
        if !value.is_empty() {
            out.insert(name, value.to_string());
        }
    }
    out.insert("attempt_result", call.result.to_string());
    out.insert("ring_duration", call.ring.to_string());
    out.insert("talk_duration", call.talk.to_string());
    if let Some(cents) = call.price_cents {
        out.insert("price", format!("{}.{:02}0000", cents / 100, cents % 100));
    }
    out.insert("attempts", call.attempts.to_string());
    if !call.tags.is_empty() {
        out.insert("tags", call.tags.clone());
    }
    if !call.notes.is_empty() {
        out.insert("notes", call.notes.clone());
    }
    out.insert(
        "call_key",
        format!(
            "{}|{}|{}|{}|{}|{}",
            time.format("%Y-%m-%dT%H:%M:%SZ"),
            out["type"],
            digits(&call.from),
            digits(&call.to),
            call.operator,
            call.campaign
        )
        .replace("\\", "\\\\"),
    );
    out
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// The fields of `row` that [`expected`] has an opinion on.
fn comparable(row: &Fields, like: &Fields) -> Fields {
    row.iter()
        .filter(|(k, _)| like.contains_key(*k) || **k == "operator" || **k == "campaign")
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

#[test]
fn every_export_shape_gives_back_the_generators_calls() {
    let dir = tempfile::tempdir().unwrap();
    let moscow: Tz = "Europe/Moscow".parse().unwrap();
    for russian in [true, false] {
        for xlsx in [false, true] {
            for quirks in [false, true] {
                let spec = spec(russian, xlsx, quirks);
                let name = format!(
                    "{}-{}.{}",
                    if russian { "ru" } else { "en" },
                    if quirks { "quirks" } else { "plain" },
                    if xlsx { "xlsx" } else { "csv" }
                );
                let path = dir.path().join(&name);
                let manifest = write_export(&path, &spec).unwrap();
                let read = read_export(&path, moscow).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    read.rejected.len(),
                    manifest.bad_rows,
                    "{name}: {:?}",
                    read.rejected
                );
                assert_eq!(read.rows.len(), manifest.calls.len(), "{name}");
                for (row, call) in read.rows.iter().zip(&manifest.calls) {
                    let mut want = expected(call);
                    for (side, number) in [("from", &call.from), ("to", &call.to)] {
                        if xlsx && quirks && number.starts_with("+7916") {
                            // The sheet stores these numbers as numbers.
                            want.insert(side, number[1..].to_string());
                        }
                    }
                    assert_eq!(comparable(row, &want), want, "{name}");
                }
                if quirks {
                    let id = if russian {
                        "ID клиента"
                    } else {
                        "Customer ID"
                    };
                    assert_eq!(read.unknown, [id], "{name}");
                    assert!(read.rows[0]["extra"].contains(id), "{name}");
                    let bad = &read.rejected[0];
                    assert!(bad.reason.starts_with("time: "), "{name}: {}", bad.reason);
                    // The 3rd call; a quirky sheet has a title and a blank row above the header.
                    assert_eq!(bad.line, if xlsx { 6 } else { 4 }, "{name}");
                }
                assert_eq!(manifest.merged_rows > 0, xlsx && quirks, "{name}");
                if xlsx {
                    let sheet = if russian { "Звонки" } else { "Calls" };
                    assert_eq!(read.sheet.as_deref(), Some(sheet), "{name}");
                }
            }
        }
    }
}

#[test]
fn overlapping_exports_in_either_language_hold_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = spec(true, true, true);
    let later = ExportSpec {
        from: earlier.from + 43_200,
        to: earlier.to + 43_200,
        revised_before: earlier.to,
        ..spec(false, false, false)
    };
    let (a, b) = (dir.path().join("a.xlsx"), dir.path().join("b.csv"));
    write_export(&a, &earlier).unwrap();
    write_export(&b, &later).unwrap();
    let moscow: Tz = "Europe/Moscow".parse().unwrap();
    let keys = |path: &Path| -> BTreeMap<String, Fields> {
        read_export(path, moscow)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r["call_key"].clone(), r))
            .collect()
    };
    let (a, b) = (keys(&a), keys(&b));
    let shared: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    // The second half of the first day, less the quirky export's bad row.
    assert!(shared.len() >= 47, "{}", shared.len());
    let edited = shared
        .iter()
        .filter(|k| a[**k].get("notes") != b[**k].get("notes"))
        .count();
    assert!(edited > 0, "the later export edits some notes");
    for key in shared {
        assert_eq!(a[key]["time"], b[key]["time"]);
        assert_eq!(a[key]["attempt_result"], b[key]["attempt_result"]);
    }
}

#[test]
fn an_xls_written_by_another_program() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/call_history/export.xls");
    let read = read_export(&path, Tz::UTC).unwrap();
    assert_eq!(read.sheet.as_deref(), Some("Звонки"));
    assert!(read.rejected.is_empty(), "{:?}", read.rejected);
    let rows = read.rows;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["time"], "2024-03-01T09:00:05+00:00");
    assert_eq!(
        rows[0]["to"], "79990000001",
        "a phone number stored as a number"
    );
    assert_eq!(rows[0]["talk_duration"], "123");
    assert_eq!(rows[0]["price"], "3.600000");
    assert_eq!(rows[1]["attempt_result"], "abandoned");
    assert_eq!(rows[3]["talk_duration"], "3661");
    assert_eq!(
        rows[3]["campaign"], "Долги",
        "a merged cell's value fills the area"
    );
    assert_eq!(rows[3]["attempts"], "3");
}

#[test]
fn a_workbook_without_a_header_row_says_what_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.xlsx");
    write_export(
        &path,
        &ExportSpec {
            to: spec(true, true, false).from,
            ..spec(true, true, false)
        },
    )
    .unwrap();
    // An export of no calls still has its header: its sheet is found, with no rows.
    let read = read_export(&path, Tz::UTC).unwrap();
    assert!(read.rows.is_empty());

    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/call_history/export.xls");
    let mut workbook = Workbook::open(File::open(&fixture).unwrap(), ExportFormat::Xls).unwrap();
    let other_table = &cdr_ingest::formats::cdr_csv::CDR;
    let err = workbook.rows(other_table).err().unwrap().to_string();
    assert!(err.contains("no sheet (Сводка, Звонки)"), "{err}");
    assert!(err.contains("Сводка!1"), "{err}");

    let not_a_workbook = dir.path().join("junk.xlsx");
    std::fs::write(&not_a_workbook, b"PK not really").unwrap();
    let err = Workbook::open(File::open(&not_a_workbook).unwrap(), ExportFormat::Xlsx)
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with("cannot read the workbook"),
        "{err}"
    );
}

#[test]
fn a_parsed_export_is_written_as_parquet_with_its_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ru.xlsx");
    let manifest = write_export(&path, &spec(true, true, true)).unwrap();
    let mut workbook = Workbook::open(File::open(&path).unwrap(), ExportFormat::Xlsx).unwrap();
    let rows = workbook.rows(&CALL_HISTORY).unwrap();
    let source_file = format!("call_history/ru.xlsx!{}", rows.sheet);
    let moscow: Tz = "Europe/Moscow".parse().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let parsed = parse_rows(
        &CALL_HISTORY,
        rows,
        Typing { zone: moscow },
        &source_file,
        size,
    )
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    assert_eq!(parsed.rows_written as usize, manifest.calls.len());
    assert_eq!(parsed.quarantined as usize, manifest.bad_rows);
    // 2024-03-01 00:00 to 24:00 UTC is written as Moscow time: one UTC date.
    assert_eq!(parsed.parts.len(), 1);
}

/// Per call key: the `_source_file`, `notes` and `tags` of its row, checking one row
/// per key in the whole dataset.
fn stored(out: &Path) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let mut found = BTreeMap::new();
    for (key, _) in crate::util::tree(out) {
        if !key.starts_with("call_history/") || !key.ends_with(".parquet") {
            continue;
        }
        for batch in crate::util::read_parquet(&out.join(&key)) {
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap()
                    .as_string::<i32>()
                    .clone()
            };
            let (keys, files, notes, tags) = (
                text("call_key"),
                text("_source_file"),
                text("notes"),
                text("tags"),
            );
            for row in 0..batch.num_rows() {
                let value = (
                    files.value(row).to_string(),
                    notes.is_valid(row).then(|| notes.value(row).to_string()),
                    tags.is_valid(row).then(|| tags.value(row).to_string()),
                );
                let previous = found.insert(keys.value(row).to_string(), value);
                assert!(previous.is_none(), "{} twice ({key})", keys.value(row));
            }
        }
    }
    found
}

fn run_pass(config: &Path) -> crate::util::Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .env_remove("CDR_INGEST_CRASH_AT");
    crate::util::Run::from(command.output().unwrap())
}

/// SplitMix64, for the explorer's draws.
struct Draws(u64);

impl Draws {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Four overlapping exports (each a day, starting 12 hours after the one before, its
/// first half edited since the one before wrote it), of random language, format and
/// quirks, arriving in random passes in a random order: the dataset holds each call
/// once, as the newest export (by modification time) that has it readable says.
/// `CDR_TEST_CALL_HISTORY_SEEDS=N` runs seeds 1..=N (default 3),
/// `CDR_TEST_CALL_HISTORY_SEED=S` replays one.
#[test]
fn overlapping_exports_in_any_order_leave_each_call_once_from_the_newest_export() {
    let seeds: Vec<u64> = match std::env::var("CDR_TEST_CALL_HISTORY_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => (1..=std::env::var("CDR_TEST_CALL_HISTORY_SEEDS")
            .map_or(3, |n| n.parse().unwrap()))
            .collect(),
    };
    for seed in seeds {
        explore(seed);
    }
}

fn explore(seed: u64) {
    let mut draws = Draws(seed);
    let work = tempfile::tempdir().unwrap();
    let (drop, out) = (work.path().join("drop"), work.path().join("out"));
    let start = 1_709_251_200; // 2024-03-01 00:00:00 UTC
    let mut exports = Vec::new();
    for i in 0..4i64 {
        let (russian, xlsx, quirks) = (draws.next(2) == 0, draws.next(2) == 0, draws.next(2) == 0);
        let from = start + i * 43_200;
        let spec = ExportSpec {
            seed,
            from,
            to: from + 86_400,
            spacing: 1_800,
            russian,
            xlsx,
            utc_offset_minutes: 180,
            revised_before: from + 43_200,
            quirks,
        };
        let folder = ["", "team-a/", "2024/03/"][draws.next(3) as usize];
        let name = format!("{folder}export-{i}.{}", if xlsx { "xlsx" } else { "csv" });
        let scratch = work.path().join(format!("scratch-{i}"));
        let manifest = write_export(&scratch, &spec).unwrap();
        exports.push((name, scratch, manifest, russian, xlsx));
    }
    // What the dataset must hold: each key from the newest export that has it readable.
    let mut want: BTreeMap<String, (String, Option<String>, Option<String>)> = BTreeMap::new();
    for (name, _, manifest, _, xlsx) in exports.iter().rev() {
        let sheet = |russian: bool| if russian { "!Звонки" } else { "!Calls" };
        for call in &manifest.calls {
            let key = expected(call)["call_key"].clone();
            let file = if *xlsx {
                format!(
                    "call_history/{name}{}",
                    sheet(exports.iter().find(|e| &e.0 == name).unwrap().3)
                )
            } else {
                format!("call_history/{name}")
            };
            let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
            want.entry(key)
                .or_insert((file, some(&call.notes), some(&call.tags)));
        }
    }
    // Arrival: a random order, in one to three passes.
    let mut order: Vec<usize> = (0..exports.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, draws.next(i as u64 + 1) as usize);
    }
    let passes = 1 + draws.next(3) as usize;
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"call_history\"]\ncall_history_timezone = \"Europe/Moscow\"\n",
            drop.display(),
            out.display()
        ),
    )
    .unwrap();
    for pass in 0..passes {
        let arriving: Vec<usize> = order
            .iter()
            .copied()
            .skip(pass * order.len() / passes)
            .take((pass + 1) * order.len() / passes - pass * order.len() / passes)
            .collect();
        for i in arriving {
            let (name, scratch, ..) = &exports[i];
            let target = drop.join("call_history").join(name);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(scratch, &target).unwrap();
            // Export i was made at 2024-03-03 + i hours.
            std::fs::File::options()
                .write(true)
                .open(&target)
                .unwrap()
                .set_modified(crate::util::at(1_709_424_000 + 3_600 * i as u64))
                .unwrap();
        }
        let run = run_pass(&config);
        assert_eq!(run.code, 0, "seed {seed}, pass {pass}: {run:?}");
    }
    let got = stored(&out);
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "seed {seed}: missing {missing:?}, extra {extra:?}"
    );
    for (key, value) in &want {
        assert_eq!(&got[key], value, "seed {seed}: {key}");
    }
    // Every bad row is in the quarantine with its file, sheet and row.
    let quarantined: usize = crate::util::tree(&out)
        .iter()
        .filter(|(k, _)| k.starts_with("_quarantine/call_history/"))
        .map(|(_, bytes)| bytes.iter().filter(|b| **b == b'\n').count())
        .sum();
    let bad: usize = exports.iter().map(|e| e.2.bad_rows).sum();
    assert_eq!(quarantined, bad, "seed {seed}");
}
