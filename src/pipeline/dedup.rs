//! Duplicate detection within one file, in bounded memory.
//!
//! Only hashes are kept: 96 bits of a hash of the id (a collision among a day's ids
//! is not a practical concern) and 32 bits of the row's fingerprint, enough to tell an
//! identical repeat (dropped) from a conflicting one (quarantined). 16 bytes a row.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use xxhash_rust::xxh3::xxh3_128;

/// What to do with a row given the rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    First,
    /// Same id, same content: drop it.
    Identical,
    /// Same id, different content: keep the first, quarantine this one.
    Conflicting,
}

/// The ids seen so far, with their row fingerprints.
#[derive(Default)]
pub struct IdSet {
    seen: HashMap<IdKey, u32, BuildHasherDefault<PassThrough>>,
}

impl IdSet {
    /// Room for `rows` ids up front: growing later briefly needs the old and the new
    /// table at once, which would double the peak memory of a big file.
    pub fn with_capacity(rows: usize) -> Self {
        IdSet {
            seen: HashMap::with_capacity_and_hasher(rows, BuildHasherDefault::default()),
        }
    }

    pub fn check(&mut self, id: &str, fingerprint: u64) -> Seen {
        let hash = xxh3_128(id.as_bytes());
        let fingerprint = fingerprint as u32;
        match self.seen.entry(IdKey(hash as u64, (hash >> 64) as u32)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(fingerprint);
                Seen::First
            }
            std::collections::hash_map::Entry::Occupied(e) if *e.get() == fingerprint => {
                Seen::Identical
            }
            std::collections::hash_map::Entry::Occupied(_) => Seen::Conflicting,
        }
    }
}

/// 96 bits of the id's hash; with the `u32` fingerprint an entry packs into 16 bytes.
#[derive(PartialEq, Eq)]
struct IdKey(u64, u32);

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The key is already a good hash; hashing it again would only cost time.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_conflicting_repeats() {
        let mut ids = IdSet::default();
        assert_eq!(ids.check("1.1", 7), Seen::First);
        assert_eq!(ids.check("1.2", 7), Seen::First);
        assert_eq!(ids.check("1.1", 7), Seen::Identical);
        assert_eq!(ids.check("1.1", 8), Seen::Conflicting);
    }
}
