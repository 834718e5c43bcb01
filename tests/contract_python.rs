//! Cross-language contract: the Python client (clients/python, redis-py only) and the Rust
//! library share queues through the same scripts — each side produces, works and reads the
//! other's tasks, and stale tokens and version mismatches are refused the same way.
mod common;
use baton::{Error, Outcome, TaskSpec, Worker};
use std::process::Command;
use std::time::Duration;

fn python(args: &[&str]) -> String {
    let py = std::env::var("BATON_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(&py)
        .arg(format!("{root}/clients/python/tests/contract_driver.py"))
        .args(args)
        .env("PYTHONPATH", format!("{root}/clients/python"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} ({e}): scripts/test installs python3 and redis-py"));
    assert!(
        out.status.success(),
        "python {args:?} failed: {}\n(scripts/test installs redis-py: python3 -m pip install redis)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn python_enqueues_rust_works_python_reads() {
    let env = common::env().await;
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("reverse", |t: baton::TaskContext| async move {
            let mut p = t.payload.clone();
            p.reverse();
            Ok(p)
        })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(worker);
    let url = env.redis.url();
    let ids: Vec<String> = python(&["enqueue", &url, "q", "20"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 20);
    let mut args = vec!["results".to_string(), url.clone(), "q".to_string()];
    args.extend(ids.iter().cloned());
    // blocking: off the runtime thread, so the in-process Rust worker keeps running
    let out =
        tokio::task::spawn_blocking(move || python(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>()))
            .await
            .unwrap();
    let results: Vec<String> = out.lines().map(str::to_string).collect();
    let want: Vec<String> = (0..20)
        .map(|i| format!("done:{}", format!("item-{i}").chars().rev().collect::<String>()))
        .collect();
    assert_eq!(results, want);
    // and Rust reads the same tasks
    let t = env.queue().get(&ids[0]).await.unwrap().unwrap();
    assert_eq!(t.result.unwrap(), b"0-meti");
    stop.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn rust_enqueues_python_works_with_heartbeats() {
    let env = common::env().await;
    let q = env.queue();
    // reclaim runs every 100ms: only the Python worker's heartbeats keep its 1s leases alive
    let stop = tokio_util::sync::CancellationToken::new();
    let m = baton::Maintenance::new(vec![q.clone()], env.config.scheduler.clone());
    let maint = tokio::spawn(m.run(stop.clone(), None));
    let ids: Vec<String> = q
        .enqueue_batch(
            (0..2)
                .map(|i| TaskSpec::new("slow-upper", format!("job {i}")))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let url = env.redis.url();
    let out = tokio::task::spawn_blocking(move || python(&["work", &url, "q", "2"]))
        .await
        .unwrap();
    assert_eq!(out.trim(), "processed 2");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            q.wait(id, Duration::from_secs(5)).await.unwrap(),
            Outcome::Done(format!("JOB {i}").into_bytes())
        );
        let t = q.get(id).await.unwrap().unwrap();
        assert_eq!(t.attempts, 1, "never reclaimed: heartbeats worked");
        let p = t.progress.expect("the Python handler's progress report");
        assert_eq!((p.percent, p.message.as_str()), (50, "py half"));
    }
    assert!(
        q.workers(10).await.unwrap().is_empty(),
        "the Python worker deregistered"
    );
    stop.cancel();
    maint.await.unwrap().unwrap();
}

/// Run the Python worker (`concurrency` 8, `grace` seconds of shutdown grace) on 24 one-second
/// tasks, SIGTERM it once 8 run at once, and sort the tasks by state: (processed, done,
/// pending); every task must be done or pending, none lost or left leased.
async fn sigterm_a_python_worker(command: &str, grace: &str) -> (usize, usize, usize) {
    let env = common::env().await;
    let q = env.queue();
    let ids: Vec<String> = q
        .enqueue_batch(
            (0..24)
                .map(|i| TaskSpec::new("sleepy", format!("job {i}")))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let py = std::env::var("BATON_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let child = Command::new(&py)
        .arg(format!("{root}/clients/python/tests/contract_driver.py"))
        .args([command, &env.redis.url(), "q", "8", grace])
        .env("PYTHONPATH", format!("{root}/clients/python"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::eventually(Duration::from_secs(10), "8 tasks leased at once", || async {
        q.counts().await.unwrap().leased == 8
    })
    .await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let processed: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("processed ")
        .expect("processed N")
        .parse()
        .unwrap();
    let (mut done, mut pending) = (0, 0);
    for id in &ids {
        let t = q.get(id).await.unwrap().unwrap();
        match t.state {
            baton::State::Done => done += 1,
            baton::State::Pending => {
                assert_eq!(t.attempts, 0, "a released run is not charged");
                pending += 1
            }
            s => panic!("task {id} left {s:?}"),
        }
    }
    assert_eq!(done + pending, 24);
    assert!(q.workers(10).await.unwrap().is_empty(), "deregistered");
    (processed, done, pending)
}

/// The Python worker runs `concurrency` handlers at once, and on SIGTERM stops claiming and lets
/// the tasks in flight finish within its grace.
#[tokio::test]
async fn a_python_worker_runs_tasks_concurrently_and_stops_cleanly_on_sigterm() {
    drains_on_sigterm("work-concurrent").await;
}

/// With enough grace, the tasks in flight at SIGTERM finish and no more start.
async fn drains_on_sigterm(command: &str) {
    let (processed, done, _) = sigterm_a_python_worker(command, "30").await;
    assert_eq!(done, processed, "the tasks in flight at SIGTERM finished");
    assert!((8..24).contains(&done), "stopped early: {done} done");
}

/// Past the grace, what still runs is released: back to pending, not charged.
async fn releases_past_grace(command: &str) {
    let (_, done, pending) = sigterm_a_python_worker(command, "0.2").await;
    assert!(
        done < 8 && pending > 16,
        "in-flight work was released: {done} done"
    );
}

/// The same with the asyncio worker (asyncio handlers on redis-py's asyncio client).
#[tokio::test]
async fn the_asyncio_worker_runs_tasks_concurrently_and_stops_cleanly_on_sigterm() {
    drains_on_sigterm("work-async").await;
}

/// Past its grace the asyncio worker cancels what still runs and releases those leases.
#[tokio::test]
async fn the_asyncio_worker_releases_what_outlives_its_grace() {
    releases_past_grace("work-async").await;
}

/// The asyncio producer and worker: an atomic batch enqueued, worked and awaited in one event
/// loop; Rust reads the same results.
#[tokio::test]
async fn the_asyncio_client_enqueues_works_and_waits() {
    let env = common::env().await;
    let url = env.redis.url();
    let out = tokio::task::spawn_blocking(move || python(&["async-roundtrip", &url, "q"]))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["processed"], 3);
    assert_eq!(v["counts"], 3);
    assert_eq!(
        v["results"],
        serde_json::json!([["done", "N0"], ["done", "N1"], ["done", "N2"]])
    );
    let q = env.queue();
    for (i, id) in v["ids"].as_array().unwrap().iter().enumerate() {
        let t = q.get(id.as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(t.result, Some(format!("N{i}").into_bytes()));
        let p = t.progress.expect("the asyncio handler's progress report");
        assert_eq!((p.percent, p.message.as_str()), (100, "uppercased"));
    }
}

/// Past its shutdown grace the Python worker releases the leases of the handlers still running:
/// those tasks go back to pending uncharged, to run elsewhere.
#[tokio::test]
async fn a_python_worker_releases_what_outlives_its_grace() {
    releases_past_grace("work-concurrent").await;
}

#[tokio::test]
async fn a_stale_token_is_refused_the_same_from_python_and_rust() {
    let env = common::env().await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    let out = python(&["stale", &env.redis.url(), "q"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(
        v["refused"],
        serde_json::json!(["complete", "fail", "heartbeat", "progress"])
    );
    assert_eq!(v["fresh_attempt"], 2);
    // the zombie's token, replayed from Rust, is refused too, and changes nothing
    let zombie = baton::Claimed {
        id: id.clone(),
        token: v["zombie_token"].as_str().unwrap().into(),
        attempt: 1,
        run: 1,
        deadline_ms: 0,
        record: q.get(&id).await.unwrap().unwrap().record,
    };
    assert!(matches!(
        q.complete("py-zombie", &zombie, b"zombie").await,
        Err(Error::StaleLease { .. })
    ));
    let zombie_lease = baton::LeaseRef::new(&id, &zombie.token);
    assert_eq!(
        q.progress("py-zombie", &zombie_lease, 99, "zombie")
            .await
            .unwrap(),
        baton::ProgressAck::Stale
    );
    assert!(
        q.get(&id).await.unwrap().unwrap().progress.is_none(),
        "nothing stored"
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.lease.unwrap().worker, "py-fresh");
    common::assert_state(&q, &id, "leased").await;
}

#[tokio::test]
async fn a_version_mismatch_is_refused_in_both() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "x")).await.unwrap();
    let mut raw = env.raw().await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys().key(baton::keys::Role::Meta))
        .arg("v")
        .arg("99")
        .query_async(&mut raw)
        .await
        .unwrap();
    // refused when the Python queue is made (the connect check), and by the scripts themselves
    let out = python(&["version", &env.redis.url(), "q"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        assert!(
            l.starts_with("VERSION ") && l.contains("has data schema v99 but these scripts are v"),
            "{out}"
        );
    }
    let e = q.enqueue(TaskSpec::new("k", "x")).await.unwrap_err();
    assert!(matches!(e, Error::VersionMismatch { .. }), "{e}");
    assert_eq!(
        q.counts()
            .await
            .err()
            .map(|e| matches!(e, Error::VersionMismatch { .. })),
        Some(true)
    );
}

#[tokio::test]
async fn a_python_worker_takes_push_assignments() {
    let env = common::env_with(|c| {
        c.queues.insert(
            "pp".into(),
            baton::QueueConfig {
                dispatch: baton::DispatchMode::Push,
                strategy: baton::Strategy::RoundRobin,
                lease: Duration::from_secs(1),
                heartbeat: Duration::from_millis(300),
                ..Default::default()
            },
        );
    })
    .await;
    let q = env.client.queue("pp").unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let m = baton::Maintenance::new(vec![q.clone()], env.config.scheduler.clone());
    let dispatcher = tokio::spawn(m.run(stop.clone(), None));
    let ids: Vec<String> = q
        .enqueue_batch(
            (0..3)
                .map(|i| TaskSpec::new("slow-upper", format!("push {i}")))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let url = env.redis.url();
    let out = tokio::task::spawn_blocking(move || python(&["work-push", &url, "pp", "3"]))
        .await
        .unwrap();
    assert_eq!(out.trim(), "processed 3");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            q.wait(id, Duration::from_secs(5)).await.unwrap(),
            Outcome::Done(format!("PUSH {i}").into_bytes())
        );
        assert_eq!(q.get(id).await.unwrap().unwrap().attempts, 1);
    }
    stop.cancel();
    dispatcher.await.unwrap().unwrap();
}

/// The Python client flattens the scripts exactly as the Rust loader does (includes of
/// includes, each once): the same text, so the same SHA1 for every script.
#[test]
fn python_flattens_every_script_to_the_rust_sha() {
    let py = std::env::var("BATON_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let code = format!(
        "import hashlib, json\nfrom baton_client import Scripts\ns = Scripts({:?})\nprint(json.dumps({{k: hashlib.sha1(v.encode()).hexdigest() for k, v in s.bodies.items()}}))",
        format!("{root}/lua")
    );
    let out = Command::new(&py)
        .args(["-c", &code])
        .env("PYTHONPATH", format!("{root}/clients/python"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shas: std::collections::BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shas.len(), baton::scripts::ScriptName::ALL.len());
    for name in baton::scripts::ScriptName::ALL {
        assert_eq!(shas[name.file_stem()], name.script().sha, "{}", name.file_stem());
    }
}

/// Python turns priority aging on through configure; the order it gives is the scripts', so a
/// Rust claim sees a priority-0 task ahead of priority-10 tasks enqueued after its bound.
#[tokio::test]
async fn python_configures_priority_aging() {
    let env = common::env().await;
    let out = python(&["aging", &env.redis.url(), "q", "20"]);
    assert_eq!(out.trim(), "20");
    let q = env.queue();
    assert_eq!(q.counts().await.unwrap().aging_ms, 20);
    let order: Vec<String> = q
        .claim("w", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(order, ["low", "high-0", "high-1", "high-2"]);
}

/// A throttle key is the same key from both languages: a Rust task throttles Python's enqueue
/// within the window.
#[tokio::test]
async fn python_and_rust_share_throttle_keys() {
    let env = common::env().await;
    let q = env.queue();
    let rust = q
        .enqueue(TaskSpec::new("k", "from-rust").throttle("digest", Duration::from_secs(60)))
        .await
        .unwrap();
    let out = python(&["throttle", &env.redis.url(), "q", "digest"]);
    assert_eq!(out.trim(), format!("{} 0", rust.id), "throttled by the Rust task");
    let out = python(&["throttle", &env.redis.url(), "q", "other"]);
    assert!(out.trim().ends_with(" 1"), "another key is its own window: {out}");
}

/// A unique key taken by a Rust producer holds against Python while its task is active, and is
/// free for Python once the task is done.
#[tokio::test]
async fn python_and_rust_share_unique_keys() {
    let env = common::env().await;
    let q = env.queue();
    let rust = q
        .enqueue(TaskSpec::new("k", "from-rust").unique("report"))
        .await
        .unwrap();
    let out = python(&["unique", &env.redis.url(), "q", "report"]);
    assert_eq!(out.trim(), format!("{} 0", rust.id), "held by the Rust task");
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.complete("w", &c, b"").await.unwrap();
    let out = python(&["unique", &env.redis.url(), "q", "report"]);
    let (id, created) = out.trim().split_once(' ').unwrap();
    assert_eq!(created, "1", "free once done: {out}");
    assert_ne!(id, rust.id);
}

/// A Python enqueue with the debounce key of a waiting Rust-enqueued task merges into it.
#[tokio::test]
async fn python_debounces_into_a_rust_task() {
    let env = common::env().await;
    let q = env.queue();
    let spec = TaskSpec::new("k", "from-rust").debounce(
        "digest",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(120),
    );
    let rust = q.enqueue(spec).await.unwrap();
    let out = python(&["debounce", &env.redis.url(), "q", "digest"]);
    assert_eq!(out.trim(), format!("{} 0", rust.id), "merged into the Rust task");
    let t = q.get(&rust.id).await.unwrap().unwrap();
    assert_eq!(t.record.payload, b"from-python");
    assert_eq!(q.counts().await.unwrap().enqueued_total, 1);
}
