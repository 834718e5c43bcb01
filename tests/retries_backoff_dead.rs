//! Failures are retried after a backoff computed in Lua from the task's policy, and the task
//! lands in the dead-letter set with its last error after max attempts; requeue brings it back.
mod common;
use baton::{Backoff, FailReport, FailStatus, State, TaskSpec};
use std::time::Duration;

fn report(c: &baton::Claimed, msg: &str) -> FailReport {
    FailReport {
        id: c.id.clone(),
        token: c.token.clone(),
        error: msg.into(),
        retry: true,
    }
}

#[tokio::test]
async fn exponential_backoff_then_dead_then_requeue() {
    let env = common::env().await;
    let q = env.queue();
    let spec = TaskSpec::new("k", "p")
        .max_attempts(3)
        .backoff(Backoff::exponential(
            Duration::from_millis(200),
            Duration::from_millis(300),
        ));
    let id = q.enqueue(spec).await.unwrap().id;

    // attempt 1 fails: retry in 200ms
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 1);
    assert_eq!(
        q.fail("w", &report(&c, "boom 1")).await.unwrap(),
        FailStatus::Retrying
    );
    common::assert_state(&q, &id, "delayed").await;
    let next = q.promote(10).await.unwrap().next_in;
    let next = next.unwrap();
    assert!(
        next > Duration::from_millis(150) && next <= Duration::from_millis(200),
        "first backoff {next:?}"
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.state, t.attempts), (State::Delayed, 1));
    assert_eq!(t.last_error.unwrap().message, "boom 1");

    // attempt 2 fails: exponential doubles to 400ms, capped at 300ms
    tokio::time::sleep(Duration::from_millis(210)).await;
    assert_eq!(q.promote(10).await.unwrap().promoted, 1);
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 2);
    q.fail("w", &report(&c, "boom 2")).await.unwrap();
    let next = q.promote(10).await.unwrap().next_in;
    let next = next.unwrap();
    assert!(
        next > Duration::from_millis(250) && next <= Duration::from_millis(300),
        "capped backoff {next:?}"
    );

    // attempt 3 fails: no attempts left -> dead, with its last error
    tokio::time::sleep(Duration::from_millis(310)).await;
    q.promote(10).await.unwrap();
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 3);
    assert_eq!(
        q.fail("w", &report(&c, "boom 3")).await.unwrap(),
        FailStatus::Dead
    );
    common::assert_state(&q, &id, "dead").await;
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.state, State::Dead);
    assert_eq!(t.attempts, 3);
    let e = t.last_error.unwrap();
    assert_eq!((e.run, e.message.as_str()), (3, "boom 3"));
    assert_eq!(q.dead_ids(10).await.unwrap(), vec![id.clone()]);

    // requeue from dead: pending again, attempts start over — but runs go on counting, so the
    // fourth run is not mistaken for the first (events name runs by number)
    assert_eq!(q.requeue_dead(&[&id, "unknown"]).await.unwrap(), 1);
    common::assert_state(&q, &id, "pending").await;
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.runs()), (0, 3));
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!((c.attempt, c.run), (1, 4));
    // it has a fresh budget of 3 attempts: a failure now retries, not dead
    assert_eq!(
        q.fail("w", &report(&c, "boom 4")).await.unwrap(),
        FailStatus::Retrying
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.runs()), (1, 4));
    assert_eq!(t.last_error.unwrap().run, 4);
    tokio::time::sleep(Duration::from_millis(210)).await;
    q.promote(10).await.unwrap();
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!((c.attempt, c.run), (2, 5));
    q.complete("w", &c, b"finally").await.unwrap();
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.result.as_deref(), Some(&b"finally"[..]));
    assert_eq!((t.attempts, t.runs()), (2, 5));

    // every claim of the task in the events has its own run number
    let claimed: Vec<u32> = q
        .events_after("0-0", 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "claimed")
        .flat_map(|e| e.tasks.iter().filter(|t| t.id == id).map(|t| t.run))
        .collect();
    assert_eq!(claimed, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_final_failure_goes_dead_at_once_and_jitter_stays_in_range() {
    let env = common::env().await;
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "p").max_attempts(10))
        .await
        .unwrap()
        .id;
    let c = q.claim("w", 1).await.unwrap().remove(0);
    let r = FailReport {
        id: c.id.clone(),
        token: c.token.clone(),
        error: "bad payload".into(),
        retry: false,
    };
    assert_eq!(q.fail("w", &r).await.unwrap(), FailStatus::Dead);
    common::assert_state(&q, &id, "dead").await;

    // jitter 50% on a fixed 1s backoff: every delay within [500ms, 1000ms]
    let spec = |i: i32| {
        TaskSpec::new("k", "j")
            .backoff(Backoff::fixed(Duration::from_secs(1)).with_jitter(0.5))
            .priority(i)
    };
    let mut delays = Vec::new();
    for i in 0..20 {
        let id = q.enqueue(spec(i)).await.unwrap().id;
        let c = q.claim("w", 1).await.unwrap().remove(0);
        assert_eq!(c.id, id);
        q.fail("w", &report(&c, "x")).await.unwrap();
        let t = q.get(&id).await.unwrap().unwrap();
        let err_at = t.last_error.unwrap().at_ms;
        delays.push(t.due_or_expiry_ms.unwrap() - err_at);
    }
    assert!(delays.iter().all(|d| (500..=1000).contains(d)), "{delays:?}");
    let distinct: std::collections::HashSet<_> = delays.iter().collect();
    assert!(distinct.len() > 5, "jitter should vary: {delays:?}");
}
