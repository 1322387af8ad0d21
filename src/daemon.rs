//! The long-running mode: a pass at start (catching up on whatever was missed while
//! down), then a pass at each time the schedule names, until a shutdown. The clock is
//! a parameter, so tests run days of schedule in an instant with tokio's paused time.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::schedule::ScheduleSettings;
use crate::shutdown::Shutdown;

/// Where the time comes from.
pub trait Clock: Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How old the last successful pass may be while the daemon is healthy (`/healthz`):
/// the longest wait between two scheduled passes after `now`, plus two hours for the
/// pass to run (26 h with the default daily schedule).
pub fn healthy_within(schedule: &ScheduleSettings, now: DateTime<Utc>) -> std::time::Duration {
    // A year ahead covers monthly and yearly schedules; a schedule that fires often
    // is cut by count, and the others only count up to where it was cut.
    const MOST: usize = 10_000;
    let horizon = now + chrono::Duration::days(400);
    let mut end = horizon;
    let mut times = Vec::new();
    for pass in &schedule.passes {
        let upcoming: Vec<DateTime<Utc>> = pass
            .after(&now)
            .take_while(|t| *t <= horizon)
            .take(MOST)
            .collect();
        if upcoming.len() == MOST {
            end = end.min(upcoming[MOST - 1]);
        }
        times.extend(upcoming);
    }
    times.retain(|t| *t <= end);
    times.sort_unstable();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(chrono::Duration::days(1));
    gap.to_std().unwrap_or_default() + std::time::Duration::from_secs(2 * 3600)
}

/// Why the daemon's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Told to stop while waiting for the next pass: a normal stop.
    StoppedIdle,
    /// Told to stop while a pass ran, which left work for the next start.
    StoppedInPass,
    /// The schedule names no future time.
    NoFutureTime,
}

/// Runs `pass` now and then at every scheduled time until `shutdown`. `pass` says
/// whether the shutdown cut it short.
pub async fn run<F, Fut>(
    schedule: &ScheduleSettings,
    clock: &dyn Clock,
    shutdown: &Shutdown,
    mut pass: F,
) -> Ended
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut cut_short = pass(clock.now()).await;
    loop {
        if shutdown.is_requested() {
            return if cut_short {
                Ended::StoppedInPass
            } else {
                Ended::StoppedIdle
            };
        }
        let now = clock.now();
        let Some(next) = schedule.next_pass(now) else {
            tracing::warn!("the schedule names no future time; stopping");
            return Ended::NoFutureTime;
        };
        tracing::info!(next_pass = %next, "waiting for the next pass");
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.requested() => return Ended::StoppedIdle,
        }
        cut_short = pass(clock.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Wall time that moves with tokio's (paused) clock.
    struct TestClock {
        start: DateTime<Utc>,
        started: tokio::time::Instant,
    }

    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            self.start + chrono::Duration::from_std(self.started.elapsed()).unwrap()
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    #[tokio::test(start_paused = true)]
    async fn catches_up_at_start_then_follows_the_schedule_until_shutdown() {
        let mut schedule = ScheduleSettings::default();
        schedule
            .passes
            .push(cron::Schedule::from_str("0 0 12 * * *").unwrap());
        let clock = TestClock {
            start: at("2024-03-01T00:00:00Z"),
            started: tokio::time::Instant::now(),
        };
        let (shutdown, trigger) = Shutdown::new(Duration::from_secs(1));
        let passes = Mutex::new(Vec::new());
        let ended = run(&schedule, &clock, &shutdown, |now| {
            let mut passes = passes.lock().unwrap();
            passes.push(now);
            let last = passes.len() == 4;
            if last {
                trigger.request();
            }
            // The last pass is stopped by the shutdown it asked for.
            async move { last }
        })
        .await;
        assert_eq!(ended, Ended::StoppedInPass);
        let passes = passes.into_inner().unwrap();
        assert_eq!(
            passes,
            [
                at("2024-03-01T00:00:00Z"),
                at("2024-03-01T01:15:00Z"),
                at("2024-03-01T12:00:00Z"),
                at("2024-03-02T01:15:00Z"),
            ]
        );
    }

    #[test]
    fn health_allows_the_longest_wait_between_passes_plus_two_hours() {
        let now = at("2024-03-01T00:00:00Z");
        let hours = |d: std::time::Duration| d.as_secs() / 3600;
        let mut schedule = ScheduleSettings::default();
        assert_eq!(hours(healthy_within(&schedule, now)), 26);
        schedule.passes = vec![
            cron::Schedule::from_str("0 0 * * * *").unwrap(),
            cron::Schedule::from_str("0 15 1 * * *").unwrap(),
        ];
        assert_eq!(hours(healthy_within(&schedule, now)), 3, "hourly passes");
        schedule.passes = vec![cron::Schedule::from_str("0 0 3 * * Mon,Thu").unwrap()];
        assert_eq!(hours(healthy_within(&schedule, now)), 4 * 24 + 2);
    }

    /// Regression: a stop while waiting for the next pass exited 4, so every normal
    /// stop of a daemon was recorded as a failure.
    #[tokio::test(start_paused = true)]
    async fn a_stop_while_waiting_is_a_normal_stop() {
        let schedule = ScheduleSettings::default();
        let clock = TestClock {
            start: at("2024-03-01T00:00:00Z"),
            started: tokio::time::Instant::now(),
        };
        let (shutdown, trigger) = Shutdown::new(Duration::from_secs(1));
        let passes = Mutex::new(0);
        let stop = async {
            // Half an hour into the 75-minute wait for 01:15.
            tokio::time::sleep(Duration::from_secs(1800)).await;
            trigger.request();
        };
        let daemon = run(&schedule, &clock, &shutdown, |_| {
            *passes.lock().unwrap() += 1;
            async { false }
        });
        let (ended, ()) = tokio::join!(daemon, stop);
        assert_eq!(ended, Ended::StoppedIdle);
        assert_eq!(*passes.lock().unwrap(), 1, "only the pass at start ran");
    }
}
