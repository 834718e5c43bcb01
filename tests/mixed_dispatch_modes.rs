//! The dispatch mode is a property of the queue stored in Redis (configure), so processes whose
//! configs disagree — a rolling switch from pull to push or back — strand no task: dispatch
//! assigns nothing to a worker running in pull mode, nothing at all on a queue in pull mode, and
//! a push worker's take claims pending tasks on a queue in pull mode.
mod common;
use baton::{DispatchMode, Outcome, QueueConfig, Strategy, TaskSpec, Worker};
use std::time::Duration;

fn mode(q: &baton::Queue, dispatch: DispatchMode) -> baton::Queue {
    q.with_settings(QueueConfig {
        dispatch,
        ..q.settings().clone()
    })
}

#[tokio::test]
async fn configure_stores_the_mode_and_reports_the_previous_one() {
    let env = common::env().await;
    let q = env.queue();
    assert_eq!(
        mode(&q, DispatchMode::Push).configure().await.unwrap(),
        None,
        "a new queue"
    );
    assert_eq!(
        mode(&q, DispatchMode::Pull).configure().await.unwrap(),
        Some(DispatchMode::Push)
    );
    assert_eq!(
        mode(&q, DispatchMode::Pull).configure().await.unwrap(),
        Some(DispatchMode::Pull)
    );
}

#[tokio::test]
async fn dispatch_skips_pull_workers_and_pull_queues() {
    let env = common::env().await;
    let push = mode(&env.queue(), DispatchMode::Push);
    push.configure().await.unwrap();
    push.register(
        "puller",
        &serde_json::json!({ "capacity": 10, "dispatch": "pull" }),
    )
    .await
    .unwrap();
    push.heartbeat("puller", &[]).await.unwrap();
    push.enqueue(TaskSpec::new("k", "a")).await.unwrap();
    let d = push.dispatch(Strategy::LeastConcurrency, 10, 1).await.unwrap();
    assert_eq!(d.assigned, 0, "assigned to a worker that never takes: {d:?}");
    push.register(
        "pusher",
        &serde_json::json!({ "capacity": 10, "dispatch": "push" }),
    )
    .await
    .unwrap();
    push.heartbeat("pusher", &[]).await.unwrap();
    let d = push.dispatch(Strategy::LeastConcurrency, 10, 1).await.unwrap();
    assert_eq!(d.per_worker, vec![("pusher".to_string(), 1)]);
    assert_eq!(push.take("pusher", 10).await.unwrap().len(), 1);

    // the queue switches to pull: no more assignments; take claims what is pending
    mode(&push, DispatchMode::Pull).configure().await.unwrap();
    push.enqueue(TaskSpec::new("k", "b")).await.unwrap();
    assert_eq!(
        push.dispatch(Strategy::LeastConcurrency, 10, 1)
            .await
            .unwrap()
            .assigned,
        0
    );
    let got = push.take("pusher", 10).await.unwrap();
    assert_eq!(
        got.len(),
        1,
        "a push worker on a pull queue claims instead of idling"
    );
    assert_eq!(got[0].record.payload, b"b");
}

/// The scenario that used to strand a task: a scheduler dispatching (push) and a worker running
/// in pull mode on the same queue. Every task completes.
#[tokio::test]
async fn a_push_scheduler_and_a_pull_worker_finish_every_task() {
    let env = common::env().await;
    let q = env.queue();
    let push = mode(&q, DispatchMode::Push);
    let stop = tokio_util::sync::CancellationToken::new();
    push.configure().await.unwrap();
    let maintenance = tokio::spawn(
        baton::Maintenance::new(vec![push.clone()], env.config.scheduler.clone()).run(stop.clone(), None),
    );
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .maintenance(None)
        .queue_settings(mode(&q, DispatchMode::Pull).settings().clone())
        .handler("k", |t: baton::TaskContext| async move { Ok(t.payload.clone()) })
        .build()
        .unwrap();
    let (wstop, h) = common::spawn_worker(worker);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(push.enqueue(TaskSpec::new("k", format!("{i}"))).await.unwrap().id);
    }
    for (i, id) in ids.iter().enumerate() {
        match q.wait(id, Duration::from_secs(5)).await {
            Ok(Outcome::Done(r)) => assert_eq!(r, format!("{i}").into_bytes()),
            other => panic!("task {id}: {other:?}; {:?}", q.get(id).await),
        }
    }
    wstop.cancel();
    h.await.unwrap().unwrap();
    stop.cancel();
    maintenance.await.unwrap().unwrap();
}
