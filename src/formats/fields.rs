//! Scalar field parsers shared by every CSV format: timestamps, integers, money.
//!
//! Each returns a message fit for the quarantine's `reason` when the text is wrong.
//! The strict ones (`parse_timestamp`, `parse_seconds`, `parse_decimal`) are for the
//! PBX's machine-written files; the lenient ones (`parse_local_timestamp`,
//! `parse_duration`, `parse_money`) for exports people make from a web interface, in
//! its language, and open in a spreadsheet.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::model::{DECIMAL_PRECISION, DECIMAL_SCALE, Decimal, TimestampMicros};

const EXPECTED_TIMESTAMP: &str = "expected YYYY-MM-DD HH:MM:SS in UTC";

/// Parses `YYYY-MM-DD HH:MM:SS` (or `T` between), with optional fraction of up to six
/// digits and an optional `Z` or `±HH:MM` offset, into UTC microseconds.
pub fn parse_timestamp(text: &str) -> Result<TimestampMicros, String> {
    let bad = || format!("{text:?} is not a date and time ({EXPECTED_TIMESTAMP})");
    let b = text.trim().as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad());
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(bad)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 6 {
            return Err(format!(
                "{text:?} has a fraction of a second with {digits} digits (1 to 6 allowed)"
            ));
        }
        let value = fraction[..digits]
            .iter()
            .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
        micros = value * 10i64.pow(6 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let minutes = i64::from((h1 - b'0') * 10 + (h2 - b'0')) * 60
                + i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return Err(bad()),
    };
    let days = i64::from(
        date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
            .num_days() as i32,
    );
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Ok(TimestampMicros(seconds * 1_000_000 + micros))
}

/// Parses a whole non-negative number of seconds.
pub fn parse_seconds(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole non-negative number"));
    }
    t.parse().map_err(|_| format!("{text:?} is too large"))
}

/// Parses a decimal like `0.0120` or `-3` exactly (no floats) with up to
/// [`DECIMAL_SCALE`] digits after the point; more digits are refused, not rounded.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!(
            "{text:?} is not a decimal number (expected e.g. 0.0120)"
        ));
    }
    let fraction = fraction.trim_end_matches('0');
    let scale = DECIMAL_SCALE as usize;
    if fraction.len() > scale {
        return Err(format!(
            "{text:?} has more than {scale} digits after the point"
        ));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > DECIMAL_PRECISION as usize - scale {
        return Err(format!("{text:?} is too large"));
    }
    let mut value: i128 = 0;
    for c in whole.bytes().chain(fraction.bytes()) {
        value = value * 10 + i128::from(c - b'0');
    }
    value *= 10i128.pow((scale - fraction.len()) as u32);
    Ok(Decimal(if negative { -value } else { value }))
}

const EXPECTED_LOCAL: &str = "expected YYYY-MM-DD HH:MM:SS or DD.MM.YYYY HH:MM:SS, with or without a zone, or an Excel serial date";

/// Parses a call time as an export writes it: `YYYY-MM-DD HH:MM:SS` (or `T` between,
/// an optional fraction, an optional `Z`/`±HH:MM`), `DD.MM.YYYY HH:MM:SS`, either
/// without the seconds, or an Excel serial date (days since 1899-12-30, the fraction
/// the time of day, rounded to the second). A time without a zone is the wall-clock
/// time in `zone`; in a clock change's repeated hour the earlier instant is taken.
pub fn parse_local_timestamp(text: &str, zone: Tz) -> Result<TimestampMicros, String> {
    let bad = || format!("{text:?} is not a date and time ({EXPECTED_LOCAL})");
    let t = text.trim();
    let iso = if let Some(serial) = excel_serial(t) {
        serial.ok_or_else(bad)?
    } else if t.as_bytes().get(2) == Some(&b'.') && t.as_bytes().get(5) == Some(&b'.') {
        let (date, time) = t.split_once([' ', 'T']).ok_or_else(bad)?;
        let mut parts = date.splitn(3, '.');
        let (Some(day), Some(month), Some(year)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        format!(
            "{year}-{month}-{day} {}",
            time.trim_start_matches([' ', ','])
        )
    } else {
        t.to_string()
    };
    // Seconds may be left out: `HH:MM`, then the end or a fraction-less zone.
    let iso = match iso.as_bytes().get(16) {
        None | Some(b'Z' | b'+' | b'-') if iso.len() >= 16 => {
            format!("{}:00{}", &iso[..16], &iso[16..])
        }
        _ => iso,
    };
    let has_zone = iso.len() > 19 && iso[19..].contains(['Z', '+', '-']);
    let micros = parse_timestamp(&iso).map_err(|_| bad())?;
    if has_zone {
        return Ok(micros);
    }
    let naive = DateTime::from_timestamp_micros(micros.0)
        .ok_or_else(bad)?
        .naive_utc();
    local_to_utc(naive, zone)
        .map(|utc| TimestampMicros(utc.and_utc().timestamp_micros()))
        .ok_or_else(|| {
            format!("{text:?} does not exist in time zone {zone} (the clock was put forward then)")
        })
}

/// The UTC time of a wall-clock time in `zone`, the earlier one when the clock was put
/// back; `None` when the clock skipped it.
fn local_to_utc(naive: NaiveDateTime, zone: Tz) -> Option<NaiveDateTime> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.naive_utc()),
        LocalResult::None => None,
    }
}

/// An Excel serial date (`45352.5729…`) as ISO text without a zone: `None` when the text
/// is not a plain number, `Some(None)` when it is one outside Excel's dates.
fn excel_serial(text: &str) -> Option<Option<String>> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if !(1.0..2_958_466.0).contains(&value) {
        return Some(None);
    }
    let seconds = (value * 86_400.0).round() as i64;
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let time = epoch.checked_add_signed(chrono::Duration::seconds(seconds))?;
    Some(Some(time.format("%Y-%m-%d %H:%M:%S").to_string()))
}

/// Parses a duration: whole seconds (`83`), `MM:SS` (`01:23`) or `HH:MM:SS`
/// (`1:01:23`; hours may pass 24), into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration (expected seconds, MM:SS or HH:MM:SS)");
    let t = text.trim();
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    let mut seconds: i64 = 0;
    for (index, part) in parts.iter().enumerate() {
        let value: i64 = part.parse().map_err(|_| bad())?;
        // Only the first part may be 60 or more (`125` seconds, `100:00:00`).
        if index > 0 && (value > 59 || part.len() != 2) {
            return Err(bad());
        }
        seconds = seconds
            .checked_mul(60)
            .and_then(|s| s.checked_add(value))
            .ok_or_else(bad)?;
    }
    Ok(seconds)
}

/// Parses a price as a person's spreadsheet shows it: `0.12`, `0,12`, `1 234,50`,
/// `1,234.50`, with a currency sign or word around it (`₽`, `руб.`, `$`, `RUB`), into
/// an exact [`Decimal`] (see [`parse_decimal`]).
pub fn parse_money(text: &str) -> Result<Decimal, String> {
    let bad = || format!("{text:?} is not an amount of money (expected e.g. 0.12 or 0,12)");
    let number = text
        .trim_start_matches(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | ',')))
        .trim_end_matches(|c: char| !c.is_ascii_digit());
    let compact: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(bad());
    }
    let plain = match (compact.contains('.'), compact.contains(',')) {
        // `1,234.50`: commas group the thousands.
        (true, true) => compact.replace(',', ""),
        (false, true) if compact.matches(',').count() == 1 => compact.replace(',', "."),
        (false, true) => return Err(bad()),
        _ => compact,
    };
    parse_decimal(&plain).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_timestamps() {
        let utc = parse_timestamp("2024-03-01 13:45:07").unwrap();
        let moscow: Tz = "Europe/Moscow".parse().unwrap();
        for text in [
            "2024-03-01 13:45:07",
            "01.03.2024 13:45:07",
            "2024-03-01T16:45:07+03:00",
            "2024-03-01 13:45:07Z",
            " 45352.5730 ",
        ] {
            let zone = if text.contains("+03") {
                moscow
            } else {
                Tz::UTC
            };
            // The serial's 0.573 of a day is 13:45:07.2, rounded to the second.
            assert_eq!(parse_local_timestamp(text, zone).unwrap(), utc, "{text}");
        }
        assert_eq!(
            parse_local_timestamp("01.03.2024 16:45:07", moscow).unwrap(),
            utc
        );
        assert_eq!(
            parse_local_timestamp("01.03.2024 16:45", moscow).unwrap().0,
            utc.0 - 7_000_000
        );
        assert_eq!(
            parse_local_timestamp("2024-03-01 16:45+03:00", Tz::UTC)
                .unwrap()
                .0,
            utc.0 - 7_000_000
        );
        // The zone's rules, not a fixed offset: Berlin is +01:00 in winter, +02:00 in summer.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_local_timestamp("2024-07-01 12:00:00", berlin).unwrap(),
            parse_timestamp("2024-07-01 10:00:00").unwrap()
        );
        // Clocks go back: the earlier of the two instants; forward: the skipped hour is refused.
        assert_eq!(
            parse_local_timestamp("2024-10-27 02:30:00", berlin).unwrap(),
            parse_timestamp("2024-10-27 00:30:00").unwrap()
        );
        let gap = parse_local_timestamp("2024-03-31 02:30:00", berlin).unwrap_err();
        assert!(gap.contains("Europe/Berlin"), "{gap}");
        for bad in [
            "",
            "yesterday",
            "32.01.2024 10:00:00",
            "0.5",
            "1e5",
            "2024-03-01",
        ] {
            assert!(parse_local_timestamp(bad, Tz::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("83").unwrap(), 83);
        assert_eq!(parse_duration("01:23").unwrap(), 83);
        assert_eq!(parse_duration("0:01:23").unwrap(), 83);
        assert_eq!(parse_duration("100:00:00").unwrap(), 360_000);
        assert_eq!(parse_duration(" 00:00:00 ").unwrap(), 0);
        for bad in ["", "1:5", "01:60", "1:2:3:4", "-1", "1.5", "12s", ":30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money() {
        assert_eq!(parse_money("0.12").unwrap(), Decimal(120_000));
        assert_eq!(parse_money("0,12").unwrap(), Decimal(120_000));
        assert_eq!(
            parse_money("1\u{a0}234,50 ₽").unwrap(),
            Decimal(1_234_500_000)
        );
        assert_eq!(parse_money("1,234.50").unwrap(), Decimal(1_234_500_000));
        assert_eq!(parse_money("12 руб.").unwrap(), Decimal(12_000_000));
        assert_eq!(parse_money("$-0.5").unwrap(), Decimal(-500_000));
        for bad in ["", "free", "1,2,3", "0.1234567"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2024-03-01 13:45:07").unwrap();
        assert_eq!(t.0, 1_709_300_707_000_000);
        assert_eq!(parse_timestamp("2024-03-01T13:45:07Z").unwrap(), t);
        assert_eq!(parse_timestamp("2024-03-01 14:45:07+01:00").unwrap(), t);
        assert_eq!(
            parse_timestamp("2024-03-01 13:45:07.25").unwrap().0,
            t.0 + 250_000
        );
        assert_eq!(
            parse_timestamp("1969-12-31 23:59:59").unwrap().0,
            -1_000_000
        );
        for bad in [
            "",
            "2024-13-45 25:61:00",
            "2024-02-30 00:00:00",
            "2024-03-01",
            "01/03/2024 13:45:07",
            "2024-03-01 13:45:07.1234567",
            "2024-03-01 13:45:07 GMT",
            "2024-03-01 24:00:00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0").unwrap(), 0);
        assert_eq!(parse_seconds(" 42 ").unwrap(), 42);
        for bad in ["", "12s", "-1", "1.5", "99999999999999999999"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("0.0120").unwrap(), Decimal(12_000));
        assert_eq!(parse_decimal("12").unwrap(), Decimal(12_000_000));
        assert_eq!(parse_decimal("-.5").unwrap(), Decimal(-500_000));
        assert_eq!(parse_decimal("0.1234560000").unwrap(), Decimal(123_456));
        assert_eq!(
            parse_decimal("999999999999.999999").unwrap().to_string(),
            "999999999999.999999"
        );
        for bad in [
            "",
            ".",
            "1e5",
            "1,5",
            "0.1234567",
            "1000000000000",
            "abc",
            "--1",
        ] {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
    }
}
