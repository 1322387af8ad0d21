//! Subcommands: raw arguments turned into validated settings in one step, then run.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{ConfigErrors, Settings};
use crate::generate;
use crate::pipeline::{self, Context, FileOutcome, PassReport};
use crate::schedule::Due;
use crate::sink::destination;
use crate::source;

/// Everything went well.
pub const EXIT_OK: u8 = 0;
/// The run finished but at least one file failed or was missing; each is reported.
pub const EXIT_FAILED: u8 = 1;
/// The command line or the configuration is wrong; nothing was done.
pub const EXIT_USAGE: u8 = 2;
/// The program could not run at all (e.g. no async runtime).
pub const EXIT_FATAL: u8 = 3;

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
    /// Check a configuration file offline; with --connect also log in and list the folders.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        /// Also connect to the source, log in and list its folders.
        #[arg(long)]
        connect: bool,
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
        /// Add the provider's quirks: BOM + CRLF, repeated rows from the day before,
        /// bad and duplicate rows, an extra column, stray files among the recordings.
        #[arg(long)]
        quirks: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The configuration file (TOML); see config/example.toml.
    #[arg(long, short, env = "CDR_INGEST_CONFIG")]
    pub config: PathBuf,
}

/// Starts `tracing`; `RUST_LOG` sets the level (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
            let settings = Settings::load(&config.config)?;
            let now = chrono::Utc::now();
            let days = match requested_days(date, from, to)? {
                Some(days) => days,
                None => settings.schedule.window(now),
            };
            run(settings, &days, now).await
        }
        Command::Validate { config, connect } => validate(&config.config, connect).await,
        Command::Generate {
            out,
            from,
            to,
            seed,
            rows_per_day,
            recordings_per_day,
            quirks,
        } => {
            let mut spec = generate::DropSpec::new(seed, from, to);
            spec.cdr_rows_per_day = rows_per_day;
            spec.recordings_per_day = recordings_per_day;
            if quirks {
                spec.quirks = generate::Quirks::all();
            }
            let manifest = tokio::task::spawn_blocking(move || {
                generate::write_drop(&out, &spec).map(|m| (m, out))
            })
            .await?
            .map_err(|e| UsageError(format!("cannot write the drop: {e}")))?;
            let (manifest, out) = manifest;
            let rows: usize = manifest.days.iter().map(|d| d.cdr_rows).sum();
            let recordings: usize = manifest.days.iter().map(|d| d.recordings.len()).sum();
            println!(
                "wrote {} day(s) to {}: {rows} CDR rows, {recordings} recordings",
                manifest.days.len(),
                out.display()
            );
            Ok(EXIT_OK)
        }
    }
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

async fn run(
    settings: Settings,
    days: &[NaiveDate],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u8> {
    let store = destination::open(&settings.destination.url, &settings.destination.options)
        .map_err(anyhow::Error::msg)?;
    let ctx = Context::new(settings, store);
    let report = pipeline::run(&ctx, days, now).await;
    print_summary(&report);
    Ok(if report.is_success() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// One line per day on stdout, one line per failure on stderr, then the totals.
fn print_summary(report: &PassReport) {
    let (mut ingested, mut skipped, mut pending, mut failed) = (0, 0, 0, 0);
    let (mut rows, mut rejected, mut duplicates) = (0, 0, 0);
    for day in &report.files {
        match &day.result {
            Ok(FileOutcome::Ingested(i)) => {
                ingested += 1;
                rows += i.rows_written;
                rejected += i.rows_rejected;
                duplicates += i.duplicates_dropped;
                let verb = if i.replaced {
                    "re-ingested (changed on the server)"
                } else {
                    "ingested"
                };
                println!(
                    "{} {}: {verb}, {} rows, {} quarantined, {} duplicates dropped, {} bytes in {:.1} s",
                    day.day,
                    i.path,
                    i.rows_written,
                    i.rows_rejected,
                    i.duplicates_dropped,
                    i.bytes,
                    i.seconds
                );
            }
            Ok(FileOutcome::Unchanged { path }) => {
                skipped += 1;
                println!("{} {path}: already ingested, no transfer", day.day);
            }
            Ok(FileOutcome::SameContent { path }) => {
                skipped += 1;
                println!("{} {path}: unchanged content, ledger updated", day.day);
            }
            Ok(FileOutcome::Busy { holder, until }) => {
                skipped += 1;
                println!(
                    "{} {}: skipped, another worker ({holder}) is ingesting it (its lease ends {until})",
                    day.day, day.category
                );
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::NotYet,
            }) => {
                pending += 1;
                println!(
                    "{} {path}: not due yet (the provider uploads a day's files at 01:00 GMT the next day)",
                    day.day
                );
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::Late { due },
            }) => {
                pending += 1;
                println!(
                    "{} {path}: late, due {due}; tried again on the next pass",
                    day.day
                );
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::Overdue { due },
            }) => {
                failed += 1;
                eprintln!(
                    "FAILED {} {path}: not on the server yet, though due {due} (the provider uploads a day's files at 01:00 GMT the next day); ask the provider, it is tried again on the next run",
                    day.day
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {}: {e}", day.day);
            }
        }
    }
    if let Some(e) = &report.source_error {
        failed += report.not_tried.len();
        eprintln!("FAILED: {e} ({} day(s) not tried)", report.not_tried.len());
    }
    match &report.recordings {
        None => {}
        Some(Err(e)) => {
            failed += 1;
            eprintln!("FAILED recordings: {e}");
        }
        Some(Ok(r)) => {
            failed += r.failures.len();
            println!(
                "recordings: {} copied ({} bytes), {} already copied, {} left for the next run (still being written), {} files in the folder",
                r.copied, r.bytes, r.already, r.pending, r.listed
            );
            if r.unmatched > 0 {
                let more = r.unmatched - r.unmatched_examples.len() as u64;
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                println!(
                    "recordings: {} file(s) do not match YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3 and were not copied: {}{more}",
                    r.unmatched,
                    r.unmatched_examples.join(", ")
                );
            }
            for (path, e) in &r.failures {
                eprintln!("FAILED {path}: {e}");
            }
        }
    }
    println!(
        "summary: {ingested} ingested, {skipped} already up to date, {pending} not there yet, {failed} failed; {rows} rows written, {rejected} quarantined, {duplicates} duplicates dropped"
    );
}

async fn validate(file: &std::path::Path, connect: bool) -> anyhow::Result<u8> {
    let settings = Settings::load(file)?;
    println!("{}: configuration is valid", file.display());
    if !connect {
        return Ok(EXIT_OK);
    }
    let mut source = source::connect(&settings.source)
        .await
        .with_context(|| format!("connecting to {}", settings.source.endpoint()))?;
    println!("connected to {}", settings.source.endpoint());
    let folders = &settings.source.folders;
    let mut missing = Vec::new();
    for folder in [&folders.cdrs, &folders.queue_calls, &folders.recordings] {
        match source.list(folder, &mut |_| {}).await {
            Ok(files) => println!("  {folder}/: {files} files"),
            Err(e) => {
                println!("  {folder}/: {e}");
                missing.push(folder.clone());
            }
        }
    }
    let store = destination::open(&settings.destination.url, &settings.destination.options)
        .map_err(anyhow::Error::msg)?;
    destination::probe(&store, &settings.destination.url)
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
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
