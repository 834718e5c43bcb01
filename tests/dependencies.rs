//! Dependencies between tasks of a queue: a task enqueued `after` others waits (state
//! `waiting`) until all of them have finished and becomes pending in the call that finishes the
//! last one; a failed dependency fails, or not, its dependents by their policy; cancelling
//! cascades; nothing is ever left waiting for a task that has finished.
mod common;
use baton::{OnFailure, Outcome, Queue, State, TaskSpec, Worker};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A worker whose handler records the payloads it ran, in order; payloads starting with "fail"
/// fail for good.
fn recorder(env: &common::Env, conc: usize) -> (Worker, Arc<Mutex<Vec<String>>>) {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    let w = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(conc)
        .handler("k", move |t: baton::TaskContext| {
            let l = l.clone();
            async move {
                let p = String::from_utf8(t.payload.clone()).unwrap();
                l.lock().unwrap().push(p.clone());
                if p.starts_with("fail") {
                    return Err(baton::HandlerError::fatal("asked to fail"));
                }
                Ok(p.into_bytes())
            }
        })
        .build()
        .unwrap();
    (w, log)
}

async fn one(q: &Queue, spec: TaskSpec) -> String {
    q.enqueue(spec).await.unwrap().id
}

async fn state(q: &Queue, id: &str) -> State {
    q.get(id).await.unwrap().expect(id).state
}

/// No task is left waiting: the waiting set is empty, and so is the count.
async fn none_waiting(q: &Queue) {
    assert_eq!(q.counts().await.unwrap().waiting, 0, "tasks left waiting");
}

#[tokio::test]
async fn a_chain_runs_in_order() {
    let env = common::env().await;
    let q = env.queue();
    let mut prev = one(&q, TaskSpec::new("k", "0")).await;
    let mut ids = vec![prev.clone()];
    for i in 1..50 {
        prev = one(&q, TaskSpec::new("k", i.to_string()).after([prev.clone()])).await;
        ids.push(prev.clone());
    }
    assert_eq!(state(&q, &ids[1]).await, State::Waiting);
    assert_eq!(q.counts().await.unwrap().waiting, 49);
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(&cfg, &["stats", "-q", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("49 waiting for dependencies"), "{out}");
    let (code, out, _) = common::baton(&cfg, &["status", "-q", "q", &ids[1]]);
    assert_eq!(code, 0);
    assert!(out.contains("waiting"), "{out}");
    let (w, log) = recorder(&env, 8);
    let (stop, h) = common::spawn_worker(w);
    assert_eq!(
        q.wait(&ids[49], Duration::from_secs(30)).await.unwrap(),
        Outcome::Done(b"49".to_vec())
    );
    stop.cancel();
    h.await.unwrap().unwrap();
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    none_waiting(&q).await;
}

#[tokio::test]
async fn a_diamond_joins_after_both_branches() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "a")).await;
    let b = one(&q, TaskSpec::new("k", "b").after([a.clone()])).await;
    let c = one(&q, TaskSpec::new("k", "c").after([a.clone()])).await;
    let d = one(&q, TaskSpec::new("k", "d").after([b.clone(), c.clone()])).await;
    let (w, log) = recorder(&env, 8);
    let (stop, h) = common::spawn_worker(w);
    assert_eq!(
        q.wait(&d, Duration::from_secs(10)).await.unwrap(),
        Outcome::Done(b"d".to_vec())
    );
    stop.cancel();
    h.await.unwrap().unwrap();
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran.len(), 4);
    assert_eq!((ran[0].as_str(), ran[3].as_str()), ("a", "d"), "{ran:?}");
    // each release is announced once: b and c when a completed, d when the last of them did
    // in stream order: the order of the calls
    let ready: Vec<String> = q
        .events_after("0-0", 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "ready")
        .flat_map(|e| e.tasks.into_iter().map(|t| t.id))
        .collect();
    let mut sorted = ready.clone();
    sorted.sort();
    let mut want = vec![b.clone(), c.clone(), d.clone()];
    want.sort();
    assert_eq!(sorted, want, "{ready:?}");
    assert_eq!(ready.last(), Some(&d));
    none_waiting(&q).await;
}

#[tokio::test]
async fn a_failed_dependency_under_each_policy() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "fail-a")).await;
    let failing = one(&q, TaskSpec::new("k", "b").after([a.clone()])).await;
    let downstream = one(&q, TaskSpec::new("k", "e").after([failing.clone()])).await;
    let cont = one(
        &q,
        TaskSpec::new("k", "c")
            .after([a.clone()])
            .on_failure(OnFailure::Continue),
    )
    .await;
    let ign = one(
        &q,
        TaskSpec::new("k", "d")
            .after([a.clone()])
            .on_failure(OnFailure::Ignore),
    )
    .await;
    let (w, log) = recorder(&env, 4);
    let (stop, h) = common::spawn_worker(w);
    for id in [&cont, &ign] {
        assert!(matches!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(_)
        ));
    }
    // fail: not run, dead with the reason naming the dependency; and its own dependent too
    for (id, dep) in [(&failing, &a), (&downstream, &failing)] {
        let Outcome::Dead(why) = q.wait(id, Duration::from_secs(10)).await.unwrap() else {
            panic!("{id} not dead")
        };
        assert!(why.contains(dep.as_str()) && why.contains("not run"), "{why}");
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let ran = log.lock().unwrap().clone();
    assert!(
        !ran.contains(&"b".to_string()) && !ran.contains(&"e".to_string()),
        "{ran:?}"
    );
    // a dependent enqueued after its dependency already died ends at once, unrun
    let late = one(&q, TaskSpec::new("k", "late").after([a.clone()])).await;
    assert_eq!(state(&q, &late).await, State::Dead);
    let late_ok = one(
        &q,
        TaskSpec::new("k", "late")
            .after([a.clone()])
            .on_failure(OnFailure::Ignore),
    )
    .await;
    assert_eq!(state(&q, &late_ok).await, State::Pending);
    none_waiting(&q).await;
}

#[tokio::test]
async fn cancelling_a_task_cancels_what_waits_for_it() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "a")).await;
    let b = one(&q, TaskSpec::new("k", "b").after([a.clone()])).await;
    let c = one(&q, TaskSpec::new("k", "c").after([b.clone()])).await;
    let free = one(
        &q,
        TaskSpec::new("k", "free")
            .after([a.clone()])
            .on_failure(OnFailure::Continue),
    )
    .await;
    q.cancel(&[a.as_str()]).await.unwrap();
    assert_eq!(state(&q, &b).await, State::Cancelled);
    assert_eq!(state(&q, &c).await, State::Cancelled);
    assert_eq!(state(&q, &free).await, State::Pending);
    let why = q.get(&c).await.unwrap().unwrap().last_error.unwrap().message;
    assert!(why.contains(&b), "{why}");
    // a waiting task can be cancelled itself; its dependents follow
    let x = one(&q, TaskSpec::new("k", "x")).await;
    let y = one(&q, TaskSpec::new("k", "y").after([x.clone()])).await;
    let z = one(&q, TaskSpec::new("k", "z").after([y.clone()])).await;
    q.cancel(&[y.as_str()]).await.unwrap();
    assert_eq!(state(&q, &z).await, State::Cancelled);
    assert_eq!(state(&q, &x).await, State::Pending);
    // a waiting task holds its unique key like a pending one
    let u = one(&q, TaskSpec::new("k", "u1").after([x.clone()]).unique("only-one")).await;
    let again = q
        .enqueue(TaskSpec::new("k", "u2").unique("only-one"))
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), again.unique_held), (u.as_str(), true));
    q.cancel(&[u.as_str()]).await.unwrap();
    none_waiting(&q).await;
}

#[tokio::test]
async fn a_dependency_dropped_at_completion_still_releases_its_dependents() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "a").result_ttl(Duration::ZERO)).await;
    let b = one(&q, TaskSpec::new("k", "b").after([a.clone()])).await;
    let (w, _) = recorder(&env, 2);
    let (stop, h) = common::spawn_worker(w);
    assert_eq!(
        q.wait(&b, Duration::from_secs(10)).await.unwrap(),
        Outcome::Done(b"b".to_vec())
    );
    stop.cancel();
    h.await.unwrap().unwrap();
    none_waiting(&q).await;
}

#[tokio::test]
async fn bad_dependencies_are_refused_with_nothing_written() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "a")).await;
    let before = q.counts().await.unwrap();
    let e = q
        .enqueue_batch(vec![
            TaskSpec::new("k", "ok").after([a.clone()]),
            TaskSpec::new("k", "bad").after(["no-such-task"]),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown dependency no-such-task"), "{e}");
    let e = q
        .enqueue(TaskSpec::new("k", "self").id("me").after(["me"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("itself"), "{e}");
    let e = q
        .enqueue(
            TaskSpec::new("k", "d")
                .after([a.clone()])
                .delay(Duration::from_secs(5)),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no delay"), "{e}");
    let after = q.counts().await.unwrap();
    assert_eq!(
        (after.pending, after.waiting, after.enqueued_total),
        (before.pending, before.waiting, before.enqueued_total),
        "nothing written"
    );
    // a batch may depend on its own earlier tasks (never on later ones: no cycle can be written)
    let ids: Vec<String> = q
        .enqueue_batch(vec![
            TaskSpec::new("k", "p").id("p1"),
            TaskSpec::new("k", "q").id("q1").after(["p1"]),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(state(&q, &ids[1]).await, State::Waiting);
    let e = q
        .enqueue_batch(vec![
            TaskSpec::new("k", "r").id("r1").after(["s1"]),
            TaskSpec::new("k", "s").id("s1").after(["r1"]),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown dependency s1"), "{e}");
    // a dependencies file is for programs: refused on an http handler, naming the key
    let err = baton::Config::from_toml(
        "[redis]\nurl = \"redis://127.0.0.1:1\"\n[worker.handlers.j]\nhttp = \"http://127.0.0.1:9/\"\ndependencies = true\n",
    )
    .and_then(|c| c.validate().map(|_| c))
    .unwrap_err()
    .to_string();
    assert!(err.contains("worker.handlers.j.dependencies"), "{err}");
    // the CLI
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "k",
            "--payload",
            "{}",
            "--after",
            &format!("{a},p1"),
            "--on-failure",
            "continue",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(state(&q, out.trim()).await, State::Waiting);
    let (code, _, err) = common::baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "k",
            "--payload",
            "{}",
            "--after",
            "nope",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("unknown dependency nope"), "{err}");
}

#[tokio::test]
async fn an_exec_handler_reads_its_dependencies_from_a_file() {
    let env = common::env().await;
    let q = env.queue();
    let a = one(&q, TaskSpec::new("k", "\"from-a\"")).await;
    let b = one(&q, TaskSpec::new("fails", "\"x\"").max_attempts(1)).await;
    let join = one(
        &q,
        TaskSpec::new("join", "{}")
            .after([a.clone(), b.clone()])
            .on_failure(OnFailure::Continue),
    )
    .await;
    let dir = common::TempDir::new();
    let cfg = dir.write(
        "baton.toml",
        &format!(
            "[redis]\nurl = \"{}\"\n[queues.q]\nlease = \"2s\"\nheartbeat = \"500ms\"\n[worker]\nqueues = [\"q\"]\n\
             concurrency = 2\nmaintenance = false\n[worker.handlers.k]\nexec = [\"cat\"]\n\
             [worker.handlers.fails]\nshell = \"echo broken >&2; exit 3\"\n\
             [worker.handlers.join]\nshell = \"cat \\\"$BATON_DEPENDENCIES_FILE\\\"\"\ndependencies = true\n",
            env.redis.url()
        ),
    );
    let _worker = common::Proc::start(common::WORKER, &cfg);
    let Outcome::Done(out) = q.wait(&join, Duration::from_secs(20)).await.unwrap() else {
        panic!("join not done")
    };
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let by_id = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&a)["state"], "done");
    assert_eq!(by_id(&a)["result"], "\"from-a\"");
    assert_eq!(by_id(&b)["state"], "dead");
    assert!(by_id(&b)["error"].as_str().unwrap().contains("broken"), "{v}");
    // the file is gone once the program ended
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(&join))
        .count();
    assert_eq!(leftovers, 0);
}
