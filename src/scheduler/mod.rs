//! Maintenance loops: promote due delayed tasks, reclaim expired leases, drop finished tasks
//! past their retention, and — for push queues — dispatch pending tasks to workers.
//!
//! Each loop calls one bounded script and sleeps until the next thing is due (the scripts
//! report how long that is, by Redis' clock) or its interval passes, whichever is first. Every
//! script is atomic and idempotent, so any number of schedulers and workers may run these loops
//! on the same queue at once.

pub mod cron;
pub mod observe;
pub mod service;
pub mod web;

use crate::client::Queue;
use crate::config::SchedulerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The maintenance loops of a set of queues.
pub struct Maintenance {
    queues: Vec<Queue>,
    cfg: SchedulerConfig,
}

impl Maintenance {
    pub fn new(queues: Vec<Queue>, cfg: SchedulerConfig) -> Maintenance {
        Maintenance { queues, cfg }
    }

    /// Run until `stop` fires. `wake` (optional) interrupts the promote loop's sleep, e.g. when
    /// a task with an earlier run-at was enqueued.
    pub async fn run(self, stop: CancellationToken, wake: Option<Arc<Notify>>) {
        let wake = wake.unwrap_or_default();
        let mut tasks = Vec::new();
        for q in self.queues {
            tasks.push(tokio::spawn(promote_loop(
                q.clone(),
                self.cfg.clone(),
                stop.clone(),
                wake.clone(),
            )));
            tasks.push(tokio::spawn(reclaim_loop(
                q.clone(),
                self.cfg.clone(),
                stop.clone(),
            )));
            if q.settings().dispatch == crate::config::DispatchMode::Push {
                tasks.push(tokio::spawn(dispatch_loop(
                    q.clone(),
                    self.cfg.clone(),
                    stop.clone(),
                )));
            }
            tasks.push(tokio::spawn(trim_loop(q, self.cfg.clone(), stop.clone())));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Sleep for `d` unless stopped (false) or woken (true).
async fn nap(d: Duration, stop: &CancellationToken, wake: Option<&Notify>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = async { match wake { Some(w) => w.notified().await, None => std::future::pending().await } } => true,
        _ = stop.cancelled() => false,
    }
}

fn next_sleep(next_in: Option<Duration>, interval: Duration) -> Duration {
    // +1ms: the scripts compare with `<= now`, so wake just after the due time.
    next_in
        .map(|d| d + Duration::from_millis(1))
        .unwrap_or(interval)
        .min(interval)
}

async fn promote_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken, wake: Arc<Notify>) {
    loop {
        let sleep = match q.promote(cfg.batch).await {
            Ok((n, _)) if n as usize >= cfg.batch => Duration::ZERO,
            Ok((_, next_in)) => next_sleep(next_in, cfg.promote_interval),
            Err(e) => {
                tracing::warn!(queue = q.name(), error = %e, "promote failed");
                cfg.promote_interval
            }
        };
        if !sleep.is_zero() && !nap(sleep, &stop, Some(&wake)).await {
            return;
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

async fn reclaim_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) {
    loop {
        let sleep = match q.reclaim(cfg.batch).await {
            Ok(r) => {
                if r.requeued + r.dead > 0 {
                    tracing::warn!(queue = q.name(), requeued = r.requeued, dead = r.dead, workers = ?r.workers, "reclaimed expired leases");
                }
                if (r.requeued + r.dead) as usize >= cfg.batch {
                    Duration::ZERO
                } else {
                    next_sleep(r.next_in, cfg.reclaim_interval)
                }
            }
            Err(e) => {
                tracing::warn!(queue = q.name(), error = %e, "reclaim failed");
                cfg.reclaim_interval
            }
        };
        if !sleep.is_zero() && !nap(sleep, &stop, None).await {
            return;
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

async fn trim_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) {
    loop {
        let sleep = match q.trim(cfg.batch).await {
            Ok((_, true)) => Duration::ZERO,
            Ok(_) => cfg.trim_interval,
            Err(e) => {
                tracing::warn!(queue = q.name(), error = %e, "trim failed");
                cfg.trim_interval
            }
        };
        if !sleep.is_zero() && !nap(sleep, &stop, None).await {
            return;
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Push dispatch: assign pending tasks whenever there are some and workers have room. Woken by
/// the queue's wake channel (pending became non-empty) and free channel (a lease ended).
async fn dispatch_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(forward_signals(q.clone(), wake.clone(), stop.clone()));
    let strategy = q.settings().strategy;
    loop {
        let seed = fastrand::u32(1..2_147_483_646);
        let sleep = match q.dispatch(strategy, cfg.batch, seed).await {
            Ok(d) if d.assigned as usize >= cfg.batch => Duration::ZERO,
            Ok(_) => cfg.dispatch_interval,
            Err(e) => {
                tracing::warn!(queue = q.name(), error = %e, "dispatch failed");
                cfg.dispatch_interval
            }
        };
        if !sleep.is_zero() && !nap(sleep, &stop, Some(&wake)).await {
            break;
        }
        if stop.is_cancelled() {
            break;
        }
    }
    let _ = listener.await;
}

/// Forward messages of the queue's wake and free channels to `wake` (reconnecting as needed).
async fn forward_signals(q: Queue, wake: Arc<Notify>, stop: CancellationToken) {
    use futures_util::StreamExt;
    loop {
        let sub = async {
            let mut ps = q.conn().pubsub().await.ok()?;
            ps.subscribe(&[q.keys().wake_channel(), q.keys().free_channel()])
                .await
                .ok()?;
            Some(ps)
        };
        if let Some(mut ps) = sub.await {
            wake.notify_one();
            let mut messages = ps.on_message();
            loop {
                tokio::select! {
                    m = messages.next() => match m {
                        // "p": pending became non-empty; "1" (free channel): capacity was freed
                        Some(m) if matches!(m.get_payload_bytes(), b"p" | b"1") => wake.notify_one(),
                        Some(_) => {}
                        None => break,
                    },
                    _ = stop.cancelled() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
