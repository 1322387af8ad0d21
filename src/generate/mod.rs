//! Deterministic generator of the hosted PBX's nightly drop (see `shared/PROVIDER.md` §1).
//!
//! Tests, the demo command and the benchmarks all use it. The same [`DropSpec`] always
//! produces byte-identical CSV and MP3 files: all randomness comes from a tiny built-in
//! SplitMix64 generator seeded from `seed` + date (+ a per-purpose stream tag), never from
//! a crate whose algorithm could change. Each day is generated on its own, so
//! [`write_day`] for one date gives the same files as that date inside a longer
//! [`write_drop`]. (The zip entries hold byte-identical CSVs; the compressed bytes also
//! depend on the deflate implementation the `zip` crate links.)
//!
//! This doc is the reference for parser authors: it states exactly what is written.
//!
//! # Layout under the root folder
//!
//! ```text
//! CDRs/YYYY-MM-DD.csv                          one per day, mtime D+1 01:00:00 UTC
//! QueueCalls/YYYY-MM-DD-queue-calls.zip        one per day (when `queue`), same mtime
//!     YYYY-MM-DD-queue_call.csv
//!     YYYY-MM-DD-queue_user_call.csv
//! recordings/YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3
//!                                              mtime = the call's end (calldate + duration)
//! ```
//!
//! # CSV dialect (all CSV files)
//!
//! UTF-8, comma-separated, first line is the header, `\n` line endings (every line,
//! the last one included). A field is wrapped in `"` only when it holds `,` or `"`;
//! a `"` inside is doubled (RFC 4180). No field ever holds a line break. With the
//! [`Quirks::bom_crlf`] quirk the file starts with a UTF-8 BOM and lines end `\r\n`.
//! Empty field = no value. Times are UTC, `YYYY-MM-DD HH:MM:SS`.
//!
//! # `CDRs/YYYY-MM-DD.csv`
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
//! # `QueueCalls/YYYY-MM-DD-queue-calls.zip`
//!
//! Deflated; two entries. Row `id`s are `<days since 1970-01-01> * 1_000_000_000 + n`
//! (`n` counts from 1 within the file), so unique across days.
//!
//! `YYYY-MM-DD-queue_call.csv` ([`QUEUE_CALL_HEADER`]): one row per CDR of that day
//! whose `dst_name` is a queue name, in CDR order:
//! `id,call_id,queue_id,ddi,cli,callers,agents,start_time,hold_time,conn_time,final_dst_type,final_dst_id,t_cause`
//! - `call_id` = the CDR `id`; `queue_id` `11` Sales queue, `12` Support, 2nd line,
//!   `13` Billing queue; `ddi` = the CDR `dst`; `cli` = the CDR `src`;
//! - `callers` = callers already waiting (0–5); `agents` = agents in the queue;
//! - `start_time` = the CDR `calldate`; `hold_time` + `conn_time` = the CDR `duration`,
//!   `conn_time` = the CDR `billsec` (seconds);
//! - `final_dst_type` / `final_dst_id`: `U` + agent `user_id` (connected, or the agent
//!   that was ringing when the caller hung up), `V` + voicemail box `9xx`, `Q` + the other
//!   `queue_id`, `R` + IVR id (`21` Main IVR, `22` Sales IVR);
//! - `t_cause`: `C` connected (CDR `ANSWERED`), `H` caller hung up = abandoned
//!   (CDR `NO ANSWER`, `Cancelled`).
//!
//! `YYYY-MM-DD-queue_user_call.csv` ([`QUEUE_USER_CALL_HEADER`]): for each queue call,
//! in order, one row per agent it rang in turn, then, if it ended in `V`, `Q` or `R`,
//! one more row for that destination:
//! `id,call_id,queue_id,user_id,location_id,start_time,ring_time,conn_time,disposition,final_dst_type,final_dst_id,t_cause`
//! - agent rows: `user_id` `1001`..`1040` (extension − 100 + 1000), `location_id` `1`..`3`,
//!   `start_time` = when it started ringing, `ring_time` seconds; `final_dst_type` `U`,
//!   `final_dst_id` = `user_id`; the agent who picked up has `t_cause` `C` and
//!   `conn_time` = talk time, all others `H` and `0`;
//! - destination row: `user_id` and `location_id` empty, `ring_time` `0`,
//!   `conn_time` = the CDR `billsec`, `t_cause` `C`;
//! - `disposition` = ring order `1, 2, 3…` within the call.
//!
//! # `recordings/`
//!
//! One file per answered call where a user talked (outbound, inbound to a user,
//! internal, queue call connected to an agent; not IVR, voicemail or queue transfers),
//! or only the day's first `n` such calls with `recordings_per_day: Some(n)`.
//! Name: `YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3`, where the
//! timestamp is the `calldate`, SIP_USERNAME the user's SIP name (may contain `-`),
//! CALLER_ID the CDR `src` (may be `anonymous` or start with `+`), CALLED_NO the CDR
//! `dst`, UNIQUEID the CDR `id` (contains a dot). Content: an ID3v2.4 tag (TIT2 = the
//! UNIQUEID), then 417-byte MPEG-1 Layer III frames (`FF FB 90 64` + pseudo-random bytes),
//! cut to a size drawn from [`DropSpec::recording_bytes`].
//!
//! # Quirks ([`Quirks`], all off by default)
//!
//! Planted in a day's own rows (never in the last `repeat_previous_tail` rows, never on
//! a queue call, and the rows made unusable are never recorded calls), each at most once
//! a day; a quirk that finds no fitting row is skipped and the manifest says so:
//! - `bom_crlf`: BOM + CRLF in every CSV;
//! - `repeat_previous_tail: N`: the previous day's last N own rows, byte-identical, right
//!   after the header (the previous day's own rows, not the rows it repeated itself);
//! - `short_row`: a row cut after `duration` (8 fields);
//! - `bad_date`: `calldate` = `<year>-13-45 25:61:00`;
//! - `bad_number`: `duration` = e.g. `12s`;
//! - `duplicate_identical`: a row written again, byte-identical, three rows later;
//! - `duplicate_conflicting`: an answered row's id written again three rows later with
//!   `duration` and `billsec` one second longer (and `charge` recomputed); the first row is
//!   the genuine one, the later one is counted as bad;
//! - `empty_charge`: an answered outbound PSTN call with `rate` but empty `charge` (a valid
//!   call: it counts in the manifest, its charge does not);
//! - `extra_column`: `x_custom` inserted after `dst_name` in the header and every row;
//! - `bad_recording_names`: per day `YYYY_mm_dd-broken.mp3`, `YYYY_mm_dd-notes.txt`,
//!   `YYYY_mm_dd_HH_mm_ss-sales-anna.mp3` (too few parts) and a name with the
//!   impossible timestamp `YYYY_13_45_25_61_00`; mtime D+1 01:00:00 UTC.
//!
//! # Manifest
//!
//! [`write_drop`] / [`write_day`] return what they wrote and what a correct ingest must
//! find: row, bad-row and duplicate counts per file, and totals of the day's genuine
//! calls (answered, per direction, per hour, per destination, billsec, charge), queue
//! and recording counts; see [`DayManifest`].

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Weekday};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Header of `CDRs/YYYY-MM-DD.csv` (without the `extra_column` quirk).
pub const CDR_HEADER: &str = "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause";
/// The unknown column the `extra_column` quirk inserts after `dst_name`.
pub const EXTRA_COLUMN: &str = "x_custom";
/// Header of `YYYY-MM-DD-queue_call.csv`.
pub const QUEUE_CALL_HEADER: &str = "id,call_id,queue_id,ddi,cli,callers,agents,start_time,hold_time,conn_time,final_dst_type,final_dst_id,t_cause";
/// Header of `YYYY-MM-DD-queue_user_call.csv`.
pub const QUEUE_USER_CALL_HEADER: &str = "id,call_id,queue_id,user_id,location_id,start_time,ring_time,conn_time,disposition,final_dst_type,final_dst_id,t_cause";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropSpec {
    pub seed: u64,
    /// First day, inclusive. Supported dates: 1980-01-02 ..= 2106-12-30 (zip timestamps).
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Genuine calls per day (the file has more lines with duplicate quirks / a repeated tail).
    pub cdr_rows_per_day: usize,
    /// `None`: one recording per recorded call; `Some(n)`: the day's first `n` of them.
    pub recordings_per_day: Option<usize>,
    /// Size of each MP3 in bytes, drawn uniformly from this range.
    pub recording_bytes: RangeInclusive<u64>,
    /// Write `QueueCalls/…zip`.
    pub queue: bool,
    pub quirks: Quirks,
}

impl DropSpec {
    /// 500 calls a day, queue reports on, one recording per recorded call of 4..=64 KiB,
    /// no quirks.
    pub fn new(seed: u64, from: NaiveDate, to: NaiveDate) -> Self {
        Self {
            seed,
            from,
            to,
            cdr_rows_per_day: 500,
            recordings_per_day: None,
            recording_bytes: 4 * 1024..=64 * 1024,
            queue: true,
            quirks: Quirks::default(),
        }
    }
}

/// The provider's known misbehaviours; see the module doc for exactly what each writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    pub bom_crlf: bool,
    pub repeat_previous_tail: usize,
    pub short_row: bool,
    pub bad_date: bool,
    pub bad_number: bool,
    pub duplicate_identical: bool,
    pub duplicate_conflicting: bool,
    pub empty_charge: bool,
    pub bad_recording_names: bool,
    pub extra_column: bool,
}

impl Quirks {
    /// Every quirk on; the previous day's last 3 rows repeated.
    pub fn all() -> Self {
        Self {
            bom_crlf: true,
            repeat_previous_tail: 3,
            short_row: true,
            bad_date: true,
            bad_number: true,
            duplicate_identical: true,
            duplicate_conflicting: true,
            empty_charge: true,
            bad_recording_names: true,
            extra_column: true,
        }
    }
}

/// What [`write_drop`] wrote, one entry per day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DropManifest {
    pub days: Vec<DayManifest>,
}

impl DropManifest {
    pub fn day(&self, date: NaiveDate) -> Option<&DayManifest> {
        self.days.iter().find(|d| d.date == date)
    }
}

/// What was written for one day, and what a correct ingest of it must yield.
///
/// "The day's calls" below means the genuine calls whose `calldate` is this day, each
/// once: the file's own rows minus quarantined ones and duplicate copies (the repeated
/// tail belongs to the previous day). All paths are relative to the root, `/`-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DayManifest {
    pub date: NaiveDate,
    /// `CDRs/YYYY-MM-DD.csv`
    pub cdr_path: String,
    /// Data lines in the file (header excluded), every quirk row included.
    pub cdr_rows: usize,
    /// Lines at the top repeated from the previous day (`repeat_previous_tail`).
    pub cdr_repeated_rows: usize,
    /// Distinct ids of valid rows in the file, repeated tail included.
    pub cdr_unique_ids: usize,
    /// Rows to quarantine: short row, bad date, bad number, the later conflicting duplicate.
    pub cdr_bad_rows: usize,
    /// Identical copies of an earlier row in the same file.
    pub cdr_identical_duplicates: usize,
    /// Valid answered outbound rows whose `charge` is empty (`empty_charge`).
    pub cdr_empty_charges: usize,
    /// The day's calls.
    pub calls: usize,
    pub calls_answered: usize,
    pub calls_inbound: usize,
    pub calls_outbound: usize,
    pub calls_internal: usize,
    /// Inbound calls not `ANSWERED` (abandoned queue calls included).
    pub inbound_missed: usize,
    pub total_duration: u64,
    pub total_billsec: u64,
    /// Sum of non-empty `charge`s in units of 0.0001.
    pub total_charge_e4: u64,
    /// The day's calls by `calldate` hour (UTC).
    pub calls_per_hour: [usize; 24],
    /// Outbound PSTN calls by `destination`.
    pub destinations: BTreeMap<String, DestinationStats>,
    /// `QueueCalls/YYYY-MM-DD-queue-calls.zip`, if written.
    pub queue_path: Option<String>,
    pub queue_calls: usize,
    /// Queue calls that ended connected to an agent (`U`, `C`).
    pub queue_connected: usize,
    /// Queue calls the caller hung up on (`H`).
    pub queue_abandoned: usize,
    pub queue_user_calls: usize,
    /// `recordings/…mp3`, in calldate order.
    pub recordings: Vec<String>,
    /// Total size of `recordings`.
    pub recording_bytes: u64,
    /// `recordings/…` files that do not follow the naming pattern.
    pub bad_recording_names: Vec<String>,
}

/// Outbound PSTN calls to one `destination`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DestinationStats {
    pub calls: usize,
    pub answered: usize,
    pub billsec: u64,
    /// Sum of non-empty charges in units of 0.0001.
    pub charge_e4: u64,
}

/// `CDRs/YYYY-MM-DD.csv`
pub fn cdr_path(date: NaiveDate) -> String {
    format!("CDRs/{date}.csv")
}

/// `QueueCalls/YYYY-MM-DD-queue-calls.zip`
pub fn queue_zip_path(date: NaiveDate) -> String {
    format!("QueueCalls/{date}-queue-calls.zip")
}

/// When the provider uploads the day's CDR file and queue zip: D+1 01:00:00 UTC.
pub fn upload_time(date: NaiveDate) -> SystemTime {
    system_time(day_start(date) + DAY_SECONDS + 3600)
}

/// Writes every day from `spec.from` to `spec.to` under `root` (created if missing).
pub fn write_drop(root: &Path, spec: &DropSpec) -> io::Result<DropManifest> {
    validate(spec, spec.from)?;
    validate(spec, spec.to)?;
    let mut days = Vec::new();
    let mut date = spec.from;
    while date <= spec.to {
        days.push(write_day(root, spec, date)?);
        date = date.succ_opt().expect("validated date range");
    }
    Ok(DropManifest { days })
}

/// Writes one day's files (need not lie within `spec.from..=spec.to`); the result is
/// the same as that day's part of a [`write_drop`].
pub fn write_day(root: &Path, spec: &DropSpec, date: NaiveDate) -> io::Result<DayManifest> {
    validate(spec, date)?;
    let mut m = DayManifest {
        date,
        cdr_path: cdr_path(date),
        ..DayManifest::default()
    };
    fs::create_dir_all(root.join("CDRs"))?;
    fs::create_dir_all(root.join("recordings"))?;
    write_cdr(root, spec, &mut m)?;
    if spec.queue {
        fs::create_dir_all(root.join("QueueCalls"))?;
        write_queue_zip(root, spec, &mut m)?;
    }
    write_recordings(root, spec, &mut m)?;
    if spec.quirks.bad_recording_names {
        write_bad_recording_names(root, &mut m)?;
    }
    Ok(m)
}

fn validate(spec: &DropSpec, date: NaiveDate) -> io::Result<()> {
    let supported = NaiveDate::from_ymd_opt(1980, 1, 2).expect("valid")
        ..=NaiveDate::from_ymd_opt(2106, 12, 30).expect("valid");
    let problem = if !supported.contains(&date) {
        Some(format!("date {date} outside {supported:?}"))
    } else if spec.from > spec.to {
        Some(format!("from {} after to {}", spec.from, spec.to))
    } else if spec.recording_bytes.is_empty() {
        Some(format!("empty recording_bytes {:?}", spec.recording_bytes))
    } else if u32::try_from(spec.cdr_rows_per_day).is_err() {
        Some(format!(
            "cdr_rows_per_day {} too large",
            spec.cdr_rows_per_day
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(io::Error::new(io::ErrorKind::InvalidInput, p)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Randomness

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
// Stream tags keep the independent uses of one seed apart.
const STREAM_CALLS: u64 = 1;
const STREAM_CUSTOMER: u64 = 2;
const STREAM_RECORDING: u64 = 3;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and fixed here so output never changes with a dependency.
struct Rng(u64);

impl Rng {
    fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut h = mix(seed.wrapping_add(GOLDEN));
        for &p in parts {
            h = mix(h ^ mix(p.wrapping_add(GOLDEN)));
        }
        Rng(h)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias of at most n/2^32 does not matter here).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    fn range_u64(&mut self, r: &RangeInclusive<u64>) -> u64 {
        let span = u128::from(r.end() - r.start()) + 1;
        r.start() + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u32) as usize]
    }

    fn weighted(&mut self, weights: &[u32]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < sum of weights")
    }
}

// ---------------------------------------------------------------------------
// The simulated company and its customers

struct User {
    sip: &'static str,
    name: &'static str,
}

const fn user(sip: &'static str, name: &'static str) -> User {
    User { sip, name }
}

/// Users in extension order: `USERS[i]` has extension `101 + i`, user id `1001 + i`,
/// direct number `+482212346xx` with `xx` = `i + 1`. Purely numeric SIP names equal the
/// extension.
static USERS: [User; 40] = [
    user("sales-anna", "Anna Nowak"),
    user("sales-piotr", "Piotr Wiśniewski"),
    user("sales-zoe", "Zoë Łukasiewicz"),
    user("sales-jose", "José Müller"),
    user("105", "Katarzyna Wójcik"),
    user("sales-tomasz", "Tomasz Kamiński"),
    user("sales-ewa", "Ewa Lewandowska"),
    user("108", "Michał Zieliński"),
    user("sales-agnieszka", "Agnieszka Szymańska"),
    user("sales-pawel", "Paweł Woźniak"),
    user("support-jan", "Jan Kowalski"),
    user("support-marta", "Marta Dąbrowska"),
    user("113", "Krzysztof Kozłowski"),
    user("support-magda", "Małgorzata Jankowska"),
    user("support-soren", "Søren Østergaard"),
    user("support-francois", "François Lefèvre"),
    user("117", "Łukasz Mazur"),
    user("support-olga", "Olga Krawczyk"),
    user("support-jurgen", "Jürgen Weiß"),
    user("support-ines", "Inês Conceição"),
    user("support-bartek", "Bartłomiej Piotrowski"),
    user("122", "Joanna Grabowska"),
    user("billing-adam", "Adam Nowakowski"),
    user("billing-zofia", "Zofia Pawłowska"),
    user("125", "Marek Michalski"),
    user("billing-helena", "Helena Król"),
    user("billing-wojtek", "Wojciech Wieczorek"),
    user("billing-kasia", "Kasia Jabłońska"),
    user("office-ceo", "Grzegorz Wróbel"),
    user("130", "Natalia Majewska"),
    user("office-hr", "Dorota Olszewska"),
    user("office-it", "Rafał Stępień"),
    user("office-it-2", "Kamil Malinowski"),
    user("134", "Aleksandra Górska"),
    user("reception", "Beata Rutkowska"),
    user("office-finance", "Sławomir Sikora"),
    user("137", "Iwona Baran"),
    user("warehouse-lodz", "Mateusz Duda"),
    user("warehouse-krakow", "Renata Szewczyk"),
    user("140", "Hubert Ostrowski"),
];

fn user_id(user: usize) -> u64 {
    1001 + user as u64
}

fn location_id(user: usize) -> u64 {
    1 + user as u64 % 3
}

fn extension(user: usize) -> Phone {
    let n = 101 + user as u32;
    let mut p = Phone::default();
    for d in [n / 100, n / 10 % 10, n % 10] {
        p.push_digit(d);
    }
    p
}

fn direct_number(user: usize) -> Phone {
    let mut p = Phone::from_str("+482212346");
    p.push_digit((user as u32 + 1) / 10);
    p.push_digit((user as u32 + 1) % 10);
    p
}

struct Queue {
    id: u64,
    name: &'static str,
    ddi: &'static str,
    /// Members are `USERS[first_member..first_member + members]`.
    first_member: usize,
    members: usize,
}

static QUEUES: [Queue; 3] = [
    Queue {
        id: 11,
        name: "Sales queue",
        ddi: "+48221234510",
        first_member: 0,
        members: 10,
    },
    Queue {
        id: 12,
        name: "Support, 2nd line",
        ddi: "+48221234520",
        first_member: 10,
        members: 12,
    },
    Queue {
        id: 13,
        name: "Billing queue",
        ddi: "+48221234530",
        first_member: 22,
        members: 6,
    },
];
const QUEUE_WEIGHTS: [u32; 3] = [50, 35, 15];

struct Ivr {
    id: u64,
    name: &'static str,
    ddi: &'static str,
}

static IVRS: [Ivr; 2] = [
    Ivr {
        id: 21,
        name: "Main IVR",
        ddi: "+48221234500",
    },
    Ivr {
        id: 22,
        name: "Sales IVR",
        ddi: "+48221234501",
    },
];

/// Voicemail box a queue's unanswered callers can be sent to.
fn voicemail_box(queue: &Queue) -> u64 {
    900 + queue.id
}

/// Names of external contacts: non-ASCII, a comma and a quote included on purpose.
static CONTACTS: [&str; 16] = [
    "Jan Kowalski",
    "Zoë Łukasiewicz",
    "José Müller",
    "Maria García",
    "Jürgen Schmidt",
    "Émilie Dubois",
    "John O'Connor",
    "Anna \"Ania\" Nowicka",
    "Müller GmbH, Einkauf",
    "Björn Åkesson",
    "Søren Kierkegaard",
    "Ζωή Παπαδοπούλου",
    "Иван Петров",
    "李伟",
    "Łucja Żak",
    "Support, 2nd line",
];

struct Country {
    cc: &'static str,
    land: &'static [&'static str],
    /// Empty when mobile numbers are not told apart (USA).
    mobile: &'static [&'static str],
    /// Random digits after the prefix.
    rest_digits: u32,
    label: &'static str,
    mobile_label: &'static str,
    land_rate_e4: u32,
    mobile_rate_e4: u32,
    /// The PBX's own country: numbers are also written nationally with a leading `0`.
    home: bool,
}

static COUNTRIES: [Country; 5] = [
    Country {
        cc: "48",
        land: &["22", "12", "61", "58", "71"],
        mobile: &["50", "51", "53", "60", "66", "69", "72", "79", "88"],
        rest_digits: 7,
        label: "Poland",
        mobile_label: "Poland Mobile",
        land_rate_e4: 120,
        mobile_rate_e4: 250,
        home: true,
    },
    Country {
        cc: "49",
        land: &["30", "40", "89", "69"],
        mobile: &["151", "160", "170", "176"],
        rest_digits: 8,
        label: "Germany",
        mobile_label: "Germany Mobile",
        land_rate_e4: 180,
        mobile_rate_e4: 900,
        home: false,
    },
    Country {
        cc: "44",
        land: &["20"],
        mobile: &["77", "78", "79"],
        rest_digits: 8,
        label: "United Kingdom",
        mobile_label: "United Kingdom Mobile",
        land_rate_e4: 150,
        mobile_rate_e4: 1200,
        home: false,
    },
    Country {
        cc: "1",
        land: &["212555", "415555", "312555", "617555"],
        mobile: &[],
        rest_digits: 4,
        label: "USA",
        mobile_label: "USA",
        land_rate_e4: 100,
        mobile_rate_e4: 100,
        home: false,
    },
    Country {
        cc: "33",
        land: &["1"],
        mobile: &["6", "7"],
        rest_digits: 8,
        label: "France",
        mobile_label: "France Mobile",
        land_rate_e4: 200,
        mobile_rate_e4: 1100,
        home: false,
    },
];
const COUNTRY_WEIGHTS: [u32; 5] = [55, 15, 10, 10, 10];

/// Customers are a fixed pool per seed, so numbers call again across days (and a
/// number always has the same name), as BI "returning caller" queries need.
const CUSTOMERS: u32 = 5000;
/// Half of all customer picks come from the first ones: frequent callers.
const FREQUENT_CUSTOMERS: u32 = 100;

/// A phone number or `anonymous`, kept inline to spare an allocation per field.
#[derive(Clone, Copy, Default)]
struct Phone {
    buf: [u8; 20],
    len: u8,
}

impl Phone {
    fn from_str(s: &str) -> Self {
        let mut p = Phone::default();
        p.push_str(s);
        p
    }

    fn push_str(&mut self, s: &str) {
        let start = usize::from(self.len);
        self.buf[start..start + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len() as u8;
    }

    fn push_digit(&mut self, d: u32) {
        self.buf[usize::from(self.len)] = b'0' + d as u8;
        self.len += 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("phone numbers are ASCII")
    }
}

struct Customer {
    country: &'static Country,
    mobile: bool,
    /// National significant number: digits without country code or trunk prefix.
    nsn: Phone,
    name: Option<&'static str>,
    /// Presents its number nationally (`0…`) rather than in E.164 (home country only).
    national_style: bool,
}

impl Customer {
    fn pick(seed: u64, rng: &mut Rng) -> Self {
        let index = if rng.percent(50) {
            rng.below(FREQUENT_CUSTOMERS)
        } else {
            rng.below(CUSTOMERS)
        };
        let mut r = Rng::derive(seed, &[STREAM_CUSTOMER, u64::from(index)]);
        let country = &COUNTRIES[r.weighted(&COUNTRY_WEIGHTS)];
        let mobile = !country.mobile.is_empty() && r.percent(45);
        let prefixes = if mobile { country.mobile } else { country.land };
        let mut nsn = Phone::from_str(r.pick::<&str>(prefixes));
        for _ in 0..country.rest_digits {
            nsn.push_digit(r.below(10));
        }
        let name = r.percent(40).then(|| *r.pick(&CONTACTS));
        let national_style = country.home && r.percent(30);
        Customer {
            country,
            mobile,
            nsn,
            name,
            national_style,
        }
    }

    fn with_prefix(&self, prefix: &str, cc: bool) -> Phone {
        let mut p = Phone::from_str(prefix);
        if cc {
            p.push_str(self.country.cc);
        }
        p.push_str(self.nsn.as_str());
        p
    }

    /// The number as the PBX sees it on an inbound call.
    fn presented(&self) -> Phone {
        if self.national_style {
            self.with_prefix("0", false)
        } else {
            self.with_prefix("+", true)
        }
    }

    /// The number as a user dialled it.
    fn dialled(&self, rng: &mut Rng) -> Phone {
        match (
            self.country.home,
            rng.percent(if self.country.home { 40 } else { 20 }),
        ) {
            (true, true) => self.with_prefix("0", false),
            (false, true) => self.with_prefix("00", true),
            _ => self.with_prefix("+", true),
        }
    }

    fn destination(&self) -> &'static str {
        if self.mobile {
            self.country.mobile_label
        } else {
            self.country.label
        }
    }

    fn rate_e4(&self) -> u32 {
        if self.mobile {
            self.country.mobile_rate_e4
        } else {
            self.country.land_rate_e4
        }
    }
}

// ---------------------------------------------------------------------------
// Calls

#[derive(Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

impl Disposition {
    fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
    Internal,
}

/// What a quirk did to a CDR row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    ShortRow,
    BadDate,
    BadNumber,
    EmptyCharge,
}

#[derive(Clone, Copy)]
enum QueueEnd {
    Agent,
    Abandoned,
    Voicemail,
    OtherQueue(&'static Queue),
    Ivr(&'static Ivr),
}

const MAX_RUNG: usize = 4;

#[derive(Clone, Copy)]
struct QueueVisit {
    queue: &'static Queue,
    callers: u32,
    /// Agents rung in turn (user index, ring seconds); the first `rung_count` are used.
    rung: [(usize, u32); MAX_RUNG],
    rung_count: usize,
    end: QueueEnd,
}

impl QueueVisit {
    fn rung(&self) -> &[(usize, u32)] {
        &self.rung[..self.rung_count]
    }

    fn hold(&self) -> u32 {
        self.rung().iter().map(|&(_, ring)| ring).sum()
    }

    fn last_agent(&self) -> usize {
        self.rung()[self.rung_count - 1].0
    }

    fn final_dst(&self) -> (&'static str, u64) {
        match self.end {
            QueueEnd::Agent | QueueEnd::Abandoned => ("U", user_id(self.last_agent())),
            QueueEnd::Voicemail => ("V", voicemail_box(self.queue)),
            QueueEnd::OtherQueue(q) => ("Q", q.id),
            QueueEnd::Ivr(i) => ("R", i.id),
        }
    }
}

/// One call; everything every file needs about it.
#[derive(Clone, Copy)]
struct Call {
    seq: u32,
    start: i64,
    direction: Direction,
    src_id: &'static str,
    src: Phone,
    /// `clid` is `"name" <src>` when set, else `src`.
    clid_name: Option<&'static str>,
    dst: Phone,
    dst_name: &'static str,
    duration: u32,
    billsec: u32,
    disposition: Disposition,
    destination: &'static str,
    rate_e4: Option<u32>,
    t_cause: &'static str,
    /// The user who talked, whose recording this call has; `None` = not recorded.
    recorded_user: Option<usize>,
    queue: Option<QueueVisit>,
    defect: Defect,
}

impl Call {
    fn charge_e4(&self) -> Option<u64> {
        match self.defect {
            Defect::EmptyCharge => None,
            _ => self.rate_e4.map(|rate| charge_e4(rate, self.billsec)),
        }
    }

    fn end(&self) -> i64 {
        self.start + i64::from(self.duration)
    }
}

/// `rate * billsec / 60` in units of 0.0001, rounded half up, in integers.
fn charge_e4(rate_e4: u32, billsec: u32) -> u64 {
    (u64::from(rate_e4) * u64::from(billsec) + 30) / 60
}

/// Talk time: mostly short calls, a long tail up to an hour.
fn talk_seconds(rng: &mut Rng) -> u32 {
    match rng.weighted(&[40, 35, 20, 5]) {
        0 => rng.range(5, 60),
        1 => rng.range(61, 300),
        2 => rng.range(301, 900),
        _ => rng.range(901, 3600),
    }
}

/// Outcome of ringing a phone: (disposition, duration, billsec, t_cause).
fn ring_outcome(rng: &mut Rng, weights: &[u32; 4]) -> (Disposition, u32, u32, &'static str) {
    match rng.weighted(weights) {
        0 => {
            let talk = talk_seconds(rng);
            (
                Disposition::Answered,
                rng.range(2, 25) + talk,
                talk,
                "Normal Clearing",
            )
        }
        1 => {
            let cause = if rng.percent(60) {
                "No Answer"
            } else {
                "Cancelled"
            };
            (Disposition::NoAnswer, rng.range(5, 45), 0, cause)
        }
        2 => (Disposition::Busy, rng.range(0, 3), 0, "Busy"),
        _ => {
            let cause = *rng.pick(&["Unallocated Number", "Congestion", "Call Rejected"]);
            (Disposition::Failed, 0, 0, cause)
        }
    }
}

fn set_outcome(
    call: &mut Call,
    (disposition, duration, billsec, t_cause): (Disposition, u32, u32, &'static str),
) {
    call.disposition = disposition;
    call.duration = duration;
    call.billsec = billsec;
    call.t_cause = t_cause;
}

/// An external caller: (src, clid name).
fn caller(seed: u64, rng: &mut Rng) -> (Phone, Option<&'static str>) {
    if rng.percent(5) {
        (Phone::from_str("anonymous"), None)
    } else {
        let c = Customer::pick(seed, rng);
        (c.presented(), c.name)
    }
}

fn gen_call(seed: u64, rng: &mut Rng, seq: u32, start: i64) -> Call {
    let mut call = Call {
        seq,
        start,
        direction: Direction::Inbound,
        src_id: "",
        src: Phone::default(),
        clid_name: None,
        dst: Phone::default(),
        dst_name: "",
        duration: 0,
        billsec: 0,
        disposition: Disposition::Answered,
        destination: "",
        rate_e4: None,
        t_cause: "",
        recorded_user: None,
        queue: None,
        defect: Defect::None,
    };
    match rng.weighted(&[30, 20, 30, 5, 15]) {
        0 => {
            let u = rng.below(USERS.len() as u32) as usize;
            let c = Customer::pick(seed, rng);
            call.direction = Direction::Outbound;
            call.src_id = USERS[u].sip;
            call.src = extension(u);
            call.clid_name = Some(USERS[u].name);
            call.dst = c.dialled(rng);
            call.dst_name = c.name.unwrap_or("");
            call.destination = c.destination();
            call.rate_e4 = Some(c.rate_e4());
            set_outcome(&mut call, ring_outcome(rng, &[60, 22, 12, 6]));
            call.recorded_user = Some(u);
        }
        1 => {
            let u = rng.below(USERS.len() as u32) as usize;
            (call.src, call.clid_name) = caller(seed, rng);
            call.dst = direct_number(u);
            call.dst_name = USERS[u].name;
            set_outcome(&mut call, ring_outcome(rng, &[70, 22, 6, 2]));
            call.recorded_user = Some(u);
        }
        2 => {
            (call.src, call.clid_name) = caller(seed, rng);
            gen_queue_visit(rng, &mut call);
        }
        3 => {
            let ivr = rng.pick(&IVRS);
            (call.src, call.clid_name) = caller(seed, rng);
            call.dst = Phone::from_str(ivr.ddi);
            call.dst_name = ivr.name;
            if rng.percent(90) {
                call.billsec = rng.range(5, 120);
                call.duration = call.billsec + rng.range(0, 2);
                call.t_cause = "Normal Clearing";
            } else {
                set_outcome(
                    &mut call,
                    (Disposition::NoAnswer, rng.range(1, 5), 0, "Cancelled"),
                );
            }
        }
        _ => {
            let from = rng.below(USERS.len() as u32) as usize;
            let to = (from + 1 + rng.below(USERS.len() as u32 - 1) as usize) % USERS.len();
            call.direction = Direction::Internal;
            call.src = extension(from);
            call.clid_name = Some(USERS[from].name);
            call.dst = extension(to);
            call.dst_name = USERS[to].name;
            set_outcome(&mut call, ring_outcome(rng, &[75, 15, 10, 0]));
            call.recorded_user = Some(from);
        }
    }
    if call.disposition != Disposition::Answered {
        call.recorded_user = None;
    }
    call
}

/// An inbound call to a queue: it rings agents in turn until one picks up, the caller
/// hangs up, or it is sent on to voicemail, another queue or an IVR.
fn gen_queue_visit(rng: &mut Rng, call: &mut Call) {
    let qi = rng.weighted(&QUEUE_WEIGHTS);
    let queue = &QUEUES[qi];
    call.dst = Phone::from_str(queue.ddi);
    call.dst_name = queue.name;
    let end = match rng.weighted(&[78, 12, 5, 3, 2]) {
        0 => QueueEnd::Agent,
        1 => QueueEnd::Abandoned,
        2 => QueueEnd::Voicemail,
        3 => QueueEnd::OtherQueue(&QUEUES[(qi + 1 + rng.below(2) as usize) % QUEUES.len()]),
        _ => QueueEnd::Ivr(rng.pick(&IVRS)),
    };
    let mut visit = QueueVisit {
        queue,
        callers: rng.below(6),
        rung: [(0, 0); MAX_RUNG],
        rung_count: rng.range(1, MAX_RUNG as u32) as usize,
        end,
    };
    let first = rng.below(queue.members as u32) as usize;
    for i in 0..visit.rung_count {
        let last = i + 1 == visit.rung_count;
        let ring = match end {
            QueueEnd::Agent if last => rng.range(2, 15),
            QueueEnd::Abandoned if last => rng.range(1, 15),
            _ => rng.range(10, 20),
        };
        visit.rung[i] = (queue.first_member + (first + i) % queue.members, ring);
    }
    let hold = visit.hold();
    let talk = match end {
        QueueEnd::Agent => talk_seconds(rng),
        QueueEnd::Abandoned => 0,
        QueueEnd::Voicemail => rng.range(5, 90),
        QueueEnd::OtherQueue(_) => rng.range(10, 300),
        QueueEnd::Ivr(_) => rng.range(5, 120),
    };
    call.duration = hold + talk;
    call.billsec = talk;
    if let QueueEnd::Abandoned = end {
        call.disposition = Disposition::NoAnswer;
        call.t_cause = "Cancelled";
    } else {
        call.t_cause = "Normal Clearing";
    }
    if let QueueEnd::Agent = end {
        call.recorded_user = Some(visit.last_agent());
    }
    call.queue = Some(visit);
}

const DAY_SECONDS: i64 = 86_400;

/// Relative call volume per UTC hour.
const WEEKDAY_HOURS: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 5, 15, 45, 70, 80, 78, 60, 70, 78, 75, 65, 45, 20, 10, 6, 4, 3, 2,
];
const WEEKEND_HOURS: [u32; 24] = [
    3, 2, 1, 1, 1, 1, 2, 4, 8, 12, 15, 16, 15, 14, 13, 12, 10, 9, 8, 7, 6, 5, 4, 3,
];

fn day_start(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp()
}

fn day_number(date: NaiveDate) -> u64 {
    (day_start(date) / DAY_SECONDS) as u64
}

fn system_time(epoch: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(epoch as u64)
}

/// The day's calls in calldate order, regenerated identically on every pass.
///
/// Call times are drawn first into a per-second histogram, which sorts them in constant
/// memory (86,400 counters) whatever the row count; each call's content is then drawn
/// in order.
struct CallStream {
    seed: u64,
    rng: Rng,
    day_start: i64,
    per_second: Vec<u32>,
    second: usize,
    next_seq: u32,
}

impl CallStream {
    fn new(seed: u64, date: NaiveDate, rows: usize) -> Self {
        let mut rng = Rng::derive(seed, &[STREAM_CALLS, day_number(date)]);
        let hours = match date.weekday() {
            Weekday::Sat | Weekday::Sun => &WEEKEND_HOURS,
            _ => &WEEKDAY_HOURS,
        };
        let mut per_second = vec![0u32; DAY_SECONDS as usize];
        for _ in 0..rows {
            let second = rng.weighted(hours) * 3600 + rng.below(3600) as usize;
            per_second[second] += 1;
        }
        CallStream {
            seed,
            rng,
            day_start: day_start(date),
            per_second,
            second: 0,
            next_seq: 0,
        }
    }
}

impl Iterator for CallStream {
    type Item = Call;

    fn next(&mut self) -> Option<Call> {
        while *self.per_second.get(self.second)? == 0 {
            self.second += 1;
        }
        self.per_second[self.second] -= 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let start = self.day_start + self.second as i64;
        Some(gen_call(self.seed, &mut self.rng, seq, start))
    }
}

// ---------------------------------------------------------------------------
// Formatting

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
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
fn push_datetime(out: &mut Vec<u8>, epoch: i64, date_sep: u8, mid: u8, time_sep: u8) {
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
fn push_e4(out: &mut Vec<u8>, v: u64) {
    push_u64(out, v / 10_000);
    out.push(b'.');
    let frac = (v % 10_000) as u32;
    push_2(out, frac / 100);
    push_2(out, frac % 100);
}

/// One CSV field, quoted only when it must be.
fn push_field(out: &mut Vec<u8>, s: &str) {
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

fn push_id(out: &mut Vec<u8>, call: &Call) {
    push_u64(out, call.start as u64);
    out.push(b'.');
    push_u64(out, u64::from(call.seq));
}

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
        if call.seq % 3 != 0 {
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

// ---------------------------------------------------------------------------
// CDR file with quirks

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

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn eol(spec: &DropSpec) -> &'static [u8] {
    if spec.quirks.bom_crlf { b"\r\n" } else { b"\n" }
}

/// Big buffers for the multi-GB CSV/zip streams, small ones for the many recordings.
const BIG_BUFFER: usize = 1 << 20;
const SMALL_BUFFER: usize = 64 << 10;

fn create(root: &Path, rel: &str, buffer: usize) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        buffer,
        File::create(root.join(rel))?,
    ))
}

/// Flushes, closes and dates a file; the mtime is set last so no write moves it.
fn finish(w: BufWriter<File>, mtime: SystemTime) -> io::Result<()> {
    w.into_inner()
        .map_err(|e| e.into_error())?
        .set_modified(mtime)
}

fn write_csv_header(w: &mut impl Write, spec: &DropSpec, header: &str) -> io::Result<()> {
    if spec.quirks.bom_crlf {
        w.write_all(BOM)?;
    }
    w.write_all(header.as_bytes())?;
    w.write_all(eol(spec))
}

fn write_cdr(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
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

// ---------------------------------------------------------------------------
// Queue zip

/// Upper bound of one queue_user_call line's bytes times lines per CDR row, to know
/// when an entry may pass 4 GiB and needs ZIP64 (decided up front: streamed entries
/// cannot switch later).
const MAX_QUEUE_BYTES_PER_CDR_ROW: u64 = 120 * (MAX_RUNG as u64 + 1);

fn write_queue_zip(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    let rel = queue_zip_path(m.date);
    let date = m.date;
    let mut zip = ZipWriter::new(create(root, &rel, BIG_BUFFER)?);
    let upload =
        DateTime::from_timestamp(day_start(date) + DAY_SECONDS + 3600, 0).expect("validated");
    let stamp = zip::DateTime::from_date_and_time(
        upload.year() as u16,
        upload.month() as u8,
        upload.day() as u8,
        upload.hour() as u8,
        upload.minute() as u8,
        upload.second() as u8,
    )
    .map_err(io::Error::other)?;
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        // Level 1: the benchmarks' 1M-row days deflate twice as fast as at the default
        // level, for a 60 % bigger zip; nothing tests compression ratio.
        .compression_level(Some(1))
        .last_modified_time(stamp)
        .system(zip::System::Unix)
        .unix_permissions(0o644)
        .large_file(
            spec.cdr_rows_per_day as u64 * MAX_QUEUE_BYTES_PER_CDR_ROW >= u64::from(u32::MAX),
        );
    let id_base = day_number(date) * 1_000_000_000;
    let eol = eol(spec);
    let mut line = Vec::with_capacity(256);

    zip.start_file(format!("{date}-queue_call.csv"), options)
        .map_err(io::Error::other)?;
    {
        let mut w = BufWriter::with_capacity(BIG_BUFFER, &mut zip);
        write_csv_header(&mut w, spec, QUEUE_CALL_HEADER)?;
        for call in CallStream::new(spec.seed, date, spec.cdr_rows_per_day) {
            let Some(visit) = call.queue else { continue };
            m.queue_calls += 1;
            match visit.end {
                QueueEnd::Agent => m.queue_connected += 1,
                QueueEnd::Abandoned => m.queue_abandoned += 1,
                _ => {}
            }
            format_queue_call(&mut line, id_base + m.queue_calls as u64, &call, &visit);
            w.write_all(&line)?;
            w.write_all(eol)?;
        }
        w.flush()?;
    }

    zip.start_file(format!("{date}-queue_user_call.csv"), options)
        .map_err(io::Error::other)?;
    {
        let mut w = BufWriter::with_capacity(BIG_BUFFER, &mut zip);
        write_csv_header(&mut w, spec, QUEUE_USER_CALL_HEADER)?;
        let mut rows = 0u64;
        for call in CallStream::new(spec.seed, date, spec.cdr_rows_per_day) {
            let Some(visit) = call.queue else { continue };
            let mut at = call.start;
            for (i, &(user, ring)) in visit.rung().iter().enumerate() {
                let connected = matches!(visit.end, QueueEnd::Agent) && i + 1 == visit.rung_count;
                let uc = UserCall {
                    user: Some(user),
                    start: at,
                    ring,
                    conn: if connected { call.billsec } else { 0 },
                    order: i + 1,
                    final_dst: ("U", user_id(user)),
                    connected,
                };
                rows += 1;
                format_queue_user_call(&mut line, id_base + rows, &call, &visit, &uc);
                w.write_all(&line)?;
                w.write_all(eol)?;
                at += i64::from(ring);
            }
            if let QueueEnd::Voicemail | QueueEnd::OtherQueue(_) | QueueEnd::Ivr(_) = visit.end {
                let uc = UserCall {
                    user: None,
                    start: at,
                    ring: 0,
                    conn: call.billsec,
                    order: visit.rung_count + 1,
                    final_dst: visit.final_dst(),
                    connected: true,
                };
                rows += 1;
                format_queue_user_call(&mut line, id_base + rows, &call, &visit, &uc);
                w.write_all(&line)?;
                w.write_all(eol)?;
            }
        }
        w.flush()?;
        m.queue_user_calls = rows as usize;
    }
    let w = zip.finish().map_err(io::Error::other)?;
    m.queue_path = Some(rel);
    finish(w, upload_time(date))
}

fn format_queue_call(out: &mut Vec<u8>, id: u64, call: &Call, visit: &QueueVisit) {
    out.clear();
    push_u64(out, id);
    out.push(b',');
    push_id(out, call);
    out.push(b',');
    push_u64(out, visit.queue.id);
    out.push(b',');
    out.extend_from_slice(call.dst.as_bytes());
    out.push(b',');
    out.extend_from_slice(call.src.as_bytes());
    out.push(b',');
    push_u64(out, u64::from(visit.callers));
    out.push(b',');
    push_u64(out, visit.queue.members as u64);
    out.push(b',');
    push_datetime(out, call.start, b'-', b' ', b':');
    out.push(b',');
    push_u64(out, u64::from(visit.hold()));
    out.push(b',');
    push_u64(out, u64::from(call.billsec));
    let (kind, dst) = visit.final_dst();
    out.push(b',');
    out.extend_from_slice(kind.as_bytes());
    out.push(b',');
    push_u64(out, dst);
    out.push(b',');
    out.push(if let QueueEnd::Abandoned = visit.end {
        b'H'
    } else {
        b'C'
    });
}

/// One point a queue call was offered to.
struct UserCall {
    /// `None` for a voicemail / queue / IVR destination.
    user: Option<usize>,
    start: i64,
    ring: u32,
    conn: u32,
    order: usize,
    final_dst: (&'static str, u64),
    connected: bool,
}

fn format_queue_user_call(
    out: &mut Vec<u8>,
    id: u64,
    call: &Call,
    visit: &QueueVisit,
    uc: &UserCall,
) {
    out.clear();
    push_u64(out, id);
    out.push(b',');
    push_id(out, call);
    out.push(b',');
    push_u64(out, visit.queue.id);
    out.push(b',');
    if let Some(user) = uc.user {
        push_u64(out, user_id(user));
        out.push(b',');
        push_u64(out, location_id(user));
    } else {
        out.push(b',');
    }
    out.push(b',');
    push_datetime(out, uc.start, b'-', b' ', b':');
    out.push(b',');
    push_u64(out, u64::from(uc.ring));
    out.push(b',');
    push_u64(out, u64::from(uc.conn));
    out.push(b',');
    push_u64(out, uc.order as u64);
    out.push(b',');
    out.extend_from_slice(uc.final_dst.0.as_bytes());
    out.push(b',');
    push_u64(out, uc.final_dst.1);
    out.push(b',');
    out.push(if uc.connected { b'C' } else { b'H' });
}

// ---------------------------------------------------------------------------
// Recordings

/// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, joint stereo: 417-byte frames.
const MP3_FRAME_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];
const MP3_FRAME_BYTES: usize = 417;

fn write_recordings(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    let limit = spec.recordings_per_day.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(());
    }
    let mut name = Vec::with_capacity(128);
    for call in CallStream::new(spec.seed, m.date, spec.cdr_rows_per_day) {
        let Some(user) = call.recorded_user else {
            continue;
        };
        name.clear();
        name.extend_from_slice(b"recordings/");
        push_datetime(&mut name, call.start, b'_', b'_', b'_');
        name.push(b'-');
        name.extend_from_slice(USERS[user].sip.as_bytes());
        name.push(b'-');
        name.extend_from_slice(call.src.as_bytes());
        name.push(b'-');
        name.extend_from_slice(call.dst.as_bytes());
        name.push(b'-');
        let id_at = name.len();
        push_id(&mut name, &call);
        let unique_id = String::from_utf8(name[id_at..].to_vec()).expect("ASCII");
        name.extend_from_slice(b".mp3");
        let rel = String::from_utf8(name.clone()).expect("SIP names and numbers are UTF-8");
        let mut rng = Rng::derive(
            spec.seed,
            &[STREAM_RECORDING, call.start as u64, u64::from(call.seq)],
        );
        let size = rng.range_u64(&spec.recording_bytes);
        write_mp3(
            create(root, &rel, SMALL_BUFFER)?,
            &unique_id,
            size,
            &mut rng,
            system_time(call.end()),
        )?;
        m.recordings.push(rel);
        m.recording_bytes += size;
        if m.recordings.len() == limit {
            break;
        }
    }
    Ok(())
}

/// Exactly `size` bytes of "ID3 tag, then MP3 frames", written frame by frame.
fn write_mp3(
    mut w: BufWriter<File>,
    title: &str,
    size: u64,
    rng: &mut Rng,
    mtime: SystemTime,
) -> io::Result<()> {
    let mut tag = Vec::with_capacity(32 + title.len());
    let frame_len = 1 + title.len() as u32; // encoding byte + text
    tag.extend_from_slice(b"ID3\x04\x00\x00");
    tag.extend_from_slice(&syncsafe(10 + frame_len));
    tag.extend_from_slice(b"TIT2");
    tag.extend_from_slice(&syncsafe(frame_len));
    tag.extend_from_slice(&[0, 0, 3]); // no flags; UTF-8
    tag.extend_from_slice(title.as_bytes());
    let mut left = size;
    write_capped(&mut w, &tag, &mut left)?;
    let mut frame = [0u8; MP3_FRAME_BYTES];
    frame[..4].copy_from_slice(&MP3_FRAME_HEADER);
    while left > 0 {
        for chunk in frame[4..].chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
        }
        write_capped(&mut w, &frame, &mut left)?;
    }
    finish(w, mtime)
}

/// Writes as much of `bytes` as `left` allows.
fn write_capped(w: &mut impl Write, bytes: &[u8], left: &mut u64) -> io::Result<()> {
    let n = bytes
        .len()
        .min(usize::try_from(*left).unwrap_or(usize::MAX));
    *left -= n as u64;
    w.write_all(&bytes[..n])
}

/// ID3v2.4 sizes: 7 bits per byte.
fn syncsafe(n: u32) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

fn write_bad_recording_names(root: &Path, m: &mut DayManifest) -> io::Result<()> {
    let day = m.date.format("%Y_%m_%d").to_string();
    let year = m.date.year();
    let start = day_start(m.date) + 10 * 3600;
    let mut stamp = Vec::new();
    push_datetime(&mut stamp, start, b'_', b'_', b'_');
    let stamp = String::from_utf8(stamp).expect("ASCII");
    let files: [(String, &[u8]); 4] = [
        (
            format!("{day}-broken.mp3"),
            b"ID3\x04\x00\x00\x00\x00\x00\x00",
        ),
        (format!("{day}-notes.txt"), b"not a recording\n"),
        (
            format!("{stamp}-sales-anna.mp3"),
            b"ID3\x04\x00\x00\x00\x00\x00\x00",
        ),
        (
            format!("{year}_13_45_25_61_00-sales-anna-101-+48221234567-{start}.0.mp3"),
            b"\xFF\xFB\x90\x64",
        ),
    ];
    for (name, content) in files {
        let rel = format!("recordings/{name}");
        let mut w = create(root, &rel, SMALL_BUFFER)?;
        w.write_all(content)?;
        finish(w, upload_time(m.date))?;
        m.bad_recording_names.push(rel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::io::Read;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
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

    fn spec_all_quirks() -> DropSpec {
        DropSpec {
            cdr_rows_per_day: 400,
            recording_bytes: 0..=3000,
            quirks: Quirks::all(),
            ..DropSpec::new(42, date("2024-03-01"), date("2024-03-03"))
        }
    }

    /// Relative path → bytes of every file under `dir`.
    fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    files.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        files
    }

    /// Minimal RFC 4180 splitter for one line (no line breaks inside fields).
    fn split_csv(line: &str) -> Vec<String> {
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
    fn csv_lines(bytes: &[u8], bom_crlf: bool) -> (String, Vec<String>) {
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

    /// (name, content) of each entry, in archive order.
    fn unzip(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            assert_eq!(f.compression(), CompressionMethod::Deflated);
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            out.push((f.name().unwrap().into_owned(), bytes));
        }
        out
    }

    /// A CDR (fields in [`CDR_HEADER`] order) of a call to a queue's number.
    fn is_queue_cdr(f: &[String]) -> bool {
        QUEUES.iter().any(|q| q.ddi == f[5] && q.name == f[6])
    }

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let spec = spec_all_quirks();
        let (a, b) = (TempDir::new("det-a"), TempDir::new("det-b"));
        let ma = write_drop(&a.0, &spec).unwrap();
        let mb = write_drop(&b.0, &spec).unwrap();
        assert_eq!(ma, mb);
        let (ta, tb) = (read_tree(&a.0), read_tree(&b.0));
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        for (name, bytes) in &ta {
            assert!(bytes == &tb[name], "{name} differs between runs");
        }
        assert_eq!(ta.keys().filter(|k| k.starts_with("CDRs/")).count(), 3);
        assert_eq!(
            ta.keys().filter(|k| k.starts_with("QueueCalls/")).count(),
            3
        );

        let c = TempDir::new("det-c");
        write_drop(&c.0, &DropSpec { seed: 43, ..spec }).unwrap();
        assert_ne!(
            ta["CDRs/2024-03-01.csv"],
            fs::read(c.0.join("CDRs/2024-03-01.csv")).unwrap()
        );
    }

    #[test]
    fn a_day_alone_equals_that_day_in_a_drop() {
        let spec = spec_all_quirks();
        let (all, one) = (TempDir::new("indep-all"), TempDir::new("indep-one"));
        let drop = write_drop(&all.0, &spec).unwrap();
        let day = write_day(&one.0, &spec, date("2024-03-02")).unwrap();
        assert_eq!(&day, drop.day(date("2024-03-02")).unwrap());
        for (name, bytes) in read_tree(&one.0) {
            assert!(
                bytes == fs::read(all.0.join(&name)).unwrap(),
                "{name} differs"
            );
        }
    }

    /// Classifies every row of one CDR file as the ingester would, checks the formats,
    /// and compares the counts with the manifest. Returns the day's own valid rows by id,
    /// fields in [`CDR_HEADER`] order.
    fn check_cdr_file(
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
                    || (number.len() == 3
                        && (101..=140).contains(&number.parse::<u32>().unwrap_or(0)))
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

    /// Splits a recording name from both ends as PROVIDER.md says:
    /// (timestamp, sip, caller, called, unique id).
    fn parse_recording(name: &str) -> Option<(String, String, String, String, String)> {
        let stem = name.strip_prefix("recordings/")?.strip_suffix(".mp3")?;
        let (stamp, rest) = (stem.get(..19)?, stem.get(19..)?.strip_prefix('-')?);
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y_%m_%d_%H_%M_%S").ok()?;
        let mut parts = rest.rsplitn(4, '-');
        let (id, called, caller, sip) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some((
            stamp.into(),
            sip.into(),
            caller.into(),
            called.into(),
            id.into(),
        ))
    }

    #[test]
    fn recordings_match_cdrs_and_pattern() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("recordings");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let sips: HashSet<&str> = USERS.iter().map(|u| u.sip).collect();
        for m in &drop.days {
            let own = check_cdr_file(&dir.0, &spec, m);
            assert!(!m.recordings.is_empty());
            let mut bytes = 0;
            for name in &m.recordings {
                let (stamp, sip, caller, called, id) = parse_recording(name).expect(name);
                let cdr = own
                    .get(&id)
                    .unwrap_or_else(|| panic!("{name}: no CDR {id}"));
                assert!(id.contains('.'));
                assert_eq!(cdr[9], "ANSWERED");
                assert_eq!(
                    (caller.as_str(), called.as_str()),
                    (cdr[3].as_str(), cdr[5].as_str())
                );
                assert_eq!(stamp.replace('_', ""), cdr[1].replace(['-', ' ', ':'], ""));
                assert!(sips.contains(sip.as_str()), "{sip}");
                let path = dir.0.join(name);
                let content = fs::read(&path).unwrap();
                assert!(spec.recording_bytes.contains(&(content.len() as u64)));
                bytes += content.len() as u64;
                if content.len() > 200 {
                    assert!(content.starts_with(b"ID3\x04"));
                    assert!(content.windows(2).any(|w| w == [0xFF, 0xFB]));
                }
                let start =
                    chrono::NaiveDateTime::parse_from_str(&cdr[1], "%Y-%m-%d %H:%M:%S").unwrap();
                let end = start.and_utc().timestamp() + cdr[7].parse::<i64>().unwrap();
                assert_eq!(mtime(&path), system_time(end));
            }
            assert_eq!(bytes, m.recording_bytes);
            // One recording per answered call that reached a user: all answered calls
            // except IVR and voicemail / transferred queue calls.
            let not_recorded = own
                .values()
                .filter(|f| {
                    f[9] == "ANSWERED" && (is_queue_cdr(f) || IVRS.iter().any(|i| i.ddi == f[5]))
                })
                .count();
            assert!(m.recordings.len() + not_recorded >= m.calls_answered);
            assert!(m.recordings.len() < m.calls_answered);
            assert!(m.recordings.iter().any(|r| r.contains("-anonymous-")));
            assert!(m.recordings.iter().any(|r| r.contains("-sales-")));
            assert_eq!(m.bad_recording_names.len(), 4);
            for bad in &m.bad_recording_names {
                assert!(parse_recording(bad).is_none(), "{bad} should not parse");
                assert_eq!(mtime(&dir.0.join(bad)), upload_time(m.date));
            }
        }
        let limited = DropSpec {
            recordings_per_day: Some(5),
            ..spec.clone()
        };
        let dir2 = TempDir::new("recordings-limited");
        let m2 = write_drop(&dir2.0, &limited).unwrap();
        assert!(m2.days.iter().all(|d| d.recordings.len() == 5));
        assert_eq!(m2.days[0].recordings[..], drop.days[0].recordings[..5]);
    }

    #[test]
    fn queue_zip_matches_cdrs() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("queue");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let mut row_ids = HashSet::new();
        for m in &drop.days {
            let own = check_cdr_file(&dir.0, &spec, m);
            let zip_path = dir.0.join(m.queue_path.as_ref().unwrap());
            assert_eq!(
                m.queue_path.as_deref(),
                Some(queue_zip_path(m.date).as_str())
            );
            let entries = unzip(&zip_path);
            let qc_name = format!("{}-queue_call.csv", m.date);
            let quc_name = format!("{}-queue_user_call.csv", m.date);
            let names: Vec<&String> = entries.iter().map(|(name, _)| name).collect();
            assert_eq!(names, [&qc_name, &quc_name]);

            let (header, qc) = csv_lines(&entries[0].1, true);
            assert_eq!(header, QUEUE_CALL_HEADER);
            assert_eq!(qc.len(), m.queue_calls);
            let queue_cdrs = own.values().filter(|f| is_queue_cdr(f)).count();
            assert_eq!(queue_cdrs, m.queue_calls);
            let mut calls = HashMap::new();
            let (mut connected, mut abandoned) = (0, 0);
            for line in &qc {
                let f = split_csv(line);
                assert_eq!(f.len(), 13);
                assert!(row_ids.insert(format!("qc{}", f[0])));
                let cdr = &own[&f[1]];
                assert_eq!((&f[3], &f[4], &f[7]), (&cdr[5], &cdr[3], &cdr[1]));
                let (hold, conn): (u64, u64) = (f[8].parse().unwrap(), f[9].parse().unwrap());
                assert_eq!(hold + conn, cdr[7].parse::<u64>().unwrap());
                assert_eq!(conn, cdr[8].parse::<u64>().unwrap());
                assert!(["U", "V", "Q", "R"].contains(&f[10].as_str()));
                match (f[10].as_str(), f[12].as_str()) {
                    ("U", "C") => connected += 1,
                    ("U", "H") => abandoned += 1,
                    (_, t) => assert_eq!(t, "C"),
                }
                assert_eq!(cdr[9] == "ANSWERED", f[12] == "C");
                calls.insert(f[1].clone(), f);
            }
            assert_eq!(
                (connected, abandoned),
                (m.queue_connected, m.queue_abandoned)
            );

            let (header, quc) = csv_lines(&entries[1].1, true);
            assert_eq!(header, QUEUE_USER_CALL_HEADER);
            assert_eq!(quc.len(), m.queue_user_calls);
            let mut order: HashMap<String, (u64, u64)> = HashMap::new();
            for line in &quc {
                let f = split_csv(line);
                assert_eq!(f.len(), 12);
                assert!(row_ids.insert(format!("quc{}", f[0])));
                let qcall = &calls[&f[1]];
                assert_eq!(f[2], qcall[2]);
                let (expected_order, rung) = order.entry(f[1].clone()).or_default();
                *expected_order += 1;
                assert_eq!(f[8], expected_order.to_string());
                if f[9] == "U" {
                    assert_eq!(f[3], f[10]);
                    *rung += f[6].parse::<u64>().unwrap();
                } else {
                    assert!(f[3].is_empty() && f[4].is_empty());
                    assert_eq!(
                        (&f[9], &f[10], &f[11]),
                        (&qcall[10], &qcall[11], &"C".to_owned())
                    );
                }
                if f[11] == "C" {
                    assert_eq!(f[7], qcall[9]);
                    assert_eq!(f[9], qcall[10]);
                }
            }
            assert_eq!(order.len(), m.queue_calls);
            for (call_id, (_, rung)) in order {
                assert_eq!(
                    rung.to_string(),
                    calls[&call_id][8],
                    "hold time = sum of ring times"
                );
            }
            assert_eq!(mtime(&zip_path), upload_time(m.date));
        }
    }

    #[test]
    fn files_are_dated_at_upload_time() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("mtime");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let first = &drop.days[0];
        let expected = UNIX_EPOCH + Duration::from_secs(1_709_341_200); // 2024-03-02 01:00:00 UTC
        assert_eq!(upload_time(first.date), expected);
        assert_eq!(mtime(&dir.0.join(&first.cdr_path)), expected);
        assert_eq!(
            mtime(&dir.0.join(first.queue_path.as_ref().unwrap())),
            expected
        );
    }

    #[test]
    fn charge_rounds_half_up() {
        assert_eq!(charge_e4(120, 60), 120);
        assert_eq!(charge_e4(120, 1), 2); // 2.0
        assert_eq!(charge_e4(900, 1), 15); // 15.0
        assert_eq!(charge_e4(1, 30), 1); // 0.5 -> 1
        assert_eq!(charge_e4(1, 29), 0); // 0.483 -> 0
        assert_eq!(charge_e4(250, 0), 0);
        let mut out = Vec::new();
        push_e4(&mut out, 120);
        out.push(b' ');
        push_e4(&mut out, 123_456);
        assert_eq!(out, b"0.0120 12.3456");
    }

    #[test]
    fn numeric_sip_names_are_extensions() {
        for (i, u) in USERS.iter().enumerate() {
            if u.sip.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(u.sip, extension(i).as_str());
            }
        }
        let sips: HashSet<&str> = USERS.iter().map(|u| u.sip).collect();
        assert_eq!(sips.len(), USERS.len());
    }

    #[test]
    fn rejects_bad_specs() {
        let spec = DropSpec::new(1, date("2024-03-02"), date("2024-03-01"));
        let dir = TempDir::new("reject");
        assert_eq!(
            write_drop(&dir.0, &spec).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let spec = DropSpec::new(1, date("1970-01-01"), date("1970-01-01"));
        assert_eq!(
            write_drop(&dir.0, &spec).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
