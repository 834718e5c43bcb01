//! Cross-language contract: the Python client (clients/python, redis-py only) and the Rust
//! library share queues through the same scripts — each side produces, works and reads the
//! other's tasks, and stale tokens and version mismatches are refused the same way. The bodies
//! shared with the Node client's tests are in tests/common/clients.rs.
mod common;
use baton::TaskSpec;
use common::clients::{self, Lang};
use std::process::Command;
use std::time::Duration;

fn python(args: &[&str]) -> String {
    Lang::Python.driver(args)
}

#[tokio::test]
async fn python_enqueues_rust_works_python_reads() {
    clients::enqueues_rust_works_reads_back(Lang::Python, &common::env().await).await;
}

#[tokio::test]
async fn rust_enqueues_python_works_with_heartbeats() {
    clients::rust_enqueues_worker_heartbeats(Lang::Python, &common::env().await).await;
}

/// The Python worker runs `concurrency` handlers at once, and on SIGTERM stops claiming and lets
/// the tasks in flight finish within its grace.
#[tokio::test]
async fn a_python_worker_runs_tasks_concurrently_and_stops_cleanly_on_sigterm() {
    clients::drains_on_sigterm(Lang::Python, "work-concurrent").await;
}

/// Past its shutdown grace the Python worker releases the leases of the handlers still running:
/// those tasks go back to pending uncharged, to run elsewhere.
#[tokio::test]
async fn a_python_worker_releases_what_outlives_its_grace() {
    clients::releases_past_grace(Lang::Python, "work-concurrent").await;
}

/// The same with the asyncio worker (asyncio handlers on redis-py's asyncio client).
#[tokio::test]
async fn the_asyncio_worker_runs_tasks_concurrently_and_stops_cleanly_on_sigterm() {
    clients::drains_on_sigterm(Lang::Python, "work-async").await;
}

/// Past its grace the asyncio worker cancels what still runs and releases those leases.
#[tokio::test]
async fn the_asyncio_worker_releases_what_outlives_its_grace() {
    clients::releases_past_grace(Lang::Python, "work-async").await;
}

#[tokio::test]
async fn a_stale_token_is_refused_the_same_from_python_and_rust() {
    clients::stale_token_refused(Lang::Python, &common::env().await).await;
}

#[tokio::test]
async fn a_version_mismatch_is_refused_in_both() {
    let env = common::env().await;
    clients::version_mismatch_refused(Lang::Python, &env).await;
    assert!(matches!(
        env.queue().counts().await,
        Err(baton::Error::VersionMismatch { .. })
    ));
}

#[tokio::test]
async fn a_python_worker_takes_push_assignments() {
    clients::takes_push_assignments(Lang::Python).await;
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

/// Python enqueues into groups on a fair queue and sets a weight; Rust claims them in the
/// weighted fair order (1 : 3).
#[tokio::test]
async fn python_groups_are_served_fairly_by_weight() {
    let mut env = common::env().await;
    env.config.queues.get_mut("q").unwrap().fairness = baton::flow::Fairness::Fair;
    let out = python(&["fair", &env.redis.url(), "q", "100"]);
    let groups: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let w: Vec<(String, u64, u64)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["backlog"].as_u64().unwrap(),
                g["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        w.contains(&("py-a".into(), 100, 1)) && w.contains(&("py-b".into(), 100, 3)),
        "{w:?}"
    );
    let q = env.queue();
    let first: Vec<String> = q
        .claim("w", 40)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let b = first.iter().filter(|id| id.starts_with("py-b")).count();
    assert_eq!((first.len() - b, b), (10, 30), "{first:?}");
    // FIFO within each group
    let a: Vec<&String> = first.iter().filter(|id| id.starts_with("py-a")).collect();
    assert_eq!(a[0], "py-a-0");
    assert_eq!(a[9], "py-a-9");
}

/// Python sets a group's own rate and enqueues tasks with a cost; Rust's claim honours both:
/// the group's burst of 4 lets two tasks of cost 2 go, the group is parked by its rate and the
/// other group fills the rest of the claim.
#[tokio::test]
async fn python_group_rates_and_costs_bind_rust_claims() {
    let mut env = common::env().await;
    env.config.queues.get_mut("q").unwrap().fairness = baton::flow::Fairness::Fair;
    let out = python(&["group-rate", &env.redis.url(), "q", "20"]);
    let groups: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let r = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "py-r")
        .unwrap();
    assert_eq!(
        (r["rate_interval_us"].as_u64(), r["burst"].as_u64()),
        (Some(500_000), Some(4))
    );
    let q = env.queue();
    let got: Vec<String> = q
        .claim("w", 20)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let by_r = got.iter().filter(|id| id.starts_with("py-r")).count();
    assert_eq!((by_r, got.len() - by_r), (2, 18), "{got:?}");
    let list = q.groups(10).await.unwrap();
    let r = list.iter().find(|g| g.name == "py-r").unwrap();
    assert_eq!(r.held_by.as_deref(), Some("group_rate"), "{r:?}");
}

/// Python enqueues a task after another in one batch; a Rust worker runs them in order; Python
/// reads the dependent's dependencies with their results.
#[tokio::test]
async fn python_dependencies_are_run_in_order_by_rust_and_read_back() {
    let env = common::env().await;
    let out = python(&["deps", &env.redis.url(), "q"]);
    assert_eq!(out.trim(), "pending waiting");
    let q = env.queue();
    let w = baton::Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(2)
        .handler("k", |t: baton::TaskContext| async move {
            let mut out = t.payload.to_ascii_uppercase();
            if t.id == "py-j" {
                let deps = t
                    .dependencies()
                    .await
                    .map_err(|e| baton::HandlerError::retry(e.to_string()))?;
                out.extend_from_slice(b"+");
                out.extend_from_slice(&deps[0].result);
            }
            Ok(out)
        })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(w);
    assert_eq!(
        q.wait("py-j", Duration::from_secs(10)).await.unwrap(),
        baton::Outcome::Done(b"PJ+PA".to_vec())
    );
    stop.cancel();
    h.await.unwrap().unwrap();
    let out = python(&["deps-read", &env.redis.url(), "q", "py-j"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"id": "py-a", "state": "done", "result": "PA", "error": null}])
    );
}

/// Python submits a flow (a cycle refused) and a batch with callbacks; a Rust worker runs them;
/// each callback runs once, after its flow's tasks; Python reads both flows back.
#[tokio::test]
async fn python_flows_and_batches_are_worked_by_rust() {
    let env = common::env().await;
    let out = python(&["flow", &env.redis.url(), "q"]);
    assert_eq!(out.trim(), "sealed 2 a=pending,b=waiting");
    let q = env.queue();
    let ran: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let r = ran.clone();
    let w = baton::Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(4)
        .handler("k", move |t: baton::TaskContext| {
            let r = r.clone();
            async move {
                r.lock()
                    .unwrap()
                    .push(String::from_utf8(t.payload.clone()).unwrap());
                Ok(Vec::new())
            }
        })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(w);
    common::eventually(Duration::from_secs(10), "both callbacks done", || async {
        let mut done = true;
        for cb in ["py-flow.on_complete", "py-batch.on_success"] {
            done &= q
                .get(cb)
                .await
                .unwrap()
                .is_some_and(|t| t.state == baton::State::Done);
        }
        done
    })
    .await;
    stop.cancel();
    h.await.unwrap().unwrap();
    let ran = ran.lock().unwrap().clone();
    let pos = |p: &str| ran.iter().position(|x| x == p).unwrap();
    assert!(pos("fa") < pos("fb") && pos("fb") < pos("fdone"), "{ran:?}");
    assert_eq!(ran.len(), 2 + 1 + 5 + 1, "each task and callback once: {ran:?}");
    let out = python(&["flow-read", &env.redis.url(), "q", "py-flow", "py-batch"]);
    assert_eq!(
        out.trim(),
        "py-flow complete 2 py-flow.on_complete\npy-batch complete 5 py-batch.on_success"
    );
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
