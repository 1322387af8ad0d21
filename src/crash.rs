//! Fault injection for the crash-safety and reconnect tests. With
//! `CDR_INGEST_CRASH_AT=NAME` (or `NAME:N`), the process aborts, as abruptly as
//! `kill -9`, the first (or N-th) time it reaches the point called NAME. With
//! `CDR_INGEST_PAUSE_AT=NAME[@SUBJECT][:N]` it stops itself (SIGSTOP) the N-th time it
//! reaches the source point NAME for a path ending in SUBJECT, so that a test can break
//! the server's side at that very moment and then let it go on (SIGCONT). Unset, a
//! point costs one comparison.

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
    if let Some((point, nth)) = target
        && point == name
        && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *nth
    {
        eprintln!("CDR_INGEST_CRASH_AT: aborting at {name}");
        std::process::abort();
    }
}

/// Where `CDR_INGEST_PAUSE_AT` asks to stop: point, end of the subject, which pass.
struct PauseTarget {
    point: String,
    subject: String,
    nth: u32,
}

static PAUSE_TARGET: OnceLock<Option<PauseTarget>> = OnceLock::new();
static PAUSE_PASSES: AtomicU32 = AtomicU32::new(0);

/// Stops the process here until it is continued, if the environment asks for it. The
/// source points: `login` (after the TLS or SSH handshake), `stat`, `list` and
/// `download` (before each try is sent), `listed` (each entry of a listing) and
/// `received` (each chunk of a download).
pub fn pause(name: &str, subject: &str) {
    let target = PAUSE_TARGET.get_or_init(|| {
        let value = std::env::var("CDR_INGEST_PAUSE_AT").ok()?;
        let (spec, nth) = value.rsplit_once(':').unwrap_or((&value, "1"));
        let (point, subject) = spec.split_once('@').unwrap_or((spec, ""));
        Some(PauseTarget {
            point: point.to_string(),
            subject: subject.to_string(),
            nth: nth.parse().unwrap_or(1),
        })
    });
    let Some(target) = target else { return };
    if target.point == name
        && subject.ends_with(&target.subject)
        && PAUSE_PASSES.fetch_add(1, Ordering::SeqCst) + 1 == target.nth
    {
        eprintln!("CDR_INGEST_PAUSE_AT: stopped at {name} {subject}");
        // SAFETY: raise has no preconditions; SIGSTOP stops every thread of the
        // process until SIGCONT, which is the point.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
        eprintln!("CDR_INGEST_PAUSE_AT: continued");
    }
}
