//! Push dispatch with real workers: two dispatchers (scheduler replicas) at once, every task run
//! exactly once, shares as the strategy says, the registry's in-flight counts equal to the real
//! leases at every moment — also after a worker process is killed with its tasks assigned.
mod common;
use baton::{DispatchMode, Maintenance, QueueConfig, Strategy, TaskSpec, Worker};
use common::{Proc, TempDir, SCHEDULER, WORKER};
use std::time::Duration;

/// Atomically compare each worker's in-flight counter with the leases it really holds.
async fn registry_drift(q: &baton::Queue) -> Vec<String> {
    let script = r#"
        local leases = redis.call('HGETALL', KEYS[1])
        local counts = {}
        for i = 2, #leases, 2 do
          local w = string.match(leases[i], '|(.*)$')
          counts[w] = (counts[w] or 0) + 1
        end
        local infl = redis.call('HGETALL', KEYS[2])
        local bad = {}
        for i = 1, #infl, 2 do
          if tonumber(infl[i + 1]) ~= (counts[infl[i]] or 0) then
            bad[#bad + 1] = infl[i] .. ' counter ' .. infl[i + 1] .. ' leases ' .. (counts[infl[i]] or 0)
          end
        end
        for w, n in pairs(counts) do
          if redis.call('HEXISTS', KEYS[2], w) == 0 then bad[#bad + 1] = w .. ' unregistered, leases ' .. n end
        end
        return bad
    "#;
    q.conn()
        .query(
            redis::cmd("EVAL")
                .arg(script)
                .arg(2)
                .arg(q.keys().key(baton::keys::Role::Lease))
                .arg(q.keys().key(baton::keys::Role::Winfl)),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_three_workers_every_task_once_and_no_drift() {
    let env = common::env_with(|c| {
        c.queues.insert(
            "p".into(),
            QueueConfig {
                dispatch: DispatchMode::Push,
                strategy: Strategy::RoundRobin,
                lease: Duration::from_secs(2),
                heartbeat: Duration::from_millis(300),
                ..Default::default()
            },
        );
    })
    .await;
    let q = env.client.queue("p").unwrap();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let w = Worker::builder(&env.client, "p")
            .unwrap()
            .concurrency(4)
            .maintenance(None)
            .handler("k", |_t| async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(Vec::new())
            })
            .build()
            .unwrap();
        handles.push(common::spawn_worker(w));
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let mut scheds = Vec::new();
    for _ in 0..2 {
        let m = Maintenance::new(vec![q.clone()], env.config.scheduler.clone());
        scheds.push(tokio::spawn(m.run(stop.clone(), None)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // registered
    let n = 1500;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        q.enqueue_batch(chunk.iter().map(|_| TaskSpec::new("k", "")).collect())
            .await
            .unwrap();
    }
    let mut checks = 0;
    loop {
        let drift = registry_drift(&q).await;
        assert!(drift.is_empty(), "registry drifted: {drift:?}");
        checks += 1;
        if q.counts().await.unwrap().done == n {
            break;
        }
        if checks >= 2000 {
            let lease: Vec<String> = q
                .conn()
                .query(redis::cmd("HGETALL").arg(q.keys().key(baton::keys::Role::Lease)))
                .await
                .unwrap();
            let assigned: Vec<String> = q
                .conn()
                .query(
                    redis::cmd("ZRANGE")
                        .arg(q.keys().key(baton::keys::Role::Assigned))
                        .arg(0)
                        .arg(-1),
                )
                .await
                .unwrap();
            panic!(
                "not done in time: {:?}\nleases {lease:?}\nassigned {assigned:?}\nworkers {:?}",
                q.counts().await.unwrap(),
                q.workers(10).await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let workers = q.workers(10).await.unwrap();
    assert_eq!(
        workers.iter().map(|w| w.assigned).sum::<u64>(),
        n,
        "each task assigned once"
    );
    assert_eq!(
        workers.iter().map(|w| w.completed).sum::<u64>(),
        n,
        "each task completed once"
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed_total, c.expired_total, c.failed_total), (n, 0, 0));
    for w in &workers {
        let share = w.completed as f64 / n as f64;
        assert!(
            (share - 1.0 / 3.0).abs() < 0.05,
            "round-robin share of {}: {share:.3}",
            w.id
        );
        assert!(w.busy_ms > 0, "busy time recorded for {}", w.id);
    }
    stop.cancel();
    for s in scheds {
        s.await.unwrap().unwrap();
    }
    for (stop, h) in handles {
        stop.cancel();
        h.await.unwrap().unwrap();
    }
    assert!(registry_drift(&q).await.is_empty());
}

#[tokio::test]
async fn a_killed_push_worker_loses_no_assigned_task() {
    let env = common::env().await;
    let dir = TempDir::new();
    let cfg = dir.write(
        "push.toml",
        &format!(
            r#"
[redis]
url = "{}"
[queues.jobs]
dispatch = "push"
strategy = "round-robin"
lease = "1s"
heartbeat = "300ms"
[worker]
queues = ["jobs"]
concurrency = 4
maintenance = false
[worker.handlers.job]
shell = "sleep 0.2; echo ok"
[scheduler]
reclaim_interval = "100ms"
dispatch_interval = "100ms"
"#,
            env.redis.url()
        ),
    );
    let q = env.client.queue("jobs").unwrap();
    let _scheduler = Proc::start(SCHEDULER, &cfg);
    let mut victim = Proc::start(WORKER, &cfg);
    let _survivor = Proc::start(WORKER, &cfg);
    common::eventually(Duration::from_secs(5), "two workers registered", || async {
        q.workers(10).await.unwrap().len() == 2
    })
    .await;
    let ids: Vec<String> = q
        .enqueue_batch((0..40).map(|_| TaskSpec::new("job", "")).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    // kill one worker while it holds assigned tasks
    let victim_id = format!("w-{}-", victim.pid());
    common::eventually(Duration::from_secs(5), "victim busy", || async {
        q.workers(10)
            .await
            .unwrap()
            .iter()
            .any(|w| w.id.starts_with(&victim_id) && w.inflight > 0)
    })
    .await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(2));
    common::eventually(Duration::from_secs(20), "all 40 done", || async {
        q.counts().await.unwrap().done == 40
    })
    .await;
    for id in &ids {
        assert_eq!(q.get(id).await.unwrap().unwrap().result.unwrap(), b"ok\n");
    }
    assert!(
        q.counts().await.unwrap().expired_total > 0,
        "the victim's leases were reclaimed"
    );
    assert!(
        registry_drift(&q).await.is_empty(),
        "in-flight counters match the leases after the kill"
    );
    let w = q.workers(10).await.unwrap();
    assert!(w.iter().all(|w| w.inflight == 0), "{w:?}");

    // baton workers --json: per worker id, weight, capacity, inflight, assigned, completed
    let (code, out, err) = common::baton(&cfg, &["workers", "--queue", "jobs", "--json"]);
    assert_eq!(code, 0, "{err}");
    let arr: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(!arr.is_empty());
    let mut completed = 0;
    for w in &arr {
        for k in [
            "id",
            "weight",
            "capacity",
            "inflight",
            "assigned",
            "completed",
            "busy_ms",
            "mean_exec_ms",
        ] {
            assert!(w.get(k).is_some(), "{k} missing in {w}");
        }
        assert_eq!((w["weight"].as_u64(), w["capacity"].as_u64()), (Some(1), Some(4)));
        completed += w["completed"].as_u64().unwrap();
    }
    assert!(completed > 0 && completed <= 40);
    let (code, out, _) = common::baton(&cfg, &["stats", "--queue", "jobs", "--json", "--sample", "0s"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        s["per_worker"].is_array(),
        "stats --json includes the per-worker breakdown: {s}"
    );
    assert!(s["workers"].is_u64(), "and the number of registered workers: {s}");
}
