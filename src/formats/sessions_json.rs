//! The contact-center platform's session metadata file (`shared/PROVIDER.md` §3): one
//! JSON document per voice or chat session, rewritten after the session ends.
//!
//! A document becomes one row of [`SESSIONS`] and one row per item of its
//! `participants` and `transfers` lists ([`SESSION_PARTICIPANTS`],
//! [`SESSION_TRANSFERS`]). Each row is typed by [`super::table`], like every other
//! provider file: this module only finds each column's value in the document (a JSON
//! pointer, the first of several that is present) and hands the table a record whose
//! fields are named after its columns. Keys the tables do not know are not errors; the
//! whole document is also kept, as sent, in the `document` column.
//!
//! Child rows carry their session's `session_id`, their `position` in the list (from
//! 0), a `row_key` (`<session_id>/<position>`, unique per dataset) and the session's
//! `created_at` as `session_created_at`, so a session and its child rows share a
//! partition date.
//!
//! What cannot be used is a [`SessionQuarantine`] naming the file, a JSON pointer
//! (RFC 6901; empty for the whole document) and the reason: a document that is not
//! JSON, not an object, or whose session row cannot be typed (no `id`, a bad
//! `created_at`, …) is refused whole; a list item that cannot be typed is set aside
//! alone, and the session and its other items are kept.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::Value as Json;

use super::rows::Record;
use super::table::{Kind, Refusal, Row, Table, Unreadable, Value, col, fingerprint, type_record};
use crate::model::TimestampMicros;
use crate::sink::quarantine::QuarantineEntry;

/// One row per session (its newest version, once the feed has chosen it).
pub static SESSIONS: Table = Table {
    dataset: "sessions",
    columns: &[
        col("id", Kind::Whole, true),
        col("created_at", Kind::Timestamp, true),
        col("updated_at", Kind::Timestamp, false),
        col("lang", Kind::Text, false),
        col("call_type", Kind::Text, false),
        col("chat_type", Kind::Text, false),
        col("session_type", Kind::Text, false),
        col("session_type_v2", Kind::Text, false),
        col("status", Kind::Text, false),
        col("status_code", Kind::Whole, false),
        col("sub_status", Kind::Text, false),
        col("queued_at", Kind::Timestamp, false),
        col("assigned_at", Kind::Timestamp, false),
        col("connected_at", Kind::Timestamp, false),
        col("ended_at", Kind::Timestamp, false),
        col("scheduled_at", Kind::Timestamp, false),
        col("wait_duration", Kind::Whole, false),
        col("call_duration", Kind::Whole, false),
        col("chat_duration", Kind::Whole, false),
        col("hold_duration", Kind::Whole, false),
        col("handle_duration", Kind::Whole, false),
        col("answer_type", Kind::Text, false),
        col("ticket_id", Kind::Text, false),
        col("ticket_url", Kind::Text, false),
        col("recording_permission", Kind::Text, false),
        col("recording_url", Kind::Text, false),
        col("support_number", Kind::Text, false),
        col("outbound_number", Kind::Text, false),
        col("menu_path", Kind::Text, false),
        col("menu_path_id", Kind::Text, false),
        col("selected_menu_id", Kind::Whole, false),
        col("selected_menu", Kind::Text, false),
        col("queue_priority", Kind::Whole, false),
        col("rating", Kind::Whole, false),
        col("feedback", Kind::Text, false),
        col("has_feedback", Kind::Text, false),
        col("deflection", Kind::Text, false),
        col("disposition_code", Kind::Text, false),
        col("disposition_notes", Kind::Text, false),
        col("fail_reason", Kind::Text, false),
        col("disconnected_by", Kind::Text, false),
        col("agent_id", Kind::Whole, false),
        col("agent_name", Kind::Text, false),
        col("agent_email", Kind::Text, false),
        col("agent_number", Kind::Text, false),
        col("virtual_agent", Kind::Text, false),
        col("end_user_id", Kind::Whole, false),
        col("document", Kind::Text, true),
    ],
    id_column: 0,
    date_column: 1,
    schema: OnceLock::new(),
};

/// Where each [`SESSIONS`] column is found in a document: the first pointer that is
/// present and not null. Columns not listed are derived (see [`session_fields`]).
const SESSION_KEYS: Keys = &[
    ("id", &["/id"]),
    ("created_at", &["/created_at"]),
    ("updated_at", &["/updated_at"]),
    ("lang", &["/lang"]),
    ("call_type", &["/call_type"]),
    ("chat_type", &["/chat_type"]),
    ("session_type", &["/session_type"]),
    ("session_type_v2", &["/session_type_v2"]),
    ("sub_status", &["/subStatus", "/sub_status"]),
    ("queued_at", &["/queued_at"]),
    ("assigned_at", &["/assigned_at"]),
    ("connected_at", &["/connected_at"]),
    ("ended_at", &["/ends_at", "/ended_at"]),
    ("scheduled_at", &["/scheduled_at"]),
    ("wait_duration", &["/wait_duration"]),
    ("call_duration", &["/call_duration"]),
    ("chat_duration", &["/chat_duration"]),
    ("hold_duration", &["/hold_duration"]),
    ("answer_type", &["/answer_type"]),
    ("ticket_id", &["/out_ticket_id"]),
    ("ticket_url", &["/out_ticket_url"]),
    ("recording_permission", &["/recording_permission"]),
    ("recording_url", &["/recording_url"]),
    ("support_number", &["/support_number"]),
    ("outbound_number", &["/outbound_number"]),
    ("menu_path", &["/menu_path/name", "/menu_path"]),
    ("menu_path_id", &["/menu_path/materialized_path"]),
    ("selected_menu_id", &["/selected_menu/id"]),
    ("selected_menu", &["/selected_menu/name", "/selected_menu"]),
    (
        "queue_priority",
        &["/queue_priority_level", "/queue_priority"],
    ),
    ("rating", &["/rating"]),
    ("feedback", &["/feedback"]),
    ("has_feedback", &["/has_feedback"]),
    ("deflection", &["/deflection"]),
    (
        "disposition_code",
        &["/disposition_code", "/disposition/code"],
    ),
    (
        "disposition_notes",
        &["/disposition_notes", "/disposition/notes"],
    ),
    ("fail_reason", &["/fail_reason"]),
    ("disconnected_by", &["/disconnected_by"]),
    ("agent_id", &["/agent_info/id"]),
    ("agent_name", &["/agent_info/name"]),
    ("agent_email", &["/agent_info/email"]),
    ("agent_number", &["/agent_info/agent_number"]),
    ("virtual_agent", &["/agent_info/va_alias"]),
    ("end_user_id", &["/end_user/id"]),
];

/// One row per item of a session's `participants` list.
pub static SESSION_PARTICIPANTS: Table = Table {
    dataset: "session_participants",
    columns: &[
        col("row_key", Kind::Text, true),
        col("session_created_at", Kind::Timestamp, true),
        col("session_id", Kind::Whole, true),
        col("position", Kind::Whole, true),
        col("participant_id", Kind::Whole, false),
        col("type", Kind::Text, false),
        col("status", Kind::Text, false),
        col("user_id", Kind::Whole, false),
        col("end_user_id", Kind::Whole, false),
        col("call_duration", Kind::Whole, false),
        col("chat_duration", Kind::Whole, false),
        col("hold_duration", Kind::Whole, false),
        col("connected_at", Kind::Timestamp, false),
        col("ended_at", Kind::Timestamp, false),
        col("finished_at", Kind::Timestamp, false),
        col("fail_reason", Kind::Text, false),
    ],
    id_column: 0,
    date_column: 1,
    schema: OnceLock::new(),
};

const PARTICIPANT_KEYS: Keys = &[
    ("participant_id", &["/id"]),
    ("type", &["/type"]),
    ("status", &["/status"]),
    ("user_id", &["/user_id"]),
    ("end_user_id", &["/end_user_id"]),
    ("call_duration", &["/call_duration"]),
    ("chat_duration", &["/chat_duration"]),
    ("hold_duration", &["/hold_duration"]),
    ("connected_at", &["/connected_at"]),
    ("ended_at", &["/ended_at"]),
    ("finished_at", &["/finished_at"]),
    ("fail_reason", &["/fail_reason"]),
];

/// One row per item of a session's `transfers` list.
pub static SESSION_TRANSFERS: Table = Table {
    dataset: "session_transfers",
    columns: &[
        col("row_key", Kind::Text, true),
        col("session_created_at", Kind::Timestamp, true),
        col("session_id", Kind::Whole, true),
        col("position", Kind::Whole, true),
        col("transfer_id", Kind::Whole, false),
        col("status", Kind::Text, false),
        col("created_at", Kind::Timestamp, false),
        col("assigned_at", Kind::Timestamp, false),
        col("connected_at", Kind::Timestamp, false),
        col("updated_at", Kind::Timestamp, false),
        col("wait_duration", Kind::Whole, false),
        col("call_duration", Kind::Whole, false),
        col("from_agent_id", Kind::Whole, false),
        col("from_agent_name", Kind::Text, false),
        col("to_agent_id", Kind::Whole, false),
        col("to_agent_name", Kind::Text, false),
        col("from_queue_priority", Kind::Whole, false),
        col("to_queue_priority", Kind::Whole, false),
        col("from_menu_path", Kind::Text, false),
        col("to_menu_path", Kind::Text, false),
        col("deflection", Kind::Text, false),
        col("answer_type_path", Kind::Text, false),
        col("fail_reason", Kind::Text, false),
    ],
    id_column: 0,
    date_column: 1,
    schema: OnceLock::new(),
};

const TRANSFER_KEYS: Keys = &[
    ("transfer_id", &["/id"]),
    ("status", &["/status"]),
    ("created_at", &["/created_at"]),
    ("assigned_at", &["/assigned_at"]),
    ("connected_at", &["/connected_at"]),
    ("updated_at", &["/updated_at"]),
    ("wait_duration", &["/wait_duration"]),
    ("call_duration", &["/call_duration"]),
    ("from_agent_id", &["/from_agent/id"]),
    ("from_agent_name", &["/from_agent/name"]),
    ("to_agent_id", &["/to_agent/id"]),
    ("to_agent_name", &["/to_agent/name"]),
    ("from_queue_priority", &["/from_queue_priority_level"]),
    ("to_queue_priority", &["/to_queue_priority_level"]),
    (
        "from_menu_path",
        &["/from_menu_path/name", "/from_menu_path"],
    ),
    ("to_menu_path", &["/to_menu_path/name", "/to_menu_path"]),
    ("deflection", &["/deflection"]),
    ("answer_type_path", &["/answer_type_path"]),
    ("fail_reason", &["/fail_reason"]),
];

/// The three datasets a session file feeds, parent first.
pub static SESSION_TABLES: [&Table; 3] = [&SESSIONS, &SESSION_PARTICIPANTS, &SESSION_TRANSFERS];

/// The platform's numeric session status codes and their names. Codes 0–5 and 8–18 as
/// the platform's session metadata page lists them; 19 named from its translated
/// pages; 80 and 81 as `PROVIDER.md` orders them. Other codes (6, 7, 20–23) have no
/// documented name: their `status` is NULL and `status_code` keeps the number.
pub const STATUS_CODES: &[(u32, &str)] = &[
    (0, "scheduled"),
    (1, "queued"),
    (2, "assigned"),
    (3, "connecting"),
    (4, "switching"),
    (5, "connected"),
    (8, "finished"),
    (9, "failed"),
    (10, "recovered"),
    (11, "deflected"),
    (12, "selecting"),
    (13, "va_assigned"),
    (14, "va_connected"),
    (15, "preview_pending"),
    (16, "preview_ready"),
    (17, "campaign_connecting"),
    (18, "campaign_connected"),
    (19, "requeued"),
    (80, "voicemail"),
    (81, "voicemail_received"),
];

/// Which version of a session a file holds: what the feed needs to let the newest win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionVersion {
    pub id: i64,
    pub created_at: TimestampMicros,
    /// `None` when the document has none (or it is null).
    pub updated_at: Option<TimestampMicros>,
}

/// Something in a session file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuarantine {
    pub file: String,
    /// RFC 6901 pointer to the value at fault (`/participants/2/connected_at`), or to
    /// the item or list set aside; empty when the whole document is refused.
    pub pointer: String,
    /// The line the document (or, for invalid JSON, the error) is on.
    pub line: u64,
    pub reason: String,
    /// The document, or the list item set aside, as JSON text.
    pub raw: String,
}

impl SessionQuarantine {
    /// The entry for the quarantine dataset; the pointer leads the reason.
    pub fn entry(&self) -> QuarantineEntry {
        QuarantineEntry {
            file: self.file.clone(),
            line: self.line,
            reason: if self.pointer.is_empty() {
                format!("the document {}", self.reason)
            } else {
                format!("at {}: {}", self.pointer, self.reason)
            },
            raw: self.raw.clone(),
        }
    }
}

/// One session file, read and checked: its session row can be typed.
#[derive(Debug)]
pub struct SessionDocument {
    file: String,
    /// The document as sent, without a byte-order mark or surrounding blanks.
    text: String,
    root: Json,
    line: u64,
    version: SessionVersion,
}

impl SessionDocument {
    /// Reads the file at `file` (its path, for provenance and the quarantine) from
    /// `bytes`, or says why the whole document cannot be used.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<SessionDocument, SessionQuarantine> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let refuse = |line: u64, pointer: &str, reason: String| SessionQuarantine {
            file: file.to_string(),
            pointer: pointer.to_string(),
            line,
            reason,
            raw: String::from_utf8_lossy(bytes).trim().to_string(),
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| refuse(1, "", Unreadable::NotText.to_string()))?;
        let line = 1 + text[..text.len() - text.trim_start().len()]
            .matches('\n')
            .count() as u64;
        let text = text.trim();
        let root: Json = serde_json::from_str(text).map_err(|e| {
            refuse(
                line + e.line().saturating_sub(1) as u64,
                "",
                format!("is not valid JSON: {e}"),
            )
        })?;
        if !root.is_object() {
            return Err(refuse(
                line,
                "",
                format!("is not a JSON object: it is {}", describe(&root)),
            ));
        }
        let mut document = SessionDocument {
            file: file.to_string(),
            text: text.to_string(),
            root,
            line,
            version: SessionVersion {
                id: 0,
                created_at: TimestampMicros(0),
                updated_at: None,
            },
        };
        let record = document.session_record();
        let mut values = Vec::new();
        let row = type_record(&SESSIONS, &record, &mut values).map_err(|refusal| {
            refuse(line, &record.pointer(&SESSIONS, &refusal), refusal.reason)
        })?;
        let version = SessionVersion {
            id: match row.values[0] {
                Value::Whole(id) => id,
                _ => unreachable!("id is a required whole number"),
            },
            created_at: row.date,
            updated_at: match row.values[2] {
                Value::Micros(t) => Some(TimestampMicros(t)),
                _ => None,
            },
        };
        drop(values);
        document.version = version;
        Ok(document)
    }

    pub fn version(&self) -> SessionVersion {
        self.version
    }

    /// Hands each row to `on_row` with its table: the session first, then its
    /// participants and transfers in list order. Returns what was set aside (list
    /// items that cannot be typed, a list that is not a list); the error is `on_row`'s.
    pub fn write_rows<E>(
        &self,
        mut on_row: impl FnMut(&'static Table, &Row<'_, '_>) -> Result<(), E>,
    ) -> Result<Vec<SessionQuarantine>, E> {
        let mut set_aside = Vec::new();
        let record = self.session_record();
        let mut values = Vec::new();
        match type_record(&SESSIONS, &record, &mut values) {
            Ok(row) => on_row(&SESSIONS, &row)?,
            Err(_) => unreachable!("the session row was typed when the document was parsed"),
        }
        for (list, table, keys) in [
            ("participants", &SESSION_PARTICIPANTS, PARTICIPANT_KEYS),
            ("transfers", &SESSION_TRANSFERS, TRANSFER_KEYS),
        ] {
            let Some(items) = self.root.get(list).filter(|v| !v.is_null()) else {
                continue;
            };
            let Some(items) = items.as_array() else {
                set_aside.push(self.quarantine(
                    format!("/{list}"),
                    format!("is not a list: it is {}", describe(items)),
                    items,
                ));
                continue;
            };
            for (position, item) in items.iter().enumerate() {
                let pointer = format!("/{list}/{position}");
                if !item.is_object() {
                    set_aside.push(self.quarantine(
                        pointer,
                        format!("is not a JSON object: it is {}", describe(item)),
                        item,
                    ));
                    continue;
                }
                let record = self.child_record(&pointer, item, keys, position);
                let mut values = Vec::new();
                match type_record(table, &record, &mut values) {
                    Ok(row) => on_row(table, &row)?,
                    Err(refusal) => set_aside.push(self.quarantine(
                        record.pointer(table, &refusal),
                        refusal.reason,
                        item,
                    )),
                }
            }
        }
        Ok(set_aside)
    }

    fn quarantine(&self, pointer: String, reason: String, raw: &Json) -> SessionQuarantine {
        SessionQuarantine {
            file: self.file.clone(),
            pointer,
            line: self.line,
            reason,
            raw: raw.to_string(),
        }
    }

    /// The session row's fields.
    fn session_record(&self) -> Fields<'_> {
        let mut fields = Fields::new(self.line, self.text.as_str().into());
        fields.lookup(&self.root, SESSION_KEYS);
        // The id as a number's digits: `"007"`, `"7"` and `7` are one session.
        if let Some(id) = fields.fields.iter_mut().find(|f| f.column == "id")
            && let Ok(number) = id.text.trim().parse::<u64>()
            && id.text.trim().bytes().all(|b| b.is_ascii_digit())
        {
            id.text = Cow::Owned(number.to_string());
        }
        fields.status(&self.root);
        fields.handle_duration(&self.root);
        fields.push("document", self.text.as_str().into(), Place::Row);
        fields
    }

    /// The fields of the list item at `pointer`, the `position`th of its list.
    fn child_record<'a>(
        &'a self,
        pointer: &'a str,
        item: &'a Json,
        keys: Keys,
        position: usize,
    ) -> Fields<'a> {
        let mut fields = Fields::new(self.line, item.to_string().into());
        fields.prefix = pointer;
        let id = self.version.id;
        fields.push("row_key", format!("{id}/{position}").into(), Place::Row);
        fields.push(
            "session_created_at",
            self.root_text("/created_at"),
            Place::Root("/created_at"),
        );
        fields.push("session_id", id.to_string().into(), Place::Root("/id"));
        fields.push("position", position.to_string().into(), Place::Row);
        fields.lookup(item, keys);
        fields
    }

    fn root_text(&self, pointer: &str) -> Cow<'_, str> {
        at(&self.root, pointer).and_then(text).unwrap_or_default()
    }
}

/// A value's kind, for a reason.
fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// A value as a field's text, as [`super::json_rows`] takes it: strings as they are,
/// numbers and booleans as written, lists and objects as JSON text; null is no value.
fn text(value: &Json) -> Option<Cow<'_, str>> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Bool(true) => Some(Cow::Borrowed("true")),
        Json::Bool(false) => Some(Cow::Borrowed("false")),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::Array(_) | Json::Object(_) => Some(Cow::Owned(value.to_string())),
    }
}

/// Columns, each with the JSON pointers it is looked for at, the first present wins
/// (written without `~` escapes: [`at`] takes them as they are).
type Keys = &'static [(&'static str, &'static [&'static str])];

/// The value at `pointer` (`/a/0/b`) in `value`: [`Json::pointer`] without its
/// unescaping, which allocated twice a step for every field of every document.
fn at<'j>(value: &'j Json, pointer: &str) -> Option<&'j Json> {
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(value, |value, step| match value {
            Json::Object(map) => map.get(step),
            Json::Array(list) => list.get(step.parse::<usize>().ok()?),
            _ => None,
        })
}

/// Where in the document a field's value was: written out as a JSON pointer only when
/// a refusal names it.
#[derive(Debug)]
enum Place {
    /// The row's own object ([`Fields::prefix`]).
    Row,
    /// A pointer from the document's root.
    Root(&'static str),
    /// A pointer inside the row's object.
    Here(&'static str),
    /// A pointer written out.
    Exact(String),
}

/// One field of a row: the column it fills, its text, and where in the document it was.
#[derive(Debug)]
struct Field<'a> {
    column: &'static str,
    text: Cow<'a, str>,
    place: Place,
}

/// One row's fields, named after the table's columns: a [`Record`] for
/// [`type_record`].
#[derive(Debug)]
struct Fields<'a> {
    line: u64,
    raw: Cow<'a, str>,
    fields: Vec<Field<'a>>,
    /// The pointer of the row's object: empty for the session, `/participants/0` for a
    /// participant.
    prefix: &'a str,
    /// Where each column would have been looked for, for a missing one's pointer.
    looked_up: Vec<(&'static str, Place)>,
}

impl<'a> Fields<'a> {
    fn new(line: u64, raw: Cow<'a, str>) -> Self {
        Fields {
            line,
            raw,
            fields: Vec::new(),
            prefix: "",
            looked_up: Vec::new(),
        }
    }

    fn push(&mut self, column: &'static str, text: Cow<'a, str>, place: Place) {
        self.fields.push(Field {
            column,
            text,
            place,
        });
    }

    /// Each column of `keys` from `object` (the row's object): the first of its
    /// pointers whose value is present and not null.
    fn lookup(&mut self, object: &'a Json, keys: Keys) {
        for &(column, pointers) in keys {
            self.looked_up.push((column, Place::Here(pointers[0])));
            let found = pointers.iter().find_map(|&pointer| {
                let value = at(object, pointer)?;
                // `/menu_path` stands for `/menu_path/name` only when it is not an
                // object (an object without a name has none).
                let has_inside = |p: &&str| {
                    p.strip_prefix(pointer)
                        .is_some_and(|rest| rest.starts_with('/'))
                };
                if value.is_object() && pointers.iter().any(has_inside) {
                    return None;
                }
                text(value).map(|text| (text, pointer))
            });
            if let Some((text, pointer)) = found {
                self.push(column, text, Place::Here(pointer));
            }
        }
    }

    /// A place as a JSON pointer into the document.
    fn written(&self, place: &Place) -> String {
        match place {
            Place::Row => self.prefix.to_string(),
            Place::Root(pointer) => pointer.to_string(),
            Place::Here(pointer) => format!("{}{pointer}", self.prefix),
            Place::Exact(pointer) => pointer.clone(),
        }
    }

    /// `status` and `status_code` from `/status`, a name or a numeric code: each is
    /// completed from the other where [`STATUS_CODES`] knows it.
    fn status(&mut self, root: &'a Json) {
        const POINTER: &str = "/status";
        self.looked_up.push(("status", Place::Root(POINTER)));
        let Some(sent) = root.get("status").and_then(text) else {
            return;
        };
        let trimmed = sent.trim();
        let digits = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit());
        if root["status"].is_string() && !digits {
            let code = STATUS_CODES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(trimmed))
                .map(|(code, _)| code.to_string());
            if let Some(code) = code {
                self.push("status_code", code.into(), Place::Root(POINTER));
            }
            self.push(
                "status",
                Cow::Owned(trimmed.to_string()),
                Place::Root(POINTER),
            );
        } else {
            // A code; a value that is neither a name nor a number is refused as one.
            let name = trimmed
                .parse::<u32>()
                .ok()
                .and_then(|code| STATUS_CODES.iter().find(|(known, _)| *known == code));
            if let Some((_, name)) = name {
                self.push("status", Cow::Borrowed(*name), Place::Root(POINTER));
            }
            self.push("status_code", sent, Place::Root(POINTER));
        }
    }

    /// `handle_duration`: over the `handle_durations` list, each agent's talk or chat
    /// time plus their before- and after-call work. A part that is not a whole number
    /// is given as the column's text, so the row is refused with its pointer.
    fn handle_duration(&mut self, root: &'a Json) {
        const POINTER: &str = "/handle_durations";
        self.looked_up
            .push(("handle_duration", Place::Root(POINTER)));
        let Some(items) = root.get("handle_durations").and_then(Json::as_array) else {
            return;
        };
        let mut total: i64 = 0;
        for (index, item) in items.iter().enumerate() {
            for part in [
                "call_duration",
                "chat_duration",
                "bcw_duration",
                "acw_duration",
            ] {
                let Some(value) = item.get(part).and_then(text) else {
                    continue;
                };
                match value.trim().parse::<u32>() {
                    Ok(seconds) if value.trim().bytes().all(|b| b.is_ascii_digit()) => {
                        total = total.saturating_add(i64::from(seconds));
                    }
                    _ => {
                        self.push(
                            "handle_duration",
                            value,
                            Place::Exact(format!("{POINTER}/{index}/{part}")),
                        );
                        return;
                    }
                }
            }
        }
        self.push(
            "handle_duration",
            total.to_string().into(),
            Place::Root(POINTER),
        );
    }

    /// The pointer a refusal is about: where its column's value was, or would have
    /// been looked for; the row's own place when no one column is at fault.
    fn pointer(&self, table: &Table, refusal: &Refusal) -> String {
        let Some(column) = refusal.column.map(|c| table.columns[c].name) else {
            return String::new();
        };
        let place = self
            .fields
            .iter()
            .find(|f| f.column == column)
            .map(|f| &f.place)
            .or_else(|| {
                self.looked_up
                    .iter()
                    .find(|(c, _)| *c == column)
                    .map(|(_, p)| p)
            });
        place.map(|p| self.written(p)).unwrap_or_default()
    }
}

impl Record for Fields<'_> {
    fn line(&self) -> u64 {
        self.line
    }

    fn unreadable(&self) -> Option<Unreadable> {
        None
    }

    fn width(&self) -> usize {
        self.fields.len()
    }

    fn get(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(|f| f.text.as_ref())
    }

    fn name(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(|f| f.column)
    }

    fn raw(&self) -> String {
        self.raw.to_string()
    }

    fn fingerprint(&self) -> u64 {
        let mut lengths = Vec::with_capacity(2 * self.fields.len());
        let mut joined = Vec::new();
        for field in &self.fields {
            for part in [field.column.as_bytes(), field.text.as_bytes()] {
                lengths.push(part.len());
                joined.extend_from_slice(part);
            }
        }
        fingerprint(lengths.into_iter(), &joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row a document gives, as (dataset, values' `Debug` text), and what was set aside.
    type Written = (Vec<(&'static str, Vec<String>)>, Vec<SessionQuarantine>);

    fn rows(text: &str) -> Result<Written, SessionQuarantine> {
        let document = SessionDocument::parse("sessions/2024/03/01/7.json", text.as_bytes())?;
        let mut written = Vec::new();
        let set_aside = document
            .write_rows::<()>(|table, row| {
                written.push((
                    table.dataset,
                    row.values.iter().map(|v| format!("{v:?}")).collect(),
                ));
                Ok(())
            })
            .unwrap();
        Ok((written, set_aside))
    }

    fn value(table: &Table, values: &[String], column: &str) -> String {
        let index = table.columns.iter().position(|c| c.name == column).unwrap();
        values[index].clone()
    }

    const SESSION: &str = r#"{
  "id": 7,
  "lang": "en",
  "call_type": "Voice Inbound (App)",
  "session_type_v2": "Voice Inbound (IVR using Mobile)",
  "status": "finished",
  "subStatus": "connected_with_agent",
  "created_at": "2024-03-01T10:00:00.000Z",
  "queued_at": "2024-03-01T11:00:05+01:00",
  "ends_at": "2024-03-01T10:05:00Z",
  "updated_at": "2024-03-01T10:20:00Z",
  "wait_duration": 5,
  "call_duration": "295",
  "hold_duration": null,
  "menu_path": {"id": 6205, "name": "Sales / EN", "materialized_path": "2420/4563/6205"},
  "agent_info": {"id": 12, "name": "Zoë Ł", "email": "z@example.com"},
  "handle_durations": [{"call_duration": 280, "acw_duration": 20, "bcw_duration": 0}],
  "x_new_field": {"nested": [1, 2]},
  "participants": [
    {"id": 1, "type": "end_user", "status": "finished", "connected_at": "2024-03-01T10:00:05Z"},
    {"id": 2, "type": "agent", "status": "finished", "user_id": 12, "call_duration": 290}
  ],
  "transfers": []
}"#;

    #[test]
    fn a_document_gives_its_session_and_child_rows() {
        let (written, set_aside) = rows(SESSION).unwrap();
        assert!(set_aside.is_empty(), "{set_aside:?}");
        let datasets: Vec<_> = written.iter().map(|w| w.0).collect();
        assert_eq!(
            datasets,
            ["sessions", "session_participants", "session_participants"]
        );
        let session = &written[0].1;
        let get = |column| value(&SESSIONS, session, column);
        assert_eq!(get("id"), "Whole(7)");
        assert_eq!(get("status"), "Text(\"finished\")");
        assert_eq!(get("status_code"), "Whole(8)");
        assert_eq!(get("sub_status"), "Text(\"connected_with_agent\")");
        assert_eq!(
            get("created_at"),
            format!("Micros({})", 1_709_287_200_000_000i64)
        );
        assert_eq!(
            get("queued_at"),
            format!("Micros({})", 1_709_287_205_000_000i64)
        );
        assert_eq!(
            get("ended_at"),
            format!("Micros({})", 1_709_287_500_000_000i64)
        );
        assert_eq!(get("call_duration"), "Whole(295)");
        assert_eq!(get("hold_duration"), "Null");
        assert_eq!(get("handle_duration"), "Whole(300)");
        assert_eq!(get("menu_path"), "Text(\"Sales / EN\")");
        assert_eq!(get("menu_path_id"), "Text(\"2420/4563/6205\")");
        assert_eq!(get("agent_id"), "Whole(12)");
        assert_eq!(get("agent_name"), "Text(\"Zoë Ł\")");
        assert!(get("document").contains("x_new_field"));
        let agent = &written[2].1;
        let get = |column| value(&SESSION_PARTICIPANTS, agent, column);
        assert_eq!(get("row_key"), "Text(\"7/1\")");
        assert_eq!(get("session_id"), "Whole(7)");
        assert_eq!(get("position"), "Whole(1)");
        assert_eq!(get("user_id"), "Whole(12)");
        assert_eq!(
            get("session_created_at"),
            format!("Micros({})", 1_709_287_200_000_000i64)
        );
    }

    #[test]
    fn the_version_is_read_before_any_row() {
        let document = SessionDocument::parse("a.json", SESSION.as_bytes()).unwrap();
        assert_eq!(
            document.version(),
            SessionVersion {
                id: 7,
                created_at: TimestampMicros(1_709_287_200_000_000),
                updated_at: Some(TimestampMicros(1_709_288_400_000_000)),
            }
        );
    }

    #[test]
    fn an_id_is_its_number_however_it_is_spelt() {
        for spelt in ["7", "\"7\"", "\" 007\""] {
            let text = SESSION.replace("\"id\": 7,", &format!("\"id\": {spelt},"));
            let document = SessionDocument::parse("a.json", text.as_bytes()).unwrap();
            assert_eq!(document.version().id, 7);
            let mut ids = Vec::new();
            document
                .write_rows::<()>(|_, row| {
                    ids.push(row.id.to_string());
                    Ok(())
                })
                .unwrap();
            assert_eq!(ids, ["7", "7/0", "7/1"], "{spelt}");
        }
    }

    #[test]
    fn a_nested_value_in_a_text_column_is_kept_as_json_text() {
        let text = SESSION.replace(
            "\"subStatus\": \"connected_with_agent\"",
            "\"subStatus\": {\"a\": [1]}",
        );
        let (written, _) = rows(&text).unwrap();
        assert_eq!(
            value(&SESSIONS, &written[0].1, "sub_status"),
            "Text(\"{\\\"a\\\":[1]}\")"
        );
        let text = SESSION.replace(
            "\"menu_path\": {\"id\": 6205, \"name\": \"Sales / EN\", ",
            "\"menu_path\": {",
        );
        let (written, _) = rows(&text).unwrap();
        assert_eq!(value(&SESSIONS, &written[0].1, "menu_path"), "Null");
        let text = SESSION.replace(
            "\"menu_path\": {\"id\": 6205, \"name\": \"Sales / EN\", \"materialized_path\": \"2420/4563/6205\"}",
            "\"menu_path\": \"Sales\"",
        );
        let (written, _) = rows(&text).unwrap();
        assert_eq!(
            value(&SESSIONS, &written[0].1, "menu_path"),
            "Text(\"Sales\")"
        );
    }

    #[test]
    fn numeric_status_codes_get_their_names() {
        for (status, name, code) in [
            ("9", "Text(\"failed\")", "Whole(9)"),
            ("\"11\"", "Text(\"deflected\")", "Whole(11)"),
            ("81", "Text(\"voicemail_received\")", "Whole(81)"),
            ("7", "Null", "Whole(7)"),
            ("\"Queued\"", "Text(\"Queued\")", "Whole(1)"),
            ("\"brand_new\"", "Text(\"brand_new\")", "Null"),
        ] {
            let text = SESSION.replace(
                "\"status\": \"finished\",\n",
                &format!("\"status\": {status},\n"),
            );
            let (written, _) = rows(&text).unwrap();
            let session = &written[0].1;
            assert_eq!(value(&SESSIONS, session, "status"), name, "{status}");
            assert_eq!(value(&SESSIONS, session, "status_code"), code, "{status}");
        }
    }

    #[test]
    fn bad_documents_are_refused_with_a_pointer() {
        let refused = |text: &str| rows(text).unwrap_err();
        let r = refused("{\"id\": 7,");
        assert_eq!(r.pointer, "");
        assert!(r.reason.starts_with("is not valid JSON"), "{}", r.reason);
        let r = refused("[1]");
        assert_eq!(r.reason, "is not a JSON object: it is a list");
        let r = refused(&SESSION.replace("\"id\": 7,", ""));
        assert_eq!(
            (r.pointer.as_str(), r.reason.as_str()),
            ("/id", "lacks the required column id")
        );
        let r = refused(&SESSION.replace("\"id\": 7,", "\"id\": \"seven\","));
        assert_eq!(r.pointer, "/id");
        assert_eq!(r.reason, "id: \"seven\" is not a whole non-negative number");
        let r = refused(&SESSION.replace("\"wait_duration\": 5", "\"wait_duration\": true"));
        assert_eq!(r.pointer, "/wait_duration");
        let r = refused(&SESSION.replace("\"acw_duration\": 20", "\"acw_duration\": \"x\""));
        assert_eq!(r.pointer, "/handle_durations/0/acw_duration");
        assert_eq!(
            r.entry().reason,
            "at /handle_durations/0/acw_duration: handle_duration: \"x\" is not a whole non-negative number"
        );
    }

    #[test]
    fn a_bad_list_item_is_set_aside_alone() {
        let text = SESSION.replace(
            "\"connected_at\": \"2024-03-01T10:00:05Z\"",
            "\"connected_at\": \"yesterday\"",
        );
        let (written, set_aside) = rows(&text).unwrap();
        assert_eq!(written.len(), 2, "the session and the other participant");
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].pointer, "/participants/0/connected_at");
        assert!(
            set_aside[0].raw.starts_with("{\"connected_at\""),
            "{}",
            set_aside[0].raw
        );
        let text = SESSION.replace("\"transfers\": []", "\"transfers\": {\"a\": 1}");
        let (_, set_aside) = rows(&text).unwrap();
        assert_eq!(set_aside[0].pointer, "/transfers");
        assert_eq!(set_aside[0].reason, "is not a list: it is an object");
    }
}
