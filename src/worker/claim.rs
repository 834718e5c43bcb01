//! The claim loop (claim or take as many tasks as there are free permits, sleep on wake-ups
//! when the queue runs dry) and the run of one task under its lease.

use super::*;

impl Worker {
    pub(super) async fn claim_loop(
        &self,
        sem: Arc<Semaphore>,
        inflight: InFlightMap,
        started: &Started,
        ack_tx: mpsc::UnboundedSender<Ack>,
        wake: Arc<Notify>,
        stop: CancellationToken,
        fatal: &Fatal,
    ) {
        let batch = self.queue.settings().claim_batch.min(self.concurrency).max(1);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        // a claim failed: it may have run in Redis, its reply lost (a gap in our tokens)
        let mut in_doubt = false;
        loop {
            // biased: once shutdown has begun, never claim again
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let mut permits = vec![first];
            while permits.len() < batch {
                match sem.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let want = permits.len();
            let claimed = match self.queue.settings().dispatch {
                DispatchMode::Pull => self.queue.claims(&self.id, want).await,
                DispatchMode::Push => self.queue.takes(&self.id, want).await,
            };
            match claimed {
                Ok(Claims { tasks, held }) => {
                    backoff.reset();
                    let got = tasks.len();
                    self.stats.claimed.fetch_add(got as u64, Ordering::Relaxed);
                    let tokens = || tasks.iter().filter_map(|t| t.token.parse::<u64>().ok());
                    let top = tokens().max();
                    if let Some(low) = tokens().min().filter(|_| in_doubt) {
                        started.gap_before(low);
                        in_doubt = false;
                    }
                    for task in tasks {
                        let permit = permits.pop().expect("one permit per claimed task");
                        self.spawn_task(task, permit, &inflight, &ack_tx);
                    }
                    // every task received so far has started: the start mark may cover them
                    started.started(top);
                    drop(permits);
                    if got < want {
                        // held back by the queue's rate limit: it says when the next task is
                        // admitted; under the concurrency cap the end of a lease wakes us
                        let nap = match held {
                            Some(Held::Wait(after)) => after.min(self.poll_interval),
                            _ => self.poll_interval,
                        };
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(nap) => {}
                            _ = stop.cancelled() => return,
                        }
                    }
                }
                Err(e @ Error::BadArgument { .. }) => {
                    tracing::error!(worker = %self.id, error = %e, "claim refused its arguments: this is a configuration bug (a value outside the scripts' limits, or binaries of different versions), not a transient error — stopping the worker; fix the config and restart");
                    fatal.set(e);
                    return;
                }
                Err(e) => {
                    drop(permits);
                    in_doubt = true;
                    tracing::warn!(worker = %self.id, error = %e, "claim failed; retrying");
                    if !backoff.wait(&stop).await {
                        return;
                    }
                }
            }
        }
    }

    fn spawn_task(
        &self,
        task: Claimed,
        permit: OwnedSemaphorePermit,
        inflight: &InFlightMap,
        ack_tx: &mpsc::UnboundedSender<Ack>,
    ) {
        let cancel = CancellationToken::new();
        // The same id claimed again (our earlier lease was reclaimed): the older attempt must stop.
        if let Some(old) = inflight.lock().unwrap().insert(
            task.id.clone(),
            InFlight {
                token: task.token.clone(),
                cancel: cancel.clone(),
                finished: false,
            },
        ) {
            old.cancel.cancel();
        }
        let handler = self.handlers.get(&task.record.kind).cloned();
        let ack_tx = ack_tx.clone();
        let inflight = inflight.clone();
        let worker = self.id.clone();
        let queue_handle = self.queue.clone();
        let queue = self.queue.name().to_string();
        let metric_queue = queue.clone();
        tokio::spawn(async move {
            let Claimed {
                id,
                token,
                attempt,
                run,
                record,
                ..
            } = task;
            let result_ttl = record.result_ttl;
            let started = std::time::Instant::now();
            let outcome = match handler {
                None => Some(Err(HandlerError::retry(format!(
                    "no handler for task kind {:?} on worker {worker} (queue {queue}) — register a handler for it, or send this kind to a queue whose workers have one",
                    record.kind
                )))),
                Some(h) => {
                    let ctx = TaskContext {
                        id: id.clone(),
                        queue,
                        kind: record.kind.clone(),
                        payload: record.payload,
                        attempt,
                        run,
                        max_attempts: record.max_attempts,
                        enqueued_ms: record.created_ms,
                        cancelled: cancel.clone(),
                        reporter: handler::Reporter {
                            queue: queue_handle,
                            worker: worker.clone(),
                            lease: LeaseRef::new(id.clone(), token.clone()),
                        },
                    };
                    let run = AssertUnwindSafe(h.call(ctx)).catch_unwind();
                    let timed = async {
                        match record.timeout {
                            Some(t) => match tokio::time::timeout(t, run).await {
                                Ok(r) => r,
                                Err(_) => Ok(Err(HandlerError::retry(format!("timed out after {t:?} (the task's execution timeout)")))),
                            },
                            None => run.await,
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => None,
                        r = timed => Some(r.unwrap_or_else(|p| Err(HandlerError::retry(format!("handler panicked: {}", panic_message(&p)))))),
                    }
                }
            };
            let label = match &outcome {
                Some(Ok(_)) => "completed",
                Some(Err(_)) => "failed",
                None => "stopped",
            };
            metrics::histogram!("baton_worker_task_run_seconds", "queue" => metric_queue.clone(), "outcome" => label)
                .record(started.elapsed().as_secs_f64());
            if outcome.is_none() {
                // nothing to acknowledge; the others are counted once Redis answered their ack
                metrics::counter!("baton_worker_tasks_total", "queue" => metric_queue, "outcome" => label)
                    .increment(1);
            }
            match outcome {
                Some(outcome) => {
                    if let Some(f) = inflight.lock().unwrap().get_mut(&id).filter(|f| f.token == token) {
                        f.finished = true;
                    }
                    let _ = ack_tx.send(Ack {
                        id,
                        token,
                        result_ttl,
                        run: started.elapsed(),
                        outcome,
                        _permit: permit,
                    });
                }
                None => {
                    // Lease lost, cancelled, or released at shutdown: nothing to acknowledge.
                    let mut map = inflight.lock().unwrap();
                    if map.get(&id).is_some_and(|f| f.token == token) {
                        map.remove(&id);
                    }
                }
            }
        });
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
