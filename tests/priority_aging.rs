//! Priority aging (`[queues.Q] aging`): a waiting task moves up one priority step per `aging` of
//! wait, so under a flood of higher-priority work a low-priority task still runs — ahead of every
//! task of priority p + k that started waiting more than k × aging after it. Without aging the
//! same flood starves it.
mod common;
use baton::{Error, TaskSpec};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const AGING: Duration = Duration::from_millis(50);
const STEPS: i64 = 10; // the flood is priority 10, the low task priority 0

async fn aged_env(aging: Duration) -> common::Env {
    common::env_with(|c| c.queues.get_mut("q").unwrap().aging = aging).await
}

/// Enqueue one priority-0 task, then priority-10 tasks every few ms for `flood`; claim all.
/// Returns the claim order and each task's creation time (Redis clock, from its record).
async fn low_amid_flood(env: &common::Env, flood: Duration) -> (Vec<String>, HashMap<String, u64>) {
    let q = env.queue();
    q.configure().await.unwrap();
    q.enqueue(TaskSpec::new("k", "low").id("low")).await.unwrap();
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < flood {
        q.enqueue(
            TaskSpec::new("k", "high")
                .priority(STEPS as i32)
                .id(format!("h{i:05}")),
        )
        .await
        .unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let (mut order, mut created) = (Vec::new(), HashMap::new());
    loop {
        let c = q.claim("w", 100).await.unwrap();
        if c.is_empty() {
            break;
        }
        for t in c {
            created.insert(t.id.clone(), t.record.created_ms);
            order.push(t.id);
        }
    }
    (order, created)
}

#[tokio::test]
async fn a_low_priority_task_is_ahead_of_higher_ones_that_came_later_than_its_bound() {
    let env = aged_env(AGING).await;
    let (order, created) = low_amid_flood(&env, Duration::from_millis(1200)).await;
    let pos = order.iter().position(|id| id == "low").unwrap();
    let bound = created["low"] + STEPS as u64 * AGING.as_millis() as u64;
    // the documented bound, to the millisecond: higher tasks that started waiting before
    // low + 10 × aging are ahead of it, every later one behind it
    for (i, id) in order.iter().enumerate().filter(|(_, id)| *id != "low") {
        let at = created[id];
        if at < bound {
            assert!(
                i < pos,
                "{id} (waiting since +{} ms) should be ahead of low",
                at - created["low"]
            );
        } else if at > bound {
            assert!(
                i > pos,
                "{id} (waiting since +{} ms) should be behind low",
                at - created["low"]
            );
        }
    }
    // both sides are populated, so the checks above checked something
    assert!(pos > 10, "low ran after {pos} higher tasks");
    assert!(
        order.len() - pos > 10,
        "{} higher tasks ran after low",
        order.len() - pos - 1
    );
    // priority still orders tasks that started waiting together: FIFO among the flood
    let highs: Vec<&String> = order.iter().filter(|id| *id != "low").collect();
    assert!(
        highs.windows(2).all(|w| w[0] < w[1]),
        "the flood keeps FIFO order"
    );
}

#[tokio::test]
async fn without_aging_the_same_flood_runs_first() {
    let env = aged_env(Duration::ZERO).await;
    let (order, _) = low_amid_flood(&env, Duration::from_millis(300)).await;
    assert_eq!(
        order.last().map(String::as_str),
        Some("low"),
        "strict priority: low runs last"
    );
}

/// A live flood that outruns the consumer: without aging the low task would wait for the whole
/// flood; with it, the low task starts while the flood goes on.
#[tokio::test]
async fn a_low_priority_task_starts_under_a_sustained_flood() {
    let env = aged_env(AGING).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let batch: Vec<TaskSpec> = (0..4)
                    .map(|j| {
                        TaskSpec::new("k", "high")
                            .priority(STEPS as i32)
                            .id(format!("h{i:05}-{j}"))
                    })
                    .collect();
                q.enqueue_batch(batch).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await; // ~400/s
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.enqueue(TaskSpec::new("k", "low").id("low")).await.unwrap();
    let t0 = Instant::now();
    let mut started = None;
    // consume ~2 per 10 ms (~200/s): the backlog of priority-10 work only grows
    while t0.elapsed() < Duration::from_secs(6) {
        for t in q.claim("w", 2).await.unwrap() {
            if t.id == "low" {
                started = Some(t0.elapsed());
            }
        }
        if started.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    producer.abort();
    let waited = started.expect("the low-priority task never started under the flood");
    let backlog = q.counts().await.unwrap().pending;
    assert!(
        backlog > 100,
        "the flood outran the consumer ({backlog} pending), so only aging let low through"
    );
    // 10 steps × 50 ms, then the backlog that was ahead then (< 2 s of consumption here)
    assert!(waited < Duration::from_secs(4), "low waited {waited:?}");
}

#[tokio::test]
async fn aging_is_not_switched_on_or_off_while_tasks_are_pending() {
    let env = aged_env(Duration::ZERO).await;
    let q = env.queue();
    q.configure().await.unwrap();
    q.enqueue(TaskSpec::new("k", "x").id("x")).await.unwrap();

    let mut cfg = env.config.clone();
    cfg.queues.get_mut("q").unwrap().aging = AGING;
    let aged = baton::Client::connect(cfg).await.unwrap().queue("q").unwrap();
    match aged.configure().await {
        Err(Error::BadArgument { detail: message, .. }) => {
            assert!(
                message.contains("aging_ms") && message.contains("1 pending"),
                "{message}"
            );
        }
        other => panic!("expected BADARG, got {other:?}"),
    }
    let mut raw = env.raw().await;
    let ag: Option<String> = redis::cmd("HGET")
        .arg(q.keys().key(baton::keys::Role::Meta))
        .arg("ag")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(ag.as_deref(), Some("0"), "nothing written");

    // drained: the switch goes through, and a new value while on is always fine
    q.claim("w", 1).await.unwrap();
    aged.configure().await.unwrap();
    aged.enqueue(TaskSpec::new("k", "y").id("y")).await.unwrap();
    let mut cfg = env.config.clone();
    cfg.queues.get_mut("q").unwrap().aging = AGING * 2;
    let slower = baton::Client::connect(cfg).await.unwrap().queue("q").unwrap();
    slower.configure().await.unwrap();
}
