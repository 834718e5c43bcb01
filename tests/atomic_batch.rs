//! A batch enqueue stores all of its tasks or none.
mod common;
use baton::{Error, TaskSpec};

#[tokio::test]
async fn a_bad_task_in_a_batch_writes_nothing() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "before")).await.unwrap();
    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;
    let mut specs: Vec<TaskSpec> = (0..10)
        .map(|i| TaskSpec::new("k", format!("{i}")).idempotency_key(format!("key{i}")))
        .collect();
    specs.push(TaskSpec::new("k", "bad").priority(5000)); // out of range
    let err = q.enqueue_batch(specs).await.unwrap_err();
    assert!(matches!(err, Error::BadArgument { .. }), "{err}");
    assert!(err.to_string().contains("priority"), "{err}");
    assert_eq!(common::snapshot(&mut raw).await, before, "nothing may be written");
    assert_eq!(q.counts().await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_good_batch_is_stored_whole_and_in_order() {
    let env = common::env().await;
    let q = env.queue();
    let specs: Vec<TaskSpec> = (0..1000).map(|i| TaskSpec::new("k", format!("{i}"))).collect();
    let out = q.enqueue_batch(specs).await.unwrap();
    assert_eq!(out.len(), 1000);
    assert!(out.iter().all(|e| e.created));
    assert_eq!(q.counts().await.unwrap().pending, 1000);
    let claimed = q.claim("w", 1000).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    let want: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn oversized_batches_and_payloads_are_refused_with_the_fix() {
    let env = common::env().await;
    let q = env.queue();
    let specs: Vec<TaskSpec> = (0..1001).map(|i| TaskSpec::new("k", format!("{i}"))).collect();
    let e = q.enqueue_batch(specs).await.unwrap_err().to_string();
    assert!(e.contains("at most 1000"), "{e}");
    let big = vec![b'x'; (1 << 20) + 1];
    let e = q.enqueue(TaskSpec::new("k", big)).await.unwrap_err();
    assert!(matches!(e, Error::PayloadTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("max_payload"), "{e}");
    assert_eq!(q.counts().await.unwrap().pending, 0);
}
