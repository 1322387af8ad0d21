//! Duplicate detection within one file, in bounded memory.
//!
//! Only hashes are kept: a 128-bit hash of the id (collisions are not a practical
//! concern) and a 64-bit fingerprint of the row, enough to tell an identical repeat
//! (dropped) from a conflicting one (quarantined). About 24 bytes a row.

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
    seen: HashMap<IdKey, u64, BuildHasherDefault<PassThrough>>,
}

impl IdSet {
    pub fn check(&mut self, id: &str, fingerprint: u64) -> Seen {
        let hash = xxh3_128(id.as_bytes());
        match self.seen.entry(IdKey(hash as u64, (hash >> 64) as u64)) {
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

/// Two halves rather than a `u128`, whose 16-byte alignment would pad every entry.
#[derive(PartialEq, Eq)]
struct IdKey(u64, u64);

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
