//! What the generator's tests share: temporary folders, a CSV splitter of their own (the
//! tests, like the generator, do not use `src/formats/`: they check the generator's
//! bytes, not the parsers'), and the check of a CDR file against its manifest.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use chrono::{NaiveDate, Timelike};

use super::calls::QUEUES;
use super::text::push_field;
use super::{CDR_HEADER, DayManifest, DropSpec, EXTRA_COLUMN, Quirks};

pub(super) fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cdr-gen-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn spec_all_quirks() -> DropSpec {
    DropSpec {
        cdr_rows_per_day: 400,
        recording_bytes: 0..=3000,
        quirks: Quirks::all(),
        ..DropSpec::new(42, date("2024-03-01"), date("2024-03-03"))
    }
}

/// Minimal RFC 4180 splitter for one line (no line breaks inside fields).
pub(super) fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let field = fields.last_mut().unwrap();
        match (quoted, c) {
            (false, ',') => fields.push(String::new()),
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            _ => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote in {line:?}");
    fields
}

/// (header, data lines) of a CSV, BOM and CRLF removed, checked consistent.
pub(super) fn csv_lines(bytes: &[u8], bom_crlf: bool) -> (String, Vec<String>) {
    let text = std::str::from_utf8(bytes).unwrap();
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            assert!(bom_crlf, "unexpected BOM");
            rest
        }
        None => {
            assert!(!bom_crlf, "missing BOM");
            text
        }
    };
    let eol = if bom_crlf { "\r\n" } else { "\n" };
    let body = text
        .strip_suffix(eol)
        .expect("file ends with a line ending");
    let mut lines = body.split(eol).map(|l| {
        assert!(!l.contains(['\r', '\n']), "stray line break in {l:?}");
        l.to_owned()
    });
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// A CDR (fields in [`CDR_HEADER`] order) of a call to a queue's number.
pub(super) fn is_queue_cdr(f: &[String]) -> bool {
    QUEUES.iter().any(|q| q.ddi == f[5] && q.name == f[6])
}

pub(super) fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// Classifies every row of one CDR file as the ingester would, checks the formats,
/// and compares the counts with the manifest. Returns the day's own valid rows by id,
/// fields in [`CDR_HEADER`] order.
pub(super) fn check_cdr_file(
    root: &Path,
    spec: &DropSpec,
    m: &DayManifest,
) -> HashMap<String, Vec<String>> {
    let (header, lines) = csv_lines(
        &fs::read(root.join(&m.cdr_path)).unwrap(),
        spec.quirks.bom_crlf,
    );
    let expected_header = if spec.quirks.extra_column {
        CDR_HEADER.replace("dst_name,", "dst_name,x_custom,")
    } else {
        CDR_HEADER.to_owned()
    };
    assert_eq!(header, expected_header);
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    assert_eq!(lines.len(), m.cdr_rows);

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut own: HashMap<String, Vec<String>> = HashMap::new();
    let (mut bad, mut identical, mut empty_charges) = (0, 0, 0);
    let mut last_own_calldate = String::new();
    let mut per_hour = [0usize; 24];
    let (mut answered, mut billsec, mut charge_total) = (0, 0u64, 0u64);
    for (i, line) in lines.iter().enumerate() {
        let f = split_csv(line);
        // Every line round-trips: re-quoting the split fields gives the same bytes.
        let mut rejoined = Vec::new();
        for (j, field) in f.iter().enumerate() {
            if j > 0 {
                rejoined.push(b',');
            }
            push_field(&mut rejoined, field);
        }
        assert_eq!(String::from_utf8(rejoined).unwrap(), *line);

        if f.len() != columns.len() {
            bad += 1;
            continue;
        }
        let id = &f[col("id")];
        let calldate =
            chrono::NaiveDateTime::parse_from_str(&f[col("calldate")], "%Y-%m-%d %H:%M:%S");
        let duration = f[col("duration")].parse::<u64>();
        let (Ok(calldate), Ok(duration)) = (calldate, duration) else {
            bad += 1;
            continue;
        };
        if let Some(prev) = seen.get(id) {
            if prev == line {
                identical += 1;
            } else {
                bad += 1;
            }
            continue;
        }
        seen.insert(id.clone(), line.clone());

        // id = <epoch of calldate>.<seq>
        let (epoch, seq) = id.split_once('.').unwrap();
        assert_eq!(
            epoch.parse::<i64>().unwrap(),
            calldate.and_utc().timestamp(),
            "{line}"
        );
        seq.parse::<u32>().unwrap();
        let bs: u64 = f[col("billsec")].parse().unwrap();
        let disposition = &f[col("disposition")];
        assert!(bs <= duration, "{line}");
        assert!(["ANSWERED", "NO ANSWER", "BUSY", "FAILED"].contains(&disposition.as_str()));
        if disposition != "ANSWERED" {
            assert_eq!(bs, 0, "{line}");
        }
        let t_cause = f[col("t_cause")].as_str();
        let causes: &[&str] = match disposition.as_str() {
            "ANSWERED" => &["Normal Clearing"],
            "NO ANSWER" => &["No Answer", "Cancelled"],
            "BUSY" => &["Busy"],
            _ => &["Unallocated Number", "Congestion", "Call Rejected"],
        };
        assert!(causes.contains(&t_cause), "{line}");
        let outbound = !f[col("src_id")].is_empty();
        assert_eq!(outbound, !f[col("destination")].is_empty(), "{line}");
        assert_eq!(outbound, !f[col("rate")].is_empty(), "{line}");
        let charge = &f[col("charge")];
        if outbound && !charge.is_empty() {
            let e4 = |s: &str| {
                let (int, frac) = s.split_once('.').unwrap();
                assert_eq!(frac.len(), 4, "{s}");
                int.parse::<u64>().unwrap() * 10_000 + frac.parse::<u64>().unwrap()
            };
            let rate = e4(&f[col("rate")]);
            // Half-up rounding of rate * billsec / 60, checked via exact bounds.
            let c = e4(charge);
            assert!(
                c * 60 <= rate * bs + 30 && rate * bs + 30 < (c + 1) * 60,
                "{line}"
            );
            if i >= m.cdr_repeated_rows {
                charge_total += c;
            }
        } else if outbound {
            assert_eq!(disposition, "ANSWERED");
            empty_charges += 1;
        } else {
            assert!(charge.is_empty());
        }
        for number in [&f[col("src")], &f[col("dst")]] {
            let ok = number == "anonymous"
                || (number.len() == 3 && (101..=140).contains(&number.parse::<u32>().unwrap_or(0)))
                || (number.starts_with('+') && number[1..].bytes().all(|b| b.is_ascii_digit()))
                || (number.starts_with('0') && number.bytes().all(|b| b.is_ascii_digit()));
            assert!(ok, "bad number {number} in {line}");
        }
        let clid = &f[col("clid")];
        let src = &f[col("src")];
        assert!(
            clid == src || clid.ends_with(&format!("\" <{src}>")),
            "{line}"
        );

        if i < m.cdr_repeated_rows {
            assert_eq!(calldate.date(), m.date.pred_opt().unwrap());
            continue;
        }
        assert_eq!(calldate.date(), m.date, "{line}");
        let calldate_text = f[col("calldate")].clone();
        assert!(
            calldate_text >= last_own_calldate,
            "rows out of calldate order"
        );
        last_own_calldate = calldate_text;
        per_hour[calldate.hour() as usize] += 1;
        answered += usize::from(disposition == "ANSWERED");
        billsec += bs;
        let id = id.clone();
        let mut f = f;
        if spec.quirks.extra_column {
            f.remove(col(EXTRA_COLUMN));
        }
        own.insert(id, f);
    }
    assert_eq!(seen.len(), m.cdr_unique_ids);
    assert_eq!(bad, m.cdr_bad_rows);
    assert_eq!(identical, m.cdr_identical_duplicates);
    assert_eq!(empty_charges, m.cdr_empty_charges);
    assert_eq!(own.len(), m.calls);
    assert_eq!(answered, m.calls_answered);
    assert_eq!(billsec, m.total_billsec);
    assert_eq!(charge_total, m.total_charge_e4);
    assert_eq!(per_hour, m.calls_per_hour);
    own
}
