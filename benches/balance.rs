//! Balance benchmark: three workers of different speeds (1x, 2x, 4x: a task takes 8, 4 and 2 ms)
//! with weights 1, 2, 4 and capacity 4 each, fed the same burst of tasks under pull dispatch and
//! each push strategy. Prints each worker's share, the makespan, throughput and the p50/p99
//! wait (enqueue -> start).
//!
//! Run: `cargo bench --bench balance` (starts its own redis-server). BATON_BALANCE_N sets the
//! number of tasks (default 3000).

use baton::local_redis::LocalRedis;
use baton::{Client, Config, DispatchMode, Maintenance, QueueConfig, Strategy, TaskSpec, Worker};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SPEEDS: [(u64, u32); 3] = [(8, 1), (4, 2), (2, 4)]; // (ms per task, weight)
const CONCURRENCY: usize = 4;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(
    url: &str,
    name: &str,
    mode: DispatchMode,
    strategy: Strategy,
    n: usize,
    capacity: usize,
    rate: Option<usize>,
) {
    let mut cfg = Config::from_toml(&format!("[redis]\nurl = \"{url}\"\n")).unwrap();
    let queue = format!("bal-{}-{capacity}-{}", name.replace(" ", "-"), rate.unwrap_or(0));
    cfg.queues.insert(
        queue.clone(),
        QueueConfig {
            dispatch: mode,
            strategy,
            claim_batch: CONCURRENCY,
            ..Default::default()
        },
    );
    cfg.scheduler.dispatch_interval = Duration::from_millis(50);
    let client = Client::connect(cfg.clone()).await.unwrap();
    let q = client.queue(&queue).unwrap();
    let waits: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut workers = Vec::new();
    let mut stats = Vec::new();
    for (ms, weight) in SPEEDS {
        let waits = waits.clone();
        let w = Worker::builder(&client, &queue)
            .unwrap()
            .concurrency(CONCURRENCY)
            .maintenance(None)
            .info(serde_json::json!({ "weight": weight, "capacity": capacity }))
            .handler("job", move |t: baton::TaskContext| {
                let waits = waits.clone();
                async move {
                    waits.lock().unwrap().push(now_ms().saturating_sub(t.enqueued_ms));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Vec::new())
                }
            })
            .build()
            .unwrap();
        stats.push(w.stats());
        workers.push(tokio::spawn({
            let stop = tokio_util::sync::CancellationToken::new();
            let s = stop.clone();
            let h = tokio::spawn(w.run(async move { s.cancelled().await }));
            async move { (stop, h) }
        }));
    }
    let mut handles = Vec::new();
    for w in workers {
        handles.push(w.await.unwrap());
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let sched =
        tokio::spawn(Maintenance::new(vec![q.clone()], cfg.scheduler.clone()).run(stop.clone(), None));
    tokio::time::sleep(Duration::from_millis(300)).await; // registered and idle

    let t0 = Instant::now();
    match rate {
        None => {
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                q.enqueue_batch(chunk.iter().map(|_| TaskSpec::new("job", "")).collect())
                    .await
                    .unwrap();
            }
        }
        Some(per_s) => {
            // paced: a small batch every 10 ms
            let per_tick = (per_s / 100).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0;
            while sent < n {
                tick.tick().await;
                let k = per_tick.min(n - sent);
                q.enqueue_batch((0..k).map(|_| TaskSpec::new("job", "")).collect())
                    .await
                    .unwrap();
                sent += k;
            }
        }
    }
    while q.counts().await.unwrap().done < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let makespan = t0.elapsed();
    stop.cancel();
    sched.await.unwrap().unwrap();
    for (s, h) in handles {
        s.cancel();
        h.await.unwrap().unwrap();
    }
    let done: Vec<u64> = stats
        .iter()
        .map(|s| s.completed.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    let mut w = waits.lock().unwrap().clone();
    w.sort();
    let shares: Vec<String> = done
        .iter()
        .map(|d| format!("{:>5.1}%", 100.0 * *d as f64 / n as f64))
        .collect();
    println!(
        "{:<24} {}   {:>7.2}s {:>8.0} {:>8} {:>8}",
        name,
        shares.join(" "),
        makespan.as_secs_f64(),
        n as f64 / makespan.as_secs_f64(),
        pct(&w, 0.5),
        pct(&w, 0.99)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BATON_BALANCE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let redis = LocalRedis::start().expect("start redis-server");
    let url = redis.url();
    let total: f64 = SPEEDS
        .iter()
        .map(|(ms, _)| CONCURRENCY as f64 * 1000.0 / *ms as f64)
        .sum();
    println!("balance bench: {n} tasks; 3 workers at 1x/2x/4x speed (8/4/2 ms per task), weights 1/2/4,");
    println!(
        "concurrency {CONCURRENCY} each (together {total:.0} tasks/s); ideal burst makespan {:.2}s with shares 14.3% 28.6% 57.1%",
        n as f64 / total
    );
    let paced = (total * 0.6) as usize;
    let scenarios: [(&str, usize, Option<usize>); 3] = [
        (
            "burst, capacity = concurrency (push assigns only what a worker can start now)",
            CONCURRENCY,
            None,
        ),
        (
            "burst, capacity unbounded (push may assign a worker any backlog)",
            1_000_000,
            None,
        ),
        (
            "paced arrivals at 60% of total speed, capacity 32",
            32,
            Some(paced),
        ),
    ];
    for (title, capacity, rate) in scenarios {
        println!("\n{title}:");
        println!(
            "{:<24} {:>6} {:>6} {:>6}   {:>8} {:>8} {:>8} {:>8}",
            "dispatch", "1x", "2x", "4x", "makespan", "tasks/s", "p50 ms", "p99 ms"
        );
        if capacity != 1_000_000 {
            run(
                &url,
                "pull",
                DispatchMode::Pull,
                Strategy::LeastConcurrency,
                n,
                capacity,
                rate,
            )
            .await;
        }
        for s in [
            Strategy::Random,
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::LeastConcurrency,
        ] {
            run(
                &url,
                &format!("push {}", s.as_str()),
                DispatchMode::Push,
                s,
                n,
                capacity,
                rate,
            )
            .await;
        }
    }
    println!("\nwait = handler start - enqueue time; makespan = first enqueue to last completion");
}
