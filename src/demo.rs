//! `cdr-ingest demo`: the whole job on an embedded example, with no provider account,
//! no network and no server installed: a generated week of drop (with the provider's
//! quirks) is served over explicit FTPS from inside the process and ingested through
//! the real pipeline and FTPS client into a local folder; then the first answers a BI
//! user asks are computed from the Parquet output. The week's pushed call records are
//! posted to `serve` on a loopback port, as the provider would, and compacted into the
//! same output. Run again, it ingests nothing new.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use chrono::{DateTime, NaiveDate, Timelike};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::calls;
use crate::config::{DEFAULT_PASSWORD_ENV, Settings};
use crate::demo_server;
use crate::generate::push::push_path;
use crate::generate::push_client::{Replay, replay};
use crate::generate::{DropSpec, EXTRA_COLUMN, Quirks, write_drop};
use crate::pass;
use crate::pipeline::{Context, FileOutcome, PassOptions};
use crate::report;
use crate::serve;
use crate::shutdown::Shutdown;
use crate::sink::destination;
use crate::state::runs::PassOutcome;

/// The example week.
fn week() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(2024, 3, 4).expect("a date"),
        NaiveDate::from_ymd_opt(2024, 3, 10).expect("a date"),
    )
}

pub async fn run(out: &Path) -> anyhow::Result<PassOutcome> {
    let started = Instant::now();
    let (from, to) = week();
    let out = std::path::absolute(out)?;
    let (drop, data) = (out.join("drop"), out.join("data"));
    let mut spec = DropSpec::new(2024, from, to);
    spec.recordings_per_day = Some(40);
    spec.quirks = Quirks::all();
    let quirks = spec.quirks.clone();
    let generate = drop.clone();
    tokio::task::spawn_blocking(move || write_drop(&generate, &spec)).await??;
    let server = demo_server::start(drop.clone(), &out.join("certs")).await?;
    crate::out!(
        "demo: a week of the provider's drop ({from} to {to}, with its quirks) is in {}, served over explicit FTPS on localhost:{}",
        drop.display(),
        server.port
    );

    let config = format!(
        "[source]\nurl = \"ftps://demo@localhost:{}\"\nca_file = \"{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [{}]\nrecordings_min_age_secs = 0\n",
        server.port,
        server.ca_file.display(),
        data.display(),
        // Every feed, those taken only when named (the session files) too.
        crate::feeds::FEEDS
            .iter()
            .map(|f| format!("\"{}\"", f.category))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The embedded server takes any login; a password is still sent, as to the provider.
    let password = |name: &str| (name == DEFAULT_PASSWORD_ENV).then(|| "demo".to_string());
    let settings =
        Settings::parse(&config, &password).map_err(|issues| anyhow::anyhow!("{issues:?}"))?;
    let store = destination::open(&settings.destination.url, &settings.destination.options)?;
    let ctx = Context::new(settings, store);
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    // The clock of the demo is the week after: every file is due, none is late.
    let now = to
        .succ_opt()
        .and_then(|d| d.succ_opt())
        .expect("a date")
        .and_hms_opt(12, 0, 0)
        .expect("a time")
        .and_utc();
    let pass = pass::run(&ctx, &days, now, &PassOptions::default()).await;
    let outcome = report::print(&pass);
    let fresh = pass
        .files
        .iter()
        .filter(|f| matches!(f.result, Ok(FileOutcome::Ingested(_))))
        .count();
    crate::out!(
        "demo: {} in {:.1} s; the output is in {} (Parquet under calls/, one row per call from every feed, and cdr/, queue_call/, queue_user_call/, recording_index/, sessions/, session_participants/, session_transfers/, call_history/; recordings/; _quarantine/)",
        if fresh == 0 {
            "nothing new to ingest (run before)"
        } else {
            "ingested"
        },
        started.elapsed().as_secs_f64(),
        data.display()
    );
    let acknowledged = push(&ctx, &drop, &days).await?;
    explain_quirks(&quirks, from);
    answers(&data)?;
    push_answers(&data, acknowledged)?;
    crate::out!(
        "demo: more questions in examples/queries/*.sql (DuckDB), run from {}",
        data.display()
    );
    Ok(outcome)
}

/// What the planted quirks look like in the output above, so that a newcomer does not
/// take them for errors: one line per quirk that is on.
fn explain_quirks(quirks: &Quirks, from: NaiveDate) {
    let mut lines = Vec::new();
    if quirks.extra_column {
        lines.push(format!(
            "\"unknown column ignored\" ({EXTRA_COLUMN}), a warning per CDR file: the provider added a column; files are read by their header, so it is skipped and the known columns are read"
        ));
    }
    if quirks.short_row || quirks.bad_date || quirks.bad_number || quirks.duplicate_conflicting {
        lines.push("\"quarantined\": each CDR file has a row cut short, an impossible date, a duration like \"12s\" and a call id repeated with other values; those rows are set aside, with the reason, under _quarantine/ and the rest of the file goes in".to_string());
    }
    if quirks.repeat_previous_tail > 0 || quirks.duplicate_identical {
        let before = from.pred_opt().unwrap_or(from);
        lines.push(format!(
            "\"duplicates dropped\": each file starts with the previous day's last {} calls and has one row twice; every call is kept once, under its own date (the first file's repeated calls are on {before}, the day before the week)",
            quirks.repeat_previous_tail
        ));
    }
    if quirks.bad_recording_names {
        lines.push("\"do not match … not copied\": stray files among the recordings (a .txt, names with too few parts or an impossible date) are listed, never copied".to_string());
    }
    if quirks.broken_sessions {
        lines.push("session files: a document cut in half, one without \"id\" and one whose \"created_at\" is a number are quarantined whole, with the JSON pointer at fault; a participant whose \"connected_at\" is \"yesterday\" is set aside alone; a session's older version arriving after its rewrite is \"stale\" and changes nothing".to_string());
    }
    if quirks.bom_crlf {
        lines.push(
            "the CSVs start with a byte-order mark and end their lines with CRLF: read as they are"
                .to_string(),
        );
    }
    if lines.is_empty() {
        return;
    }
    crate::out!(
        "demo: the drop has the provider's known quirks, planted on purpose; the warnings above are expected:"
    );
    for line in lines {
        crate::out!("  - {line}");
    }
}

/// Every batch of every Parquet file under `folder`.
fn batches(folder: &Path) -> anyhow::Result<Vec<RecordBatch>> {
    let mut found = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                for batch in ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path)?)?
                    .build()?
                {
                    found.push(batch?);
                }
            }
        }
    }
    Ok(found)
}

/// The top-line answers, all from the normalized `calls` dataset (so they read the
/// same for any provider): calls by outcome, busiest hour, top agents of queue calls,
/// and the missed inbound callers nobody has spoken to since.
fn answers(data: &Path) -> anyhow::Result<()> {
    let mut calls = 0u64;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_hour = [0u64; 24];
    let mut agents: BTreeMap<String, u64> = BTreeMap::new();
    // Per outside number: its last missed inbound call, and its last answered one.
    let mut missed: BTreeMap<String, i64> = BTreeMap::new();
    let mut spoken: BTreeMap<String, i64> = BTreeMap::new();
    for batch in batches(&data.join(calls::DATASET))? {
        let text = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>());
        let (Some(outcome), Some(direction), Some(from), Some(to), Some(queue), Some(agent)) = (
            text("outcome"),
            text("direction"),
            text("from_number"),
            text("to_number"),
            text("queue_id"),
            text("agent_id"),
        ) else {
            continue;
        };
        let times = batch
            .column_by_name("started_at")
            .expect("started_at")
            .as_primitive::<TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            calls += 1;
            let (ended, started) = (outcome.value(row), times.value(row));
            *outcomes.entry(ended.to_string()).or_default() += 1;
            if let Some(time) = DateTime::from_timestamp_micros(started) {
                per_hour[time.hour() as usize] += 1;
            }
            let answered = ended == "answered";
            if let (true, Some(_), Some(agent)) = (answered, value(queue, row), value(agent, row)) {
                *agents.entry(agent.to_string()).or_default() += 1;
            }
            let number = match value(direction, row) {
                Some("inbound") => value(from, row),
                Some("outbound") => value(to, row),
                _ => None,
            };
            let Some(number) = number.filter(|n| {
                n.len() >= 5
                    && n.trim_start_matches('+')
                        .bytes()
                        .all(|b| b.is_ascii_digit())
            }) else {
                continue;
            };
            let last = if answered {
                &mut spoken
            } else if value(direction, row) == Some("inbound") {
                &mut missed
            } else {
                continue;
            };
            let at = last.entry(number.to_string()).or_insert(started);
            *at = (*at).max(started);
        }
    }
    let (busiest, busiest_calls) = per_hour
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map_or((0, 0), |(h, n)| (h, *n));
    let mut top: Vec<(String, u64)> = agents.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = top
        .iter()
        .take(3)
        .map(|(agent, n)| format!("{agent} ({n} calls)"))
        .collect();
    let answered = outcomes.get("answered").copied().unwrap_or(0);
    let mut by_outcome: Vec<(String, u64)> = outcomes.into_iter().collect();
    by_outcome.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let by_outcome: Vec<String> = by_outcome.iter().map(|(o, n)| format!("{o} {n}")).collect();
    let call_back = missed
        .iter()
        .filter(|(number, at)| spoken.get(*number).is_none_or(|talked| talked < *at))
        .count();
    crate::out!(
        "answers: {calls} calls (from calls/), {:.1} % answered; by outcome: {}",
        100.0 * answered as f64 / calls.max(1) as f64,
        by_outcome.join(", ")
    );
    crate::out!(
        "answers: busiest hour {busiest:02}:00-{busiest:02}:59 UTC with {busiest_calls} calls over the week"
    );
    crate::out!(
        "answers: agents who took the most queue calls: {}",
        top.join(", ")
    );
    crate::out!(
        "answers: {call_back} callers missed and not spoken to since: to call back (examples/queries/missed_and_abandoned.sql lists them)"
    );
    session_answers(data)
}

/// Sessions per status, from the contact-center session files: one row per session,
/// its newest version.
fn session_answers(data: &Path) -> anyhow::Result<()> {
    let (sessions, by_status) = count_by(&data.join("sessions"), "status")?;
    crate::out!("answers: {sessions} contact-center sessions by status: {by_status}");
    Ok(())
}

/// Rows of the dataset in `folder` per value of `column`, the five most common shown.
fn count_by(folder: &Path, column: &str) -> anyhow::Result<(u64, String)> {
    let mut per_value: BTreeMap<String, u64> = BTreeMap::new();
    for batch in batches(folder)? {
        let values = batch
            .column_by_name(column)
            .ok_or_else(|| anyhow::anyhow!("{} has no column {column}", folder.display()))?
            .as_string::<i32>();
        for row in 0..batch.num_rows() {
            let value = if values.is_valid(row) {
                values.value(row)
            } else {
                "(no name)"
            };
            *per_value.entry(value.to_string()).or_default() += 1;
        }
    }
    let rows: u64 = per_value.values().sum();
    let mut counts: Vec<(String, u64)> = per_value.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(value, n)| format!("{value} {n}"))
        .collect();
    let rest: u64 = counts.iter().skip(5).map(|(_, n)| n).sum();
    let rest = if rest > 0 {
        format!(", {rest} in {} other values", counts.len() - 5)
    } else {
        String::new()
    };
    Ok((rows, format!("{}{rest}", shown.join(", "))))
}

/// The token the demo's push endpoint takes.
const PUSH_TOKEN: &str = "demo-push-token";

/// The push endpoint: the week's pushed records posted to `serve` on a loopback port as
/// the provider would (in its three formats, some sent twice, some bodies malformed),
/// then compacted into `push_cdr/` when it stops. Returns the records acknowledged.
async fn push(ctx: &Context, drop: &Path, days: &[NaiveDate]) -> anyhow::Result<usize> {
    let listener = crate::http::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = serve::App::new(
        ctx.settings.clone(),
        Arc::clone(&ctx.store),
        PUSH_TOKEN,
        None,
    );
    let (shutdown, trigger) = Shutdown::new(Duration::from_secs(10));
    let server = tokio::spawn(serve::run(app, listener, None, shutdown));
    let mut lines = Vec::new();
    for day in days {
        let text = std::fs::read_to_string(drop.join(push_path(*day)))?;
        lines.extend(text.lines().map(str::to_string));
    }
    let started = Instant::now();
    let mut options = Replay::new(&base, PUSH_TOKEN);
    options.concurrency = 32;
    // One malformed body of each format: each is a warning line of its own.
    options.bad_every = lines.len() / 3;
    let replayed = replay(&lines, &options)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    trigger.request();
    server.await??;
    crate::out!(
        "demo: {} pushed call records posted to `serve` on {base} in JSON, XML-RPC and form bodies ({} of them sent twice, {} malformed bodies refused with err 1 and set aside: the warnings above) in {:.1} s: {} acknowledged, {} given up",
        lines.len(),
        replayed.resends,
        replayed.bad_refused,
        started.elapsed().as_secs_f64(),
        replayed.acknowledged.len(),
        replayed.given_up.len()
    );
    Ok(replayed.acknowledged.len())
}

/// Pushed calls per status: one row per record acknowledged, however often it was sent.
fn push_answers(data: &Path, acknowledged: usize) -> anyhow::Result<()> {
    let (rows, by_status) = count_by(&data.join("push_cdr"), "status")?;
    crate::out!(
        "answers: {rows} pushed calls in push_cdr for {acknowledged} acknowledged records, by status: {by_status}"
    );
    Ok(())
}

/// A text column's value, `None` when NULL.
fn value(column: &arrow_array::StringArray, row: usize) -> Option<&str> {
    column.is_valid(row).then(|| column.value(row))
}
