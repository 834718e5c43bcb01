//! Debounce (`TaskSpec::debounce`, `baton enqueue --debounce KEY --window W --max-wait M`): the
//! task runs W after the last enqueue with KEY, with the last payload; repeats while it waits
//! replace its payload and push it back, never past M after the first enqueue.
mod common;
use baton::{Error, Queue, TaskSpec};
use std::time::{Duration, Instant};

fn deb(payload: &str, window_ms: u64, max_wait_ms: u64) -> TaskSpec {
    TaskSpec::new("k", payload).debounce(
        "d",
        Duration::from_millis(window_ms),
        Duration::from_millis(max_wait_ms),
    )
}

async fn run_at(env: &common::Env, q: &Queue, id: &str) -> u64 {
    let mut raw = env.raw().await;
    let s: f64 = redis::cmd("ZSCORE")
        .arg(q.keys().key(baton::keys::Role::Delayed))
        .arg(id)
        .query_async(&mut raw)
        .await
        .unwrap();
    s as u64
}

#[tokio::test]
async fn repeats_replace_the_payload_and_push_the_run_back() {
    let env = common::env().await;
    let q = env.queue();
    let first = q.enqueue(deb("1", 500, 5000)).await.unwrap();
    assert!(first.created && !first.debounced);
    let at1 = run_at(&env, &q, &first.id).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = q.enqueue(deb("2", 500, 5000)).await.unwrap();
    assert!(!again.created && again.debounced, "{again:?}");
    assert_eq!(again.id, first.id);
    let at2 = run_at(&env, &q, &first.id).await;
    assert!(at2 >= at1 + 90, "run time pushed back: {at1} -> {at2}");
    let t = q.get(&first.id).await.unwrap().unwrap();
    assert_eq!(t.record.payload, b"2");
    let c = q.counts().await.unwrap();
    assert_eq!((c.enqueued_total, c.delayed, c.pending), (1, 1, 0));
    // the replacement is announced: one enqueued event, then one debounced event naming it
    let kinds: Vec<(String, Vec<String>)> = q
        .events_after("0", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.tasks.into_iter().map(|t| t.id).collect()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("enqueued".to_string(), vec![first.id.clone()]),
            ("debounced".to_string(), vec![first.id.clone()])
        ]
    );
}

#[tokio::test]
async fn a_thousand_concurrent_enqueues_make_one_task_that_runs_the_last_payload() {
    let env = common::env().await;
    let q = env.queue();
    let hs: Vec<_> = (0..1000)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.enqueue(deb(&format!("p{i}"), 300, 3000)).await.unwrap() })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for h in hs {
        let e = h.await.unwrap();
        created += e.created as usize;
        ids.insert(e.id);
    }
    assert_eq!((created, ids.len()), (1, 1), "one task, one id for all");
    let last = q.enqueue(deb("last", 300, 3000)).await.unwrap();
    assert!(last.debounced && ids.contains(&last.id));
    let t0 = Instant::now();
    // it runs once the window has passed since the last enqueue, with the last payload
    let claimed = loop {
        q.promote(100).await.unwrap();
        if let Some(c) = q.claim("w", 10).await.unwrap().pop() {
            break c;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "never became due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "ran before the window passed"
    );
    assert_eq!(claimed.record.payload, b"last");
    assert_eq!(q.counts().await.unwrap().enqueued_total, 1);
}

#[tokio::test]
async fn max_wait_bounds_the_push_back_and_a_new_cycle_follows() {
    let env = common::env().await;
    let q = env.queue();
    let (window, max_wait) = (400, 700);
    let t0 = Instant::now();
    let first = q.enqueue(deb("0", window, max_wait)).await.unwrap().id;
    let mut ran = None;
    let mut i = 1;
    // keep re-enqueueing every 50 ms, well inside the window, for 1.5 s
    while t0.elapsed() < Duration::from_millis(1500) {
        q.enqueue(deb(&format!("{i}"), window, max_wait)).await.unwrap();
        i += 1;
        q.promote(100).await.unwrap();
        for c in q.claim("w", 10).await.unwrap() {
            if c.id == first && ran.is_none() {
                ran = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ran = ran.expect("the first task never ran under constant re-enqueues");
    assert!(
        ran >= Duration::from_millis(max_wait - 50) && ran <= Duration::from_millis(max_wait + 250),
        "ran {ran:?} after the first enqueue; max wait {max_wait} ms"
    );
    // the enqueues after it ran started a new task
    assert!(q.counts().await.unwrap().enqueued_total >= 2);
}

#[tokio::test]
async fn bad_debounce_settings_are_refused_before_anything_is_written() {
    let env = common::env().await;
    let q = env.queue();
    for spec in [
        deb("x", 0, 1000),
        deb("x", 500, 100),
        deb("x", 100, 1000).delay(Duration::from_secs(1)),
    ] {
        let e = q.enqueue(spec).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains("debounce d"), "{e}");
    }
    assert_eq!(q.counts().await.unwrap().enqueued_total, 0);
}
