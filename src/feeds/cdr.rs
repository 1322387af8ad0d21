//! One day's CDR file: check the ledger → download while parsing (the CSV streams
//! straight into the parser) → confirm it is whole → commit; a failed try is recorded.

use std::borrow::Cow;

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::formats::cdr_csv::CDR;
use crate::model::Category;
use crate::pipeline::connection::{Connection, RetryBudget};
use crate::pipeline::file::{self, Check, Fetched, modified_text};
use crate::pipeline::parse::parse;
use crate::pipeline::transfer;
use crate::pipeline::{Context, FileOutcome, IngestError};
use async_trait::async_trait;

use super::{DailyFeed, Dataset, Feed, HOSTED_PBX, Unit};
use crate::calls::{
    Direction, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Rule, Said, classify,
    plus_seconds, rule,
};
use crate::source::{RemoteFile, SourceError};
use crate::state::attempts::AttemptRecord;
use crate::state::json::StateError;
use crate::state::ledger::LedgerEntry;

/// This feed's name.
pub const CATEGORY: Category = Category::new("cdr");

static DATASETS: [Dataset; 1] = [Dataset {
    name: CDR.dataset,
    table: Some(&CDR),
    quarantine: true,
}];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "call detail records: CDRs/YYYY-MM-DD.csv, one a day, streamed while parsed",
    folder: ("cdrs", "CDRs"),
    datasets: &DATASETS,
    unit: Unit::Daily(&Cdrs),
    files: None,
    generate: crate::generate::cdr::write,
    calls: &CALLS,
};

/// A CDR is the call itself: its times, numbers and cost come first.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: CDR.dataset,
    provider: HOSTED_PBX,
    rank: Rank {
        call: 0,
        outcome: 1,
        routing: 2,
    },
    outcomes: &OUTCOMES,
    direction: "`outbound` when `src_id` is set (only outbound PSTN calls carry it); `internal` when `src` and `dst` are both extensions (2 to 6 digits); else `inbound`",
    columns: &[
        "calldate",
        "duration",
        "billsec",
        "src",
        "dst",
        "src_id",
        "disposition",
        "t_cause",
        "clid",
        "id",
        "destination",
        "dst_name",
        "charge",
        "_source_file",
        "_source_line",
    ],
    facts,
    objects: Objects::Every,
    per_call: PerCall::One,
}];

/// `disposition` (or `disposition/t_cause`, tried first) → outcome.
static OUTCOMES: [Rule; 7] = [
    rule("ANSWERED", Some(Outcome::Answered)),
    rule("NO ANSWER/Cancelled", Some(Outcome::Cancelled)),
    rule("NO ANSWER", Some(Outcome::NoAnswer)),
    rule("BUSY", Some(Outcome::Busy)),
    rule("FAILED/Call Rejected", Some(Outcome::Rejected)),
    rule("FAILED", Some(Outcome::Failed)),
    rule("CONGESTION", Some(Outcome::Failed)),
];

/// A CDR row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    let started = r.micros("calldate");
    let (duration, billsec) = (r.whole("duration"), r.whole("billsec"));
    let (src, dst) = (r.text("src"), r.text("dst"));
    let direction = if r.text("src_id").is_some() {
        Direction::Outbound
    } else if src.is_some_and(is_extension) && dst.is_some_and(is_extension) {
        Direction::Internal
    } else {
        Direction::Inbound
    };
    let said = match r.text("disposition") {
        None => Said::default(),
        Some(code) => {
            // Made only when a rule names it: the text made for every row was a
            // quarter of this function's time on a 1M-row day (`perf`).
            let with_cause = r
                .text("t_cause")
                .filter(|cause| OUTCOMES.iter().any(|rule| names(rule, code, cause)))
                .map(|cause| Cow::Owned(format!("{code}/{cause}")));
            let candidates = with_cause.into_iter().chain([Cow::Borrowed(code)]);
            classify(&OUTCOMES, candidates, Cow::Borrowed(code))
        }
    };
    let answered = billsec.is_some_and(|b| b > 0);
    let rang = match (duration, billsec) {
        (Some(d), Some(b)) => Some((d - b).max(0)),
        (Some(d), None) => Some(d),
        _ => None,
    };
    let caller_name = r.text("clid").and_then(clid_name).map(Cow::Borrowed);
    Some(Facts {
        call_id: r.value("id")?,
        started_at: started,
        answered_at: answered.then(|| plus_seconds(started, rang)).flatten(),
        ended_at: plus_seconds(started, duration),
        direction: Some(direction),
        from_number: src.map(Cow::Borrowed),
        to_number: dst.map(Cow::Borrowed),
        did: dst
            .filter(|_| direction == Direction::Inbound)
            .map(Cow::Borrowed),
        destination: r.value("destination"),
        called_name: r.value("dst_name"),
        agent_id: r.value("src_id"),
        agent_name: caller_name.filter(|_| direction != Direction::Inbound),
        ring_seconds: rang,
        talk_seconds: billsec,
        said,
        cost: r.decimal("charge"),
        source_object: r.value("_source_file").unwrap_or_default(),
        source_line: r.whole("_source_line"),
        ..Facts::default()
    })
}

/// Whether `rule` is `code/cause` (as [`classify`] compares: ASCII case ignored).
fn names(rule: &Rule, code: &str, cause: &str) -> bool {
    let (rule, code, cause) = (rule.code.as_bytes(), code.as_bytes(), cause.as_bytes());
    rule.len() == code.len() + 1 + cause.len()
        && rule[..code.len()].eq_ignore_ascii_case(code)
        && rule[code.len()] == b'/'
        && rule[code.len() + 1..].eq_ignore_ascii_case(cause)
}

/// An extension: a short all-digit number.
fn is_extension(number: &str) -> bool {
    (2..=6).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

/// The name in a caller ID such as `"Anna Nowak" <101>`.
fn clid_name(clid: &str) -> Option<&str> {
    let quoted = clid.strip_prefix('"')?;
    let end = quoted.rfind("\" <")?;
    Some(&quoted[..end]).filter(|name| !name.is_empty())
}

struct Cdrs;

#[async_trait]
impl DailyFeed for Cdrs {
    /// Ingests the CDR file of `day` unless the ledger shows it is already in.
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
        let result = fetch(ctx, connection, day, now, &remote, previous, &mut retries).await;
        // Every failed try is kept until the file goes in, so that `status` can still say
        // why after later passes (the run record holds the last pass only).
        // Not being able to keep that record does not change how the file went.
        let kept = match &result {
            Ok(_) => ctx.attempts.clear(CATEGORY, day).await,
            Err(error) => record_failure(ctx, day, &remote, now, error).await,
        };
        if let Err(e) = kept {
            tracing::warn!(%day, file = %path, error = %e, "could not update the record of failed tries");
        }
        result
    }
}

/// The remote path of a day's CDR file.
pub fn remote_path(folder: &str, day: NaiveDate) -> String {
    format!("{folder}/{day}.csv")
}

async fn record_failure(
    ctx: &Context,
    day: NaiveDate,
    remote: &RemoteFile,
    now: DateTime<Utc>,
    error: &IngestError,
) -> Result<(), StateError> {
    let modified = modified_text(remote);
    let tries = ctx
        .attempts
        .get(CATEGORY, day)
        .await?
        .filter(|a| a.is_of(remote.size, &modified))
        .map_or(0, |a| a.tries)
        + 1;
    let record = AttemptRecord::new(
        &remote.path,
        remote.size,
        modified,
        tries,
        error.to_string(),
        now,
    );
    ctx.attempts.put(CATEGORY, day, &record).await
}

/// Downloads the file while parsing it, confirms it is whole, and commits it; retries
/// draw on the file's budget, `retries`.
async fn fetch(
    ctx: &Context,
    connection: &mut Connection<'_>,
    day: NaiveDate,
    now: DateTime<Utc>,
    remote: &RemoteFile,
    previous: Option<LedgerEntry>,
    retries: &mut RetryBudget,
) -> Result<FileOutcome, IngestError> {
    // `stat` gives the path it was asked for.
    let path = remote.path.as_str();
    let started = Instant::now();
    let (mut sink, reader) = transfer::channel();
    let source_file = path.to_string();
    let size = remote.size;
    let parser = tokio::task::spawn_blocking(move || parse(&CDR, reader, &source_file, size));
    let downloaded = connection.download(path, &mut sink, retries).await;
    let (bytes, sha256) = sink.finish();
    let transferred = Instant::now();
    let parsed = parser
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))?;
    let parse_done = Instant::now();
    let parsed = match (downloaded, parsed) {
        // A parser that stopped early fails the download too: its own error says why.
        (Err(SourceError::Sink { .. }), Err(e)) => return Err(e.with_path(path)),
        (Err(e), _) => return Err(e.into()),
        (Ok(_), parsed) => parsed.map_err(|e| e.with_path(path))?,
    };
    file::confirm_complete(connection, remote, bytes, retries).await?;
    file::commit(
        ctx,
        Fetched {
            category: CATEGORY,
            day,
            remote: remote.clone(),
            previous,
            bytes,
            sha256,
            parsed: vec![parsed],
            started,
            transferred,
            parse_done,
            today: now.date_naive(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`names`] answers what comparing the text `code/cause` would, for codes and
    /// causes cut from every rule's, in either case, and some no rule has.
    #[test]
    fn names_is_the_comparison_of_the_pair_as_text() {
        let mut parts: Vec<String> = vec![String::new(), "/".into(), "Busy".into()];
        for rule in &OUTCOMES {
            for (i, _) in rule.code.char_indices().chain([(rule.code.len(), ' ')]) {
                let (left, right) = rule.code.split_at(i);
                parts.extend([left, right, right.trim_start_matches('/')].map(String::from));
                parts.push(left.to_ascii_lowercase());
            }
        }
        for rule in &OUTCOMES {
            for code in &parts {
                for cause in &parts {
                    let as_text = rule.code.eq_ignore_ascii_case(&format!("{code}/{cause}"));
                    assert_eq!(
                        names(rule, code, cause),
                        as_text,
                        "{:?} {code:?} {cause:?}",
                        rule.code
                    );
                }
            }
        }
    }
}
