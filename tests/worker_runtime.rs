//! The worker runtime end to end: many tasks with a concurrency limit, handler errors and
//! panics retried, fatal errors dead at once, unknown kinds failing with a clear error,
//! execution timeouts, prompt wake-up on new work, and graceful shutdown.
mod common;
use baton::{HandlerError, Outcome, TaskSpec, Worker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spawn(
    worker: Worker,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<baton::Result<Arc<baton::WorkerStats>>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    (stop, tokio::spawn(worker.run(async move { s.cancelled().await })))
}

#[tokio::test]
async fn runs_many_tasks_within_the_concurrency_limit() {
    let env = common::env().await;
    let q = env.queue();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(4)
        .handler("sq", move |t: baton::TaskContext| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                let n: u64 = t.json()?;
                Ok((n * n).to_string().into_bytes())
            }
        })
        .build()
        .unwrap();
    let (stop, h) = spawn(worker);
    let specs = (0..200u64).map(|i| TaskSpec::json("sq", &i).unwrap()).collect();
    let ids = q.enqueue_batch(specs).await.unwrap();
    for (i, e) in ids.iter().enumerate() {
        let out = q.wait(&e.id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(out, Outcome::Done(((i * i) as u64).to_string().into_bytes()));
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 4,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(peak.load(Ordering::SeqCst) >= 2, "ran in parallel");
    stop.cancel();
    let stats = h.await.unwrap().unwrap();
    assert_eq!(stats.completed.load(Ordering::SeqCst), 200);
}

#[tokio::test]
async fn failures_panics_timeouts_and_unknown_kinds() {
    let env = common::env().await; // max_attempts 3, fixed 50ms backoff
    let q = env.queue();
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let f = flaky_calls.clone();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("flaky", move |_t| {
            let f = f.clone();
            async move {
                if f.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(HandlerError::retry("not yet"))
                } else {
                    Ok(b"third time".to_vec())
                }
            }
        })
        .handler("fatal", |_t| async { Err(HandlerError::fatal("invalid input")) })
        .handler("panics", |_t| async { panic!("kaboom") })
        .handler("hangs", |_t| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Vec::new())
        })
        .handler("bad-json", |t: baton::TaskContext| async move {
            let v: Vec<u32> = t.json()?;
            Ok(format!("{v:?}").into_bytes())
        })
        .build()
        .unwrap();
    let (stop, h) = spawn(worker);

    let flaky = q.enqueue(TaskSpec::new("flaky", "")).await.unwrap().id;
    assert_eq!(
        q.wait(&flaky, Duration::from_secs(5)).await.unwrap(),
        Outcome::Done(b"third time".to_vec())
    );
    assert_eq!(q.get(&flaky).await.unwrap().unwrap().attempts, 3);

    let fatal = q.enqueue(TaskSpec::new("fatal", "")).await.unwrap().id;
    assert_eq!(
        q.wait(&fatal, Duration::from_secs(5)).await.unwrap(),
        Outcome::Dead("invalid input".into())
    );
    assert_eq!(
        q.get(&fatal).await.unwrap().unwrap().attempts,
        1,
        "fatal: no retries"
    );

    let panics = q.enqueue(TaskSpec::new("panics", "")).await.unwrap().id;
    match q.wait(&panics, Duration::from_secs(5)).await.unwrap() {
        Outcome::Dead(e) => assert!(e.contains("panicked") && e.contains("kaboom"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(q.get(&panics).await.unwrap().unwrap().attempts, 3);

    let hangs = q
        .enqueue(
            TaskSpec::new("hangs", "")
                .timeout(Duration::from_millis(200))
                .max_attempts(1),
        )
        .await
        .unwrap()
        .id;
    let t0 = Instant::now();
    match q.wait(&hangs, Duration::from_secs(5)).await.unwrap() {
        Outcome::Dead(e) => assert!(e.contains("timed out"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(2));

    let unknown = q
        .enqueue(TaskSpec::new("nobody-handles-this", ""))
        .await
        .unwrap()
        .id;
    match q.wait(&unknown, Duration::from_secs(5)).await.unwrap() {
        Outcome::Dead(e) => assert!(
            e.contains("no handler for task kind \"nobody-handles-this\""),
            "{e}"
        ),
        o => panic!("{o:?}"),
    }

    let bad = q
        .enqueue(TaskSpec::new("bad-json", "{not json"))
        .await
        .unwrap()
        .id;
    match q.wait(&bad, Duration::from_secs(5)).await.unwrap() {
        Outcome::Dead(e) => assert!(e.contains("not the JSON"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        q.get(&bad).await.unwrap().unwrap().attempts,
        1,
        "malformed payload is not retried"
    );
    stop.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_worker_wakes_on_new_work_without_polling() {
    let env = common::env_with(|c| c.worker.poll_interval = Duration::from_secs(30)).await;
    let q = env.queue();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("k", |_t| async { Ok(Vec::new()) })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = spawn(worker);
    tokio::time::sleep(Duration::from_millis(300)).await; // idle, sleeping on the wake channel
    for round in 0..3 {
        let t0 = Instant::now();
        let id = q.enqueue(TaskSpec::new("k", "")).await.unwrap().id;
        q.wait(&id, Duration::from_secs(5)).await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "round {round}: took {:?} (woken by the 30s poll?)",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.completed.load(Ordering::SeqCst), 3);
    stop.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_short_tasks_finish_and_releases_long_ones() {
    let env = common::env_with(|c| c.worker.shutdown_grace = Duration::from_millis(500)).await;
    let q = env.queue();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(4)
        .handler("short", |_t| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(b"short".to_vec())
        })
        .handler("long", |_t| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(b"long".to_vec())
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = spawn(worker);
    let short = q.enqueue(TaskSpec::new("short", "")).await.unwrap().id;
    let long = q.enqueue(TaskSpec::new("long", "")).await.unwrap().id;
    common::eventually(Duration::from_secs(3), "both claimed", || {
        let s = stats.clone();
        async move { s.claimed.load(Ordering::SeqCst) == 2 }
    })
    .await;
    let t0 = Instant::now();
    stop.cancel();
    // new work enqueued during shutdown is not taken
    let late = q.enqueue(TaskSpec::new("short", "")).await.unwrap().id;
    let stats = h.await.unwrap().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "grace respected: {:?}",
        t0.elapsed()
    );
    common::assert_state(&q, &short, "done").await;
    common::assert_state(&q, &long, "pending").await; // released, not counted as an attempt
    assert_eq!(q.get(&long).await.unwrap().unwrap().attempts, 0);
    common::assert_state(&q, &late, "pending").await;
    assert_eq!(stats.released.load(Ordering::SeqCst), 1);
    assert_eq!(stats.completed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_worker_stays_registered_and_is_pruned_once_silent() {
    let env = common::env().await; // lease 1s, heartbeat 300ms: pruned after 3s of silence
    let q = env.queue();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("k", |_t| async { Ok(Vec::new()) })
        .build()
        .unwrap();
    let id = worker.id().to_string();
    let (stop, h) = spawn(worker);
    tokio::time::sleep(Duration::from_millis(3500)).await; // idle, longer than the prune age
    let list = q.workers(10).await.unwrap();
    assert_eq!(list.len(), 1, "idle worker still registered");
    assert_eq!(list[0].id, id);
    assert!(
        list[0].last_seen < Duration::from_millis(700),
        "heartbeats keep it fresh: {:?}",
        list[0].last_seen
    );
    assert_eq!(list[0].info["concurrency"], 8);
    stop.cancel();
    h.await.unwrap().unwrap();
    assert!(
        q.workers(10).await.unwrap().is_empty(),
        "deregistered on shutdown"
    );

    // a worker that vanishes without deregistering is pruned by reclaim after 3 leases
    q.register("ghost", &serde_json::json!({"host": "gone"}))
        .await
        .unwrap();
    assert_eq!(q.workers(10).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = q.reclaim(100).await.unwrap();
    assert_eq!(r.pruned_workers, vec!["ghost".to_string()]);
    assert!(q.workers(10).await.unwrap().is_empty());
    // and a heartbeat after that says "not registered"
    assert!(!q.heartbeat("ghost", &[]).await.unwrap().registered);
}

#[tokio::test]
async fn an_acknowledgement_refused_by_an_out_of_memory_redis_is_retried() {
    let env = common::env().await;
    let q = env.queue();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .maintenance(None)
        .handler("k", move |_t| {
            let mut go = go_rx.clone();
            async move {
                let _ = go.wait_for(|g| *g).await;
                Ok(b"made it".to_vec())
            }
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = common::spawn_worker(worker);
    let id = q.enqueue(TaskSpec::new("k", "")).await.unwrap().id;
    common::eventually(Duration::from_secs(3), "task running", || async {
        q.counts().await.unwrap().leased == 1
    })
    .await;
    // Redis refuses every write now: the handler finishes, its complete is refused with OOM
    let mut raw = env.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut raw)
        .await
        .unwrap();
    go_tx.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stats.completed.load(Ordering::SeqCst),
        0,
        "not acknowledged while Redis refuses writes"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        q.wait(&id, Duration::from_secs(5)).await.unwrap(),
        baton::Outcome::Done(b"made it".to_vec())
    );
    assert_eq!(
        q.get(&id).await.unwrap().unwrap().attempts,
        1,
        "acknowledged by the retry, not re-run"
    );
    assert_eq!(stats.completed.load(Ordering::SeqCst), 1);
    stop.cancel();
    h.await.unwrap().unwrap();
}
