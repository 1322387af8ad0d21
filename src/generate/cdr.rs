//! `CDRs/YYYY-MM-DD.csv`: the day's call detail records, with the CDR quirks planted.
//!
//! Header ([`CDR_HEADER`]):
//! `id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause`
//!
//! Rows are the day's calls ordered by `calldate` (ties by id sequence); exactly
//! [`DropSpec::cdr_rows_per_day`] calls a day (weekends have the same count but a flatter
//! hourly shape; weekdays peak 09:00–17:00 and are quiet at night).
//!
//! | column | format |
//! |---|---|
//! | `id` | `<epoch seconds of calldate>.<sequence>`, e.g. `1709251234.57`; sequence = the call's index in its day (0-based). Unique across all days. Treat it as a string. |
//! | `calldate` | `YYYY-MM-DD HH:MM:SS`, UTC, always within the file's day |
//! | `src_id` | caller's SIP user name (`sales-anna`, `105`, `office-it-2`), only on outbound PSTN calls, else empty |
//! | `src` | extension `101`..`140`; or E.164 `+48221234567`; or Polish national `0221234567`; or `anonymous` |
//! | `clid` | `"Name" <src>` (so always quoted in the CSV: `"""Jan Kowalski"" <+48221234567>"`), or just `src`, or `anonymous` |
//! | `dst` | extension; a DDI in E.164 (`+48221234510`); a dialled PSTN number in E.164, national `0…` or international `00…` form. Leading `+`/`0` are significant. |
//! | `dst_name` | contact/user name (non-ASCII: `Zoë Łukasiewicz`; may hold `,` or `"`), `Sales IVR`, `Main IVR`, a queue name (`Sales queue`, `Support, 2nd line`, `Billing queue`), or empty |
//! | `duration` | integer seconds, ring + talk |
//! | `billsec` | integer seconds, `<= duration`, `0` unless `ANSWERED` |
//! | `disposition` | `ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED` (about 70–75 % answered) |
//! | `destination` | outbound PSTN only: `Poland`, `Poland Mobile`, `Germany`, `Germany Mobile`, `United Kingdom`, `United Kingdom Mobile`, `USA`, `France`, `France Mobile`; else empty |
//! | `rate` | outbound PSTN only: price per minute, 4 decimals (`0.0120`); else empty |
//! | `charge` | empty iff `rate` is empty (save the `empty_charge` quirk); else 4 decimals = `rate * billsec / 60` rounded half up (exact integer arithmetic) |
//! | `t_cause` | `Normal Clearing` (ANSWERED); `No Answer` or `Cancelled` (NO ANSWER); `Busy` (BUSY); `Unallocated Number`, `Congestion` or `Call Rejected` (FAILED) |
//!
//! Kinds of calls, and how to tell them apart from a row:
//! - outbound PSTN (`src_id` non-empty): `src` = extension, `dst` = dialled number,
//!   `dst_name` = the contact's name if known;
//! - internal (`src` and `dst` both 3-digit extensions): `dst_name` = the callee;
//! - inbound (everything else): `src` = caller, `dst` = a DDI: a user's direct number
//!   (`dst_name` = the user), a queue's number (`dst_name` = the queue name) or an
//!   IVR's number (`dst_name` = `Main IVR` / `Sales IVR`).
//!
//! What each quirk plants in these rows is said with [`Quirks`](super::Quirks), in the
//! tree's module doc.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate};

use super::calls::{Call, CallStream, Defect, Direction, Disposition, push_id};
use super::text::{eol, push_datetime, push_e4, push_field, push_u64, write_csv_header};
use super::{
    BIG_BUFFER, DAY_SECONDS, DayManifest, DropSpec, cdr_path, create, finish, upload_time,
};

/// Header of `CDRs/YYYY-MM-DD.csv` (without the `extra_column` quirk).
pub const CDR_HEADER: &str = "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause";
/// The unknown column the `extra_column` quirk inserts after `dst_name`.
pub const EXTRA_COLUMN: &str = "x_custom";

/// A CDR row without line ending, replacing `out`.
fn format_cdr(out: &mut Vec<u8>, call: &Call, extra_column: bool) {
    out.clear();
    push_id(out, call);
    out.push(b',');
    if call.defect == Defect::BadDate {
        let year = DateTime::from_timestamp(call.start, 0)
            .expect("validated")
            .year();
        push_u64(out, year as u64);
        out.extend_from_slice(b"-13-45 25:61:00");
    } else {
        push_datetime(out, call.start, b'-', b' ', b':');
    }
    out.push(b',');
    push_field(out, call.src_id);
    out.push(b',');
    out.extend_from_slice(call.src.as_bytes());
    out.push(b',');
    match call.clid_name {
        // `"name" <number>` always holds quotes, so the field is always quoted.
        Some(name) => {
            out.extend_from_slice(b"\"\"\"");
            for b in name.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.extend_from_slice(b"\"\" <");
            out.extend_from_slice(call.src.as_bytes());
            out.extend_from_slice(b">\"");
        }
        None => out.extend_from_slice(call.src.as_bytes()),
    }
    out.push(b',');
    out.extend_from_slice(call.dst.as_bytes());
    out.push(b',');
    push_field(out, call.dst_name);
    if extra_column {
        out.push(b',');
        if !call.seq.is_multiple_of(3) {
            out.extend_from_slice(b"ticket-");
            push_u64(out, u64::from(call.seq));
        }
    }
    out.push(b',');
    push_u64(out, u64::from(call.duration));
    if call.defect == Defect::BadNumber {
        out.push(b's');
    }
    if call.defect == Defect::ShortRow {
        return;
    }
    out.push(b',');
    push_u64(out, u64::from(call.billsec));
    out.push(b',');
    out.extend_from_slice(call.disposition.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(call.destination.as_bytes());
    out.push(b',');
    if let Some(rate) = call.rate_e4 {
        push_e4(out, u64::from(rate));
    }
    out.push(b',');
    if let Some(charge) = call.charge_e4() {
        push_e4(out, charge);
    }
    out.push(b',');
    out.extend_from_slice(call.t_cause.as_bytes());
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plant {
    ShortRow,
    BadDate,
    BadNumber,
    EmptyCharge,
    DuplicateIdentical,
    DuplicateConflicting,
}

impl Plant {
    /// Rows made unusable must not be queue calls or recorded calls, so the other files
    /// never point at a call the CDRs lose; the rest need a row their change fits.
    fn fits(self, call: &Call) -> bool {
        match self {
            Plant::ShortRow | Plant::BadDate | Plant::BadNumber => {
                call.queue.is_none() && call.recorded_user.is_none()
            }
            Plant::EmptyCharge => call.direction == Direction::Outbound && call.billsec > 0,
            Plant::DuplicateIdentical => true,
            Plant::DuplicateConflicting => call.billsec > 0,
        }
    }
}

/// What a line of a CDR file is.
enum Line<'a> {
    /// A genuine call of the day (possibly with an empty charge).
    Own(&'a Call),
    Bad,
    IdenticalCopy,
    ConflictingCopy,
}

struct PendingCopy {
    /// Written just before the own row with this sequence number (or at the end).
    before_seq: u32,
    line: Vec<u8>,
    conflicting: bool,
}

/// The day's own CDR lines (no header, no repeated tail), quirks planted.
struct CdrBody {
    calls: CallStream,
    extra_column: bool,
    /// Quirks still to plant, each with the sequence number from which it may.
    plants: Vec<(Plant, u32)>,
    /// Nothing is planted at or after this sequence number, so the last
    /// `repeat_previous_tail` rows are always plain.
    plant_limit: u32,
    copies: VecDeque<PendingCopy>,
    /// The call of the last `Line::Own` returned.
    current: Option<Call>,
}

impl CdrBody {
    fn new(spec: &DropSpec, date: NaiveDate) -> Self {
        let q = &spec.quirks;
        let rows = spec.cdr_rows_per_day as u32;
        let plant_limit = rows.saturating_sub(q.repeat_previous_tail as u32);
        let wanted = [
            (q.short_row, Plant::ShortRow),
            (q.bad_date, Plant::BadDate),
            (q.bad_number, Plant::BadNumber),
            (q.empty_charge, Plant::EmptyCharge),
            (q.duplicate_identical, Plant::DuplicateIdentical),
            (q.duplicate_conflicting, Plant::DuplicateConflicting),
        ];
        // Spread over the file: the i-th kind from i/8 of the plantable rows on.
        let plants = (1u64..)
            .zip(wanted)
            .filter(|(_, (on, _))| *on)
            .map(|(i, (_, plant))| (plant, (u64::from(plant_limit) * i / 8) as u32))
            .collect();
        CdrBody {
            calls: CallStream::new(spec.seed, date, spec.cdr_rows_per_day),
            extra_column: q.extra_column,
            plants,
            plant_limit,
            copies: VecDeque::new(),
            current: None,
        }
    }

    /// Writes the next line into `out` (replacing it).
    fn next_line(&mut self, out: &mut Vec<u8>) -> Option<Line<'_>> {
        let next_seq = self.calls.next_seq;
        if self
            .copies
            .front()
            .is_some_and(|c| c.before_seq <= next_seq)
        {
            return self.copies.pop_front().map(|c| copy_line(out, c));
        }
        let Some(mut call) = self.calls.next() else {
            return self.copies.pop_front().map(|c| copy_line(out, c));
        };
        let plant = if call.seq < self.plant_limit {
            let found = self
                .plants
                .iter()
                .position(|&(p, from)| call.seq >= from && p.fits(&call));
            found.map(|i| self.plants.remove(i).0)
        } else {
            None
        };
        call.defect = match plant {
            Some(Plant::ShortRow) => Defect::ShortRow,
            Some(Plant::BadDate) => Defect::BadDate,
            Some(Plant::BadNumber) => Defect::BadNumber,
            Some(Plant::EmptyCharge) => Defect::EmptyCharge,
            _ => Defect::None,
        };
        format_cdr(out, &call, self.extra_column);
        let before_seq = (call.seq + 3).min(self.plant_limit);
        match plant {
            Some(Plant::DuplicateIdentical) => {
                self.copies.push_back(PendingCopy {
                    before_seq,
                    line: out.clone(),
                    conflicting: false,
                });
            }
            Some(Plant::DuplicateConflicting) => {
                let mut changed = call;
                changed.duration += 1;
                changed.billsec += 1;
                let mut line = Vec::new();
                format_cdr(&mut line, &changed, self.extra_column);
                self.copies.push_back(PendingCopy {
                    before_seq,
                    line,
                    conflicting: true,
                });
            }
            _ => {}
        }
        Some(match call.defect {
            Defect::ShortRow | Defect::BadDate | Defect::BadNumber => Line::Bad,
            Defect::None | Defect::EmptyCharge => Line::Own(self.current.insert(call)),
        })
    }
}

fn copy_line(out: &mut Vec<u8>, copy: PendingCopy) -> Line<'static> {
    out.clear();
    out.extend_from_slice(&copy.line);
    if copy.conflicting {
        Line::ConflictingCopy
    } else {
        Line::IdenticalCopy
    }
}

/// The previous day's last `n` own lines, as that day's file has them.
fn previous_tail(spec: &DropSpec, date: NaiveDate, n: usize) -> VecDeque<Vec<u8>> {
    let mut tail = VecDeque::with_capacity(n);
    let mut body = CdrBody::new(spec, date);
    let mut line = Vec::new();
    while body.next_line(&mut line).is_some() {
        // Recycle the dropped line's buffer: no allocation per row.
        let recycled = if tail.len() == n {
            tail.pop_front().unwrap_or_default()
        } else {
            Vec::new()
        };
        tail.push_back(std::mem::replace(&mut line, recycled));
    }
    tail
}

/// Counts into `m` the calls of `m.date` that the next day's file repeats at its top
/// (`repeat_previous_tail`): for the day before a drop, whose own file is not in it.
pub(crate) fn count_repeated_tail(spec: &DropSpec, m: &mut DayManifest) {
    let n = spec.quirks.repeat_previous_tail;
    let mut tail = VecDeque::with_capacity(n);
    let mut body = CdrBody::new(spec, m.date);
    let mut line = Vec::new();
    while let Some(kind) = body.next_line(&mut line) {
        // The last rows are always plain own rows (nothing is planted there).
        if let Line::Own(call) = kind {
            if tail.len() == n {
                tail.pop_front();
            }
            tail.push_back(*call);
        }
    }
    for call in &tail {
        count_call(m, call);
    }
}

/// Writes the day's CDR file (every day has one: no switch in the spec turns it off).
pub(crate) fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    m.cdr_path = cdr_path(m.date);
    fs::create_dir_all(root.join("CDRs"))?;
    let mut w = create(root, &m.cdr_path, BIG_BUFFER)?;
    let header = if spec.quirks.extra_column {
        CDR_HEADER.replacen("dst_name,", "dst_name,x_custom,", 1)
    } else {
        CDR_HEADER.to_owned()
    };
    write_csv_header(&mut w, spec, &header)?;
    let eol = eol(spec);
    let n = spec.quirks.repeat_previous_tail;
    if n > 0 {
        let prev = m.date.pred_opt().expect("validated date range");
        for line in previous_tail(spec, prev, n) {
            w.write_all(&line)?;
            w.write_all(eol)?;
            m.cdr_repeated_rows += 1;
        }
    }
    let mut body = CdrBody::new(spec, m.date);
    let mut line = Vec::with_capacity(512);
    let mut rows = m.cdr_repeated_rows;
    while let Some(kind) = body.next_line(&mut line) {
        w.write_all(&line)?;
        w.write_all(eol)?;
        rows += 1;
        match kind {
            Line::Own(call) => count_call(m, call),
            Line::Bad | Line::ConflictingCopy => m.cdr_bad_rows += 1,
            Line::IdenticalCopy => m.cdr_identical_duplicates += 1,
        }
    }
    m.cdr_rows = rows;
    // Repeated rows are plain rows of distinct calls of the previous day.
    m.cdr_unique_ids = m.cdr_repeated_rows + m.calls;
    finish(w, upload_time(m.date))
}

fn count_call(m: &mut DayManifest, call: &Call) {
    let answered = call.disposition == Disposition::Answered;
    m.calls += 1;
    m.calls_answered += usize::from(answered);
    match call.direction {
        Direction::Inbound => {
            m.calls_inbound += 1;
            m.inbound_missed += usize::from(!answered);
        }
        Direction::Outbound => m.calls_outbound += 1,
        Direction::Internal => m.calls_internal += 1,
    }
    m.total_duration += u64::from(call.duration);
    m.total_billsec += u64::from(call.billsec);
    let charge = call.charge_e4();
    m.total_charge_e4 += charge.unwrap_or(0);
    m.cdr_empty_charges += usize::from(call.defect == Defect::EmptyCharge);
    m.calls_per_hour[((call.start.rem_euclid(DAY_SECONDS)) / 3600) as usize] += 1;
    if call.direction == Direction::Outbound {
        let d = m
            .destinations
            .entry(call.destination.to_owned())
            .or_default();
        d.calls += 1;
        d.answered += usize::from(answered);
        d.billsec += u64::from(call.billsec);
        d.charge_e4 += charge.unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::{
        TempDir, check_cdr_file, csv_lines, date, spec_all_quirks, split_csv,
    };
    use crate::generate::{Quirks, cdr_path, write_day, write_drop};
    use std::collections::HashSet;
    use std::fs;

    #[test]
    fn cdr_files_match_manifest_with_every_quirk() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("cdr-quirks");
        let drop = write_drop(&dir.0, &spec).unwrap();
        for m in &drop.days {
            assert_eq!(m.cdr_repeated_rows, 3);
            // Every quirk fires once a day: short, bad date, bad number, conflicting copy.
            assert_eq!(m.cdr_bad_rows, 4);
            assert_eq!(m.cdr_identical_duplicates, 1);
            assert_eq!(m.cdr_empty_charges, 1);
            assert_eq!(m.calls, spec.cdr_rows_per_day - 3);
            assert_eq!(m.cdr_rows, 3 + spec.cdr_rows_per_day + 2);
            check_cdr_file(&dir.0, &spec, m);
        }
    }

    #[test]
    fn cdr_files_match_manifest_without_quirks() {
        let spec = DropSpec {
            cdr_rows_per_day: 2000,
            recordings_per_day: Some(0),
            ..spec_all_quirks()
        };
        let spec = DropSpec {
            quirks: Quirks::default(),
            ..spec
        };
        let dir = TempDir::new("cdr-plain");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let mut all_ids = HashSet::new();
        for m in &drop.days {
            assert_eq!((m.cdr_rows, m.calls, m.cdr_unique_ids), (2000, 2000, 2000));
            let own = check_cdr_file(&dir.0, &spec, m);
            for id in own.keys() {
                assert!(all_ids.insert(id.clone()), "id {id} repeats across days");
            }
            assert_eq!(
                m.calls_inbound + m.calls_outbound + m.calls_internal,
                m.calls
            );
            let answer_rate = m.calls_answered * 100 / m.calls;
            assert!(
                (65..=80).contains(&answer_rate),
                "answer rate {answer_rate} %"
            );
            let daytime: usize = m.calls_per_hour[8..18].iter().sum();
            assert!(
                daytime * 100 / m.calls >= 70,
                "weekday calls should cluster 08-18"
            );
            let dest_calls: usize = m.destinations.values().map(|d| d.calls).sum();
            assert_eq!(dest_calls, m.calls_outbound);
            let dest_charge: u64 = m.destinations.values().map(|d| d.charge_e4).sum();
            assert_eq!(dest_charge, m.total_charge_e4);
            assert!(m.destinations.contains_key("Germany Mobile"));
        }
    }

    #[test]
    fn repeated_tail_is_previous_days_last_rows() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("tail");
        write_drop(&dir.0, &spec).unwrap();
        let read = |d: &str| csv_lines(&fs::read(dir.0.join(cdr_path(date(d)))).unwrap(), true).1;
        let (d1, d2) = (read("2024-03-01"), read("2024-03-02"));
        assert_eq!(d2[..3], d1[d1.len() - 3..]);
        // The first day repeats the tail of the day before the drop, regenerated.
        let before = TempDir::new("tail-before");
        write_day(&before.0, &spec, date("2024-02-29")).unwrap();
        let d0 = csv_lines(
            &fs::read(before.0.join("CDRs/2024-02-29.csv")).unwrap(),
            true,
        )
        .1;
        assert_eq!(d1[..3], d0[d0.len() - 3..]);
    }

    /// Regression: the manifest did not count the calls of the day before the drop
    /// that its first file repeats, so checks of a `--quirks` drop found 3 calls too many.
    #[test]
    fn the_manifest_counts_the_calls_repeated_from_before_the_drop() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("before");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let before = drop.before_range.as_ref().unwrap();
        assert_eq!(before.date, date("2024-02-29"));
        assert_eq!(before.calls, 3);
        assert_eq!(before.calls_per_hour.iter().sum::<usize>(), 3);
        assert_eq!(
            before.calls_inbound + before.calls_outbound + before.calls_internal,
            3
        );
        assert!(before.cdr_path.is_empty() && before.recordings.is_empty());
        // The calls at the top of the first file, hour by hour.
        let (header, lines) = csv_lines(&fs::read(dir.0.join(cdr_path(spec.from))).unwrap(), true);
        let column = split_csv(&header)
            .iter()
            .position(|c| c == "calldate")
            .unwrap();
        let mut hours = [0usize; 24];
        for line in &lines[..3] {
            let calldate = &split_csv(line)[column];
            assert!(calldate.starts_with("2024-02-29 "), "{calldate}");
            hours[calldate[11..13].parse::<usize>().unwrap()] += 1;
        }
        assert_eq!(before.calls_per_hour, hours);
        let plain = DropSpec {
            quirks: Quirks::default(),
            ..spec
        };
        assert_eq!(write_drop(&dir.0, &plain).unwrap().before_range, None);
    }
}
