//! Prometheus metrics of the passes: each pass's [`PassReport`] is added into
//! [`Metrics`] (counters and gauges per feed, and of the passes themselves), which
//! renders the Prometheus text format (version 0.0.4) for the daemon's `/metrics`, a
//! Pushgateway or a node-exporter textfile ([`export`]).
//!
//! The format is written by hand: it is a few lines of `# HELP`, `# TYPE` and
//! samples, and a crate would buy little beyond the escaping done here.

pub mod export;
pub mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::model::Category;
use crate::pipeline::{FileOutcome, PassReport};
use crate::report;
use crate::state::runs::{PassOutcome, UnitState};

/// The content type of the text format, for HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a file can end as in a pass, as the `outcome` label of `cdr_ingest_files_total`:
/// the states `status` shows, and `pending` for a listed feed's file still being written.
const FILE_OUTCOMES: [&str; 9] = [
    "ingested",
    "unchanged",
    "not_due",
    "late",
    "overdue",
    "failed",
    "busy",
    "expired",
    "pending",
];

const PASS_OUTCOMES: [PassOutcome; 3] =
    [PassOutcome::Ok, PassOutcome::Failed, PassOutcome::Stopped];

/// The last pass that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastPass {
    pub finished: DateTime<Utc>,
    pub outcome: PassOutcome,
    pub seconds: f64,
}

/// One feed's numbers, summed over the passes recorded (gauges: as the last pass left them).
#[derive(Debug, Clone)]
struct FeedMetrics {
    category: Category,
    files: BTreeMap<&'static str, u64>,
    rows: u64,
    quarantined: u64,
    duplicates: u64,
    calls_unmapped: u64,
    bytes: u64,
    transfer_seconds: f64,
    overdue_files: u64,
    last_success: Option<DateTime<Utc>>,
}

/// Everything the passes of this process (or one `run`) have told.
#[derive(Debug, Clone)]
pub struct Metrics {
    feeds: Vec<FeedMetrics>,
    passes: BTreeMap<&'static str, u64>,
    last_pass: Option<LastPass>,
    last_ok: Option<DateTime<Utc>>,
}

impl Metrics {
    /// No pass yet, for the feeds ingested (`ingest.categories`, in the registry's order).
    pub fn new(categories: &[Category]) -> Self {
        Metrics {
            feeds: categories
                .iter()
                .map(|&category| FeedMetrics {
                    category,
                    files: FILE_OUTCOMES.iter().map(|o| (*o, 0)).collect(),
                    rows: 0,
                    quarantined: 0,
                    duplicates: 0,
                    calls_unmapped: 0,
                    bytes: 0,
                    transfer_seconds: 0.0,
                    overdue_files: 0,
                    last_success: None,
                })
                .collect(),
            passes: PASS_OUTCOMES.iter().map(|o| (o.as_str(), 0)).collect(),
            last_pass: None,
            last_ok: None,
        }
    }

    pub fn last_pass(&self) -> Option<LastPass> {
        self.last_pass
    }

    /// When the last pass that succeeded (outcome `ok`) ended.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.last_ok
    }

    /// Adds one pass. A feed's last success is the end of the last pass that was not
    /// stopped and in which none of its files failed or was overdue; `cdr_ingest_overdue_files` is
    /// as the last pass that was not stopped left it.
    pub fn record(
        &mut self,
        report: &PassReport,
        outcome: PassOutcome,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) {
        self.record_all(std::slice::from_ref(report), outcome, started, finished);
    }

    /// Counts one pass of several accounts (`reports`, one each) that ended as
    /// `outcome` as a whole: a feed's last success needs it to succeed in every account.
    pub fn record_all(
        &mut self,
        reports: &[PassReport],
        outcome: PassOutcome,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) {
        *self.passes.entry(outcome.as_str()).or_default() += 1;
        self.last_pass = Some(LastPass {
            finished,
            outcome,
            seconds: (finished - started).num_milliseconds().max(0) as f64 / 1000.0,
        });
        if outcome == PassOutcome::Ok {
            self.last_ok = Some(finished);
        }
        let mut failed = BTreeSet::new();
        let mut overdue: BTreeMap<Category, u64> = BTreeMap::new();
        for report in reports {
            for file in &report.files {
                let Some(feed) = self.feed_mut(file.category) else {
                    continue;
                };
                let state = report::unit_state(&file.result);
                feed.count(state.as_str(), 1);
                if let Ok(FileOutcome::Ingested(i)) = &file.result {
                    feed.rows += i.rows_written;
                    feed.quarantined += i.rows_rejected;
                    feed.duplicates += i.duplicates_dropped;
                    feed.bytes += i.bytes;
                    feed.transfer_seconds += i.phases.transfer_ms as f64 / 1000.0;
                }
                if state.is_bad() {
                    failed.insert(file.category);
                }
                if state == UnitState::Overdue {
                    *overdue.entry(file.category).or_default() += 1;
                }
            }
            if let Some(Ok(rebuilt)) = &report.calls {
                for (name, unmapped) in &rebuilt.unmapped_by_feed {
                    if let Some(feed) = self.feeds.iter_mut().find(|f| f.category.as_str() == *name)
                    {
                        feed.calls_unmapped += unmapped;
                    }
                }
            }
            for (category, copied) in &report.listed {
                let Some(feed) = self.feed_mut(*category) else {
                    continue;
                };
                match copied {
                    Ok(r) => {
                        feed.count("ingested", r.copied);
                        feed.count("unchanged", r.already);
                        feed.count("pending", r.pending);
                        feed.count("failed", r.failures.len() as u64);
                        feed.bytes += r.bytes;
                        feed.transfer_seconds += r.copy_ms as f64 / 1000.0;
                        if !r.failures.is_empty() {
                            failed.insert(*category);
                        }
                    }
                    Err(_) => {
                        feed.count("failed", 1);
                        failed.insert(*category);
                    }
                }
            }
            // The source could not be opened: no feed's files of those days were tried.
            if report.source_error.is_some() {
                for feed in &mut self.feeds {
                    feed.count("failed", report.not_tried.len() as u64);
                    failed.insert(feed.category);
                }
            }
        }
        if !reports.iter().any(|r| r.stopped) {
            for feed in &mut self.feeds {
                feed.overdue_files = overdue.get(&feed.category).copied().unwrap_or(0);
                if !failed.contains(&feed.category) {
                    feed.last_success = Some(finished);
                }
            }
        }
    }

    /// Takes each feed's last success from `previous` (text this module rendered, e.g.
    /// the textfile a `run` before this one wrote) where this process has none: a `run`
    /// is one pass, and a feed that fails in it keeps the success before.
    pub fn carry_over(&mut self, previous: &str) {
        let prefix = format!("{LAST_SUCCESS}{{feed=\"");
        for line in previous.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((name, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let Ok(seconds) = value.trim().parse::<f64>() else {
                continue;
            };
            let Some(when) = DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
            else {
                continue;
            };
            if let Some(feed) = self.feeds.iter_mut().find(|f| f.category.as_str() == name) {
                feed.last_success.get_or_insert(when);
            }
        }
    }

    fn feed_mut(&mut self, category: Category) -> Option<&mut FeedMetrics> {
        self.feeds.iter_mut().find(|f| f.category == category)
    }

    /// Everything, in the text format.
    pub fn render(&self) -> String {
        render(&self.families(None))
    }

    /// The families of the passes themselves (no `feed` label).
    pub fn render_passes(&self) -> String {
        render(
            &self
                .families(None)
                .into_iter()
                .filter(|f| !f.per_feed)
                .collect::<Vec<_>>(),
        )
    }

    /// One feed's families.
    pub fn render_feed(&self, category: Category) -> String {
        render(
            &self
                .families(Some(category))
                .into_iter()
                .filter(|f| f.per_feed)
                .collect::<Vec<_>>(),
        )
    }

    /// The feeds these metrics are about.
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        self.feeds.iter().map(|f| f.category)
    }

    /// Every family, its samples limited to one feed's if `only` is given.
    fn families(&self, only: Option<Category>) -> Vec<Family> {
        let feeds: Vec<&FeedMetrics> = self
            .feeds
            .iter()
            .filter(|f| only.is_none_or(|c| c == f.category))
            .collect();
        let per_feed =
            |name: &'static str,
             help: &'static str,
             kind: Kind,
             value: &dyn Fn(&FeedMetrics) -> Option<Value>| Family {
                name,
                help,
                kind,
                per_feed: true,
                samples: feeds
                    .iter()
                    .filter_map(|f| {
                        value(f).map(|v| (vec![("feed", f.category.as_str().to_string())], v))
                    })
                    .collect(),
            };
        let mut families = vec![Family {
            name: "cdr_ingest_files_total",
            help: "Files by how a pass left them: ingested (a listed feed's: copied), unchanged, not_due, late, overdue, failed, busy (another worker had it), expired (retention), pending (still being written).",
            kind: Kind::Counter,
            per_feed: true,
            samples: feeds
                .iter()
                .flat_map(|f| {
                    f.files.iter().map(|(outcome, n)| {
                        (
                            vec![
                                ("feed", f.category.as_str().to_string()),
                                ("outcome", (*outcome).to_string()),
                            ],
                            Value::Int(*n),
                        )
                    })
                })
                .collect(),
        }];
        families.extend([
            per_feed(
                "cdr_ingest_rows_total",
                "Rows written to the destination.",
                Kind::Counter,
                &|f| Some(Value::Int(f.rows)),
            ),
            per_feed(
                "cdr_ingest_quarantined_rows_total",
                "Rows set aside in the quarantine.",
                Kind::Counter,
                &|f| Some(Value::Int(f.quarantined)),
            ),
            per_feed(
                "cdr_ingest_duplicates_dropped_total",
                "Repeated identical rows dropped.",
                Kind::Counter,
                &|f| Some(Value::Int(f.duplicates)),
            ),
            per_feed(
                "cdr_ingest_calls_unmapped_outcomes_total",
                "Calls written with outcome other: no mapping knows their code.",
                Kind::Counter,
                &|f| Some(Value::Int(f.calls_unmapped)),
            ),
            per_feed(
                "cdr_ingest_bytes_total",
                "Bytes transferred from the source.",
                Kind::Counter,
                &|f| Some(Value::Int(f.bytes)),
            ),
            per_feed(
                "cdr_ingest_transfer_seconds_total",
                "Seconds spent transferring files from the source.",
                Kind::Counter,
                &|f| Some(Value::Float(f.transfer_seconds)),
            ),
            per_feed(
                "cdr_ingest_overdue_files",
                "Files overdue (a daily feed: one a day, so the days overdue), as the last pass found them.",
                Kind::Gauge,
                &|f| Some(Value::Int(f.overdue_files)),
            ),
            per_feed(
                LAST_SUCCESS,
                "When (Unix time) the last pass in which none of the feed's files failed or was overdue ended.",
                Kind::Gauge,
                &|f| f.last_success.map(timestamp),
            ),
        ]);
        let last = self.last_pass;
        let pass = |name: &'static str, help: &'static str, value: Option<Value>| Family {
            name,
            help,
            kind: Kind::Gauge,
            per_feed: false,
            samples: value.map(|v| (Vec::new(), v)).into_iter().collect(),
        };
        families.extend([
            Family {
                name: "cdr_ingest_passes_total",
                help: "Passes by how they ended: ok, failed (a file failed or is overdue), stopped (by a signal).",
                kind: Kind::Counter,
                per_feed: false,
                samples: self
                    .passes
                    .iter()
                    .map(|(outcome, n)| (vec![("outcome", (*outcome).to_string())], Value::Int(*n)))
                    .collect(),
            },
            pass(
                "cdr_ingest_last_pass_timestamp_seconds",
                "When (Unix time) the last pass ended, however it went.",
                last.map(|l| timestamp(l.finished)),
            ),
            pass(
                "cdr_ingest_last_pass_success",
                "1 if the last pass ended ok, 0 if it failed or was stopped.",
                last.map(|l| Value::Int(u64::from(l.outcome == PassOutcome::Ok))),
            ),
            pass(
                "cdr_ingest_last_pass_duration_seconds",
                "How long the last pass took.",
                last.map(|l| Value::Float(l.seconds)),
            ),
        ]);
        families
    }
}

/// The per-feed gauge [`Metrics::carry_over`] reads back.
const LAST_SUCCESS: &str = "cdr_ingest_last_success_timestamp_seconds";

fn timestamp(when: DateTime<Utc>) -> Value {
    Value::Float(when.timestamp_millis() as f64 / 1000.0)
}

impl FeedMetrics {
    fn count(&mut self, outcome: &'static str, n: u64) {
        *self.files.entry(outcome).or_default() += n;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(u64),
    Float(f64),
}

/// One metric family: its name, help, type and samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    /// Its samples carry a `feed` label.
    per_feed: bool,
    samples: Vec<(Vec<(&'static str, String)>, Value)>,
}

/// The text format of `families`; a family without samples is left out whole, so a
/// Pushgateway keeps what it had of it.
fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {kind}", family.name);
        for (labels, value) in &family.samples {
            out.push_str(family.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(*value));
        }
    }
    out
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A help text: backslash and line feed escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(value: Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::Float(x) if x.is_nan() => "NaN".into(),
        Value::Float(x) if x == f64::INFINITY => "+Inf".into(),
        Value::Float(x) if x == f64::NEG_INFINITY => "-Inf".into(),
        // Rust's shortest round-trip form, never an exponent: "0.25", "1709251200.5".
        Value::Float(x) => x.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::feeds;
    use crate::pipeline::{CopyReport, FileReport, IngestError, Ingested, Phases};
    use crate::schedule::Due;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    /// A pass over two days: the CDRs of the 1st ingested, of the 2nd overdue; three
    /// recordings copied, one in already, one still being written.
    fn a_failed_pass() -> PassReport {
        let cdr = feeds::cdr::CATEGORY;
        PassReport {
            files: vec![
                FileReport {
                    day: day(1),
                    category: cdr,
                    result: Ok(FileOutcome::Ingested(Ingested {
                        path: "CDRs/2024-03-01.csv".into(),
                        bytes: 1000,
                        rows_written: 10,
                        rows_rejected: 2,
                        duplicates_dropped: 1,
                        replaced: false,
                        seconds: 2.0,
                        phases: Phases {
                            transfer_ms: 1500,
                            parse_ms: 100,
                            write_ms: 400,
                        },
                    })),
                },
                FileReport {
                    day: day(2),
                    category: cdr,
                    result: Ok(FileOutcome::NotThereYet {
                        path: "CDRs/2024-03-02.csv".into(),
                        due: Due::Overdue {
                            due: at("2024-03-03T01:00:00Z"),
                        },
                    }),
                },
            ],
            listed: vec![(
                feeds::recordings::CATEGORY,
                Ok(CopyReport {
                    listed: 6,
                    copied: 3,
                    bytes: 300,
                    already: 1,
                    pending: 1,
                    copy_ms: 250,
                    ..CopyReport::default()
                }),
            )],
            calls: Some(Ok(crate::calls::Rebuilt {
                calls: 10,
                unmapped: 3,
                unmapped_by_feed: [("cdr", 3)].into(),
                codes: ["ANSWERD".to_string()].into(),
            })),
            ..PassReport::default()
        }
    }

    fn two_feeds() -> Metrics {
        Metrics::new(&[feeds::cdr::CATEGORY, feeds::recordings::CATEGORY])
    }

    #[test]
    fn a_pass_renders_as_the_text_format() {
        let mut metrics = two_feeds();
        metrics.record(
            &a_failed_pass(),
            PassOutcome::Failed,
            at("2024-03-03T01:15:00Z"),
            at("2024-03-03T01:15:02.500Z"),
        );
        let expected = r#"# HELP cdr_ingest_files_total Files by how a pass left them: ingested (a listed feed's: copied), unchanged, not_due, late, overdue, failed, busy (another worker had it), expired (retention), pending (still being written).
# TYPE cdr_ingest_files_total counter
cdr_ingest_files_total{feed="cdr",outcome="busy"} 0
cdr_ingest_files_total{feed="cdr",outcome="expired"} 0
cdr_ingest_files_total{feed="cdr",outcome="failed"} 0
cdr_ingest_files_total{feed="cdr",outcome="ingested"} 1
cdr_ingest_files_total{feed="cdr",outcome="late"} 0
cdr_ingest_files_total{feed="cdr",outcome="not_due"} 0
cdr_ingest_files_total{feed="cdr",outcome="overdue"} 1
cdr_ingest_files_total{feed="cdr",outcome="pending"} 0
cdr_ingest_files_total{feed="cdr",outcome="unchanged"} 0
cdr_ingest_files_total{feed="recordings",outcome="busy"} 0
cdr_ingest_files_total{feed="recordings",outcome="expired"} 0
cdr_ingest_files_total{feed="recordings",outcome="failed"} 0
cdr_ingest_files_total{feed="recordings",outcome="ingested"} 3
cdr_ingest_files_total{feed="recordings",outcome="late"} 0
cdr_ingest_files_total{feed="recordings",outcome="not_due"} 0
cdr_ingest_files_total{feed="recordings",outcome="overdue"} 0
cdr_ingest_files_total{feed="recordings",outcome="pending"} 1
cdr_ingest_files_total{feed="recordings",outcome="unchanged"} 1
# HELP cdr_ingest_rows_total Rows written to the destination.
# TYPE cdr_ingest_rows_total counter
cdr_ingest_rows_total{feed="cdr"} 10
cdr_ingest_rows_total{feed="recordings"} 0
# HELP cdr_ingest_quarantined_rows_total Rows set aside in the quarantine.
# TYPE cdr_ingest_quarantined_rows_total counter
cdr_ingest_quarantined_rows_total{feed="cdr"} 2
cdr_ingest_quarantined_rows_total{feed="recordings"} 0
# HELP cdr_ingest_duplicates_dropped_total Repeated identical rows dropped.
# TYPE cdr_ingest_duplicates_dropped_total counter
cdr_ingest_duplicates_dropped_total{feed="cdr"} 1
cdr_ingest_duplicates_dropped_total{feed="recordings"} 0
# HELP cdr_ingest_calls_unmapped_outcomes_total Calls written with outcome other: no mapping knows their code.
# TYPE cdr_ingest_calls_unmapped_outcomes_total counter
cdr_ingest_calls_unmapped_outcomes_total{feed="cdr"} 3
cdr_ingest_calls_unmapped_outcomes_total{feed="recordings"} 0
# HELP cdr_ingest_bytes_total Bytes transferred from the source.
# TYPE cdr_ingest_bytes_total counter
cdr_ingest_bytes_total{feed="cdr"} 1000
cdr_ingest_bytes_total{feed="recordings"} 300
# HELP cdr_ingest_transfer_seconds_total Seconds spent transferring files from the source.
# TYPE cdr_ingest_transfer_seconds_total counter
cdr_ingest_transfer_seconds_total{feed="cdr"} 1.5
cdr_ingest_transfer_seconds_total{feed="recordings"} 0.25
# HELP cdr_ingest_overdue_files Files overdue (a daily feed: one a day, so the days overdue), as the last pass found them.
# TYPE cdr_ingest_overdue_files gauge
cdr_ingest_overdue_files{feed="cdr"} 1
cdr_ingest_overdue_files{feed="recordings"} 0
# HELP cdr_ingest_last_success_timestamp_seconds When (Unix time) the last pass in which none of the feed's files failed or was overdue ended.
# TYPE cdr_ingest_last_success_timestamp_seconds gauge
cdr_ingest_last_success_timestamp_seconds{feed="recordings"} 1709428502.5
# HELP cdr_ingest_passes_total Passes by how they ended: ok, failed (a file failed or is overdue), stopped (by a signal).
# TYPE cdr_ingest_passes_total counter
cdr_ingest_passes_total{outcome="failed"} 1
cdr_ingest_passes_total{outcome="ok"} 0
cdr_ingest_passes_total{outcome="stopped"} 0
# HELP cdr_ingest_last_pass_timestamp_seconds When (Unix time) the last pass ended, however it went.
# TYPE cdr_ingest_last_pass_timestamp_seconds gauge
cdr_ingest_last_pass_timestamp_seconds 1709428502.5
# HELP cdr_ingest_last_pass_success 1 if the last pass ended ok, 0 if it failed or was stopped.
# TYPE cdr_ingest_last_pass_success gauge
cdr_ingest_last_pass_success 0
# HELP cdr_ingest_last_pass_duration_seconds How long the last pass took.
# TYPE cdr_ingest_last_pass_duration_seconds gauge
cdr_ingest_last_pass_duration_seconds 2.5
"#;
        let text = metrics.render();
        for (got, want) in text.lines().zip(expected.lines()) {
            assert_eq!(got, want);
        }
        assert_eq!(text, expected);
        assert_eq!(metrics.last_success(), None);
    }

    #[test]
    fn counters_add_up_and_gauges_follow_the_last_pass_that_was_not_stopped() {
        let mut metrics = two_feeds();
        let first = at("2024-03-03T01:15:00Z");
        metrics.record(&a_failed_pass(), PassOutcome::Failed, first, first);
        let second = at("2024-03-04T01:15:00Z");
        let ok = PassReport::default();
        metrics.record(&ok, PassOutcome::Ok, second, second);
        let stopped = PassReport {
            files: vec![FileReport {
                day: day(2),
                category: feeds::cdr::CATEGORY,
                result: Err(IngestError::Internal("cut".into())),
            }],
            stopped: true,
            ..PassReport::default()
        };
        let third = at("2024-03-05T01:15:00Z");
        metrics.record(&stopped, PassOutcome::Stopped, third, third);
        let text = metrics.render();
        for line in [
            r#"cdr_ingest_files_total{feed="cdr",outcome="ingested"} 1"#,
            r#"cdr_ingest_files_total{feed="cdr",outcome="failed"} 1"#,
            r#"cdr_ingest_overdue_files{feed="cdr"} 0"#,
            r#"cdr_ingest_last_success_timestamp_seconds{feed="cdr"} 1709514900"#,
            r#"cdr_ingest_passes_total{outcome="failed"} 1"#,
            r#"cdr_ingest_passes_total{outcome="ok"} 1"#,
            r#"cdr_ingest_passes_total{outcome="stopped"} 1"#,
            "cdr_ingest_last_pass_success 0",
            "cdr_ingest_last_pass_timestamp_seconds 1709601300",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert_eq!(metrics.last_success(), Some(second));
    }

    #[test]
    fn a_source_that_cannot_be_opened_fails_every_feed_of_the_days_left() {
        let mut metrics = two_feeds();
        let report = PassReport {
            source_error: Some(crate::source::SourceError::Connect {
                endpoint: "h:21".into(),
                detail: "refused".into(),
            }),
            not_tried: vec![day(1), day(2)],
            ..PassReport::default()
        };
        let now = at("2024-03-03T01:15:00Z");
        metrics.record(&report, PassOutcome::Failed, now, now);
        let text = metrics.render();
        for feed in ["cdr", "recordings"] {
            let line = format!(r#"cdr_ingest_files_total{{feed="{feed}",outcome="failed"}} 2"#);
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(!text.contains("cdr_ingest_last_success_timestamp_seconds{"));
    }

    #[test]
    fn a_run_carries_a_failed_feeds_last_success_over_from_the_textfile() {
        let mut before = two_feeds();
        let earlier = at("2024-03-02T01:15:00Z");
        before.record(&PassReport::default(), PassOutcome::Ok, earlier, earlier);
        let mut metrics = two_feeds();
        metrics.carry_over(&before.render());
        let now = at("2024-03-03T01:15:00Z");
        metrics.record(&a_failed_pass(), PassOutcome::Failed, now, now);
        let text = metrics.render();
        assert!(
            text.contains("cdr_ingest_last_success_timestamp_seconds{feed=\"cdr\"} 1709342100\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "cdr_ingest_last_success_timestamp_seconds{feed=\"recordings\"} 1709428500\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_groups_split_the_families_and_an_empty_family_is_left_out() {
        let mut metrics = two_feeds();
        let now = at("2024-03-03T01:15:00Z");
        metrics.record(&a_failed_pass(), PassOutcome::Failed, now, now);
        let passes = metrics.render_passes();
        assert!(
            passes.starts_with("# HELP cdr_ingest_passes_total "),
            "{passes}"
        );
        assert!(!passes.contains("feed="), "{passes}");
        let cdr = metrics.render_feed(feeds::cdr::CATEGORY);
        assert!(
            cdr.contains("cdr_ingest_rows_total{feed=\"cdr\"} 10\n"),
            "{cdr}"
        );
        assert!(!cdr.contains("recordings"), "{cdr}");
        assert!(!cdr.contains("passes"), "{cdr}");
        assert!(
            !cdr.contains("cdr_ingest_last_success_timestamp_seconds"),
            "no HELP or TYPE without a sample, so a Pushgateway keeps the last one: {cdr}"
        );
        assert!(
            Metrics::new(&[])
                .render_passes()
                .contains("cdr_ingest_passes_total{outcome=\"ok\"} 0\n")
        );
        assert!(!Metrics::new(&[]).render().contains("last_pass"));
    }

    #[test]
    fn labels_help_and_values_are_escaped_and_spelt_as_prometheus_reads_them() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\nc \"d\""), "a\\\\b\\nc \"d\"");
        let family = Family {
            name: "x",
            help: "h",
            kind: Kind::Gauge,
            per_feed: false,
            samples: vec![(vec![("l", "say \"hi\"\n".into())], Value::Float(0.1))],
        };
        assert_eq!(
            render(&[family]),
            "# HELP x h\n# TYPE x gauge\nx{l=\"say \\\"hi\\\"\\n\"} 0.1\n"
        );
        for (value, text) in [
            (Value::Int(u64::MAX), "18446744073709551615"),
            (Value::Float(3.0), "3"),
            (Value::Float(1e21), "1000000000000000000000"),
            (Value::Float(f64::NAN), "NaN"),
            (Value::Float(f64::INFINITY), "+Inf"),
            (Value::Float(f64::NEG_INFINITY), "-Inf"),
        ] {
            assert_eq!(format_value(value), text);
        }
    }
}
