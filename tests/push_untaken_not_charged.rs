//! Push dispatch: a task assigned to a worker that dies before taking it goes back to pending
//! without using an attempt (it never ran), and a worker that stopped heartbeating gets no more
//! assignments after one heartbeat interval and a half.
mod common;
use baton::{DispatchMode, QueueConfig, Strategy, TaskSpec};
use std::time::Duration;

fn push(env: &common::Env) -> baton::Queue {
    env.queue().with_settings(QueueConfig {
        dispatch: DispatchMode::Push,
        ..env.queue().settings().clone()
    })
}

/// Register `w` (capacity 10) and heartbeat it once.
async fn live_worker(q: &baton::Queue, w: &str) {
    q.register(w, &serde_json::json!({ "capacity": 10, "weight": 1 }))
        .await
        .unwrap();
    q.heartbeat(w, &[]).await.unwrap();
}

#[tokio::test]
async fn assignments_never_taken_cost_no_attempt() {
    let env = common::env().await;
    let q = push(&env);
    live_worker(&q, "w").await;
    for i in 0..10 {
        q.enqueue(TaskSpec::new("k", format!("{i}")).max_attempts(1))
            .await
            .unwrap();
    }
    assert_eq!(
        q.dispatch(Strategy::LeastConcurrency, 100, 1)
            .await
            .unwrap()
            .assigned,
        10
    );
    let taken = q.take("w", 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    q.start("w", taken[0].token.parse().unwrap()).await.unwrap(); // its handler started
                                                                  // the worker dies: no heartbeat, no acknowledgement; its leases expire (1s in tests)
    tokio::time::sleep(q.settings().lease + Duration::from_millis(100)).await;
    let r = q.reclaim(100).await.unwrap();
    assert_eq!((r.requeued, r.dead), (9, 1), "{r:?}");
    let c = q.counts().await.unwrap();
    assert_eq!((c.pending, c.dead, c.leased), (9, 1, 0));
    let dead = q.dead_ids(10).await.unwrap();
    assert_eq!(
        dead,
        vec![taken[0].id.clone()],
        "only the task that ran was charged"
    );
    for t in q.claim("other", 100).await.unwrap() {
        assert_eq!(t.attempt, 1, "{} was charged an attempt it never ran", t.id);
    }
}

#[tokio::test]
async fn a_silent_worker_gets_no_assignment_after_one_and_a_half_heartbeats() {
    let env = common::env().await;
    let q = push(&env);
    live_worker(&q, "w").await;
    q.enqueue(TaskSpec::new("k", "a")).await.unwrap();
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap().assigned,
        1,
        "live worker"
    );
    // silent for 1.7 heartbeats: still well inside its lease, but no longer live
    tokio::time::sleep(q.settings().heartbeat * 17 / 10).await;
    q.enqueue(TaskSpec::new("k", "b")).await.unwrap();
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap().assigned,
        0,
        "assigned to a silent worker"
    );
    q.heartbeat("w", &[]).await.unwrap();
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap().assigned,
        1,
        "live again"
    );
}
