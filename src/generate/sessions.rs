//! `sessions/YYYY/MM/DD/*.json`: the contact-center platform's session metadata files
//! (`shared/PROVIDER.md` §3), written from the platform's documentation of the call and
//! chat session metadata record, not from the parser.
//!
//! # What a day holds
//!
//! `spec.sessions_per_day` sessions are created on the day, at random seconds, ids in
//! creation order (`day number × 100 000 + n`, so ids grow across days). About 70 % are
//! voice sessions (`call_type`, `call_duration`), the rest chats (`chat_type`,
//! `chat_duration`). The first twenty of a day take each documented status once
//! ([`STATUSES`]), the rest mostly `finished`; about 15 % of the documents give the
//! status as its numeric code instead of its name. Each status shapes the document:
//! a scheduled session has only `scheduled_at`, a queued one a `queued_at`, a finished
//! one every time, its durations, the agent (`agent_info`), `handle_durations`, a CSAT
//! `rating` and `feedback`, a disposition, …; keys the platform documents but the
//! tables do not type (`verified`, `photos`, `end_user`, a nested `x_diagnostics`) are
//! there too. Times are ISO 8601 with milliseconds, mostly in `Z`, some with the
//! `+01:00` or `-05:00` offset of the same instant.
//!
//! Participants: the end user, then each agent that handled the session; a session
//! handed from one agent to another (about 20 % of the finished ones) has a `transfers`
//! item for it.
//!
//! # Versions and files
//!
//! Each session is written when it ends (version 1) and rewritten 15 minutes later
//! (± 2) with a later `updated_at` and changed fields (the CSAT, the after-call work,
//! the disposition; a virtual agent participant of version 1 is gone from version 2 in
//! about 10 % of sessions). A file's folder is the UTC date it is written on and its
//! name `<id>.json`, so a rewrite on the same day replaces the file and one across
//! midnight is a second file. About 6 % of sessions are rewritten again two days later
//! (version 3, in that day's folder), and about 6 % have version 1 delivered again 10
//! minutes after version 2, as `<id>-redelivered.json`: an older version arriving after
//! a newer one. Every file's modification time is when it was written.
//!
//! [`write_as_of`] writes the folder as it is at a given instant: only the versions
//! written by then, each path holding the last of them. [`write`] writes it as it ends
//! up.
//!
//! # Broken files (`quirks.broken_sessions`)
//!
//! Per day, with ids of their own: a document cut in half (invalid JSON), one without
//! `id`, one whose `created_at` is a number, and a `notes.txt` beside them (not a
//! `*.json`); and one genuine session (counted as such) whose second participant's
//! `connected_at` is `"yesterday"`: that item is set aside, the session kept. With
//! `quirks.bom_crlf` every seventh document starts with a BOM and has CRLF line ends.
//!
//! # Manifest ([`SessionsDay`])
//!
//! For the day's sessions: the files present, the stale ones (a newer version of the
//! same session is in another file), the broken ones, the list items to set aside, and
//! of each session's current version: counts by status, participant and transfer rows,
//! and handle time per agent.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde_json::{Value, json};

use super::calls::{USERS, user_id};
use super::rng::{Rng, STREAM_SESSIONS};
use super::{DAY_SECONDS, DayManifest, DropSpec, day_number, day_start, system_time};

/// The platform's session statuses and their numeric codes, as its session metadata
/// page lists them (19 from its translated pages; 80, 81 as `PROVIDER.md` orders them).
pub const STATUSES: [(&str, u32); 20] = [
    ("scheduled", 0),
    ("queued", 1),
    ("assigned", 2),
    ("connecting", 3),
    ("switching", 4),
    ("connected", 5),
    ("finished", 8),
    ("failed", 9),
    ("recovered", 10),
    ("deflected", 11),
    ("selecting", 12),
    ("va_assigned", 13),
    ("va_connected", 14),
    ("preview_pending", 15),
    ("preview_ready", 16),
    ("campaign_connecting", 17),
    ("campaign_connected", 18),
    ("requeued", 19),
    ("voicemail", 80),
    ("voicemail_received", 81),
];

const VOICE_TYPES: [(&str, &str); 5] = [
    ("Voice Inbound (App)", "Voice Inbound (IVR using Mobile)"),
    ("Voice Inbound (IVR)", "Voice Inbound (IVR)"),
    ("Voice Inbound (App)", "Voice Inbound (Mobile)"),
    ("Voice Outbound", "Voice Outbound"),
    ("Voice Campaign", "Voice Campaign"),
];
const CHAT_TYPES: [(&str, &str); 4] = [
    ("Messaging (WhatsApp)", "Messaging (WhatsApp)"),
    ("Messaging (SMS)", "Messaging inbound (SMS)"),
    (
        "Messaging Inbound (App Chat)",
        "Messaging Inbound (Mobile Chat)",
    ),
    ("Messaging (Web)", "Messaging (Web)"),
];
const MENUS: [(u64, &str, &str); 4] = [
    (6205, "Sales / EN", "2420/4563/6205"),
    (6206, "Sales / PL", "2420/4563/6206"),
    (7311, "Support / Billing", "2420/5120/7311"),
    (7312, "Support / Technical — Ünïcode", "2420/5120/7312"),
];
const FEEDBACK: [&str; 4] = [
    "Quick and helpful, thank you!",
    "Agent was great — problem solved 👍",
    "Długo czekałem, ale w końcu się udało.",
    "Too long on hold.",
];
/// Recording permission as the platform words it; granted most often.
const PERMISSIONS: [&str; 4] = ["granted", "granted", "denied", "not asked"];
const DISPOSITIONS: [(&str, &str); 3] = [
    ("resolved", "Customer's issue resolved on first contact."),
    ("follow_up", "Callback promised within 24h; ticket updated."),
    ("escalated", "Escalated to second line \"billing\"."),
];

/// What a day's session files hold, for the day's sessions (those created on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionsDay {
    /// Sessions created on the day (each with a current version).
    pub sessions: usize,
    /// `*.json` files present for them (every version file, the broken files included).
    pub files: Vec<String>,
    /// Files holding a version older than another file of the same session.
    pub stale_files: Vec<String>,
    /// Files to refuse whole: invalid JSON, no `id`, a `created_at` that is a number.
    pub broken_files: Vec<String>,
    /// List items to set aside: (file, JSON pointer of the bad value).
    pub bad_items: Vec<(String, String)>,
    /// Other files under the folder (not `*.json`).
    pub other_files: Vec<String>,
    /// Session id → the file holding its current version.
    pub current: BTreeMap<u64, String>,
    /// Current versions by status name.
    pub per_status: BTreeMap<String, usize>,
    /// Those of voice sessions (the calls; chats are not).
    pub voice_per_status: BTreeMap<String, usize>,
    /// Participant and transfer items of the current versions (bad items excluded).
    pub participants: usize,
    pub transfers: usize,
    /// Agent name (`agent_info.name`) → (sessions, total handle seconds) over current
    /// versions with `handle_durations`: each entry's call or chat seconds plus its
    /// before- and after-call work.
    pub handle_per_agent: BTreeMap<String, (usize, u64)>,
}

/// The feed's writer ([`super::WriteFeed`]): the day's sessions as they end up.
pub fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    m.sessions = write_as_of(root, spec, m.date, None)?;
    Ok(())
}

/// Writes the files of `date`'s sessions under `root/sessions/` as they are at `as_of`
/// (Unix seconds; `None`: once every version is written) and says what they hold.
pub fn write_as_of(
    root: &Path,
    spec: &DropSpec,
    date: NaiveDate,
    as_of: Option<i64>,
) -> io::Result<SessionsDay> {
    let mut versions = Vec::new();
    let mut day = SessionsDay::default();
    let count = spec.sessions_per_day;
    let mut rng = Rng::derive(spec.seed, &[STREAM_SESSIONS, day_number(date)]);
    let mut starts: Vec<i64> = (0..count)
        .map(|_| day_start(date) + i64::from(rng.below(DAY_SECONDS as u32)))
        .collect();
    starts.sort_unstable();
    let base = day_number(date) * 100_000;
    let broken = spec.quirks.broken_sessions && count > 0;
    for (n, &created) in starts.iter().enumerate() {
        let bad_item = broken && n == count - 1;
        let session = Session::new(spec, base + n as u64 + 1, created, n, bad_item);
        session.versions(&mut versions, bad_item);
    }
    let planted = if broken {
        plant_broken(spec.seed, date, base + count as u64 + 1)
    } else {
        Vec::new()
    };
    // Each path holds the last version written to it by `as_of`.
    let mut present: BTreeMap<String, &Written> = BTreeMap::new();
    for version in versions.iter().chain(&planted) {
        if as_of.is_none_or(|t| version.at <= t) {
            let slot = present.entry(version.path.clone()).or_insert(version);
            if version.at >= slot.at {
                *slot = version;
            }
        }
    }
    let mut newest: BTreeMap<u64, &Written> = BTreeMap::new();
    for written in present.values() {
        if let Some(session) = &written.session {
            let slot = newest.entry(session.id).or_insert(written);
            if session.updated_at > slot.session.as_ref().map_or(0, |s| s.updated_at) {
                *slot = written;
            }
        }
    }
    for (path, written) in &present {
        let file = root.join(path);
        fs::create_dir_all(file.parent().expect("a folder"))?;
        fs::write(&file, &written.bytes)?;
        fs::File::options()
            .write(true)
            .open(&file)?
            .set_modified(system_time(written.at))?;
        match &written.session {
            None if path.ends_with(".json") => day.broken_files.push(path.clone()),
            None => {
                day.other_files.push(path.clone());
                continue;
            }
            Some(session) if newest[&session.id].path != *path => {
                day.stale_files.push(path.clone());
            }
            Some(_) => {}
        }
        day.files.push(path.clone());
    }
    for (id, written) in newest {
        let current = written.session.as_ref().expect("a session");
        day.sessions += 1;
        day.current.insert(id, written.path.clone());
        *day.per_status
            .entry(current.status.to_string())
            .or_default() += 1;
        if current.voice {
            *day.voice_per_status
                .entry(current.status.to_string())
                .or_default() += 1;
        }
        day.participants += current.participants;
        day.transfers += current.transfers;
        if let Some(bad) = &current.bad_item {
            day.bad_items.push((written.path.clone(), bad.clone()));
        }
        if let Some((agent, seconds)) = &current.handled {
            let entry = day.handle_per_agent.entry(agent.clone()).or_default();
            entry.0 += 1;
            entry.1 += seconds;
        }
    }
    Ok(day)
}

/// One file as written: where, when, its bytes, and what it holds.
struct Written {
    path: String,
    at: i64,
    bytes: Vec<u8>,
    /// `None` for a broken file.
    session: Option<Held>,
}

/// What a version file holds, as far as the manifest needs.
struct Held {
    id: u64,
    updated_at: i64,
    status: &'static str,
    /// A voice session (a call), not a chat.
    voice: bool,
    participants: usize,
    transfers: usize,
    bad_item: Option<String>,
    /// The last agent's name and the session's handle seconds.
    handled: Option<(String, u64)>,
}

/// How a status shapes a session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Scheduled,
    Waiting,
    Assigned,
    Live,
    Done,
    Failed,
    Deflected,
    Voicemail,
}

fn stage(status: &str) -> Stage {
    match status {
        "scheduled" => Stage::Scheduled,
        "queued" | "selecting" | "requeued" => Stage::Waiting,
        "assigned"
        | "connecting"
        | "switching"
        | "va_assigned"
        | "preview_pending"
        | "preview_ready"
        | "campaign_connecting" => Stage::Assigned,
        "connected" | "va_connected" | "campaign_connected" => Stage::Live,
        "failed" => Stage::Failed,
        "deflected" => Stage::Deflected,
        "voicemail" | "voicemail_received" => Stage::Voicemail,
        _ => Stage::Done,
    }
}

/// One session's facts, from which each version's document is written.
struct Session {
    id: u64,
    seed: u64,
    chat: bool,
    types: (&'static str, &'static str),
    status: (&'static str, u32),
    numeric_status: bool,
    created: i64,
    queued: Option<i64>,
    assigned: Option<i64>,
    connected: Option<i64>,
    ended: Option<i64>,
    scheduled: Option<i64>,
    wait: u32,
    talk: u32,
    hold: u32,
    bcw: u32,
    acw: u32,
    /// The agents who handled it, in order (a second one: a transfer).
    agents: Vec<usize>,
    virtual_agent: bool,
    /// Version 1 has a virtual agent participant that version 2 drops.
    drops_participant: bool,
    menu: usize,
    priority: u32,
    rating: Option<u32>,
    feedback: Option<&'static str>,
    disposition: Option<usize>,
    permission: &'static str,
    rewritten_late: bool,
    redelivered: bool,
    /// Offset of the times written, in minutes east of UTC.
    offset: i32,
    bom_crlf: bool,
}

impl Session {
    /// The `n`th session of its day; `finished` when it is to carry a bad item.
    fn new(spec: &DropSpec, id: u64, created: i64, n: usize, bad_item: bool) -> Self {
        let seed = spec.seed;
        let mut rng = Rng::derive(seed, &[STREAM_SESSIONS, id]);
        let status = if bad_item {
            STATUSES[6]
        } else if n < STATUSES.len() {
            STATUSES[n]
        } else {
            STATUSES[[6, 6, 6, 6, 6, 6, 7, 9, 18, 8][rng.below(10) as usize]]
        };
        let chat = rng.percent(30);
        let types = if chat {
            *rng.pick(&CHAT_TYPES)
        } else {
            *rng.pick(&VOICE_TYPES)
        };
        let stage = stage(status.0);
        let wait = rng.range(0, 240);
        let talk = rng.range(20, 1_800);
        let queued = matches!(
            stage,
            Stage::Waiting | Stage::Assigned | Stage::Live | Stage::Done
        )
        .then(|| created + i64::from(rng.range(2, 40)));
        let assigned = matches!(stage, Stage::Assigned | Stage::Live | Stage::Done)
            .then(|| queued.unwrap_or(created) + i64::from(wait));
        let connected = matches!(stage, Stage::Live | Stage::Done)
            .then(|| assigned.unwrap_or(created) + i64::from(rng.range(2, 12)));
        let ended = match stage {
            Stage::Done => Some(connected.unwrap_or(created) + i64::from(talk)),
            Stage::Failed | Stage::Deflected | Stage::Voicemail => {
                Some(created + i64::from(rng.range(10, 120)))
            }
            _ => None,
        };
        let mut agents = Vec::new();
        let virtual_agent = status.0.starts_with("va_");
        if matches!(stage, Stage::Assigned | Stage::Live | Stage::Done) && !virtual_agent {
            agents.push(rng.below(USERS.len() as u32) as usize);
            if stage == Stage::Done && rng.percent(20) {
                agents.push((agents[0] + 1 + rng.below(5) as usize) % USERS.len());
            }
        }
        let done = stage == Stage::Done;
        Session {
            id,
            seed,
            chat,
            types,
            status,
            numeric_status: rng.percent(15),
            created,
            queued,
            assigned,
            connected,
            ended,
            scheduled: (stage == Stage::Scheduled)
                .then(|| created + i64::from(rng.range(3_600, 172_800))),
            wait,
            talk,
            hold: if done && rng.percent(40) {
                rng.range(5, 120)
            } else {
                0
            },
            bcw: if done { rng.range(0, 30) } else { 0 },
            acw: if done { rng.range(5, 90) } else { 0 },
            agents,
            virtual_agent,
            drops_participant: rng.percent(10),
            menu: rng.below(MENUS.len() as u32) as usize,
            priority: rng.range(1, 8),
            rating: (done && rng.percent(60)).then(|| rng.range(1, 4)),
            feedback: (done && rng.percent(40)).then(|| *rng.pick(&FEEDBACK)),
            disposition: done.then(|| rng.below(DISPOSITIONS.len() as u32) as usize),
            permission: if chat {
                "not asked"
            } else {
                PERMISSIONS[rng.below(PERMISSIONS.len() as u32) as usize]
            },
            rewritten_late: rng.percent(6),
            redelivered: rng.percent(6),
            offset: *rng.pick(&[0, 0, 0, 0, 0, 60, -300]),
            bom_crlf: spec.quirks.bom_crlf && id.is_multiple_of(7),
        }
    }

    /// When the session's first file is written: its end, or (never ending in the
    /// file's lifetime) a few minutes after it was created.
    fn first_write(&self) -> i64 {
        self.ended
            .or(self.connected)
            .or(self.assigned)
            .unwrap_or(self.created + 300)
            + 30
    }

    /// Every version file of the session, in the order they are written.
    fn versions(self, out: &mut Vec<Written>, bad_item: bool) {
        let mut rng = Rng::derive(self.seed, &[STREAM_SESSIONS, self.id, 1]);
        let first = self.first_write();
        let second = first + 900 + i64::from(rng.range(0, 240)) - 120;
        let mut times = vec![first, second];
        if self.rewritten_late {
            times.push(second + 2 * DAY_SECONDS + i64::from(rng.range(0, 3_600)));
        }
        for (index, &at) in times.iter().enumerate() {
            let version = index as u32 + 1;
            out.push(self.file(format!("{}.json", self.id), at, at, version, bad_item));
        }
        if self.redelivered {
            out.push(self.file(
                format!("{}-redelivered.json", self.id),
                second + 600,
                first,
                1,
                bad_item,
            ));
        }
    }

    /// The file of `version`, updated at `updated`, written at `at` as `name`.
    fn file(&self, name: String, at: i64, updated: i64, version: u32, bad_item: bool) -> Written {
        let (document, held) = self.document(updated, version, bad_item);
        let mut text = if self.id.is_multiple_of(2) {
            serde_json::to_string_pretty(&document).expect("a JSON value")
        } else {
            serde_json::to_string(&document).expect("a JSON value")
        };
        text.push('\n');
        Written {
            path: format!("sessions/{}/{name}", folder(at)),
            at,
            bytes: if self.bom_crlf {
                [
                    b"\xef\xbb\xbf".as_slice(),
                    text.replace('\n', "\r\n").as_bytes(),
                ]
                .concat()
            } else {
                text.into_bytes()
            },
            session: Some(held),
        }
    }

    fn time(&self, epoch: i64, millis: u32) -> Value {
        let t = DateTime::<Utc>::from_timestamp(epoch, millis * 1_000_000).expect("a time");
        if self.offset == 0 {
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        } else {
            let zone = FixedOffset::east_opt(self.offset * 60).expect("an offset");
            Value::String(
                t.with_timezone(&zone)
                    .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    .to_string(),
            )
        }
    }

    fn opt_time(&self, epoch: Option<i64>) -> Value {
        epoch.map_or(Value::Null, |t| self.time(t, (t % 1000) as u32))
    }

    fn agent(&self, user: usize) -> Value {
        let name = USERS[user].name;
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        json!({
            "id": user_id(user),
            "name": name,
            "first_name": first,
            "last_name": last,
            "email": format!("{}@example.com", USERS[user].sip),
            "agent_number": 101 + user,
            "avatar_url": format!("https://example.com/avatars/{}.png", user_id(user)),
        })
    }

    /// The document of `version` and what it holds.
    fn document(&self, updated: i64, version: u32, bad_item: bool) -> (Value, Held) {
        let final_version = version >= 2;
        let (status, code) = self.status;
        let duration_key = if self.chat {
            "chat_duration"
        } else {
            "call_duration"
        };
        let talk = if self.ended.is_some() && self.connected.is_some() {
            self.talk
        } else {
            0
        };
        let mut doc = json!({
            "id": self.id,
            "lang": if self.id.is_multiple_of(3) { "pl" } else { "en" },
            "status": if self.numeric_status { json!(code) } else { json!(status) },
            "subStatus": match stage(status) {
                Stage::Waiting => "in_queue",
                Stage::Assigned => "waiting_for_agent",
                Stage::Live | Stage::Done => "connected_with_agent",
                _ => "nothing",
            },
            "session_type": self.types.0,
            "session_type_v2": self.types.1,
            "created_at": self.time(self.created, (self.id % 1000) as u32),
            "queued_at": self.opt_time(self.queued),
            "assigned_at": self.opt_time(self.assigned),
            "connected_at": self.opt_time(self.connected),
            "ends_at": self.opt_time(self.ended),
            "scheduled_at": self.opt_time(self.scheduled),
            "updated_at": self.time(updated, 0),
            "wait_duration": self.wait,
            duration_key: talk,
            "hold_duration": if self.hold > 0 { json!(self.hold) } else { Value::Null },
            "answer_type": if self.virtual_agent { "virtual_agent" } else { "manual" },
            "out_ticket_id": format!("5006x{:08}", self.id % 100_000_000),
            "out_ticket_url": format!("https://crm.example.com/tickets/5006x{:08}", self.id % 100_000_000),
            "is_out_ticket_account": false,
            "verified": self.id.is_multiple_of(4),
            "voip_provider": "deprecated",
            "support_number": "+48221234500",
            "menu_path": {
                "id": MENUS[self.menu].0,
                "name": MENUS[self.menu].1,
                "materialized_path": MENUS[self.menu].2,
                "items_count": 3,
            },
            "selected_menu": {"id": MENUS[self.menu].0, "name": MENUS[self.menu].1, "menu_type": "ivr_menu"},
            "queue_priority_level": self.priority,
            "has_feedback": final_version && self.feedback.is_some(),
            "end_user": {"id": 500_000 + self.id % 10_000, "identifier": null},
            "photos": [],
            "videos": [],
            "x_diagnostics": {"sip": {"codec": "opus", "jitter_ms": [1, 3, 2]}, "version": version},
        });
        let set = |doc: &mut Value, key: &str, value: Value| {
            doc.as_object_mut()
                .expect("an object")
                .insert(key.to_string(), value);
        };
        if self.chat {
            set(&mut doc, "chat_type", json!(self.types.0));
        } else {
            set(&mut doc, "call_type", json!(self.types.0));
            set(&mut doc, "recording_permission", json!(self.permission));
            if self.permission == "granted" && talk > 0 {
                set(
                    &mut doc,
                    "recording_url",
                    json!(format!("https://recordings.example.com/{}.mp3", self.id)),
                );
            }
            if self.types.0.contains("Outbound") || self.types.0.contains("Campaign") {
                set(&mut doc, "outbound_number", json!("+48221234599"));
            }
        }
        match stage(status) {
            Stage::Failed => set(&mut doc, "fail_reason", json!("network_error")),
            Stage::Deflected => set(&mut doc, "deflection", json!("after_hours_message_only")),
            Stage::Voicemail => set(&mut doc, "voicemail_reason", json!("no_agent_available")),
            _ => {}
        }
        if final_version {
            if let Some(rating) = self.rating {
                set(&mut doc, "rating", json!(rating));
            }
            if let Some(feedback) = self.feedback {
                set(&mut doc, "feedback", json!(feedback));
            }
            if let Some(d) = self.disposition {
                let notes = if version >= 3 {
                    format!("{} (corrected)", DISPOSITIONS[d].1)
                } else {
                    DISPOSITIONS[d].1.to_string()
                };
                set(&mut doc, "disposition_code", json!(DISPOSITIONS[d].0));
                set(&mut doc, "disposition_notes", json!(notes));
            }
        }
        if let Some(&last) = self.agents.last() {
            set(&mut doc, "agent_info", self.agent(last));
        } else if self.virtual_agent {
            set(
                &mut doc,
                "agent_info",
                json!({"id": 9001, "name": "Virtual Agent", "va_alias": "va-main", "avatar_url": null}),
            );
        }
        // Participants: the end user, each agent, and a virtual agent in version 1 of
        // some sessions.
        let mut participants = vec![json!({
            "id": self.id * 10,
            "type": "end_user",
            "status": "finished",
            "end_user_id": 500_000 + self.id % 10_000,
            "connected_at": self.time(self.created, 0),
            "ended_at": self.opt_time(self.ended),
            "fail_reason": "nothing",
        })];
        let legs = self.agents.len().max(1) as u32;
        for (index, &user) in self.agents.iter().enumerate() {
            participants.push(json!({
                "id": self.id * 10 + 1 + index as u64,
                "type": "agent",
                "status": "finished",
                "user_id": user_id(user),
                duration_key: talk / legs,
                "hold_duration": self.hold,
                "connected_at": self.opt_time(self.connected),
                "ended_at": self.opt_time(self.ended),
                "fail_reason": "nothing",
            }));
        }
        if self.drops_participant && version == 1 {
            participants.push(json!({
                "id": self.id * 10 + 9,
                "type": "virtual_agent",
                "status": "finished",
                "connected_at": self.time(self.created, 0),
                "ended_at": self.opt_time(self.queued),
                "fail_reason": "nothing",
            }));
        }
        let mut bad = None;
        if bad_item && participants.len() > 1 {
            participants[1]["connected_at"] = json!("yesterday");
            bad = Some("/participants/1/connected_at".to_string());
        }
        let transfers: Vec<Value> = self
            .agents
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                json!({
                    "id": self.id * 10 + index as u64,
                    "status": "finished",
                    "from_agent": self.agent(pair[0]),
                    "to_agent": self.agent(pair[1]),
                    "created_at": self.opt_time(self.connected),
                    "assigned_at": self.opt_time(self.connected),
                    "connected_at": self.opt_time(self.connected.map(|t| t + 5)),
                    "updated_at": self.time(updated, 0),
                    "wait_duration": 5,
                    "call_duration": talk / legs,
                    "from_queue_priority_level": self.priority,
                    "to_queue_priority_level": self.priority.min(7) + 1,
                    "from_menu_path": {"name": MENUS[self.menu].1, "materialized_path": MENUS[self.menu].2},
                    "to_menu_path": MENUS[(self.menu + 1) % MENUS.len()].1,
                    "deflection": null,
                    "answer_type_path": "manual",
                    "fail_reason": null,
                })
            })
            .collect();
        // Handle time: per agent leg, talk (or chat) plus before- and after-call work;
        // version 1 has no after-call work yet.
        let mut handled = None;
        if !self.agents.is_empty() && self.ended.is_some() {
            let acw = if final_version { self.acw } else { 0 };
            let entries: Vec<Value> = self
                .agents
                .iter()
                .map(|&user| {
                    json!({
                        "agent_id": user_id(user),
                        "started_at": self.opt_time(self.assigned),
                        "ended_at": self.opt_time(self.ended),
                        duration_key: talk / legs,
                        "hold_duration": self.hold,
                        "bcw_duration": self.bcw,
                        "acw_duration": acw,
                    })
                })
                .collect();
            let seconds = u64::from((talk / legs + self.bcw + acw) * legs);
            set(&mut doc, "handle_durations", Value::Array(entries));
            let last = *self.agents.last().expect("an agent");
            handled = Some((USERS[last].name.to_string(), seconds));
        }
        let counted = participants.len() - usize::from(bad.is_some());
        let transfer_count = transfers.len();
        set(&mut doc, "participants", Value::Array(participants));
        set(&mut doc, "transfers", Value::Array(transfers));
        let held = Held {
            id: self.id,
            updated_at: updated,
            status,
            voice: !self.chat,
            participants: counted,
            transfers: transfer_count,
            bad_item: bad,
            handled,
        };
        (doc, held)
    }
}

/// `YYYY/MM/DD` of the UTC day `epoch` falls on.
fn folder(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .expect("a time")
        .format("%Y/%m/%d")
        .to_string()
}

/// The day's broken files, with ids from `id` on.
fn plant_broken(seed: u64, date: NaiveDate, id: u64) -> Vec<Written> {
    let mut rng = Rng::derive(seed, &[STREAM_SESSIONS, day_number(date), 2]);
    let at = day_start(date) + i64::from(rng.range(3_600, 80_000));
    let whole = format!(
        "{{\"id\": {id}, \"status\": \"finished\", \"created_at\": \"{}\", \"participants\": []}}\n",
        DateTime::<Utc>::from_timestamp(at - 600, 0)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%SZ")
    );
    let folder = folder(at);
    let file = |name: String, bytes: Vec<u8>| Written {
        path: format!("sessions/{folder}/{name}"),
        at,
        bytes,
        session: None,
    };
    vec![
        file(
            format!("{id}.json"),
            whole.as_bytes()[..whole.len() / 2].to_vec(),
        ),
        file(
            format!("{}.json", id + 1),
            whole
                .replacen(&format!("\"id\": {id}, "), "", 1)
                .into_bytes(),
        ),
        file(
            format!("{}.json", id + 2),
            format!(
                "{{\"id\": {}, \"status\": \"finished\", \"created_at\": {}}}\n",
                id + 2,
                at - 600
            )
            .into_bytes(),
        ),
        file(
            "notes.txt".to_string(),
            b"exported by the platform\n".to_vec(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::{TempDir, date, mtime, spec_all_quirks};

    fn day(spec: &DropSpec, dir: &Path, as_of: Option<i64>) -> SessionsDay {
        write_as_of(dir, spec, date("2024-03-01"), as_of).unwrap()
    }

    #[test]
    fn the_same_spec_writes_the_same_files() {
        let spec = spec_all_quirks();
        let (a, b) = (TempDir::new("sessions-a"), TempDir::new("sessions-b"));
        let (ma, mb) = (day(&spec, &a.0, None), day(&spec, &b.0, None));
        assert_eq!(ma, mb);
        for file in &ma.files {
            assert_eq!(
                fs::read(a.0.join(file)).unwrap(),
                fs::read(b.0.join(file)).unwrap()
            );
        }
    }

    #[test]
    fn every_status_rewrites_stale_and_broken_files_are_there() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("sessions-all");
        let m = day(&spec, &dir.0, None);
        assert_eq!(m.sessions, spec.sessions_per_day);
        for (status, _) in STATUSES {
            assert!(
                m.per_status.contains_key(status),
                "{status}: {:?}",
                m.per_status
            );
        }
        assert_eq!(m.per_status.values().sum::<usize>(), m.sessions);
        assert_eq!(m.broken_files.len(), 3);
        assert_eq!(m.other_files.len(), 1);
        assert_eq!(m.bad_items.len(), 1);
        assert!(!m.stale_files.is_empty(), "some versions are superseded");
        assert!(m.transfers > 0);
        assert!(!m.handle_per_agent.is_empty());
        for file in m.files.iter().chain(&m.other_files) {
            assert!(dir.0.join(file).is_file(), "{file}");
        }
        // Every current file is the newest for its session; stale files are not current.
        for stale in &m.stale_files {
            assert!(!m.current.values().any(|c| c == stale), "{stale}");
        }
        // Files are dated when they were written: the current version of a rewritten
        // session is at least 13 minutes after its creation day's start.
        let any = m.current.values().next().unwrap();
        assert!(mtime(&dir.0.join(any)) > system_time(day_start(date("2024-03-01"))));
        let text = fs::read_to_string(dir.0.join(any)).unwrap();
        assert!(text.contains("\"updated_at\""), "{text}");
    }

    #[test]
    fn as_of_an_instant_only_the_versions_written_by_then() {
        let spec = DropSpec {
            quirks: Default::default(),
            ..spec_all_quirks()
        };
        let dir = TempDir::new("sessions-as-of");
        let noon = day_start(date("2024-03-01")) + 12 * 3600;
        let early = day(&spec, &dir.0, Some(noon));
        let later = TempDir::new("sessions-later");
        let all = day(&spec, &later.0, None);
        assert!(early.sessions < all.sessions);
        assert!(early.sessions > 0);
        for file in &early.files {
            assert!(mtime(&dir.0.join(file)) <= system_time(noon), "{file}");
        }
    }
}
