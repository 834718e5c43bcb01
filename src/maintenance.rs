//! Maintenance loops: promote due delayed tasks, reclaim expired leases, drop finished tasks
//! past their retention, carry the queues' outboxes (dependencies across queues) and — for push
//! queues — dispatch pending tasks to workers.
//!
//! Each loop calls one bounded script and sleeps until the next thing is due (the scripts
//! report how long that is, by Redis' clock) or its interval passes, whichever is first. Every
//! script is atomic and idempotent, so any number of schedulers and workers may run these loops
//! on the same queue at once.
//!
//! Errors: a transient one (Redis away, timeout) is retried with the shared backoff. A script
//! that refuses its arguments (BADARG) is a configuration bug that no retry can fix — a
//! reclaim refused forever would leave a dead worker's tasks leased for good — so the loops
//! stop, and [`Maintenance::run`] returns the error for the process to exit on.

use crate::client::Queue;
use crate::config::SchedulerConfig;
use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::subscription::{Signal, Subscription};
use crate::task::DispatchMode;
use std::future::Future;
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

    /// Run until `stop` fires (`Ok`), or until a script refuses its arguments (`Err`: a
    /// configuration bug; every loop is stopped). `wake` (optional) interrupts the promote
    /// loop's sleep, e.g. when a task with an earlier run-at was enqueued.
    pub async fn run(self, stop: CancellationToken, wake: Option<Arc<Notify>>) -> Result<()> {
        let wake = wake.unwrap_or_default();
        // Stopped by the caller, or by the first loop that hits a configuration bug.
        let halt = stop.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(outbox_loop(self.queues.clone(), self.cfg.clone(), halt.clone()));
        for q in self.queues {
            let cfg = &self.cfg;
            tasks.spawn(promote_loop(q.clone(), cfg.clone(), halt.clone(), wake.clone()));
            tasks.spawn(reclaim_loop(q.clone(), cfg.clone(), halt.clone()));
            if q.settings().dispatch == DispatchMode::Push {
                tasks.spawn(dispatch_loop(q.clone(), cfg.clone(), halt.clone()));
            }
            tasks.spawn(trim_loop(q, cfg.clone(), halt.clone()));
        }
        let mut first_err = None;
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                halt.cancel();
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
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

/// The shape every loop shares: call `step` (which says how long to sleep after a success),
/// back off on transient errors, stop for good on a refused argument.
async fn run_loop<F, Fut>(
    q: &Queue,
    what: &'static str,
    interval: Duration,
    stop: &CancellationToken,
    wake: Option<&Notify>,
    mut step: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), interval.max(Duration::from_secs(2)));
    loop {
        let sleep = match step().await {
            Ok(d) => {
                backoff.reset();
                d
            }
            Err(e @ Error::BadArgument { .. }) => {
                tracing::error!(
                    queue = q.name(),
                    error = %e,
                    "{what} refused its arguments: this is a configuration bug (a value outside the scripts' limits, or binaries of different versions), not a transient error — stopping; fix the config and restart"
                );
                return Err(e);
            }
            Err(e) => {
                let d = backoff.next_delay().min(interval);
                tracing::warn!(queue = q.name(), error = %e, "{what} failed; retrying in {d:?}");
                d
            }
        };
        if stop.is_cancelled() || (!sleep.is_zero() && !nap(sleep, stop, wake).await) {
            return Ok(());
        }
    }
}

async fn promote_loop(
    q: Queue,
    cfg: SchedulerConfig,
    stop: CancellationToken,
    wake: Arc<Notify>,
) -> Result<()> {
    run_loop(
        &q,
        "promote",
        cfg.promote_interval,
        &stop,
        Some(&wake),
        || async {
            let p = q.promote(cfg.batch).await?;
            Ok(if p.promoted as usize >= cfg.batch {
                Duration::ZERO
            } else {
                next_sleep(p.next_in, cfg.promote_interval)
            })
        },
    )
    .await
}

async fn reclaim_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) -> Result<()> {
    run_loop(&q, "reclaim", cfg.reclaim_interval, &stop, None, || async {
        let r = q.reclaim(cfg.batch).await?;
        if r.requeued + r.dead > 0 {
            tracing::warn!(queue = q.name(), requeued = r.requeued, dead = r.dead, workers = ?r.workers, "reclaimed expired leases");
        }
        Ok(if (r.requeued + r.dead) as usize >= cfg.batch {
            Duration::ZERO
        } else {
            next_sleep(r.next_in, cfg.reclaim_interval)
        })
    })
    .await
}

async fn trim_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) -> Result<()> {
    run_loop(&q, "trim", cfg.trim_interval, &stop, None, || async {
        let t = q.trim(cfg.batch).await?;
        Ok(if t.more { Duration::ZERO } else { cfg.trim_interval })
    })
    .await
}

/// Push dispatch: assign pending tasks whenever there are some and workers have room. Woken by
/// the queue's wake channel (pending became non-empty) and free channel (a lease ended).
async fn dispatch_loop(q: Queue, cfg: SchedulerConfig, stop: CancellationToken) -> Result<()> {
    let wake = Arc::new(Notify::new());
    let channels = vec![q.keys().wake_channel(), q.keys().free_channel()];
    // "p": pending became non-empty; "1" (free channel): capacity was freed
    let listener = tokio::spawn(forward_signals(
        q.clone(),
        channels,
        &[b"p", b"1"],
        wake.clone(),
        stop.clone(),
    ));
    let strategy = q.settings().strategy;
    let r = run_loop(
        &q,
        "dispatch",
        cfg.dispatch_interval,
        &stop,
        Some(&wake),
        || async {
            let d = q
                .dispatch(strategy, cfg.batch, crate::ops::dispatch::random_seed())
                .await?;
            Ok(match d.held {
                // the queue's rate limit admits more after this long; under its concurrency
                // cap the free channel wakes this loop when a lease ends
                Some(crate::client::Held::Wait(after)) => after.min(cfg.dispatch_interval),
                Some(crate::client::Held::Concurrency) => cfg.dispatch_interval,
                None if d.more || d.assigned as usize >= cfg.batch => Duration::ZERO,
                None => cfg.dispatch_interval,
            })
        },
    )
    .await;
    listener.abort();
    r
}

/// Dependencies across queues: carry every queue's outbox to the queues its messages are for.
/// Woken by the queues' outbox channels (a message written to an empty outbox); every reclaim
/// interval as a safety net (a lost subscription, a delivery that failed).
async fn outbox_loop(queues: Vec<Queue>, cfg: SchedulerConfig, stop: CancellationToken) -> Result<()> {
    let Some(first) = queues.first().cloned() else {
        return Ok(());
    };
    let wake = Arc::new(Notify::new());
    let channels = queues.iter().map(|q| q.keys().outbox_channel()).collect();
    let listener = tokio::spawn(forward_signals(
        first.clone(),
        channels,
        &[b"o"],
        wake.clone(),
        stop.clone(),
    ));
    let r = run_loop(
        &first,
        "outbox",
        cfg.reclaim_interval,
        &stop,
        Some(&wake),
        || async {
            let mut err = None;
            for q in &queues {
                if let Err(e) = q.move_outbox(cfg.batch).await {
                    err.get_or_insert(e);
                }
            }
            err.map_or(Ok(cfg.reclaim_interval), Err)
        },
    )
    .await;
    listener.abort();
    r
}

/// Forward messages of `channels` whose payload is one of `payloads` to `wake` (and every
/// (re)subscription: anything may have happened meanwhile).
async fn forward_signals(
    q: Queue,
    channels: Vec<String>,
    payloads: &'static [&'static [u8]],
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut sub = Subscription::new(q.conn().clone(), &channels, q.name());
    loop {
        match sub.next(&stop).await {
            Some(Signal::Message(m)) if payloads.contains(&m.get_payload_bytes()) => wake.notify_one(),
            Some(Signal::Message(_)) => {}
            Some(Signal::Subscribed) => wake.notify_one(),
            None => return,
        }
    }
}
