//! Dependencies across queues on a Redis Cluster (3 primaries, one replica each): a fan-out of
//! tasks on one queue joined by a task of a queue on another primary, followed by a task of a
//! third, while the primary of the join's queue is SIGKILLed mid-run and its replica takes over.
//! Every script touches one queue's slot (nothing is CROSSSLOT); the hand-offs go through the
//! outboxes, and with `wait_replicas = 1` none is lost in the failover.
mod common;
use baton::{Client, Config, Maintenance, Outcome, State, TaskSpec, Worker};
use common::topo::Cluster;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILDREN: usize = 300;

fn config(cluster: &Cluster, queues: &[String]) -> Config {
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let mut toml = format!(
        "[redis]\ncluster = [{}]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\nwait_replicas = 1\nwait_timeout = \"500ms\"\n",
        nodes.join(", ")
    );
    for q in queues {
        toml.push_str(&format!(
            "[queues.{q}]\nlease = \"2s\"\nheartbeat = \"500ms\"\nmax_attempts = 50\nbackoff = \"fixed\"\nbackoff_base = \"100ms\"\nbackoff_cap = \"100ms\"\n"
        ));
    }
    toml.push_str("[worker]\nconcurrency = 16\npoll_interval = \"200ms\"\n[scheduler]\npromote_interval = \"100ms\"\nreclaim_interval = \"100ms\"\n");
    Config::from_toml(&toml).unwrap()
}

type Runs = Arc<Mutex<HashMap<String, u32>>>;

/// A 3-primary cluster, three queues (one per primary, sorted by name), a worker on each
/// (payload "join" reads its dependencies and answers how many were done with a result), and two
/// sets of maintenance loops over all three.
async fn setup() -> (
    Cluster,
    Vec<String>,
    Client,
    Runs,
    Vec<tokio_util::sync::CancellationToken>,
) {
    let cluster = Cluster::start(3, 1);
    // three queues, one on each primary
    let mut by_primary: HashMap<u16, String> = HashMap::new();
    for i in 0.. {
        let q = format!("x{i}");
        by_primary
            .entry(cluster.primary_of(&format!("baton:{{{q}}}:meta")))
            .or_insert(q);
        if by_primary.len() == 3 {
            break;
        }
    }
    let mut names: Vec<String> = by_primary.values().cloned().collect();
    names.sort();
    let client = Client::connect(config(&cluster, &names))
        .await
        .expect("connect to the cluster");

    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut stops = Vec::new();
    for q in &names {
        let runs = runs.clone();
        let w = Worker::builder(&client, q)
            .unwrap()
            .concurrency(16)
            .handler("k", move |t: baton::TaskContext| {
                let runs = runs.clone();
                async move {
                    let p = String::from_utf8(t.payload.clone()).unwrap();
                    let out = if p == "join" {
                        common::saw_dependencies(&t).await?
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        p
                    };
                    *runs.lock().unwrap().entry(t.id.clone()).or_default() += 1;
                    Ok(out.into_bytes())
                }
            })
            .build()
            .unwrap();
        stops.push(common::spawn_worker(w).0);
    }
    // two maintenance processes' worth of loops (as two schedulers would run)
    for _ in 0..2 {
        let qs = names.iter().map(|n| client.queue(n).unwrap()).collect();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(Maintenance::new(qs, client.config().scheduler.clone()).run(stop.clone(), None));
        stops.push(stop);
    }
    (cluster, names, client, runs, stops)
}

/// SIGKILL the primary serving `queue`, wait for its replica to take over, then bring the killed
/// node back (empty) as the new primary's replica, so that WAIT succeeds again.
async fn fail_over(cluster: &mut Cluster, queue: &str) {
    let key = format!("baton:{{{queue}}}:meta");
    let victim = cluster.primary_of(&key);
    let t0 = Instant::now();
    cluster.node(victim).kill();
    common::eventually(Duration::from_secs(30), "the replica is promoted", || async {
        // no primary serves the slot until the replica has taken over
        cluster.try_primary_of(&key).is_ok_and(|p| p != victim)
    })
    .await;
    eprintln!(
        "CLUSTER: {queue}'s replica promoted {:?} after the kill",
        t0.elapsed()
    );
    cluster.node(victim).start();
    cluster.wait_ok();
    eprintln!(
        "CLUSTER: the old primary is back as a replica {:?} after the kill",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_across_queues_survives_a_primary_failover_on_a_cluster() {
    let (mut cluster, names, client, runs, stops) = setup().await;
    let (fan, joinq, last) = (names[0].clone(), names[1].clone(), names[2].clone());
    let (fq, jq, lq) = (
        client.queue(&fan).unwrap(),
        client.queue(&joinq).unwrap(),
        client.queue(&last).unwrap(),
    );
    let mut after = Vec::new();
    for chunk in 0..CHILDREN / 100 {
        let specs = (0..100)
            .map(|i| TaskSpec::new("k", format!("r{}", chunk * 100 + i)))
            .collect();
        for e in fq.enqueue_batch(specs).await.unwrap() {
            after.push(format!("{fan}/{}", e.id));
        }
    }
    let join = jq
        .enqueue(TaskSpec::new("k", "join").id("the-join").after(after))
        .await
        .unwrap()
        .id;
    let fin = lq
        .enqueue(
            TaskSpec::new("k", "after-join")
                .id("the-last")
                .after([format!("{joinq}/{join}")]),
        )
        .await
        .unwrap()
        .id;

    // mid-run: kill the primary of the join's queue (where the settles are delivered)
    common::eventually(
        Duration::from_secs(30),
        "a third of the children done",
        || async {
            fq.counts()
                .await
                .map(|c| c.done as usize >= CHILDREN / 3)
                .unwrap_or(false)
        },
    )
    .await;
    let t0 = Instant::now();
    fail_over(&mut cluster, &joinq).await;

    let out = lq.wait(&fin, Duration::from_secs(90)).await.unwrap();
    assert_eq!(out, Outcome::Done(b"after-join".to_vec()));
    eprintln!("CLUSTER: the chain ended {:?} after the kill", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stops.iter().for_each(|s| s.cancel());

    let t = jq.get(&join).await.unwrap().unwrap();
    assert_eq!(t.state, State::Done);
    assert_eq!(
        t.result.as_deref(),
        Some(&format!("saw {CHILDREN} of {CHILDREN}").into_bytes()[..]),
        "the join saw every child's result"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.get(&join), Some(&1), "the join ran once");
    assert_eq!(runs.get(&fin), Some(&1), "the last task ran once");
    assert_eq!(
        fq.counts().await.unwrap().done as usize,
        CHILDREN,
        "every child done once"
    );
    let reruns = runs.values().filter(|&&n| n > 1).count();
    eprintln!("CLUSTER: {reruns} children ran more than once (leases lost in the failover: at-least-once)");
    for q in [&fq, &jq, &lq] {
        assert_eq!(
            q.counts().await.unwrap().waiting,
            0,
            "nothing left waiting on {}",
            q.name()
        );
    }
}

/// A flow submitted to one queue with tasks on all three primaries: 200 renders on a second
/// queue, a report on the flow's queue joining them, a publish step on the third; callbacks on
/// the flow's queue. The primary of the flow's queue (where its bookkeeping is counted) is
/// SIGKILLed mid-flow: the flow completes, every task and callback runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_spanning_queues_completes_once_through_a_primary_failover() {
    let (mut cluster, names, client, runs, stops) = setup().await;
    let (home, renders, publish) = (names[0].clone(), names[1].clone(), names[2].clone());
    let h = client.queue(&home).unwrap();
    let mut flow = baton::Flow::new().id("nightly");
    let mut parts = Vec::new();
    for i in 0..200 {
        let name = format!("render{i}");
        flow = flow.task_in(&renders, &name, TaskSpec::new("k", format!("r{i}")));
        parts.push(name);
    }
    flow = flow
        .task("report", TaskSpec::new("k", "join").after(parts))
        .task_in(
            &publish,
            "publish",
            TaskSpec::new("k", "published").after(["report"]),
        )
        .on_success(TaskSpec::new("k", "on-success"))
        .on_complete(TaskSpec::new("k", "on-complete"));
    let sub = h.flow(flow).await.unwrap();
    let rq = client.queue(&renders).unwrap();
    common::eventually(
        Duration::from_secs(30),
        "a quarter of the renders done",
        || async { rq.counts().await.map(|c| c.done >= 50).unwrap_or(false) },
    )
    .await;
    let t0 = Instant::now();
    fail_over(&mut cluster, &home).await;
    common::eventually(Duration::from_secs(90), "the flow's callbacks done", || async {
        let mut ok = true;
        for cb in ["on_success", "on_complete"] {
            ok &= matches!(h.get(&format!("{}.{cb}", sub.id)).await, Ok(Some(t)) if t.state == State::Done);
        }
        ok
    })
    .await;
    eprintln!("CLUSTER: the flow completed {:?} after the kill", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stops.iter().for_each(|s| s.cancel());

    let st = h.flow_members(&sub.id).await.unwrap().unwrap();
    assert_eq!(st.state, baton::FlowState::Complete);
    assert_eq!((st.total, st.done), (202, 202), "every member counted once");
    assert!(
        st.members.iter().all(|m| m.state == Some(State::Done)),
        "{:?}",
        st.members
    );
    let report = h.get("nightly:report").await.unwrap().unwrap();
    assert_eq!(report.result.as_deref(), Some(&b"saw 200 of 200"[..]));
    let runs = runs.lock().unwrap().clone();
    for id in [
        "nightly:report",
        "nightly:publish",
        "nightly.on_success",
        "nightly.on_complete",
    ] {
        assert_eq!(runs.get(id), Some(&1), "{id} ran once");
    }
    let reruns = runs.values().filter(|&&n| n > 1).count();
    eprintln!("CLUSTER: {reruns} renders ran more than once (at-least-once)");
    assert_eq!(rq.counts().await.unwrap().done, 200);
}
