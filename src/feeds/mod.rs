//! Feeds: one module per thing a provider delivers, and [`FEEDS`], the one list of them
//! that the pass, retention, status, the reports, purge, verify and the configuration
//! iterate. Outside its own module no code names a particular feed.
//!
//! A feed is a table of facts ([`Feed`]): its name (the [`Category`] the ledger,
//! leases, retention and the command line use), the `[source]` folder it reads, the
//! datasets it writes (each partitioned by call date, with its table, key and
//! quarantine), and how its unit of work is ingested ([`Unit`]): a file per day whose
//! path comes from the day (streamed while parsed, or spooled first: the feed's own
//! code decides), or a folder listed once for all the days of a pass and copied file
//! by file, or records the provider pushes (`serve`) that no pass polls. The ingestion itself is the feed's code, built from the steps in
//! `pipeline` (check against the ledger, transfer, confirm, commit).
//!
//! A feed that knows about calls also maps its rows onto the normalized `calls`
//! dataset ([`Feed::calls`], see [`crate::calls`]): its columns, its outcome codes and
//! its direction rule, as one table in its module.
//!
//! Adding a feed: one module here, one line in [`FEEDS`], its generator in
//! `generate/`, its tests, its README section (with its calls mapping).

pub mod call_history;
pub mod cdr;
pub mod push;
pub mod queue;
pub mod recordings;
pub mod sessions;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::calls::Mapping;
use crate::formats::table::Table;
use crate::generate::WriteFeed;
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::{Context, CopyReport, FileOutcome, IngestError, Observer};
use crate::source::RemoteFile;
use crate::state::json::StateError;

/// Every feed, in the order a day's files are ingested.
pub static FEEDS: [&Feed; 6] = [
    &cdr::FEED,
    &queue::FEED,
    &recordings::FEED,
    &sessions::FEED,
    &call_history::FEED,
    &push::FEED,
];

/// What a feed is: everything the rest of the program needs to know about it.
pub struct Feed {
    pub category: Category,
    /// What it is, for messages and the documentation.
    pub about: &'static str,
    /// The `[source]` key naming the folder it reads, and the folder when that is not set.
    pub folder: (&'static str, &'static str),
    /// The datasets it writes, each under `<name>/date=YYYY-MM-DD/`.
    pub datasets: &'static [Dataset],
    /// How its unit of work is ingested.
    pub unit: Unit,
    /// Objects it owns besides its datasets' partitions (recordings' copies), by call date.
    pub files: Option<&'static dyn OwnedFiles>,
    /// Writes a day of its fake data (`generate/`): the oracle its parser is tested against.
    pub generate: WriteFeed,
    /// How its datasets' rows become `calls` rows (none: it says nothing about calls).
    pub calls: &'static [Mapping],
}

/// The provider of the FTPS/SFTP drop (`../shared/PROVIDER.md` §1), whose feeds' calls
/// join on the call's unique id.
pub const HOSTED_PBX: &str = "hosted_pbx";

/// One dataset a feed writes.
pub struct Dataset {
    pub name: &'static str,
    /// The table its rows follow, when they come from a parsed file (deduplicated by
    /// its key across files, see `sink::partition`); `None` for an index the feed
    /// writes whole per date.
    pub table: Option<&'static Table>,
    /// Rows that cannot be typed are set aside under `_quarantine/<name>/`.
    pub quarantine: bool,
}

/// How a feed's work is divided and done.
pub enum Unit {
    /// One file a day, found at a path made from the day.
    Daily(&'static dyn DailyFeed),
    /// A folder listed once for all the days of a pass, its files copied one by one.
    Listed(&'static dyn ListedFeed),
    /// Records the provider sends (`serve`): no pass polls it; it only reports.
    Pushed(&'static dyn PushedFeed),
    /// A folder searched at any depth once a pass for the files that are new or
    /// changed since the last pass, whatever their names say (`pipeline::changed`
    /// finds them, with the state in `state::seen`); the feed ingests them a batch at
    /// a time.
    Changed(&'static dyn ChangedFeed),
}

#[async_trait]
pub trait DailyFeed: Sync {
    /// Ingests the file of `day` unless the ledger shows it is already in.
    async fn ingest_day(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<FileOutcome, IngestError>;
}

#[async_trait]
pub trait ListedFeed: Sync {
    /// Copies the files of `days` that are not in yet.
    async fn ingest(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        days: &[NaiveDate],
        now: DateTime<Utc>,
        observer: Option<&dyn Observer>,
    ) -> Result<CopyReport, IngestError>;

    /// What a file's name must look like to be copied, for messages.
    fn pattern(&self) -> &'static str;

    /// How many files of `day` are in, from the ledger.
    async fn copied(&self, ctx: &Context, day: NaiveDate) -> Result<Option<u64>, StateError>;
}

#[async_trait]
pub trait PushedFeed: Sync {
    /// How many records of `day` are stored, if any are.
    async fn records(&self, ctx: &Context, day: NaiveDate) -> Result<Option<u64>, StateError>;

    /// One line on what is received and not yet stored in its datasets, for `status`.
    async fn summary(&self, ctx: &Context, now: DateTime<Utc>) -> Result<String, StateError>;
}

/// A feed whose files are found by what changed in its folder (`pipeline::changed`).
///
/// The engine lists the folder tree, keeps the files [`ChangedFeed::wants`] that are
/// new or changed (size, modification time, version tag) and old enough, refuses
/// those over the size limit, and hands the rest to [`ChangedFeed::ingest`] in
/// batches; a file is recorded as taken only after its batch is in. So a batch can
/// come again after a crash: ingesting files already in must change nothing.
#[async_trait]
pub trait ChangedFeed: Sync {
    /// What its files' names look like, for messages (`*.json`).
    fn pattern(&self) -> &'static str;

    /// Whether the file at `path` (as listed, under the folder) is one of the feed's.
    fn wants(&self, path: &str) -> bool;

    /// Its `[ingest]` keys: how old a file must be, and how big it may be.
    fn limits(&self) -> ChangedLimits;

    /// Ingests a batch of new or changed files, downloading each over `connection`
    /// with a retry budget of its own (`Connection::retry_budget`).
    /// Returns one result per file, in the order given; an `Err` for the whole batch
    /// (the destination failed) fails every file of it.
    async fn ingest(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        files: &[RemoteFile],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Taken, IngestError>>, IngestError>;
}

/// The `[ingest]` keys of a changed-files feed's limits, and their defaults.
#[derive(Debug, Clone, Copy)]
pub struct ChangedLimits {
    /// A file modified less than this many seconds ago may still be being written: it
    /// is left for the next pass (`<category>_min_age_secs`).
    pub min_age_key: &'static str,
    pub min_age_secs: i64,
    /// A bigger file is refused with an error, every pass until it changes
    /// (`<category>_max_bytes`).
    pub max_bytes_key: &'static str,
    pub max_bytes: i64,
}

/// What one file of a batch gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Rows written (or replacing rows of an older version).
    pub rows: u64,
    /// Rows or documents set aside in quarantine.
    pub rejected: u64,
    /// Records older than the version already in: nothing written for them.
    pub stale: u64,
}

/// Objects a feed owns outside its datasets' partitions, for retention and purge.
pub trait OwnedFiles: Sync {
    /// The folder of one call date's objects.
    fn folder_of_day(&self, day: NaiveDate) -> String;
    /// The folder all of them are under.
    fn root(&self) -> &'static str;
    /// Whether `key` has the shape of one of them (purge leaves anything else alone).
    fn owns(&self, key: &str) -> bool;
    /// The call date of the one at `key`, if it is one (`ls` counts them per day).
    fn day_of(&self, key: &str) -> Option<NaiveDate>;
}

impl Feed {
    /// The feed's daily unit, if it has one.
    pub fn daily(&self) -> Option<&'static dyn DailyFeed> {
        match self.unit {
            Unit::Daily(daily) => Some(daily),
            Unit::Listed(_) | Unit::Pushed(_) | Unit::Changed(_) => None,
        }
    }

    /// The tables of its datasets that come from parsed files.
    pub fn tables(&self) -> impl Iterator<Item = &'static Table> + '_ {
        self.datasets.iter().filter_map(|d| d.table)
    }
}

/// The feed of `category`. Every category comes from a feed, so there always is one.
pub fn feed(category: Category) -> &'static Feed {
    FEEDS
        .iter()
        .find(|f| f.category == category)
        .expect("every category is a feed's")
}

/// Where `category`'s feed stands in [`FEEDS`]: the order a day's files are ingested.
pub fn position(category: Category) -> usize {
    FEEDS
        .iter()
        .position(|f| f.category == category)
        .unwrap_or(usize::MAX)
}

/// The feed called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static Feed> {
    FEEDS.iter().copied().find(|f| f.category.as_str() == name)
}

/// The feeds' names, for messages listing what is allowed.
pub fn names() -> String {
    FEEDS.map(|f| f.category.as_str()).join(", ")
}

/// Every dataset from parsed files with its feed: the partitions `verify` checks and
/// the tables a ledger entry's outputs can name.
pub fn tables() -> impl Iterator<Item = (&'static Table, Category)> {
    FEEDS
        .iter()
        .flat_map(|feed| feed.tables().map(move |table| (table, feed.category)))
}

/// The table of a dataset, if a feed writes it from parsed files.
pub fn table(dataset: &str) -> Option<&'static Table> {
    tables().map(|(t, _)| t).find(|t| t.dataset == dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_datasets_are_unique() {
        let mut names: Vec<&str> = FEEDS.iter().map(|f| f.category.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEEDS.len());
        let mut datasets: Vec<&str> = FEEDS
            .iter()
            .flat_map(|f| f.datasets.iter().map(|d| d.name))
            .collect();
        let count = datasets.len();
        datasets.sort_unstable();
        datasets.dedup();
        assert_eq!(datasets.len(), count);
        for (t, _) in tables() {
            assert_eq!(table(t.dataset).map(|found| found.dataset), Some(t.dataset));
        }
    }
}
