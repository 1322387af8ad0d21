//! The contact center's call-history exports (`formats::call_history`): every `*.csv`,
//! `*.xlsx` and `*.xls` anywhere under the folder, found by what changed in it
//! (`pipeline::changed`), one row per call across all exports.
//!
//! A batch of files is spooled (each within `ingest.call_history_max_bytes`) and
//! parsed into one writer for the batch, duplicates within a file dropped or set
//! aside; then newest wins (`sink::newest`), per call key: a call's row is the one of
//! the newest export that has it, ranked by the export file's modification time,
//! then its name (with the sheet: `path!Sheet`). An export that brings a call already
//! in from a newer one changes nothing (stale); a newer one replaces the row, wherever
//! its date. Rows that cannot be read go to `_quarantine/call_history/` with the file,
//! the sheet, the row and the reason.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{ChangedFeed, ChangedLimits, Dataset, Feed, Taken, Unit};
use crate::calls::{
    Direction, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Rule, Said, classify,
    plus_seconds, rule,
};
use crate::formats::call_history::{CALL_HISTORY, ExportFormat, csv_rows};
use crate::formats::rows::RowSource;
use crate::formats::sheet_rows::Workbook;
use crate::formats::table::Typing;
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::newest_batch::{self, Committed};
use crate::pipeline::parse::{Counts, ParseError, parse_into};
use crate::pipeline::transfer::Spool;
use crate::pipeline::{Context, IngestError};
use crate::sink::newest::{Candidate, Decision, Group, Version};
use crate::sink::partitioned::PartitionedWriter;
use crate::sink::quarantine::QuarantineWriter;
use crate::source::RemoteFile;

/// This feed's name.
pub const CATEGORY: Category = Category::new("call_history");

static DATASETS: [Dataset; 1] = [Dataset {
    name: CALL_HISTORY.dataset,
    table: Some(&CALL_HISTORY),
    quarantine: true,
}];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "call-history exports of the cloud contact center: *.csv, *.xlsx, *.xls anywhere under the folder, overlapping (one row per call, the newest export's)",
    folder: ("call_history", "call_history"),
    datasets: &DATASETS,
    unit: Unit::Changed(&CallHistory),
    files: None,
    generate: crate::generate::call_history::write,
    calls: &CALLS,
};

/// The provider of the call-history exports (`../shared/PROVIDER.md` §4).
pub const CLOUD_CONTACT_CENTER: &str = "cloud_contact_center";

/// Each export row is one call attempt, its own call.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: CALL_HISTORY.dataset,
    provider: CLOUD_CONTACT_CENTER,
    rank: Rank {
        call: 0,
        outcome: 0,
        routing: 0,
    },
    outcomes: &OUTCOMES,
    direction: "`type`: `inbound` or `outbound` (from Входящий/Исходящий, Inbound/Outbound, Incoming/Outgoing)",
    columns: &[
        "time",
        "type",
        "attempt_result",
        "attempt_result_text",
        "ring_duration",
        "talk_duration",
        "to",
        "call_key",
        "from",
        "operator",
        "queue",
        "price",
        "_source_file",
        "_source_line",
    ],
    facts,
    objects: Objects::Every,
    per_call: PerCall::One,
}];

/// `attempt_result` (the stable code; else the text as sent, which no rule knows)
/// → outcome.
static OUTCOMES: [Rule; 14] = [
    rule("answered", Some(Outcome::Answered)),
    rule("no_answer", Some(Outcome::NoAnswer)),
    rule("busy", Some(Outcome::Busy)),
    rule("unreachable", Some(Outcome::Failed)),
    rule("rejected", Some(Outcome::Rejected)),
    rule("voicemail", Some(Outcome::Voicemail)),
    rule("abandoned", Some(Outcome::Abandoned)),
    rule("dnc_blocked", Some(Outcome::Rejected)),
    rule("dial_error", Some(Outcome::Failed)),
    rule("cancelled", Some(Outcome::Cancelled)),
    rule("wrong_number", Some(Outcome::Failed)),
    rule("insufficient_funds", Some(Outcome::Failed)),
    rule("missed_by_operator", Some(Outcome::NoAnswer)),
    rule("ended_in_ivr", Some(Outcome::Cancelled)),
];

/// A `call_history` row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    let started = r.micros("time");
    let direction = match r.text("type") {
        Some("inbound") => Some(Direction::Inbound),
        Some("outbound") => Some(Direction::Outbound),
        _ => None,
    };
    let said = match (r.value("attempt_result"), r.value("attempt_result_text")) {
        (Some(code), _) => classify(&OUTCOMES, [code.clone()], code),
        (None, Some(text)) => classify(&OUTCOMES, [text.clone()], text),
        (None, None) => Said::default(),
    };
    let (ring, talk) = (r.whole("ring_duration"), r.whole("talk_duration"));
    let answered = talk.is_some_and(|t| t > 0);
    let to = r.value("to");
    Some(Facts {
        call_id: r.value("call_key")?,
        started_at: started,
        answered_at: answered
            .then(|| plus_seconds(started, Some(ring.unwrap_or(0))))
            .flatten(),
        ended_at: plus_seconds(started, Some(ring.unwrap_or(0) + talk.unwrap_or(0))),
        direction,
        from_number: r.value("from"),
        did: to.clone().filter(|_| direction == Some(Direction::Inbound)),
        to_number: to,
        agent_name: r.value("operator"),
        queue_name: r.value("queue"),
        ring_seconds: ring,
        talk_seconds: talk,
        said,
        cost: r.decimal("price"),
        source_object: r.value("_source_file").unwrap_or_default(),
        source_line: r.whole("_source_line"),
        ..Facts::default()
    })
}

/// One row per call key across the dataset.
pub static GROUP: Group = Group {
    name: "call_history",
    tables: &[(&CALL_HISTORY, "call_key")],
};

struct CallHistory;

#[async_trait]
impl ChangedFeed for CallHistory {
    fn pattern(&self) -> &'static str {
        "*.csv, *.xlsx, *.xls"
    }

    fn wants(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        // `~$export.xlsx` is the lock file a spreadsheet leaves beside an open file.
        !name.starts_with("~$") && !name.starts_with('.') && ExportFormat::of(name).is_some()
    }

    fn limits(&self) -> ChangedLimits {
        ChangedLimits {
            min_age_key: "call_history_min_age_secs",
            min_age_secs: 60,
            max_bytes_key: "call_history_max_bytes",
            max_bytes: 256 << 20,
        }
    }

    async fn ingest(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        files: &[RemoteFile],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Taken, IngestError>>, IngestError> {
        let typing = Typing {
            zone: ctx.settings.ingest.call_history_timezone,
        };
        let mut writer = Some(PartitionedWriter::new(&CALL_HISTORY));
        // By the day each file was written (the pass's, for a file without a time).
        let mut quarantine: BTreeMap<NaiveDate, QuarantineWriter> = BTreeMap::new();
        let mut results: Vec<Result<Taken, IngestError>> = Vec::with_capacity(files.len());
        let mut candidates: Vec<Candidate> = Vec::new();
        // The candidates each file brought, by the file's position.
        let mut brought: Vec<std::ops::Range<usize>> = Vec::with_capacity(files.len());
        for file in files {
            let spooled = match spool(connection, file).await {
                Ok(spooled) => spooled,
                Err(e) => {
                    results.push(Err(e));
                    brought.push(0..0);
                    continue;
                }
            };
            crate::crash::point("downloaded");
            let day = file.modified.unwrap_or(now).date_naive();
            let set_aside = quarantine.remove(&day).unwrap_or_default();
            let (path, modified) = (file.path.clone(), file.modified);
            let batch_writer = writer.take().expect("the writer is handed back");
            let parsed = tokio::task::spawn_blocking(move || {
                let mut batch_writer = batch_writer;
                let mut set_aside = set_aside;
                let parsed = parse_export(
                    spooled,
                    &path,
                    modified,
                    typing,
                    &mut batch_writer,
                    &mut set_aside,
                );
                (batch_writer, set_aside, parsed)
            })
            .await
            .map_err(|e| IngestError::Internal(e.to_string()))?;
            let (batch_writer, set_aside, parsed) = parsed;
            writer = Some(batch_writer);
            quarantine.insert(day, set_aside);
            let start = candidates.len();
            match parsed {
                Ok((counts, mut found)) => {
                    if !counts.unknown_columns.is_empty() {
                        tracing::warn!(
                            file = %file.path,
                            columns = %counts.unknown_columns.join(", "),
                            "columns the call-history table does not know are kept in `extra`"
                        );
                    }
                    candidates.append(&mut found);
                    results.push(Ok(Taken {
                        rejected: counts.quarantined,
                        ..Taken::default()
                    }));
                }
                Err(ParseError::Format(source)) => results.push(Err(IngestError::Format {
                    path: file.path.clone(),
                    source,
                })),
                Err(ParseError::Spool(detail)) => return Err(IngestError::Spool { detail }),
            }
            brought.push(start..candidates.len());
        }
        let parts = writer
            .expect("the writer is handed back")
            .finish()
            .map_err(|e| IngestError::Internal(format!("cannot encode Parquet: {e}")))?;

        let Committed { decisions, written } =
            newest_batch::commit(ctx, &GROUP, &candidates, vec![parts], quarantine, files).await?;
        for (result, range) in results.iter_mut().zip(brought) {
            let Ok(taken) = result else {
                continue;
            };
            let Some(first) = candidates.get(range.start) else {
                continue;
            };
            taken.rows = written
                .get(&*first.version.file)
                .copied()
                .unwrap_or_default();
            taken.stale = decisions[range]
                .iter()
                .filter(|d| **d == Decision::Stale)
                .count() as u64;
        }
        Ok(results)
    }
}

/// Parses one spooled export into the batch's writers; the candidates are its kept
/// rows' keys, ranked by the file's modification time and name.
fn parse_export(
    spooled: File,
    path: &str,
    modified: Option<DateTime<Utc>>,
    typing: Typing,
    writer: &mut PartitionedWriter,
    quarantine: &mut QuarantineWriter,
) -> Result<(Counts, Vec<Candidate>), ParseError> {
    let format = ExportFormat::of(path).expect("only exports are wanted");
    let size = spooled.metadata().map_or(0, |m| m.len());
    let batch = Batch {
        modified,
        typing,
        size,
        writer,
        quarantine,
    };
    match format {
        ExportFormat::Csv => {
            let rows = csv_rows(spooled).map_err(|e| ParseError::Spool(e.to_string()))?;
            batch.parse(rows, path)
        }
        ExportFormat::Xlsx | ExportFormat::Xls => {
            let mut workbook =
                Workbook::open(BufReader::new(spooled), format).map_err(ParseError::Format)?;
            let rows = workbook.rows(&CALL_HISTORY).map_err(ParseError::Format)?;
            let source_file = format!("{path}!{}", rows.sheet);
            batch.parse(rows, &source_file)
        }
    }
}

/// Where one export's rows go, and what ranks them.
struct Batch<'a> {
    modified: Option<DateTime<Utc>>,
    typing: Typing,
    size: u64,
    writer: &'a mut PartitionedWriter,
    quarantine: &'a mut QuarantineWriter,
}

impl Batch<'_> {
    /// `source_file` is the rows' `_source_file` and the name their version ranks by.
    fn parse(
        self,
        rows: impl RowSource,
        source_file: &str,
    ) -> Result<(Counts, Vec<Candidate>), ParseError> {
        let version = Version {
            updated: None,
            modified: self.modified.map(|m| m.timestamp_micros()),
            file: source_file.into(),
        };
        let mut candidates = Vec::new();
        let sinks = (self.writer, self.quarantine);
        let counts = parse_into(
            &CALL_HISTORY,
            rows,
            self.typing,
            source_file,
            self.size,
            sinks,
            |id, date| {
                candidates.push(Candidate {
                    key: id.to_string(),
                    version: version.clone(),
                    date,
                })
            },
        )?;
        Ok((counts, candidates))
    }
}

/// Spools an export to a temporary file, rewound; one that changed while it was read
/// is left for the next pass.
async fn spool(connection: &mut Connection<'_>, file: &RemoteFile) -> Result<File, IngestError> {
    let mut spool = Spool::new().map_err(IngestError::spool)?;
    // The file's own retry budget (`pipeline::connection`).
    let mut retries = connection.retry_budget();
    connection
        .download(&file.path, &mut spool, &mut retries)
        .await?;
    let (mut spooled, bytes, _) = spool.finish().await.map_err(IngestError::spool)?;
    if bytes != file.size {
        return Err(IngestError::StillUploading {
            path: file.path.clone(),
            detail: format!("listed as {} bytes, {bytes} arrived", file.size),
        });
    }
    spooled
        .seek(SeekFrom::Start(0))
        .map_err(IngestError::spool)?;
    Ok(spooled)
}
