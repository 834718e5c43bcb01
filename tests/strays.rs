//! An expired lease is charged as an attempt only when its run started: a worker says so with a
//! start mark (the highest fencing token whose handler it has started). A lease that expires
//! before the mark — the worker died between claim and handler start — is a stray: back to
//! pending uncharged, its run number used up, at most `MAX_STRAYS` times in a task's life.
mod common;
use baton::{DispatchMode, QueueConfig, State, Strategy, TaskSpec, MAX_STRAYS};
use std::time::Duration;

fn token(c: &baton::Claimed) -> u64 {
    c.token.parse().unwrap()
}

/// Enqueue `n` tasks that each have one attempt.
async fn enqueue_one_attempt(q: &baton::Queue, n: usize) {
    let specs = (0..n).map(|i| TaskSpec::new("k", format!("{i}")).max_attempts(1));
    q.enqueue_batch(specs.collect()).await.unwrap();
}

async fn expire_and_reclaim(q: &baton::Queue) -> baton::Reclaimed {
    tokio::time::sleep(q.settings().lease + Duration::from_millis(100)).await;
    q.reclaim(100).await.unwrap()
}

#[tokio::test]
async fn a_lease_that_expires_before_its_run_starts_is_not_charged() {
    let env = common::env().await; // lease 1s
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("k", "p").max_attempts(1))
        .await
        .unwrap()
        .id;
    // claimed, then the worker dies before starting the handler: no start mark
    let c = q.claim("w1", 1).await.unwrap().remove(0);
    assert_eq!((c.attempt, c.run), (1, 1));
    let r = expire_and_reclaim(&q).await;
    assert_eq!(
        (r.requeued, r.dead),
        (1, 0),
        "not charged: max_attempts 1 would make it dead"
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.state, t.attempts, t.record.strays), (State::Pending, 0, 1));
    let err = t.last_error.unwrap();
    assert_eq!(err.run, 1);
    assert!(
        err.message.contains("before run 1 started") && err.message.contains("not counted"),
        "{}",
        err.message
    );

    // `baton status` says why there were more runs than attempts
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(&cfg, &["status", "-q", "q", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "attempts  0 of 1 (1 runs in all: 1 lease(s) expired before the run started, not charged)"
        ),
        "{out}"
    );
    let (_, json, _) = common::baton(&cfg, &["--json", "status", "-q", "q", &id]);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (j["runs"].as_u64(), j["strays"].as_u64()),
        (Some(1), Some(1)),
        "{json}"
    );

    // the next lease is a new run, still attempt 1; this one starts, so its expiry is charged
    let c = q.claim("w2", 1).await.unwrap().remove(0);
    assert_eq!((c.attempt, c.run), (1, 2));
    assert_eq!(q.start("w2", token(&c)).await.unwrap(), token(&c));
    let r = expire_and_reclaim(&q).await;
    assert_eq!((r.requeued, r.dead), (0, 1));
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.state, t.attempts, t.record.strays), (State::Dead, 1, 1));
    assert!(t.last_error.unwrap().message.contains("during attempt 1 (run 2)"));
}

#[tokio::test]
async fn strays_are_bounded_so_a_task_that_kills_its_worker_still_dies() {
    let env = common::env().await;
    let q = env.queue().with_settings(QueueConfig {
        lease: Duration::from_millis(200),
        ..env.queue().settings().clone()
    });
    let id = q
        .enqueue(TaskSpec::new("k", "p").max_attempts(1))
        .await
        .unwrap()
        .id;
    for n in 1..=MAX_STRAYS {
        let c = q.claim("w", 1).await.unwrap().remove(0);
        assert_eq!((c.attempt, c.run), (1, n));
        let r = expire_and_reclaim(&q).await;
        assert_eq!((r.requeued, r.dead), (1, 0), "stray {n}");
    }
    // one stray too many: charged like any expired lease
    let c = q.claim("w", 1).await.unwrap().remove(0);
    assert_eq!(c.run, MAX_STRAYS + 1);
    let r = expire_and_reclaim(&q).await;
    assert_eq!((r.requeued, r.dead), (0, 1));
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!((t.state, t.record.strays), (State::Dead, MAX_STRAYS));
}

#[tokio::test]
async fn the_mark_covers_lower_tokens_of_that_worker_only_and_never_goes_down() {
    let env = common::env().await;
    let q = env.queue();
    enqueue_one_attempt(&q, 4).await;
    let mine = q.claim("w", 3).await.unwrap();
    let theirs = q.claim("other", 1).await.unwrap().remove(0);
    let toks: Vec<u64> = mine.iter().map(token).collect();
    assert!(toks.windows(2).all(|w| w[0] < w[1]), "tokens increase: {toks:?}");
    assert!(token(&theirs) > toks[2]);
    // w started its first two runs; `other` marks a token above all of w's
    assert_eq!(q.start("w", toks[1]).await.unwrap(), toks[1]);
    assert_eq!(
        q.start("w", toks[0]).await.unwrap(),
        toks[1],
        "a lower mark changes nothing"
    );
    q.start("other", token(&theirs)).await.unwrap();
    let r = expire_and_reclaim(&q).await;
    assert_eq!((r.requeued, r.dead), (1, 3), "{r:?}");
    assert_eq!(q.get(&mine[2].id).await.unwrap().unwrap().state, State::Pending);
    for c in [&mine[0], &mine[1], &theirs] {
        assert_eq!(
            q.get(&c.id).await.unwrap().unwrap().state,
            State::Dead,
            "{}",
            c.id
        );
    }
}

#[tokio::test]
async fn take_hands_out_fresh_increasing_tokens() {
    let env = common::env().await;
    let q = env.queue().with_settings(QueueConfig {
        dispatch: DispatchMode::Push,
        ..env.queue().settings().clone()
    });
    q.configure().await.unwrap();
    q.register("w", &serde_json::json!({ "capacity": 10, "weight": 1 }))
        .await
        .unwrap();
    q.heartbeat("w", &[]).await.unwrap();
    enqueue_one_attempt(&q, 6).await;
    assert_eq!(
        q.dispatch(Strategy::RoundRobin, 100, 1).await.unwrap().assigned,
        6
    );
    // taken in id order, not dispatch order; and a later take must still get higher tokens
    let first = q.take("w", 3).await.unwrap();
    q.start("w", first.iter().map(token).max().unwrap())
        .await
        .unwrap();
    let second = q.take("w", 3).await.unwrap();
    let a: Vec<u64> = first.iter().map(token).collect();
    let b: Vec<u64> = second.iter().map(token).collect();
    assert!(
        a.windows(2).all(|w| w[0] < w[1]) && b.windows(2).all(|w| w[0] < w[1]),
        "{a:?} {b:?}"
    );
    assert!(b[0] > a[2], "{a:?} then {b:?}");
    // the worker dies before starting the second batch: only the first is charged
    let r = expire_and_reclaim(&q).await;
    assert_eq!((r.requeued, r.dead), (3, 3), "{r:?}");
    for c in &second {
        let t = q.get(&c.id).await.unwrap().unwrap();
        assert_eq!((t.state, t.record.strays), (State::Pending, 1), "{}", c.id);
    }
}

#[tokio::test]
async fn leases_in_a_gap_never_count_as_started() {
    let env = common::env().await;
    let q = env.queue();
    enqueue_one_attempt(&q, 3).await;
    let got = q.claim("w", 1).await.unwrap().remove(0);
    // this claim runs in Redis but its reply is lost: the worker never sees the task
    let lost = q.claim("w", 1).await.unwrap().remove(0);
    let next = q.claim("w", 1).await.unwrap().remove(0);
    let (a, b) = (token(&got), token(&next));
    assert_eq!(q.start_with_gaps("w", b, &[(a, b)]).await.unwrap(), b);
    let r = expire_and_reclaim(&q).await;
    assert_eq!((r.requeued, r.dead), (1, 2), "{r:?}");
    let t = q.get(&lost.id).await.unwrap().unwrap();
    assert_eq!((t.state, t.attempts, t.record.strays), (State::Pending, 0, 1));

    // a gap that holds no token is refused, naming the fix
    let e = q.start_with_gaps("w", b, &[(b, b + 1)]).await.unwrap_err();
    assert!(e.to_string().contains("holds no token"), "{e}");
}
