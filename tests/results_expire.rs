//! Results and finished tasks are kept for their TTL, then disappear (and the janitor frees
//! their memory).
mod common;
use baton::TaskSpec;
use std::time::Duration;

#[tokio::test]
async fn result_expires_after_its_ttl_and_trim_frees_everything() {
    let env = common::env().await;
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "p").result_ttl(Duration::from_millis(400)))
        .await
        .unwrap()
        .id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"the result").await.unwrap();
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.result.as_deref(), Some(&b"the result"[..]));
    assert_eq!(t.attempts, 1);
    assert_eq!(q.trim(100).await.unwrap().dropped, 0, "not expired yet");

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        q.get(&id).await.unwrap().is_none(),
        "expired result is gone even before the janitor runs"
    );
    assert_eq!(
        q.trim(100).await.unwrap(),
        baton::Trimmed {
            dropped: 1,
            more: false
        }
    );
    let mut raw = env.raw().await;
    use baton::keys::Role;
    for role in [Role::Tasks, Role::Results, Role::Errors, Role::Lease] {
        let n: u64 = redis::cmd("HLEN")
            .arg(q.keys().key(role))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(n, 0, "{} emptied", role.as_str());
    }
    assert!(common::sets_holding(&q, &id).await.is_empty());
}

#[tokio::test]
async fn zero_result_ttl_forgets_the_task_at_completion() {
    let env = common::env().await;
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "p").result_ttl(Duration::ZERO))
        .await
        .unwrap()
        .id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"r").await.unwrap();
    assert!(q.get(&id).await.unwrap().is_none());
    assert!(common::sets_holding(&q, &id).await.is_empty());
    let mut raw = env.raw().await;
    let n: u64 = redis::cmd("HLEN")
        .arg(q.keys().key(baton::keys::Role::Tasks))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn dead_tasks_expire_after_dead_ttl() {
    let env = common::env_with(|c| {
        c.queues.get_mut("q").unwrap().dead_ttl = Duration::from_millis(300);
    })
    .await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.fail(
        "w",
        &baton::FailReport {
            id: id.clone(),
            token: c.token,
            error: "e".into(),
            retry: false,
        },
    )
    .await
    .unwrap();
    assert!(q.get(&id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(q.trim(100).await.unwrap().dropped, 1);
    assert!(q.get(&id).await.unwrap().is_none());
}
