//! Acknowledgements: finished outcomes go out as one `complete` and one `fail` call in a
//! single pipelined round trip, retried while the leases can still hold.

use super::*;

/// How many times the flusher yields to other tasks before sending what it has.
const ACK_YIELDS: usize = 2;

/// Sends finished outcomes as batched `complete` + `fail` calls in one round trip.
pub(super) async fn ack_flusher(
    queue: Queue,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    inflight: InFlightMap,
    stats: Arc<WorkerStats>,
) {
    let max = queue.settings().claim_batch.clamp(100, 1000);
    let mut batch: Vec<Ack> = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let handlers that finished in the same instant send theirs first: a yield costs
        // microseconds (no timer), and a batch of several acknowledgements costs Redis one call.
        for _ in 0..ACK_YIELDS {
            tokio::task::yield_now().await;
        }
        while batch.len() < max {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let mut done: Vec<ops::complete::Completion> = Vec::new();
        let mut failed: Vec<FailReport> = Vec::new();
        let (mut busy_done, mut busy_failed) = (Duration::ZERO, Duration::ZERO);
        for a in &batch {
            match &a.outcome {
                Ok(result) => {
                    busy_done += a.run;
                    done.push(ops::complete::Completion {
                        id: &a.id,
                        token: &a.token,
                        result_ttl: a.result_ttl,
                        result,
                    });
                }
                Err(e) => {
                    busy_failed += a.run;
                    failed.push(FailReport {
                        id: a.id.clone(),
                        token: a.token.clone(),
                        error: e.message.clone(),
                        retry: e.retry,
                    });
                }
            }
        }
        // the calls still to acknowledge, and which script each one is
        let mut calls: Vec<crate::conn::Call> = Vec::new();
        let mut kinds: Vec<AckKind> = Vec::new();
        if !done.is_empty() {
            let req = ops::complete::Request {
                worker: &worker,
                busy: busy_done,
                items: done,
            };
            calls.push(req.call(queue.keys()));
            kinds.push(AckKind::Complete);
        }
        if !failed.is_empty() {
            calls.push(
                queue
                    .fail_request(&worker, busy_failed, &failed)
                    .call(queue.keys()),
            );
            kinds.push(AckKind::Fail);
        }
        // Acks are idempotent (a repeat is refused as stale), so retrying is safe; permits stay
        // held meanwhile, which stops new claims (backpressure). Past two lease durations the
        // leases are gone anyway: give up, the tasks run again elsewhere.
        let give_up = std::time::Instant::now() + queue.settings().lease * 2;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        while !calls.is_empty() {
            let mut retry: Vec<usize> = Vec::new();
            match queue.conn().eval_pipeline(&calls, queue.name()).await {
                Ok(results) => {
                    for (i, r) in results.into_iter().enumerate() {
                        match r {
                            Err(e) if e.is_transient() => {
                                tracing::warn!(error = %e, "acknowledgement failed; retrying");
                                retry.push(i);
                            }
                            r => count_acks(&queue, r, &stats, kinds[i], &batch),
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, n = batch.len(), "acknowledgement failed; retrying");
                    retry = (0..calls.len()).collect();
                }
                Err(e) => {
                    tracing::error!(error = %e, n = batch.len(), "acknowledgement refused; the leases will expire and the tasks run again");
                }
            }
            if retry.is_empty() {
                break;
            }
            if std::time::Instant::now() >= give_up {
                tracing::error!(n = batch.len(), "acknowledgements still failing after two lease durations: giving up, the tasks will run again");
                break;
            }
            let keep: std::collections::HashSet<usize> = retry.into_iter().collect();
            let mut i = 0;
            calls.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
            let mut j = 0;
            kinds.retain(|_| {
                j += 1;
                keep.contains(&(j - 1))
            });
            tokio::time::sleep(backoff.next_delay()).await;
        }
        {
            let mut map = inflight.lock().unwrap();
            for a in &batch {
                if map.get(&a.id).is_some_and(|f| f.token == a.token) {
                    map.remove(&a.id);
                }
            }
        }
        batch.clear(); // drops the permits: the claim loop may take more
    }
}

/// Which acknowledgement script a pipelined call runs.
#[derive(Clone, Copy)]
enum AckKind {
    Complete,
    Fail,
}

/// Count what Redis answered, per task: only an accepted acknowledgement counts as completed or
/// failed; a refused (stale) one — the lease was reclaimed or the task cancelled meanwhile, so
/// another run owns it — is counted as `stale` and logged with the task id.
fn count_acks(queue: &Queue, r: Result<redis::Value>, stats: &WorkerStats, kind: AckKind, batch: &[Ack]) {
    let v = match r {
        Ok(v) => v,
        Err(e) => {
            // Not transient (those were retried): a refused argument is a bug, not bad luck.
            tracing::error!(error = %e, "acknowledgement refused; the leases will expire and the tasks run again");
            return;
        }
    };
    // the ids of this call's items, in the order they were sent
    let ids = batch
        .iter()
        .filter(|a| a.outcome.is_ok() == matches!(kind, AckKind::Complete))
        .map(|a| a.id.as_str());
    let accepted: Vec<bool> = match kind {
        AckKind::Complete => match queue.decode::<ops::complete::Request>(v) {
            Ok(s) => s.iter().map(|c| *c != ops::complete::Completed::Stale).collect(),
            Err(e) => return tracing::error!(error = %e, "bad acknowledgement reply"),
        },
        AckKind::Fail => match queue.decode::<ops::fail::Request>(v) {
            Ok(s) => s.iter().map(|f| *f != FailStatus::Stale).collect(),
            Err(e) => return tracing::error!(error = %e, "bad acknowledgement reply"),
        },
    };
    let (counter, label) = match kind {
        AckKind::Complete => (&stats.completed, "completed"),
        AckKind::Fail => (&stats.failed, "failed"),
    };
    for (ok, id) in accepted.iter().zip(ids) {
        if *ok {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.stale.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = queue.name(), task = id, "{label} acknowledgement refused as stale: the lease was reclaimed or the task cancelled meanwhile; this run does not count");
        }
        let outcome = if *ok { label } else { "stale" };
        metrics::counter!("baton_worker_tasks_total", "queue" => queue.name().to_string(), "outcome" => outcome)
            .increment(1);
    }
}
