//! Recording file names: `YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3`.
//!
//! Parsed from both ends, as the provider advises: the 19-character timestamp at the
//! front; UNIQUEID, CALLED_NO and CALLER_ID from the back; whatever stays in the middle
//! is the SIP user name, which may itself contain `-`. A UNIQUEID may contain a dot
//! (`1700000000.123`), a caller id may be `anonymous` or start with `+`.

use chrono::{NaiveDate, NaiveDateTime};

/// The parts of a recording's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingName<'a> {
    /// When the call started (UTC, as the provider's clock is GMT+0).
    pub started: NaiveDateTime,
    pub sip_user: &'a str,
    pub caller_id: &'a str,
    pub called_no: &'a str,
    /// The call's unique id: the `id` of its CDR.
    pub unique_id: &'a str,
}

impl RecordingName<'_> {
    pub fn date(&self) -> NaiveDate {
        self.started.date()
    }
}

/// Parses a file name, or says why it is not a recording's.
pub fn parse(name: &str) -> Result<RecordingName<'_>, &'static str> {
    let stem = name
        .strip_suffix(".mp3")
        .or_else(|| name.strip_suffix(".MP3"))
        .ok_or("does not end in .mp3")?;
    if stem.len() < 20 || !stem.is_char_boundary(19) || stem.as_bytes()[19] != b'-' {
        return Err("does not start with YYYY_mm_dd_HH_mm_ss-");
    }
    let started = NaiveDateTime::parse_from_str(&stem[..19], "%Y_%m_%d_%H_%M_%S")
        .map_err(|_| "does not start with a valid YYYY_mm_dd_HH_mm_ss time")?;
    let mut from_back = stem[20..].rsplitn(4, '-');
    let unique_id = from_back.next().unwrap_or_default();
    let called_no = from_back.next().ok_or("has too few -separated parts")?;
    let caller_id = from_back.next().ok_or("has too few -separated parts")?;
    let sip_user = from_back.next().ok_or("has too few -separated parts")?;
    if [sip_user, caller_id, called_no, unique_id]
        .iter()
        .any(|part| part.is_empty())
    {
        return Err("has an empty part");
    }
    if !unique_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err("has a UNIQUEID with characters other than letters, digits and dots");
    }
    Ok(RecordingName {
        started,
        sip_user,
        caller_id,
        called_no,
        unique_id,
    })
}

/// The day a name that does not parse still tells by its leading `YYYY_mm_dd`, so that
/// it can be reported with that day's recordings; `None` when it tells none.
pub fn day_of_unmatched(name: &str) -> Option<NaiveDate> {
    let prefix = name.get(..10)?;
    NaiveDate::parse_from_str(prefix, "%Y_%m_%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_from_both_ends() {
        let r = parse(
            "2024_03_01_14_47_10-warehouse-krakow-+48535257465-+48221234639-1709304430.315.mp3",
        )
        .unwrap();
        assert_eq!(r.started.to_string(), "2024-03-01 14:47:10");
        assert_eq!(r.sip_user, "warehouse-krakow");
        assert_eq!(r.caller_id, "+48535257465");
        assert_eq!(r.called_no, "+48221234639");
        assert_eq!(r.unique_id, "1709304430.315");
        let r = parse("2024_03_01_00_00_00-101-anonymous-0221234567-1709251200.mp3").unwrap();
        assert_eq!(
            (r.sip_user, r.caller_id, r.called_no),
            ("101", "anonymous", "0221234567")
        );
    }

    #[test]
    fn other_names_say_why() {
        for name in [
            "notes.txt",
            "2024_03_01-broken.mp3",
            "2024_13_01_00_00_00-a-b-c-d.mp3",
            "2024_03_01_00_00_00-b-c-d.mp3",
            "2024_03_01_00_00_00-a--c-d.mp3",
            "2024_03_01_00_00_00-a-b-c-d e.mp3",
            "2024_03_01_00_00_0é-a-b-c-d.mp3",
            "",
        ] {
            assert!(parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn an_unmatched_name_tells_its_day_when_it_starts_with_one() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1);
        assert_eq!(day_of_unmatched("2024_03_01-broken.mp3"), day);
        assert_eq!(day_of_unmatched("2024_03_01-notes.txt"), day);
        assert_eq!(day_of_unmatched("2024_03_01_10_00_00-sales-anna.mp3"), day);
        for name in [
            "2024_13_45_25_61_00-sales-anna-101-+48221234567-1.0.mp3",
            "notes.txt",
            "2024_03_0",
            "é024_03_01-x.mp3",
        ] {
            assert_eq!(day_of_unmatched(name), None, "{name}");
        }
    }
}
