//! Flow control on a queue, enforced by the scripts that hand out work: a GCRA rate limit with a
//! burst and a concurrency cap counted as live leases. Checked from Redis' own records (the
//! events' Redis timestamps, the leases) across worker processes, with a worker SIGKILLed, in
//! pull and push mode.
mod common;
use baton::{DispatchMode, Held, Outcome, TaskSpec, Worker};
use std::time::{Duration, Instant};

fn flow_config(
    dir: &common::TempDir,
    url: &str,
    queue_extra: &str,
    worker_extra: &str,
) -> std::path::PathBuf {
    dir.write(
        "baton.toml",
        &format!(
            r#"
[redis]
url = "{url}"

[queues.q]
lease = "1s"
heartbeat = "300ms"
max_attempts = 5
{queue_extra}

[worker]
queues = ["q"]
concurrency = 16
shutdown_grace = "2s"
poll_interval = "1s"
maintenance = false
{worker_extra}
"#
        ),
    )
}

#[tokio::test]
async fn a_rate_limit_holds_across_three_worker_processes() {
    let (rate, burst, n) = (100.0, 20usize, 420usize);
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.rate = Some(baton::flow::Rate::parse("100/s").unwrap());
        q.burst = Some(20);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let ids = common::enqueue_ids(&q, "cat", n, |i| i.to_string()).await;
    let dir = common::TempDir::new();
    let cfg = flow_config(
        &dir,
        &env.redis.url(),
        "rate = \"100/s\"\nburst = 20",
        "[worker.handlers.cat]\nexec = [\"cat\"]",
    );
    let workers: Vec<common::Proc> = (0..3)
        .map(|_| common::Proc::start(common::WORKER, &cfg))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let out = q.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(out, Outcome::Done(i.to_string().into_bytes()));
    }
    drop(workers);
    let at = common::flow::unit_costs(&common::flow::hand_outs(&q, "claimed").await);
    assert_eq!(at.len(), n, "each task handed out once");
    let reached = common::flow::check_rate(&at, rate, burst as f64, "queue");
    assert!(
        reached >= 0.95 * rate,
        "sustained {reached:.1}/s, below 95% of {rate}/s"
    );
    eprintln!("rate limit 100/s burst 20, 3 processes x 16: sustained {reached:.1}/s over {n} tasks");
    let c = q.counts().await.unwrap();
    assert_eq!((c.rate_interval_us, c.burst), (10_000, 20));
    assert!(c.held_rate_total > 0, "the rate held claims back: {c:?}");
    // one `held` event when the rate started holding the queue back, not one per claim
    let held = common::flow::details(&q, "held").await;
    assert!(!held.is_empty() && held.len() < 20, "held events: {held:?}");
    assert!(held.iter().all(|d| d.starts_with("rate|")), "{held:?}");
}

#[tokio::test]
async fn the_concurrency_cap_holds_and_a_killed_workers_slots_come_back_within_a_lease() {
    let cap = 6u64;
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().concurrency = 6).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let ids = common::enqueue_ids(&q, "nap", 120, |_| String::new()).await;
    let (mstop, mh) = common::maintain(&env, &q);
    let dir = common::TempDir::new();
    let cfg = flow_config(
        &dir,
        &env.redis.url(),
        "concurrency = 6",
        "[worker.handlers.nap]\nshell = \"sleep 0.2\"",
    );
    let mut workers: Vec<common::Proc> = (0..3)
        .map(|_| common::Proc::start(common::WORKER, &cfg))
        .collect();
    let started = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let (mut peak, mut full_again) = (0u64, None);
    loop {
        let c = q.counts().await.unwrap();
        assert!(
            c.running <= cap,
            "{} leases alive under a cap of {cap}",
            c.running
        );
        peak = peak.max(c.running);
        if killed_at.is_none() && started.elapsed() > Duration::from_millis(1500) {
            // the worker holding leases now loses them only when they expire (lease 1s)
            workers[0].signal("KILL");
            workers[0].wait_exit(Duration::from_secs(5));
            killed_at = Some(Instant::now());
        }
        if let Some(k) = killed_at {
            if full_again.is_none() && k.elapsed() > Duration::from_millis(1000) && c.running == cap {
                full_again = Some(k.elapsed());
            }
        }
        if c.done == ids.len() as u64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not all done: {c:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(peak, cap, "the cap was reached");
    let back = full_again.expect("the cap was full again after the killed worker's leases expired");
    // one lease (1s) plus a claim round trip and a handler's start
    assert!(back < Duration::from_millis(1600), "slots back after {back:?}");
    eprintln!(
        "cap {cap}: peak {peak}; killed worker's slots in use again {back:?} after the kill (lease 1s)"
    );
    for id in &ids {
        assert_eq!(
            q.wait(id, Duration::from_secs(5)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    let c = q.counts().await.unwrap();
    assert!(c.held_concurrency_total > 0, "{c:?}");
    mstop.cancel();
    mh.await.unwrap().unwrap();
}

/// `workers` in-process workers of `concurrency` each run `n` tasks that sleep `nap`; returns
/// the most handlers ever running at once.
async fn peak_running(
    env: &common::Env,
    workers: usize,
    concurrency: usize,
    n: usize,
    nap: Duration,
) -> usize {
    let specs = (0..n).map(|_| TaskSpec::new("nap", "")).collect();
    common::run_peaks(env, workers, concurrency, specs, nap).await.1
}

#[tokio::test]
async fn a_cap_of_one_never_runs_two() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().concurrency = 1).await;
    let peak = peak_running(&env, 3, 8, 60, Duration::from_millis(5)).await;
    assert_eq!(peak, 1);
}

#[tokio::test]
async fn push_dispatch_honours_the_cap_and_the_rate() {
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.dispatch = DispatchMode::Push;
        q.concurrency = 3;
        q.rate = Some(baton::flow::Rate::parse("50/s").unwrap());
        q.burst = Some(5);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let (mstop, mh) = common::maintain(&env, &q);
    let peak = peak_running(&env, 2, 8, 100, Duration::from_millis(20)).await;
    assert!((2..=3).contains(&peak), "peak {peak} under a cap of 3");
    let at = common::flow::unit_costs(&common::flow::hand_outs(&q, "dispatched").await);
    assert_eq!(at.len(), 100);
    let reached = common::flow::check_rate(&at, 50.0, 5.0, "queue");
    // 3 slots of 20 ms tasks allow 150/s: the rate is what binds
    assert!(reached >= 0.9 * 50.0, "sustained {reached:.1}/s under 50/s");
    mstop.cancel();
    mh.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_held_claim_says_which_limit_and_for_how_long() {
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.rate = Some(baton::flow::Rate::parse("2/s").unwrap());
        q.burst = Some(3);
        q.concurrency = 4;
        // leases outlive the test: only the cap frees nothing here
        q.lease = Duration::from_secs(30);
        q.heartbeat = Duration::from_secs(10);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    common::enqueue_ids(&q, "k", 10, |_| String::new()).await;
    // the burst goes at once; the fourth waits for the rate (500 ms per task)
    let first = q.claims("w1", 10).await.unwrap();
    assert_eq!(first.tasks.len(), 3);
    match first.held {
        Some(Held::Wait(after)) => assert!(
            after > Duration::from_millis(400) && after <= Duration::from_millis(500),
            "{after:?}"
        ),
        other => panic!("held {other:?}"),
    }
    let none = q.claims("w1", 1).await.unwrap();
    assert!(none.tasks.is_empty() && matches!(none.held, Some(Held::Wait(_))));
    tokio::time::sleep(Duration::from_millis(520)).await;
    assert_eq!(q.claims("w1", 5).await.unwrap().tasks.len(), 1);
    // four leases alive: the cap holds the next claim whatever the rate says
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let capped = q.claims("w1", 5).await.unwrap();
    assert!(capped.tasks.is_empty(), "{:?}", capped.tasks.len());
    assert_eq!(capped.held, Some(Held::Concurrency));
    let c = q.counts().await.unwrap();
    assert_eq!((c.running, c.concurrency, c.held_by), (4, 4, Some("concurrency")));
    let held = common::flow::details(&q, "held").await;
    assert_eq!(held.len(), 2, "one event per change of holder: {held:?}");
    assert!(
        held[0].starts_with("rate|") && held[1] == "concurrency|-1",
        "{held:?}"
    );
    // baton stats shows the limits in force
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(&cfg, &["stats", "-q", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("(rate 2/s burst 3, concurrency 4/4, held by concurrency)"),
        "{out}"
    );
    // turning the limits off clears them: everything left goes at once
    let mut cfg = env.config.clone();
    let qc = cfg.queues.get_mut("q").unwrap();
    qc.rate = None;
    qc.burst = None;
    qc.concurrency = 0;
    let plain = baton::Client::connect(cfg).await.unwrap().queue("q").unwrap();
    plain.configure().await.unwrap();
    let rest = plain.claims("w2", 10).await.unwrap();
    assert_eq!((rest.tasks.len(), rest.held), (6, None));
    assert_eq!(plain.counts().await.unwrap().held_by, None);
}

#[tokio::test]
async fn an_empty_queue_is_not_held_back() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().concurrency = 1).await;
    let q = env.queue();
    q.configure().await.unwrap();
    q.enqueue(TaskSpec::new("k", "")).await.unwrap();
    let one = q.claims("w", 5).await.unwrap();
    assert_eq!((one.tasks.len(), one.held), (1, None));
    let again = q.claims("w", 5).await.unwrap();
    assert_eq!(
        (again.tasks.len(), again.held),
        (0, None),
        "nothing pending: nothing held"
    );
    assert_eq!(q.counts().await.unwrap().held_concurrency_total, 0);
}

#[test]
fn bad_limits_are_refused_naming_the_key() {
    common::refused_queue_settings(&[
        ("rate = \"0/s\"", "rate", "positive"),
        ("rate = \"-3/s\"", "rate", "positive"),
        ("rate = \"lots/s\"", "rate", "not a number"),
        ("rate = \"5/fortnight\"", "rate", "not a duration"),
        ("rate = 200", "rate", ""),
        ("rate = \"5/s\"\nburst = 0", "queues.q.burst", "between 1"),
        ("burst = 10", "queues.q.burst", "set rate as well"),
        ("concurrency = -1", "concurrency", ""),
        (
            "concurrency = 2000000",
            "queues.q.concurrency",
            "between 0 and 1000000",
        ),
    ]);
}

#[tokio::test]
async fn limits_hold_with_a_mixed_rust_and_python_pool() {
    use common::clients::Lang;
    let (rate, burst, cap, n) = (40.0, 5usize, 4u64, 100usize);
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.rate = Some(baton::flow::Rate::parse("40/s").unwrap());
        q.burst = Some(5);
        q.concurrency = 4;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let ids = common::enqueue_ids(&q, "mix", n, |i| format!("t-{i}")).await;
    // a Python worker (8 handler threads) beside a Rust one (8 slots), 100 ms per task: the cap
    // (4 slots: 40 tasks/s) and the rate bind together
    let mut python = Lang::Python
        .command(&["work-mixed", &env.redis.url(), "q", "8", "100"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // the Rust worker starts once Python holds leases: a slow interpreter start on a loaded
    // machine would otherwise leave it nothing to take
    common::eventually(Duration::from_secs(20), "the Python worker claimed", || {
        let q = q.clone();
        async move { q.counts().await.unwrap().leased > 0 }
    })
    .await;
    let rust = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(8)
        .handler("mix", |t: baton::TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut out = t.payload.to_ascii_uppercase();
            out.extend_from_slice(b"|rust");
            Ok(out)
        })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(rust);
    let mut peak = 0;
    let started = Instant::now();
    while q.counts().await.unwrap().done < n as u64 {
        let running = q.counts().await.unwrap().running;
        assert!(running <= cap, "{running} leases alive under a cap of {cap}");
        peak = peak.max(running);
        assert!(started.elapsed() < Duration::from_secs(30), "not done in 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut by_python, mut by_rust) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let Outcome::Done(out) = q.wait(id, Duration::from_secs(5)).await.unwrap() else {
            panic!("{id} not done")
        };
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with(&format!("T-{i}|")), "{out}");
        if out.ends_with("|python") {
            by_python += 1;
        } else {
            by_rust += 1;
        }
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let _ = std::process::Command::new("kill")
        .arg(python.id().to_string())
        .status();
    let _ = python.wait();
    assert!(
        by_python > 0 && by_rust > 0,
        "both pools worked: python {by_python}, rust {by_rust}"
    );
    assert_eq!(peak, cap, "the cap was reached");
    let at = common::flow::unit_costs(&common::flow::hand_outs(&q, "claimed").await);
    assert_eq!(at.len(), n);
    let reached = common::flow::check_rate(&at, rate, burst as f64, "queue");
    eprintln!("mixed pool: python {by_python}, rust {by_rust}; sustained {reached:.1}/s of {rate}/s, peak {peak}/{cap}");
}
