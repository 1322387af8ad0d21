//! `[ingest]`: which categories are ingested and how files are handled once found
//! (zip caps, tries, recordings' minimum age, parallel transfers, leases, shutdown).

use std::sync::LazyLock;
use std::time::Duration;

use chrono_tz::Tz;

use super::key::{Flag, Integer, IntegerOrWord, Key, List, NumberOrWord, Text};
use super::reader::Section;
use crate::feeds::{self, FEEDS, Unit};
use crate::formats::queue_zip::ZipLimits;
use crate::model::Category;

/// The feeds to ingest, each named once (default: every feed a pass polls by date; a
/// feed found by what changed in its folder is taken only when named, and a pushed
/// feed, which `serve` receives, is listed to have `status` show it): a missing daily
/// file of a listed feed is reported.
fn categories_key() -> List {
    static EVERY_FEED: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        FEEDS
            .iter()
            .filter(|f| !matches!(f.unit, feeds::Unit::Pushed(_) | feeds::Unit::Changed(_)))
            .map(|f| f.category.as_str())
            .collect()
    });
    List {
        name: "categories",
        default: &EVERY_FEED,
    }
}
/// A recording modified less than this many seconds ago may still be uploading: it is
/// left for the next run.
const RECORDINGS_MIN_AGE_SECS: Integer = Integer {
    name: "recordings_min_age_secs",
    min: 0,
    max: 86_400,
    default: 120,
};
/// Whether each recording's SHA-256 is computed as it is copied, for
/// `recording_index.sha256` (and the ledger): on a fast network it is about a third of
/// the CPU of copying large recordings. `false` leaves the column empty.
const RECORDINGS_SHA256: Flag = Flag {
    name: "recordings_sha256",
    default: true,
};
/// Connections used at once to copy recordings, each with its own TLS session: a
/// number, or `"auto"`: from 4, more while they pay off and the server takes them
/// (`pipeline::transfers`); never above `source.max_connections` either way.
const TRANSFERS: IntegerOrWord = IntegerOrWord {
    name: "transfers",
    min: 1,
    max: 64,
    word: "auto",
    default: NumberOrWord::Word,
};
/// How long a worker's claim on a unit of work lasts if it is not renewed (the worker
/// was killed): held leases are renewed every third of it, so it need not outlast the
/// work, only a stall; a minute has the units of a killed worker taken over soon.
const LEASE_SECS: Integer = Integer {
    name: "lease_secs",
    min: 10,
    max: 7 * 86_400,
    default: 60,
};
/// After SIGTERM/SIGINT, how long files in flight may take to finish before they are
/// abandoned.
const SHUTDOWN_GRACE_SECS: Integer = Integer {
    name: "shutdown_grace_secs",
    min: 0,
    max: 3600,
    default: 30,
};
/// A queue zip with more entries is refused. (The zip caps' defaults are the
/// format's own, `ZipLimits::DEFAULT`.)
const ZIP_MAX_ENTRIES: Integer = Integer {
    name: "zip_max_entries",
    min: 1,
    max: 100_000,
    default: ZipLimits::DEFAULT.max_entries as i64,
};
/// A queue zip that would expand to more bytes is refused.
const ZIP_MAX_UNCOMPRESSED_BYTES: Integer = Integer {
    name: "zip_max_uncompressed_bytes",
    min: 1,
    max: 1 << 50,
    default: ZipLimits::DEFAULT.max_uncompressed_bytes as i64,
};
/// An entry compressed more than this (N:1) is refused as a zip bomb.
const ZIP_MAX_COMPRESSION_RATIO: Integer = Integer {
    name: "zip_max_compression_ratio",
    min: 1,
    max: 100_000,
    default: ZipLimits::DEFAULT.max_compression_ratio as i64,
};
/// Tries of a damaged file (it may still be uploading) before it is reported as
/// failed and left alone until it changes.
const MAX_TRIES: Integer = Integer {
    name: "max_tries",
    min: 1,
    max: 1000,
    default: 5,
};

/// Every key of `[ingest]`, in the order they are read: its own, then each
/// changed-files feed's limits.
pub fn keys() -> Vec<Key> {
    let mut keys = vec![Key::List(categories_key())];
    keys.extend_from_slice(OWN_KEYS);
    for (_, (min_age, max_bytes)) in changed_keys() {
        keys.extend([Key::Integer(min_age), Key::Integer(max_bytes)]);
    }
    keys
}

/// The limits' keys of each feed whose files are found by what changed
/// (`feeds::ChangedFeed::limits`).
fn changed_keys() -> impl Iterator<Item = (Category, (Integer, Integer))> {
    FEEDS.iter().filter_map(|feed| match feed.unit {
        Unit::Changed(changed) => {
            let limits = changed.limits();
            Some((
                feed.category,
                (
                    Integer {
                        name: limits.min_age_key,
                        min: 0,
                        max: 7 * 86_400,
                        default: limits.min_age_secs,
                    },
                    Integer {
                        name: limits.max_bytes_key,
                        min: 1,
                        max: 1 << 40,
                        default: limits.max_bytes,
                    },
                ),
            ))
        }
        _ => None,
    })
}

/// The limits of one changed-files feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedSettings {
    /// A file modified more recently than this may still be being written: left for later.
    pub min_age: Duration,
    /// A bigger file is refused.
    pub max_bytes: u64,
    /// The key of `max_bytes`, for messages.
    pub max_bytes_key: &'static str,
}

/// The time zone of call-history times written without one: an IANA name.
const CALL_HISTORY_TIMEZONE: Text = Text {
    name: "call_history_timezone",
    default: Some("UTC"),
};

const OWN_KEYS: &[Key] = &[
    Key::Integer(ZIP_MAX_ENTRIES),
    Key::Integer(ZIP_MAX_UNCOMPRESSED_BYTES),
    Key::Integer(ZIP_MAX_COMPRESSION_RATIO),
    Key::Integer(MAX_TRIES),
    Key::Integer(RECORDINGS_MIN_AGE_SECS),
    Key::Flag(RECORDINGS_SHA256),
    Key::IntegerOrWord(TRANSFERS),
    Key::Integer(LEASE_SECS),
    Key::Integer(SHUTDOWN_GRACE_SECS),
    Key::Text(CALL_HISTORY_TIMEZONE),
];

/// How many connections copy recordings (and fetch a batch of session files) at once
/// (`ingest.transfers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfers {
    /// This many (up to `source.max_connections`).
    Fixed(usize),
    /// As many as pay off, up to `source.max_connections` and what the server accepts.
    Auto,
}

/// How files are handled once found.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The data categories to ingest, in the order a day is processed.
    pub categories: Vec<Category>,
    /// Caps on what a queue-call zip may expand to.
    pub zip_limits: ZipLimits,
    /// Tries of a damaged file (it may still be uploading) before it is reported as failed.
    pub max_tries: u32,
    /// A recording modified more recently than this may still be uploading: left for later.
    pub recordings_min_age: Duration,
    /// Each recording's SHA-256 is computed as it is copied.
    pub recordings_sha256: bool,
    /// Connections used at once to copy recordings.
    pub transfers: Transfers,
    /// How long a worker's claim on a unit of work (a category of a day) lasts if it
    /// is not released, e.g. because the worker crashed.
    pub lease: Duration,
    /// After SIGTERM/SIGINT, how long files in flight may take to finish before they
    /// are abandoned.
    pub shutdown_grace: Duration,
    /// The limits of each changed-files feed.
    pub changed: Vec<(Category, ChangedSettings)>,
    /// The zone of call-history times written without one.
    pub call_history_timezone: Tz,
}

impl IngestSettings {
    /// The limits of `category`'s feed, which must be a changed-files feed.
    pub fn changed(&self, category: Category) -> ChangedSettings {
        self.changed
            .iter()
            .find(|(c, _)| *c == category)
            .map(|(_, limits)| *limits)
            .expect("every changed-files feed has its limits read")
    }
}

pub(super) fn read(s: &mut Section<'_>) -> IngestSettings {
    let categories = read_categories(s);
    let secs = |n: i64| Duration::from_secs(n as u64);
    IngestSettings {
        categories,
        zip_limits: ZipLimits {
            max_entries: ZIP_MAX_ENTRIES.read(s) as usize,
            max_uncompressed_bytes: ZIP_MAX_UNCOMPRESSED_BYTES.read(s) as u64,
            max_compression_ratio: ZIP_MAX_COMPRESSION_RATIO.read(s) as u64,
        },
        max_tries: MAX_TRIES.read(s) as u32,
        recordings_min_age: secs(RECORDINGS_MIN_AGE_SECS.read(s)),
        recordings_sha256: RECORDINGS_SHA256.read(s),
        transfers: match TRANSFERS.read(s) {
            NumberOrWord::Number(n) => Transfers::Fixed(n as usize),
            NumberOrWord::Word => Transfers::Auto,
        },
        lease: secs(LEASE_SECS.read(s)),
        shutdown_grace: secs(SHUTDOWN_GRACE_SECS.read(s)),
        call_history_timezone: read_zone(s, CALL_HISTORY_TIMEZONE),
        changed: changed_keys()
            .map(|(category, (min_age, max_bytes))| {
                (
                    category,
                    ChangedSettings {
                        min_age: secs(min_age.read(s)),
                        max_bytes: max_bytes.read(s) as u64,
                        max_bytes_key: max_bytes.name,
                    },
                )
            })
            .collect(),
    }
}

/// An IANA time zone name (`Europe/Moscow`, `UTC`).
fn read_zone(s: &mut Section<'_>, key: Text) -> Tz {
    let name = key.read(s);
    name.parse().unwrap_or_else(|_| {
        s.issue(
            key.name,
            format!("{name:?} is not an IANA time zone name (e.g. \"Europe/Moscow\", \"UTC\")"),
        );
        Tz::UTC
    })
}

/// The listed categories, each once, in the order a day is processed.
fn read_categories(s: &mut Section<'_>) -> Vec<Category> {
    let key = categories_key();
    let names = key.read(s);
    let mut categories = Vec::new();
    for name in &names {
        match feeds::by_name(name).map(|f| f.category) {
            Some(c) if !categories.contains(&c) => categories.push(c),
            Some(_) => {}
            None => s.issue(
                key.name,
                format!("{name:?} is not a category; allowed: {}", feeds::names()),
            ),
        }
    }
    if names.is_empty() {
        s.issue(
            key.name,
            format!("must name at least one of {}", feeds::names()),
        );
    }
    categories.sort_by_key(|c| feeds::position(*c));
    categories
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings_of;
    use super::*;

    #[test]
    fn defaults_are_every_polled_category_and_the_formats_zip_caps() {
        let settings = settings_of("[destination]\nurl = \"file:///x\"\n");
        let every: Vec<Category> = FEEDS
            .iter()
            .filter(|f| !matches!(f.unit, feeds::Unit::Pushed(_) | feeds::Unit::Changed(_)))
            .map(|f| f.category)
            .collect();
        assert_eq!(settings.ingest.categories, every);
        assert_eq!(settings.ingest.zip_limits, ZipLimits::default());
        assert_eq!(settings.ingest.max_tries, 5);
        assert_eq!(settings.ingest.lease, Duration::from_secs(60));
        assert_eq!(settings.ingest.transfers, Transfers::Auto);
    }

    /// `ingest.transfers` is "auto" or a number, also from the environment; anything
    /// else is reported with the key and what it may be.
    #[test]
    fn transfers_are_auto_or_a_number() {
        const BASE: &str = "[source]\nurl = \"file:///tmp\"\n[destination]\nurl = \"file:///y\"\n";
        let of = |value: &str| {
            crate::config::Settings::parse(
                &format!("{BASE}[ingest]\ntransfers = {value}\n"),
                &|_| None,
            )
            .map(|s| s.ingest.transfers)
        };
        assert_eq!(of("\"auto\"").unwrap(), Transfers::Auto);
        assert_eq!(of("8").unwrap(), Transfers::Fixed(8));
        assert_eq!(of("\"12\"").unwrap(), Transfers::Fixed(12));
        for bad in ["0", "65", "\"many\"", "2.5", "true"] {
            let issues = of(bad).unwrap_err();
            assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
            let text = issues[0].to_string();
            assert!(
                text.starts_with("ingest.transfers: is ")
                    && text.ends_with("it must be \"auto\" or a whole number from 1 to 64"),
                "{bad}: {text}"
            );
        }
        let env = |name: &str| (name == "CDR_INGEST_INGEST_TRANSFERS").then(|| "6".to_string());
        let settings = crate::config::Settings::parse(BASE, &env).unwrap();
        assert_eq!(settings.ingest.transfers, Transfers::Fixed(6));
    }
}
