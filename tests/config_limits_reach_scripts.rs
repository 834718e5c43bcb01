//! The config's limits are the scripts' limits: a queue configured at the top of every bounded
//! key runs every transition without a refusal, and one past the limit (forced past
//! validation) is refused by the script itself — so validation neither lets through a value
//! the scripts would refuse forever, nor refuses one they accept.
mod common;

use baton::config::limits;
use baton::{Config, DispatchMode, Error, FailReport, LeaseStatus, QueueConfig, TaskSpec};
use std::time::Duration;

/// `[queues.<name>]` with every bounded key at the top of its range.
fn queue_at_limits(dispatch: &str) -> QueueConfig {
    let lease_max = limits::QUEUE[0].limit.range().1;
    // the slowest rate the scripts take (one task per day; the burst at its top lets them all go)
    let mut text = format!("[queues.x]\ndispatch = \"{dispatch}\"\nrate = \"1/1day\"\nfairness = \"fair\"\ngroup_rate = \"1/1day\"\n");
    for l in limits::QUEUE {
        let (_, hi) = l.limit.range();
        let v = match l.limit.key {
            // a heartbeat must stay below the lease
            "heartbeat" => lease_max / 3,
            _ => hi,
        };
        text += &match l.limit.unit {
            limits::Unit::Millis => format!("{} = \"{v}ms\"\n", l.limit.key),
            limits::Unit::Count => format!("{} = {v}\n", l.limit.key),
        };
    }
    Config::from_toml(&text).expect("limits accepted").queue("x")
}

fn is_bad_argument<T: std::fmt::Debug>(r: baton::Result<T>) -> bool {
    matches!(r, Err(Error::BadArgument { .. }))
}

#[tokio::test]
async fn every_transition_runs_at_the_configured_limits() {
    let batch = limits::SCHEDULER_BATCH.range().1 as usize;
    let env = common::env_with(|c| {
        c.queues.insert("q".into(), queue_at_limits("pull"));
        c.queues.insert("p".into(), queue_at_limits("push"));
    })
    .await;
    let q = env.queue();
    let s = q.settings().clone();
    q.configure().await.unwrap();
    let prio = limits::CRON_PRIORITY.range().1 as i32;
    let spec = |i: u32| {
        TaskSpec::new("k", format!("{i}"))
            .priority(prio)
            .idempotency_key(format!("key-{i}"))
    };
    for i in 0..3 {
        assert!(q.enqueue(spec(i)).await.unwrap().created);
    }
    let claimed = q.claim("w", s.claim_batch).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let hb = q
        .heartbeat("w", &[claimed[0].lease(), claimed[1].lease()])
        .await
        .unwrap();
    assert_eq!(hb.statuses, [LeaseStatus::Renewed, LeaseStatus::Renewed]);
    q.complete("w", &claimed[0], b"r").await.unwrap();
    let report = FailReport {
        id: claimed[1].id.clone(),
        token: claimed[1].token.clone(),
        error: "e".into(),
        retry: false,
    };
    q.fail("w", &report).await.unwrap();
    assert_eq!(q.release("w", &[claimed[2].lease()]).await.unwrap(), 1);
    let id = q.enqueue(spec(9)).await.unwrap().id;
    assert_eq!(q.cancel(&[&id]).await.unwrap().len(), 1);
    q.reclaim(batch).await.unwrap();
    q.promote(batch).await.unwrap();
    q.trim(batch).await.unwrap();

    let p = env.client.queue("p").unwrap();
    assert_eq!(p.settings().dispatch, DispatchMode::Push);
    p.configure().await.unwrap();
    let capacity = limits::WORKER_CAPACITY.range().1;
    p.register("pw", &serde_json::json!({ "capacity": capacity, "weight": 1 }))
        .await
        .unwrap();
    p.heartbeat("pw", &[]).await.unwrap();
    p.enqueue(TaskSpec::new("k", "x")).await.unwrap();
    let d = p.dispatch(p.settings().strategy, batch, 1).await.unwrap();
    assert_eq!(d.assigned, 1);
    assert_eq!(p.take("pw", p.settings().claim_batch).await.unwrap().len(), 1);
}

#[tokio::test]
async fn one_past_a_limit_the_scripts_refuse_it_too() {
    let env = common::env().await;
    let q = env.queue();
    let ms = |l: &limits::Limit| Duration::from_millis(l.range().1 as u64 + 1);
    let find = |key: &str| limits::QUEUE.iter().find(|l| l.limit.key == key).unwrap().limit;

    let over = q.with_settings(QueueConfig {
        lease: ms(&find("lease")),
        ..q.settings().clone()
    });
    assert!(
        is_bad_argument(over.claim("w", 1).await),
        "claim with a lease past the limit"
    );
    let over = q.with_settings(QueueConfig {
        dead_ttl: ms(&find("dead_ttl")),
        ..q.settings().clone()
    });
    assert!(
        is_bad_argument(over.reclaim(10).await),
        "reclaim with a dead_ttl past the limit"
    );
    let over = q.with_settings(QueueConfig {
        claim_batch: find("claim_batch").range().1 as usize + 1,
        ..q.settings().clone()
    });
    assert!(is_bad_argument(
        over.claim("w", over.settings().claim_batch).await
    ));
    let over = q.with_settings(QueueConfig {
        result_ttl: ms(&find("result_ttl")),
        ..q.settings().clone()
    });
    assert!(is_bad_argument(over.enqueue(TaskSpec::new("k", "")).await));
    let past = limits::SCHEDULER_BATCH.range().1 as usize + 1;
    assert!(is_bad_argument(q.promote(past).await));
    assert!(is_bad_argument(q.trim(past).await));
}

/// Should a script refuse its arguments anyway (a value forced past validation, or binaries of
/// different versions), the maintenance loops and the worker stop with the error instead of
/// retrying forever — a reclaim refused forever would leave a dead worker's tasks leased.
#[tokio::test]
async fn a_refused_argument_stops_maintenance_and_the_worker() {
    let env = common::env().await;
    let q = env.queue();
    let over = |f: fn(&mut QueueConfig)| {
        let mut s = q.settings().clone();
        f(&mut s);
        q.with_settings(s)
    };
    let bad = over(|s| s.dead_ttl = Duration::from_millis(limits::QUEUE[7].limit.range().1 as u64 + 1));
    assert_eq!(limits::QUEUE[7].limit.key, "dead_ttl");
    let stop = tokio_util::sync::CancellationToken::new();
    let run = baton::Maintenance::new(vec![bad], env.config.scheduler.clone()).run(stop.clone(), None);
    let r = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("maintenance stopped by itself");
    assert!(matches!(r, Err(Error::BadArgument { .. })), "{r:?}");
    assert!(!stop.is_cancelled());

    let bad = over(|s| s.lease = Duration::from_millis(limits::QUEUE[0].limit.range().1 as u64 + 1));
    let worker = baton::Worker::builder(&env.client, "q")
        .unwrap()
        .maintenance(None)
        .queue_settings(bad.settings().clone())
        .handler("k", |_t: baton::TaskContext| async { Ok(Vec::new()) })
        .build()
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), worker.run(std::future::pending())).await;
    assert!(matches!(r, Ok(Err(Error::BadArgument { .. }))), "{r:?}");
}
