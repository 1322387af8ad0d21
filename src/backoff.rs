//! Waits between tries of an operation that failed for a reason that may pass: the one
//! backoff behind the store's retries (`sink::retry`) and the source's
//! (`pipeline::connection`). Each wait is longer than the one before, up to a cap, and
//! drawn at random from its upper half (jitter), so that workers that failed together
//! do not all come back at the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// How long to wait between tries and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The wait before the second try; each later one is `factor` times longer.
    pub first_delay: Duration,
    pub factor: u32,
    pub max_delay: Duration,
    /// Tries in all, the first included.
    pub max_tries: Option<u32>,
    /// No try is started later than this after the first failure.
    pub within: Option<Duration>,
}

/// Where a sequence of tries stands.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    tries: u32,
    delay: Duration,
    first_failure: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            tries: 1,
            delay: policy.first_delay,
            first_failure: None,
        }
    }

    /// Called after a failed try: how long to wait before the next one, or `None` when
    /// the policy allows no more. The last wait ends at the time limit, not after it.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let first_failure = *self.first_failure.get_or_insert(now);
        if self.policy.max_tries.is_some_and(|max| self.tries >= max) {
            return None;
        }
        let mut wait = jitter(self.delay);
        if let Some(within) = self.policy.within {
            let left = within.checked_sub(now - first_failure)?;
            if left.is_zero() {
                return None;
            }
            wait = wait.min(left);
        }
        self.tries += 1;
        self.delay = (self.delay * self.policy.factor).min(self.policy.max_delay);
        Some(wait)
    }

    /// The operation got further before it failed again (a download took more bytes):
    /// the next wait is the first one again. The time limit still counts from the
    /// first failure.
    pub fn progressed(&mut self) {
        self.delay = self.policy.first_delay;
    }

    /// Tries so far, the first included.
    pub fn tries(&self) -> u32 {
        self.tries
    }
}

/// A wait drawn uniformly from the upper half of `delay`.
fn jitter(delay: Duration) -> Duration {
    let random = std::hash::RandomState::new().build_hasher().finish();
    let half = delay / 2;
    half + Duration::from_nanos(random % (half.as_nanos() as u64 + 1))
}

/// Runs `operation` until it succeeds, fails for good (`transient` says no), or
/// `policy` allows no more tries; each retry is logged with `what` it was.
pub async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    policy: Policy,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut operation: impl FnMut() -> F,
) -> Result<T, E> {
    let mut backoff = Backoff::new(policy);
    loop {
        match operation().await {
            Err(e) if transient(&e) => {
                let Some(wait) = backoff.next_delay() else {
                    return Err(e);
                };
                tracing::warn!(operation = what, try_number = backoff.tries() - 1, error = %e, retry_in_ms = crate::pipeline::millis(wait), "failed; retrying");
                tokio::time::sleep(wait).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        first_delay: Duration::from_millis(500),
        factor: 2,
        max_delay: Duration::from_secs(30),
        max_tries: None,
        within: Some(Duration::from_secs(300)),
    };

    #[test]
    fn waits_grow_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Policy {
            within: None,
            max_tries: Some(12),
            ..POLICY
        });
        let mut ceiling = Duration::from_millis(500);
        for _ in 1..12 {
            let wait = backoff.next_delay().unwrap();
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(Duration::from_secs(30));
        }
        assert_eq!(backoff.next_delay(), None, "12 tries in all");
        assert_eq!(backoff.tries(), 12);
    }

    #[test]
    fn progress_starts_the_waits_over() {
        let mut backoff = Backoff::new(POLICY);
        for _ in 0..5 {
            backoff.next_delay().unwrap();
        }
        backoff.progressed();
        assert!(backoff.next_delay().unwrap() <= Duration::from_millis(500));
    }

    /// The tries stop at the time limit, the last wait ending on it; no limit, no retry.
    #[tokio::test(start_paused = true)]
    async fn no_try_starts_after_the_time_limit() {
        let started = Instant::now();
        let mut backoff = Backoff::new(POLICY);
        while let Some(wait) = backoff.next_delay() {
            tokio::time::sleep(wait).await;
        }
        let spent = started.elapsed();
        assert_eq!(spent, Duration::from_secs(300), "{spent:?}");
        assert!((10..=20).contains(&backoff.tries()), "{}", backoff.tries());

        let mut none = Backoff::new(Policy {
            within: Some(Duration::ZERO),
            ..POLICY
        });
        assert_eq!(none.next_delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_transient_errors_are_retried() {
        let mut calls = 0;
        let result: Result<u32, &str> = retry(
            POLICY,
            "test",
            |e| *e == "passing",
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("passing") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
        let mut calls = 0;
        let result: Result<u32, &str> = retry(
            POLICY,
            "test",
            |e| *e == "passing",
            || {
                calls += 1;
                async { Err("lasting") }
            },
        )
        .await;
        assert_eq!((result, calls), (Err("lasting"), 1));
    }
}
