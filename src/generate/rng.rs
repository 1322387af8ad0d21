//! The drop's only randomness: a tiny SplitMix64 written out here, so the same spec gives
//! the same bytes whatever crate versions are linked; each use derives its own stream
//! from the seed and what it is for (a stream tag, a date, a call), so one feed's draws
//! never shift another's.

use std::ops::RangeInclusive;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
// Stream tags keep the independent uses of one seed apart.
pub(super) const STREAM_CALLS: u64 = 1;
pub(super) const STREAM_CUSTOMER: u64 = 2;
pub(super) const STREAM_RECORDING: u64 = 3;
pub(super) const STREAM_SESSIONS: u64 = 4;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and fixed here so output never changes with a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut h = mix(seed.wrapping_add(GOLDEN));
        for &p in parts {
            h = mix(h ^ mix(p.wrapping_add(GOLDEN)));
        }
        Rng(h)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias of at most n/2^32 does not matter here).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    pub(super) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    pub(super) fn range_u64(&mut self, r: &RangeInclusive<u64>) -> u64 {
        let span = u128::from(r.end() - r.start()) + 1;
        r.start() + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    pub(crate) fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u32) as usize]
    }

    pub(super) fn weighted(&mut self, weights: &[u32]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < sum of weights")
    }
}
