//! Waiting for a result wakes promptly on completion, reports dead tasks with their error, and
//! times out with the task's current state.
mod common;
use baton::{Error, FailReport, Outcome, TaskSpec};
use std::time::{Duration, Instant};

#[tokio::test]
async fn wait_wakes_on_completion_and_reports_dead_and_timeouts() {
    let env = common::env().await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let q2 = q.clone();
    let id2 = id.clone();
    let waiter = tokio::spawn(async move {
        let r = q2.wait(&id2, Duration::from_secs(10)).await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"42").await.unwrap();
    let done_at = Instant::now();
    let (r, woke_at) = waiter.await.unwrap();
    assert_eq!(r.unwrap(), Outcome::Done(b"42".to_vec()));
    // woken by the notification, not by the 1s safety poll
    assert!(
        woke_at.duration_since(done_at) < Duration::from_millis(300),
        "{:?}",
        woke_at.duration_since(done_at)
    );

    let dead = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.fail(
        "w",
        &FailReport {
            id: dead.clone(),
            token: c.token,
            error: "no such user".into(),
            retry: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        q.wait(&dead, Duration::from_secs(1)).await.unwrap(),
        Outcome::Dead("no such user".into())
    );

    let slow = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let e = q.wait(&slow, Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(e, Error::WaitTimeout { .. }), "{e}");
    assert!(e.to_string().contains("pending"), "{e}");

    assert!(matches!(
        q.wait("nope", Duration::from_millis(100)).await,
        Err(Error::NotFound { .. })
    ));
}
