//! `cdr-ingest status`: where each day and category stands, from the destination
//! alone (ledger, attempts, the last pass's record) and the clock. The run record
//! holds the last pass only; the attempts keep why a file failed until it goes in.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::feeds::{self, Unit};
use crate::model::Category;
use crate::pass;
use crate::pipeline::Context;
use crate::retention::Target;
use crate::schedule::Due;
use crate::sink::destination;
use crate::state::attempts::AttemptRecord;
use crate::state::json::StateError;
use crate::state::runs::{self, RunRecord, UnitState};

/// One row of the status: a category of a day.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub day: NaiveDate,
    pub category: String,
    pub state: UnitState,
    /// Rows written (files copied, for a listed feed), when ingested.
    pub rows: Option<u64>,
    pub quarantined: Option<u64>,
    /// Why it is not ingested, when it is not.
    pub detail: Option<String>,
}

/// What `status` shows: the last pass, then the window's days, oldest first, each
/// day's categories in the configured order.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub last_pass: Option<RunRecord>,
    pub days: Vec<Row>,
    /// Per pushed feed: what was received last and what is not yet compacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<String>,
}

impl Status {
    pub fn standing(&self) -> Standing {
        if self.days.iter().any(|r| r.state.is_bad()) {
            Standing::NeedsAttention
        } else {
            Standing::AllWell
        }
    }
}

/// Whether anything needs an operator: something overdue or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    AllWell,
    NeedsAttention,
}

/// The days to show of each account (its own look-back window, or the days asked for).
pub type Window<'a> = dyn Fn(&Context) -> Vec<NaiveDate> + Sync + 'a;

/// The name of `ctx`'s account, or `""` in a configuration without accounts.
pub fn account_name(ctx: &Context) -> &str {
    ctx.settings
        .account
        .as_ref()
        .map_or("", |a| a.name.as_str())
}

/// The destination every account shares (the account's without its prefix), for
/// messages.
pub fn shared_destination(ctx: &Context) -> String {
    let own = destination::redact(&ctx.settings.destination.url);
    match &ctx.settings.account {
        Some(account) => own
            .strip_suffix(&format!("{}/", account.prefix))
            .map_or(own.clone(), str::to_string),
        None => own,
    }
}

/// The status of `window`'s days, from the destination and the clock.
pub async fn collect(
    ctx: &Context,
    now: DateTime<Utc>,
    window: &[NaiveDate],
) -> Result<Status, StateError> {
    let last = runs::get(&ctx.json).await?;
    let mut rows = Vec::new();
    for &day in window {
        for &category in &ctx.settings.ingest.categories {
            rows.push(row(ctx, day, category, now, last.as_ref()).await?);
        }
    }
    let mut pushed = Vec::new();
    for &category in &ctx.settings.ingest.categories {
        if let Unit::Pushed(feed) = feeds::feed(category).unit {
            pushed.push(format!("{category}: {}", feed.summary(ctx, now).await?));
        }
    }
    Ok(Status {
        last_pass: last,
        days: rows,
        pushed,
    })
}

/// Prints the status of `window`'s days; says whether something is overdue or failed,
/// for monitoring.
pub async fn show(
    ctx: &Context,
    now: DateTime<Utc>,
    window: &[NaiveDate],
    json: bool,
) -> Result<Standing, StateError> {
    Ok(print(collect(ctx, now, window).await?, json))
}

/// Prints `status` as a table or JSON; says whether something is overdue or failed.
pub fn print(status: Status, json: bool) -> Standing {
    let standing = status.standing();
    if json {
        crate::out!(
            "{}",
            serde_json::to_string_pretty(&status).expect("the status serializes")
        );
    } else {
        let Status {
            last_pass: last,
            days: rows,
            pushed,
        } = status;
        match &last {
            Some(run) => crate::out!(
                "last pass: {} from {} to {}, {}",
                run.mode,
                run.started,
                run.finished,
                run.outcome
            ),
            None => crate::out!("last pass: none recorded yet"),
        }
        crate::out!(
            "{:<10}  {:<10}  {:<9}  {:>9}  {:>11}  detail",
            "day",
            "category",
            "state",
            "rows",
            "quarantined"
        );
        for r in &rows {
            let number = |n: Option<u64>| n.map_or(String::new(), |n| n.to_string());
            crate::out!(
                "{:<10}  {:<10}  {:<9}  {:>9}  {:>11}  {}",
                r.day,
                r.category,
                r.state,
                number(r.rows),
                number(r.quarantined),
                r.detail.as_deref().unwrap_or("")
            );
        }
        for line in &pushed {
            crate::out!("{line}");
        }
    }
    standing
}

async fn row(
    ctx: &Context,
    day: NaiveDate,
    category: Category,
    now: DateTime<Utc>,
    last: Option<&RunRecord>,
) -> Result<Row, StateError> {
    let mut row = Row {
        day,
        category: category.to_string(),
        state: UnitState::NotDue,
        rows: None,
        quarantined: None,
        detail: None,
    };
    let ingested = match feeds::feed(category).unit {
        Unit::Listed(listed) => listed.copied(ctx, day).await?.map(|files| (files, 0)),
        // Pushed records have no due time: a day without any is not late.
        Unit::Pushed(pushed) => {
            match pushed.records(ctx, day).await? {
                Some(records) => {
                    row.state = UnitState::Ingested;
                    row.rows = Some(records);
                }
                None => {
                    row.detail = Some(
                        pass::expired(ctx, Target::Data(category), day, now.date_naive(), true)
                            .await?
                            .unwrap_or_else(|| "no records received".into()),
                    );
                }
            }
            return Ok(row);
        }
        // Rows in the feed's first dataset (what a newest-wins feed holds is in its files).
        Unit::Changed(_) => {
            let dataset = feeds::feed(category).datasets[0].name;
            crate::inventory::partition_rows(&ctx.store, dataset, day)
                .await
                .map_err(|e| StateError::Damaged {
                    key: crate::sink::layout::data_folder(dataset, day).to_string(),
                    detail: e.to_string(),
                })?
                .map(|rows| (rows, 0))
        }
        Unit::Daily(_) => ctx
            .ledger
            .get(category, day)
            .await?
            // An entry of an ingestion that did not finish is not done.
            .filter(|e| e.pending.is_empty())
            .map(|e| (e.rows_written, e.rows_rejected)),
    };
    if let Some((rows, quarantined)) = ingested {
        row.state = UnitState::Ingested;
        row.rows = Some(rows);
        row.quarantined = Some(quarantined);
        return Ok(row);
    }
    let last_outcome = last.and_then(|run| {
        run.files
            .iter()
            .find(|f| f.day == day && (f.category == category.as_str() || f.category == "all"))
    });
    match last_outcome {
        Some(file) if !matches!(file.outcome, UnitState::Ingested | UnitState::Unchanged) => {
            row.state = file.outcome;
            row.detail.clone_from(&file.detail);
        }
        _ => match (
            pass::expired(ctx, Target::Data(category), day, now.date_naive(), true).await?,
            failed_try(ctx, category, day).await?,
        ) {
            // What retention removed (or will at the next pass) is not missing.
            (Some(reason), _) => {
                row.state = UnitState::Expired;
                row.detail = Some(reason);
            }
            (None, Some(reason)) => {
                row.state = UnitState::Failed;
                row.detail = Some(reason);
            }
            (None, None) => {
                row.state = match ctx.settings.schedule.missing(day, now) {
                    Due::NotYet => UnitState::NotDue,
                    Due::Late { .. } => UnitState::Late,
                    Due::Overdue { .. } => UnitState::Overdue,
                };
                row.detail = Some("not ingested yet".into());
            }
        },
    }
    Ok(row)
}

/// Why the file of a unit the last pass did not cover failed on its last try, if
/// it did and has not gone in since.
async fn failed_try(
    ctx: &Context,
    category: Category,
    day: NaiveDate,
) -> Result<Option<String>, StateError> {
    if feeds::feed(category).daily().is_none() {
        return Ok(None);
    }
    let Some(attempt) = ctx.attempts.get(category, day).await? else {
        return Ok(None);
    };
    Ok(Some(failure_detail(&attempt)))
}

fn failure_detail(attempt: &AttemptRecord) -> String {
    let when = attempt.last_try.map_or(String::new(), |t| {
        format!(", the last at {}", t.format("%Y-%m-%d %H:%M UTC"))
    });
    let tries = if attempt.tries == 1 { "try" } else { "tries" };
    format!("{} ({} {tries}{when})", attempt.last_error, attempt.tries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_why_how_often_and_when() {
        let mut attempt = AttemptRecord::new(
            "CDRs/2024-03-01.csv",
            10,
            None,
            2,
            "CDRs/2024-03-01.csv: the header has no billsec column".into(),
            "2024-03-02T01:15:00Z".parse().unwrap(),
        );
        assert_eq!(
            failure_detail(&attempt),
            "CDRs/2024-03-01.csv: the header has no billsec column (2 tries, the last at 2024-03-02 01:15 UTC)"
        );
        attempt.tries = 1;
        attempt.last_try = None;
        assert!(failure_detail(&attempt).ends_with("column (1 try)"));
    }
}
