//! Metrics of `cdr-ingest serve`: requests by body format and outcome, records stored
//! and resent, the compaction's backlog and lag, in the same text format as the passes'.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Family, Kind, Value, render};
use crate::formats::push_record::Format;
use crate::serve::Backlog;
use crate::serve::compact::Flushed;
use crate::serve::receive::Outcome;

/// What `serve` counts since it started.
#[derive(Debug, Default, Clone)]
pub struct ServeMetrics {
    requests: BTreeMap<(Format, Outcome), u64>,
    /// Records compacted into their day's file.
    compacted: u64,
    /// Resent records found in their day's file at compaction.
    duplicates_compacted: u64,
    expired: u64,
    flushes: u64,
    flush_failures: u64,
    last_flush: Option<DateTime<Utc>>,
    backlog: Backlog,
    recordings_copied: u64,
    recording_failures: u64,
    recordings_pending: u64,
}

impl ServeMetrics {
    pub fn request(&mut self, format: Format, outcome: Outcome) {
        *self.requests.entry((format, outcome)).or_default() += 1;
    }

    pub fn flushed(&mut self, flushed: &Flushed, at: DateTime<Utc>) {
        if flushed.busy {
            return;
        }
        self.flushes += 1;
        self.compacted += flushed.written.values().sum::<u64>();
        self.duplicates_compacted += flushed.duplicates;
        self.expired += flushed.expired;
        self.last_flush = Some(at);
        if let Some(recordings) = &flushed.recordings {
            self.recordings_copied += recordings.copied;
            self.recording_failures += recordings.failed;
            self.recordings_pending = recordings.pending;
        }
    }

    pub fn flush_failed(&mut self) {
        self.flush_failures += 1;
    }

    pub fn backlog(&mut self, backlog: &Backlog) {
        self.backlog = backlog.clone();
    }

    fn requests_with(&self, outcome: Outcome) -> u64 {
        self.requests
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let counter = |name, help, samples| Family {
            name,
            help,
            kind: Kind::Counter,
            per_feed: false,
            samples,
        };
        let gauge = |name, help, samples| Family {
            name,
            help,
            kind: Kind::Gauge,
            per_feed: false,
            samples,
        };
        let one = |value: u64| vec![(Vec::new(), Value::Int(value))];
        let mut requests = Vec::new();
        for format in [Format::Json, Format::XmlRpc, Format::Form] {
            for outcome in Outcome::ALL {
                let n = self.requests.get(&(format, outcome)).copied().unwrap_or(0);
                requests.push((
                    vec![
                        ("format", format.name().to_string()),
                        ("outcome", outcome.name().to_string()),
                    ],
                    Value::Int(n),
                ));
            }
        }
        let duplicates = vec![
            (
                vec![("stage", "received".to_string())],
                Value::Int(self.requests_with(Outcome::Duplicate)),
            ),
            (
                vec![("stage", "compacted".to_string())],
                Value::Int(self.duplicates_compacted),
            ),
        ];
        let mut families = vec![
            counter(
                "cdr_ingest_push_requests_total",
                "Push requests by body format and outcome (stored, duplicate, unparsable, store_failed, unauthorized, not_found, too_large, timeout).",
                requests,
            ),
            counter(
                "cdr_ingest_push_records_stored_total",
                "Pushed records stored in the inbox (acknowledged with err 0, resends not counted).",
                one(self.requests_with(Outcome::Stored)),
            ),
            counter(
                "cdr_ingest_push_duplicates_total",
                "Resent records: found in the inbox when received, or in their day's file when compacted.",
                duplicates,
            ),
            counter(
                "cdr_ingest_push_records_compacted_total",
                "Pushed records written into push_cdr.",
                one(self.compacted),
            ),
            counter(
                "cdr_ingest_push_records_expired_total",
                "Pushed records older than the retention limit, dropped at compaction.",
                one(self.expired),
            ),
            counter(
                "cdr_ingest_push_flushes_total",
                "Compactions this replica ran (not counting those another replica held the lease for).",
                one(self.flushes),
            ),
            counter(
                "cdr_ingest_push_flush_failures_total",
                "Compactions that failed (the records stay in the inbox).",
                one(self.flush_failures),
            ),
            gauge(
                "cdr_ingest_push_backlog_records",
                "Records stored and not yet compacted, at the last flush.",
                one(self.backlog.records),
            ),
            gauge(
                "cdr_ingest_push_compaction_lag_seconds",
                "How long the oldest record not yet compacted had waited, at the last flush.",
                vec![(Vec::new(), Value::Float(self.backlog.lag_seconds))],
            ),
        ];
        families.extend([
            counter(
                "cdr_ingest_push_recordings_copied_total",
                "Recordings downloaded from the records' URLs into recordings/ (serve.fetch_recordings).",
                one(self.recordings_copied),
            ),
            counter(
                "cdr_ingest_push_recording_fetch_failures_total",
                "Downloads of a recording that failed (each is tried again at the next flush).",
                one(self.recording_failures),
            ),
            gauge(
                "cdr_ingest_push_recordings_pending",
                "Recordings not downloaded yet after the last flush (they failed there).",
                one(self.recordings_pending),
            ),
        ]);
        if let Some(at) = self.last_flush {
            families.push(gauge(
                "cdr_ingest_push_last_flush_timestamp_seconds",
                "When this replica last ran a compaction, Unix time.",
                vec![(Vec::new(), Value::Int(at.timestamp().max(0) as u64))],
            ));
        }
        render(&families)
    }
}
