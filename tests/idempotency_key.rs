//! A repeated enqueue with the same idempotency key returns the first task's id within the
//! window; a retried enqueue with the same task id is a no-op.
mod common;
use baton::TaskSpec;
use std::time::Duration;

#[tokio::test]
async fn same_key_returns_the_first_id_within_the_window() {
    let env = common::env().await;
    let q = env.queue();
    let ttl = Duration::from_millis(500);
    let a = q
        .enqueue(
            TaskSpec::new("k", "1")
                .idempotency_key("order-7")
                .idempotency_ttl(ttl),
        )
        .await
        .unwrap();
    let b = q
        .enqueue(
            TaskSpec::new("k", "2")
                .idempotency_key("order-7")
                .idempotency_ttl(ttl),
        )
        .await
        .unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.id, b.id);
    assert_eq!(q.counts().await.unwrap().pending, 1);
    // duplicates inside one batch too
    let out = q
        .enqueue_batch(vec![
            TaskSpec::new("k", "3").idempotency_key("x"),
            TaskSpec::new("k", "4").idempotency_key("x"),
        ])
        .await
        .unwrap();
    assert!(out[0].created && !out[1].created);
    assert_eq!(out[0].id, out[1].id);
    // after the window a new task is created
    tokio::time::sleep(Duration::from_millis(600)).await;
    let c = q
        .enqueue(
            TaskSpec::new("k", "5")
                .idempotency_key("order-7")
                .idempotency_ttl(ttl),
        )
        .await
        .unwrap();
    assert!(c.created);
    assert_ne!(c.id, a.id);
}

#[tokio::test]
async fn retried_enqueue_with_the_same_id_is_a_no_op() {
    let env = common::env().await;
    let q = env.queue();
    let a = q.enqueue(TaskSpec::new("k", "1").id("fixed-id")).await.unwrap();
    assert!(a.created);
    let claimed = q.claim("w", 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // the same call again (e.g. after a response timeout) must not re-queue the leased task
    let b = q.enqueue(TaskSpec::new("k", "1").id("fixed-id")).await.unwrap();
    assert!(!b.created);
    common::assert_state(&q, "fixed-id", "leased").await;
    assert_eq!(q.counts().await.unwrap().pending, 0);
}

/// A key that outlives its task (result kept shorter than the key) does not answer with an id
/// nothing can be read of as if it were live: the duplicate says the task was forgotten.
#[tokio::test]
async fn a_key_whose_task_is_forgotten_says_so() {
    let env = common::env().await;
    let q = env.queue();
    let spec = || {
        TaskSpec::new("k", "p")
            .idempotency_key("once")
            .idempotency_ttl(Duration::from_secs(3600))
            .result_ttl(Duration::ZERO) // dropped at completion
    };
    let first = q.enqueue(spec()).await.unwrap();
    assert!(first.created && !first.forgotten);
    let live = q.enqueue(spec()).await.unwrap();
    assert_eq!(
        (live.id.as_str(), live.created, live.forgotten),
        (first.id.as_str(), false, false)
    );
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"").await.unwrap();
    assert!(q.get(&first.id).await.unwrap().is_none(), "dropped at completion");
    let again = q.enqueue(spec()).await.unwrap();
    assert_eq!(again.id, first.id, "the key still maps to its first task");
    assert!(!again.created && again.forgotten, "{again:?}");
    assert_eq!(q.counts().await.unwrap().pending, 0, "nothing new enqueued");
}

/// Within one batch, a repeated id or idempotency key is a duplicate of the task written earlier
/// in the same call (live, not forgotten), and only one task is stored.
#[tokio::test]
async fn repeats_within_one_batch_are_duplicates_of_the_first() {
    let env = common::env().await;
    let q = env.queue();
    let r = q
        .enqueue_batch(vec![
            TaskSpec::new("k", "a").id("same-id"),
            TaskSpec::new("k", "b").id("same-id"),
            TaskSpec::new("k", "c").idempotency_key("same-key"),
            TaskSpec::new("k", "d").idempotency_key("same-key"),
            TaskSpec::new("k", "e")
                .delay(std::time::Duration::from_secs(60))
                .id("later"),
            TaskSpec::new("k", "f")
                .delay(std::time::Duration::from_secs(60))
                .id("later"),
        ])
        .await
        .unwrap();
    let flags: Vec<(bool, bool)> = r.iter().map(|e| (e.created, e.forgotten)).collect();
    assert_eq!(
        flags,
        vec![
            (true, false),
            (false, false),
            (true, false),
            (false, false),
            (true, false),
            (false, false)
        ]
    );
    assert_eq!((r[1].id.as_str(), &r[3].id), ("same-id", &r[2].id));
    let c = q.counts().await.unwrap();
    assert_eq!((c.pending, c.delayed, c.enqueued_total), (2, 1, 3));
    let t = q.get("same-id").await.unwrap().unwrap();
    assert_eq!(t.record.payload, b"a", "the first of the repeats is the one kept");
}
