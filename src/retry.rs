//! One retry policy for every loop that talks to Redis (claims, acknowledgements, maintenance,
//! resubscriptions, event streams, cron): exponential delays between a first and a longest
//! one, reset after a success, cut short by shutdown.
//!
//! Every retried call in Baton is safe to repeat (scripts are idempotent or fenced), so the
//! policy only has to keep a struggling Redis from being hammered, and recover fast once it is
//! back.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Growing delays between retries.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays `first`, 2×`first`, … up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            next: first,
        }
    }

    /// After a success: the next failure waits `first` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }

    /// The delay to wait now; the one after it is doubled (up to `max`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Wait the next delay. False when `stop` fired first (the caller should return).
    pub(crate) async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let d = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stop.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_stop_cuts_the_wait_short() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!b.wait(&stop).await);
    }
}
