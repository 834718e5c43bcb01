//! Start marks: tell Redis which runs have started, so a lease that expires before its handler
//! ever ran (the worker died between claim and handler start) is not charged as an attempt.
//!
//! Fencing tokens reach a worker in increasing order and the claim loop starts every task of a
//! reply before the next claim, so one number says it all: "every lease up to token T has
//! started". The mark covers a token only [`START_MARK_DELAY`] after its handler was started,
//! and is sent only if a run it newly covers is still held, so quick tasks (acknowledged within
//! the delay) never cost a call, and a busy worker sends one small call per delay whatever its
//! throughput. A worker that dies inside that window leaves a stray instead of a charged
//! attempt — a run not charged, the safe side; the scripts bound strays per task, so a task that
//! kills its worker at once still ends in the dead-letter set.
//!
//! A claim or take that fails in transit may have run in Redis: its leases carry tokens the
//! worker never saw, below the ones it gets next. The claim loop names such a range as a gap
//! and the next mark carries it, so those leases are never counted as started.

use super::*;
use std::collections::VecDeque;
use std::time::Instant;

/// How long after a handler is started the mark may cover its run: longer than a handler
/// process takes to start on a loaded machine, short against any lease.
pub(super) const START_MARK_DELAY: Duration = Duration::from_millis(200);

/// What the claim loop started, shared with the flusher.
#[derive(Default)]
pub(super) struct Started {
    /// (when, highest token started by then), one entry per claim reply, oldest first.
    started: Mutex<VecDeque<(Instant, u64)>>,
    /// Highest token received so far.
    top: AtomicU64,
    /// Gaps `(lo, hi)` not sent yet: tokens strictly between never reached this worker.
    gaps: Mutex<Vec<(u64, u64)>>,
    wake: Notify,
}

impl Started {
    /// A claim or take failed in transit and the next reply starts at token `next`: every token
    /// between the highest received before and `next` may be a lease this worker never saw.
    /// Call before [`Started::started`] covers `next`.
    pub(super) fn gap_before(&self, next: u64) {
        let lo = self.top.load(Ordering::Acquire);
        if next > lo + 1 {
            self.gaps.lock().unwrap().push((lo, next));
        }
    }

    /// The claim loop has started the run of every task it received so far, up to token `top`.
    pub(super) fn started(&self, top: Option<u64>) {
        let Some(top) = top else { return };
        self.top.fetch_max(top, Ordering::AcqRel);
        self.started.lock().unwrap().push_back((Instant::now(), top));
        self.wake.notify_one();
    }

    /// When the oldest unmarked start becomes markable (None: nothing started).
    fn next_due(&self) -> Option<Instant> {
        self.started
            .lock()
            .unwrap()
            .front()
            .map(|(at, _)| *at + START_MARK_DELAY)
    }

    /// The highest token started at least [`START_MARK_DELAY`] ago (0: none), consuming those
    /// starts.
    fn markable(&self) -> u64 {
        let now = Instant::now();
        let mut q = self.started.lock().unwrap();
        let mut top = 0;
        while let Some(&(at, t)) = q.front() {
            if at + START_MARK_DELAY > now {
                break;
            }
            top = top.max(t);
            q.pop_front();
        }
        top
    }
}

/// Sends the start mark once runs have been going for [`START_MARK_DELAY`], while one of them
/// is still held.
pub(super) async fn start_flusher(
    queue: Queue,
    worker: String,
    started: Arc<Started>,
    inflight: InFlightMap,
    stop: CancellationToken,
) {
    let mut sent = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let Some(due) = started.next_due() else {
            tokio::select! {
                _ = started.wake.notified() => continue,
                _ = stop.cancelled() => return,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.cancelled() => return,
        }
        let top = started.markable();
        // runs acknowledged meanwhile have no lease left to reclaim: nothing to mark
        let needed = top > sent
            && inflight
                .lock()
                .unwrap()
                .values()
                .any(|f| f.token.parse::<u64>().is_ok_and(|t| t > sent && t <= top));
        if !needed {
            continue;
        }
        loop {
            let (gaps, seen) = {
                let g = started.gaps.lock().unwrap();
                (
                    g[g.len().saturating_sub(ops::start::MAX_GAPS)..].to_vec(),
                    g.len(),
                )
            };
            match queue.start_with_gaps(&worker, top, &gaps).await {
                Ok(mark) => {
                    sent = mark.max(top);
                    // sent, or older than the last MAX_GAPS the queue keeps anyway; gaps are
                    // only ever appended, so those read are the first `seen`
                    started.gaps.lock().unwrap().drain(..seen);
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    tracing::warn!(worker = %worker, error = %e, "start mark failed; retrying (until it lands, an expired lease of a started run is not charged)");
                    if !backoff.wait(&stop).await {
                        return;
                    }
                }
            }
        }
    }
}
