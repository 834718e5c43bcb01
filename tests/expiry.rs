//! Expiry (`TaskSpec::expires_in`, `baton enqueue --expires-in`): a task not handed out by its
//! expiry never runs — claim (pull) and take (push) move it to the dead-letter set unrun, with
//! the reason, counted and announced — while a task claimed in time runs normally.
mod common;
use baton::{DispatchMode, EventTask, State, Strategy, TaskSpec};
use std::time::Duration;

#[tokio::test]
async fn a_task_not_claimed_in_time_never_runs_and_says_why() {
    let env = common::env().await;
    let q = env.queue();
    q.configure().await.unwrap();
    let late = q
        .enqueue(TaskSpec::new("k", "late").expires_in(Duration::from_millis(150)))
        .await
        .unwrap()
        .id;
    let timely = q
        .enqueue(TaskSpec::new("k", "timely").expires_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    let plain = q.enqueue(TaskSpec::new("k", "plain")).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(250)).await;

    let got: Vec<String> = q
        .claim("w", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        got,
        [timely.clone(), plain],
        "the expired task is never handed out"
    );
    let t = q.get(&late).await.unwrap().unwrap();
    assert_eq!(t.state, State::Dead);
    assert!(t.record.expires_ms.is_some());
    let why = t.last_error.expect("a reason").message;
    assert!(why.contains("expired"), "{why}");
    let c = q.counts().await.unwrap();
    assert_eq!((c.lapsed_total, c.dead_total, c.pending), (1, 1, 0));

    // announced as a dead event naming it, run 0
    let events = q.events_after("0", 100).await.unwrap();
    let dead = events.iter().find(|e| e.kind == "dead").expect("a dead event");
    assert!(
        dead.tasks.contains(&EventTask {
            id: late.clone(),
            run: 0
        }),
        "{dead:?}"
    );

    // the timely one runs and completes as usual
    assert_eq!(q.get(&timely).await.unwrap().unwrap().state, State::Leased);
}

#[tokio::test]
async fn push_take_lapses_an_assignment_that_expired() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().dispatch = DispatchMode::Push).await;
    let q = env.queue();
    q.configure().await.unwrap();
    q.register("w", &serde_json::json!({"capacity": 4}))
        .await
        .unwrap();
    let id = q
        .enqueue(TaskSpec::new("k", "x").expires_in(Duration::from_millis(150)))
        .await
        .unwrap()
        .id;
    q.heartbeat("w", &[]).await.unwrap();
    let d = q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap();
    assert_eq!(d.assigned, 1, "{d:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        q.take("w", 10).await.unwrap().is_empty(),
        "never handed to the worker"
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.state, State::Dead);
    assert!(t.lease.is_none(), "its lease ended");
    let c = q.counts().await.unwrap();
    assert_eq!((c.lapsed_total, c.leased), (1, 0));
}
