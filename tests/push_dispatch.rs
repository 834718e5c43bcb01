//! Push dispatch, strategy by strategy, at the script level (deterministic): round-robin cycles
//! exactly over live workers, weighted shares match the weights without bursts, least-
//! concurrency fills the least busy worker first within capacity, random passes a chi-square
//! test, and no strategy ever exceeds a worker's capacity.
mod common;
use baton::{Queue, QueueConfig, Strategy, TaskSpec};
use std::collections::HashMap;
use std::time::Duration;

fn push_queue(env: &common::Env) -> Queue {
    env.client.queue("p").unwrap().with_settings(QueueConfig {
        dispatch: baton::DispatchMode::Push,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(10), // workers stay live for 30s without heartbeats
        ..Default::default()
    })
}

async fn register(q: &Queue, id: &str, capacity: u64, weight: u64) {
    q.register(id, &serde_json::json!({"capacity": capacity, "weight": weight}))
        .await
        .unwrap();
}

async fn enqueue_numbered(q: &Queue, from: usize, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(1000) {
        let specs = chunk
            .iter()
            .map(|i| TaskSpec::new("k", "").id(format!("t{i:06}")))
            .collect();
        ids.extend(q.enqueue_batch(specs).await.unwrap().into_iter().map(|e| e.id));
    }
    ids
}

/// The worker each task was assigned to, from the leases.
async fn owners(q: &Queue, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let lease: String = q
            .conn()
            .query(
                redis::cmd("HGET")
                    .arg(q.keys().key(baton::keys::Role::Lease))
                    .arg(id),
            )
            .await
            .unwrap();
        out.push(lease.split_once('|').unwrap().1.to_string());
    }
    out
}

/// Each worker takes and completes everything assigned to it (frees its capacity).
async fn finish_assigned(q: &Queue, workers: &[&str]) {
    for w in workers {
        let tasks = q.take(w, 1000).await.unwrap();
        if tasks.is_empty() {
            continue;
        }
        let req = baton::ops::complete::Request {
            worker: w,
            busy: Duration::ZERO,
            items: tasks.iter().map(|c| c.completion(b"")).collect(),
        };
        q.run(&req).await.unwrap();
    }
}

/// Dispatch the first 1000 (weighted) and return the owners of the first 700, in task order.
async fn owners_after_first_batch(q: &Queue, ids: &[String]) -> Vec<String> {
    assert_eq!(
        q.dispatch(Strategy::Weighted, 1000, 1).await.unwrap().assigned,
        1000
    );
    owners(q, &ids[..700]).await
}

async fn inflight(q: &Queue) -> HashMap<String, u64> {
    q.workers(100)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.inflight))
        .collect()
}

#[tokio::test]
async fn round_robin_cycles_exactly_over_live_workers() {
    let env = common::env().await;
    let q = push_queue(&env);
    for w in ["w1", "w2", "w3"] {
        register(&q, w, 100, 1).await;
    }
    let ids = enqueue_numbered(&q, 0, 30).await;
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 30, 1).await.unwrap().assigned,
        30
    );
    let got = owners(&q, &ids).await;
    let want: Vec<String> = (0..30).map(|i| format!("w{}", i % 3 + 1)).collect();
    assert_eq!(got, want);

    // a worker leaves: the cycle goes on over the others from the next batch, where it stopped
    q.deregister("w2").await.unwrap();
    let ids = enqueue_numbered(&q, 30, 4).await;
    q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap();
    assert_eq!(owners(&q, &ids).await, ["w1", "w3", "w1", "w3"]);
    // a worker joins: it takes its turn in the cycle at once
    register(&q, "w4", 100, 1).await;
    let ids = enqueue_numbered(&q, 34, 3).await;
    q.dispatch(Strategy::RoundRobin, 10, 1).await.unwrap();
    assert_eq!(owners(&q, &ids).await, ["w4", "w1", "w3"]);
}

#[tokio::test]
async fn weighted_shares_follow_the_weights_without_bursts() {
    let env = common::env().await;
    let q = push_queue(&env);
    for (w, weight) in [("a", 1), ("b", 2), ("c", 4)] {
        register(&q, w, 100_000, weight).await;
    }
    let ids = enqueue_numbered(&q, 0, 10_000).await;
    let smooth_check = owners_after_first_batch(&q, &ids).await;
    for round in 0..10 {
        if round > 0 {
            assert_eq!(
                q.dispatch(Strategy::Weighted, 1000, 1).await.unwrap().assigned,
                1000
            );
        }
        finish_assigned(&q, &["a", "b", "c"]).await; // capacity is at most 1000 per worker
    }
    let counts: HashMap<String, u64> = q
        .workers(10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.assigned))
        .collect();
    for (w, weight) in [("a", 1.0), ("b", 2.0), ("c", 4.0)] {
        let share = counts[w] as f64 / 10_000.0;
        let want = weight / 7.0;
        assert!(
            (share - want).abs() <= 0.03,
            "{w}: share {share:.4}, want {want:.4} ± 0.03 ({counts:?})"
        );
    }
    // smooth: the heaviest worker never gets more than 2 in a row (plain weighted RR would give 4)
    let seq = smooth_check;
    let longest = seq.chunk_by(|a, b| a == b).map(|r| r.len()).max().unwrap();
    assert!(longest <= 2, "longest run {longest}: {:?}", &seq[..14]);
}

#[tokio::test]
async fn least_concurrency_fills_the_least_busy_within_capacity() {
    let env = common::env().await;
    let q = push_queue(&env);
    for w in ["x", "y", "z"] {
        register(&q, w, 4, 1).await;
    }
    let mut rng = fastrand::Rng::with_seed(11);
    let mut held: Vec<baton::Claimed> = Vec::new();
    let mut next = 0;
    for round in 0..60 {
        // finish some tasks at random, so the workers become unequal
        for _ in 0..rng.usize(0..3) {
            if !held.is_empty() {
                let c = held.swap_remove(rng.usize(0..held.len()));
                let owner = q.get(&c.id).await.unwrap().unwrap().lease.unwrap().worker;
                q.complete(&owner, &c, b"").await.unwrap();
            }
        }
        let before = inflight(&q).await;
        let m = rng.usize(1..5);
        enqueue_numbered(&q, next, m).await;
        next += m;
        let pending = q.counts().await.unwrap().pending;
        let d = q.dispatch(Strategy::LeastConcurrency, 1000, 1).await.unwrap();
        let after = inflight(&q).await;
        // expected: water-filling — each task to a least busy worker with room
        let mut sim: Vec<u64> = ["x", "y", "z"].iter().map(|w| before[*w]).collect();
        for _ in 0..d.assigned {
            let i = (0..3).filter(|&i| sim[i] < 4).min_by_key(|&i| sim[i]).unwrap();
            sim[i] += 1;
        }
        let mut got: Vec<u64> = ["x", "y", "z"].iter().map(|w| after[*w]).collect();
        sim.sort();
        got.sort();
        assert_eq!(
            got, sim,
            "round {round}: {before:?} + {} tasks -> {after:?}",
            d.assigned
        );
        assert!(
            after.values().all(|&n| n <= 4),
            "round {round}: over capacity {after:?}"
        );
        let total_free: u64 = before.values().map(|n| 4 - n).sum();
        assert_eq!(
            d.assigned,
            pending.min(total_free),
            "round {round}: as many as fit"
        );
        for w in ["x", "y", "z"] {
            held.extend(q.take(w, 10).await.unwrap());
        }
    }
    // from empty, equal workers: in-flight spread stays <= 1 as tasks arrive one by one
    let env = common::env().await;
    let q = push_queue(&env);
    for w in ["x", "y", "z"] {
        register(&q, w, 10, 1).await;
    }
    for i in 0..30 {
        enqueue_numbered(&q, i, 1).await;
        q.dispatch(Strategy::LeastConcurrency, 10, 1).await.unwrap();
        let f = inflight(&q).await;
        let (lo, hi) = (f.values().min().unwrap(), f.values().max().unwrap());
        assert!(hi - lo <= 1, "spread {f:?}");
    }
}

#[tokio::test]
async fn random_passes_a_chi_square_test_at_1_percent() {
    let env = common::env().await;
    let q = push_queue(&env);
    for w in ["r1", "r2", "r3", "r4"] {
        register(&q, w, 100_000, 1).await;
    }
    enqueue_numbered(&q, 0, 8000).await;
    let mut seeds = fastrand::Rng::with_seed(2026);
    for _ in 0..8 {
        q.dispatch(Strategy::Random, 1000, seeds.u32(1..2_147_483_646))
            .await
            .unwrap();
        finish_assigned(&q, &["r1", "r2", "r3", "r4"]).await; // capacity is at most 1000 per worker
    }
    let counts: Vec<f64> = q
        .workers(10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.assigned as f64)
        .collect();
    assert_eq!(counts.iter().sum::<f64>(), 8000.0);
    let chi2: f64 = counts.iter().map(|c| (c - 2000.0).powi(2) / 2000.0).sum();
    assert!(
        chi2 < 11.345,
        "chi-square {chi2:.2} with 3 degrees of freedom (1% critical value 11.345): {counts:?}"
    );
}

#[tokio::test]
async fn no_strategy_exceeds_capacity_and_take_hands_out_the_leases() {
    for strategy in [
        Strategy::Random,
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastConcurrency,
    ] {
        let env = common::env().await;
        let q = push_queue(&env);
        register(&q, "small", 2, 5).await;
        register(&q, "big", 5, 1).await;
        enqueue_numbered(&q, 0, 20).await;
        let d = q.dispatch(strategy, 1000, 99).await.unwrap();
        assert_eq!(d.assigned, 7, "{strategy:?}: exactly the free capacity");
        let f = inflight(&q).await;
        assert_eq!((f["small"], f["big"]), (2, 5), "{strategy:?}");
        assert_eq!(q.counts().await.unwrap().pending, 13);
        assert_eq!(
            q.dispatch(strategy, 1000, 99).await.unwrap().assigned,
            0,
            "{strategy:?}: full"
        );
        // the worker takes its assigned tasks, with their leases, and completes them
        let mine = q.take("small", 10).await.unwrap();
        assert_eq!(mine.len(), 2);
        assert!(q.take("small", 10).await.unwrap().is_empty(), "taken once");
        for c in &mine {
            common::assert_state(&q, &c.id, "leased").await;
            q.complete("small", c, b"ok").await.unwrap();
        }
        assert_eq!(inflight(&q).await["small"], 0);
        assert_eq!(
            q.dispatch(strategy, 1000, 99).await.unwrap().assigned,
            2,
            "{strategy:?}: freed capacity refilled"
        );
    }
}

/// With many live workers one dispatch call assigns only what its work budget allows (tasks x
/// workers scanned), says there is more, and repeated calls assign everything.
#[tokio::test]
async fn many_workers_bound_each_call_and_more_says_to_call_again() {
    let env = common::env().await;
    // workers stay live through the whole test, however slow the machine
    let q = env.queue().with_settings(QueueConfig {
        lease: Duration::from_secs(60),
        heartbeat: Duration::from_secs(20),
        ..env.queue().settings().clone()
    });
    for w in 0..100 {
        let id = format!("w{w:03}");
        q.register(&id, &serde_json::json!({ "capacity": 100, "weight": 1 }))
            .await
            .unwrap();
        q.heartbeat(&id, &[]).await.unwrap();
    }
    q.enqueue_batch((0..1000).map(|i| TaskSpec::new("k", format!("{i}"))).collect())
        .await
        .unwrap();
    let first = q.dispatch(Strategy::LeastConcurrency, 1000, 1).await.unwrap();
    assert_eq!(
        (first.assigned, first.more),
        (200, true),
        "20000 worker visits / 100 workers"
    );
    let mut total = first.assigned;
    let mut calls = 1;
    loop {
        let d = q.dispatch(Strategy::LeastConcurrency, 1000, 1).await.unwrap();
        total += d.assigned;
        calls += 1;
        if !d.more {
            break;
        }
    }
    assert_eq!((total, calls), (1000, 5));
    assert_eq!(q.counts().await.unwrap().pending, 0);
}
