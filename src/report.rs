//! What a pass tells the operator: one line per file on stdout, one line per failure
//! on stderr, a summary line (also as a log event), and the run record in the state.

use chrono::{DateTime, Utc};

use crate::feeds::{self, Unit};
use crate::pipeline::{FileOutcome, IngestError, PassReport};
use crate::schedule::Due;
use crate::state::json::FORMAT_VERSION;
use crate::state::runs::{FileRecord, PassOutcome, RunRecord, UnitState};

/// Prints the pass and returns how it ended.
pub fn print(report: &PassReport) -> PassOutcome {
    let (mut ingested, mut skipped, mut pending, mut failed) = (0, 0, 0, 0);
    let (mut rows, mut rejected, mut duplicates, mut bytes) = (0, 0, 0, 0);
    for file in &report.files {
        let day = file.day;
        match &file.result {
            Ok(FileOutcome::Ingested(i)) => {
                ingested += 1;
                rows += i.rows_written;
                rejected += i.rows_rejected;
                duplicates += i.duplicates_dropped;
                bytes += i.bytes;
                let verb = if i.replaced {
                    "re-ingested (changed on the server)"
                } else {
                    "ingested"
                };
                crate::out!(
                    "{day} {}: {verb}, {} rows, {} quarantined, {} duplicates dropped, {} bytes in {:.1} s",
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
                crate::out!("{day} {path}: already ingested, no transfer");
            }
            Ok(FileOutcome::SameContent { path }) => {
                skipped += 1;
                crate::out!("{day} {path}: unchanged content, ledger updated");
            }
            Ok(FileOutcome::Expired { reason }) => {
                skipped += 1;
                crate::out!("{day} {}: skipped, {reason}", file.category);
            }
            Ok(FileOutcome::Busy { holder, until }) => {
                skipped += 1;
                crate::out!(
                    "{day} {}: skipped, another worker ({holder}) is ingesting it (its lease ends {until})",
                    file.category
                );
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::NotYet,
            }) => {
                pending += 1;
                crate::out!(
                    "{day} {path}: not due yet (the provider uploads a day's files at 01:00 GMT the next day)"
                );
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::Late { due },
            }) => {
                pending += 1;
                crate::out!("{day} {path}: late, due {due}; tried again on the next pass");
            }
            Ok(FileOutcome::NotThereYet {
                path,
                due: Due::Overdue { due },
            }) => {
                failed += 1;
                eprintln!(
                    "FAILED {day} {path}: not on the server yet, though due {due} (the provider uploads a day's files at 01:00 GMT the next day); ask the provider, it is tried again on the next run"
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {day}: {e}");
            }
        }
    }
    if let Some(e) = &report.source_error {
        failed += report.not_tried.len();
        eprintln!("FAILED: {e} ({} day(s) not tried)", report.not_tried.len());
    } else if report.stopped && !report.not_tried.is_empty() {
        crate::out!(
            "stopped by a signal: {} day(s) left for the next run",
            report.not_tried.len()
        );
    }
    for (category, copied) in &report.listed {
        let r = match copied {
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {category}: {e}");
                continue;
            }
            Ok(r) => r,
        };
        {
            failed += r.failures.len();
            bytes += r.bytes;
            rows += r.rows;
            rejected += r.rejected;
            if matches!(feeds::feed(*category).unit, Unit::Changed(_)) {
                crate::out!(
                    "{category}: {} new or changed file(s) taken ({} bytes): {} rows written, {} quarantined, {} stale version(s) ignored, {} unchanged, {} left for the next run (modified too recently), {} files in the folder",
                    r.copied,
                    r.bytes,
                    r.rows,
                    r.rejected,
                    r.stale,
                    r.already,
                    r.pending,
                    r.listed
                );
            } else {
                crate::out!(
                    "{category}: {} copied ({} bytes), {} already copied, {} left for the next run (still being written), {} files in the folder",
                    r.copied,
                    r.bytes,
                    r.already,
                    r.pending,
                    r.listed
                );
            }
            for (day, unmatched) in &r.unmatched {
                let more = unmatched.count - unmatched.examples.len() as u64;
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                let whose = match day {
                    Some(day) => format!("{day} {category}: {} file(s)", unmatched.count),
                    // A changed-files feed reads no date from names.
                    None if matches!(feeds::feed(*category).unit, Unit::Changed(_)) => {
                        format!("{category}: {} file(s)", unmatched.count)
                    }
                    None => format!(
                        "{category}: {} file(s) with no date in the name",
                        unmatched.count
                    ),
                };
                let pattern = match feeds::feed(*category).unit {
                    Unit::Listed(listed) => listed.pattern(),
                    Unit::Changed(changed) => changed.pattern(),
                    Unit::Daily(_) | Unit::Pushed(_) => "",
                };
                crate::out!(
                    "{whose} do not match {pattern} and were not copied: {}{more}",
                    unmatched.examples.join(", ")
                );
            }
            for (path, e) in &r.failures {
                eprintln!("FAILED {path}: {e}");
            }
        }
    }
    for (target, result) in &report.retention {
        match result {
            Ok(removed) if removed.objects > 0 => crate::out!(
                "retention {target}: deleted {} day(s), {} objects, {} bytes",
                removed.days.len(),
                removed.objects,
                removed.bytes
            ),
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                eprintln!("FAILED retention {target}: {e}");
            }
        }
    }
    let unmapped = match &report.calls {
        Some(Ok(rebuilt)) => rebuilt.unmapped,
        Some(Err(e)) => {
            failed += 1;
            eprintln!("FAILED calls: {e}; the next pass rebuilds them");
            0
        }
        None => 0,
    };
    // A provider code no outcome table knows is said, not hidden (see `calls`).
    let unmapped_note = if unmapped > 0 {
        format!(
            "; {unmapped} calls with an outcome code no mapping knows (written as `other`, see the log)"
        )
    } else {
        String::new()
    };
    crate::out!(
        "summary: {ingested} ingested, {skipped} already up to date, {pending} not there yet, {failed} failed; {rows} rows written, {rejected} quarantined, {duplicates} duplicates dropped{unmapped_note}"
    );
    let outcome = if report.stopped {
        PassOutcome::Stopped
    } else if report.is_success() {
        PassOutcome::Ok
    } else {
        PassOutcome::Failed
    };
    tracing::info!(
        outcome = outcome.as_str(),
        ingested,
        skipped,
        pending,
        failed,
        rows,
        rejected,
        duplicates,
        calls_unmapped = unmapped,
        bytes,
        "pass finished"
    );
    outcome
}

/// The run record of a pass, for `status`.
pub fn record(
    report: &PassReport,
    mode: &str,
    started: DateTime<Utc>,
    outcome: PassOutcome,
) -> RunRecord {
    let mut files: Vec<FileRecord> = report
        .files
        .iter()
        .map(|f| {
            let detail = match &f.result {
                Ok(FileOutcome::Ingested(i)) => Some(format!(
                    "{} rows, {} quarantined",
                    i.rows_written, i.rows_rejected
                )),
                Ok(FileOutcome::Busy { holder, .. }) => Some(format!("held by {holder}")),
                Ok(FileOutcome::Expired { reason }) => Some(reason.clone()),
                Ok(FileOutcome::NotThereYet {
                    due: Due::Late { due } | Due::Overdue { due },
                    ..
                }) => Some(format!("due {due}")),
                Ok(
                    FileOutcome::Unchanged { .. }
                    | FileOutcome::SameContent { .. }
                    | FileOutcome::NotThereYet {
                        due: Due::NotYet, ..
                    },
                ) => None,
                Err(e) => Some(e.to_string()),
            };
            FileRecord {
                day: f.day,
                category: f.category.to_string(),
                outcome: unit_state(&f.result),
                detail,
            }
        })
        .collect();
    for day in &report.not_tried {
        files.push(FileRecord {
            day: *day,
            category: "all".into(),
            outcome: if report.stopped {
                UnitState::Stopped
            } else {
                UnitState::NotTried
            },
            detail: report.source_error.as_ref().map(ToString::to_string),
        });
    }
    RunRecord {
        format_version: FORMAT_VERSION,
        mode: mode.to_string(),
        started,
        finished: Utc::now(),
        outcome,
        files,
    }
}

/// Where a file stands after a pass, as `status` shows it and the metrics count it.
pub fn unit_state(result: &Result<FileOutcome, IngestError>) -> UnitState {
    match result {
        Ok(FileOutcome::Ingested(_)) => UnitState::Ingested,
        Ok(FileOutcome::Unchanged { .. } | FileOutcome::SameContent { .. }) => UnitState::Unchanged,
        Ok(FileOutcome::Busy { .. }) => UnitState::Busy,
        Ok(FileOutcome::Expired { .. }) => UnitState::Expired,
        Ok(FileOutcome::NotThereYet { due, .. }) => match due {
            Due::NotYet => UnitState::NotDue,
            Due::Late { .. } => UnitState::Late,
            Due::Overdue { .. } => UnitState::Overdue,
        },
        Err(_) => UnitState::Failed,
    }
}
