//! The normalized `calls` dataset: one row per call across every feed, so that a BI
//! question is written once for any provider.
//!
//! # The seam
//!
//! A feed that knows about calls lists [`Mapping`]s in its [`Feed`](crate::feeds::Feed):
//! which of its datasets to read, how its rows become [`Facts`] (its columns → the calls
//! columns, its fields → [`Direction`]), its codes → [`Outcome`] as one table of
//! [`Rule`]s, and where its facts stand when another feed reports the same call
//! ([`Rank`]). Nothing here names a feed.
//!
//! # The rules
//!
//! - A `calls/date=D/calls.parquet` object is a function of the *visible* rows of the
//!   mapped datasets' partitions of date D only ([`rebuild`]). Those already follow each
//!   feed's deduplication and correction rules (`sink::partition`), so `calls` inherits
//!   them: it is rebuilt, under its partition lease, by the same commit that changes any
//!   of its inputs, before that commit's ledger entry; by retention and purge after they
//!   delete a feed's days. Whatever order the inputs arrive in, the last rebuild sees
//!   them all and writes the same bytes.
//! - Rows of the same `provider` with the same `call_id` in date D are one call
//!   ([`merge`]). Each column group takes its values from the contributions in the order
//!   of their rank for that group (then by start time and source, so the order is total):
//!   the first non-null value wins, column by column.
//! - An outcome code that a feed's table lacks becomes `other`, keeps its text in
//!   `outcome_detail` and is counted, unless another feed reporting the same call has a
//!   mapped outcome.

use std::borrow::Cow;

pub mod dirty;
mod merge;
pub mod rebuild;
mod record;
pub(crate) mod runs;
mod table;

pub use dirty::{mark, settle, settle_with};
pub use merge::Call;
pub use rebuild::{Count, Rebuilt, rebuild};
pub use record::Record;
pub use table::{DATASET, schema};

/// The one vocabulary of how a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Answered,
    NoAnswer,
    Busy,
    Cancelled,
    Abandoned,
    Voicemail,
    Failed,
    Rejected,
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Answered,
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Cancelled,
        Outcome::Abandoned,
        Outcome::Voicemail,
        Outcome::Failed,
        Outcome::Rejected,
        Outcome::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Cancelled => "cancelled",
            Outcome::Abandoned => "abandoned",
            Outcome::Voicemail => "voicemail",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Other => "other",
        }
    }
}

/// Which way a call went, seen from the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

/// One entry of a feed's outcome table: a code as the provider writes it (compared
/// ignoring ASCII case) and what it means; `None` means the code says nothing about
/// the outcome, so another feed's report of the call decides.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub code: &'static str,
    pub outcome: Option<Outcome>,
}

pub const fn rule(code: &'static str, outcome: Option<Outcome>) -> Rule {
    Rule { code, outcome }
}

/// What one code of a row says about the outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Said<'a> {
    pub outcome: Option<Outcome>,
    /// The provider's code as the table matched it (or, unmapped, as sent).
    pub detail: Option<Cow<'a, str>>,
    /// No rule knows the code: the outcome is [`Outcome::Other`].
    pub unmapped: bool,
}

/// Looks a row's codes up in `rules`: each of `candidates` in turn (most specific
/// first), the first rule that matches decides. None matching: `other`, with
/// `unmapped` kept as the detail.
pub fn classify<'a>(
    rules: &[Rule],
    candidates: impl IntoIterator<Item = Cow<'a, str>>,
    unmapped: Cow<'a, str>,
) -> Said<'a> {
    for candidate in candidates {
        if let Some(rule) = rules
            .iter()
            .find(|r| r.code.eq_ignore_ascii_case(&candidate))
        {
            return Said {
                outcome: rule.outcome,
                detail: Some(candidate),
                unmapped: false,
            };
        }
    }
    Said {
        outcome: Some(Outcome::Other),
        detail: Some(unmapped),
        unmapped: true,
    }
}

/// Where a feed's facts stand, per column group, when several feeds report one call:
/// lower goes first.
#[derive(Debug, Clone, Copy)]
pub struct Rank {
    /// Times, numbers, direction, ring and talk time, cost, the source row.
    pub call: u8,
    /// `outcome`, `outcome_detail`.
    pub outcome: u8,
    /// `agent_id`, `agent_name`, `queue_id`, `queue_name`, `wait_seconds`, `recording_key`.
    pub routing: u8,
}

/// How one dataset of a feed becomes calls rows: one table per feed, kept in its module.
pub struct Mapping {
    /// The dataset whose visible rows of a date are read.
    pub dataset: &'static str,
    /// Who delivers it: calls of different providers never join.
    pub provider: &'static str,
    pub rank: Rank,
    /// Its codes → [`Outcome`], for [`classify`] and README.
    pub outcomes: &'static [Rule],
    /// Its fields → [`Direction`], said in words for README.
    pub direction: &'static str,
    /// The columns `facts` reads: only they are decoded (a rebuild reads a date's
    /// whole partitions); reading another is a bug that debug builds catch.
    pub columns: &'static [&'static str],
    /// One row → what it says about a call (`None`: the row is not about a call); its
    /// texts are borrowed from the row where they are the row's.
    pub facts: for<'a> fn(&Record<'a>) -> Option<Facts<'a>>,
    /// Which of a date's objects hold its visible rows.
    pub objects: Objects,
    /// How many of those rows can be about one call.
    pub per_call: PerCall,
}

/// How many of a dataset's visible rows of a date can be about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerCall {
    /// At most one: its row id is the call id, and a partition holds one row per id
    /// (`sink::partition`). A date only this dataset reports needs no join: each row
    /// is a call, written in the order read.
    One,
    /// Any number (a call's recordings, its queue attempts, its pushed records).
    Many,
}

/// Which objects of a dataset's date folder a rebuild reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objects {
    /// Every one (`sink::partition` keeps only visible rows in the folder).
    Every,
    /// The last in key order: the date is rewritten whole, each time under a higher
    /// generation's name, and an older one is only what a crash left behind.
    Last,
}

/// What one row of one feed says about a call; `None` is "this row does not say".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    pub call_id: Cow<'a, str>,
    /// UTC microseconds.
    pub started_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub direction: Option<Direction>,
    pub from_number: Option<Cow<'a, str>>,
    pub to_number: Option<Cow<'a, str>>,
    pub did: Option<Cow<'a, str>>,
    pub destination: Option<Cow<'a, str>>,
    /// The called party's name (a user, a queue, an IVR): becomes `queue_name` when
    /// the call went to a queue, `agent_name` when someone answered an inbound call.
    pub called_name: Option<Cow<'a, str>>,
    pub agent_id: Option<Cow<'a, str>>,
    pub agent_name: Option<Cow<'a, str>>,
    pub queue_id: Option<Cow<'a, str>>,
    pub queue_name: Option<Cow<'a, str>>,
    pub ring_seconds: Option<i64>,
    pub wait_seconds: Option<i64>,
    pub talk_seconds: Option<i64>,
    pub said: Said<'a>,
    /// Fixed point, [`crate::model::DECIMAL_SCALE`] digits.
    pub cost: Option<i128>,
    pub currency: Option<Cow<'a, str>>,
    pub recording_key: Option<Cow<'a, str>>,
    pub source_object: Cow<'a, str>,
    pub source_line: Option<i64>,
}

impl Facts<'_> {
    /// The same facts, owning their texts (to outlive the row they were read from).
    pub fn into_owned(self) -> Facts<'static> {
        let own = |text: Option<Cow<'_, str>>| text.map(|t| Cow::Owned(t.into_owned()));
        Facts {
            call_id: Cow::Owned(self.call_id.into_owned()),
            started_at: self.started_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            direction: self.direction,
            from_number: own(self.from_number),
            to_number: own(self.to_number),
            did: own(self.did),
            destination: own(self.destination),
            called_name: own(self.called_name),
            agent_id: own(self.agent_id),
            agent_name: own(self.agent_name),
            queue_id: own(self.queue_id),
            queue_name: own(self.queue_name),
            ring_seconds: self.ring_seconds,
            wait_seconds: self.wait_seconds,
            talk_seconds: self.talk_seconds,
            said: Said {
                outcome: self.said.outcome,
                detail: own(self.said.detail),
                unmapped: self.said.unmapped,
            },
            cost: self.cost,
            currency: own(self.currency),
            recording_key: own(self.recording_key),
            source_object: Cow::Owned(self.source_object.into_owned()),
            source_line: self.source_line,
        }
    }
}

/// Seconds to add to a timestamp in microseconds.
pub fn plus_seconds(micros: Option<i64>, seconds: Option<i64>) -> Option<i64> {
    Some(micros? + seconds? * 1_000_000)
}

/// The `account` column of a destination with no `[[accounts]]`.
pub const NO_ACCOUNT: &str = "default";

/// The `account` column of the calls written with `settings`: the account's name.
pub fn account(settings: &crate::config::Settings) -> &str {
    settings
        .account
        .as_ref()
        .map_or(NO_ACCOUNT, |account| account.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[Rule] = &[
        rule("NO ANSWER/Cancelled", Some(Outcome::Cancelled)),
        rule("NO ANSWER", Some(Outcome::NoAnswer)),
        rule("Q/*", None),
    ];

    #[test]
    fn the_most_specific_code_wins_and_an_unknown_one_is_other() {
        let said = classify(
            RULES,
            ["no answer/cancelled".into(), "no answer".into()],
            "x".into(),
        );
        assert_eq!(said.outcome, Some(Outcome::Cancelled));
        let said = classify(
            RULES,
            ["NO ANSWER/Busy".into(), "NO ANSWER".into()],
            "x".into(),
        );
        assert_eq!(said.outcome, Some(Outcome::NoAnswer));
        assert_eq!(said.detail.as_deref(), Some("NO ANSWER"));
        let said = classify(RULES, ["Q/*".into()], "Q/C".into());
        assert_eq!((said.outcome, said.unmapped), (None, false));
        let said = classify(RULES, ["ANSWERD".into()], "ANSWERD".into());
        assert_eq!(
            said,
            Said {
                outcome: Some(Outcome::Other),
                detail: Some("ANSWERD".into()),
                unmapped: true
            }
        );
    }

    #[test]
    fn the_vocabulary_is_the_issues() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "answered",
                "no_answer",
                "busy",
                "cancelled",
                "abandoned",
                "voicemail",
                "failed",
                "rejected",
                "other"
            ]
        );
    }
}
