//! A task that runs longer than its lease keeps it through heartbeats: it is not reclaimed and
//! completes once, on its first attempt.
mod common;
use baton::{TaskSpec, Worker};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn long_task_outlives_its_lease_through_heartbeats() {
    let env = common::env().await; // lease 1s, heartbeat 300ms, maintenance (reclaim) every 100ms
    let q = env.queue();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("slow", move |_t| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(3000)).await;
                Ok(b"slow done".to_vec())
            }
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = common::spawn_worker(worker);
    let id = q.enqueue(TaskSpec::new("slow", "")).await.unwrap().id;
    let out = q.wait(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(out, baton::Outcome::Done(b"slow done".to_vec()));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran exactly once");
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.attempts, 1, "never reclaimed");
    assert_eq!(stats.lost.load(Ordering::SeqCst), 0);
    stop.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn heartbeat_moves_the_deadline() {
    let env = common::env().await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "")).await.unwrap().id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        q.heartbeat("w", &[baton::LeaseRef::new(&id, &c.token)])
            .await
            .unwrap()
            .statuses,
        vec![baton::LeaseStatus::Renewed]
    );
    let t = q.get(&id).await.unwrap().unwrap();
    let new_deadline = t.lease.unwrap().deadline_ms;
    assert!(
        new_deadline >= c.deadline_ms + 550,
        "deadline moved by the heartbeat: {} -> {new_deadline}",
        c.deadline_ms
    );
    tokio::time::sleep(Duration::from_millis(600)).await; // past the first deadline
    assert_eq!(
        q.reclaim(10).await.unwrap().requeued,
        0,
        "renewed lease is not reclaimed"
    );
    common::assert_state(&q, &id, "leased").await;
}
