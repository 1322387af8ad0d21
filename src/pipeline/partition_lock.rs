//! The leases of the partitions a file writes into (`sink::partition` says why): taken
//! in one order, so two files that share partitions never wait on each other in a
//! circle, and waited for while another worker holds one, since its work there takes
//! seconds. The order: a feed's datasets by dataset and date, then `calls` by date
//! (which is rebuilt from them, see [`crate::calls`]). They are renewed while held
//! (`state::lease`); a writer checks them with [`confirm`] right before its commit
//! point, and races its writes against their loss ([`fenced`]).

use std::time::{Duration, Instant};

use chrono::Utc;
use object_store::path::Path;

use super::{Context, IngestError};
use crate::sink::layout;
use crate::sink::partition::Partition;
use crate::state::json::StateError;
use crate::state::lease::{self, HeldLease, Lease, Leases};

/// How long a file waits for a partition another worker is writing before it gives up
/// until the next run (a worker that crashed on another machine holds it until its
/// lease expires).
const WAIT: Duration = Duration::from_secs(120);
/// The first pause between tries; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The lease key of a feed dataset's partition.
pub fn lease_of(partition: Partition) -> Path {
    layout::partition_lease(partition.table.dataset, partition.date)
}

/// Takes every lease in `keys`, which must come in the order above.
pub async fn hold(
    ctx: &Context,
    keys: impl Iterator<Item = Path>,
) -> Result<Vec<HeldLease>, IngestError> {
    hold_with(&ctx.leases, keys).await
}

/// [`hold`] for a writer without a pass's context (`serve`'s compaction).
pub async fn hold_with(
    leases: &Leases,
    keys: impl Iterator<Item = Path>,
) -> Result<Vec<HeldLease>, IngestError> {
    let mut held = Vec::new();
    for key in keys {
        match wait_for(leases, key).await {
            Ok(key) => held.push(key),
            Err(e) => {
                release(&held).await;
                return Err(e);
            }
        }
    }
    Ok(held)
}

pub async fn release(held: &[HeldLease]) {
    for lease in held.iter().rev() {
        lease.release().await;
    }
}

/// Fencing before a commit: every lease in `held` is still this worker's.
pub async fn confirm(held: &[HeldLease]) -> Result<(), StateError> {
    for lease in held {
        lease.confirm().await?;
    }
    Ok(())
}

/// `work`'s output, unless a lease in `held` is lost first: then `work` is dropped
/// where it is (as a crash would stop it, which every writer is safe against) and the
/// loss is the answer.
pub async fn fenced<T>(
    held: &[HeldLease],
    work: impl std::future::Future<Output = T>,
) -> Result<T, StateError> {
    tokio::select! {
        out = work => Ok(out),
        lost = lease::first_lost(held) => Err(lost),
    }
}

async fn wait_for(leases: &Leases, key: Path) -> Result<HeldLease, IngestError> {
    let deadline = Instant::now() + WAIT;
    let mut pause = FIRST_PAUSE;
    loop {
        // The wall clock, not the pass's: a lease must expire in real time.
        match leases.acquire_key(key.clone(), Utc::now()).await? {
            Lease::Held(held) => return Ok(held),
            Lease::Busy { holder, .. } if Instant::now() >= deadline => {
                return Err(IngestError::PartitionBusy {
                    lease: key.to_string(),
                    holder,
                    waited_secs: WAIT.as_secs(),
                });
            }
            Lease::Busy { .. } => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}
