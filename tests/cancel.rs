//! Cancel works on pending, delayed and leased tasks; a running handler is stopped at the next
//! heartbeat and its result refused; finished tasks cannot be cancelled.
mod common;
use baton::{Error, Outcome, State, TaskSpec, Worker};
use std::time::Duration;

#[tokio::test]
async fn cancel_pending_delayed_and_leased() {
    let env = common::env().await;
    let q = env.queue();
    let p = q.enqueue(TaskSpec::new("k", "")).await.unwrap().id;
    let d = q
        .enqueue(TaskSpec::new("k", "").delay(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    let l = q.enqueue(TaskSpec::new("k", "")).await.unwrap().id;
    // claim only `l`: it was enqueued after `p`, so claim both and release `p` back
    let claimed = q.claim("w", 2).await.unwrap();
    let lc = claimed.iter().find(|c| c.id == l).unwrap().clone();
    let pc = claimed.iter().find(|c| c.id == p).unwrap().clone();
    assert_eq!(
        q.release("w", &[baton::LeaseRef::new(&p, &pc.token)])
            .await
            .unwrap(),
        1
    );
    common::assert_state(&q, &p, "pending").await;

    let out = q.cancel(&[&p, &d, &l, "nope"]).await.unwrap();
    assert_eq!(
        out,
        vec![
            Some(State::Pending),
            Some(State::Delayed),
            Some(State::Leased),
            None
        ]
    );
    for id in [&p, &d, &l] {
        common::assert_state(&q, id, "cancelled").await;
        assert_eq!(
            q.wait(id, Duration::from_secs(1)).await.unwrap(),
            Outcome::Cancelled
        );
    }
    // the worker holding `l` learns it at its heartbeat and cannot complete it
    assert_eq!(
        q.heartbeat("w", &[baton::LeaseRef::new(&l, &lc.token)])
            .await
            .unwrap()
            .statuses,
        vec![baton::LeaseStatus::Cancelled]
    );
    assert!(matches!(
        q.complete("w", &lc, b"x").await,
        Err(Error::StaleLease { .. })
    ));
    // cancelling again does nothing
    assert_eq!(q.cancel(&[&p]).await.unwrap(), vec![None]);
}

#[tokio::test]
async fn a_running_handler_is_stopped_when_its_task_is_cancelled() {
    let env = common::env().await;
    let q = env.queue();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("long", move |t: baton::TaskContext| {
            let tx = tx.clone();
            async move {
                tx.send("started").unwrap();
                tokio::select! {
                    _ = t.cancelled.cancelled() => { tx.send("noticed").unwrap(); }
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
                Ok(Vec::new())
            }
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = common::spawn_worker(worker);
    let id = q.enqueue(TaskSpec::new("long", "")).await.unwrap().id;
    assert_eq!(rx.recv().await, Some("started"));
    q.cancel(&[&id]).await.unwrap();
    common::eventually(Duration::from_secs(3), "handler stopped by heartbeat", || {
        let s = stats.clone();
        async move { s.lost.load(std::sync::atomic::Ordering::SeqCst) == 1 }
    })
    .await;
    common::assert_state(&q, &id, "cancelled").await;
    stop.cancel();
    h.await.unwrap().unwrap();
}
