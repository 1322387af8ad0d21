//! Contact-center session metadata: one JSON document per session anywhere under the
//! folder (platforms write dated subfolders), rewritten after the session ends, so
//! the newest version of each session wins (`sink::newest`). Files are found by what
//! changed in the folder (`pipeline::changed`), never by a date in their name.
//!
//! A batch of files is downloaded (each within `ingest.sessions_max_bytes`) and
//! parsed (`formats::sessions_json`) into the three tables by the session's created
//! date; the newest-wins rule then decides, per session, whether this version is
//! newer than what is in (its rows replace the old ones, children included), the same
//! (nothing to do) or older (stale: nothing written). Documents that cannot be read go
//! to `_quarantine/sessions/` with the file, JSON pointer and reason.

use std::borrow::Cow;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{ChangedFeed, ChangedLimits, Dataset, Feed, Taken, Unit};
use crate::calls::{
    Direction, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Rule, Said, classify, rule,
};
use crate::formats::sessions_json::{
    SESSION_PARTICIPANTS, SESSION_TABLES, SESSION_TRANSFERS, SESSIONS, SessionDocument,
};
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::fetch;
use crate::pipeline::newest_batch::{self, Committed};
use crate::pipeline::{Context, IngestError};
use crate::sink::newest::{Candidate, Decision, Group, Version};
use crate::sink::partitioned::DatedRows;
use crate::sink::quarantine::QuarantineWriter;
use crate::source::RemoteFile;

/// This feed's name.
pub const CATEGORY: Category = Category::new("sessions");

static DATASETS: [Dataset; 3] = [
    Dataset {
        name: SESSIONS.dataset,
        table: Some(&SESSIONS),
        quarantine: true,
    },
    Dataset {
        name: SESSION_PARTICIPANTS.dataset,
        table: Some(&SESSION_PARTICIPANTS),
        quarantine: false,
    },
    Dataset {
        name: SESSION_TRANSFERS.dataset,
        table: Some(&SESSION_TRANSFERS),
        quarantine: false,
    },
];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "contact-center session metadata: one JSON document per session, anywhere under the folder, rewritten later (the newest version wins)",
    folder: ("sessions", "sessions"),
    datasets: &DATASETS,
    unit: Unit::Changed(&Sessions),
    files: None,
    generate: crate::generate::sessions::write,
    calls: &CALLS,
};

/// The provider of the session metadata files (`../shared/PROVIDER.md` §3).
pub const CONTACT_CENTER_AI: &str = "contact_center_ai";

/// A voice session is a call; chats are not.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: SESSIONS.dataset,
    provider: CONTACT_CENTER_AI,
    rank: Rank {
        call: 0,
        outcome: 0,
        routing: 0,
    },
    outcomes: &OUTCOMES,
    direction: "`outbound` when `call_type` (or `session_type_v2`) says Outbound or Campaign; else `inbound`",
    columns: &[
        "call_type",
        "session_type_v2",
        "status",
        "status_code",
        "support_number",
        "outbound_number",
        "id",
        "created_at",
        "connected_at",
        "ended_at",
        "agent_id",
        "agent_name",
        "menu_path",
        "menu_path_id",
        "wait_duration",
        "call_duration",
        "_source_file",
        "_source_line",
    ],
    facts,
    objects: Objects::Every,
    per_call: PerCall::One,
}];

/// `status` (its name, or the code when the name is unknown) → outcome. The states a
/// session passes through before it ends say nothing yet.
static OUTCOMES: [Rule; 20] = [
    rule("finished", Some(Outcome::Answered)),
    rule("failed", Some(Outcome::Failed)),
    rule("deflected", Some(Outcome::Rejected)),
    rule("recovered", Some(Outcome::Abandoned)),
    rule("voicemail", Some(Outcome::Voicemail)),
    rule("voicemail_received", Some(Outcome::Voicemail)),
    rule("scheduled", None),
    rule("queued", None),
    rule("assigned", None),
    rule("connecting", None),
    rule("switching", None),
    rule("connected", None),
    rule("selecting", None),
    rule("va_assigned", None),
    rule("va_connected", None),
    rule("preview_pending", None),
    rule("preview_ready", None),
    rule("campaign_connecting", None),
    rule("campaign_connected", None),
    rule("requeued", None),
];

/// A `sessions` row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    let voice = r
        .text("call_type")
        .or_else(|| r.text("session_type_v2").filter(|t| t.starts_with("Voice")))?;
    let outbound = voice.contains("Outbound") || voice.contains("Campaign");
    let direction = if outbound {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let code = r
        .value("status")
        .or_else(|| r.whole("status_code").map(|c| Cow::Owned(c.to_string())));
    let said = match code {
        None => Said::default(),
        Some(code) => classify(&OUTCOMES, [code.clone()], code),
    };
    let (support, outbound_number) = (r.value("support_number"), r.value("outbound_number"));
    Some(Facts {
        call_id: Cow::Owned(r.whole("id")?.to_string()),
        started_at: r.micros("created_at"),
        answered_at: r.micros("connected_at"),
        ended_at: r.micros("ended_at"),
        direction: Some(direction),
        from_number: if outbound { outbound_number } else { None },
        to_number: if outbound { None } else { support.clone() },
        did: if outbound { None } else { support },
        agent_id: r.whole("agent_id").map(|id| Cow::Owned(id.to_string())),
        agent_name: r.value("agent_name"),
        queue_name: r.value("menu_path"),
        queue_id: r.value("menu_path_id"),
        wait_seconds: r.whole("wait_duration"),
        talk_seconds: r.whole("call_duration"),
        said,
        recording_key: None,
        source_object: r.value("_source_file").unwrap_or_default(),
        source_line: r.whole("_source_line"),
        ..Facts::default()
    })
}

/// The sessions and the rows that follow each: a session's participants and
/// transfers carry its id in `session_id`.
pub static GROUP: Group = Group {
    name: "sessions",
    tables: &[
        (&SESSIONS, "id"),
        (&SESSION_PARTICIPANTS, "session_id"),
        (&SESSION_TRANSFERS, "session_id"),
    ],
};

struct Sessions;

#[async_trait]
impl ChangedFeed for Sessions {
    fn pattern(&self) -> &'static str {
        "*.json"
    }

    fn wants(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        name.len() > ".json".len() && name.to_ascii_lowercase().ends_with(".json")
    }

    fn limits(&self) -> ChangedLimits {
        ChangedLimits {
            min_age_key: "sessions_min_age_secs",
            min_age_secs: 60,
            max_bytes_key: "sessions_max_bytes",
            max_bytes: 16 << 20,
        }
    }

    async fn ingest(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        files: &[RemoteFile],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Taken, IngestError>>, IngestError> {
        // A batch's rows stay in memory until its files are written, one at a time.
        let mut writers: Vec<DatedRows> = SESSION_TABLES
            .iter()
            .map(|&table| DatedRows::new(table))
            .collect();
        // By the day each file was written (the pass's, for a file without a time).
        let mut quarantine: BTreeMap<NaiveDate, QuarantineWriter> = BTreeMap::new();
        let mut results: Vec<Result<Taken, IngestError>> = Vec::with_capacity(files.len());
        // The candidate each file brought, by the file's position.
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut brought: Vec<Option<usize>> = Vec::with_capacity(files.len());
        fetch::each_whole(ctx, connection, files, |file, bytes| {
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) => {
                    results.push(Err(e));
                    brought.push(None);
                    return Ok(());
                }
            };
            crate::crash::point("downloaded");
            let mut taken = Taken::default();
            let set_aside_day = file.modified.unwrap_or(now).date_naive();
            let quarantine = quarantine.entry(set_aside_day).or_default();
            match SessionDocument::parse(&file.path, &bytes) {
                Err(refused) => {
                    quarantine.push(&refused.entry())?;
                    taken.rejected += 1;
                    brought.push(None);
                }
                Ok(document) => {
                    let version = document.version();
                    let date = version.created_at.utc_date();
                    let set_aside = document
                        .write_rows(|table, row| {
                            let position = SESSION_TABLES
                                .iter()
                                .position(|t| std::ptr::eq(*t, table))
                                .expect("a session table");
                            writers[position].push(date, |b| b.push(row, &file.path));
                            Ok::<(), std::convert::Infallible>(())
                        })
                        .unwrap_or_else(|never| match never {});
                    for item in &set_aside {
                        quarantine.push(&item.entry())?;
                    }
                    taken.rejected += set_aside.len() as u64;
                    brought.push(Some(candidates.len()));
                    candidates.push(Candidate {
                        key: version.id.to_string(),
                        version: Version {
                            updated: version.updated_at.map(|t| t.0),
                            modified: file.modified.map(|m| m.timestamp_micros()),
                            file: file.path.as_str().into(),
                        },
                        date,
                    });
                }
            }
            results.push(Ok(taken));
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(IngestError::spool)?;
        let parts = writers
            .into_iter()
            .map(|w| w.finish())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IngestError::Internal(format!("cannot encode Parquet: {e}")))?;

        let Committed { decisions, written } =
            newest_batch::commit(ctx, &GROUP, &candidates, parts, quarantine, files).await?;
        for ((result, file), candidate) in results.iter_mut().zip(files).zip(&brought) {
            let (Ok(taken), Some(candidate)) = (result, candidate) else {
                continue;
            };
            match decisions[*candidate] {
                Decision::Won { .. } => {
                    taken.rows = written.get(&file.path).copied().unwrap_or_default();
                }
                Decision::Stale => taken.stale += 1,
                Decision::Unchanged => {}
            }
        }
        Ok(results)
    }
}
