//! What a changed-files feed has taken from its folder (`pipeline::changed`): per file,
//! the size, modification time and version tag it had when it was last taken in, so a
//! pass takes only what is new or changed since.
//!
//! # Layout and memory
//!
//! ```text
//! _state/seen/<category>/<shard>.json   the files whose path hashes to the shard, by path
//! ```
//!
//! There are [`SHARDS`] shards, by a hash of the path. A pass never holds the whole
//! state: it spools its listing to temporary files by shard, then compares and
//! updates one shard at a time, so memory holds one shard's files (a 256th of the
//! state: about 4,000 entries for a million files), and a pass that changes few files
//! rewrites only the shards they fall in.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::json::{FORMAT_VERSION, JsonStore, StateError};
use crate::model::Category;
use crate::source::RemoteFile;

/// How many shards the state of one feed is split into.
pub const SHARDS: u16 = 256;

/// The shard a file's path falls in.
pub fn shard_of(path: &str) -> u16 {
    (xxhash_rust::xxh3::xxh3_64(path.as_bytes()) % u64::from(SHARDS)) as u16
}

/// The state object of one shard.
pub fn shard_object(category: Category, shard: u16) -> Path {
    Path::from(format!("{}/{shard:03}.json", root(category)))
}

/// The folder of one feed's state (purge empties it).
pub fn root(category: Category) -> String {
    format!("_state/seen/{category}")
}

/// A file as it was when it was taken in: what tells a changed file from the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub path: String,
    pub size: u64,
    /// RFC 3339 UTC, when the source gives a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl Mark {
    pub fn of(file: &RemoteFile) -> Mark {
        Mark {
            path: file.path.clone(),
            size: file.size,
            modified: file.modified.map(rfc3339),
            etag: file.etag.clone(),
        }
    }

    /// The file as the source listed it.
    pub fn remote(&self) -> RemoteFile {
        RemoteFile {
            path: self.path.clone(),
            size: self.size,
            modified: self
                .modified
                .as_deref()
                .and_then(|m| DateTime::parse_from_rfc3339(m).ok())
                .map(|m| m.with_timezone(&Utc)),
            etag: self.etag.clone(),
        }
    }
}

/// A time as the state writes it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[derive(Serialize, Deserialize)]
struct Shard {
    format_version: u32,
    /// Sorted by path.
    files: Vec<Mark>,
}

/// Reads and writes one feed's shards.
pub struct Seen {
    json: JsonStore,
    category: Category,
}

impl Seen {
    pub fn new(json: JsonStore, category: Category) -> Self {
        Seen { json, category }
    }

    /// The files of one shard, by path.
    pub async fn shard(&self, shard: u16) -> Result<BTreeMap<String, Mark>, StateError> {
        let stored: Option<Shard> = self.json.get(&shard_object(self.category, shard)).await?;
        Ok(stored
            .map(|s| s.files.into_iter().map(|m| (m.path.clone(), m)).collect())
            .unwrap_or_default())
    }

    /// Adds (or replaces) `marks` in one shard.
    pub async fn record(&self, shard: u16, marks: Vec<Mark>) -> Result<(), StateError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut files = self.shard(shard).await?;
        for mark in marks {
            files.insert(mark.path.clone(), mark);
        }
        let stored = Shard {
            format_version: FORMAT_VERSION,
            files: files.into_values().collect(),
        };
        self.json
            .put(&shard_object(self.category, shard), &stored)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn marks_are_added_to_their_shard_and_replace_older_ones() {
        let seen = Seen::new(
            JsonStore::new(Arc::new(InMemory::new())),
            Category::new("cdr"),
        );
        let file = |path: &str, size| Mark {
            path: path.into(),
            size,
            modified: None,
            etag: None,
        };
        let shard = shard_of("a/1.json");
        assert!(shard < SHARDS);
        seen.record(shard, vec![file("a/1.json", 3)]).await.unwrap();
        seen.record(shard, vec![file("a/1.json", 4)]).await.unwrap();
        let stored = seen.shard(shard).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored["a/1.json"].size, 4);
        assert_eq!(
            shard_object(Category::new("cdr"), 7).as_ref(),
            "_state/seen/cdr/007.json"
        );
    }
}
