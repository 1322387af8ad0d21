//! `[schedule]`: when the provider's files are due, which days a pass covers and when
//! the daemon runs. The rules that use these settings are in `crate::schedule`.

use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;

use super::key::{Integer, Key, List, Text};
use super::reader::Section;

/// Days before today that a pass without dates covers.
const LOOKBACK_DAYS: Integer = Integer {
    name: "lookback_days",
    min: 1,
    max: 3650,
    default: 7,
};
/// How long after the drop a missing file is late (retried) before it is a failure.
const LATE_AFTER_HOURS: Integer = Integer {
    name: "late_after_hours",
    min: 0,
    max: 24 * 365,
    default: 24,
};
/// When (UTC, `HH:MM`) the provider uploads day D's files on day D+1.
const DROP_TIME_UTC: Text = Text {
    name: "drop_time_utc",
    default: Some("01:00"),
};
/// When the daemon runs passes: 6-field cron, seconds first, in UTC. The default is a
/// little after the provider's 01:00 GMT drop.
const CRON: Text = Text {
    name: "cron",
    default: Some("0 15 1 * * *"),
};
/// More daemon passes, e.g. for recordings that arrive through the day.
const EXTRA_CRON: List = List {
    name: "extra_cron",
    default: &[],
};

/// Every key of `[schedule]`, in the order they are read.
pub const KEYS: &[Key] = &[
    Key::Integer(LOOKBACK_DAYS),
    Key::Integer(LATE_AFTER_HOURS),
    Key::Text(DROP_TIME_UTC),
    Key::Text(CRON),
    Key::List(EXTRA_CRON),
];

const TIME_FORMAT: &str = "%H:%M";

/// When the provider's files are due and when the worker runs.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Days before today that a pass without dates looks at.
    pub lookback_days: u32,
    /// The provider uploads day D's files at this time (UTC) on day D+1.
    pub drop_time: NaiveTime,
    /// How long after the drop time a missing file is late (retried) before it is a failure.
    pub late_after: Duration,
    /// When the daemon runs passes (6-field cron, seconds first, evaluated in UTC).
    pub passes: Vec<cron::Schedule>,
}

impl Default for ScheduleSettings {
    /// The keys' defaults.
    fn default() -> Self {
        let text = |key: Text| key.default.expect("a default");
        ScheduleSettings {
            lookback_days: LOOKBACK_DAYS.default as u32,
            drop_time: NaiveTime::parse_from_str(text(DROP_TIME_UTC), TIME_FORMAT)
                .expect("a valid time"),
            late_after: hours(LATE_AFTER_HOURS.default),
            passes: vec![cron::Schedule::from_str(text(CRON)).expect("a valid schedule")],
        }
    }
}

fn hours(n: i64) -> Duration {
    Duration::from_secs(n as u64 * 3600)
}

pub(super) fn read(s: &mut Section<'_>) -> ScheduleSettings {
    let defaults = ScheduleSettings::default();
    let lookback_days = LOOKBACK_DAYS.read(s) as u32;
    let late_after = hours(LATE_AFTER_HOURS.read(s));
    let drop_time = match NaiveTime::parse_from_str(&DROP_TIME_UTC.read(s), TIME_FORMAT) {
        Ok(time) => time,
        Err(_) => {
            s.issue(
                DROP_TIME_UTC.name,
                "must be a time of day as HH:MM, e.g. \"01:00\"",
            );
            defaults.drop_time
        }
    };
    let mut passes = Vec::new();
    let cron_text = CRON.read(s);
    let extra = EXTRA_CRON.read(s);
    for (key, text) in std::iter::once((CRON.name, cron_text))
        .chain(extra.into_iter().map(|t| (EXTRA_CRON.name, t)))
    {
        match cron::Schedule::from_str(&text) {
            Ok(schedule) => passes.push(schedule),
            // The parser's message points at the column on a line of its own: kept.
            Err(e) => s.issue(
                key,
                format!("{text:?} is not a cron expression; use 6 fields, seconds first, in UTC, e.g. \"0 15 1 * * *\":\n{}", e.to_string().trim_end()),
            ),
        }
    }
    ScheduleSettings {
        lookback_days,
        drop_time,
        late_after,
        passes,
    }
}
