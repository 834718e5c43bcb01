//! Heartbeats: renew every held lease in one call (also the worker's liveness in the
//! registry) and stop handlers whose lease was lost or whose task was cancelled.

use super::*;

pub(super) async fn heartbeat_loop(
    queue: Queue,
    worker: String,
    info: serde_json::Value,
    leaving: CancellationToken,
    inflight: InFlightMap,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(queue.settings().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let held: Vec<LeaseRef> = inflight
            .lock()
            .unwrap()
            .iter()
            .map(|(id, f)| LeaseRef::new(id, &f.token))
            .collect();
        // sent even with no lease: it is also the worker's liveness in the registry
        match queue.heartbeat(&worker, &held).await {
            Ok(hb) => {
                if !hb.registered && !leaving.is_cancelled() {
                    tracing::warn!(worker = %worker, "not in the registry (pruned after a long silence?): registering again");
                    if let Err(e) = queue.register(&worker, &info).await {
                        tracing::warn!(worker = %worker, error = %e, "register failed; will retry");
                    }
                }
                let mut map = inflight.lock().unwrap();
                for (LeaseRef { id, token }, s) in held.iter().zip(hb.statuses) {
                    if s == LeaseStatus::Renewed {
                        continue;
                    }
                    if let Some(f) = map.get(id).filter(|f| &f.token == token) {
                        if f.finished {
                            continue; // acknowledged meanwhile: the flusher will drop it
                        }
                        f.cancel.cancel();
                        map.remove(id);
                        stats.lost.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(worker = %worker, task = %id, status = ?s, "lease no longer held: handler stopped");
                    }
                }
            }
            Err(e) => tracing::warn!(worker = %worker, error = %e, "heartbeat failed; will retry"),
        }
    }
}
