//! Cluster benchmark: the same end-to-end no-op load on Redis Cluster with 1 primary and with 3
//! primaries (no replicas), queues spread by their {queue} hash tag. One process runs one
//! Worker per queue. Starts its own cluster nodes on free loopback ports.
//!
//! Run: `cargo bench --bench cluster` (BATON_BENCH_N tasks, default 120000; BATON_BENCH_QUEUES,
//! default 12). Figures are printed; nothing is asserted.

#[path = "../tests/common/topo.rs"]
mod topo;

#[path = "../tests/common/web.rs"]
mod web;

use baton::{Client, Config, TaskSpec, Worker};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Total Redis CPU seconds over the nodes.
fn cpu(c: &topo::Cluster) -> f64 {
    c.nodes
        .iter()
        .map(|n| {
            let info = n.cli(&["INFO", "cpu"]);
            let f = |k: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            f("used_cpu_user:") + f("used_cpu_sys:")
        })
        .sum()
}

async fn run(primaries: usize, n: usize, queues: usize) {
    let cluster = topo::Cluster::start(primaries, 0);
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let mut toml = format!("[redis]\ncluster = [{}]\n", nodes.join(", "));
    for i in 0..queues {
        toml.push_str(&format!("[queues.b{i}]\nclaim_batch = 128\n"));
    }
    let cfg = Config::from_toml(&toml).unwrap();
    let client = Client::connect(cfg).await.unwrap();
    let names: Vec<String> = (0..queues).map(|i| format!("b{i}")).collect();
    let per = n / queues;
    for q in &names {
        let queue = client.queue(q).unwrap();
        let mut left = per;
        while left > 0 {
            let k = left.min(1000);
            queue
                .enqueue_batch((0..k).map(|_| TaskSpec::new("noop", vec![b'x'; 100])).collect())
                .await
                .unwrap();
            left -= k;
        }
    }
    let owners: std::collections::BTreeSet<u16> = names
        .iter()
        .map(|q| cluster.primary_of(&format!("baton:{{{q}}}:meta")))
        .collect();
    let cpu0 = cpu(&cluster);
    let t0 = Instant::now();
    let mut runs = Vec::new();
    let mut stats = Vec::new();
    let stop = tokio_util::sync::CancellationToken::new();
    for q in &names {
        let w = Worker::builder(&client, q)
            .unwrap()
            .concurrency(256)
            .maintenance(None)
            .handler("noop", |_t: baton::TaskContext| async { Ok(Vec::new()) })
            .build()
            .unwrap();
        stats.push(w.stats());
        let s = stop.clone();
        runs.push(tokio::spawn(w.run(async move { s.cancelled().await })));
    }
    let total = (per * queues) as u64;
    loop {
        let done: u64 = stats.iter().map(|s| s.completed.load(Ordering::Relaxed)).sum();
        if done >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu_used = cpu(&cluster) - cpu0;
    stop.cancel();
    for r in runs {
        let _ = r.await;
    }
    println!(
        "cluster, {primaries} primar{}, {queues} queues on {} of them: {total} tasks in {secs:.2} s = {:>7.0} tasks/s, {:.2} µs Redis CPU/task (all nodes)",
        if primaries == 1 { "y" } else { "ies" },
        owners.len(),
        total as f64 / secs,
        cpu_used * 1e6 / total as f64
    );
}

#[tokio::main]
async fn main() {
    let n = env_usize("BATON_BENCH_N", 120_000);
    let queues = env_usize("BATON_BENCH_QUEUES", 12);
    println!(
        "baton cluster bench — {} cores, end to end no-op, one worker process, concurrency 256 per queue",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    for primaries in [1, 3] {
        run(primaries, n, queues).await;
    }
}
