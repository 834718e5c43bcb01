//! Core benchmark: enqueue (single and batch), memory per pending task, end-to-end no-op
//! processing with one worker process, and claim cost at two queue depths.
//!
//! Run: `cargo bench --bench core` (starts its own redis-server on a free port; set
//! BATON_BENCH_REDIS_URL to use another server you own — it is FLUSHALLed!).
//! Sizes: BATON_BENCH_N (end-to-end tasks, default 200000), BATON_BENCH_DEEP (deep queue,
//! default 1000000). BATON_BENCH_EVENTS_MAX_LEN sets the queues' events stream cap (default
//! 10000 as in the config; 0 = lifecycle events off) to measure what events cost.
//! Figures are printed; nothing is asserted.

use baton::local_redis::LocalRedis;
use baton::{Client, Config, Queue, TaskSpec, Worker};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Probe {
    raw: redis::aio::MultiplexedConnection,
}

#[derive(Clone, Copy)]
struct Sample {
    cpu: f64,
    evalsha: u64,
    commands: u64,
}

impl Probe {
    async fn info(&mut self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.raw)
            .await
            .unwrap()
    }
    fn field(info: &str, name: &str) -> Option<String> {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
    }
    async fn sample(&mut self) -> Sample {
        let cpu = self.info("cpu").await;
        let user: f64 = Self::field(&cpu, "used_cpu_user").unwrap().parse().unwrap();
        let sys: f64 = Self::field(&cpu, "used_cpu_sys").unwrap().parse().unwrap();
        let stats = self.info("commandstats").await;
        // cmdstat_evalsha:calls=123,usec=...
        let evalsha = Self::field(&stats, "cmdstat_evalsha")
            .and_then(|v| {
                v.split(',')
                    .next()
                    .and_then(|c| c.strip_prefix("calls="))
                    .and_then(|c| c.parse().ok())
            })
            .unwrap_or(0);
        let commands: u64 = stats
            .lines()
            .filter_map(|l| {
                l.split_once("calls=")
                    .and_then(|(_, r)| r.split(',').next())
                    .and_then(|c| c.parse::<u64>().ok())
            })
            .sum();
        Sample {
            cpu: user + sys,
            evalsha,
            commands,
        }
    }
    async fn used_memory(&mut self) -> u64 {
        let m = self.info("memory").await;
        Self::field(&m, "used_memory").unwrap().parse().unwrap()
    }
    async fn flush(&mut self) {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut self.raw).await.unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.raw)
            .await
            .unwrap();
    }
}

struct Row {
    name: String,
    tasks: usize,
    secs: f64,
    before: Sample,
    after: Sample,
}

impl Row {
    fn print(&self) {
        let n = self.tasks as f64;
        println!(
            "{:<58} {:>9} tasks {:>9.0} tasks/s {:>7.2} µs Redis CPU/task {:>6.3} EVALSHA/task {:>6.2} Redis cmds/task",
            self.name,
            self.tasks,
            n / self.secs,
            (self.after.cpu - self.before.cpu) * 1e6 / n,
            (self.after.evalsha - self.before.evalsha) as f64 / n,
            (self.after.commands - self.before.commands) as f64 / n,
        );
    }
}

fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("{{\"i\":{i},\"pad\":\"").into_bytes();
    while p.len() + 2 < size {
        p.push(b'x');
    }
    p.extend_from_slice(b"\"}");
    p
}

async fn fill(q: &Queue, n: usize, size: usize) {
    q.configure().await.unwrap(); // after a FLUSHALL: the events setting again
    let mut i = 0;
    let mut inflight = Vec::new();
    while i < n {
        let k = (n - i).min(1000);
        let specs: Vec<TaskSpec> = (i..i + k)
            .map(|j| TaskSpec::new("noop", payload(j, size)))
            .collect();
        let q = q.clone();
        inflight.push(tokio::spawn(async move { q.enqueue_batch(specs).await.unwrap() }));
        if inflight.len() >= 4 {
            inflight.remove(0).await.unwrap();
        }
        i += k;
    }
    for h in inflight {
        h.await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n = env_usize("BATON_BENCH_N", 200_000);
    let deep = env_usize("BATON_BENCH_DEEP", 1_000_000);
    let (_server, url) = match std::env::var("BATON_BENCH_REDIS_URL") {
        Ok(u) => (None, u),
        Err(_) => {
            let s = LocalRedis::start().expect("start redis-server");
            let u = s.url();
            (Some(s), u)
        }
    };
    let mut cfg = Config::from_toml(&format!("[redis]\nurl = \"{url}\"\n")).unwrap();
    cfg.worker.maintenance = false;
    let events_max_len = env_usize("BATON_BENCH_EVENTS_MAX_LEN", 10_000) as u64;
    for name in ["bench-single", "bench-batch", "bench-depth"] {
        cfg.queues.insert(
            name.into(),
            baton::QueueConfig {
                events_max_len,
                ..Default::default()
            },
        );
    }
    let client = Client::connect(cfg.clone()).await.unwrap();
    let mut probe = Probe {
        raw: redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
    };
    let version = Probe::field(&probe.info("server").await, "redis_version").unwrap_or_default();
    println!(
        "baton core bench — redis {version} at {url}, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "lifecycle events: {}",
        if events_max_len == 0 {
            "off".to_string()
        } else {
            format!("on, stream cap {events_max_len}")
        }
    );
    println!("(Redis CPU = INFO used_cpu_user + used_cpu_sys delta; cmds = all commands incl. those run inside scripts)\n");

    let parts = std::env::var("BATON_BENCH_PARTS").unwrap_or_else(|_| "enqueue,e2e,depth".into());
    if parts.contains("enqueue") {
        // 1. single enqueue: one task per call, 64 concurrent callers on the multiplexed connection
        probe.flush().await;
        let q = client.queue("bench-single").unwrap();
        q.configure().await.unwrap();
        let total = n / 4;
        let before = probe.sample().await;
        let t0 = Instant::now();
        let per = total / 64;
        let mut hs = Vec::new();
        for c in 0..64 {
            let q = q.clone();
            hs.push(tokio::spawn(async move {
                for i in 0..per {
                    q.enqueue(TaskSpec::new("noop", payload(c * per + i, 100)))
                        .await
                        .unwrap();
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        let row = Row {
            name: "enqueue, single (64 concurrent callers, 100 B payload)".into(),
            tasks: per * 64,
            secs: t0.elapsed().as_secs_f64(),
            before,
            after: probe.sample().await,
        };
        row.print();

        // 2. batch enqueue: 1000 per call, 4 batches in flight
        probe.flush().await;
        let q = client.queue("bench-batch").unwrap();
        let mem0 = probe.used_memory().await;
        let before = probe.sample().await;
        let t0 = Instant::now();
        fill(&q, n, 100).await;
        let row = Row {
            name: "enqueue, batch of 1000 (4 in flight, 100 B payload)".into(),
            tasks: n,
            secs: t0.elapsed().as_secs_f64(),
            before,
            after: probe.sample().await,
        };
        row.print();
        let mem1 = probe.used_memory().await;
        println!(
            "{:<58} {:>9.0} bytes per pending task (100 B payload, {} tasks)",
            "memory",
            (mem1 - mem0) as f64 / n as f64,
            n
        );
    }
    if parts.contains("e2e") {
        // 3. end to end: drain the pre-filled queue with one Worker (this process), no-op handler
        let q = client.queue("bench-batch").unwrap();
        for (conc, batch) in [(256usize, 128usize), (1024, 256)] {
            if q.counts().await.unwrap().pending < n as u64 {
                probe.flush().await;
                fill(&q, n, 100).await;
            }
            let mut wcfg = cfg.clone();
            wcfg.queues.insert(
                "bench-batch".into(),
                baton::QueueConfig {
                    claim_batch: batch,
                    events_max_len,
                    ..Default::default()
                },
            );
            let wclient = Client::connect(wcfg).await.unwrap();
            let worker = Worker::builder(&wclient, "bench-batch")
                .unwrap()
                .concurrency(conc)
                .maintenance(None)
                .handler("noop", |_t| async { Ok(Vec::new()) })
                .build()
                .unwrap();
            let stats = worker.stats();
            let stop = tokio_util::sync::CancellationToken::new();
            let s = stop.clone();
            let before = probe.sample().await;
            let t0 = Instant::now();
            let h = tokio::spawn(worker.run(async move { s.cancelled().await }));
            while stats.completed.load(Ordering::Relaxed) < n as u64 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let secs = t0.elapsed().as_secs_f64();
            let after = probe.sample().await;
            stop.cancel();
            h.await.unwrap().unwrap();
            let row = Row {
                name: format!("end to end no-op, 1 worker, concurrency {conc}, claim batch {batch}"),
                tasks: n,
                secs,
                before,
                after,
            };
            row.print();
            let c = q.counts().await.unwrap();
            assert_eq!(c.done, n as u64, "every task done");
            if std::env::var("BATON_BENCH_CMDSTATS").is_ok() {
                // where Redis spent its time: usec per command, in-script commands included
                for l in probe
                    .info("commandstats")
                    .await
                    .lines()
                    .filter(|l| l.starts_with("cmdstat_"))
                {
                    println!("    {l}");
                }
            }
            probe.flush().await;
        }
    }
    if parts.contains("depth") {
        // 4. claim + complete cost at two depths: the same 50k tasks drained from 10k and 1M pending
        for depth in [10_000usize, deep] {
            probe.flush().await;
            let q = client.queue("bench-depth").unwrap();
            // depth + 50k pending; draining 50k leaves `depth` behind
            fill(&q, depth + 50_000, 100).await;
            // let Redis finish rehashing the grown hash tables (active rehashing) before timing
            tokio::time::sleep(Duration::from_secs(3)).await;
            let drain = 50_000;
            let before = probe.sample().await;
            let t0 = Instant::now();
            let mut done = 0;
            while done < drain {
                let claimed = q.claim("bench", 500.min(drain - done)).await.unwrap();
                let req = baton::ops::complete::Request {
                    worker: "bench",
                    busy: Duration::ZERO,
                    items: claimed.iter().map(|c| c.completion(b"")).collect(),
                };
                q.run(&req).await.unwrap();
                done += claimed.len();
            }
            let row = Row {
                name: format!(
                    "claim 500 + complete 500 per call, {}k..{}k pending",
                    (depth + 50_000) / 1000,
                    depth / 1000
                ),
                tasks: drain,
                secs: t0.elapsed().as_secs_f64(),
                before,
                after: probe.sample().await,
            };
            row.print();
        }
    }
}
