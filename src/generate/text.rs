//! How the drop spells things, the same in every feed (the CSV dialect of the module doc):
//! integers, 4-place decimals and UTC times written straight into the line's buffer (no
//! allocation per field), CSV fields quoted only when they must be, and the line endings
//! and BOM of the `bom_crlf` quirk.

use std::io::{self, Write};

use chrono::{DateTime, Datelike, Timelike};

use super::DropSpec;

pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_2(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// `YYYY-MM-DD HH:MM:SS` with the given separators (`_` for recording names).
pub(super) fn push_datetime(out: &mut Vec<u8>, epoch: i64, date_sep: u8, mid: u8, time_sep: u8) {
    let t = DateTime::from_timestamp(epoch, 0).expect("validated date range");
    push_u64(out, t.year() as u64);
    out.push(date_sep);
    push_2(out, t.month());
    out.push(date_sep);
    push_2(out, t.day());
    out.push(mid);
    push_2(out, t.hour());
    out.push(time_sep);
    push_2(out, t.minute());
    out.push(time_sep);
    push_2(out, t.second());
}

/// A decimal with 4 places from units of 0.0001.
pub(super) fn push_e4(out: &mut Vec<u8>, v: u64) {
    push_u64(out, v / 10_000);
    out.push(b'.');
    let frac = (v % 10_000) as u32;
    push_2(out, frac / 100);
    push_2(out, frac % 100);
}

/// One CSV field, quoted only when it must be.
pub(super) fn push_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn eol(spec: &DropSpec) -> &'static [u8] {
    if spec.quirks.bom_crlf { b"\r\n" } else { b"\n" }
}

pub(super) fn write_csv_header(
    w: &mut impl Write,
    spec: &DropSpec,
    header: &str,
) -> io::Result<()> {
    if spec.quirks.bom_crlf {
        w.write_all(BOM)?;
    }
    w.write_all(header.as_bytes())?;
    w.write_all(eol(spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::{TempDir, check_cdr_file, spec_all_quirks, split_csv};
    use crate::generate::{Quirks, write_drop};

    #[test]
    fn quoting_round_trips() {
        let quoted = |s: &str| {
            let mut out = Vec::new();
            push_field(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(quoted("Support, 2nd line"), r#""Support, 2nd line""#);
        assert_eq!(quoted(","), r#"",""#);
        assert_eq!(
            quoted(r#"Anna "Ania" Nowicka"#),
            r#""Anna ""Ania"" Nowicka""#
        );
        assert_eq!(quoted("Zoë Łukasiewicz"), "Zoë Łukasiewicz");
        assert_eq!(
            split_csv("1,\"Support, 2nd line\",\"\"\"Jan\"\" <+48221234567>\",,x"),
            ["1", "Support, 2nd line", "\"Jan\" <+48221234567>", "", "x"]
        );

        let spec = DropSpec {
            cdr_rows_per_day: 3000,
            recordings_per_day: Some(0),
            ..spec_all_quirks()
        };
        let spec = DropSpec {
            quirks: Quirks::default(),
            to: spec.from,
            ..spec
        };
        let dir = TempDir::new("quoting");
        let m = write_drop(&dir.0, &spec).unwrap();
        let own = check_cdr_file(&dir.0, &spec, &m.days[0]);
        let has = |pred: &dyn Fn(&Vec<String>) -> bool| own.values().any(pred);
        assert!(has(&|f| f[6] == "Support, 2nd line"));
        assert!(has(&|f| f[6] == "Anna \"Ania\" Nowicka"));
        assert!(has(&|f| f[6] == "Zoë Łukasiewicz"));
        assert!(has(&|f| f[4].starts_with("\"Jan Kowalski\" <+48")));
        assert!(has(&|f| f[4] == "anonymous" && f[3] == "anonymous"));
        assert!(has(&|f| f[5].starts_with("00")));
        assert!(has(&|f| f[5].starts_with('0') && !f[5].starts_with("00")));
        assert!(has(&|f| f[3].starts_with("+1")));
    }
}
