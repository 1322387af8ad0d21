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
/// Bytes at most of a filter in memory: 2 a row up to 16,777,216 rows, fewer beyond
/// (more rows are then set aside to be decided at the end).
pub const FILTER_BUDGET: usize = 32 << 20;
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
        write_entry(spool(&mut self.log)?, id, fingerprint)?;
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

/// Counts the ids that repeat an earlier one, exactly and in the memory of an
/// [`IdSet`]: the ids its filter may have seen are spooled to disk in their order and
/// decided at the end (`verify` over a 10,000,000-row partition held a `HashSet` of
/// 128-bit hashes: 441 MiB).
pub struct Repeats {
    ids: IdSet,
    /// The hashes of the ids in `maybe`.
    wanted: HashSet<u64>,
    /// The ids the filter may have seen before, in their order, and how many.
    maybe: Option<BufWriter<File>>,
    spooled: u64,
}

impl Repeats {
    /// For about `rows` ids, with at most `budget_bytes` of filter.
    pub fn new(rows: u64, budget_bytes: usize) -> Self {
        Repeats {
            ids: IdSet::new(rows, budget_bytes),
            wanted: HashSet::new(),
            maybe: None,
            spooled: 0,
        }
    }

    pub fn push(&mut self, id: &str) -> io::Result<()> {
        if self.ids.check(id, 0)? == Probe::New {
            return Ok(());
        }
        self.wanted.insert(hash(id));
        self.spooled += 1;
        write_text(spool(&mut self.maybe)?, id)
    }

    /// How many of the ids pushed repeat an earlier one.
    pub fn finish(self) -> io::Result<u64> {
        let Some(maybe) = self.maybe else {
            return Ok(0);
        };
        let mut firsts = self.ids.firsts(&self.wanted)?;
        let mut file = maybe.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        let mut maybe = BufReader::with_capacity(LOG_BUFFER, file);
        let mut repeats = 0;
        for _ in 0..self.spooled {
            let id = read_text(&mut maybe)?;
            if firsts.check(&id, 0) != Seen::First {
                repeats += 1;
            }
        }
        Ok(repeats)
    }
}

/// The spool file in `slot`, made at its first entry.
fn spool(slot: &mut Option<BufWriter<File>>) -> io::Result<&mut BufWriter<File>> {
    Ok(match slot {
        Some(spool) => spool,
        None => slot.insert(BufWriter::with_capacity(LOG_BUFFER, tempfile::tempfile()?)),
    })
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

/// Asks the kernel to back `blocks` with huge pages: each key touches a block at
/// random, and with 4 KiB pages nearly every look-up in a 20 MiB filter (10,000,000
/// rows) also missed the TLB; the load of the block was 93 % of the check (`perf`).
#[cfg(target_os = "linux")]
fn huge_pages(blocks: &[[u32; 8]]) {
    const PAGE: usize = 4096;
    let start = blocks.as_ptr() as usize;
    let end = start + std::mem::size_of_val(blocks);
    let aligned = start.next_multiple_of(PAGE);
    if end.saturating_sub(aligned) < 2 * 1024 * 1024 {
        return;
    }
    // SAFETY: the range lies within the live allocation of `blocks`; MADV_HUGEPAGE
    // changes how its pages are backed, never their contents. A refusal (no
    // transparent huge pages) leaves 4 KiB pages, as before.
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            (end - aligned) / PAGE * PAGE,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn huge_pages(_: &[[u32; 8]]) {}

impl Filter {
    fn new(bytes: usize) -> Self {
        // Zeroed memory from the allocator: pages are only touched as keys arrive.
        let blocks = vec![[0; 8]; (bytes / 32).clamp(1, u32::MAX as usize)];
        huge_pages(&blocks);
        Filter { blocks }
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

    /// [`Repeats`] counts what a set of every id counts, whatever the filter's size
    /// (none: everything is spooled), for ids drawn from a seed with repeats near and
    /// far. Replay with `CDR_TEST_DEDUP_SEEDS`.
    #[test]
    fn repeats_counts_what_a_set_counts() {
        let seeds: u64 = std::env::var("CDR_TEST_DEDUP_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        for seed in 1..=seeds {
            let mut rng = crate::generate::rng::Rng::derive(seed, &[]);
            let rows = 1 + rng.below(5_000);
            let distinct = 1 + rng.below(rows);
            let budget = [0, 64, 1 << 20][rng.below(3) as usize];
            let ids: Vec<String> = (0..rows)
                .map(|_| format!("{}.{}", 1_709_251_200 + rng.below(distinct), rng.below(2)))
                .collect();
            let mut repeats = Repeats::new(rows.into(), budget);
            let mut seen = HashSet::new();
            let mut expected = 0;
            for id in &ids {
                repeats.push(id).unwrap();
                expected += u64::from(!seen.insert(id.as_str()));
            }
            assert_eq!(
                repeats.finish().unwrap(),
                expected,
                "seed {seed}: replay with CDR_TEST_DEDUP_SEEDS={seed}"
            );
        }
    }
}
