//! Retries of store operations that failed for a reason that may pass (HTTP 5xx,
//! SlowDown, a connection reset), with the backoff of `crate::backoff`. `object_store` already
//! retries inside its HTTP client; this covers what is left when that gives up, and
//! stores without their own retries. Errors that will not pass (not found, access
//! denied, a failed precondition) are returned at once.

use std::future::Future;
use std::time::Duration;

use crate::backoff::{self, Policy};

/// Four tries in all; the wait before the second is about 200 ms, each later one four
/// times longer.
const POLICY: Policy = Policy {
    first_delay: Duration::from_millis(200),
    factor: 4,
    max_delay: Duration::from_secs(10),
    max_tries: Some(4),
};

/// Whether an error from the store may pass if tried again.
pub fn is_transient(error: &object_store::Error) -> bool {
    matches!(
        error,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// The same for an I/O error from a streaming upload, which wraps the store's error.
pub fn is_transient_io(error: &std::io::Error) -> bool {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<object_store::Error>())
    {
        Some(store_error) => is_transient(store_error),
        None => !matches!(
            error.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        ),
    }
}

/// Runs `operation` until it succeeds, fails for good, or has had four tries.
pub async fn with_backoff<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    transient: impl Fn(&E) -> bool,
    operation: impl FnMut() -> F,
) -> Result<T, E> {
    backoff::retry(POLICY, what, transient, operation).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "503 Slow Down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_lasting_ones_are_not() {
        let calls = AtomicU32::new(0);
        let result = with_backoff("put", is_transient, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(generic()) } else { Ok(n) }
        })
        .await;
        assert_eq!(result.unwrap(), 2);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = with_backoff("put", is_transient, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(generic())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = with_backoff("get", is_transient, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
