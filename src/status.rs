//! `cdr-ingest status`: where each day and category stands, from the destination
//! alone (ledger, attempts, the last pass's record) and the clock.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::cli::{EXIT_FAILED, EXIT_OK};
use crate::model::Category;
use crate::pipeline::Context;
use crate::schedule::Due;
use crate::state::runs::{self, RunRecord};

/// One row of the status.
#[derive(Debug, Serialize)]
struct Row {
    day: NaiveDate,
    category: String,
    /// `ingested`, `not_due`, `late`, `overdue`, `failed`, `busy`, `stopped`, `not_tried`.
    state: String,
    rows: Option<u64>,
    quarantined: Option<u64>,
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct Status {
    last_pass: Option<RunRecord>,
    days: Vec<Row>,
}

/// Prints the status of the last `days` days (default: the look-back window).
/// Exits non-zero when something is overdue or failed, for monitoring.
pub async fn show(
    ctx: &Context,
    now: DateTime<Utc>,
    days: Option<u32>,
    json: bool,
) -> anyhow::Result<u8> {
    let window = ctx.settings.schedule.last_days(days, now);
    let last = runs::get(&ctx.json).await?;
    let mut rows = Vec::new();
    for &day in &window {
        for &category in &ctx.settings.ingest.categories {
            rows.push(row(ctx, day, category, now, last.as_ref()).await?);
        }
    }
    let bad = rows
        .iter()
        .any(|r| matches!(r.state.as_str(), "overdue" | "failed"));
    if json {
        crate::out!(
            "{}",
            serde_json::to_string_pretty(&Status {
                last_pass: last,
                days: rows
            })?
        );
    } else {
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
    }
    Ok(if bad { EXIT_FAILED } else { EXIT_OK })
}

async fn row(
    ctx: &Context,
    day: NaiveDate,
    category: Category,
    now: DateTime<Utc>,
    last: Option<&RunRecord>,
) -> anyhow::Result<Row> {
    let mut row = Row {
        day,
        category: category.to_string(),
        state: String::new(),
        rows: None,
        quarantined: None,
        detail: None,
    };
    let ingested = match category {
        Category::Recordings => ctx
            .ledger
            .recordings(day)
            .await?
            .map(|e| (e.files.len() as u64, 0)),
        _ => ctx
            .ledger
            .get(category, day)
            .await?
            .map(|e| (e.rows_written, e.rows_rejected)),
    };
    if let Some((rows, quarantined)) = ingested {
        row.state = "ingested".into();
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
        Some(file) if !matches!(file.outcome.as_str(), "ingested" | "unchanged") => {
            row.state.clone_from(&file.outcome);
            row.detail.clone_from(&file.detail);
        }
        _ => {
            row.state = match ctx.settings.schedule.missing(day, now) {
                Due::NotYet => "not_due",
                Due::Late { .. } => "late",
                Due::Overdue { .. } => "overdue",
            }
            .into();
            row.detail = Some("not ingested yet".into());
        }
    }
    Ok(row)
}
