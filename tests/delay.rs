//! A delayed task is not claimable before its delay, and runs soon after it.
mod common;
use baton::{TaskSpec, Worker};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test]
async fn delayed_task_waits_then_is_promoted() {
    let env = common::env().await;
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "x").delay(Duration::from_millis(400)))
        .await
        .unwrap()
        .id;
    common::assert_state(&q, &id, "delayed").await;
    assert!(q.claim("w", 10).await.unwrap().is_empty(), "not claimable yet");
    let baton::Promoted {
        promoted: n,
        next_in: next,
    } = q.promote(100).await.unwrap();
    assert_eq!(n, 0, "not due yet");
    let next = next.expect("a delayed task remains");
    assert!(
        next <= Duration::from_millis(400) && next >= Duration::from_millis(200),
        "{next:?}"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        q.promote(100).await.unwrap(),
        baton::Promoted {
            promoted: 1,
            next_in: None
        }
    );
    common::assert_state(&q, &id, "pending").await;
    assert_eq!(q.claim("w", 10).await.unwrap()[0].id, id);
}

#[tokio::test]
async fn worker_runs_a_delayed_task_after_its_delay() {
    let env = common::env().await;
    let q = env.queue();
    let ran: Arc<Mutex<Option<Instant>>> = Arc::default();
    let r = ran.clone();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("k", move |_t| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() = Some(Instant::now());
                Ok(b"ok".to_vec())
            }
        })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(worker);
    tokio::time::sleep(Duration::from_millis(200)).await; // worker idle and subscribed
    let t0 = Instant::now();
    let id = q
        .enqueue(TaskSpec::new("k", "x").delay(Duration::from_millis(700)))
        .await
        .unwrap()
        .id;
    let out = q.wait(&id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(out, baton::Outcome::Done(b"ok".to_vec()));
    let at = ran.lock().unwrap().unwrap() - t0;
    assert!(at >= Duration::from_millis(690), "ran too early: {at:?}");
    assert!(at < Duration::from_millis(1300), "ran too late: {at:?}");
    stop.cancel();
    h.await.unwrap().unwrap();
}
