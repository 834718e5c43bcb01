//! Flows and batches: a whole DAG submitted at once (all or none, nothing runs before it is
//! stored), followed and cancelled as one; batches whose callbacks fire exactly once, after the
//! last task, even when running tasks add siblings; dynamic fan-out that a join waits for.
mod common;
use baton::{Batch, Flow, FlowState, HandlerError, OnFailure, Queue, State, TaskContext, TaskSpec, Worker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<String>>>;

/// A worker on "q" whose handler records each run's payload, in order. Payload "fail..." fails
/// for good; "spawn:N" adds N children (payload "child") through TaskContext::spawn; "slow"
/// sleeps 300 ms.
fn worker(env: &common::Env, conc: usize) -> (Worker, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let w = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(conc)
        .handler("k", move |t: TaskContext| {
            let l = l.clone();
            async move {
                let p = String::from_utf8(t.payload.clone()).unwrap();
                if let Some(n) = p.strip_prefix("spawn:") {
                    let n: usize = n.parse().unwrap();
                    let kids = (0..n)
                        .map(|i| TaskSpec::new("k", "child").id(format!("{}-kid{i}", t.id)))
                        .collect();
                    t.spawn(kids)
                        .await
                        .map_err(|e| HandlerError::retry(e.to_string()))?;
                }
                if p == "slow" {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                l.lock().unwrap().push(p.clone());
                if p.starts_with("fail") {
                    return Err(HandlerError::fatal("asked to fail"));
                }
                Ok(p.into_bytes())
            }
        })
        .build()
        .unwrap();
    (w, log)
}

async fn status(q: &Queue, id: &str) -> baton::FlowStatus {
    q.flow_members(id).await.unwrap().expect("flow kept")
}

async fn until_flow(q: &Queue, id: &str, want: FlowState) -> baton::FlowStatus {
    common::eventually(Duration::from_secs(30), "flow reaches its state", || async {
        q.flow_status(id, 0, 0)
            .await
            .unwrap()
            .is_some_and(|s| s.state == want)
    })
    .await;
    status(q, id).await
}

/// No task is left counted as a live member of a flow (`tflow` empty), none left waiting.
async fn nothing_left(env: &common::Env, q: &Queue) {
    let n: u64 = redis::cmd("HLEN")
        .arg(q.keys().wf("tflow"))
        .query_async(&mut env.raw().await)
        .await
        .unwrap();
    assert_eq!(n, 0, "members still live in tflow");
    assert_eq!(q.counts().await.unwrap().waiting, 0, "tasks left waiting");
}

/// Every task with this kind, by state: tasks of the callbacks are found by their ids.
async fn callback_state(q: &Queue, flow: &str, event: &str) -> Option<State> {
    q.get(&format!("{flow}.{event}")).await.unwrap().map(|t| t.state)
}

#[tokio::test]
async fn a_flow_runs_as_a_dag_and_its_callbacks_fire_once() {
    let env = common::env().await;
    let q = env.queue();
    // a diamond feeding a 5-step chain
    let mut flow = Flow::new()
        .task("a", TaskSpec::new("k", "a"))
        .task("b", TaskSpec::new("k", "b").after(["a"]))
        .task("c", TaskSpec::new("k", "c").after(["a"]))
        .task("d", TaskSpec::new("k", "d").after(["b", "c"]));
    let mut prev = "d".to_string();
    for i in 0..5 {
        let name = format!("s{i}");
        flow = flow.task(&name, TaskSpec::new("k", name.clone()).after([prev.clone()]));
        prev = name;
    }
    let flow = flow
        .on_success(TaskSpec::new("k", "success"))
        .on_complete(TaskSpec::new("k", "complete"))
        .on_death(TaskSpec::new("k", "death"));
    let sub = q.flow(flow).await.unwrap();
    assert!(sub.created);
    let ids: HashMap<_, _> = sub.tasks.iter().cloned().collect();
    let st = status(&q, &sub.id).await;
    assert_eq!((st.state, st.total), (FlowState::Sealed, 9));
    assert_eq!(
        st.members
            .iter()
            .find(|m| m.name.as_deref() == Some("a"))
            .unwrap()
            .state,
        Some(State::Pending)
    );
    assert_eq!(
        st.members
            .iter()
            .find(|m| m.name.as_deref() == Some("d"))
            .unwrap()
            .state,
        Some(State::Waiting)
    );
    // the CLI shows it
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(&cfg, &["flow", "status", "-q", "q", &sub.id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sealed") && out.contains("s4") && out.contains("waiting"),
        "{out}"
    );

    let (w, log) = worker(&env, 4);
    let (stop, h) = common::spawn_worker(w);
    let st = until_flow(&q, &sub.id, FlowState::Complete).await;
    common::eventually(Duration::from_secs(10), "callbacks run", || async {
        callback_state(&q, &sub.id, "on_complete").await == Some(State::Done)
            && callback_state(&q, &sub.id, "on_success").await == Some(State::Done)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!((st.done, st.dead, st.cancelled), (9, 0, 0));
    assert_eq!(
        st.fired.len(),
        2,
        "on_success and on_complete, not on_death: {:?}",
        st.fired
    );
    assert_eq!(callback_state(&q, &sub.id, "on_death").await, None);
    let ran = log.lock().unwrap().clone();
    let pos = |p: &str| {
        ran.iter()
            .position(|x| x == p)
            .unwrap_or_else(|| panic!("{p} ran: {ran:?}"))
    };
    assert!(pos("a") < pos("b") && pos("a") < pos("c") && pos("b") < pos("d") && pos("c") < pos("d"));
    for i in 0..5 {
        assert!(pos(&format!("s{i}")) > pos("d"));
    }
    assert!(pos("success") > pos("s4") && pos("complete") > pos("s4"));
    for p in ["a", "b", "c", "d", "s0", "s4", "success", "complete"] {
        assert_eq!(ran.iter().filter(|x| *x == p).count(), 1, "{p} ran once: {ran:?}");
    }
    // the tasks are the flow's: "<flow>:<name>"
    assert_eq!(ids["d"], format!("{}:d", sub.id));
    // submitting the same flow again changes nothing
    let again = q
        .flow(Flow::new().id(&sub.id).task("a", TaskSpec::new("k", "a")))
        .await;
    assert!(again.is_err() || !again.unwrap().created);
    nothing_left(&env, &q).await;
}

#[tokio::test]
async fn a_bad_flow_is_refused_by_name_and_writes_nothing() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "x")).await.unwrap();
    let before = common::snapshot(&mut env.raw().await).await;
    let cases: Vec<(Flow, &str)> = vec![
        (
            Flow::new()
                .task("a", TaskSpec::new("k", "a").after(["c"]))
                .task("b", TaskSpec::new("k", "b").after(["a"]))
                .task("c", TaskSpec::new("k", "c").after(["b"]))
                .task("d", TaskSpec::new("k", "d")),
            "cycle",
        ),
        (
            Flow::new().task("a", TaskSpec::new("k", "a").after(["nope"])),
            "nope, which is not a task of the flow",
        ),
        (
            Flow::new()
                .task("a", TaskSpec::new("k", "a"))
                .task("a", TaskSpec::new("k", "b")),
            "two tasks a",
        ),
        (
            Flow::new().task("a", TaskSpec::new("k", "a").after(["a"])),
            "depends on itself",
        ),
        (
            Flow::new().task("bad name", TaskSpec::new("k", "a")),
            "flow task name",
        ),
        (Flow::new(), "at least one task"),
        (
            Flow::new().task("a", TaskSpec::new("k", "a").delay(Duration::from_secs(5))),
            "delay",
        ),
    ];
    for (flow, says) in cases {
        let err = q.flow(flow).await.unwrap_err().to_string();
        assert!(err.contains(says), "{says}: {err}");
    }
    // one over the limit
    let mut big = Flow::new();
    for i in 0..=baton::FLOW_MAX_TASKS {
        big = big.task(format!("n{i}"), TaskSpec::new("k", ""));
    }
    assert_eq!(big.len(), 100_001);
    let err = q.flow(big).await.unwrap_err().to_string();
    assert!(err.contains("at most 100000 tasks"), "{err}");
    assert_eq!(
        before,
        common::snapshot(&mut env.raw().await).await,
        "nothing written"
    );
    // the scripts refuse what a client in another language might send: an unknown flow, a
    // flow's member count over the bound
    let err = q
        .open_batch(Batch::new().id("b1"))
        .await
        .unwrap()
        .add(vec![TaskSpec::new("k", "x")])
        .await;
    assert!(err.is_ok());
    let stranger = baton::OpenBatch::clone(&q.open_batch(Batch::new().id("b2")).await.unwrap());
    q.cancel_flow("b2").await.unwrap();
    let err = stranger
        .add(vec![TaskSpec::new("k", "x")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("flow b2 is cancelled"), "{err}");
    let (code, _, err) = {
        let dir = common::TempDir::new();
        let cfg = common::product_config(&dir, &env.redis.url(), "");
        common::baton(&cfg, &["flow", "status", "-q", "q", "nosuchflow"])
    };
    assert_ne!(code, 0);
    assert!(err.contains("no flow nosuchflow"), "{err}");
}

#[tokio::test]
async fn a_large_flow_runs_nothing_before_it_is_all_stored() {
    let env = common::env().await;
    let q = env.queue();
    // a worker is already polling while the flow is stored in three calls
    let (w, log) = worker(&env, 16);
    let (stop, h) = common::spawn_worker(w);
    let mut flow = Flow::new();
    for i in 0..2500 {
        flow = flow.task(format!("leaf{i}"), TaskSpec::new("k", format!("leaf{i}")));
    }
    let leaves: Vec<String> = (0..2500).map(|i| format!("leaf{i}")).collect();
    flow = flow.task("join", TaskSpec::new("k", "join").after(leaves));
    let sub = q.flow(flow).await.unwrap();
    let st = until_flow(&q, &sub.id, FlowState::Complete).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!((st.total, st.done), (2501, 2501));
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran.len(), 2501);
    assert_eq!(ran.last().unwrap(), "join");
    // from the events: every enqueue of the flow came before the first claim
    let events = q.events_after("0", 100_000).await.unwrap();
    let last_enq = events.iter().rposition(|e| e.kind == "enqueued").unwrap();
    let first_claim = events.iter().position(|e| e.kind == "claimed").unwrap();
    assert!(last_enq < first_claim, "a task ran before the flow was stored");
    let join = q.dependencies(&format!("{}:join", sub.id)).await.unwrap();
    assert_eq!(
        join.len(),
        2500,
        "the join sees its dependencies, not the flow's seal"
    );
    nothing_left(&env, &q).await;
}

#[tokio::test]
async fn a_failed_task_fails_its_dependents_and_fires_on_death_once() {
    let env = common::env().await;
    let q = env.queue();
    let flow = Flow::new()
        .task("a", TaskSpec::new("k", "a"))
        .task("bad", TaskSpec::new("k", "fail-1").after(["a"]))
        .task("bad2", TaskSpec::new("k", "fail-2").after(["a"]))
        .task("after-bad", TaskSpec::new("k", "never").after(["bad"]))
        .task(
            "cont",
            TaskSpec::new("k", "cont")
                .after(["bad2"])
                .on_failure(OnFailure::Continue),
        )
        .on_success(TaskSpec::new("k", "success"))
        .on_complete(TaskSpec::new("k", "complete"))
        .on_death(TaskSpec::new("k", "death"));
    let sub = q.flow(flow).await.unwrap();
    let (w, log) = worker(&env, 4);
    let (stop, h) = common::spawn_worker(w);
    let st = until_flow(&q, &sub.id, FlowState::Complete).await;
    common::eventually(Duration::from_secs(10), "callbacks run", || async {
        callback_state(&q, &sub.id, "on_complete").await == Some(State::Done)
            && callback_state(&q, &sub.id, "on_death").await == Some(State::Done)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!((st.total, st.done, st.dead, st.cancelled), (5, 2, 3, 0));
    assert!(st.first_death.is_some());
    let ran = log.lock().unwrap().clone();
    assert!(
        !ran.contains(&"never".to_string()) && ran.contains(&"cont".to_string()),
        "{ran:?}"
    );
    assert_eq!(
        ran.iter().filter(|p| *p == "death").count(),
        1,
        "on_death once for two deaths"
    );
    assert_eq!(callback_state(&q, &sub.id, "on_success").await, None);
    let t = q.get(&format!("{}:after-bad", sub.id)).await.unwrap().unwrap();
    assert_eq!(t.state, State::Dead);
    nothing_left(&env, &q).await;
}

#[tokio::test]
async fn cancelling_a_flow_cancels_every_unfinished_task_and_fires_nothing() {
    let env = common::env().await;
    let q = env.queue();
    let flow = Flow::new()
        .task("slow", TaskSpec::new("k", "slow"))
        .task("other", TaskSpec::new("k", "slow"))
        .task(
            "next",
            TaskSpec::new("k", "next")
                .after(["slow"])
                .on_failure(OnFailure::Ignore),
        )
        .task("last", TaskSpec::new("k", "last").after(["next", "other"]))
        .on_complete(TaskSpec::new("k", "complete"))
        .on_death(TaskSpec::new("k", "death"));
    let sub = q.flow(flow).await.unwrap();
    let (w, log) = worker(&env, 1);
    let (stop, h) = common::spawn_worker(w);
    // "slow" runs, "other" is pending, the rest wait
    common::eventually(Duration::from_secs(10), "slow runs", || async {
        q.get(&format!("{}:slow", sub.id)).await.unwrap().unwrap().state == State::Leased
    })
    .await;
    let c = q.cancel_flow(&sub.id).await.unwrap();
    assert_eq!(c.sealed.after, FlowState::Cancelled);
    assert_eq!(c.cancelled, 4, "running, pending and both waiting tasks");
    let st = until_flow(&q, &sub.id, FlowState::Cancelled).await;
    common::eventually(Duration::from_secs(10), "every task ended", || async {
        q.flow_status(&sub.id, 0, 0).await.unwrap().unwrap().cancelled == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!(st.total, 4);
    let ran = log.lock().unwrap().clone();
    assert!(
        !ran.iter()
            .any(|p| p == "next" || p == "last" || p == "complete" || p == "death"),
        "{ran:?}"
    );
    assert!(status(&q, &sub.id).await.fired.is_empty());
    nothing_left(&env, &q).await;
}

#[tokio::test]
async fn batch_callbacks_fire_once_after_the_last_task_even_when_tasks_add_siblings() {
    let env = common::env().await;
    let q = env.queue();
    let batch = q
        .open_batch(
            Batch::new()
                .on_success(TaskSpec::new("k", "success"))
                .on_complete(TaskSpec::new("k", "complete")),
        )
        .await
        .unwrap();
    // tasks run as they are added (a batch is not gated); some add siblings while running
    let (w, log) = worker(&env, 8);
    let (stop, h) = common::spawn_worker(w);
    for round in 0..4 {
        let specs = (0..50)
            .map(|i| {
                TaskSpec::new(
                    "k",
                    if i % 10 == 0 {
                        "spawn:3".to_string()
                    } else {
                        format!("t{round}-{i}")
                    },
                )
            })
            .collect();
        batch.add(specs).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // let the first tasks finish before the seal: the callbacks must still wait for the seal
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(callback_state(&q, batch.id(), "on_complete").await, None);
    batch.seal().await.unwrap();
    let st = until_flow(&q, batch.id(), FlowState::Complete).await;
    common::eventually(Duration::from_secs(10), "callbacks run", || async {
        callback_state(&q, batch.id(), "on_complete").await == Some(State::Done)
            && callback_state(&q, batch.id(), "on_success").await == Some(State::Done)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!(st.total, 200 + 20 * 3, "200 added, 20 of them added 3 each");
    assert_eq!(st.done, st.total);
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran.iter().filter(|p| *p == "child").count(), 60);
    assert_eq!(ran.iter().filter(|p| *p == "complete").count(), 1);
    assert_eq!(ran.iter().filter(|p| *p == "success").count(), 1);
    // the callbacks were claimed after the last member completed (events' stream order)
    let events = q.events_after("0", 100_000).await.unwrap();
    let cb = format!("{}.on_complete", batch.id());
    let cb_claim = events
        .iter()
        .position(|e| e.kind == "claimed" && e.tasks.iter().any(|t| t.id == cb))
        .unwrap();
    let members: std::collections::HashSet<String> = status(&q, batch.id())
        .await
        .members
        .into_iter()
        .map(|m| m.id)
        .collect();
    let last_member_done = events
        .iter()
        .rposition(|e| e.kind == "completed" && e.tasks.iter().any(|t| members.contains(&t.id)))
        .unwrap();
    assert!(last_member_done < cb_claim);
    nothing_left(&env, &q).await;
}

#[tokio::test]
async fn a_join_waits_for_the_children_a_running_task_adds() {
    let env = common::env().await;
    let q = env.queue();
    let sub = q
        .flow(
            Flow::new()
                .task("split", TaskSpec::new("k", "spawn:50"))
                .task("join", TaskSpec::new("k", "join").after(["split"])),
        )
        .await
        .unwrap();
    let (w, log) = worker(&env, 8);
    let (stop, h) = common::spawn_worker(w);
    let st = until_flow(&q, &sub.id, FlowState::Complete).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!(st.total, 52);
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran.last().unwrap(), "join", "{ran:?}");
    assert_eq!(ran.iter().filter(|p| *p == "child").count(), 50);
    let deps = q.dependencies(&format!("{}:join", sub.id)).await.unwrap();
    assert_eq!(deps.len(), 51, "split and its 50 children");
    assert!(deps.iter().all(|d| d.state == State::Done));
    // only a running task may spawn
    let err = q
        .enqueue(TaskSpec::new("k", "x").spawned_by(format!("{}:split", sub.id)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not running"), "{err}");
    nothing_left(&env, &q).await;
}
