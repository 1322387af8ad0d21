//! `[retention]`: how long each data category, and the quarantine, is kept in the
//! destination. Deleting what has aged out is `crate::retention`'s.

use super::key::{Key, Retention};
use super::reader::Section;
use crate::model::Category;
use crate::retention::{Keep, Target};

/// The key of each target, one line per target: `"forever"` or a number of days from 1
/// to 999, by the call's UTC date. (The feeds will supply the categories' lines.)
const TARGETS: [(Target, Retention); 4] = [
    (Target::Data(Category::Cdr), keep("cdr")),
    (Target::Data(Category::Queue), keep("queue")),
    (Target::Data(Category::Recordings), keep("recordings")),
    (Target::Quarantine, keep("quarantine")),
];

/// Everything is kept unless a limit is set.
const fn keep(name: &'static str) -> Retention {
    Retention {
        name,
        default: Keep::Forever,
    }
}

/// Every key of `[retention]`.
pub const KEYS: &[Key] = &[
    Key::Retention(TARGETS[0].1),
    Key::Retention(TARGETS[1].1),
    Key::Retention(TARGETS[2].1),
    Key::Retention(TARGETS[3].1),
];

/// How long each data category (and the quarantine) is kept in the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub cdr: Keep,
    pub queue: Keep,
    pub recordings: Keep,
    pub quarantine: Keep,
}

impl RetentionSettings {
    pub fn keep(&self, target: Target) -> Keep {
        match target {
            Target::Data(Category::Cdr) => self.cdr,
            Target::Data(Category::Queue) => self.queue,
            Target::Data(Category::Recordings) => self.recordings,
            Target::Quarantine => self.quarantine,
        }
    }
}

pub(super) fn read(s: &mut Section<'_>) -> RetentionSettings {
    let [cdr, queue, recordings, quarantine] = TARGETS.map(|(_, key)| key.read(s));
    RetentionSettings {
        cdr,
        queue,
        recordings,
        quarantine,
    }
}
