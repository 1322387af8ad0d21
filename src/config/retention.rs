//! `[retention]`: how long each feed's data, and the quarantine, is kept in the
//! destination. Deleting what has aged out is `crate::retention`'s.

use std::collections::BTreeMap;

use super::key::{Key, Retention};
use super::reader::Section;
use crate::feeds::FEEDS;
use crate::model::Category;
use crate::retention::{Keep, Target};

/// The key of each target, named after it: `"forever"` or a number of days from 1 to
/// 999, by the call's UTC date (the quarantine's by its source file's day).
fn key(target: Target) -> Retention {
    Retention {
        name: match target {
            Target::Data(category) => category.as_str(),
            Target::Quarantine => "quarantine",
        },
        // Everything is kept unless a limit is set.
        default: Keep::Forever,
    }
}

/// Every key of `[retention]`: one per feed, then the quarantine's.
pub fn keys() -> Vec<Key> {
    Target::all().map(|t| Key::Retention(key(t))).collect()
}

/// How long each feed's data (and the quarantine) is kept in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Per feed; a feed not listed is kept forever.
    pub data: BTreeMap<Category, Keep>,
    pub quarantine: Keep,
}

impl RetentionSettings {
    pub fn keep(&self, target: Target) -> Keep {
        match target {
            Target::Data(category) => self.data.get(&category).copied().unwrap_or(Keep::Forever),
            Target::Quarantine => self.quarantine,
        }
    }
}

pub(super) fn read(s: &mut Section<'_>) -> RetentionSettings {
    RetentionSettings {
        data: FEEDS
            .iter()
            .map(|feed| (feed.category, key(Target::Data(feed.category)).read(s)))
            .collect(),
        quarantine: key(Target::Quarantine).read(s),
    }
}
