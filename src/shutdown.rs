//! Graceful shutdown: SIGTERM or SIGINT stops the worker from taking new files; the
//! ones in flight may finish within a grace period, after which they are abandoned
//! (nothing half-done is recorded: the ledger is written last).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// A handle every part of a pass can ask whether it should stop.
#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
    grace: Duration,
}

/// Requests a shutdown; held by the signal listener (or a test).
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    pub fn request(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A handle and the trigger that fires it.
    pub fn new(grace: Duration) -> (Shutdown, Trigger) {
        let (sender, requested) = watch::channel(false);
        (Shutdown { requested, grace }, Trigger(sender))
    }

    /// A handle fired by SIGTERM or SIGINT.
    pub fn on_signals(grace: Duration) -> Shutdown {
        let (shutdown, trigger) = Shutdown::new(grace);
        tokio::spawn(async move {
            let name = wait_for_signal().await;
            tracing::warn!(
                signal = name,
                grace_secs = grace.as_secs(),
                "stopping: no new files; files in flight may finish within the grace period"
            );
            trigger.request();
        });
        shutdown
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a shutdown is requested.
    pub async fn requested(&self) {
        let mut requested = self.requested.clone();
        // An error means the trigger is gone, so no shutdown can come: wait for ever.
        if requested.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work` to the end, unless a shutdown is requested and the grace period
    /// then runs out first: then `work` is dropped and `None` returned.
    pub async fn finish_or_abandon<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let deadline = async {
            self.requested().await;
            tokio::time::sleep(self.grace).await;
        };
        tokio::select! {
            done = work => Some(done),
            () = deadline => None,
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_in_flight_gets_the_grace_period_and_no_more() {
        let (shutdown, trigger) = Shutdown::new(Duration::from_secs(10));
        let quick = shutdown.finish_or_abandon(tokio::time::sleep(Duration::from_secs(60)));
        trigger.request();
        assert_eq!(
            quick.await,
            None,
            "60 s of work is abandoned after a 10 s grace period"
        );

        let (shutdown, trigger) = Shutdown::new(Duration::from_secs(10));
        trigger.request();
        assert!(shutdown.is_requested());
        assert_eq!(
            shutdown
                .finish_or_abandon(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    7
                })
                .await,
            Some(7)
        );
    }
}
