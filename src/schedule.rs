//! Time rules, all taking the clock as a parameter so tests control it: when a day's
//! files are due, which days a scheduled pass covers, and when the daemon runs next.

use chrono::{DateTime, NaiveDate, Utc};

// The settings (what `[schedule]` holds, with its defaults) are read in config/schedule.rs.
pub use crate::config::ScheduleSettings;

/// Where a missing file of `day` stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Before the drop time: not expected yet.
    NotYet,
    /// After the drop time, within the grace period: tried again on the next pass.
    Late { due: DateTime<Utc> },
    /// Past the grace period: reported as a failure.
    Overdue { due: DateTime<Utc> },
}

impl ScheduleSettings {
    /// When the files of `day` are due.
    pub fn due(&self, day: NaiveDate) -> DateTime<Utc> {
        day.succ_opt()
            .unwrap_or(day)
            .and_time(self.drop_time)
            .and_utc()
    }

    /// How a file of `day` that is not on the server stands at `now`.
    pub fn missing(&self, day: NaiveDate, now: DateTime<Utc>) -> Due {
        let due = self.due(day);
        if now < due {
            Due::NotYet
        } else if now < due + chrono::Duration::from_std(self.late_after).unwrap_or_default() {
            Due::Late { due }
        } else {
            Due::Overdue { due }
        }
    }

    /// The days a pass without dates covers: the look-back window up to yesterday,
    /// oldest first.
    pub fn window(&self, now: DateTime<Utc>) -> Vec<NaiveDate> {
        let today = now.date_naive();
        (1..=self.lookback_days as u64)
            .rev()
            .filter_map(|back| today.checked_sub_days(chrono::Days::new(back)))
            .collect()
    }

    /// The last `days` days up to yesterday (default: the look-back window).
    pub fn last_days(&self, days: Option<u32>, now: DateTime<Utc>) -> Vec<NaiveDate> {
        ScheduleSettings {
            lookback_days: days.unwrap_or(self.lookback_days),
            ..self.clone()
        }
        .window(now)
    }

    /// The next time after `now` at which the daemon runs a pass.
    pub fn next_pass(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.passes
            .iter()
            .filter_map(|s| s.after(&now).next())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_missing_file_is_not_yet_due_then_late_then_overdue() {
        let s = ScheduleSettings::default();
        let d = day("2024-03-01");
        assert_eq!(s.missing(d, at("2024-03-02T00:59:59Z")), Due::NotYet);
        let due = at("2024-03-02T01:00:00Z");
        assert_eq!(s.missing(d, due), Due::Late { due });
        assert_eq!(s.missing(d, at("2024-03-03T00:59:59Z")), Due::Late { due });
        assert_eq!(
            s.missing(d, at("2024-03-03T01:00:00Z")),
            Due::Overdue { due }
        );
    }

    #[test]
    fn the_window_ends_yesterday() {
        let s = ScheduleSettings {
            lookback_days: 3,
            ..ScheduleSettings::default()
        };
        assert_eq!(
            s.window(at("2024-03-01T00:30:00Z")),
            [day("2024-02-27"), day("2024-02-28"), day("2024-02-29")]
        );
    }

    #[test]
    fn the_next_pass_is_evaluated_in_utc() {
        let mut s = ScheduleSettings::default();
        assert_eq!(
            s.next_pass(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-01T01:15:00Z"))
        );
        assert_eq!(
            s.next_pass(at("2024-03-01T01:15:00Z")),
            Some(at("2024-03-02T01:15:00Z"))
        );
        s.passes
            .push(cron::Schedule::from_str("0 0 */6 * * *").unwrap());
        assert_eq!(
            s.next_pass(at("2024-03-01T01:15:00Z")),
            Some(at("2024-03-01T06:00:00Z"))
        );
    }
}
