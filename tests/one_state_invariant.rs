//! Invariant 1: a task is in exactly one state set at any moment, whatever sequence of
//! transitions it goes through (a seeded random walk over every script, with tasks waiting
//! for others under every failure policy).
mod common;
use baton::{Claimed, FailReport, QueueConfig, TaskSpec};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn every_task_is_in_exactly_one_state_set_after_every_transition() {
    let env = common::env().await;
    let q = env.queue().with_settings(QueueConfig {
        lease: Duration::from_millis(150),
        heartbeat: Duration::from_millis(50),
        max_attempts: 3,
        backoff: baton::BackoffKind::Fixed,
        backoff_base: Duration::from_millis(30),
        backoff_cap: Duration::from_millis(30),
        ..Default::default()
    });
    let mut rng = fastrand::Rng::with_seed(7);
    let mut ids: Vec<String> = Vec::new();
    let mut held: HashMap<String, Claimed> = HashMap::new();
    let mut transitions = 0;
    let mut seen_waiting = false;
    for step in 0..400 {
        match rng.u32(0..10) {
            0 | 1 => {
                let n = rng.usize(1..5);
                let specs = (0..n)
                    .map(|_| {
                        let s = TaskSpec::new("k", "x").priority(rng.i32(-2..3));
                        match rng.u32(0..3) {
                            0 => s.delay(Duration::from_millis(rng.u64(0..60))),
                            // waiting for up to three earlier tasks, under any failure policy
                            1 if !ids.is_empty() => s
                                .after((0..rng.usize(1..4)).map(|_| ids[rng.usize(0..ids.len())].clone()))
                                .on_failure(
                                    [
                                        baton::OnFailure::Fail,
                                        baton::OnFailure::Continue,
                                        baton::OnFailure::Ignore,
                                    ][rng.usize(0..3)],
                                ),
                            _ => s,
                        }
                    })
                    .collect();
                ids.extend(q.enqueue_batch(specs).await.unwrap().into_iter().map(|e| e.id));
            }
            2 | 3 => {
                for c in q.claim("w", rng.usize(1..4)).await.unwrap() {
                    held.insert(c.id.clone(), c);
                }
            }
            4 => {
                if let Some(id) = held.keys().next().cloned() {
                    let c = held.remove(&id).unwrap();
                    let _ = q.complete("w", &c, b"r").await;
                }
            }
            5 => {
                if let Some(id) = held.keys().next().cloned() {
                    let c = held.remove(&id).unwrap();
                    let r = FailReport {
                        id: c.id.clone(),
                        token: c.token.clone(),
                        error: "e".into(),
                        retry: rng.u32(0..4) > 0,
                    };
                    let _ = q.fail("w", &r).await;
                }
            }
            6 => {
                if !ids.is_empty() {
                    let id = ids[rng.usize(0..ids.len())].clone();
                    q.cancel(&[&id]).await.unwrap();
                }
            }
            7 => {
                let dead = q.dead_ids(5).await.unwrap();
                let refs: Vec<&str> = dead.iter().map(|s| s.as_str()).collect();
                if !refs.is_empty() {
                    q.requeue_dead(&refs).await.unwrap();
                }
            }
            8 => {
                if let Some(id) = held.keys().next().cloned() {
                    let c = held.remove(&id).unwrap();
                    let _ = q.release("w", &[baton::LeaseRef::new(&c.id, &c.token)]).await;
                }
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(rng.u64(0..80))).await;
                q.promote(100).await.unwrap();
                q.reclaim(100).await.unwrap();
            }
        }
        transitions += 1;
        if step % 10 == 0 || step > 390 {
            for id in &ids {
                seen_waiting |= common::assert_one_state(&q, id).await == "waiting";
            }
        }
    }
    assert!(
        transitions == 400 && ids.len() > 50,
        "the walk exercised enough tasks ({})",
        ids.len()
    );
    // the state counts add up to the number of tasks
    let c = q.counts().await.unwrap();
    assert_eq!(
        c.pending + c.delayed + c.waiting + c.leased + c.done + c.dead + c.cancelled,
        ids.len() as u64
    );
    assert!(seen_waiting, "the walk saw tasks waiting for others");
}
