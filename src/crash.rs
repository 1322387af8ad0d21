//! Fault injection for the crash-safety tests: with `CDR_INGEST_CRASH_AT=NAME` (or
//! `NAME:N`), the process aborts, as abruptly as `kill -9`, the first (or N-th) time it
//! reaches the point called NAME. Unset, a point costs one comparison.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The points, in the order a file goes through them.
pub const POINTS: [&str; 5] = [
    "downloaded",
    "data-written",
    "before-ledger",
    "ledger-written",
    "recording-copied",
];

static TARGET: OnceLock<Option<(String, u32)>> = OnceLock::new();
static PASSES: AtomicU32 = AtomicU32::new(0);

/// Aborts here if the environment asks for it.
pub fn point(name: &str) {
    let target = TARGET.get_or_init(|| {
        let value = std::env::var("CDR_INGEST_CRASH_AT").ok()?;
        let (point, nth) = value.split_once(':').unwrap_or((&value, "1"));
        Some((point.to_string(), nth.parse().unwrap_or(1)))
    });
    if let Some((point, nth)) = target {
        if point == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            eprintln!("CDR_INGEST_CRASH_AT: aborting at {name}");
            std::process::abort();
        }
    }
}
