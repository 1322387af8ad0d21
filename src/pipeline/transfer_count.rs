//! How many connections copy recordings at once (`ingest.transfers`): a number, or
//! `"auto"`, where a [`Controller`] decides from what it measures, the way a polite
//! peer would.
//!
//! `auto` starts at [`START`] and, while every connection is busy, measures the bytes
//! moved in windows of [`WINDOW`]. After each window it doubles the count (as TCP's
//! slow start does: from 4, 16 is two steps away), as long as the last step paid off:
//! the added connections must have raised the throughput by at least [`PAYOFF`] of
//! their share (4 → 8 must bring at least +50 %, 12 → 16 at least +16.7 %). A step
//! that did not pay off is taken back and the count stays there for the pass: on a fast link, where the CPU or the bandwidth decides,
//! more connections only cost the provider logins. Round trips decide a copy from a
//! server 10–80 ms away, and there each connection adds its own share.
//!
//! Either way the count never goes above `source.max_connections` (whose slot leases
//! also hold across workers, `pipeline::connection`) nor above what the server
//! accepts: when it refuses a connection (FTP `421` "too many connections", a refused
//! or reset connect, a failed login that may pass) while others are open or opening,
//! their number is taken as the server's limit for the rest of the pass, and the
//! connection that was refused gives its place back without failing a file. With
//! every slot taken by other workers, the count falls to what it holds, and may grow
//! again later. Each change is logged at info with its reason.

use std::time::Duration;

use crate::config::Transfers;

/// Connections `auto` starts with.
pub const START: usize = 4;
/// How long one measurement lasts: long enough for several files on each connection
/// at 80 ms a round trip, short enough to reach 16 connections in a few seconds.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The share of their own part of the throughput that added connections must bring.
const PAYOFF: f64 = 0.5;

/// Decides the number of connections; pure (no clock, no I/O), so that it can be
/// tested on synthetic figures.
#[derive(Debug)]
pub struct Controller {
    target: usize,
    /// `source.max_connections`, lowered to what the server accepted.
    ceiling: usize,
    auto: bool,
    /// The connections and throughput (bytes/s) before the last step up.
    before: Option<(usize, f64)>,
    /// No more steps up this pass.
    settled: bool,
}

impl Controller {
    pub fn new(transfers: Transfers, max_connections: usize) -> Controller {
        let max_connections = max_connections.max(1);
        let (target, auto) = match transfers {
            Transfers::Fixed(n) => (n.clamp(1, max_connections), false),
            Transfers::Auto => (START.min(max_connections), true),
        };
        Controller {
            target,
            ceiling: max_connections,
            auto,
            before: None,
            settled: false,
        }
    }

    /// Connections to copy with now.
    pub fn target(&self) -> usize {
        self.target
    }

    /// A window in which `target()` connections were busy throughout moved `bytes` in
    /// `elapsed`; returns the new count if it changes.
    pub fn measured(&mut self, bytes: u64, elapsed: Duration) -> Option<usize> {
        if !self.auto || self.settled || bytes == 0 || elapsed.is_zero() {
            return None;
        }
        let rate = bytes as f64 / elapsed.as_secs_f64();
        let n = self.target;
        if let Some((n0, r0)) = self.before
            && n > n0
        {
            let wanted = r0 * (1.0 + PAYOFF * (n - n0) as f64 / n0 as f64);
            if rate < wanted {
                tracing::info!(
                    from = n,
                    to = n0,
                    mib_per_s = mib(rate),
                    before_mib_per_s = mib(r0),
                    "ingest.transfers = auto: {n} connections move {:.1} MiB/s, {n0} moved {:.1} (the added ones would have to bring {:.1}): back to {n0} for this pass",
                    mib(rate),
                    mib(r0),
                    mib(wanted)
                );
                self.target = n0;
                self.settled = true;
                return Some(n0);
            }
        }
        if n >= self.ceiling {
            tracing::info!(
                transfers = n,
                mib_per_s = mib(rate),
                "ingest.transfers = auto: staying at {n} connections ({:.1} MiB/s), the most source.max_connections and the server allow",
                mib(rate)
            );
            self.settled = true;
            return None;
        }
        let to = (n * 2).min(self.ceiling);
        let why = match self.before {
            None => format!("{:.1} MiB/s with {n} connections", mib(rate)),
            Some((n0, r0)) => format!(
                "{:.1} MiB/s with {n} connections, {:.1} with {n0}",
                mib(rate),
                mib(r0)
            ),
        };
        tracing::info!(
            from = n,
            to,
            mib_per_s = mib(rate),
            "ingest.transfers = auto: {why}: trying {to}"
        );
        self.before = Some((n, rate));
        self.target = to;
        Some(to)
    }

    /// The server refused a connection (`error`) while `live` others were open or
    /// opening: they are its limit for this pass. Returns the new count if it changes.
    pub fn refused(&mut self, live: usize, error: &dyn std::fmt::Display) -> Option<usize> {
        let limit = live.max(1);
        self.ceiling = self.ceiling.min(limit);
        self.settled = true;
        if self.target <= limit {
            return None;
        }
        tracing::info!(
            from = self.target,
            to = limit,
            "the source refused connection {} ({error}): copying with {limit} for this pass",
            live + 1
        );
        self.target = limit;
        Some(limit)
    }

    /// Every connection slot (`source.max_connections`) is held, the others by other
    /// workers: copying with the `live` connections there are. Returns the new count if
    /// it changes.
    pub fn no_slot(&mut self, live: usize) -> Option<usize> {
        let held = live.max(1);
        if self.target <= held {
            return None;
        }
        tracing::info!(
            from = self.target,
            to = held,
            "every connection slot (source.max_connections) is taken, the others by other workers: copying with {held}"
        );
        // The step up that found no slot is not a measurement of this count.
        self.before = None;
        self.target = held;
        Some(held)
    }
}

fn mib(bytes_per_s: f64) -> f64 {
    bytes_per_s / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// Feeds `rate(n)` MiB/s windows until the controller settles; the counts it went
    /// through.
    fn run(controller: &mut Controller, rate: impl Fn(usize) -> f64) -> Vec<usize> {
        let mut counts = vec![controller.target()];
        for _ in 0..100 {
            let bytes = (rate(controller.target()) * MIB as f64) as u64;
            if controller.measured(bytes, WINDOW).is_some() {
                counts.push(controller.target());
            }
            if controller.settled {
                break;
            }
        }
        counts
    }

    /// Round trips decide (each connection moves its own 1 MiB/s): up to
    /// `source.max_connections`, doubling.
    #[test]
    fn latency_bound_grows_to_max_connections() {
        let mut c = Controller::new(Transfers::Auto, 16);
        assert_eq!(run(&mut c, |n| n as f64), [4, 8, 16]);
        let mut c = Controller::new(Transfers::Auto, 64);
        assert_eq!(run(&mut c, |n| n as f64), [4, 8, 16, 32, 64]);
        let mut c = Controller::new(Transfers::Auto, 10);
        assert_eq!(run(&mut c, |n| n as f64), [4, 8, 10]);
        let mut c = Controller::new(Transfers::Auto, 2);
        assert_eq!(run(&mut c, |n| n as f64), [2]);
    }

    /// The link is full at 10 MiB/s: 8 gets to 10 (+25 %, not the +50 % four more
    /// would have to bring), so back to 4.
    #[test]
    fn bandwidth_bound_goes_back_to_the_last_count_that_paid_off() {
        let mut c = Controller::new(Transfers::Auto, 64);
        assert_eq!(run(&mut c, |n| (n as f64 * 2.0).min(10.0)), [4, 8, 4]);
        // Nothing more afterwards, whatever is measured.
        assert_eq!(c.measured(100 * MIB, WINDOW), None);
        assert_eq!(c.target(), 4);
    }

    /// Diminishing returns: each connection adds less than the one before; the
    /// controller stops where a step no longer brings half of its share.
    #[test]
    fn diminishing_returns_stop_where_a_step_stops_paying() {
        // 10 MiB/s at most, each connection bringing 10 % less than the one before:
        // 4 → 8 brings +66 %, 8 → 16 +43 % where +50 % is wanted.
        let mut c = Controller::new(Transfers::Auto, 64);
        let saturating = |n: usize| 10.0 * (1.0 - 0.9f64.powi(n as i32));
        assert_eq!(run(&mut c, saturating), [4, 8, 16, 8]);
        // 20 % less each: 4 → 8 brings +41 %, not +50 %.
        let mut c = Controller::new(Transfers::Auto, 64);
        assert_eq!(
            run(&mut c, |n| 10.0 * (1.0 - 0.8f64.powi(n as i32))),
            [4, 8, 4]
        );
    }

    /// A refusal with three open lowers to three and stops growing; the count never
    /// goes above what the server accepted.
    #[test]
    fn a_refusal_sets_the_limit_for_the_pass() {
        let mut c = Controller::new(Transfers::Auto, 16);
        assert_eq!(c.refused(3, &"421 too many connections"), Some(3));
        assert_eq!(c.target(), 3);
        assert_eq!(c.measured(10 * MIB, WINDOW), None);
        // A second refusal, with fewer open, lowers it again; more open changes nothing.
        assert_eq!(c.refused(2, &"421"), Some(2));
        assert_eq!(c.refused(5, &"421"), None);
        assert_eq!(c.target(), 2);
        // Refused with nothing else open: one connection still tries.
        assert_eq!(c.refused(0, &"refused"), Some(1));
        // During growth: 8 were tried, 6 accepted.
        let mut c = Controller::new(Transfers::Auto, 16);
        assert_eq!(c.measured(4 * MIB, WINDOW), Some(8));
        assert_eq!(c.refused(6, &"421"), Some(6));
        assert_eq!(c.measured(100 * MIB, WINDOW), None);
        // A fixed number is lowered the same way (files are not failed for it).
        let mut c = Controller::new(Transfers::Fixed(8), 16);
        assert_eq!(c.refused(3, &"421"), Some(3));
    }

    /// Without a free slot the count falls to the connections held, then grows again
    /// from there, measured afresh.
    #[test]
    fn no_free_slot_lowers_for_now() {
        let mut c = Controller::new(Transfers::Auto, 16);
        assert_eq!(c.measured(4 * MIB, WINDOW), Some(8));
        assert_eq!(c.no_slot(5), Some(5));
        assert_eq!(c.measured(5 * MIB, WINDOW), Some(10));
        assert_eq!(c.measured(10 * MIB, WINDOW), Some(16));
    }

    /// A fixed number is that many, within `source.max_connections`, and never grows.
    #[test]
    fn a_fixed_number_stays() {
        let mut c = Controller::new(Transfers::Fixed(8), 4);
        assert_eq!(c.target(), 4);
        assert_eq!(c.measured(10 * MIB, WINDOW), None);
        let mut c = Controller::new(Transfers::Fixed(2), 4);
        assert_eq!(run(&mut c, |n| n as f64), [2]);
        // Windows that moved nothing tell nothing.
        let mut c = Controller::new(Transfers::Auto, 16);
        assert_eq!(c.measured(0, WINDOW), None);
        assert_eq!(c.measured(MIB, Duration::ZERO), None);
        assert_eq!(c.target(), 4);
    }
}
