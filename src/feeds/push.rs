//! Call records pushed over HTTP (`cdr-ingest serve`, see `serve/`): one record per
//! finished call, stored in the destination's inbox as it arrives and compacted into
//! `push_cdr/` and `push_cdr_ivr/` by date. Nothing is polled: the pass skips this feed;
//! it is in the registry for retention, purge, `status` and `ls`, which iterate it.
//! Its `[source]` folder is where `generate` writes the bodies its push client replays.

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Dataset, Feed, PushedFeed, Unit};
use crate::calls::{
    Direction, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Rule, Said, classify,
    plus_seconds, rule,
};
use crate::model::Category;
use crate::model::DECIMAL_SCALE;
use crate::pipeline::Context;
use crate::serve::{self, compact};
use crate::state::json::StateError;

/// This feed's name.
pub const CATEGORY: Category = Category::new("push_cdr");

static DATASETS: [Dataset; 3] = [
    Dataset {
        name: serve::DATASET,
        table: None,
        quarantine: true,
    },
    Dataset {
        name: serve::IVR_DATASET,
        table: None,
        quarantine: false,
    },
    Dataset {
        name: serve::recordings::INDEX_DATASET,
        table: None,
        quarantine: false,
    },
];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "call records pushed over HTTP to `cdr-ingest serve`, one per call, compacted by date",
    folder: ("push", "push"),
    datasets: &DATASETS,
    unit: Unit::Pushed(&Pushed),
    files: None,
    generate: crate::generate::push::write,
    calls: &CALLS,
};

/// The provider that pushes call records (`../shared/PROVIDER.md` §2).
pub const PUSH_PBX: &str = "push_pbx";

/// A pushed record is the call (the two legs of a click-to-call share its
/// `ivruniqueid`, so they are one call). Only the committed generation of a day is read.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: serve::DATASET,
    provider: PUSH_PBX,
    rank: Rank {
        call: 0,
        outcome: 0,
        routing: 0,
    },
    outcomes: &OUTCOMES,
    direction: "from `type`: `inbound` for Incoming Call, Queue, VoiceMail and the Incoming kinds of Click 2 IVR/Queue; `internal` for Callference, XferCDR, Attended CDR legs and Auto forward; `outbound` for the others (Extension Outgoing, Click2Call and ProductiveCall legs, Click 2 IVR, Scrubber, …)",
    columns: &[
        "ivruniqueid",
        "type",
        "time",
        "caller",
        "target",
        "status",
        "did",
        "queueid",
        "queuename",
        "representative_code",
        "representative_name",
        "duration",
        "dialtime",
        "seconds_waiting_in_queue",
        "price_agorot",
    ],
    facts,
    objects: Objects::Last,
    per_call: PerCall::Many,
}];

/// `status` → outcome. `TE` is documented without a meaning: it says nothing.
static OUTCOMES: [Rule; 14] = [
    rule("ANSWER", Some(Outcome::Answered)),
    rule("NOANSWER", Some(Outcome::NoAnswer)),
    rule("BUSY", Some(Outcome::Busy)),
    rule("CANCEL", Some(Outcome::Cancelled)),
    rule("ABANDONE", Some(Outcome::Abandoned)),
    rule("VOICEMAIL", Some(Outcome::Voicemail)),
    rule("VOEND", Some(Outcome::Voicemail)),
    rule("CONGESTION", Some(Outcome::Failed)),
    rule("CHANUNAVAIL", Some(Outcome::Failed)),
    rule("INVALIDARGS", Some(Outcome::Failed)),
    rule("NOTDIALED", Some(Outcome::Failed)),
    rule("NOTCALLED", Some(Outcome::Failed)),
    rule("SSWPREAUTH", Some(Outcome::Rejected)),
    rule("TE", None),
];

/// A `push_cdr` row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    let id = r.value("ivruniqueid")?;
    let kind = r.text("type").unwrap_or_default();
    let direction = direction_of(kind);
    let started = r.micros("time");
    let (talk, ring) = (r.whole("duration"), r.whole("dialtime"));
    let said = match r.value("status") {
        None => Said::default(),
        Some(code) => classify(&OUTCOMES, [code.clone()], code),
    };
    let answered = talk.is_some_and(|t| t > 0);
    // `queueid` 0 is "no queue".
    let queue_id = r.value("queueid").filter(|q| q != "0");
    Some(Facts {
        // Where the record was stored as it arrived (a record has no file).
        source_object: Cow::Owned(format!(
            "{}/{}",
            serve::inbox::INBOX,
            serve::inbox::object_name(&id, kind)
        )),
        call_id: id,
        started_at: started,
        answered_at: answered
            .then(|| plus_seconds(started, Some(ring.unwrap_or(0))))
            .flatten(),
        ended_at: plus_seconds(started, Some(ring.unwrap_or(0) + talk.unwrap_or(0))),
        direction: Some(direction),
        from_number: r.value("caller"),
        to_number: r.value("target"),
        did: r.value("did").filter(|_| direction == Direction::Inbound),
        agent_id: r.value("representative_code"),
        agent_name: r.value("representative_name"),
        queue_name: queue_id.as_ref().and_then(|_| r.value("queuename")),
        queue_id,
        ring_seconds: ring,
        wait_seconds: r.whole("seconds_waiting_in_queue"),
        talk_seconds: talk,
        said,
        // Agorot, 1/100 of a shekel.
        cost: r
            .whole("price_agorot")
            .map(|agorot| i128::from(agorot) * 10i128.pow(DECIMAL_SCALE as u32 - 2)),
        currency: r.whole("price_agorot").map(|_| Cow::Borrowed("ILS")),
        source_line: None,
        ..Facts::default()
    })
}

/// A record's `type` → which way the call went.
fn direction_of(kind: &str) -> Direction {
    let kind = kind.to_ascii_lowercase();
    if kind.contains("incoming") || kind == "queue" || kind == "voicemail" {
        Direction::Inbound
    } else if ["callference", "xfercdr", "attended cdr", "auto forward"]
        .iter()
        .any(|k| kind.starts_with(k))
    {
        Direction::Internal
    } else {
        Direction::Outbound
    }
}

struct Pushed;

fn state_error(key: &str, e: compact::CompactError) -> StateError {
    StateError::Damaged {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

#[async_trait]
impl PushedFeed for Pushed {
    async fn records(&self, ctx: &Context, day: NaiveDate) -> Result<Option<u64>, StateError> {
        compact::records_of_day(&ctx.store, day)
            .await
            .map_err(|e| state_error(serve::DATASET, e))
    }

    async fn summary(&self, ctx: &Context, now: DateTime<Utc>) -> Result<String, StateError> {
        let backlog = serve::backlog(&ctx.store, now)
            .await
            .map_err(|source| StateError::Read {
                key: serve::inbox::INBOX.into(),
                source,
            })?;
        Ok(backlog.to_string())
    }
}
