//! `cdr-ingest` copies a hosted PBX's nightly call-record drop from its FTPS server
//! into object storage as deduplicated, date-partitioned Parquet.
//!
//! # Layout
//!
//! ```text
//! config/    TOML file + environment → validated Settings (every error at once)
//! source/    the Source trait (stat, list, download) and its FTPS implementation
//! formats/   pure parsers: bytes in, typed records or reasons to quarantine out
//! model/     typed records and exact value types (UTC microseconds, fixed-point money)
//! sink/      object keys, Parquet building, quarantine, atomic uploads, the store
//! state/     the ledger of ingested files, kept in the destination under _state/
//! pipeline/  one pass: stat → skip known → download while parsing → write → commit
//! generate   a deterministic fake drop for tests, the demo and benchmarks
//! cli        the subcommands; main.rs maps their outcome to an exit code
//! ```
//!
//! Data flows one way: a [`source::Source`] streams a file through a hashing channel
//! into a blocking parser ([`formats`]), whose rows are deduplicated and written by
//! [`sink`] into temporary Parquet files per call date; only when the download is
//! complete and verified are they uploaded, and only then is the [`state::ledger`]
//! entry written.

pub mod cli;
pub mod config;
pub mod crash;
pub mod daemon;
pub mod formats;
pub mod generate;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod quarantine_report;
pub mod report;
pub mod retention;
pub mod schedule;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
