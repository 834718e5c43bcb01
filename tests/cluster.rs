//! Redis Cluster: 3 primaries with one replica each, started by the test. Tasks on many queues
//! (spread over every primary by their {queue} hash tag) are processed end to end; one primary
//! is killed mid-run and its replica takes over; clients follow MOVED/ASK and keep going.
mod common;
use baton::{Client, Config, TaskSpec, Worker};
use common::topo::Cluster;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const QUEUES: usize = 12;

fn config(cluster: &Cluster) -> Config {
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let mut toml = format!(
        "[redis]\ncluster = [{}]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n",
        nodes.join(", ")
    );
    for i in 0..QUEUES {
        toml.push_str(&format!(
            "[queues.q{i}]\nlease = \"2s\"\nheartbeat = \"500ms\"\nmax_attempts = 20\nbackoff = \"fixed\"\nbackoff_base = \"100ms\"\nbackoff_cap = \"100ms\"\n"
        ));
    }
    toml.push_str("[worker]\nconcurrency = 8\npoll_interval = \"200ms\"\n[scheduler]\npromote_interval = \"100ms\"\nreclaim_interval = \"100ms\"\n");
    Config::from_toml(&toml).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_queues_over_three_primaries_survive_a_primary_failover() {
    let mut cluster = Cluster::start(3, 1);
    let client = Client::connect(config(&cluster))
        .await
        .expect("connect to the cluster");
    let names: Vec<String> = (0..QUEUES).map(|i| format!("q{i}")).collect();
    let owners: BTreeSet<u16> = names
        .iter()
        .map(|q| cluster.primary_of(&format!("baton:{{{q}}}:meta")))
        .collect();
    assert_eq!(owners.len(), 3, "the queues spread over all 3 primaries");

    let mut stops = Vec::new();
    for q in &names {
        let w = Worker::builder(&client, q)
            .unwrap()
            .concurrency(8)
            .handler("job", |t: baton::TaskContext| async move { Ok(t.payload) })
            .build()
            .unwrap();
        stops.push(common::spawn_worker(w));
    }

    // Round 1: every queue, end to end.
    let mut ids: Vec<(String, String)> = Vec::new();
    for q in &names {
        let queue = client.queue(q).unwrap();
        let specs = (0..50)
            .map(|i| TaskSpec::new("job", format!("{q}-{i}")))
            .collect();
        for e in queue.enqueue_batch(specs).await.unwrap() {
            ids.push((q.clone(), e.id));
        }
    }
    let all_done = |want: &[(String, String)]| {
        let client = client.clone();
        let want = want.to_vec();
        async move {
            for q in client_queues(&want) {
                let n = want.iter().filter(|(x, _)| *x == q).count() as u64;
                match client.queue(&q).unwrap().counts().await {
                    Ok(c) if c.done >= n => {}
                    _ => return false,
                }
            }
            true
        }
    };
    common::eventually(Duration::from_secs(30), "round 1 done on every queue", || {
        all_done(&ids)
    })
    .await;

    // Round 2 under a failover: a producer enqueues one task at a time across the queues while
    // the primary of q0 is killed; its replica is promoted and the clients follow.
    let victim = cluster.primary_of("baton:{q0}:meta");
    let producer = {
        let client = client.clone();
        let names = names.clone();
        tokio::spawn(async move {
            let mut acked: Vec<(String, String, Instant)> = Vec::new();
            let start = Instant::now();
            let mut i = 0usize;
            while start.elapsed() < Duration::from_secs(8) {
                let q = &names[i % names.len()];
                let id = format!("r2-{i}");
                match client
                    .queue(q)
                    .unwrap()
                    .enqueue(TaskSpec::new("job", "x").id(id.clone()))
                    .await
                {
                    Ok(_) => {
                        acked.push((q.clone(), id, Instant::now()));
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    Err(e) => {
                        if std::env::var("BATON_TEST_DEBUG").is_ok() {
                            eprintln!("{:?} enqueue error: {e}", start.elapsed());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = Instant::now();
    cluster.node(victim).kill();
    if std::env::var("BATON_TEST_DEBUG").is_ok() {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let live = cluster.nodes.iter().find(|n| n.port != victim).unwrap();
        eprintln!("after kill:\n{}", live.cli(&["CLUSTER", "NODES"]));
    }
    let acked = producer.await.unwrap();
    let on_victim_after: Vec<_> = acked
        .iter()
        .filter(|(q, _, at)| q == "q0" && *at > t0 + Duration::from_secs(1))
        .collect();
    let resumed = acked
        .iter()
        .filter(|(q, _, at)| q == "q0" && *at > t0)
        .map(|(_, _, at)| *at - t0)
        .min();
    eprintln!(
        "CLUSTER failover: {} enqueues acknowledged in round 2, q0 (on the killed primary) resumed {:?} after the kill",
        acked.len(),
        resumed
    );
    assert!(
        !on_victim_after.is_empty(),
        "q0 took tasks again after its primary died"
    );
    cluster.wait_ok();

    // Every acknowledged task of round 2 is processed (lost ones, if any, are counted).
    let mut lost = 0;
    let mut kept = Vec::new();
    for (q, id, _at) in &acked {
        match client.queue(q).unwrap().get(id).await.unwrap() {
            Some(_) => kept.push((q.clone(), id.clone())),
            None => {
                lost += 1;
                if std::env::var("BATON_TEST_DEBUG").is_ok() {
                    eprintln!(
                        "lost {q} {id} acked {:?} before the kill",
                        t0.saturating_duration_since(*_at)
                    );
                }
            }
        }
    }
    eprintln!("CLUSTER failover: {lost} acknowledged enqueues lost (asynchronous replication)");
    let round2 = kept.clone();
    common::eventually(Duration::from_secs(40), "round 2 done on every queue", || async {
        for (q, id) in &round2 {
            match client.queue(q).unwrap().get(id).await {
                Ok(Some(t)) if t.state == baton::State::Done => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    let recent_on_victim = acked
        .iter()
        .filter(|(_, _, at)| t0.saturating_duration_since(*at) < Duration::from_millis(200))
        .count();
    assert!(
        lost <= recent_on_victim,
        "{lost} lost, more than the writes of the last 200 ms before the kill"
    );
    for (stop, run) in stops {
        stop.cancel();
        let _ = run.await;
    }
}

fn client_queues(ids: &[(String, String)]) -> BTreeSet<String> {
    ids.iter().map(|(q, _)| q.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_run_on_a_cluster_with_only_the_config_changed() {
    let cluster = Cluster::start(3, 0);
    let dir = common::TempDir::new();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let queues: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let quoted: Vec<String> = queues.iter().map(|q| format!("\"{q}\"")).collect();
    let cfg = dir.write(
        "baton.toml",
        &format!(
            "[redis]\ncluster = [{}]\n\n[worker]\nqueues = [{}]\nconcurrency = 4\n\n[worker.handlers.echo]\nexec = [\"cat\"]\n",
            nodes.join(", "),
            quoted.join(", ")
        ),
    );
    let _scheduler = common::Proc::start(common::SCHEDULER, &cfg);
    let _worker = common::Proc::start(common::WORKER, &cfg);
    let owners: BTreeSet<u16> = queues
        .iter()
        .map(|q| cluster.primary_of(&format!("baton:{{{q}}}:meta")))
        .collect();
    assert!(owners.len() >= 2, "the queues spread over several primaries");
    for q in &queues {
        let payload = format!("{{\"queue\":\"{q}\"}}");
        let (code, out, err) = common::baton(
            &cfg,
            &["enqueue", "-q", q, "-k", "echo", "-p", &payload, "--wait", "20s"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&payload), "result of {q}: {out}");
    }
}

/// Move one slot from its primary to another by hand (CLUSTER SETSLOT + MIGRATE), as
/// `redis-cli --cluster reshard` does, key batch by key batch.
fn migrate_slot(cluster: &Cluster, slot: &str, from: u16, to: u16) {
    let src = cluster.nodes.iter().find(|n| n.port == from).unwrap();
    let dst = cluster.nodes.iter().find(|n| n.port == to).unwrap();
    let (src_id, dst_id) = (src.cli(&["CLUSTER", "MYID"]), dst.cli(&["CLUSTER", "MYID"]));
    assert_eq!(dst.cli(&["CLUSTER", "SETSLOT", slot, "IMPORTING", &src_id]), "OK");
    assert_eq!(src.cli(&["CLUSTER", "SETSLOT", slot, "MIGRATING", &dst_id]), "OK");
    loop {
        let keys = src.cli(&["CLUSTER", "GETKEYSINSLOT", slot, "5"]);
        let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter());
        let out = src.cli(&args);
        assert!(out == "OK" || out == "NOKEY", "MIGRATE: {out}");
        // slow the migration down so that clients meet ASK and TRYAGAIN while it runs
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for n in cluster.nodes.iter() {
        n.cli(&["CLUSTER", "SETSLOT", slot, "NODE", &dst_id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_moved_to_another_primary_under_load_loses_nothing() {
    let cluster = Cluster::start(3, 0);
    let client = Client::connect(config(&cluster)).await.unwrap();
    let q = client.queue("q0").unwrap();
    let w = Worker::builder(&client, "q0")
        .unwrap()
        .concurrency(8)
        .handler("job", |t: baton::TaskContext| async move { Ok(t.payload) })
        .build()
        .unwrap();
    let (stop_worker, run) = common::spawn_worker(w);
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let start = Instant::now();
            let mut i = 0;
            while start.elapsed() < Duration::from_secs(6) {
                let id = format!("m{i}");
                if q.enqueue(TaskSpec::new("job", "x").id(id.clone())).await.is_ok() {
                    acked.push(id);
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let key = "baton:{q0}:meta";
    let from = cluster.primary_of(key);
    let to = *cluster.primaries().iter().find(|p| **p != from).unwrap();
    let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", key]);
    // MIGRATE in batches while the producer and the worker go on (on the other runtime thread).
    tokio::task::block_in_place(|| migrate_slot(&cluster, &slot, from, to));
    assert_eq!(cluster.primary_of(key), to, "the queue's slot moved");
    let acked = producer.await.unwrap();
    assert!(acked.len() > 100, "load went on ({} acknowledged)", acked.len());
    common::eventually(
        Duration::from_secs(30),
        "every acknowledged task done on the new primary",
        || async {
            let c = q.counts().await.unwrap();
            c.done as usize >= acked.len() && c.pending == 0 && c.leased == 0
        },
    )
    .await;
    for id in &acked {
        assert_eq!(
            q.get(id).await.unwrap().map(|t| t.state),
            Some(baton::State::Done),
            "{id}"
        );
    }
    stop_worker.cancel();
    let _ = run.await;
}
