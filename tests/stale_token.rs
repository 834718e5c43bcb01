//! complete / fail / heartbeat / release carry the lease token: once the lease is reclaimed (or
//! the token is wrong) they get a distinct error and change nothing.
mod common;
use baton::{Error, FailReport, LeaseStatus, TaskSpec};
use std::time::Duration;

#[tokio::test]
async fn a_zombie_cannot_complete_fail_renew_or_release() {
    let env = common::env().await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let zombie = q.claim("w1", 1).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    q.reclaim(10).await.unwrap();
    let fresh = q.claim("w2", 1).await.unwrap().remove(0);
    assert_eq!(fresh.id, id);

    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;

    let e = q.complete("w1", &zombie, b"zombie result").await.unwrap_err();
    assert!(matches!(e, Error::StaleLease { .. }), "{e}");
    let e = q
        .fail(
            "w1",
            &FailReport {
                id: id.clone(),
                token: zombie.token.clone(),
                error: "x".into(),
                retry: true,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StaleLease { .. }), "{e}");
    assert_eq!(
        q.heartbeat("w1", &[baton::LeaseRef::new(&id, &zombie.token)])
            .await
            .unwrap()
            .statuses,
        vec![LeaseStatus::Lost]
    );
    assert_eq!(
        q.release("w1", &[baton::LeaseRef::new(&id, &zombie.token)])
            .await
            .unwrap(),
        0
    );
    // the right token from the wrong worker is refused too
    let e = q.complete("w1", &fresh, b"thief").await.unwrap_err();
    assert!(matches!(e, Error::StaleLease { .. }), "{e}");

    assert_eq!(
        common::snapshot(&mut raw).await,
        before,
        "stale calls changed nothing"
    );
    common::assert_state(&q, &id, "leased").await;

    // the real holder completes; a replay of its own completion is then stale too
    q.complete("w2", &fresh, b"real").await.unwrap();
    let e = q.complete("w2", &fresh, b"again").await.unwrap_err();
    assert!(matches!(e, Error::StaleLease { .. }), "{e}");
    assert_eq!(q.get(&id).await.unwrap().unwrap().result.unwrap(), b"real");
}
