//! 10,000 tasks through a pool of workers in three languages: producers in Python and Node
//! (5,000 each, atomic batches of 100), two worker processes each in Rust, Python and Node
//! (concurrency 50 apiece), and one worker of each language SIGKILLed midway. Every task ends
//! done exactly once (the queue's completion count is exactly 10,000: a token-checked
//! completion cannot land twice), with the right result from whichever language ran it.
mod common;
use baton::{Client, Worker};
use common::clients::Lang;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BATON_TEST_MIXED_REDIS_URL";
const TASKS: usize = 10_000;
const CONCURRENCY: &str = "50";
const TASK_MS: u64 = 30;

/// The Rust worker process (run only as the parent's child).
#[tokio::test]
#[ignore = "helper process for ten_thousand_tasks_across_three_languages_each_done_once"]
async fn child_rust_worker() {
    let url = std::env::var(CHILD_ENV).expect("run by the mixed-clients test");
    let mut cfg = common::test_config(&url);
    cfg.worker.maintenance = false;
    let client = Client::connect(cfg).await.unwrap();
    let worker = Worker::builder(&client, "mix")
        .unwrap()
        .concurrency(CONCURRENCY.parse().unwrap())
        .handler("mix", |t: baton::TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(TASK_MS)).await;
            let mut r = t.payload.to_ascii_uppercase();
            r.extend_from_slice(b"|rust");
            Ok(r)
        })
        .build()
        .unwrap();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    worker
        .run(async move {
            term.recv().await;
        })
        .await
        .unwrap(); // drains and deregisters on SIGTERM
}

fn spawn_worker(lang: Option<Lang>, url: &str) -> Child {
    let ms = TASK_MS.to_string();
    let mut cmd = match lang {
        None => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["child_rust_worker", "--exact", "--ignored", "--nocapture"])
                .env(CHILD_ENV, url);
            c
        }
        Some(l) => l.command(&["work-mixed", url, "mix", CONCURRENCY, &ms]),
    };
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn ten_thousand_tasks_across_three_languages_each_done_once() {
    let env = common::env().await; // lease 1s; the workers heartbeat every 300 ms
    let q = env.client.queue("mix").unwrap();
    let url = env.redis.url();
    // reclaim (the killed workers' leases) and promote (retries), as baton-scheduler does
    let (stop, maint) = common::maintain(&env, &q);
    let langs = [None, Some(Lang::Python), Some(Lang::Node)];
    let _ = common::clients::node_client(); // built before the clock starts
    let mut workers: Vec<(Option<Lang>, Child)> = Vec::new();
    for _ in 0..2 {
        for l in langs {
            workers.push((l, spawn_worker(l, &url)));
        }
    }
    let started = Instant::now();
    // the producers, at once: Python and Node, 5,000 each
    let produce = |lang: Lang, tag: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            lang.driver(&["enqueue-mixed", &url, "mix", &(TASKS / 2).to_string(), tag])
        })
    };
    let (py, node) = (produce(Lang::Python, "py"), produce(Lang::Node, "node"));

    // midway, SIGKILL the first worker of each language while it holds leases
    common::eventually(Duration::from_secs(60), "3,000 tasks done", || async {
        q.counts().await.unwrap().completed_total >= 3000
    })
    .await;
    let killed_at = q.counts().await.unwrap().completed_total;
    for (_, child) in workers.iter_mut().take(3) {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut payload_of: BTreeMap<String, String> = BTreeMap::new();
    for (out, tag) in [(py.await.unwrap(), "py"), (node.await.unwrap(), "node")] {
        for (i, id) in out.lines().enumerate() {
            payload_of.insert(id.to_string(), format!("{tag}-{i}"));
        }
    }
    assert_eq!(payload_of.len(), TASKS, "10,000 distinct ids");
    common::eventually(Duration::from_secs(120), "every task done", || async {
        q.counts().await.unwrap().done == TASKS as u64
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    for (_, child) in workers.iter_mut().skip(3) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap();
    }
    stop.cancel();
    maint.await.unwrap().unwrap();

    let counts = q.counts().await.unwrap();
    assert_eq!(
        counts.completed_total, TASKS as u64,
        "each task completed exactly once"
    );
    assert_eq!(counts.pending + counts.leased + counts.delayed + counts.dead, 0);
    assert!(
        counts.expired_total >= 3,
        "the killed workers held leases, which expired and were run again: {counts:?}"
    );
    let mut by_lang: BTreeMap<String, usize> = BTreeMap::new();
    for (id, payload) in &payload_of {
        let t = q.get(id).await.unwrap().unwrap();
        assert_eq!(t.state, baton::State::Done, "{id}");
        let result = String::from_utf8(t.result.unwrap()).unwrap();
        let (value, lang) = result.rsplit_once('|').expect("value|language");
        assert_eq!(value, payload.to_uppercase(), "{id}");
        *by_lang.entry(lang.to_string()).or_default() += 1;
    }
    eprintln!(
        "mixed run: {TASKS} tasks in {secs:.1} s; done by {by_lang:?}; killed after {killed_at} done; {} leases expired and ran again",
        counts.expired_total
    );
    for lang in ["rust", "python", "node"] {
        assert!(
            by_lang.get(lang).copied().unwrap_or(0) > 0,
            "{lang} workers ran tasks: {by_lang:?}"
        );
    }
    let left = q.workers(20).await.unwrap();
    assert!(left.len() <= 3, "the survivors deregistered: {left:?}");
}
