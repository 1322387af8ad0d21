//! Parsing one file (a CSV, or any row source) into per-date Parquet files and a
//! quarantine, deduplicating by id. Runs on a blocking thread; everything it produces
//! is still in temporary files.

use std::fs::File;
use std::io::Read;

use std::collections::{BTreeMap, HashSet};

use arrow_array::UInt32Array;
use arrow_select::take::take_record_batch;
use chrono::NaiveDate;

use super::IngestError;
use super::aside::Aside;
use crate::dedup::{self, FILTER_BUDGET, IdSet, Probe, Seen};
use crate::formats::csv_rows::CsvRows;
use crate::formats::rows::{Record, RowSource};
use crate::formats::table::{self, FileError, Header, Table, Typing};
use crate::sink::partitioned::{Part, PartitionedWriter};
use crate::sink::quarantine::{QuarantineEntry, QuarantineWriter};

/// What parsing one file produced.
pub struct Parsed {
    pub table: &'static Table,
    pub parts: Vec<Part>,
    pub quarantine: Option<File>,
    pub rows_written: u64,
    pub quarantined: u64,
    pub duplicates_dropped: u64,
    pub unknown_columns: Vec<String>,
}

/// Why a file could not be parsed or spooled.
#[derive(Debug)]
pub enum ParseError {
    Format(FileError),
    Spool(String),
}

impl ParseError {
    pub fn with_path(self, path: &str) -> IngestError {
        match self {
            ParseError::Format(source) => IngestError::Format {
                path: path.to_string(),
                source,
            },
            ParseError::Spool(detail) => IngestError::Spool { detail },
        }
    }
}

/// Bytes per row assumed when sizing the duplicate check from a file's size; the
/// provider's rows are about 140 bytes, so this errs on the side of room.
const BYTES_PER_ROW_ESTIMATE: u64 = 100;

/// Parses `input` as `table`; `source_file` is recorded in every row and quarantine
/// entry; `size` (the file's size in bytes, if known) sizes the duplicate check.
pub fn parse(
    table: &'static Table,
    input: impl Read,
    source_file: &str,
    size: u64,
) -> Result<Parsed, ParseError> {
    parse_rows(
        table,
        CsvRows::new(input),
        Typing::default(),
        source_file,
        size,
    )
}

/// [`parse`] for any row source, typed with `typing`.
pub fn parse_rows(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    source_file: &str,
    size: u64,
) -> Result<Parsed, ParseError> {
    parse_rows_within(table, source, typing, (source_file, size, FILTER_BUDGET))
}

/// [`parse_rows`] with at most `budget` bytes for the duplicate check's filter.
fn parse_rows_within(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    file: (&str, u64, usize),
) -> Result<Parsed, ParseError> {
    let mut writer = PartitionedWriter::new(table);
    let mut quarantine = QuarantineWriter::new();
    let counts = parse_into_within(
        table,
        source,
        typing,
        file,
        (&mut writer, &mut quarantine),
        |_, _| {},
    )?;
    Ok(Parsed {
        table,
        parts: writer
            .finish()
            .map_err(|e| ParseError::Spool(e.to_string()))?,
        quarantine: quarantine
            .finish()
            .map_err(|e| ParseError::Spool(e.to_string()))?,
        rows_written: counts.rows_written,
        quarantined: counts.quarantined,
        duplicates_dropped: counts.duplicates_dropped,
        unknown_columns: counts.unknown_columns,
    })
}

/// What [`parse_into`] added for one file.
#[derive(Debug, Default)]
pub struct Counts {
    pub rows_written: u64,
    pub quarantined: u64,
    pub duplicates_dropped: u64,
    pub unknown_columns: Vec<String>,
}

/// Parses one file into writers that other files of a batch share (one object per
/// date for the whole batch); `kept` sees the id and date of each row written, after
/// it was.
pub fn parse_into(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    source_file: &str,
    size: u64,
    sinks: (&mut PartitionedWriter, &mut QuarantineWriter),
    kept: impl FnMut(&str, NaiveDate),
) -> Result<Counts, ParseError> {
    parse_into_within(
        table,
        source,
        typing,
        (source_file, size, FILTER_BUDGET),
        sinks,
        kept,
    )
}

/// [`parse_into`] with at most `budget` bytes for the duplicate check's filter.
fn parse_into_within(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    (source_file, size, budget): (&str, u64, usize),
    (writer, quarantine): (&mut PartitionedWriter, &mut QuarantineWriter),
    mut kept: impl FnMut(&str, NaiveDate),
) -> Result<Counts, ParseError> {
    let (rows_before, quarantined_before) = (writer.rows(), quarantine.count());
    let mut ids = IdSet::new(size / BYTES_PER_ROW_ESTIMATE, budget);
    let mut aside = Aside::new(table);
    let mut unknown_columns = Vec::new();
    let on_header = |header: &Header| -> Result<(), String> {
        unknown_columns.clone_from(&header.unknown);
        Ok(())
    };
    let set_aside = |quarantine: &mut QuarantineWriter, line: u64, raw: String, reason: String| {
        quarantine
            .push(&QuarantineEntry {
                file: source_file.to_string(),
                line,
                reason,
                raw,
            })
            .map_err(|e| e.to_string())
    };
    let result = table::read_rows_with(table, source, typing, on_header, |row, record| match row {
        Err(rejected) => set_aside(quarantine, rejected.line, rejected.raw, rejected.reason),
        Ok(row) => match ids.check(row.id, row.fingerprint).map_err(spool)? {
            Probe::New => {
                writer
                    .push(row.date.utc_date(), |batch| batch.push(&row, source_file))
                    .map_err(|e| e.to_string())?;
                kept(row.id, row.date.utc_date());
                Ok(())
            }
            Probe::Maybe => aside.push(&row, &record.raw(), source_file).map_err(spool),
        },
    })
    .map_err(ParseError::Format)?;
    result.map_err(ParseError::Spool)?;
    let duplicates_dropped =
        decide_set_aside(aside, ids, source_file, (writer, quarantine), &mut kept)
            .map_err(ParseError::Spool)?;
    Ok(Counts {
        rows_written: writer.rows() - rows_before,
        quarantined: quarantine.count() - quarantined_before,
        duplicates_dropped,
        unknown_columns,
    })
}

/// Decides the rows set aside, in the order they came, against the first rows of
/// their ids: a first row is written after the others, an identical repeat dropped
/// (counted, the return value), a conflicting one quarantined.
fn decide_set_aside(
    aside: Aside,
    ids: IdSet,
    source_file: &str,
    (writer, quarantine): (&mut PartitionedWriter, &mut QuarantineWriter),
    mut kept: impl FnMut(&str, NaiveDate),
) -> Result<u64, String> {
    let Some(aside) = aside.finish().map_err(spool)? else {
        return Ok(0);
    };
    let mut wanted = HashSet::new();
    let mut notes = aside.notes().map_err(spool)?;
    while let Some(note) = notes.next_note().map_err(spool)? {
        wanted.insert(dedup::hash(&note.id));
    }
    let mut firsts = ids.firsts(&wanted).map_err(spool)?;
    drop(wanted);
    let mut notes = aside.notes().map_err(spool)?;
    let mut dropped = 0;
    for batch in aside.rows().map_err(spool)? {
        let batch = batch.map_err(spool)?;
        let mut written: BTreeMap<NaiveDate, Vec<u32>> = BTreeMap::new();
        for index in 0..batch.num_rows() {
            let note = notes
                .next_note()
                .map_err(spool)?
                .ok_or_else(|| spool("a set-aside row without its note"))?;
            match firsts.check(&note.id, note.fingerprint) {
                Seen::First => {
                    let date = note.date.utc_date();
                    written.entry(date).or_default().push(index as u32);
                    kept(&note.id, date);
                }
                Seen::Identical => dropped += 1,
                Seen::Conflicting => quarantine
                    .push(&QuarantineEntry {
                        file: source_file.to_string(),
                        line: note.line,
                        reason: format!(
                            "id {:?} appeared earlier in the file with different values; the first row was kept",
                            note.id
                        ),
                        raw: note.raw,
                    })
                    .map_err(spool)?,
            }
        }
        for (date, rows) in written {
            let rows = take_record_batch(&batch, &UInt32Array::from(rows)).map_err(spool)?;
            writer.push_batch(date, rows).map_err(spool)?;
        }
    }
    Ok(dropped)
}

/// A spool (temporary file) error as the parser reports it.
fn spool(error: impl std::fmt::Display) -> String {
    format!("cannot spool rows set aside as possible repeats: {error}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{Read as _, Seek as _};

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{RecordBatch, UInt32Array};
    use arrow_select::concat::concat_batches;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::formats::cdr_csv::CDR;
    use crate::sink::table_parquet::schema;

    /// splitmix64: the test's random choices, from its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One seed's CDR file, in a shape of its own (column order, optional and unknown
    /// columns, quoting, line ends, repeats identical and conflicting, bad rows), and
    /// what the one-row-per-id rule makes of it: the lines kept, per date; the lines
    /// quarantined; the identical repeats.
    struct Case {
        csv: Vec<u8>,
        kept: BTreeMap<NaiveDate, Vec<u64>>,
        quarantined: Vec<u64>,
        identical: u64,
    }

    fn case(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let mut columns: Vec<&str> = CDR
            .columns
            .iter()
            .filter(|c| c.required || rng.below(3) > 0)
            .map(|c| c.name)
            .collect();
        if rng.below(2) == 0 {
            columns.push("note");
        }
        for i in (1..columns.len()).rev() {
            columns.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let newline = if rng.below(2) == 0 { "\n" } else { "\r\n" };
        let rows = 200 + rng.below(1_500);
        let pool = 1 + rows * (1 + rng.below(4)) / 5;
        let mut csv = columns.join(",") + newline;
        let (mut kept, mut quarantined, mut identical) = (BTreeMap::new(), Vec::new(), 0);
        let mut firsts: HashMap<String, Vec<String>> = HashMap::new();
        for line in 2..rows + 2 {
            let n = rng.below(pool);
            let id = format!("{}.{n}", 1_709_251_200 + n / 7);
            // A repeat takes its first row's values, mostly.
            let mut values: HashMap<&str, String> = match firsts.get(&id) {
                Some(first) if rng.below(4) > 0 => {
                    columns.iter().copied().zip(first.iter().cloned()).collect()
                }
                _ => {
                    let day = if n.is_multiple_of(9) {
                        "2024-02-29"
                    } else {
                        "2024-03-01"
                    };
                    columns
                        .iter()
                        .map(|&c| {
                            let value = match c {
                                "id" => id.clone(),
                                "calldate" => format!("{day} {:02}:{:02}:00", n % 24, n % 60),
                                "duration" | "billsec" => rng.below(600).to_string(),
                                "dst_name" => "Support, \"2nd\" line".to_string(),
                                "disposition" => "ANSWERED".to_string(),
                                "rate" => "0.0120".to_string(),
                                _ => format!("+48{}", rng.below(1_000_000)),
                            };
                            (c, value)
                        })
                        .collect()
                }
            };
            let bad = rng.below(40) == 0;
            if bad {
                values.insert("calldate", "yesterday".to_string());
            }
            let fields: Vec<String> = columns.iter().map(|c| values[c].clone()).collect();
            let quoted: Vec<String> = fields
                .iter()
                .map(|f| {
                    if f.contains([',', '"']) || rng.below(5) == 0 {
                        format!("\"{}\"", f.replace('"', "\"\""))
                    } else {
                        f.clone()
                    }
                })
                .collect();
            csv.push_str(&(quoted.join(",") + newline));
            if bad {
                quarantined.push(line);
                continue;
            }
            match firsts.get(&id) {
                None => {
                    let date = values["calldate"][..10].parse().unwrap();
                    kept.entry(date).or_insert_with(Vec::new).push(line);
                    firsts.insert(id, fields);
                }
                Some(first) if *first == fields => identical += 1,
                Some(_) => quarantined.push(line),
            }
        }
        quarantined.sort();
        Case {
            csv: csv.into_bytes(),
            kept,
            quarantined,
            identical,
        }
    }

    /// Each part's rows, in line order.
    fn rows_by_line(parsed: &mut Parsed) -> BTreeMap<NaiveDate, RecordBatch> {
        let mut found = BTreeMap::new();
        for part in &parsed.parts {
            let file = part.file.try_clone().unwrap();
            let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let all = concat_batches(&schema(&CDR), &batches).unwrap();
            let lines = all
                .column_by_name("_source_line")
                .unwrap()
                .as_primitive::<Int64Type>();
            let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
            order.sort_by_key(|&i| lines.value(i as usize));
            found.insert(
                part.date,
                take_record_batch(&all, &UInt32Array::from(order)).unwrap(),
            );
        }
        found
    }

    fn lines(batch: &RecordBatch) -> Vec<u64> {
        let lines = batch.column_by_name("_source_line").unwrap();
        let lines = lines.as_primitive::<Int64Type>();
        lines.values().iter().map(|&l| l as u64).collect()
    }

    fn quarantine_text(parsed: &mut Parsed) -> String {
        let mut text = String::new();
        if let Some(file) = &mut parsed.quarantine {
            file.rewind().unwrap();
            file.read_to_string(&mut text).unwrap();
        }
        text
    }

    /// Seeded explorer: a file with more ids than the filter's budget (one block of
    /// 32 bytes: nearly every row is set aside and decided at the end) gives the rows,
    /// quarantine and counts the in-memory path gives, and both follow the rule.
    /// `CDR_TEST_DEDUP_SEEDS=N` runs seeds 1..=N (default 24), `CDR_TEST_DEDUP_SEED=S`
    /// replays one.
    #[test]
    fn a_file_over_the_id_budget_gives_what_the_in_memory_check_gives() {
        let seeds: Vec<u64> = match std::env::var("CDR_TEST_DEDUP_SEED") {
            Ok(seed) => vec![seed.parse().unwrap()],
            Err(_) => {
                let n = std::env::var("CDR_TEST_DEDUP_SEEDS").map_or(24, |n| n.parse().unwrap());
                (1..=n).collect()
            }
        };
        for seed in seeds {
            let case = case(seed);
            let parse = |budget| {
                parse_rows_within(
                    &CDR,
                    CsvRows::new(case.csv.as_slice()),
                    Typing::default(),
                    ("test.csv", case.csv.len() as u64, budget),
                )
                .unwrap()
            };
            let (mut memory, mut tiny) = (parse(FILTER_BUDGET), parse(0));
            let (rows, tiny_rows) = (rows_by_line(&mut memory), rows_by_line(&mut tiny));
            let kept: BTreeMap<NaiveDate, Vec<u64>> =
                rows.iter().map(|(d, b)| (*d, lines(b))).collect();
            assert_eq!(kept, case.kept, "seed {seed}: rows kept (in memory)");
            assert_eq!(rows, tiny_rows, "seed {seed}: rows, tiny budget");
            assert_eq!(
                memory.duplicates_dropped, case.identical,
                "seed {seed}: identical repeats"
            );
            assert_eq!(
                tiny.duplicates_dropped, case.identical,
                "seed {seed}: identical repeats, tiny budget"
            );
            assert_eq!(
                (memory.quarantined, tiny.quarantined),
                (case.quarantined.len() as u64, case.quarantined.len() as u64),
                "seed {seed}: quarantined"
            );
            assert_eq!(
                quarantine_text(&mut memory),
                quarantine_text(&mut tiny),
                "seed {seed}: quarantine"
            );
        }
    }
}
