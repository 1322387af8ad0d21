//! The status page: what `status` shows, as one self-contained HTML file for people to
//! look at (`cdr-ingest status --html FILE`, and the daemon serves the same
//! [`render`]). A calendar of days × feeds coloured by state, counts and the reason on
//! hover, the last pass and its totals, a legend. Inline CSS, no script, nothing
//! fetched: it opens from a disk, an e-mail or an air-gapped network alike.
//!
//! [`page`] is a pure function of the status, so it is tested without a destination;
//! every text that comes from outside (file names, reasons, the destination) is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::pipeline::Context;
use crate::sink::destination;
use crate::state::json::StateError;
use crate::state::runs::{RunRecord, UnitState};
use crate::status::{self, Row, Standing, Status};

/// The page of each account's `window` of days (of the destination alone, in a
/// configuration without accounts), from the destination and the clock.
pub async fn render(
    accounts: &[Context],
    now: DateTime<Utc>,
    window: &status::Window<'_>,
) -> Result<String, StateError> {
    let mut statuses = Vec::new();
    for ctx in accounts {
        statuses.push(status::collect(ctx, now, &window(ctx)).await?);
    }
    Ok(page_of(accounts, now, &statuses))
}

/// [`page`] of the one destination, or [`accounts_page`] of the accounts, given the
/// status of each.
pub fn page_of(accounts: &[Context], now: DateTime<Utc>, statuses: &[Status]) -> String {
    match (accounts, statuses) {
        ([ctx], [status]) if ctx.settings.account.is_none() => page(
            &destination::redact(&ctx.settings.destination.url),
            now,
            status,
        ),
        _ => {
            let named: Vec<Named> = accounts
                .iter()
                .zip(statuses)
                .map(|(ctx, status)| Named {
                    name: status::account_name(ctx),
                    destination: destination::redact(&ctx.settings.destination.url),
                    status,
                })
                .collect();
            accounts_page(&status::shared_destination(&accounts[0]), now, &named)
        }
    }
}

/// Every state a cell can show, in the legend's order, with its colours (background,
/// text) and what it means. Each state also has a word in its cell, so the page does
/// not rely on colour alone.
const STATES: [(UnitState, &str, &str, &str); 10] = [
    (
        UnitState::Ingested,
        "#b2f2bb",
        "#0b4f1c",
        "in the destination",
    ),
    (
        UnitState::Unchanged,
        "#b2f2bb",
        "#0b4f1c",
        "already in; nothing transferred",
    ),
    (
        UnitState::NotDue,
        "#f1f3f5",
        "#495057",
        "not due yet (before the drop time)",
    ),
    (
        UnitState::Late,
        "#ffec99",
        "#5c4700",
        "missing after the drop time; tried again on the next pass",
    ),
    (
        UnitState::Overdue,
        "#ffa94d",
        "#4a1d00",
        "missing for too long: needs attention",
    ),
    (
        UnitState::Failed,
        "#e03131",
        "#ffffff",
        "the last try failed: needs attention (reason on hover)",
    ),
    (
        UnitState::Busy,
        "#a5d8ff",
        "#0b3d66",
        "another worker held it",
    ),
    (
        UnitState::Expired,
        "#adb5bd",
        "#212529",
        "older than the retention limit, or removed by retention",
    ),
    (
        UnitState::Stopped,
        "#d0bfff",
        "#35206b",
        "the pass was stopped before it",
    ),
    (
        UnitState::NotTried,
        "#eebefa",
        "#5f1d6b",
        "the source could not be opened",
    ),
];

/// The word in a cell that has no counts.
fn word(state: UnitState) -> &'static str {
    match state {
        UnitState::NotDue => "not due",
        UnitState::NotTried => "not tried",
        other => other.as_str(),
    }
}

/// `text` made safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators: `12,345`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "
:root { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #212529; }
body { margin: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: #495057; margin: 0 0 12px; }
.standing { display: inline-block; padding: 6px 12px; border-radius: 4px; font-weight: 600; }
.standing.well { background: #d3f9d8; color: #0b4f1c; }
.standing.attention { background: #e03131; color: #fff; }
table { border-collapse: collapse; }
.pass td, .pass th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
.pass th { color: #495057; font-weight: normal; }
.cal th, .cal td { border: 1px solid #fff; padding: 4px 10px; }
.cal thead th { background: #343a40; color: #fff; font-weight: 600; }
.cal th.day { text-align: left; font-weight: normal; white-space: nowrap; background: #f8f9fa; }
.cal tr.month th { text-align: left; background: #dee2e6; font-weight: 600; }
.main { display: flex; flex-wrap: wrap; gap: 0 40px; align-items: flex-start; }
aside { flex: 1; min-width: 320px; max-width: 620px; }
.cal td { min-width: 110px; height: 32px; font-size: 13px; text-align: center; vertical-align: middle; white-space: nowrap; cursor: default; }
.cal td small { opacity: .8; }
.cal tfoot th, .cal tfoot td { background: #f8f9fa; font-weight: 600; }
.problems { padding-left: 18px; font-size: 14px; }
.problems li { margin: 4px 0; overflow-wrap: anywhere; }
.legend { padding: 0; list-style: none; font-size: 13px; }
.legend li { margin: 3px 0; }
.legend span.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 6px; border: 1px solid #ced4da; }
code { font-size: 12px; }
";

/// The whole page of `status`, as of `now`, for the destination named `destination`.
pub fn page(destination: &str, now: DateTime<Utc>, status: &Status) -> String {
    let mut html = String::with_capacity(4096 + status.days.len() * 200);
    head(&mut html, destination);
    body(
        &mut html,
        "<h1>cdr-ingest status</h1>",
        destination,
        now,
        status,
    );
    html.push_str("</body></html>\n");
    html
}

/// One account's status on the accounts page.
pub struct Named<'a> {
    pub name: &'a str,
    /// Its destination (the shared one under its prefix).
    pub destination: String,
    pub status: &'a Status,
}

/// The page of several accounts (`[[accounts]]`): a line per account (its last pass
/// and what needs attention, linked to its part), then each account's status as
/// [`page`] shows one, headed by its name; `destination` is the shared one.
pub fn accounts_page(destination: &str, now: DateTime<Utc>, accounts: &[Named<'_>]) -> String {
    let mut html = String::with_capacity(4096 + accounts.len() * 8192);
    head(&mut html, destination);
    let _ = write!(
        html,
        "<h1>cdr-ingest status</h1>\n<p class=\"sub\">{dest} · {n} accounts · as of {now} UTC</p>\n<table class=\"pass\"><tr><th>account</th><th>last pass</th><th>overdue or failed</th></tr>\n",
        dest = escape(destination),
        n = accounts.len(),
        now = now.format("%Y-%m-%d %H:%M")
    );
    for Named { name, status, .. } in accounts {
        let (class, last) = match &status.last_pass {
            Some(run) => (
                match run.outcome.as_str() {
                    "ok" => "s-ingested",
                    "failed" => "s-failed",
                    _ => "s-stopped",
                },
                run.outcome.as_str(),
            ),
            None => ("s-not_due", "none yet"),
        };
        let bad = status.days.iter().filter(|r| r.state.is_bad()).count();
        let _ = writeln!(
            html,
            "<tr><th><a href=\"#account-{name}\">{name}</a></th><td><span class=\"{class}\">&nbsp;{last}&nbsp;</span></td><td>{bad}</td></tr>",
            name = escape(name)
        );
    }
    html.push_str("</table>\n");
    for Named {
        name,
        destination,
        status,
    } in accounts
    {
        let heading = format!(
            "<h1 id=\"account-{name}\">account {name}</h1>",
            name = escape(name)
        );
        body(&mut html, &heading, destination, now, status);
    }
    html.push_str("</body></html>\n");
    html
}

/// The document's head, its style and the opening of its body.
fn head(html: &mut String, destination: &str) {
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>cdr-ingest status: {dest}</title><style>{STYLE}",
        dest = escape(destination)
    );
    for (state, background, text, _) in STATES {
        let _ = writeln!(
            html,
            ".s-{} {{ background: {background}; color: {text}; }}",
            state.as_str()
        );
    }
    // Expired days are also hatched, so they read as "gone" in grey print too.
    html.push_str(
        ".s-expired { background-image: repeating-linear-gradient(45deg, transparent 0 6px, rgba(255,255,255,.45) 6px 9px); }\n",
    );
    html.push_str("</style></head><body>\n");
}

/// One destination's (or account's) status: what needs attention, the calendar, the
/// last pass.
fn body(html: &mut String, heading: &str, destination: &str, now: DateTime<Utc>, status: &Status) {
    let mut categories: Vec<&str> = Vec::new();
    let mut days: BTreeMap<NaiveDate, Vec<&Row>> = BTreeMap::new();
    for row in &status.days {
        if !categories.contains(&row.category.as_str()) {
            categories.push(&row.category);
        }
        days.entry(row.day).or_default().push(row);
    }
    let range = match (days.keys().next(), days.keys().next_back()) {
        (Some(first), Some(last)) => format!("{} days, {first} to {last}", days.len()),
        _ => "no days".to_string(),
    };
    let _ = write!(
        html,
        "{heading}\n<p class=\"sub\">{dest} · {range} · as of {now} UTC</p>\n",
        dest = escape(destination),
        now = now.format("%Y-%m-%d %H:%M")
    );
    let bad: Vec<&Row> = status.days.iter().filter(|r| r.state.is_bad()).collect();
    match status.standing() {
        Standing::AllWell => {
            html.push_str("<p class=\"standing well\">All well: nothing overdue or failed</p>\n")
        }
        Standing::NeedsAttention => {
            let _ = writeln!(
                html,
                "<p class=\"standing attention\">Needs attention: {} overdue or failed</p>",
                bad.len()
            );
        }
    }
    // The calendar first (left), what explains it beside it: on a laptop's screen the
    // days are what one opens the page for.
    html.push_str("<div class=\"main\"><section>\n");
    calendar(html, &categories, &days);
    html.push_str("</section>\n<aside>\n");
    last_pass(html, status.last_pass.as_ref());
    if !bad.is_empty() {
        html.push_str("<h2>Needs attention</h2>\n<ul class=\"problems\">\n");
        for row in &bad {
            let _ = writeln!(
                html,
                "<li><b>{} {}</b>: {}: {}</li>",
                row.day,
                escape(&row.category),
                row.state,
                escape(row.detail.as_deref().unwrap_or(""))
            );
        }
        html.push_str("</ul>\n");
    }
    html.push_str("<h2>Legend</h2>\n<ul class=\"legend\">\n");
    for (state, _, _, meaning) in STATES {
        let _ = writeln!(
            html,
            "<li><span class=\"swatch s-{}\"></span><b>{}</b>: {meaning}</li>",
            state.as_str(),
            word(state)
        );
    }
    html.push_str(
        "</ul>\n<p class=\"sub\">A cell shows the rows written (files copied, for recordings) and the rows quarantined; hover over it for the details or the reason. Written by <code>cdr-ingest status --html</code>.</p>\n</aside></div>\n",
    );
}

/// When the last pass ran, how it ended, and how many files ended how.
fn last_pass(html: &mut String, last: Option<&RunRecord>) {
    html.push_str("<h2>Last pass</h2>\n");
    let Some(run) = last else {
        html.push_str("<p>None recorded yet.</p>\n");
        return;
    };
    let took = (run.finished - run.started).num_milliseconds().max(0) as f64 / 1000.0;
    let outcome = match run.outcome.as_str() {
        "ok" => "s-ingested",
        "failed" => "s-failed",
        _ => "s-stopped",
    };
    let mut totals: Vec<(UnitState, usize)> = Vec::new();
    for file in &run.files {
        match totals.iter_mut().find(|(state, _)| *state == file.outcome) {
            Some((_, n)) => *n += 1,
            None => totals.push((file.outcome, 1)),
        }
    }
    totals.sort_by_key(|(state, _)| STATES.iter().position(|(s, ..)| s == state));
    let totals: Vec<String> = totals
        .iter()
        .map(|(state, n)| {
            format!(
                "<span class=\"s-{}\">&nbsp;{n} {}&nbsp;</span>",
                state.as_str(),
                word(*state)
            )
        })
        .collect();
    let _ = writeln!(
        html,
        "<table class=\"pass\"><tr><th>mode</th><td>{mode}</td></tr>\
         <tr><th>started</th><td>{started} UTC</td></tr>\
         <tr><th>finished</th><td>{finished} UTC ({took:.1} s)</td></tr>\
         <tr><th>outcome</th><td><span class=\"{outcome}\">&nbsp;{outcome_word}&nbsp;</span></td></tr>\
         <tr><th>files</th><td>{files} {totals}</td></tr></table>",
        mode = escape(&run.mode),
        started = run.started.format("%Y-%m-%d %H:%M:%S"),
        finished = run.finished.format("%Y-%m-%d %H:%M:%S"),
        outcome_word = run.outcome,
        files = run.files.len(),
        totals = if totals.is_empty() {
            "(none)".to_string()
        } else {
            format!("· {}", totals.join(" "))
        },
    );
}

/// One row per day (newest first, a heading per month), one cell per feed.
fn calendar(html: &mut String, categories: &[&str], days: &BTreeMap<NaiveDate, Vec<&Row>>) {
    html.push_str("<h2>Days</h2>\n<table class=\"cal\"><thead><tr><th>day</th>");
    for category in categories {
        let _ = write!(html, "<th>{}</th>", escape(category));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    let mut month = None;
    let mut totals = vec![(0u64, 0u64); categories.len()];
    for (day, rows) in days.iter().rev() {
        if month != Some((day.year(), day.month())) {
            month = Some((day.year(), day.month()));
            let _ = writeln!(
                html,
                "<tr class=\"month\"><th colspan=\"{}\">{}</th></tr>",
                categories.len() + 1,
                day.format("%B %Y")
            );
        }
        let _ = write!(
            html,
            "<tr><th class=\"day\">{} {}</th>",
            day.format("%a"),
            day
        );
        for (i, category) in categories.iter().enumerate() {
            match rows.iter().find(|r| r.category == *category) {
                Some(row) => {
                    totals[i].0 += row.rows.unwrap_or(0);
                    totals[i].1 += row.quarantined.unwrap_or(0);
                    cell(html, row);
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n<tfoot><tr><th class=\"day\">total</th>");
    for (rows, quarantined) in totals {
        let _ = write!(html, "<td>{}", count(rows));
        if quarantined > 0 {
            let _ = write!(
                html,
                "<br><small>{} quarantined</small>",
                count(quarantined)
            );
        }
        html.push_str("</td>");
    }
    html.push_str("</tr></tfoot></table>\n");
}

fn cell(html: &mut String, row: &Row) {
    let mut title = format!("{} {}: {}", row.day, row.category, row.state);
    if let Some(rows) = row.rows {
        let _ = write!(title, ", {} rows", count(rows));
    }
    if let Some(quarantined) = row.quarantined {
        let _ = write!(title, ", {} quarantined", count(quarantined));
    }
    if let Some(detail) = &row.detail {
        let _ = write!(title, "\n{detail}");
    }
    let text = match (row.state, row.rows) {
        (UnitState::Ingested | UnitState::Unchanged, Some(rows)) => {
            let quarantined = row.quarantined.unwrap_or(0);
            if quarantined > 0 {
                format!(
                    "{}<br><small>{} quarantined</small>",
                    count(rows),
                    count(quarantined)
                )
            } else {
                count(rows)
            }
        }
        (state, _) => word(state).to_string(),
    };
    let _ = write!(
        html,
        "<td class=\"cell s-{}\" title=\"{}\">{text}</td>",
        row.state.as_str(),
        escape(&title)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::runs::{FileRecord, PassOutcome};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn row(d: &str, category: &str, state: UnitState, detail: Option<&str>) -> Row {
        let ingested = matches!(state, UnitState::Ingested);
        Row {
            day: day(d),
            category: category.into(),
            state,
            rows: ingested.then_some(1234),
            quarantined: ingested.then_some(4),
            detail: detail.map(str::to_string),
        }
    }

    fn now() -> DateTime<Utc> {
        "2024-03-09T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_accounts_page_lists_each_account_and_links_its_part() {
        let failed = Status {
            last_pass: Some(RunRecord {
                format_version: 1,
                mode: "run".into(),
                started: now(),
                finished: now(),
                outcome: PassOutcome::Failed,
                files: Vec::new(),
            }),
            days: vec![row(
                "2024-03-08",
                "cdr",
                UnitState::NotTried,
                Some("530 Login incorrect"),
            )],
            pushed: Vec::new(),
        };
        let well = Status {
            last_pass: None,
            days: vec![row("2024-03-08", "cdr", UnitState::Ingested, None)],
            pushed: Vec::new(),
        };
        let html = accounts_page(
            "s3://b/p",
            now(),
            &[
                Named {
                    name: "north",
                    destination: "s3://b/p/account=north/".into(),
                    status: &well,
                },
                Named {
                    name: "south",
                    destination: "s3://b/p/account=south/".into(),
                    status: &failed,
                },
            ],
        );
        assert!(html.contains("2 accounts"), "{html}");
        for name in ["north", "south"] {
            assert!(html.contains(&format!("<a href=\"#account-{name}\">{name}</a>")));
            assert!(html.contains(&format!("id=\"account-{name}\"")));
            assert!(html.contains(&format!("s3://b/p/account={name}/")));
        }
        assert!(html.contains("<span class=\"s-failed\">&nbsp;failed&nbsp;</span>"));
        assert!(html.ends_with("</body></html>\n"));
    }

    #[test]
    fn one_cell_per_day_and_feed_newest_first() {
        let mut days = Vec::new();
        for d in ["2024-02-28", "2024-02-29", "2024-03-01"] {
            for category in ["cdr", "queue", "recordings"] {
                days.push(row(d, category, UnitState::Ingested, None));
            }
        }
        let html = page(
            "file:///data",
            now(),
            &Status {
                pushed: Vec::new(),
                last_pass: None,
                days,
            },
        );
        assert_eq!(html.matches("<td class=\"cell ").count(), 9);
        assert_eq!(html.matches("<th class=\"day\">").count(), 3 + 1);
        assert!(html.contains("<th>cdr</th><th>queue</th><th>recordings</th>"));
        let (march, february) = (
            html.find("March 2024").unwrap(),
            html.find("February 2024").unwrap(),
        );
        assert!(march < february);
        assert!(html.find("2024-03-01</th>").unwrap() < html.find("2024-02-29</th>").unwrap());
        assert!(html.contains("1,234<br><small>4 quarantined</small>"));
        // The totals per feed.
        assert!(html.contains("<td>3,702<br><small>12 quarantined</small></td>"));
        assert!(html.contains("All well"));
        assert!(html.contains("None recorded yet"));
    }

    #[test]
    fn each_state_has_its_colour_its_word_and_a_legend_entry() {
        let days: Vec<Row> = STATES
            .iter()
            .map(|(state, ..)| row("2024-03-01", state.as_str(), *state, None))
            .collect();
        let html = page(
            "s3://bucket/cdr",
            now(),
            &Status {
                pushed: Vec::new(),
                last_pass: None,
                days,
            },
        );
        for (state, background, text, _) in STATES {
            let name = state.as_str();
            assert!(
                html.contains(&format!(
                    ".s-{name} {{ background: {background}; color: {text}; }}"
                )),
                "{name}"
            );
            assert!(
                html.contains(&format!(
                    "<td class=\"cell s-{name}\" title=\"2024-03-01 {name}: {name}"
                )),
                "{name}"
            );
            assert!(html.contains(&format!(
                "<span class=\"swatch s-{name}\"></span><b>{}</b>",
                word(state)
            )));
        }
        let colours: std::collections::HashSet<&str> = STATES
            .iter()
            .filter(|(s, ..)| *s != UnitState::Unchanged)
            .map(|(_, background, ..)| *background)
            .collect();
        assert_eq!(colours.len(), STATES.len() - 1, "states share a colour");
        assert!(html.contains("Needs attention: 2 overdue or failed"));
    }

    #[test]
    fn every_outside_text_is_escaped() {
        let reason = "CDRs/<b>x</b>&\"y'.csv: the header has no <script>alert(1)</script> column";
        let days = vec![row("2024-03-01", "cdr", UnitState::Failed, Some(reason))];
        let last = RunRecord {
            format_version: 1,
            mode: "run<i>".into(),
            started: "2024-03-09T01:15:00Z".parse().unwrap(),
            finished: "2024-03-09T01:15:04Z".parse().unwrap(),
            outcome: PassOutcome::Failed,
            files: vec![FileRecord {
                day: day("2024-03-01"),
                category: "cdr".into(),
                outcome: UnitState::Failed,
                detail: Some(reason.into()),
            }],
        };
        let html = page(
            "file:///data/<dest>",
            now(),
            &Status {
                pushed: Vec::new(),
                last_pass: Some(last),
                days,
            },
        );
        assert!(
            !html.contains("<script>") && !html.contains("<b>x</b>") && !html.contains("run<i>")
        );
        assert!(!html.contains("<dest>"));
        assert!(html.contains(
            "CDRs/&lt;b&gt;x&lt;/b&gt;&amp;&quot;y&#39;.csv: the header has no &lt;script&gt;alert(1)&lt;/script&gt; column"
        ));
        // The reason is on hover and in the list of what needs attention.
        assert!(html.contains("title=\"2024-03-01 cdr: failed\nCDRs/&lt;b&gt;"));
        assert!(html.contains("<li><b>2024-03-01 cdr</b>: failed: CDRs/&lt;b&gt;"));
        assert!(html.contains("(4.0 s)"));
        assert!(html.contains("1 failed"));
        // Nothing is fetched and nothing runs.
        assert!(
            !html.contains("<script") && !html.contains("http://") && !html.contains("https://")
        );
        assert!(!html.contains("<link") && !html.contains("src="));
    }

    #[test]
    fn escape_and_count() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
    }
}
