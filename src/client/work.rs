//! The worker side of a queue: claim and take under a lease, heartbeat, complete, fail,
//! release, and push dispatch.

use super::{Claimed, Claims, Completed, Dispatched, FailReport, FailStatus, Heartbeat, Queue, MAX_BATCH};
use crate::error::{Error, Result};
use crate::ops::{self, LeaseRef};
use std::time::Duration;

impl Queue {
    /// Claim up to `n` (1..=1000) pending tasks under a lease of the queue's lease duration.
    pub async fn claim(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        Ok(self.claims(worker, n).await?.tasks)
    }

    /// [`Queue::claim`], also saying whether the queue's limits held the call back.
    pub async fn claims(&self, worker: &str, n: usize) -> Result<Claims> {
        self.run(&self.claim_request(worker, n)).await
    }

    /// The claim request a worker sends (benchmarks pipeline it).
    pub fn claim_request(&self, worker: &str, n: usize) -> ops::claim::Request {
        ops::claim::Request {
            worker: worker.into(),
            n,
            lease: self.settings.lease,
            dead_ttl: self.settings.dead_ttl,
        }
    }

    /// Mark `worker` alive and renew the leases it holds; one status per lease.
    pub async fn heartbeat(&self, worker: &str, leases: &[LeaseRef]) -> Result<Heartbeat> {
        let mut out = Heartbeat {
            registered: true,
            statuses: Vec::with_capacity(leases.len()),
        };
        // with no lease it is still sent: it is also the worker's liveness in the registry
        let mut chunks: Vec<&[LeaseRef]> = leases.chunks(MAX_BATCH).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let req = ops::heartbeat::Request {
                worker,
                lease: self.settings.lease,
                leases: chunk,
            };
            let hb = self.run(&req).await?;
            out.registered &= hb.registered;
            out.statuses.extend(hb.statuses);
        }
        Ok(out)
    }

    /// Say that `worker` has started the run of every lease it was given up to fencing token
    /// `token` (tokens reach a worker in increasing order). Until then an expiry of such a lease
    /// is a stray: back to pending without charging an attempt. Returns the mark Redis holds.
    pub async fn start(&self, worker: &str, token: u64) -> Result<u64> {
        self.start_with_gaps(worker, token, &[]).await
    }

    /// [`Queue::start`], also naming gaps: token ranges `(lo, hi)` (exclusive) that never reached
    /// the worker because a claim or take failed in transit after it ran. Leases in a gap are
    /// never counted as started. At most 16 gaps (the last 16 are kept per worker).
    pub async fn start_with_gaps(&self, worker: &str, token: u64, gaps: &[(u64, u64)]) -> Result<u64> {
        Ok(self.run(&ops::start::Request { worker, token, gaps }).await?.0)
    }

    /// Complete a claimed task; `Error::StaleLease` if its lease is not held any more.
    pub async fn complete(&self, worker: &str, task: &Claimed, result: &[u8]) -> Result<()> {
        let req = ops::complete::Request {
            worker,
            busy: Duration::ZERO,
            items: vec![task.completion(result)],
        };
        match self.run(&req).await?.first() {
            Some(Completed::Done) => Ok(()),
            _ => Err(Error::StaleLease {
                queue: self.name().into(),
                id: task.id.clone(),
            }),
        }
    }

    /// Report one failed attempt.
    pub async fn fail(&self, worker: &str, report: &FailReport) -> Result<FailStatus> {
        let req = self.fail_request(worker, Duration::ZERO, std::slice::from_ref(report));
        match self.run(&req).await?.first() {
            Some(FailStatus::Stale) | None => Err(Error::StaleLease {
                queue: self.name().into(),
                id: report.id.clone(),
            }),
            Some(s) => Ok(*s),
        }
    }

    /// One fail request for up to 1000 failed attempts that ran for `busy` in total.
    pub fn fail_request<'a>(
        &self,
        worker: &'a str,
        busy: Duration,
        reports: &'a [FailReport],
    ) -> ops::fail::Request<'a> {
        ops::fail::Request {
            worker,
            dead_ttl: self.settings.dead_ttl,
            busy,
            items: reports.iter().map(FailReport::as_failure).collect(),
        }
    }

    /// A running handler's progress under `lease`: `percent` (clamped to 100) and a short
    /// `message` (cut to [`ops::progress::MAX_MESSAGE`] bytes at a character boundary). Stored
    /// for the task and announced as a `progress` event (at most one per task per 500 ms);
    /// refused as [`ProgressAck::Stale`](ops::progress::ProgressAck) when `worker` no longer holds
    /// the lease with that token.
    pub async fn progress(
        &self,
        worker: &str,
        lease: &LeaseRef,
        percent: u8,
        message: &str,
    ) -> Result<ops::progress::ProgressAck> {
        let req = ops::progress::Request {
            worker,
            id: &lease.id,
            token: &lease.token,
            percent: percent.min(100),
            message: ops::progress::cut_message(message),
        };
        self.run(&req).await
    }

    /// Give leases back without counting the attempt (shutdown). Returns how many were released.
    pub async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<u64> {
        let mut n = 0;
        for chunk in leases.chunks(MAX_BATCH) {
            let req = ops::release::Request {
                worker,
                leases: chunk,
            };
            n += self
                .run(&req)
                .await?
                .iter()
                .filter(|r| **r == ops::release::Released::Released)
                .count() as u64;
        }
        Ok(n)
    }

    /// Push mode: take up to `n` (1..=1000) tasks dispatch assigned to `worker`.
    pub async fn take(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        Ok(self.takes(worker, n).await?.tasks)
    }

    /// [`Queue::take`], also saying whether the queue's limits held the call back (a queue in
    /// pull mode, where take claims).
    pub async fn takes(&self, worker: &str, n: usize) -> Result<Claims> {
        let req = ops::take::Request {
            worker: worker.into(),
            n,
            lease: self.settings.lease,
            dead_ttl: self.settings.dead_ttl,
        };
        self.run(&req).await
    }

    /// Push dispatch: assign up to `n` pending tasks to the live workers by `strategy`, with a
    /// random `seed` for the random strategy. Workers are live if they heartbeated within
    /// [`QueueConfig::dispatch_liveness`](crate::QueueConfig::dispatch_liveness).
    pub async fn dispatch(&self, strategy: crate::task::Strategy, n: usize, seed: u32) -> Result<Dispatched> {
        let req = ops::dispatch::Request {
            strategy,
            n,
            lease: self.settings.lease,
            alive: self.settings.dispatch_liveness(),
            seed,
        };
        self.run(&req).await
    }
}
