//! Process lifecycle: SIGTERM drains in-flight tasks (or releases them past the grace period)
//! and deregisters; a worker killed with SIGKILL has its task reclaimed by baton-scheduler and
//! run by another worker, with the default settings.
mod common;
use baton::{Outcome, TaskSpec};
use common::{product_config, Proc, TempDir, SCHEDULER, WORKER};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_finishes_in_flight_tasks_then_deregisters() {
    let env = common::env().await;
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        "[worker.handlers.nap]\nshell = \"sleep 1; echo napped\"\n",
    );
    // 3 slots, all busy: the late task can only be claimed if shutdown failed to stop claiming
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("concurrency = 4", "concurrency = 3");
    std::fs::write(&cfg, text).unwrap();
    let mut worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let ids: Vec<String> = q
        .enqueue_batch((0..3).map(|_| TaskSpec::new("nap", "")).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    common::eventually(Duration::from_secs(5), "3 tasks running", || async {
        q.counts().await.unwrap().leased == 3
    })
    .await;
    assert_eq!(q.workers(10).await.unwrap().len(), 1);
    worker.signal("TERM");
    let late = q.enqueue(TaskSpec::new("nap", "")).await.unwrap().id;
    assert_eq!(worker.wait_exit(Duration::from_secs(5)), Some(0), "clean exit");
    for id in &ids {
        assert_eq!(
            q.get(id).await.unwrap().unwrap().result.unwrap(),
            b"napped\n",
            "in-flight task finished"
        );
    }
    common::assert_state(&q, &late, "pending").await;
    assert!(q.workers(10).await.unwrap().is_empty(), "deregistered");
}

#[tokio::test]
async fn sigterm_past_the_grace_period_releases_and_kills_the_handler() {
    let env = common::env().await;
    let dir = TempDir::new();
    let pidfile = dir.path("sleep.pid");
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            "[worker.handlers.long]\nshell = \"echo $$ > {}; exec sleep 30\"\n",
            pidfile.display()
        ),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"300ms\"");
    std::fs::write(&cfg, text).unwrap();
    let mut worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("long", "")).await.unwrap().id;
    common::eventually(Duration::from_secs(5), "task running", || async {
        pidfile.exists()
    })
    .await;
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let t0 = Instant::now();
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "grace respected: {:?}",
        t0.elapsed()
    );
    common::assert_state(&q, &id, "pending").await;
    assert_eq!(
        q.get(&id).await.unwrap().unwrap().attempts,
        0,
        "released, not counted"
    );
    common::eventually(Duration::from_secs(3), "handler process killed", || {
        let pid = pid.clone();
        async move { !std::path::Path::new(&format!("/proc/{pid}")).exists() }
    })
    .await;
}

#[tokio::test]
async fn sigkill_worker_task_runs_elsewhere_with_default_settings() {
    let env = common::env().await;
    let dir = TempDir::new();
    // default [queues] and [scheduler] settings: lease 4s, heartbeat 1s, reclaim every 500ms
    let base = format!(
        "[redis]\nurl = \"{}\"\n[worker]\nqueues = [\"jobs\"]\nmaintenance = false\n",
        env.redis.url()
    );
    let stuck = dir.write(
        "stuck.toml",
        &format!("{base}[worker.handlers.job]\nexec = [\"sleep\", \"60\"]\n"),
    );
    let quick = dir.write(
        "quick.toml",
        &format!("{base}[worker.handlers.job]\nexec = [\"echo\", \"rescued\"]\n"),
    );
    let q = env.client.queue("jobs").unwrap();
    let _scheduler = Proc::start(SCHEDULER, &stuck);
    let mut doomed = Proc::start(WORKER, &stuck);
    let id = q.enqueue(TaskSpec::new("job", "")).await.unwrap().id;
    common::eventually(Duration::from_secs(5), "task leased", || async {
        q.counts().await.unwrap().leased == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a heartbeat or two
    let _rescuer = Proc::start(WORKER, &quick);
    doomed.signal("KILL");
    let killed = Instant::now();
    doomed.wait_exit(Duration::from_secs(2));
    let out = q.wait(&id, Duration::from_secs(15)).await.unwrap();
    let took = killed.elapsed();
    assert_eq!(out, Outcome::Done(b"rescued\n".to_vec()));
    eprintln!("SIGKILL -> task completed by another worker after {took:?} (default lease 4s, heartbeat 1s)");
    assert!(took < Duration::from_secs(6), "recovery took {took:?}");
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.attempts, 2);
    assert!(t.last_error.unwrap().message.contains("lease expired"));
    // the dead worker is pruned from the registry after 3 silent leases; the rescuer stays
    common::eventually(Duration::from_secs(15), "dead worker pruned", || async {
        q.workers(10).await.unwrap().len() == 1
    })
    .await;
}
