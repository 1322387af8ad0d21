//! `cdr-ingest` copies a hosted PBX's nightly call-record drop from its FTPS server
//! into object storage as deduplicated, date-partitioned Parquet.
//!
//! # Layout
//!
//! ```text
//! config/    TOML file + environment → validated Settings (every error at once)
//! source/    the Source trait (stat, list, download) for FTPS, SFTP, a local folder
//!            and a bucket
//! formats/   pure parsers: bytes in, typed values or reasons to quarantine out
//! model/     exact value types (UTC microseconds, fixed-point money), a feed's name
//! feeds/     one module per thing a provider delivers (cdr, queue, recordings, push) and
//!            FEEDS, the registry every other part iterates
//! calls/     the normalized `calls` dataset: each feed's mapping joined into one row
//!            per call, rebuilt by whoever changes one of its inputs
//! pass       one pass: each daily feed's day, then each listed feed, then retention
//! account_turns  the order a worker takes a pass's accounts in (N workers spread out)
//! pipeline/  the steps a feed's file goes through: check the ledger → transfer →
//!            parse → commit into partitions under their leases; what files end as
//! sink/      every object key (layout), Parquet, partitions (one row per id across
//!            files), quarantine, atomic uploads and retries, the destination
//! store      object stores opened from URLs, for the destination and a bucket source
//! state/     ledger, attempts, leases, run record: kept in the destination, _state/
//! retention  limits per category, incremental deletion, purge
//! schedule   due times, the look-back window, cron; daemon: the loop; shutdown: signals
//! report, status (+ status_page, its HTML), progress, quarantine_report: what the operator sees
//! metrics/   counters and gauges from each pass's report, the Prometheus text format,
//!            the Pushgateway and the node-exporter textfile; http: /metrics, /healthz
//! serve/     `cdr-ingest serve`: pushed records over HTTP, stored create-only before
//!            they are acknowledged, compacted into Parquet by date under a lease
//! verify     checks (and repairs) every partition against the one-row-per-id rule
//! inventory  `ls`: what the destination holds per day and dataset (rows from footers)
//! generate/  a deterministic fake drop for tests, trials and benchmarks, one module per
//!            feed: the oracle the parsers are tested against, so it never uses formats/
//! backoff    the waits between retries, for the store and the source alike
//! crash      fault-injection points for the crash-safety and reconnect tests
//! cli        the subcommands; main.rs maps their outcome to an exit code
//! ```
//!
//! Data flows one way: [`pass`] takes each unit of work (a feed's day) from the
//! registry ([`feeds::FEEDS`]); the feed's code has a [`source::Source`] stream its file
//! through a hashing channel into a blocking parser ([`formats`]), whose rows are
//! deduplicated and written by [`sink`] into temporary Parquet files per call date;
//! only when the download is complete and verified are they settled into their
//! partitions ([`sink::partition`]), and only then is the [`state::ledger`] entry
//! written. Commands return outcomes; only `cli` turns them into exit codes.

/// `println!` for what the commands report: when the reader has gone (`| head`), the
/// rest of the report is dropped and the command still finishes its work (the run
/// record in the state and the log on stderr keep the outcome). A backfill's progress
/// bar, if drawn, is moved out of the way.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        $crate::progress::above_bar(|bar| {
            let write = || writeln!(std::io::stdout().lock(), "{line}");
            let _ = match bar {
                Some(bar) => bar.suspend(write),
                None => write(),
            };
        });
    }};
}

pub mod account_turns;
pub mod backoff;
pub mod calls;
pub mod cli;
pub mod config;
pub mod crash;
pub mod daemon;
mod dedup;
pub mod demo;
pub mod demo_server;
pub mod feeds;
pub mod formats;
pub mod generate;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod model;
pub mod pass;
pub mod pipeline;
pub mod progress;
pub mod quarantine_report;
pub mod report;
pub mod retention;
pub mod schedule;
pub mod serve;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
pub mod status_page;
pub mod store;
pub mod verify;
