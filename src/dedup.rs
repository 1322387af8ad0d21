//! Duplicate detection within one file, in memory bounded by a budget, and exact.
//!
//! Each id is first looked up in a Bloom filter of the ids before it: a fixed number of
//! bytes (about 2 a row, at most the budget), whatever the file's size. "Not there" is
//! certain, so such a row is the id's first and is written at once; its id and
//! fingerprint go to a log on disk. A row whose id *may* have come before (a repeat,
//! or a false positive of the filter) is set aside and decided at the end of the file
//! ([`Firsts`]), by comparing ids as text with the logged first rows of the same hash.
//! So a hash collision or a full filter costs a look-up at the end, never a call.
//!
//! The old set held 16 bytes of hashes a row in a `HashMap` sized for the file, which
//! for 10,000,000 rows was 272 MiB (2^24 buckets), and took two rows whose 96-bit
//! hashes and 32-bit fingerprints matched for repeats of one call.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use xxhash_rust::xxh3::xxh3_64;

/// What to do with a row given the rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    First,
    /// Same id, same content: drop it.
    Identical,
    /// Same id, different content: keep the first, quarantine this one.
    Conflicting,
}

/// What the filter says about a row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Certainly the id's first row: write it.
    New,
    /// The id may have come before: set the row aside and decide at the end.
    Maybe,
}

/// Bits of filter a row, when the budget allows: about one row in 1,000 is set aside
/// without being a repeat.
const BITS_PER_ID: u64 = 16;
/// Bytes of the id log's write buffer.
const LOG_BUFFER: usize = 256 * 1024;

/// The ids of the rows so far: a filter in memory, and the first rows' ids on disk.
pub struct IdSet {
    filter: Filter,
    log: Option<BufWriter<File>>,
}

impl IdSet {
    /// A set for a file of about `rows` rows, whose filter takes at most
    /// `budget_bytes` (at least one 32-byte block).
    pub fn new(rows: u64, budget_bytes: usize) -> Self {
        let wanted = rows.saturating_mul(BITS_PER_ID) / 8;
        let bytes = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(budget_bytes);
        IdSet {
            filter: Filter::new(bytes),
            log: None,
        }
    }

    /// Adds `id` (whose row has `fingerprint`) and says whether it may have come before.
    pub fn check(&mut self, id: &str, fingerprint: u64) -> io::Result<Probe> {
        if self.filter.insert(hash(id)) {
            return Ok(Probe::Maybe);
        }
        let log = match &mut self.log {
            Some(log) => log,
            None => self
                .log
                .insert(BufWriter::with_capacity(LOG_BUFFER, tempfile::tempfile()?)),
        };
        write_entry(log, id, fingerprint)?;
        Ok(Probe::New)
    }

    /// The first rows, from the log, of the ids with a hash ([`hash`]) in `wanted`
    /// (those set aside), to decide the rows set aside with.
    pub fn firsts(self, wanted: &HashSet<u64>) -> io::Result<Firsts> {
        let mut fingerprints = HashMap::new();
        if let Some(log) = self.log {
            let mut file = log.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.rewind()?;
            let mut log = BufReader::with_capacity(LOG_BUFFER, file);
            let mut id = Vec::new();
            while let Some(fingerprint) = read_entry(&mut log, &mut id)? {
                if wanted.contains(&xxh3_64(&id)) {
                    let id = String::from_utf8(id.clone()).map_err(io::Error::other)?;
                    fingerprints.insert(id, fingerprint);
                }
            }
        }
        Ok(Firsts { fingerprints })
    }
}

/// The hash the filter and [`IdSet::firsts`] know an id by.
pub fn hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

/// The fingerprints of the first rows of some ids: decides the rows set aside, in
/// the order they came.
pub struct Firsts {
    fingerprints: HashMap<String, u64>,
}

impl Firsts {
    pub fn check(&mut self, id: &str, fingerprint: u64) -> Seen {
        match self.fingerprints.get(id) {
            None => {
                self.fingerprints.insert(id.to_string(), fingerprint);
                Seen::First
            }
            Some(first) if *first == fingerprint => Seen::Identical,
            Some(_) => Seen::Conflicting,
        }
    }
}

/// One logged first row: fingerprint, id length, id.
fn write_entry(out: &mut impl Write, id: &str, fingerprint: u64) -> io::Result<()> {
    out.write_all(&fingerprint.to_le_bytes())?;
    write_text(out, id)
}

/// The next logged row's fingerprint, its id read into `id`.
fn read_entry(input: &mut impl Read, id: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let mut fingerprint = [0; 8];
    match input.read_exact(&mut fingerprint) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut length = [0; 4];
    input.read_exact(&mut length)?;
    id.resize(u32::from_le_bytes(length) as usize, 0);
    input.read_exact(id)?;
    Ok(Some(u64::from_le_bytes(fingerprint)))
}

/// A text as its length (4 bytes) and its UTF-8 bytes.
pub(crate) fn write_text(out: &mut impl Write, text: &str) -> io::Result<()> {
    let length = u32::try_from(text.len()).map_err(|_| io::Error::other("text over 4 GiB"))?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(text.as_bytes())
}

pub(crate) fn read_text(input: &mut impl Read) -> io::Result<String> {
    let mut length = [0; 4];
    input.read_exact(&mut length)?;
    let mut bytes = vec![0; u32::from_le_bytes(length) as usize];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(io::Error::other)
}

/// A split-block Bloom filter (the layout Parquet's bloom filters use): each key sets
/// one bit in each of the eight words of one 32-byte block, so a look-up touches one
/// cache line.
struct Filter {
    blocks: Vec<[u32; 8]>,
}

const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

impl Filter {
    fn new(bytes: usize) -> Self {
        // Zeroed memory from the allocator: pages are only touched as keys arrive.
        Filter {
            blocks: vec![[0; 8]; (bytes / 32).clamp(1, u32::MAX as usize)],
        }
    }

    /// Adds `hash`; whether it may have been added before.
    fn insert(&mut self, hash: u64) -> bool {
        let index = ((hash >> 32) * self.blocks.len() as u64) >> 32;
        let block = &mut self.blocks[index as usize];
        let key = hash as u32;
        let mut present = true;
        for (word, salt) in block.iter_mut().zip(SALT) {
            let bit = 1u32 << (key.wrapping_mul(salt) >> 27);
            present &= *word & bit != 0;
            *word |= bit;
        }
        present
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_is_certain_and_a_repeat_is_decided_against_the_first_row() {
        let mut ids = IdSet::new(100, 1 << 20);
        assert_eq!(ids.check("1.1", 7).unwrap(), Probe::New);
        assert_eq!(ids.check("1.2", 7).unwrap(), Probe::New);
        assert_eq!(ids.check("1.1", 7).unwrap(), Probe::Maybe);
        assert_eq!(ids.check("1.1", 8).unwrap(), Probe::Maybe);
        let mut firsts = ids.firsts(&[hash("1.1")].into()).unwrap();
        assert_eq!(firsts.check("1.1", 7), Seen::Identical);
        assert_eq!(firsts.check("1.1", 8), Seen::Conflicting);
    }

    /// A filter of one block says "maybe" for nearly everything: the rows set aside
    /// are still told apart by their ids, not by hashes.
    #[test]
    fn a_full_filter_only_sets_rows_aside() {
        let mut ids = IdSet::new(1_000, 0);
        let probes: Vec<Probe> = (0..1_000)
            .map(|n| ids.check(&n.to_string(), n).unwrap())
            .collect();
        let aside: Vec<String> = (0..1_000)
            .filter(|&n| probes[n] == Probe::Maybe)
            .map(|n| n.to_string())
            .collect();
        assert!(aside.len() > 900, "{}", aside.len());
        let mut firsts = ids
            .firsts(&aside.iter().map(|id| hash(id)).collect())
            .unwrap();
        for id in &aside {
            let n: u64 = id.parse().unwrap();
            assert_eq!(firsts.check(id, n), Seen::First, "{id}");
            assert_eq!(firsts.check(id, n), Seen::Identical, "{id}");
        }
    }
}
