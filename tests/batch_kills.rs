//! A batch whose tasks add siblings while they run, with the scheduler process and Redis itself
//! (append-only file, fsync always) SIGKILLed and restarted mid-batch: every task runs, and each
//! callback is enqueued and run exactly once, after the last task of the batch has finished.
mod common;
use baton::{Batch, Client, FlowState, State, TaskContext, TaskSpec, Worker};
use common::topo::Node;
use common::{Proc, TempDir, SCHEDULER};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Runs = Arc<Mutex<HashMap<String, u32>>>;

fn worker(client: &Client, runs: Runs, done_at: Arc<Mutex<HashMap<String, Instant>>>) -> Worker {
    Worker::builder(client, "q")
        .unwrap()
        .concurrency(16)
        .handler("k", move |t: TaskContext| {
            let (runs, done_at) = (runs.clone(), done_at.clone());
            async move {
                let p = String::from_utf8(t.payload.clone()).unwrap();
                if p == "parent" {
                    // two siblings, with ids so a rerun after a lost completion adds nothing new
                    let kids = (0..2)
                        .map(|i| TaskSpec::new("k", "kid").id(format!("{}-kid{i}", t.id)))
                        .collect();
                    t.spawn(kids)
                        .await
                        .map_err(|e| baton::HandlerError::retry(e.to_string()))?;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                *runs.lock().unwrap().entry(t.id.clone()).or_default() += 1;
                done_at.lock().unwrap().insert(t.id.clone(), Instant::now());
                Ok(p.into_bytes())
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_callbacks_fire_once_with_the_scheduler_and_redis_killed_mid_batch() {
    let mut redis = Node::durable();
    let url = redis.url();
    let dir = TempDir::new();
    let cfg = common::product_config(&dir, &url, "");
    // the same configuration as the scheduler process (lease 1 s, heartbeat 300 ms)
    let config = baton::Config::from_toml(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let client = Client::connect(config).await.unwrap();
    let q = client.queue("q").unwrap();
    let mut scheduler = Proc::start(SCHEDULER, &cfg);

    let runs: Runs = Arc::default();
    let done_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (stop, h) = common::spawn_worker(worker(&client, runs.clone(), done_at.clone()));

    let batch = q
        .open_batch(
            Batch::new()
                .on_success(TaskSpec::new("k", "success"))
                .on_complete(TaskSpec::new("k", "complete")),
        )
        .await
        .unwrap();
    let mut added = 0;
    for round in 0..6 {
        let specs: Vec<TaskSpec> = (0..100)
            .map(|i| {
                TaskSpec::new("k", if i % 5 == 0 { "parent" } else { "leaf" }).id(format!("r{round}-{i}"))
            })
            .collect();
        // a call cut by the kill is retried: enqueue by id is idempotent
        loop {
            match batch.add(specs.clone()).await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        added += 100;
        match round {
            1 => {
                scheduler.signal("KILL");
                scheduler.wait_exit(Duration::from_secs(5));
            }
            2 => {
                let ran: u32 = runs.lock().unwrap().values().sum();
                eprintln!("Redis SIGKILLed with {ran} runs done of {added} tasks added so far");
                redis.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                redis.start();
            }
            3 => scheduler = Proc::start(SCHEDULER, &cfg),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    loop {
        match batch.seal().await {
            Ok(_) => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    common::eventually(Duration::from_secs(60), "both callbacks done", || async {
        let mut ok = true;
        for cb in ["on_complete", "on_success"] {
            ok &=
                matches!(q.get(&format!("{}.{cb}", batch.id())).await, Ok(Some(t)) if t.state == State::Done);
        }
        ok
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    h.await.unwrap().unwrap();
    scheduler.signal("TERM");
    scheduler.wait_exit(Duration::from_secs(10));

    let st = q.flow_members(batch.id()).await.unwrap().unwrap();
    assert_eq!(st.state, FlowState::Complete);
    assert_eq!(
        st.total,
        added + added / 5 * 2,
        "every task and every sibling counted once"
    );
    assert_eq!(st.done, st.total);
    let runs = runs.lock().unwrap().clone();
    let done_at = done_at.lock().unwrap().clone();
    let cb = |e: &str| format!("{}.{e}", batch.id());
    for e in ["on_complete", "on_success"] {
        assert_eq!(runs.get(&cb(e)), Some(&1), "{e} ran exactly once");
    }
    // every member had finished before a callback ran
    let last_member = st.members.iter().map(|m| done_at[&m.id]).max().unwrap();
    assert!(done_at[&cb("on_complete")] > last_member && done_at[&cb("on_success")] > last_member);
    for m in &st.members {
        assert_eq!(m.state, Some(State::Done), "{}", m.id);
    }
}
