//! The simulated company (users, queues, IVRs, a pool of customers and their numbers)
//! and its calls: [`CallStream`] regenerates a day's calls identically for every feed,
//! so the CDRs, the queue reports and the recordings describe the same calls without
//! any of them being held in memory.

use chrono::{Datelike, NaiveDate, Weekday};

use super::rng::{Rng, STREAM_CALLS, STREAM_CUSTOMER};
use super::text::push_u64;
use super::{DAY_SECONDS, day_number, day_start};

// ---------------------------------------------------------------------------
// The simulated company and its customers

pub(super) struct User {
    pub(super) sip: &'static str,
    pub(super) name: &'static str,
}

const fn user(sip: &'static str, name: &'static str) -> User {
    User { sip, name }
}

/// Users in extension order: `USERS[i]` has extension `101 + i`, user id `1001 + i`,
/// direct number `+482212346xx` with `xx` = `i + 1`. Purely numeric SIP names equal the
/// extension.
pub(super) static USERS: [User; 40] = [
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

pub(super) fn user_id(user: usize) -> u64 {
    1001 + user as u64
}

pub(super) fn location_id(user: usize) -> u64 {
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

pub(super) struct Queue {
    pub(super) id: u64,
    pub(super) name: &'static str,
    pub(super) ddi: &'static str,
    /// Members are `USERS[first_member..first_member + members]`.
    first_member: usize,
    pub(super) members: usize,
}

pub(super) static QUEUES: [Queue; 3] = [
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

pub(super) struct Ivr {
    id: u64,
    name: &'static str,
    pub(super) ddi: &'static str,
}

pub(super) static IVRS: [Ivr; 2] = [
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
pub(super) struct Phone {
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

    pub(super) fn as_bytes(&self) -> &[u8] {
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
pub(super) enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

impl Disposition {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Inbound,
    Outbound,
    Internal,
}

/// What a quirk did to a CDR row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Defect {
    None,
    ShortRow,
    BadDate,
    BadNumber,
    EmptyCharge,
}

#[derive(Clone, Copy)]
pub(super) enum QueueEnd {
    Agent,
    Abandoned,
    Voicemail,
    OtherQueue(&'static Queue),
    Ivr(&'static Ivr),
}

pub(super) const MAX_RUNG: usize = 4;

#[derive(Clone, Copy)]
pub(super) struct QueueVisit {
    pub(super) queue: &'static Queue,
    pub(super) callers: u32,
    /// Agents rung in turn (user index, ring seconds); the first `rung_count` are used.
    rung: [(usize, u32); MAX_RUNG],
    pub(super) rung_count: usize,
    pub(super) end: QueueEnd,
}

impl QueueVisit {
    pub(super) fn rung(&self) -> &[(usize, u32)] {
        &self.rung[..self.rung_count]
    }

    pub(super) fn hold(&self) -> u32 {
        self.rung().iter().map(|&(_, ring)| ring).sum()
    }

    fn last_agent(&self) -> usize {
        self.rung()[self.rung_count - 1].0
    }

    pub(super) fn final_dst(&self) -> (&'static str, u64) {
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
pub(super) struct Call {
    pub(super) seq: u32,
    pub(super) start: i64,
    pub(super) direction: Direction,
    pub(super) src_id: &'static str,
    pub(super) src: Phone,
    /// `clid` is `"name" <src>` when set, else `src`.
    pub(super) clid_name: Option<&'static str>,
    pub(super) dst: Phone,
    pub(super) dst_name: &'static str,
    pub(super) duration: u32,
    pub(super) billsec: u32,
    pub(super) disposition: Disposition,
    pub(super) destination: &'static str,
    pub(super) rate_e4: Option<u32>,
    pub(super) t_cause: &'static str,
    /// The user who talked, whose recording this call has; `None` = not recorded.
    pub(super) recorded_user: Option<usize>,
    pub(super) queue: Option<QueueVisit>,
    pub(super) defect: Defect,
}

impl Call {
    pub(super) fn charge_e4(&self) -> Option<u64> {
        match self.defect {
            Defect::EmptyCharge => None,
            _ => self.rate_e4.map(|rate| charge_e4(rate, self.billsec)),
        }
    }

    pub(super) fn end(&self) -> i64 {
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

/// The call's id as every feed writes it: the CDR `id`, the queue rows' `call_id`, the
/// recording's UNIQUEID.
pub(super) fn push_id(out: &mut Vec<u8>, call: &Call) {
    push_u64(out, call.start as u64);
    out.push(b'.');
    push_u64(out, u64::from(call.seq));
}

// ---------------------------------------------------------------------------
// The day's calls

/// Relative call volume per UTC hour.
const WEEKDAY_HOURS: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 5, 15, 45, 70, 80, 78, 60, 70, 78, 75, 65, 45, 20, 10, 6, 4, 3, 2,
];
const WEEKEND_HOURS: [u32; 24] = [
    3, 2, 1, 1, 1, 1, 2, 4, 8, 12, 15, 16, 15, 14, 13, 12, 10, 9, 8, 7, 6, 5, 4, 3,
];

/// The day's calls in calldate order, regenerated identically on every pass.
///
/// Call times are drawn first into a per-second histogram, which sorts them in constant
/// memory (86,400 counters) whatever the row count; each call's content is then drawn
/// in order.
pub(super) struct CallStream {
    seed: u64,
    rng: Rng,
    day_start: i64,
    per_second: Vec<u32>,
    second: usize,
    pub(super) next_seq: u32,
}

impl CallStream {
    pub(super) fn new(seed: u64, date: NaiveDate, rows: usize) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::text::push_e4;
    use std::collections::HashSet;

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
}
