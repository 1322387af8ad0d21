//! Scalar field parsers shared by every CSV format: timestamps, integers, money.
//!
//! Each returns a message fit for the quarantine's `reason` when the text is wrong.

use chrono::NaiveDate;

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

#[cfg(test)]
mod tests {
    use super::*;

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
