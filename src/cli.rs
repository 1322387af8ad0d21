//! Subcommands: raw arguments turned into validated settings in one step, then run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tracing::Instrument as _;

use crate::account_turns;
use crate::config::{ConfigErrors, Settings, SourceEndpoint};
use crate::daemon::{self, SystemClock};
use crate::demo;
use crate::feeds::{self, FEEDS, Unit};
use crate::generate;
use crate::http;
use crate::inventory;
use crate::metrics::{self, Metrics};
use crate::model::Category;
use crate::pass;
use crate::pipeline::{Context, PassOptions};
use crate::progress::Progress;
use crate::quarantine_report;
use crate::report;
use crate::retention::{self, Keep, Target};
use crate::shutdown::Shutdown;
use crate::sink::destination;
use crate::source;
use crate::state::runs::{self, PassOutcome};
use crate::status;
use crate::status_page;
use crate::verify;

/// Everything went well.
pub const EXIT_OK: u8 = 0;
/// The run finished but at least one file failed or was missing; each is reported.
pub const EXIT_FAILED: u8 = 1;
/// The command line or the configuration is wrong; nothing was done.
pub const EXIT_USAGE: u8 = 2;
/// The program could not run at all (e.g. no async runtime).
pub const EXIT_FATAL: u8 = 3;
/// Stopped by SIGTERM or SIGINT before the end; what was not done is left for the next run.
pub const EXIT_STOPPED: u8 = 4;

/// Ingests a hosted PBX's FTPS drop of call records into object storage as Parquet.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log format: `text` for people, `json` for log collectors; `auto` picks text on a terminal.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true, env = "CDR_INGEST_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass: the given days, or without dates every day of the look-back window
    /// (schedule.lookback_days up to yesterday) that is new or changed. The
    /// recommended mode for a scheduled container.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// One day, YYYY-MM-DD (the day the calls were made, UTC).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        date: Option<NaiveDate>,
        /// First day of a range, YYYY-MM-DD.
        #[arg(long, requires = "to")]
        from: Option<NaiveDate>,
        /// Last day of a range, inclusive.
        #[arg(long, requires = "from")]
        to: Option<NaiveDate>,
    },
    /// Run passes on the schedule ([schedule] cron, in UTC) until SIGTERM/SIGINT,
    /// starting with one at once to catch up on anything missed while down.
    Daemon {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Receive call records pushed over HTTP (POST /push/TOKEN) on serve.listen, store
    /// each before acknowledging it, and compact them into push_cdr/ every
    /// serve.flush_secs, until SIGTERM/SIGINT.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ingest a range of days (years if need be), several at once, with progress;
    /// stopped and started again, it goes on where it stopped.
    Backfill {
        #[command(flatten)]
        config: ConfigArg,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: NaiveDate,
        /// Last day, inclusive.
        #[arg(long)]
        to: NaiveDate,
        /// Days ingested at once, each over its own connection.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=32))]
        parallel: u16,
    },
    /// Per day and category: ingested, not due, late, failed (and why), quarantined
    /// rows; and the last pass and how it ended. Reads the destination only.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write the status as one self-contained HTML page to this file instead (a
        /// calendar of days × feeds coloured by state, the last pass, a legend).
        #[arg(long, value_name = "FILE", conflicts_with = "json")]
        html: Option<PathBuf>,
        /// Days back from yesterday (default: schedule.lookback_days), at most 3660.
        #[arg(long, conflicts_with_all = ["from", "to"], value_parser = days_back())]
        days: Option<u32>,
        /// First day, YYYY-MM-DD, instead of --days.
        #[arg(long, requires = "to")]
        from: Option<NaiveDate>,
        /// Last day, inclusive; at most 3660 days after --from.
        #[arg(long, requires = "from")]
        to: Option<NaiveDate>,
    },
    /// What the destination holds, per day, feed and dataset: objects, rows (from the
    /// Parquet footers), bytes; then the totals. Reads the destination only.
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this feed (its name, as in ingest.categories).
        #[arg(long)]
        feed: Option<String>,
        /// First day, YYYY-MM-DD (default: every day there is).
        #[arg(long, requires = "to")]
        from: Option<NaiveDate>,
        /// Last day, inclusive; at most 3660 days after --from.
        #[arg(long, requires = "from")]
        to: Option<NaiveDate>,
    },
    /// The rows set aside in the last days: per day and dataset a count by reason, then
    /// each row's file, line and reason.
    Quarantine {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Days back from yesterday (default: schedule.lookback_days), at most 3660.
        #[arg(long, value_parser = days_back())]
        days: Option<u32>,
    },
    /// Check every partition of the destination: each call once, no object whose rows
    /// all belong to another file, nothing an unfinished ingestion left. Exits 1 when
    /// something is wrong; with --repair fixes it (safe beside a running pass).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Fix what is found: remove duplicate rows and objects left behind.
        #[arg(long)]
        repair: bool,
    },
    /// Delete what is older than the [retention] limits now (each pass does this too).
    Retention {
        #[command(flatten)]
        config: ConfigArg,
        /// List what would be deleted, with counts and bytes, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete everything in one category (a feed's name, or quarantine), and
    /// nothing else. Asks on a terminal; only the exact answer YES deletes.
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        category: String,
        /// The confirmation, for scripts: only `YES` deletes.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Check a configuration file offline; with --connect also log in and list the folders.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        /// Also connect to the source, log in and list its folders.
        #[arg(long)]
        connect: bool,
    },
    /// See the whole job on an example week with no provider account and no network:
    /// generate a drop, ingest it into a local folder, print the first answers.
    Demo {
        /// Folder for the example drop and the output (created; safe to rerun).
        #[arg(long, default_value = "cdr-demo")]
        out: PathBuf,
    },
    /// Write a realistic fake drop (CDRs, queue zips, recordings) into a folder, for
    /// trying the worker out, tests and benchmarks. Same seed, same bytes.
    Generate {
        /// Folder to write the drop into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: NaiveDate,
        /// Last day, inclusive.
        #[arg(long)]
        to: NaiveDate,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Calls per day in the CDR file.
        #[arg(long, default_value_t = 500)]
        rows_per_day: usize,
        /// Recordings per day (default: one per answered call with a user).
        #[arg(long)]
        recordings_per_day: Option<usize>,
        /// Size of every recording in bytes (default: random, 4 to 64 KiB).
        #[arg(long)]
        recording_bytes: Option<u64>,
        /// Contact-center sessions created per day (their session metadata files).
        #[arg(long, default_value_t = 40)]
        sessions_per_day: usize,
        /// Add the provider's quirks: BOM + CRLF, repeated rows from the day before,
        /// bad and duplicate rows, an extra column, stray files among the recordings,
        /// broken session files.
        #[arg(long)]
        quirks: bool,
        /// Also write what the drop holds (counts per day, per hour, per destination…)
        /// as JSON to this file, for checking answers computed from the output.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Then post the drop's push records to a running `serve` at this base URL
        /// (e.g. http://127.0.0.1:8080), with resends and malformed bodies, the token
        /// taken from $CDR_PUSH_TOKEN.
        #[arg(long, value_name = "URL")]
        push_to: Option<String>,
    },
}

/// The most days `status` and `quarantine` report at once: ten years. Each day costs
/// lookups in the destination and a line per category, and a mistyped `--days 100000`
/// would otherwise go back to the year 1753.
pub const MAX_REPORT_DAYS: u32 = 3660;

fn days_back() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_REPORT_DAYS))
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The configuration file (TOML); see config/example.toml.
    #[arg(long, short, env = "CDR_INGEST_CONFIG")]
    pub config: PathBuf,
    /// Only this one of the file's [[accounts]] (repeatable; default: every account).
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
}

impl ConfigArg {
    /// The settings of each account asked for, in the file's order (of the file
    /// alone when it has no `[[accounts]]`).
    fn load(&self) -> anyhow::Result<Vec<Settings>> {
        self.select(Settings::load_all(&self.config)?)
    }

    /// [`Self::load`] for a command that reads the source, which a configuration for
    /// `serve` alone does not have.
    fn load_with_source(&self) -> anyhow::Result<Vec<Settings>> {
        let all = self.load()?;
        if all
            .iter()
            .any(|s| matches!(s.source.endpoint, SourceEndpoint::None))
        {
            return Err(UsageError(format!(
                "{} has [serve] and no [source]: it only receives pushed records (cdr-ingest serve); to read a drop, add [source] with url = \"ftps://user@host\" (or sftp://, s3://, file://)",
                self.config.display()
            ))
            .into());
        }
        Ok(all)
    }

    /// The same for commands that never connect to the source (no secrets needed).
    fn load_offline(&self) -> anyhow::Result<Vec<Settings>> {
        self.select(Settings::load_all_offline(&self.config)?)
    }

    fn select(&self, all: Vec<Settings>) -> anyhow::Result<Vec<Settings>> {
        if self.accounts.is_empty() {
            return Ok(all);
        }
        let names: Vec<&str> = all
            .iter()
            .filter_map(|s| s.account.as_ref().map(|a| a.name.as_str()))
            .collect();
        if names.is_empty() {
            return Err(UsageError(format!(
                "--account: {} has no [[accounts]]",
                self.config.display()
            ))
            .into());
        }
        let unknown: Vec<&String> = self
            .accounts
            .iter()
            .filter(|asked| !names.contains(&asked.as_str()))
            .collect();
        if !unknown.is_empty() {
            let unknown: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
            return Err(UsageError(format!(
                "--account {} is not an account of {}; its accounts are {}",
                unknown.join(", "),
                self.config.display(),
                names.join(", ")
            ))
            .into());
        }
        Ok(all
            .into_iter()
            .filter(|s| {
                s.account
                    .as_ref()
                    .is_some_and(|a| self.accounts.contains(&a.name))
            })
            .collect())
    }
}

impl Command {
    /// The log level when `RUST_LOG` is not set: `info`, except for the demo, whose own
    /// lines on stdout already say how each file went (its warnings still show).
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Demo { .. } => "warn",
            _ => "info",
        }
    }
}

/// Starts `tracing`; `RUST_LOG` sets the level (default `default_level`).
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Through the progress bar's writer, so that a backfill's log lines go above its bar.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::LogWriter);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Maps an error that ended the command to its exit code.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<ConfigErrors>().is_some()
        || error.downcast_ref::<UsageError>().is_some()
    {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// A mistake on the command line that clap cannot catch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run {
            config,
            date,
            from,
            to,
        } => {
            let accounts = contexts(config.load_with_source()?)?;
            let now = Utc::now();
            let named = requested_days(date, from, to)?;
            let scheduled = named.is_none();
            let days = |ctx: &Context| {
                named
                    .clone()
                    .unwrap_or_else(|| ctx.settings.schedule.window(now))
            };
            let shared = &accounts[0].settings;
            let options = PassOptions {
                parallel_days: 1,
                shutdown: Shutdown::on_signals(shared.ingest.shutdown_grace),
                observer: None,
                respect_retention_history: scheduled,
            };
            let metrics = Mutex::new(new_metrics(&accounts));
            Ok(passes(&accounts, &days, now, "run", &options, &metrics).await)
        }
        Command::Serve { config } => {
            let mut accounts = config.load_offline()?;
            if accounts.len() != 1 {
                bail!(UsageError(format!(
                    "serve receives the records of one account: give --account NAME (one of the {} accounts of {})",
                    accounts.len(),
                    config.config.display()
                )));
            }
            serve(accounts.remove(0)).await
        }
        Command::Daemon { config } => {
            let accounts = contexts(config.load_with_source()?)?;
            let ctx = &accounts[0];
            let shutdown = Shutdown::on_signals(ctx.settings.ingest.shutdown_grace);
            let options = PassOptions {
                parallel_days: 1,
                shutdown: shutdown.clone(),
                observer: None,
                respect_retention_history: true,
            };
            let metrics = Arc::new(Mutex::new(new_metrics(&accounts)));
            let server = match ctx.settings.metrics.listen {
                Some(address) => {
                    Some(start_server(address, &accounts, Arc::clone(&metrics), &shutdown).await?)
                }
                None => None,
            };
            let (all, options, shared) = (&accounts, &options, &metrics);
            let ended = daemon::run(
                &ctx.settings.schedule,
                &SystemClock,
                &shutdown,
                |now| async move {
                    // Each pass reports its own failures; the daemon carries on.
                    let window = |ctx: &Context| ctx.settings.schedule.window(now);
                    let code = passes(all, &window, now, "daemon", options, shared).await;
                    code == EXIT_STOPPED
                },
            )
            .await;
            if let Some(server) = server {
                server.stop().await;
            }
            // Stopping is what a daemon is for (Kubernetes, systemd): only a stop that
            // cut a pass short says so in the exit code.
            Ok(match ended {
                daemon::Ended::StoppedInPass => EXIT_STOPPED,
                daemon::Ended::StoppedIdle | daemon::Ended::NoFutureTime => EXIT_OK,
            })
        }
        Command::Backfill {
            config,
            from,
            to,
            parallel,
        } => {
            if from > to {
                return Err(UsageError(format!("--from {from} is after --to {to}")).into());
            }
            let accounts = contexts(config.load_with_source()?)?;
            let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
            let daily: usize = accounts
                .iter()
                .map(|ctx| {
                    ctx.settings
                        .ingest
                        .categories
                        .iter()
                        .filter(|c| feeds::feed(**c).daily().is_some())
                        .count()
                })
                .sum();
            let progress = Progress::new((days.len() * daily) as u64);
            let options = PassOptions {
                parallel_days: usize::from(parallel),
                shutdown: Shutdown::on_signals(accounts[0].settings.ingest.shutdown_grace),
                observer: Some(&progress),
                respect_retention_history: false,
            };
            let metrics = Mutex::new(new_metrics(&accounts));
            let all_days = |_: &Context| days.clone();
            let code = passes(
                &accounts,
                &all_days,
                Utc::now(),
                "backfill",
                &options,
                &metrics,
            )
            .await;
            progress.finish();
            Ok(code)
        }
        Command::Status {
            config,
            json,
            html,
            days,
            from,
            to,
        } => {
            let accounts = contexts(config.load_offline()?)?;
            let now = Utc::now();
            let named = match requested_days(None, from, to)? {
                Some(range) if range.len() > MAX_REPORT_DAYS as usize => {
                    return Err(UsageError(format!(
                        "--from {} --to {} is {} days; status shows at most {MAX_REPORT_DAYS} at once",
                        range[0],
                        range[range.len() - 1],
                        range.len()
                    ))
                    .into());
                }
                range => range,
            };
            let window = |ctx: &Context| {
                named
                    .clone()
                    .unwrap_or_else(|| ctx.settings.schedule.last_days(days, now))
            };
            let standing = match html {
                Some(file) => write_status_page(&accounts, now, &window, &file).await?,
                None => show_status(&accounts, now, &window, json).await?,
            };
            Ok(match standing {
                status::Standing::AllWell => EXIT_OK,
                status::Standing::NeedsAttention => EXIT_FAILED,
            })
        }
        Command::Ls {
            config,
            feed,
            from,
            to,
        } => {
            let feeds: Vec<&'static feeds::Feed> = match feed {
                Some(name) => vec![feeds::by_name(&name).ok_or_else(|| {
                    UsageError(format!(
                        "--feed {name:?} is not a feed; the feeds are {}",
                        feeds::names()
                    ))
                })?],
                None => FEEDS.to_vec(),
            };
            let range = match requested_days(None, from, to)? {
                Some(days) if days.len() > MAX_REPORT_DAYS as usize => {
                    return Err(UsageError(format!(
                        "--from {} --to {} is {} days; ls shows at most {MAX_REPORT_DAYS} at once",
                        days[0],
                        days[days.len() - 1],
                        days.len()
                    ))
                    .into());
                }
                Some(days) => Some((days[0], days[days.len() - 1])),
                None => None,
            };
            let accounts = contexts(config.load_offline()?)?;
            each_account(&accounts, |ctx| {
                Box::pin(async {
                    let lines = inventory::inventory(&ctx.store, &feeds, range).await?;
                    print_inventory(&lines, &destination::redact(&ctx.settings.destination.url));
                    Ok(EXIT_OK)
                })
            })
            .await
        }
        Command::Quarantine { config, json, days } => {
            let accounts = contexts(config.load_offline()?)?;
            each_account(&accounts, |ctx| {
                Box::pin(async move {
                    quarantine_report::show(ctx, Utc::now(), days, json).await?;
                    Ok(EXIT_OK)
                })
            })
            .await
        }
        Command::Verify { config, repair } => {
            let accounts = contexts(config.load_offline()?)?;
            let file = &config.config;
            each_account(&accounts, |ctx| {
                Box::pin(async move {
                    let verified = verify::verify(ctx, repair).await?;
                    Ok(report_verified(&verified, file, ctx))
                })
            })
            .await
        }
        Command::Retention { config, dry_run } => {
            let accounts = contexts(config.load_offline()?)?;
            let today = Utc::now().date_naive();
            each_account(&accounts, |ctx| {
                Box::pin(retention_pass(ctx, today, dry_run))
            })
            .await
        }
        Command::Purge {
            config,
            category,
            confirm,
        } => {
            let target = Target::parse(&category).ok_or_else(|| {
                let names: Vec<String> = Target::all().map(|t| t.to_string()).collect();
                UsageError(format!(
                    "--category {category:?} is not one of {}",
                    names.join(", ")
                ))
            })?;
            let accounts = contexts(config.load_offline()?)?;
            let confirm = &confirm;
            each_account(&accounts, |ctx| {
                Box::pin(purge(ctx, target, confirm.clone()))
            })
            .await
        }
        Command::Validate { config, connect } => validate(&config, connect).await,
        Command::Demo { out } => Ok(exit_code(demo::run(&out).await?)),
        Command::Generate {
            out,
            from,
            to,
            seed,
            rows_per_day,
            recordings_per_day,
            recording_bytes,
            sessions_per_day,
            quirks,
            manifest: manifest_file,
            push_to,
        } => {
            let mut spec = generate::DropSpec::new(seed, from, to);
            spec.cdr_rows_per_day = rows_per_day;
            spec.recordings_per_day = recordings_per_day;
            spec.sessions_per_day = sessions_per_day;
            if let Some(bytes) = recording_bytes {
                spec.recording_bytes = bytes..=bytes;
            }
            if quirks {
                spec.quirks = generate::Quirks::all();
            }
            let manifest = tokio::task::spawn_blocking(move || {
                generate::write_drop(&out, &spec).map(|m| (m, out))
            })
            .await?
            .map_err(|e| UsageError(format!("cannot write the drop: {e}")))?;
            let (manifest, out) = manifest;
            if let Some(file) = manifest_file {
                std::fs::write(&file, serde_json::to_vec_pretty(&manifest)?)
                    .map_err(|e| UsageError(format!("cannot write {}: {e}", file.display())))?;
            }
            let rows: usize = manifest.days.iter().map(|d| d.cdr_rows).sum();
            let recordings: usize = manifest.days.iter().map(|d| d.recordings.len()).sum();
            crate::out!(
                "wrote {} day(s) to {}: {rows} CDR rows, {recordings} recordings",
                manifest.days.len(),
                out.display()
            );
            match push_to {
                Some(base) => push_drop(&out, &manifest, &base).await,
                None => Ok(EXIT_OK),
            }
        }
    }
}

/// What `ls` prints: a line per day, feed and dataset, then the totals.
fn print_inventory(lines: &[inventory::Line], destination: &str) {
    let rows = |h: &inventory::Holding| h.rows.map_or("-".to_string(), |r| r.to_string());
    crate::out!(
        "{:<10}  {:<10}  {:<16}  {:>10}  {:>7}  {:>10}  {:>13}",
        "day",
        "feed",
        "dataset",
        "partitions",
        "objects",
        "rows",
        "bytes"
    );
    for line in lines {
        crate::out!(
            "{:<10}  {:<10}  {:<16}  {:>10}  {:>7}  {:>10}  {:>13}",
            line.day,
            line.feed,
            line.dataset,
            1,
            line.holding.objects,
            rows(&line.holding),
            line.holding.bytes
        );
    }
    let mut all = inventory::Holding::default();
    for (feed, dataset, partitions, total) in inventory::totals(lines) {
        crate::out!(
            "{:<10}  {:<10}  {:<16}  {:>10}  {:>7}  {:>10}  {:>13}",
            "total",
            feed,
            dataset,
            partitions,
            total.objects,
            rows(&total),
            total.bytes
        );
        inventory::add(&mut all, &total);
    }
    let days: std::collections::BTreeSet<NaiveDate> = lines.iter().map(|l| l.day).collect();
    crate::out!(
        "{destination}: {} day(s), {} objects, {} rows, {} bytes ({:.1} MB)",
        days.len(),
        all.objects,
        all.rows.unwrap_or(0),
        all.bytes,
        all.bytes as f64 / 1e6
    );
}

/// `status --html FILE`: the page (of every account), written beside the file and
/// renamed over it, so a web server or a browser never sees half a page.
async fn write_status_page(
    accounts: &[Context],
    now: DateTime<Utc>,
    window: &status::Window<'_>,
    file: &std::path::Path,
) -> anyhow::Result<status::Standing> {
    let mut statuses = Vec::new();
    for ctx in accounts {
        statuses.push(status::collect(ctx, now, &window(ctx)).await?);
    }
    let html = status_page::page_of(accounts, now, &statuses);
    // Not a `tempfile` (created 0600): the page is for a web server to read too.
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let temporary = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, html)
        .and_then(|()| std::fs::rename(&temporary, file))
        .with_context(|| format!("cannot write the status page {}", file.display()))?;
    let days: usize = statuses
        .iter()
        .map(|s| {
            s.days
                .iter()
                .map(|r| r.day)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .max()
        .unwrap_or(0);
    let bad: usize = statuses
        .iter()
        .map(|s| s.days.iter().filter(|r| r.state.is_bad()).count())
        .sum();
    crate::out!(
        "status page written to {}: {} day(s), {} overdue or failed",
        file.display(),
        days,
        bad
    );
    Ok(standing_of(&statuses))
}

/// Needs attention if any account does.
fn standing_of(statuses: &[status::Status]) -> status::Standing {
    if statuses
        .iter()
        .any(|s| s.standing() == status::Standing::NeedsAttention)
    {
        status::Standing::NeedsAttention
    } else {
        status::Standing::AllWell
    }
}

/// `status` in text or JSON: the destination's as before, or each account's under
/// its name, then a line per account saying how its last pass ended.
async fn show_status(
    accounts: &[Context],
    now: DateTime<Utc>,
    window: &status::Window<'_>,
    json: bool,
) -> anyhow::Result<status::Standing> {
    if let [ctx] = accounts
        && ctx.settings.account.is_none()
    {
        return Ok(status::show(ctx, now, &window(ctx), json).await?);
    }
    if json {
        #[derive(serde::Serialize)]
        struct AccountStatus<'a> {
            account: &'a str,
            destination: String,
            status: status::Status,
        }
        let mut all = Vec::new();
        for ctx in accounts {
            all.push(AccountStatus {
                account: status::account_name(ctx),
                destination: destination::redact(&ctx.settings.destination.url),
                status: status::collect(ctx, now, &window(ctx)).await?,
            });
        }
        let statuses: Vec<status::Status> = all.iter().map(|a| a.status.clone()).collect();
        crate::out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "accounts": all }))
                .expect("the status serializes")
        );
        return Ok(standing_of(&statuses));
    }
    let mut lines = Vec::new();
    let mut standing = status::Standing::AllWell;
    for ctx in accounts {
        heading(ctx);
        let status = status::collect(ctx, now, &window(ctx)).await?;
        let last = match &status.last_pass {
            Some(run) => format!("last pass {} (finished {})", run.outcome, run.finished),
            None => "no pass recorded yet".to_string(),
        };
        let bad = status.days.iter().filter(|r| r.state.is_bad()).count();
        lines.push(format!(
            "account {}: {last}; {bad} overdue or failed",
            status::account_name(ctx)
        ));
        if status::print(status, false) == status::Standing::NeedsAttention {
            standing = status::Standing::NeedsAttention;
        }
    }
    crate::out!("accounts:");
    for line in lines {
        crate::out!("  {line}");
    }
    Ok(standing)
}

/// The days named on the command line, or `None` for the look-back window.
fn requested_days(
    date: Option<NaiveDate>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> anyhow::Result<Option<Vec<NaiveDate>>> {
    let (first, last) = match (date, from, to) {
        (None, None, None) => return Ok(None),
        (Some(day), _, _) => (day, day),
        (None, Some(from), Some(to)) if from <= to => (from, to),
        (None, Some(from), Some(to)) => {
            return Err(UsageError(format!("--from {from} is after --to {to}")).into());
        }
        _ => return Err(UsageError(
            "give --date YYYY-MM-DD, or both --from and --to, or no dates for the look-back window"
                .into(),
        )
        .into()),
    };
    Ok(Some(first.iter_days().take_while(|d| *d <= last).collect()))
}

/// Prints what `verify` found; 1 when something is wrong and was not repaired.
fn report_verified(verified: &verify::Verified, config: &std::path::Path, ctx: &Context) -> u8 {
    let account = ctx
        .settings
        .account
        .as_ref()
        .map_or(String::new(), |a| format!(" --account {}", a.name));
    for finding in &verified.findings {
        for problem in &finding.problems {
            crate::out!("{}: {}", finding.partition, verify::describe(problem));
        }
    }
    let problems: usize = verified.findings.iter().map(|f| f.problems.len()).sum();
    let checked = verified.partitions;
    if problems == 0 {
        crate::out!("verify: {checked} partitions checked, no problems");
        EXIT_OK
    } else if verified.repaired {
        crate::out!(
            "verify: {checked} partitions checked, {problems} problem(s) in {} repaired",
            verified.findings.len()
        );
        EXIT_OK
    } else {
        crate::out!(
            "verify: {checked} partitions checked, {problems} problem(s) in {}; run `cdr-ingest verify --config {}{account} --repair` to fix them",
            verified.findings.len(),
            config.display()
        );
        EXIT_FAILED
    }
}

/// `cdr-ingest retention`: every target with a limit, now.
async fn retention_pass(ctx: &Context, today: NaiveDate, dry_run: bool) -> anyhow::Result<u8> {
    let verb = if dry_run { "would delete" } else { "deleted" };
    for target in Target::all() {
        let keep = ctx.settings.retention.keep(target);
        if keep == Keep::Forever {
            crate::out!("{target}: kept forever");
            continue;
        }
        let removed =
            retention::enforce(&ctx.store, &ctx.json, target, keep, today, dry_run).await?;
        let days = match (removed.days.first(), removed.days.last()) {
            (Some(first), Some(last)) => format!(" ({first} to {last})"),
            _ => String::new(),
        };
        crate::out!(
            "{target}: kept {keep}; {verb} {} day(s){days}, {} objects, {} bytes",
            removed.days.len(),
            removed.objects,
            removed.bytes
        );
    }
    if !dry_run {
        retention::settle_calls(ctx).await?;
    }
    Ok(EXIT_OK)
}

/// `cdr-ingest purge`: everything in one category, after an exact `YES`. It lists
/// first, so the question can say how much the answer deletes.
async fn purge(ctx: &Context, target: Target, confirm: Option<String>) -> anyhow::Result<u8> {
    let owned = retention::owned_by(&ctx.store, target).await?;
    let planned = owned.removed();
    let destination = destination::redact(&ctx.settings.destination.url);
    if planned.objects == 0 {
        crate::out!("{target}: nothing to purge in {destination}");
        return Ok(EXIT_OK);
    }
    let answer = match confirm {
        Some(answer) => answer,
        None if std::io::stdin().is_terminal() => {
            eprint!("{}", purge_question(target, &destination, &planned));
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        None => {
            return Err(
                UsageError("purge needs --confirm YES when not run on a terminal".into()).into(),
            );
        }
    };
    if answer != "YES" {
        eprintln!("not confirmed (the answer must be exactly YES): nothing was deleted");
        return Ok(EXIT_FAILED);
    }
    let removed = retention::purge(&ctx.store, owned).await?;
    retention::rebuild_after_purge(ctx, target).await?;
    crate::out!(
        "{target}: purged {} objects, {} bytes",
        removed.objects,
        removed.bytes
    );
    Ok(EXIT_OK)
}

/// What `purge` asks on a terminal.
fn purge_question(target: Target, destination: &str, planned: &retention::Removed) -> String {
    format!(
        "This deletes {} objects ({} bytes, {:.1} MB) of category {target} in {destination} (data, ledger, quarantine as applicable) and nothing else.\nType YES to confirm: ",
        planned.objects,
        planned.bytes,
        planned.bytes as f64 / 1e6
    )
}

/// Opens the destination (under the account's prefix) and the state of each account.
fn contexts(accounts: Vec<Settings>) -> anyhow::Result<Vec<Context>> {
    accounts
        .into_iter()
        .map(|settings| {
            let store =
                destination::open(&settings.destination.url, &settings.destination.options)?;
            Ok(Context::new(settings, store))
        })
        .collect()
}

/// Says whose output follows, in a configuration with accounts.
fn heading(ctx: &Context) {
    if let Some(account) = &ctx.settings.account {
        crate::out!(
            "== account {} ({}) ==",
            account.name,
            destination::redact(&ctx.settings.destination.url)
        );
    }
}

/// What one account's command returns: its exit code.
type AccountRun<'a> = futures::future::LocalBoxFuture<'a, anyhow::Result<u8>>;

/// Runs `each` for every account (the destination alone, without accounts), each
/// account's output under its heading; one account's error is reported and the others
/// go on. Returns the highest exit code (failed, then stopped).
async fn each_account<'a>(
    accounts: &'a [Context],
    each: impl Fn(&'a Context) -> AccountRun<'a>,
) -> anyhow::Result<u8> {
    if let [ctx] = accounts
        && ctx.settings.account.is_none()
    {
        return each(ctx).await;
    }
    let mut code = EXIT_OK;
    let mut failed = Vec::new();
    for ctx in accounts {
        heading(ctx);
        match each(ctx).await {
            Ok(done) => code = code.max(done),
            Err(e) => {
                let name = status::account_name(ctx);
                eprintln!("FAILED account {name}: {e:#}");
                failed.push(name);
                code = code.max(EXIT_FAILED);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("FAILED accounts: {}", failed.join(", "));
    }
    Ok(code)
}

/// The exit code of a pass that ended as `outcome`.
fn exit_code(outcome: PassOutcome) -> u8 {
    match outcome {
        PassOutcome::Ok => EXIT_OK,
        PassOutcome::Failed => EXIT_FAILED,
        PassOutcome::Stopped => EXIT_STOPPED,
    }
}

/// One pass of each account over its `days`: ingest, print, record in the account's
/// state; one account's failure does not stop the next. With several accounts they are
/// taken in the turns `account_turns` gives, so that N workers spread over them. Then the metrics of all of
/// them, sent where `[metrics]` says. Returns the exit code: stopped if a shutdown
/// cut the pass short, else failed if any account's pass failed.
async fn passes(
    accounts: &[Context],
    days: &dyn Fn(&Context) -> Vec<NaiveDate>,
    now: DateTime<Utc>,
    mode: &str,
    options: &PassOptions<'_>,
    metrics: &Mutex<Metrics>,
) -> u8 {
    let began = Utc::now();
    let mut reports = Vec::new();
    let mut ended: Vec<(usize, &str, PassOutcome)> = Vec::new();
    // With several accounts, N workers spread over them: each first takes those no other
    // worker is on, then comes back to the rest (see `account_turns`).
    let spread = accounts.len() > 1;
    let mut later = Vec::new();
    for round in [Round::First, Round::Again] {
        let order: Vec<usize> = match round {
            Round::First => (0..accounts.len()).collect(),
            Round::Again => std::mem::take(&mut later),
        };
        for index in order {
            let ctx = &accounts[index];
            let name = status::account_name(ctx);
            if options.shutdown.is_requested() {
                ended.push((index, name, PassOutcome::Stopped));
                continue;
            }
            let turn = match (spread, round) {
                (false, _) => account_turns::Turn::Shared,
                (true, Round::First) => match account_turns::first(ctx).await {
                    Some(turn) => turn,
                    None => {
                        later.push(index);
                        continue;
                    }
                },
                (true, Round::Again) => account_turns::again(ctx, began, &days(ctx)).await,
            };
            heading(ctx);
            let lease = match turn {
                account_turns::Turn::Done(record) => {
                    crate::out!(
                        "done by another worker: its pass over these days began {} and ended ok at {}",
                        record.started.format("%Y-%m-%d %H:%M:%S UTC"),
                        record.finished.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                    ended.push((index, name, PassOutcome::Ok));
                    continue;
                }
                account_turns::Turn::Own(lease) => Some(lease),
                account_turns::Turn::Shared => None,
            };
            // A later account's pass starts later than the first's.
            let started = if reports.is_empty() { now } else { Utc::now() };
            // Every log line of an account's pass names the account.
            let span = match &ctx.settings.account {
                Some(account) => tracing::info_span!("account", account = %account.name),
                None => tracing::Span::none(),
            };
            let report = pass::run(ctx, &days(ctx), started, options)
                .instrument(span.clone())
                .await;
            let outcome = span.in_scope(|| report::print(&report));
            let record = report::record(&report, mode, started, outcome);
            if let Err(e) = runs::put(&ctx.json, &record).await {
                tracing::warn!(account = name, error = %e, "could not record the pass for `status`");
            }
            // Released once the pass is recorded, so that who comes back to the account
            // finds the record.
            if let Some(lease) = lease {
                lease.release().await;
            }
            if ctx.settings.account.is_some() {
                tracing::info!(
                    account = name,
                    outcome = outcome.as_str(),
                    "account's pass finished"
                );
            }
            reports.push(report);
            ended.push((index, name, outcome));
        }
    }
    // The summary in the file's order, whatever order the accounts were taken in.
    ended.sort_by_key(|&(index, _, _)| index);
    let ended: Vec<(&str, PassOutcome)> = ended
        .into_iter()
        .map(|(_, name, outcome)| (name, outcome))
        .collect();
    let outcome = if ended.iter().any(|(_, o)| *o == PassOutcome::Stopped) {
        PassOutcome::Stopped
    } else if ended.iter().any(|(_, o)| *o == PassOutcome::Failed) {
        PassOutcome::Failed
    } else {
        PassOutcome::Ok
    };
    if accounts.iter().any(|ctx| ctx.settings.account.is_some()) {
        print_accounts(&ended);
    }
    let snapshot = {
        let mut metrics = metrics.lock().expect("not poisoned");
        metrics.record_all(&reports, outcome, now, Utc::now());
        metrics.clone()
    };
    metrics::export::after_pass(&accounts[0].settings.metrics, &snapshot).await;
    exit_code(outcome)
}

/// The two rounds of a pass over accounts (see `account_turns`).
#[derive(Clone, Copy)]
enum Round {
    /// The accounts no other worker is on.
    First,
    /// The others.
    Again,
}

/// The pass summary of a configuration with accounts: how each account's pass ended.
fn print_accounts(ended: &[(&str, PassOutcome)]) {
    let named = |wanted: PassOutcome| -> Vec<&str> {
        ended
            .iter()
            .filter(|(_, o)| *o == wanted)
            .map(|(name, _)| *name)
            .collect()
    };
    let (ok, failed, stopped) = (
        named(PassOutcome::Ok),
        named(PassOutcome::Failed),
        named(PassOutcome::Stopped),
    );
    let list = |names: &[&str]| {
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    };
    crate::out!(
        "accounts: {} ok, {} failed{}, {} stopped{}",
        ok.len(),
        failed.len(),
        list(&failed),
        stopped.len(),
        list(&stopped)
    );
    for name in failed {
        eprintln!(
            "FAILED account {name}: see its lines above and `cdr-ingest status --account {name}`"
        );
    }
}

/// The metrics of a process that is about to run passes: nothing yet, but each feed's
/// last success from the textfile a process before it wrote, if there is one. The
/// feeds are those of every account; the counts are the accounts' totals.
fn new_metrics(accounts: &[Context]) -> Metrics {
    let mut categories: Vec<Category> = Vec::new();
    for ctx in accounts {
        for category in &ctx.settings.ingest.categories {
            if !categories.contains(category) {
                categories.push(*category);
            }
        }
    }
    categories.sort_by_key(|c| feeds::position(*c));
    let settings = &accounts[0].settings;
    let mut metrics = Metrics::new(&categories);
    if let Some(previous) = metrics::export::previous(&settings.metrics) {
        metrics.carry_over(&previous);
    }
    metrics
}

/// The daemon's HTTP server, running.
struct Server {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Stops it (at once if a shutdown was requested, which it also follows) and waits.
    async fn stop(self) {
        let _ = self.done.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the metrics server failed"),
            Err(e) => tracing::warn!(error = %e, "the metrics server panicked"),
        }
    }
}

/// Serves `/metrics`, `/healthz` and the status page at `/` on `address` until the
/// shutdown or [`Server::stop`]. A listener that cannot be opened is a configuration
/// problem: nothing has been done.
async fn start_server(
    address: std::net::SocketAddr,
    accounts: &[Context],
    metrics: Arc<Mutex<Metrics>>,
    shutdown: &Shutdown,
) -> anyhow::Result<Server> {
    let listener = http::bind(address)
        .await
        .map_err(|e| UsageError(format!("metrics.listen: cannot listen on {address}: {e}")))?;
    let bound = listener.local_addr()?;
    let now = Utc::now();
    let settings = &accounts[0].settings;
    let monitor = Arc::new(http::Monitor {
        metrics,
        started: now,
        healthy_within: daemon::healthy_within(&settings.schedule, now),
    });
    tracing::info!(
        address = %bound,
        healthy_within_secs = monitor.healthy_within.as_secs(),
        "serving GET /metrics, GET /healthz and the status page at GET /"
    );
    let (done, stopped) = tokio::sync::oneshot::channel();
    let shutdown = shutdown.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown.requested() => {}
            _ = stopped => {}
        }
    };
    let page_accounts: Arc<Vec<Context>> = Arc::new(
        accounts
            .iter()
            .map(|ctx| Context::new(ctx.settings.clone(), Arc::clone(&ctx.store)))
            .collect(),
    );
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let accounts = Arc::clone(&page_accounts);
            async move {
                let now = Utc::now();
                let window = |ctx: &Context| ctx.settings.schedule.last_days(None, now);
                match status_page::render(&accounts, now, &window).await {
                    Ok(html) => axum::response::Html(html).into_response(),
                    Err(e) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot read the state: {e}\n"),
                    )
                        .into_response(),
                }
            }
        }),
    );
    let router = http::router(monitor, page);
    Ok(Server {
        task: tokio::spawn(http::serve(listener, router, stop)),
        done,
    })
}

/// `serve`: the push endpoint and the compaction, until a shutdown.
async fn serve(settings: Settings) -> anyhow::Result<u8> {
    let Some(token) = settings.serve.token.clone() else {
        bail!(UsageError(format!(
            "serve needs the token senders must give: set the environment variable {} (serve.token_env)",
            settings.serve.token_env
        )));
    };
    let store = destination::open(&settings.destination.url, &settings.destination.options)?;
    let tls = match &settings.serve.tls {
        Some((cert, key)) => Some(http::tls_config(cert, key).map_err(UsageError)?),
        None => None,
    };
    let address = settings.serve.listen;
    let listener = http::bind(address)
        .await
        .map_err(|e| UsageError(format!("serve.listen: cannot listen on {address}: {e}")))?;
    let shutdown = Shutdown::on_signals(settings.ingest.shutdown_grace);
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        destination = %destination::redact(&settings.destination.url),
        "serving POST /push/TOKEN, GET /healthz and GET /metrics"
    );
    let fetcher = match &settings.serve.fetch_recordings {
        Some(fetch) => Some(recording_fetcher(fetch)?),
        None => None,
    };
    let app = crate::serve::App::new(settings, store, token.expose(), fetcher);
    crate::serve::run(app, listener, tls, shutdown).await?;
    Ok(EXIT_OK)
}

/// The HTTPS client that downloads the recordings of pushed records.
fn recording_fetcher(
    fetch: &crate::config::RecordingFetch,
) -> anyhow::Result<crate::serve::recordings::Fetcher> {
    let mut client = reqwest::Client::builder()
        .timeout(fetch.timeout)
        .https_only(true);
    if let Some(file) = &fetch.ca_file {
        let pem = std::fs::read(file).map_err(|e| {
            UsageError(format!(
                "serve.recording_ca_file: cannot read {}: {e}",
                file.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            UsageError(format!(
                "serve.recording_ca_file: {} is not PEM: {e}",
                file.display()
            ))
        })?;
        client = client.tls_certs_merge(certs);
    }
    Ok(crate::serve::recordings::Fetcher {
        client: client.build()?,
        max_bytes: fetch.max_bytes,
    })
}

/// `generate --push-to`: replays each day's push records against a running `serve`.
async fn push_drop(
    out: &std::path::Path,
    manifest: &generate::DropManifest,
    base: &str,
) -> anyhow::Result<u8> {
    let token = std::env::var("CDR_PUSH_TOKEN").map_err(|_| {
        UsageError("--push-to needs the token in the environment variable CDR_PUSH_TOKEN".into())
    })?;
    let mut options = generate::push_client::Replay::new(base, &token);
    options.insecure =
        base.starts_with("https://127.0.0.1") || base.starts_with("https://localhost");
    let mut given_up = 0;
    for day in &manifest.days {
        let Some(path) = &day.push_path else { continue };
        let text = std::fs::read_to_string(out.join(path))?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let replayed = generate::push_client::replay(&lines, &options)
            .await
            .map_err(UsageError)?;
        crate::out!(
            "{}: {} records acknowledged, {} given up, {} resent, {} malformed bodies ({} refused with err 1), {} requests",
            day.date,
            replayed.acknowledged.len(),
            replayed.given_up.len(),
            replayed.resends,
            replayed.bad_sent,
            replayed.bad_refused,
            replayed.requests
        );
        given_up += replayed.given_up.len();
    }
    Ok(if given_up == 0 { EXIT_OK } else { EXIT_FAILED })
}

async fn validate(config: &ConfigArg, connect: bool) -> anyhow::Result<u8> {
    let file = &config.config;
    let accounts = if connect {
        config.load_with_source()?
    } else {
        config.load()?
    };
    match accounts.len() {
        1 if accounts[0].account.is_none() => {
            crate::out!("{}: configuration is valid", file.display())
        }
        n => crate::out!("{}: configuration is valid ({n} accounts)", file.display()),
    }
    if !connect {
        return Ok(EXIT_OK);
    }
    let accounts = contexts(accounts)?;
    each_account(&accounts, |ctx| Box::pin(check_connection(&ctx.settings))).await
}

/// `validate --connect`: logs in, lists every folder, and writes, reads and deletes a
/// probe object in the destination.
async fn check_connection(settings: &Settings) -> anyhow::Result<u8> {
    let mut source = source::connect(&settings.source)
        .await
        .with_context(|| format!("connecting to {}", settings.source.endpoint()))?;
    crate::out!("connected to {}", settings.source.endpoint());
    let folders = &settings.source.folders;
    let mut missing = Vec::new();
    // Every feed's folder; one found by what changed (at any depth) only when ingested.
    for feed in FEEDS.iter().filter(|feed| {
        !matches!(feed.unit, Unit::Changed(_))
            || settings.ingest.categories.contains(&feed.category)
    }) {
        let folder = folders.of(feed.category);
        let listed = match feed.unit {
            Unit::Changed(_) => source.list_tree(folder, &mut |_| {}).await,
            _ => source.list(folder, &mut |_| {}).await,
        };
        match listed {
            Ok(files) => crate::out!("  {folder}/: {files} files"),
            Err(e) => {
                crate::out!("  {folder}/: {e}");
                missing.push(folder.to_string());
            }
        }
    }
    source.close().await;
    let store = destination::open(&settings.destination.url, &settings.destination.options)?;
    destination::probe(&store, &settings.destination.url).await?;
    crate::out!(
        "destination {}: wrote, read and deleted a probe object",
        destination::redact(&settings.destination.url)
    );
    if !missing.is_empty() {
        bail!(
            "cannot list {} on {}; check the folder keys in [source]",
            missing.join(", "),
            settings.source.endpoint()
        );
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_question_says_how_much_it_deletes() {
        let planned = retention::Removed {
            days: Vec::new(),
            objects: 2364,
            bytes: 631_200_000,
        };
        let question = purge_question(
            Target::Data(feeds::recordings::CATEGORY),
            "s3://b/p",
            &planned,
        );
        assert!(
            question.starts_with(
                "This deletes 2364 objects (631200000 bytes, 631.2 MB) of category recordings in s3://b/p"
            ),
            "{question}"
        );
        assert!(question.ends_with("Type YES to confirm: "), "{question}");
    }
}
