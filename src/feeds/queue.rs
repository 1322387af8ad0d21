//! One day's queue-call zip: check the ledger → spool the download to a temporary
//! file → open it safely → parse both CSVs → commit. A zip that cannot be read is
//! not marked done; its tries are counted so that it is reported as failed after
//! `ingest.max_tries` and not downloaded again until it changes.

use std::borrow::Cow;

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::formats::queue_csv::{QUEUE_CALL, QUEUE_USER_CALL};
use crate::formats::queue_zip::{QueueZip, ZipError, ZipLimits};
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::file::{self, Check, Fetched, modified_text};
use crate::pipeline::parse::{ParseError, Parsed, parse};
use crate::pipeline::transfer::Spool;
use crate::pipeline::{Context, FileOutcome, IngestError};
use async_trait::async_trait;

use super::{DailyFeed, Dataset, Feed, HOSTED_PBX, Unit};
use crate::calls::{
    Direction, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Rule, Said, classify,
    plus_seconds, rule,
};
use crate::state::attempts::AttemptRecord;

/// This feed's name.
pub const CATEGORY: Category = Category::new("queue");

static DATASETS: [Dataset; 2] = [
    Dataset {
        name: QUEUE_CALL.dataset,
        table: Some(&QUEUE_CALL),
        quarantine: true,
    },
    Dataset {
        name: QUEUE_USER_CALL.dataset,
        table: Some(&QUEUE_USER_CALL),
        quarantine: true,
    },
];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "queue-call reports: QueueCalls/YYYY-MM-DD-queue-calls.zip, one a day, spooled then unzipped",
    folder: ("queue_calls", "QueueCalls"),
    datasets: &DATASETS,
    unit: Unit::Daily(&QueueCalls),
    files: None,
    generate: crate::generate::queue::write,
    calls: &CALLS,
};

/// A `queue_call` row tells what a CDR cannot: the queue, the wait, the agent who took
/// the call, and whether the caller gave up or was sent to voicemail.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: QUEUE_CALL.dataset,
    provider: HOSTED_PBX,
    rank: Rank {
        call: 1,
        outcome: 0,
        routing: 0,
    },
    outcomes: &OUTCOMES,
    direction: "`inbound` (only inbound calls enter a queue)",
    columns: &[
        "start_time",
        "_source_file",
        "call_id",
        "cli",
        "ddi",
        "final_dst_id",
        "queue_id",
        "final_dst_type",
        "t_cause",
        "_source_line",
        "conn_time",
        "hold_time",
    ],
    facts,
    objects: Objects::Every,
    per_call: PerCall::Many,
}];

/// `final_dst_type/t_cause` → outcome: the pair, then `type/*`, then `*/t_cause`.
/// `None`: passed on to another queue or an IVR, so the CDR says how the call ended.
static OUTCOMES: [Rule; 6] = [
    rule("U/C", Some(Outcome::Answered)),
    rule("U/H", Some(Outcome::Abandoned)),
    rule("V/*", Some(Outcome::Voicemail)),
    rule("Q/*", None),
    rule("R/*", None),
    rule("*/H", Some(Outcome::Abandoned)),
];

/// A `queue_call` row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    let started = r.micros("start_time");
    let hold = r.whole("hold_time");
    let (kind, cause) = (r.text("final_dst_type"), r.text("t_cause"));
    let said = if kind.is_none() && cause.is_none() {
        Said::default()
    } else {
        let (kind, cause) = (kind.unwrap_or_default(), cause.unwrap_or_default());
        classify(
            &OUTCOMES,
            [
                format!("{kind}/{cause}"),
                format!("{kind}/*"),
                format!("*/{cause}"),
            ]
            .map(Cow::Owned),
            Cow::Owned(format!("{kind}/{cause}")),
        )
    };
    let connected = said.outcome == Some(Outcome::Answered);
    let answered_at = plus_seconds(started, hold);
    Some(Facts {
        call_id: r.value("call_id")?,
        started_at: started,
        answered_at: answered_at.filter(|_| connected),
        ended_at: plus_seconds(answered_at, r.whole("conn_time")),
        direction: Some(Direction::Inbound),
        from_number: r.value("cli"),
        to_number: r.value("ddi"),
        did: r.value("ddi"),
        agent_id: r.value("final_dst_id").filter(|_| connected),
        queue_id: r.value("queue_id"),
        ring_seconds: hold,
        wait_seconds: hold,
        talk_seconds: r.whole("conn_time"),
        said,
        source_object: r.value("_source_file").unwrap_or_default(),
        source_line: r.whole("_source_line"),
        ..Facts::default()
    })
}

struct QueueCalls;

#[async_trait]
impl DailyFeed for QueueCalls {
    /// Ingests the queue-call zip of `day` unless the ledger shows it is already in.
    async fn ingest_day(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<FileOutcome, IngestError> {
        let path = remote_path(ctx.settings.source.folders.of(CATEGORY), day);
        let (remote, previous, mut retries) =
            match file::check(ctx, connection, CATEGORY, day, &path, now).await? {
                Check::Done(outcome) => return Ok(outcome),
                Check::Fetch {
                    remote,
                    previous,
                    retries,
                } => (remote, previous.map(|p| *p), retries),
            };
        let max_tries = ctx.settings.ingest.max_tries;
        let tried = ctx
            .attempts
            .get(CATEGORY, day)
            .await?
            .filter(|a| a.is_of(remote.size, &modified_text(&remote)));
        if let Some(tried) = tried.as_ref().filter(|a| a.tries >= max_tries) {
            return Err(IngestError::GaveUp {
                path,
                tries: tried.tries,
                last_error: tried.last_error.clone(),
            });
        }

        let started = Instant::now();
        let mut spool = Spool::new().map_err(IngestError::spool)?;
        connection.download(&path, &mut spool, &mut retries).await?;
        let (zip_file, bytes, sha256) = spool.finish().await.map_err(IngestError::spool)?;
        file::confirm_complete(connection, &remote, bytes, &mut retries).await?;
        let transferred = Instant::now();

        let limits = ctx.settings.ingest.zip_limits;
        let zip_path = path.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_zip(zip_file, limits, &zip_path))
            .await
            .map_err(|e| IngestError::Internal(e.to_string()))?;
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                let tries = tried.map_or(0, |a| a.tries) + 1;
                // The record keeps the reason alone: what happens next depends on the
                // later try that reads it.
                let (error, reason) = error.into_ingest_error(&path, tries, max_tries);
                let record = AttemptRecord::new(
                    &path,
                    remote.size,
                    modified_text(&remote),
                    tries,
                    reason,
                    now,
                );
                ctx.attempts.put(CATEGORY, day, &record).await?;
                return Err(error);
            }
        };
        let parse_done = Instant::now();
        let outcome = file::commit(
            ctx,
            Fetched {
                category: CATEGORY,
                day,
                remote,
                previous,
                bytes,
                sha256,
                parsed,
                started,
                transferred,
                parse_done,
                today: now.date_naive(),
            },
        )
        .await?;
        ctx.attempts.clear(CATEGORY, day).await?;
        Ok(outcome)
    }
}

/// The remote path of a day's queue-call zip.
pub fn remote_path(folder: &str, day: NaiveDate) -> String {
    format!("{folder}/{day}-queue-calls.zip")
}

/// Why a spooled zip could not be turned into datasets.
enum ZipFailure {
    Zip(ZipError),
    Parse(String, ParseError),
}

impl ZipFailure {
    /// The error to report for this try, and the reason to record for the next.
    fn into_ingest_error(self, path: &str, tries: u32, max_tries: u32) -> (IngestError, String) {
        let reason = match self {
            ZipFailure::Zip(source) => source.to_string(),
            ZipFailure::Parse(entry, ParseError::Format(source)) => format!("{entry}: {source}"),
            ZipFailure::Parse(entry, spool @ ParseError::Spool(_)) => {
                let error = spool.with_path(&entry);
                let reason = error.to_string();
                return (error, reason);
            }
        };
        let error = IngestError::Zip {
            path: path.to_string(),
            reason: reason.clone(),
            tries,
            max_tries,
        };
        (error, reason)
    }
}

/// Opens the zip within `limits` and parses each queue CSV in it.
fn parse_zip(
    file: std::fs::File,
    limits: ZipLimits,
    zip_path: &str,
) -> Result<Vec<Parsed>, ZipFailure> {
    let mut zip =
        QueueZip::open(file, limits, &[&QUEUE_CALL, &QUEUE_USER_CALL]).map_err(ZipFailure::Zip)?;
    for name in &zip.ignored {
        tracing::warn!(file = %zip_path, entry = %name, "unexpected entry in the zip ignored");
    }
    let entries = zip.entries.clone();
    let mut parsed = Vec::with_capacity(entries.len());
    for entry in entries {
        let source_file = format!("{zip_path}!{}", entry.name);
        let reader = zip.reader(entry.index).map_err(ZipFailure::Zip)?;
        let table = parse(entry.table, reader, &source_file, entry.size);
        parsed.push(table.map_err(|e| ZipFailure::Parse(source_file.clone(), e))?);
    }
    Ok(parsed)
}
