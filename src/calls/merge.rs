//! The join: what every feed's rows say about one call become one `calls` row.
//!
//! Rows are one call when they have the same `provider` and `call_id`. For each column
//! group the contributions are ordered by their feed's [`Rank`](super::Rank) for the
//! group, then by start time, source object and line (so the order, and the result,
//! never depends on the order they were read in); the first non-null value wins,
//! column by column. Then the called party's name becomes `queue_name` when the call
//! went to a queue, else `agent_name` of an inbound call someone answered.

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::{Direction, Facts, Mapping, Outcome, Rank};

/// One feed's row about a call, with the mapping that read it.
pub struct Contribution<'a> {
    pub feed: &'static str,
    pub mapping: &'static Mapping,
    pub facts: Facts<'a>,
}

/// One `calls` row, its texts borrowed from the contributions it was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'g> {
    pub provider: &'static str,
    /// The feed whose row gave the times and numbers (`source_object` is its).
    pub feed: &'static str,
    pub call_id: &'g str,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub direction: Option<Direction>,
    pub from_number: Option<&'g str>,
    pub to_number: Option<&'g str>,
    pub did: Option<&'g str>,
    pub destination: Option<&'g str>,
    pub agent_id: Option<&'g str>,
    pub agent_name: Option<&'g str>,
    pub queue_id: Option<&'g str>,
    pub queue_name: Option<&'g str>,
    pub ring_seconds: Option<i64>,
    pub wait_seconds: Option<i64>,
    pub talk_seconds: Option<i64>,
    pub outcome: Outcome,
    pub outcome_detail: Option<&'g str>,
    pub cost: Option<i128>,
    pub currency: Option<&'g str>,
    pub recording_key: Option<&'g str>,
    pub source_object: &'g str,
    pub source_line: Option<i64>,
    /// The codes of this call that no feed's table knows, with the feed and source
    /// object of the row that has each (counted, never written).
    pub unmapped: BTreeSet<(&'static str, &'g str, &'g str)>,
}

/// Joins the contributions into calls, in (`provider`, `call_id`) order: what a
/// rebuild writes, all in memory (the rebuild itself goes through
/// `runs::Runs` the same way).
#[cfg(test)]
pub fn merge(contributions: Vec<Contribution<'_>>) -> Vec<Call<'static>> {
    let mut runs = super::runs::Runs::default();
    let mut calls = Vec::new();
    for c in contributions {
        runs.push(c).expect("in memory");
    }
    runs.for_each_call(|group| {
        // A test's few groups outlive it, for the calls to borrow.
        calls.extend(one_call(Vec::leak(group)));
        Ok(())
    })
    .expect("in memory");
    calls
}

/// The one row of a call from all its contributions (`None`: none gives a start).
pub fn one_call<'g>(group: &'g [Contribution<'_>]) -> Option<Call<'g>> {
    let first_row = group.first()?;
    let (provider, call_id) = (first_row.mapping.provider, &*first_row.facts.call_id);
    // A call of one row (most of them) needs no order, nor the memory of one.
    let alone = [first_row];
    let ordered = |rank: fn(&Rank) -> u8| -> Cow<'_, [&Contribution]> {
        if group.len() == 1 {
            return Cow::Borrowed(&alone);
        }
        let mut order: Vec<&Contribution> = group.iter().collect();
        order.sort_by_key(|c| {
            (
                rank(&c.mapping.rank),
                c.facts.started_at,
                &*c.facts.source_object,
                c.facts.source_line,
            )
        });
        Cow::Owned(order)
    };
    let by_call = ordered(|r| r.call);
    let by_outcome = ordered(|r| r.outcome);
    let by_routing = ordered(|r| r.routing);
    fn first<'g, T>(
        order: &[&'g Contribution<'_>],
        field: impl Fn(&'g Facts<'_>) -> Option<T>,
    ) -> Option<T> {
        order.iter().find_map(|c| field(&c.facts))
    }
    let source = by_call.first()?;

    // The first mapped outcome; else the first code no table knows; else nothing said.
    let said = by_outcome
        .iter()
        .map(|c| &c.facts.said)
        .find(|s| s.outcome.is_some() && !s.unmapped)
        .or_else(|| {
            by_outcome
                .iter()
                .map(|c| &c.facts.said)
                .find(|s| s.unmapped)
        });
    let (outcome, outcome_detail) = match said {
        Some(said) => (
            said.outcome.unwrap_or(Outcome::Other),
            said.detail.as_deref(),
        ),
        None => (
            Outcome::Other,
            first(&by_outcome, |f| f.said.detail.as_deref()),
        ),
    };
    let unmapped = group
        .iter()
        .filter(|c| c.facts.said.unmapped)
        .filter_map(|c| {
            Some((
                c.feed,
                &*c.facts.source_object,
                c.facts.said.detail.as_deref()?,
            ))
        })
        .collect();

    let direction = first(&by_call, |f| f.direction);
    let called_name = first(&by_call, |f| f.called_name.as_deref());
    let queue_id = first(&by_routing, |f| f.queue_id.as_deref());
    let agent_id = first(&by_routing, |f| f.agent_id.as_deref());
    let queue_name =
        first(&by_routing, |f| f.queue_name.as_deref()).or_else(|| queue_id.and(called_name));
    let agent_name = first(&by_routing, |f| f.agent_name.as_deref()).or_else(|| {
        let answered_inbound = queue_id.is_none()
            && direction == Some(Direction::Inbound)
            && outcome == Outcome::Answered
            && agent_id.is_some();
        answered_inbound.then_some(called_name).flatten()
    });
    Some(Call {
        provider,
        feed: source.feed,
        call_id,
        started_at: first(&by_call, |f| f.started_at)?,
        answered_at: first(&by_call, |f| f.answered_at),
        ended_at: first(&by_call, |f| f.ended_at),
        direction,
        from_number: first(&by_call, |f| f.from_number.as_deref()),
        to_number: first(&by_call, |f| f.to_number.as_deref()),
        did: first(&by_call, |f| f.did.as_deref()),
        destination: first(&by_call, |f| f.destination.as_deref()),
        agent_id,
        agent_name,
        queue_id,
        queue_name,
        ring_seconds: first(&by_call, |f| f.ring_seconds),
        wait_seconds: first(&by_routing, |f| f.wait_seconds),
        talk_seconds: first(&by_call, |f| f.talk_seconds),
        outcome,
        outcome_detail,
        cost: first(&by_call, |f| f.cost),
        currency: first(&by_call, |f| f.currency.as_deref()),
        recording_key: first(&by_routing, |f| f.recording_key.as_deref()),
        source_object: &source.facts.source_object,
        source_line: source.facts.source_line,
        unmapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Said;

    fn mapping(call: u8, outcome: u8, routing: u8) -> &'static Mapping {
        Box::leak(Box::new(Mapping {
            dataset: "x",
            provider: "p",
            rank: Rank {
                call,
                outcome,
                routing,
            },
            outcomes: &[],
            direction: "",
            columns: &[],
            facts: |_| None,
            objects: crate::calls::Objects::Every,
            per_call: crate::calls::PerCall::Many,
        }))
    }

    fn said(outcome: Outcome, detail: &'static str) -> Said<'static> {
        Said {
            outcome: Some(outcome),
            detail: Some(detail.into()),
            unmapped: outcome == Outcome::Other,
        }
    }

    /// A CDR-like, a queue-like and a recording-like row of one call, in every order.
    #[test]
    fn each_group_comes_from_its_first_feed_whatever_the_order() {
        let (cdr, queue, recording) = (mapping(0, 1, 2), mapping(1, 0, 1), mapping(2, 2, 0));
        let rows = || {
            vec![
                Contribution {
                    feed: "a",
                    mapping: cdr,
                    facts: Facts {
                        call_id: "1.1".into(),
                        started_at: Some(10),
                        direction: Some(Direction::Inbound),
                        from_number: Some("+481".into()),
                        called_name: Some("Sales queue".into()),
                        said: said(Outcome::NoAnswer, "NO ANSWER"),
                        source_object: "a.csv".into(),
                        source_line: Some(2),
                        ..Facts::default()
                    },
                },
                Contribution {
                    feed: "b",
                    mapping: queue,
                    facts: Facts {
                        call_id: "1.1".into(),
                        started_at: Some(11),
                        from_number: Some("0481".into()),
                        queue_id: Some("11".into()),
                        wait_seconds: Some(30),
                        said: said(Outcome::Abandoned, "U/H"),
                        source_object: "b.csv".into(),
                        source_line: Some(5),
                        ..Facts::default()
                    },
                },
                Contribution {
                    feed: "c",
                    mapping: recording,
                    facts: Facts {
                        call_id: "1.1".into(),
                        started_at: Some(12),
                        agent_id: Some("sales-anna".into()),
                        recording_key: Some("r/1.mp3".into()),
                        source_object: "1.mp3".into(),
                        ..Facts::default()
                    },
                },
            ]
        };
        let want = merge(rows());
        assert_eq!(want.len(), 1);
        let call = &want[0];
        assert_eq!((call.feed, call.started_at), ("a", 10));
        assert_eq!(call.from_number, Some("+481"));
        assert_eq!(
            (call.outcome, call.outcome_detail),
            (Outcome::Abandoned, Some("U/H"))
        );
        assert_eq!(call.queue_name, Some("Sales queue"));
        assert_eq!(call.agent_name, None, "a queue's name is not an agent's");
        assert_eq!(call.agent_id, Some("sales-anna"));
        assert_eq!(call.recording_key, Some("r/1.mp3"));
        for order in [[2, 1, 0], [1, 0, 2], [0, 2, 1]] {
            let mut all: Vec<Option<Contribution>> = rows().into_iter().map(Some).collect();
            let shuffled = order.iter().map(|&i| all[i].take().unwrap()).collect();
            assert_eq!(merge(shuffled), want, "{order:?}");
        }
    }

    /// Spilled runs give what one run in memory gives, for calls spread over runs.
    #[test]
    fn spilled_runs_join_like_one_run_in_memory() {
        use crate::calls::runs::Runs;
        let mapping = &crate::feeds::cdr::FEED.calls[0];
        let rows = || {
            (0..500u32).map(move |n| Contribution {
                feed: "cdr",
                mapping,
                facts: Facts {
                    call_id: format!("{}", (n * 7919) % 173).into(),
                    started_at: Some(i64::from(n)),
                    from_number: (n % 3 == 0).then(|| format!("+48{n}").into()),
                    cost: (n % 5 == 0).then_some(i128::from(n) * 1_000_000),
                    said: said(Outcome::Busy, "BUSY"),
                    source_object: format!("f{}", n % 4).into(),
                    source_line: Some(i64::from(n)),
                    ..Facts::default()
                },
            })
        };
        let collect = |mut runs: Runs| {
            for c in rows() {
                runs.push(c).unwrap();
            }
            let mut calls = Vec::new();
            runs.for_each_call(|group| {
                calls.extend(one_call(Vec::leak(group)));
                Ok(())
            })
            .unwrap();
            calls
        };
        let in_memory = collect(Runs::of(100_000));
        assert_eq!(in_memory.len(), 173);
        for run in [1, 7, 64] {
            assert_eq!(collect(Runs::of(run)), in_memory, "runs of {run}");
        }
    }

    #[test]
    fn an_unmapped_code_yields_to_a_mapped_one_and_is_still_counted() {
        let (first, second) = (mapping(0, 0, 0), mapping(1, 1, 1));
        let facts = |said: Said<'static>, object: &'static str| Facts {
            call_id: "7".into(),
            started_at: Some(1),
            said,
            source_object: object.into(),
            ..Facts::default()
        };
        let merged = merge(vec![
            Contribution {
                feed: "a",
                mapping: first,
                facts: facts(said(Outcome::Other, "ZAP"), "a"),
            },
            Contribution {
                feed: "b",
                mapping: second,
                facts: facts(said(Outcome::Busy, "BUSY"), "b"),
            },
        ]);
        assert_eq!(merged[0].outcome, Outcome::Busy);
        assert_eq!(merged[0].unmapped, [("a", "a", "ZAP")].into());
        let alone = merge(vec![Contribution {
            feed: "a",
            mapping: first,
            facts: facts(said(Outcome::Other, "ZAP"), "a"),
        }]);
        assert_eq!(
            (alone[0].outcome, alone[0].outcome_detail),
            (Outcome::Other, Some("ZAP"))
        );
    }
}
