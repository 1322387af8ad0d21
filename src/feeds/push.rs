//! Call records pushed over HTTP (`cdr-ingest serve`, see `serve/`): one record per
//! finished call, stored in the destination's inbox as it arrives and compacted into
//! `push_cdr/` and `push_cdr_ivr/` by date. Nothing is polled: the pass skips this feed;
//! it is in the registry for retention, purge, `status` and `ls`, which iterate it.
//! Its `[source]` folder is where `generate` writes the bodies its push client replays.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Dataset, Feed, PushedFeed, Unit};
use crate::model::Category;
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
    calls: &[],
};

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
