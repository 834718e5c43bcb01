//! Dependencies across queues: a task of queue `b` written `after a/<id>` waits for a task of
//! queue `a`. The scripts of one queue never touch another's keys; the hand-offs go through the
//! queues' outboxes, carried by the maintenance loops, delivered at least once and applied once.
mod common;
use baton::{OnFailure, Outcome, Queue, State, TaskSpec, Worker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<(String, String)>>>;

/// A worker of queue `name` whose handler logs (queue, payload); payloads starting with "fail"
/// fail for good; a payload "join" reads its dependencies and answers how many it saw done.
fn worker(env: &common::Env, name: &str, log: Log) -> Worker {
    let qn = name.to_string();
    Worker::builder(&env.client, name)
        .unwrap()
        .concurrency(8)
        .handler("k", move |t: baton::TaskContext| {
            let (log, qn) = (log.clone(), qn.clone());
            async move {
                let p = String::from_utf8(t.payload.clone()).unwrap();
                log.lock().unwrap().push((qn, p.clone()));
                if p.starts_with("fail") {
                    return Err(baton::HandlerError::fatal("asked to fail"));
                }
                if p == "join" {
                    return Ok(common::saw_dependencies(&t).await?.into_bytes());
                }
                Ok(p.into_bytes())
            }
        })
        .build()
        .unwrap()
}

struct Setup {
    env: common::Env,
    queues: HashMap<&'static str, Queue>,
    log: Log,
    stops: Vec<tokio_util::sync::CancellationToken>,
}

/// Queues a, b and c, a worker on each, and the maintenance loops of all three.
async fn setup() -> Setup {
    let env = common::env().await;
    let log: Log = Arc::default();
    let mut queues = HashMap::new();
    let mut stops = Vec::new();
    for name in ["a", "b", "c"] {
        queues.insert(name, env.client.queue(name).unwrap());
        stops.push(common::spawn_worker(worker(&env, name, log.clone())).0);
    }
    let all: Vec<Queue> = ["a", "b", "c"].iter().map(|n| queues[n].clone()).collect();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(baton::Maintenance::new(all, env.config.scheduler.clone()).run(stop.clone(), None));
    stops.push(stop);
    Setup {
        env,
        queues,
        log,
        stops,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stops.iter().for_each(|s| s.cancel());
    }
}

/// Nothing waiting on any queue and every outbox empty. A carrier acknowledges a delivered
/// message in its next call, so an outbox may hold one for a moment after its effect is seen:
/// waited for, with a deadline.
async fn settled(s: &Setup) {
    for (name, q) in &s.queues {
        assert_eq!(
            q.counts().await.unwrap().waiting,
            0,
            "tasks left waiting on {name}"
        );
        let key = q.keys().wf("ob");
        common::eventually(
            Duration::from_secs(5),
            &format!("{name}'s outbox empty"),
            || async {
                let n: u64 = redis::cmd("ZCARD")
                    .arg(&key)
                    .query_async(&mut s.env.raw().await)
                    .await
                    .unwrap();
                n == 0
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_chain_and_a_join_run_across_queues() {
    let s = setup().await;
    let (a, b, c) = (&s.queues["a"], &s.queues["b"], &s.queues["c"]);
    // a chain a -> b -> c -> a
    let x = a.enqueue(TaskSpec::new("k", "r1")).await.unwrap().id;
    let y = b
        .enqueue(TaskSpec::new("k", "r2").after([format!("a/{x}")]))
        .await
        .unwrap()
        .id;
    let z = c
        .enqueue(TaskSpec::new("k", "r3").after([format!("b/{y}")]))
        .await
        .unwrap()
        .id;
    let w = a
        .enqueue(TaskSpec::new("k", "r4").after([format!("c/{z}")]))
        .await
        .unwrap()
        .id;
    assert_eq!(
        a.wait(&w, Duration::from_secs(20)).await.unwrap(),
        Outcome::Done(b"r4".to_vec())
    );
    let order: Vec<String> = s
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(q, p)| format!("{q}:{p}"))
        .collect();
    assert_eq!(order, ["a:r1", "b:r2", "c:r3", "a:r4"]);

    // a join on queue c after 300 tasks of queue a and 300 of queue b, one a local task of c
    let mut after = Vec::new();
    for q in [a, b] {
        let ids = common::enqueue_ids(q, "k", 300, |i| format!("r{i}")).await;
        after.extend(ids.into_iter().map(|id| format!("{}/{id}", q.name())));
    }
    let local = c.enqueue(TaskSpec::new("k", "r-local")).await.unwrap().id;
    after.push(local);
    let join = c
        .enqueue(TaskSpec::new("k", "join").after(after))
        .await
        .unwrap()
        .id;
    assert_eq!(
        c.wait(&join, Duration::from_secs(30)).await.unwrap(),
        Outcome::Done(b"saw 601 of 601".to_vec())
    );
    let log = s.log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|(_, p)| p == "join").count(),
        1,
        "the join ran once"
    );
    assert_eq!(
        log.last().unwrap().1,
        "join",
        "the join ran after every one of its dependencies"
    );
    let deps = c.dependencies(&join).await.unwrap();
    assert_eq!(deps.len(), 601);
    assert!(deps
        .iter()
        .any(|d| d.id.starts_with("a/") && d.result.starts_with(b"r")));
    settled(&s).await;
}

#[tokio::test]
async fn a_failed_dependency_on_another_queue_under_each_policy() {
    let s = setup().await;
    let (a, b) = (&s.queues["a"], &s.queues["b"]);
    let bad = a.enqueue(TaskSpec::new("k", "fail-a")).await.unwrap().id;
    let dep = format!("a/{bad}");
    let failed = b
        .enqueue(TaskSpec::new("k", "never").after([dep.clone()]))
        .await
        .unwrap()
        .id;
    let after_failed = b
        .enqueue(TaskSpec::new("k", "never2").after([failed.clone()]))
        .await
        .unwrap()
        .id;
    let cont = b
        .enqueue(
            TaskSpec::new("k", "join")
                .after([dep.clone()])
                .on_failure(OnFailure::Continue),
        )
        .await
        .unwrap()
        .id;
    let ign = b
        .enqueue(
            TaskSpec::new("k", "ignored")
                .after([dep.clone()])
                .on_failure(OnFailure::Ignore),
        )
        .await
        .unwrap()
        .id;
    let out = b.wait(&failed, Duration::from_secs(20)).await.unwrap();
    match out {
        Outcome::Dead(e) => assert!(e.contains(&format!("dependency {dep} ended dead")), "{e}"),
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        b.wait(&after_failed, Duration::from_secs(5)).await.unwrap(),
        Outcome::Dead(_)
    ));
    assert_eq!(
        b.wait(&cont, Duration::from_secs(20)).await.unwrap(),
        Outcome::Done(b"saw 0 of 1".to_vec())
    );
    assert_eq!(
        b.wait(&ign, Duration::from_secs(20)).await.unwrap(),
        Outcome::Done(b"ignored".to_vec())
    );
    let d = b.dependencies(&cont).await.unwrap();
    assert_eq!(d[0].state, State::Dead);
    assert!(
        d[0].error.as_deref().unwrap_or("").contains("asked to fail"),
        "{d:?}"
    );
    let ran: Vec<String> = s.log.lock().unwrap().iter().map(|(_, p)| p.clone()).collect();
    assert!(!ran.iter().any(|p| p.starts_with("never")), "{ran:?}");
    // cancelling a task of a cascades to what waits for it on b
    let held = a
        .enqueue(TaskSpec::new("k", "r").delay(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    let waiter = b
        .enqueue(TaskSpec::new("k", "never3").after([format!("a/{held}")]))
        .await
        .unwrap()
        .id;
    a.cancel(&[held.as_str()]).await.unwrap();
    assert!(matches!(
        b.wait(&waiter, Duration::from_secs(20)).await.unwrap(),
        Outcome::Cancelled
    ));
    settled(&s).await;
}

#[tokio::test]
async fn unknown_dependencies_on_other_queues_and_prefixes_are_refused_with_nothing_written() {
    let env = common::env().await;
    let (a, b) = (env.client.queue("a").unwrap(), env.client.queue("b").unwrap());
    let known = a.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    // the same queue name under another prefix is another queue
    let mut other_cfg = env.config.clone();
    other_cfg.redis.prefix = "other".into();
    let other = baton::Client::connect(other_cfg).await.unwrap();
    let foreign = other
        .queue("a")
        .unwrap()
        .enqueue(TaskSpec::new("k", "x"))
        .await
        .unwrap()
        .id;
    let before = common::snapshot(&mut env.raw().await).await;
    for (after, says) in [
        (vec!["a/nope".to_string()], "unknown dependency a/nope"),
        (
            vec![format!("a/{known}"), format!("a/{foreign}")],
            &*format!("unknown dependency a/{foreign}"),
        ),
        (vec!["ghost/x".to_string()], "unknown dependency ghost/x"),
        (vec!["a/b/c".to_string()], "after"),
        (vec!["a b/x".to_string()], "after"),
    ] {
        let e = b
            .enqueue(TaskSpec::new("k", "y").after(after.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{after:?}: {e}");
    }
    assert_eq!(
        before,
        common::snapshot(&mut env.raw().await).await,
        "nothing written"
    );
}

#[tokio::test]
async fn hand_offs_delivered_twice_change_nothing() {
    let env = common::env().await;
    let (a, b) = (env.client.queue("a").unwrap(), env.client.queue("b").unwrap());
    let mut raw = env.raw().await;
    let outbox = |q: &Queue| q.keys().wf("ob");
    let read = |key: String| {
        let mut raw = raw.clone();
        async move {
            let v: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut raw)
                .await
                .unwrap();
            v
        }
    };
    let x = a.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    let y = b
        .enqueue(TaskSpec::new("k", "y").after([format!("a/{x}")]))
        .await
        .unwrap()
        .id;
    let watch = read(outbox(&b)).await;
    assert_eq!(watch.len(), 1, "{watch:?}");
    assert_eq!(watch[0].0, format!("a|w|{x}|b/{y}"));
    assert_eq!(b.move_outbox(100).await.unwrap(), 1);
    assert_eq!(b.move_outbox(100).await.unwrap(), 0, "acknowledged");
    // x runs and completes: a's outbox tells b
    let c = a.claim("w1", 1).await.unwrap();
    a.complete("w1", &c[0], b"done-x").await.unwrap();
    let settle = read(outbox(&a)).await;
    assert_eq!(settle.len(), 1);
    assert_eq!(settle[0].0, format!("b|s|a/{x}|done"));
    assert_eq!(
        b.get(&y).await.unwrap().unwrap().state,
        State::Waiting,
        "not before the hand-off"
    );
    assert_eq!(a.move_outbox(100).await.unwrap(), 1);
    assert_eq!(b.get(&y).await.unwrap().unwrap().state, State::Pending);
    let cy = b.claim("w1", 1).await.unwrap();
    b.complete("w1", &cy[0], b"done-y").await.unwrap();
    // a mover that died before acknowledging: the same messages are delivered again
    for (key, msgs) in [(outbox(&a), &settle), (outbox(&b), &watch)] {
        for (m, _) in msgs.iter() {
            let _: () = redis::cmd("ZADD")
                .arg(&key)
                .arg(1)
                .arg(m)
                .query_async(&mut raw)
                .await
                .unwrap();
        }
    }
    assert_eq!(b.move_outbox(100).await.unwrap(), 1, "the watch again");
    // its answer (x is done) is the very message of the old settle: held once
    assert_eq!(a.move_outbox(100).await.unwrap(), 1, "one settle");
    assert_eq!(
        b.get(&y).await.unwrap().unwrap().state,
        State::Done,
        "y ran once and stays done"
    );
    let counts = b.counts().await.unwrap();
    assert_eq!((counts.pending, counts.waiting, counts.done), (0, 0, 1));
    // the dependent reads the other queue's result
    let d = b.dependencies(&y).await.unwrap();
    assert_eq!(
        (d[0].id.as_str(), d[0].state, d[0].result.as_slice()),
        (&*format!("a/{x}"), State::Done, &b"done-x"[..])
    );
}

/// Wait for a callback task (it exists only once fired) to finish.
async fn callback(q: &Queue, id: &str) -> Outcome {
    common::eventually(Duration::from_secs(20), id, || async {
        q.get(id).await.unwrap().is_some()
    })
    .await;
    q.wait(id, Duration::from_secs(20)).await.unwrap()
}

/// Run once per task id (payload "join" answers what it saw; others answer their payload).
fn runs_of(s: &Setup, payload: &str) -> usize {
    s.log.lock().unwrap().iter().filter(|(_, p)| p == payload).count()
}

#[tokio::test]
async fn a_flow_spans_queues_and_its_callbacks_fire_once() {
    let s = setup().await;
    let (a, b, c) = (&s.queues["a"], &s.queues["b"], &s.queues["c"]);
    let sub = a
        .flow(
            baton::Flow::new()
                .id("f1")
                .task("extract", TaskSpec::new("k", "r-extract"))
                .task_in("b", "left", TaskSpec::new("k", "r-left").after(["extract"]))
                .task_in("c", "right", TaskSpec::new("k", "r-right").after(["extract"]))
                .task_in("c", "solo", TaskSpec::new("k", "r-solo"))
                .task(
                    "report",
                    TaskSpec::new("k", "join").after(["left", "right", "solo"]),
                )
                .on_success(TaskSpec::new("k", "on-success"))
                .on_complete(TaskSpec::new("k", "on-complete")),
        )
        .await
        .unwrap();
    assert!(sub.created);
    assert_eq!(
        callback(a, "f1.on_complete").await,
        Outcome::Done(b"on-complete".to_vec())
    );
    assert_eq!(
        callback(a, "f1.on_success").await,
        Outcome::Done(b"on-success".to_vec())
    );
    assert_eq!(
        a.get("f1:report").await.unwrap().unwrap().result.as_deref(),
        Some(&b"saw 3 of 3"[..])
    );
    let order: Vec<String> = s
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(q, p)| format!("{q}:{p}"))
        .collect();
    let at = |x: &str| {
        order
            .iter()
            .position(|o| o == x)
            .unwrap_or_else(|| panic!("{x} in {order:?}"))
    };
    assert!(
        at("a:r-extract") < at("b:r-left") && at("a:r-extract") < at("c:r-right"),
        "{order:?}"
    );
    assert!(
        at("b:r-left") < at("a:join") && at("c:r-solo") < at("a:join"),
        "{order:?}"
    );
    assert!(at("a:join") < at("a:on-complete"), "{order:?}");
    for p in [
        "r-extract",
        "r-left",
        "r-right",
        "r-solo",
        "join",
        "on-success",
        "on-complete",
    ] {
        assert_eq!(runs_of(&s, p), 1, "{p} ran once");
    }
    let st = a.flow_members("f1").await.unwrap().unwrap();
    assert_eq!(st.state, baton::FlowState::Complete);
    assert_eq!((st.total, st.done), (5, 5));
    let by_name: HashMap<String, (String, Option<State>)> = st
        .members
        .iter()
        .map(|m| (m.name.clone().unwrap(), (m.id.clone(), m.state)))
        .collect();
    assert_eq!(
        by_name["left"],
        ("b/f1:left".to_string(), Some(State::Done)),
        "a member on another queue, by its state there"
    );
    assert_eq!(by_name["solo"].1, Some(State::Done));
    // submitting again changes nothing
    let again = a
        .flow(
            baton::Flow::new()
                .id("f1")
                .task_in("b", "left", TaskSpec::new("k", "r-left")),
        )
        .await;
    assert!(again.is_err() || !again.unwrap().created);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs_of(&s, "r-left"), 1);
    assert_eq!(b.counts().await.unwrap().done, 1);
    assert_eq!(c.counts().await.unwrap().done, 2);
    settled(&s).await;
}

#[tokio::test]
async fn a_flow_across_queues_fails_and_cancels_as_one() {
    let s = setup().await;
    let a = &s.queues["a"];
    a.flow(
        baton::Flow::new()
            .id("f2")
            .task_in("b", "bad", TaskSpec::new("k", "fail-b"))
            .task_in("c", "after-bad", TaskSpec::new("k", "never").after(["bad"]))
            .task("last", TaskSpec::new("k", "never-last").after(["after-bad"]))
            .on_death(TaskSpec::new("k", "on-death"))
            .on_success(TaskSpec::new("k", "never-success")),
    )
    .await
    .unwrap();
    assert_eq!(
        callback(a, "f2.on_death").await,
        Outcome::Done(b"on-death".to_vec())
    );
    common::eventually(Duration::from_secs(10), "the flow ends", || async {
        a.flow_members("f2").await.unwrap().unwrap().state == baton::FlowState::Complete
    })
    .await;
    let st = a.flow_members("f2").await.unwrap().unwrap();
    assert_eq!(
        (st.total, st.dead, st.first_death.as_deref()),
        (3, 3, Some("b/f2:bad"))
    );
    assert!(
        a.get("f2.on_success").await.unwrap().is_none(),
        "no success callback"
    );
    assert_eq!(runs_of(&s, "on-death"), 1);
    assert!(!s.log.lock().unwrap().iter().any(|(_, p)| p.starts_with("never")));

    // a cancelled flow: nothing runs on any queue, every member ends cancelled
    let (b, c) = (&s.queues["b"], &s.queues["c"]);
    b.set_paused(true).await.unwrap();
    a.flow(
        baton::Flow::new()
            .id("f3")
            .task_in("b", "held", TaskSpec::new("k", "never-held"))
            .task_in("c", "next", TaskSpec::new("k", "never-next").after(["held"]))
            .task("end", TaskSpec::new("k", "never-end").after(["next"]))
            .on_complete(TaskSpec::new("k", "never-complete")),
    )
    .await
    .unwrap();
    a.cancel_flow("f3").await.unwrap();
    b.set_paused(false).await.unwrap();
    common::eventually(Duration::from_secs(10), "every member cancelled", || async {
        let st = a.flow_members("f3").await.unwrap().unwrap();
        st.members.iter().all(|m| m.state == Some(State::Cancelled))
    })
    .await;
    assert_eq!(b.get("f3:held").await.unwrap().unwrap().state, State::Cancelled);
    assert_eq!(c.get("f3:next").await.unwrap().unwrap().state, State::Cancelled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!s.log.lock().unwrap().iter().any(|(_, p)| p.starts_with("never")));
    settled(&s).await;
}

#[tokio::test]
async fn baton_flow_submit_takes_tasks_of_other_queues_and_status_shows_them() {
    let s = setup().await;
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &s.env.redis.url(), "");
    let file = dir.write(
        "flow.json",
        r#"{"id": "cli1", "queue": "a", "tasks": [
             {"name": "fetch", "kind": "k", "payload": "r-fetch", "queue": "b"},
             {"name": "store", "kind": "k", "payload": "r-store", "after": ["fetch"]},
             {"name": "tell", "kind": "k", "payload": "r-tell", "queue": "c", "after": ["store"]}],
           "on_success": {"kind": "k", "payload": "cli-success"}}"#,
    );
    let (code, out, err) = common::baton(&cfg, &["flow", "submit", "-q", "z", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cli1"), "{out}");
    let a = &s.queues["a"];
    assert_eq!(
        callback(a, "cli1.on_success").await,
        Outcome::Done(b"cli-success".to_vec())
    );
    let (code, out, err) = common::baton(&cfg, &["flow", "status", "-q", "a", "cli1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("complete"), "{out}");
    for line in ["b/cli1:fetch", "cli1:store", "c/cli1:tell"] {
        let l = out
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{line} in {out}"));
        assert!(l.contains("done"), "{l}");
    }
    let (code, out, _) = common::baton(&cfg, &["--json", "flow", "status", "-q", "a", "cli1"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["done"], 3, "{v}");
    settled(&s).await;
}
