//! Edge cases of the worker registry and shutdown found in review: a leaving push worker hands
//! its untaken assignments back (no attempt charged), a silent worker is pruned only once it
//! holds no lease (so its in-flight counter can never go negative), and input checks that must
//! come before any write.
mod common;
use baton::{DispatchMode, QueueConfig, Strategy, TaskSpec};
use std::time::Duration;

#[tokio::test]
async fn a_leaving_push_worker_hands_back_what_it_has_not_taken() {
    let env = common::env().await;
    let q = env.client.queue("p").unwrap().with_settings(QueueConfig {
        dispatch: DispatchMode::Push,
        max_attempts: 1,
        ..Default::default()
    });
    q.register("w", &serde_json::json!({"capacity": 10}))
        .await
        .unwrap();
    let ids: Vec<String> = q
        .enqueue_batch((0..3).map(|_| TaskSpec::new("k", "")).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap().assigned, 3);
    assert_eq!(q.leave("w").await.unwrap(), 3);
    for id in &ids {
        common::assert_state(&q, id, "pending").await;
        assert_eq!(
            q.get(id).await.unwrap().unwrap().attempts,
            0,
            "not charged an attempt"
        );
    }
    assert!(q.take("w", 10).await.unwrap().is_empty());
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap().assigned,
        0,
        "no longer live"
    );
    assert!(q.workers(10).await.unwrap().is_empty());
    assert!(q.deregister("w").await.unwrap());
}

#[tokio::test]
async fn a_silent_worker_is_pruned_only_after_its_leases_are_reclaimed() {
    let env = common::env().await;
    let q = env.client.queue("q").unwrap().with_settings(QueueConfig {
        lease: Duration::from_millis(200),
        heartbeat: Duration::from_millis(50),
        ..Default::default()
    });
    q.register("w", &serde_json::json!({})).await.unwrap();
    q.enqueue_batch((0..2).map(|_| TaskSpec::new("k", "")).collect())
        .await
        .unwrap();
    assert_eq!(q.claim("w", 2).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(700)).await; // past the lease and the prune age (3 leases)
    let r = q.reclaim(1).await.unwrap();
    assert_eq!(r.requeued, 1);
    assert!(r.pruned_workers.is_empty(), "still holds a lease: not pruned yet");
    assert_eq!(q.workers(10).await.unwrap()[0].inflight, 1);
    let r = q.reclaim(1).await.unwrap();
    assert_eq!(r.requeued, 1);
    assert_eq!(r.pruned_workers, vec!["w".to_string()]);
    let winfl: Option<i64> = q
        .conn()
        .query(
            redis::cmd("HGET")
                .arg(q.keys().key(baton::keys::Role::Winfl))
                .arg("w"),
        )
        .await
        .unwrap();
    assert_eq!(winfl, None, "pruned with a zero counter, nothing left to drift");
}

#[tokio::test]
async fn a_refused_enqueue_on_a_new_queue_leaves_no_key() {
    let env = common::env().await;
    let q = env.queue();
    let e = q
        .enqueue(TaskSpec::new("k", "").priority(5000))
        .await
        .unwrap_err();
    assert!(matches!(e, baton::Error::BadArgument { .. }), "{e}");
    let mut raw = env.raw().await;
    assert!(
        common::snapshot(&mut raw).await.is_empty(),
        "not even the schema stamp"
    );
}

#[tokio::test]
async fn a_nan_jitter_draw_is_refused() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "")).await.unwrap();
    let c = q.claim("w", 1).await.unwrap().remove(0);
    let mut call = baton::conn::Call::new(baton::scripts::ScriptName::Fail, q.keys().keyset(), &[]);
    call.named("worker", "w")
        .named("dead_ttl_ms", 1000)
        .named("busy_ms", 0)
        .named("id", &c.id)
        .named("token", &c.token)
        .named("error", "e")
        .named("mode", "r:nan");
    let e = q.conn().eval(&call, "q").await.unwrap_err();
    assert!(matches!(e, baton::Error::BadArgument { .. }), "{e}");
    common::assert_state(&q, &c.id, "leased").await;
}
