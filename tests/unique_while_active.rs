//! Unique while active (`TaskSpec::unique`, `baton enqueue --unique`): while the task holding a
//! unique key is pending, delayed or running, an enqueue with the same key returns that task and
//! adds nothing; on every way a task ends — done, dead (failed or lease expired), cancelled,
//! purged — the key is free again at once. And throttle (`TaskSpec::throttle`): one task per key
//! per window.
mod common;
use baton::{Enqueued, FailReport, Queue, TaskSpec};
use std::time::Duration;

async fn unique(q: &Queue, key: &str) -> Enqueued {
    q.enqueue(TaskSpec::new("k", "x").unique(key)).await.unwrap()
}

/// The key is held by `holder`: a second enqueue answers it and adds nothing.
async fn held_by(q: &Queue, key: &str, holder: &str) {
    let before = q.counts().await.unwrap();
    let again = unique(q, key).await;
    assert!(!again.created && again.unique_held, "{again:?}");
    assert_eq!(again.id, holder);
    let after = q.counts().await.unwrap();
    assert_eq!(after.enqueued_total, before.enqueued_total, "nothing enqueued");
}

/// Claim the next task, which must be `id`, and fail it (retry or dead).
async fn fail_next(q: &Queue, id: &str, retry: bool) {
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!(c.id, id);
    let report = FailReport {
        id: c.id.clone(),
        token: c.token.clone(),
        error: "boom".into(),
        retry,
    };
    q.fail("w", &report).await.unwrap();
}

/// The key is free: an enqueue with it creates a new task.
async fn free(q: &Queue, key: &str, old: &str) -> String {
    let e = unique(q, key).await;
    assert!(e.created && !e.unique_held, "the key outlived task {old}: {e:?}");
    assert_ne!(e.id, old);
    e.id
}

#[tokio::test]
async fn held_while_pending_delayed_or_running() {
    let env = common::env().await;
    let q = env.queue();
    let first = unique(&q, "u").await;
    assert!(first.created);
    // pending
    held_by(&q, "u", &first.id).await;
    // running
    let c = q.claim("w", 1).await.unwrap().remove(0);
    held_by(&q, "u", &first.id).await;
    // a failed attempt with attempts left: delayed by the backoff, still active
    let report = FailReport {
        id: c.id.clone(),
        token: c.token.clone(),
        error: "boom".into(),
        retry: true,
    };
    q.fail("w", &report).await.unwrap();
    assert_eq!(q.counts().await.unwrap().delayed, 1);
    held_by(&q, "u", &first.id).await;
    // a task delayed from the start holds its key too
    let later = q
        .enqueue(TaskSpec::new("k", "x").unique("v").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    held_by(&q, "v", &later.id).await;
    // other keys are independent
    assert!(unique(&q, "w").await.created);
}

#[tokio::test]
async fn every_way_a_task_ends_frees_its_key() {
    let env = common::env().await;
    let q = env.queue();

    // done
    let a = unique(&q, "u").await.id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"ok").await.unwrap();
    let b = free(&q, "u", &a).await;

    // dead: failed with no retry
    fail_next(&q, &b, false).await;
    let c_id = free(&q, "u", &b).await;

    // cancelled
    q.cancel(&[&c_id]).await.unwrap();
    let d = free(&q, "u", &c_id).await;

    // dead after its lease expired on its last attempt (the test queue's lease is 1s)
    q.cancel(&[&d]).await.unwrap();
    let e = q
        .enqueue(TaskSpec::new("k", "x").unique("u").max_attempts(1))
        .await
        .unwrap();
    assert!(e.created);
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.start("w", c.token.parse().unwrap()).await.unwrap(); // the run started: its expiry is charged
    held_by(&q, "u", &e.id).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = q.reclaim(100).await.unwrap();
    assert_eq!(r.dead, 1, "{r:?}");
    let f = free(&q, "u", &e.id).await;

    // purged from the dead-letter set (and gone altogether)
    fail_next(&q, &f, false).await;
    q.purge_dead(&[&f]).await.unwrap();
    assert!(q.get(&f).await.unwrap().is_none());
    free(&q, "u", &f).await;
}

#[tokio::test]
async fn a_thousand_concurrent_enqueues_make_one_task() {
    let env = common::env().await;
    let q = env.queue();
    let hs: Vec<_> = (0..1000)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                q.enqueue(TaskSpec::new("k", format!("{i}")).unique("one"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for h in hs {
        let e = h.await.unwrap();
        ids.insert(e.id.clone());
        if e.created {
            created.push(e.id);
        }
    }
    assert_eq!(created.len(), 1, "exactly one task created");
    assert_eq!(ids.len(), 1, "every enqueue answered the same id");
    assert_eq!(q.counts().await.unwrap().pending, 1);
}

#[tokio::test]
async fn the_key_lapses_after_unique_ttl() {
    let env =
        common::env_with(|c| c.queues.get_mut("q").unwrap().unique_ttl = Duration::from_millis(200)).await;
    let q = env.queue();
    let a = unique(&q, "u").await.id;
    held_by(&q, "u", &a).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    free(&q, "u", &a).await;
}

#[tokio::test]
async fn throttle_gives_one_task_per_key_per_window() {
    let env = common::env().await;
    let q = env.queue();
    let w = Duration::from_millis(400);
    let a = q.enqueue(TaskSpec::new("k", "1").throttle("t", w)).await.unwrap();
    assert!(a.created);
    // consumed at once: still throttled, whatever the first task's state
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"").await.unwrap();
    let b = q.enqueue(TaskSpec::new("k", "2").throttle("t", w)).await.unwrap();
    assert!(!b.created && b.id == a.id, "{b:?}");
    tokio::time::sleep(w + Duration::from_millis(100)).await;
    let c = q.enqueue(TaskSpec::new("k", "3").throttle("t", w)).await.unwrap();
    assert!(c.created && c.id != a.id, "a new window: {c:?}");
}
