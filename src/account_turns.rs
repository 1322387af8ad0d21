//! Which account a worker takes next in a pass over several accounts, so that N workers
//! on one destination spread over the accounts instead of all crowding onto the first
//! one (where they would share its `source.max_connections` logins and wait for each
//! other's last units at the end of each account).
//!
//! A worker takes the accounts in the file's order, but first only those no other
//! worker is on: each account's pass is held under an account lease
//! (`_state/leases/pass.json` under its prefix, renewed like every lease, released once
//! the pass is recorded). The accounts another worker was on are come back to at the
//! end, in order: one still held is joined (the two share its units through their
//! leases, as before); one whose latest pass was another worker's, begun after this
//! pass began, covering these days and ended ok, is done (nothing in it is tried
//! again, the account is reported as done by that pass); any other is passed over as
//! usual. The lease is only a hint of where the others are: the units' own leases keep
//! each unit done once whatever it says.

use chrono::{DateTime, NaiveDate, Utc};

use crate::pipeline::Context;
use crate::sink::layout;
use crate::state::lease::{HeldLease, Lease};
use crate::state::runs::{self, PassOutcome, RunRecord, UnitState};

/// How a worker takes an account.
pub enum Turn {
    /// Nobody else is on it: this worker's, while it holds the lease.
    Own(HeldLease),
    /// Another worker is on it (or its lease could not be asked for): passed over
    /// together with whoever is on it.
    Shared,
    /// Another worker's pass, begun after this pass, already did these days.
    Done(RunRecord),
}

/// The first time an account comes up: this worker's if nobody else is on it, `None`
/// if another worker is (come back to it with [`again`]).
pub async fn first(ctx: &Context) -> Option<Turn> {
    match claim(ctx).await {
        Claim::Held(lease) => Some(Turn::Own(lease)),
        Claim::Busy => None,
        Claim::Unknown => Some(Turn::Shared),
    }
}

/// An account another worker was on when it first came up, in a pass that began at
/// `began` over `days`.
pub async fn again(ctx: &Context, began: DateTime<Utc>, days: &[NaiveDate]) -> Turn {
    match claim(ctx).await {
        Claim::Busy | Claim::Unknown => Turn::Shared,
        Claim::Held(lease) => match runs::get(&ctx.json).await {
            Ok(Some(record)) if done_by(&record, began, days) => {
                lease.release().await;
                Turn::Done(record)
            }
            _ => Turn::Own(lease),
        },
    }
}

enum Claim {
    Held(HeldLease),
    Busy,
    Unknown,
}

async fn claim(ctx: &Context) -> Claim {
    match ctx
        .leases
        .acquire_key(layout::account_pass_lease(), Utc::now())
        .await
    {
        Ok(Lease::Held(lease)) => Claim::Held(lease),
        Ok(Lease::Busy { holder, .. }) => {
            tracing::info!(%holder, "another worker is on this account; come back to it at the end");
            Claim::Busy
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not ask for the account's lease; passing over it anyway");
            Claim::Unknown
        }
    }
}

/// Whether `record` (an account's latest pass) did what a pass over `days` begun at
/// `began` would do: it began no earlier, ended ok, and tried each of the days, none
/// of them left to another worker.
fn done_by(record: &RunRecord, began: DateTime<Utc>, days: &[NaiveDate]) -> bool {
    record.outcome == PassOutcome::Ok
        && record.started >= began
        && !record.files.iter().any(|f| {
            matches!(
                f.outcome,
                UnitState::Busy | UnitState::Stopped | UnitState::NotTried | UnitState::Failed
            )
        })
        && days
            .iter()
            .all(|day| record.files.iter().any(|f| f.day == *day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::runs::FileRecord;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn record(started: i64, outcome: PassOutcome, files: &[(u32, UnitState)]) -> RunRecord {
        RunRecord {
            format_version: 1,
            mode: "backfill".into(),
            started: at(started),
            finished: at(started + 60),
            outcome,
            files: files
                .iter()
                .map(|&(d, outcome)| FileRecord {
                    day: day(d),
                    category: "cdr".into(),
                    outcome,
                    detail: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_later_pass_that_did_every_day_is_taken_as_done() {
        let days = [day(1), day(2)];
        let ok = [(1, UnitState::Ingested), (2, UnitState::Unchanged)];
        assert!(done_by(&record(10, PassOutcome::Ok, &ok), at(10), &days));
        assert!(done_by(&record(11, PassOutcome::Ok, &ok), at(10), &days));
    }

    #[test]
    fn anything_less_is_passed_over_again() {
        let days = [day(1), day(2)];
        let ok = [(1, UnitState::Ingested), (2, UnitState::Ingested)];
        // Begun before this pass: it may not have seen what this one would.
        assert!(!done_by(&record(9, PassOutcome::Ok, &ok), at(10), &days));
        assert!(!done_by(
            &record(10, PassOutcome::Failed, &ok),
            at(10),
            &days
        ));
        // Not every day of this pass.
        let one = [(1, UnitState::Ingested)];
        assert!(!done_by(&record(10, PassOutcome::Ok, &one), at(10), &days));
        for left in [
            UnitState::Busy,
            UnitState::Stopped,
            UnitState::NotTried,
            UnitState::Failed,
        ] {
            let files = [(1, UnitState::Ingested), (2, left)];
            assert!(
                !done_by(&record(10, PassOutcome::Ok, &files), at(10), &days),
                "{left}"
            );
        }
    }
}
