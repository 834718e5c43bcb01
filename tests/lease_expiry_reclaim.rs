//! A lease that is not renewed expires; reclaim puts the task back (attempt counted, its run
//! having started) or, with no attempts left, into the dead-letter set.
mod common;
use baton::{State, TaskSpec};
use std::time::Duration;

#[tokio::test]
async fn expired_lease_is_reclaimed_and_the_task_runs_again() {
    let env = common::env().await; // lease 1s
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "p").max_attempts(2))
        .await
        .unwrap()
        .id;
    let first = q.claim("w1", 1).await.unwrap().remove(0);
    // the worker starts the handler (and says so), then dies: its expiry costs an attempt
    q.start("w1", first.token.parse().unwrap()).await.unwrap();
    let r = q.reclaim(100).await.unwrap();
    assert_eq!((r.requeued, r.dead), (0, 0), "lease still valid");
    let left = r.next_in.unwrap();
    assert!(
        left > Duration::from_millis(800) && left <= Duration::from_secs(1),
        "{left:?}"
    );

    tokio::time::sleep(Duration::from_millis(1050)).await;
    let r = q.reclaim(100).await.unwrap();
    assert_eq!((r.requeued, r.dead), (1, 0));
    assert_eq!(r.workers, vec!["w1".to_string()]);
    common::assert_state(&q, &id, "pending").await;
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.attempts, 1, "the expired attempt counts");
    assert!(t.last_error.unwrap().message.contains("lease expired"));

    let second = q.claim("w2", 1).await.unwrap().remove(0);
    assert_eq!(second.id, id);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);
    q.start("w2", second.token.parse().unwrap()).await.unwrap();

    // attempt 2 also expires: no attempts left -> dead
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let r = q.reclaim(100).await.unwrap();
    assert_eq!((r.requeued, r.dead), (0, 1));
    common::assert_state(&q, &id, "dead").await;
    assert_eq!(q.get(&id).await.unwrap().unwrap().state, State::Dead);
}

#[tokio::test]
async fn reclaim_is_bounded_per_call() {
    let env = common::env().await;
    let q = env.queue().with_settings(baton::QueueConfig {
        lease: Duration::from_millis(100),
        ..Default::default()
    });
    let specs = (0..50).map(|i| TaskSpec::new("k", format!("{i}"))).collect();
    q.enqueue_batch(specs).await.unwrap();
    assert_eq!(q.claim("w", 50).await.unwrap().len(), 50);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = q.reclaim(20).await.unwrap();
    assert_eq!(r.requeued, 20);
    assert_eq!(r.next_in, Some(Duration::ZERO), "more already expired");
    assert_eq!(q.reclaim(1000).await.unwrap().requeued, 30);
    assert_eq!(q.counts().await.unwrap().pending, 50);
}
