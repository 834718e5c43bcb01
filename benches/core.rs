//! Core benchmark: enqueue (single and batch), memory per pending task, end-to-end no-op
//! processing (one worker in this process at two tuned shapes and the shipped defaults, then one
//! and two worker *processes*), paced enqueue→start latency, the fixed server cost of one call
//! (events on and off), and claim cost at two queue depths.
//!
//! Run: `cargo bench --bench core` (starts its own redis-server on a free port; set
//! BATON_BENCH_REDIS_URL to use another server you own — it is FLUSHALLed!). Parts:
//! BATON_BENCH_PARTS (default "enqueue,e2e,procs,latency,percall,depth"; also "limits" and
//! "fair": flow control's and fair queueing's cost at the 1x50 shape; "fanin": 10,000 tasks
//! joined by one task against the same tasks without dependencies, and the time from the last
//! child's completion to the join's claim; "across": the same join on another queue, its
//! hand-offs carried by the outboxes, and its hand-off time).
//! Sizes: BATON_BENCH_N (end-to-end tasks, default 200000), BATON_BENCH_DEEP (deep queue,
//! default 1000000). BATON_BENCH_EVENTS_MAX_LEN sets the queues' events stream cap (default
//! 10000 as in the config; 0 = lifecycle events off) to measure what events cost.
//! Figures are printed; nothing is asserted.

use baton::local_redis::LocalRedis;
use baton::{Client, Config, Queue, TaskSpec, Worker};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set in a child process of this bench: run one worker on the named queue until SIGTERM.
const CHILD_ENV: &str = "BATON_BENCH_CHILD";

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
    fill_groups(q, n, size, 0, 1).await
}

/// `fill`, task j in group `g<j mod groups>` (no group when `groups` is 0).
async fn fill_groups(q: &Queue, n: usize, size: usize, groups: usize, cost: u32) {
    q.configure().await.unwrap(); // after a FLUSHALL: the queue's settings again
    let mut i = 0;
    let mut inflight = Vec::new();
    while i < n {
        let k = (n - i).min(1000);
        let specs: Vec<TaskSpec> = (i..i + k)
            .map(|j| {
                let t = TaskSpec::new("noop", payload(j, size)).cost(cost);
                if groups > 0 {
                    t.group(format!("g{}", j % groups))
                } else {
                    t
                }
            })
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

/// `width` no-op tasks and one more after all of them (`deps`) or without dependencies;
/// returns `width`.
async fn fan_out(q: &Queue, width: usize, deps: bool) -> usize {
    let mut ids = Vec::new();
    for start in (0..width).step_by(1000) {
        let specs = (start..width.min(start + 1000))
            .map(|j| TaskSpec::new("noop", payload(j, 100)))
            .collect();
        ids.extend(q.enqueue_batch(specs).await.unwrap().into_iter().map(|e| e.id));
    }
    let join = TaskSpec::new("noop", payload(width, 100));
    q.enqueue(if deps { join.after(ids) } else { join })
        .await
        .unwrap();
    width
}

/// `rounds` joins of 200 children each: children on `kq`, the join on `jq` (the same queue, or
/// another: then its dependencies are written "<queue>/<id>"), with workers already running on
/// both; returns, per round, the ms from the last child's completion to the join's claim (Redis
/// time from the events of both queues).
async fn handoff_gaps(kq: &Queue, jq: &Queue, rounds: usize) -> Vec<u64> {
    let mut gaps = Vec::new();
    let mut from = vec!["0-0".to_string(); 2];
    let across = kq.name() != jq.name();
    for _ in 0..rounds {
        let specs: Vec<TaskSpec> = (0..200).map(|_| TaskSpec::new("noop", "")).collect();
        let kids: Vec<String> = kq
            .enqueue_batch(specs)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let after: Vec<String> = if across {
            kids.iter().map(|k| format!("{}/{k}", kq.name())).collect()
        } else {
            kids.clone()
        };
        let join = jq
            .enqueue(TaskSpec::new("noop", "").after(after))
            .await
            .unwrap()
            .id;
        jq.wait(&join, Duration::from_secs(30)).await.unwrap();
        let (mut last_done, mut claimed) = (0u64, None);
        let queues = if across { vec![kq, jq] } else { vec![kq] };
        for (q, from) in queues.into_iter().zip(from.iter_mut()) {
            loop {
                let evs = q.events_after(from, 1000).await.unwrap();
                let Some(l) = evs.last() else { break };
                *from = l.id.clone();
                for e in evs {
                    for t in &e.tasks {
                        if e.kind == "completed" && kids.contains(&t.id) {
                            last_done = last_done.max(e.at_ms);
                        }
                        if e.kind == "claimed" && t.id == join && claimed.is_none() {
                            claimed = Some(e.at_ms);
                        }
                    }
                }
            }
        }
        gaps.push(claimed.unwrap().saturating_sub(last_done));
    }
    gaps.sort();
    gaps
}

/// "p50 X ms, p99 Y ms, max Z ms" of sorted gaps.
fn percentiles(gaps: &[u64]) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms",
        gaps[gaps.len() / 2],
        gaps[(gaps.len() * 99 / 100).min(gaps.len() - 1)],
        gaps[gaps.len() - 1]
    )
}

/// Child mode: one Worker (no-op handler, the given concurrency and claim batch) on `queue` at
/// `url` until SIGTERM.
async fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let (url, queue, conc, batch) = (
        parts[0],
        parts[1],
        parts[2].parse().unwrap(),
        parts[3].parse().unwrap(),
    );
    let mut cfg = Config::from_toml(&format!("[redis]\nurl = \"{url}\"\n")).unwrap();
    cfg.worker.maintenance = false;
    cfg.queues.insert(
        queue.into(),
        baton::QueueConfig {
            claim_batch: batch,
            ..Default::default()
        },
    );
    let client = Client::connect(cfg).await.unwrap();
    let worker = noop_worker(&client, queue, conc);
    worker.run(baton::process::shutdown_signal()).await.unwrap();
}

/// A worker with a no-op handler for kind "noop" and no maintenance loops.
fn noop_worker(client: &Client, queue: &str, conc: usize) -> Worker {
    Worker::builder(client, queue)
        .unwrap()
        .concurrency(conc)
        .maintenance(None)
        .handler("noop", |_t| async { Ok(Vec::new()) })
        .build()
        .unwrap()
}

/// Drain `n` pre-filled no-op tasks from `q` with one worker (this process) of `conc` slots on
/// the queue `settings`, and print the row.
async fn drain_row(
    cfg: &Config,
    q: &Queue,
    probe: &mut Probe,
    n: usize,
    conc: usize,
    settings: baton::QueueConfig,
    name: String,
) {
    let c = q.counts().await.unwrap();
    if c.pending + c.waiting < n as u64 {
        probe.flush().await;
        fill(q, n, 100).await;
    }
    let mut wcfg = cfg.clone();
    wcfg.queues.insert(q.name().to_string(), settings);
    let wclient = Client::connect(wcfg).await.unwrap();
    let worker = noop_worker(&wclient, q.name(), conc);
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
    Row {
        name,
        tasks: n,
        secs,
        before,
        after,
    }
    .print();
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
}

#[tokio::main]
async fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec).await;
    }
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

    let parts = std::env::var("BATON_BENCH_PARTS")
        .unwrap_or_else(|_| "enqueue,e2e,procs,latency,percall,depth".into());
    let defaults = Config::default();
    let (def_conc, def_batch) = (
        defaults.worker.concurrency,
        baton::QueueConfig::default().claim_batch,
    );
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
        for (conc, batch) in [
            (256usize, 128usize),
            (1024, 256),
            (50, 100),
            (def_conc, def_batch),
        ] {
            let shipped = if (conc, batch) == (def_conc, def_batch) {
                " (defaults)"
            } else {
                ""
            };
            let settings = baton::QueueConfig {
                claim_batch: batch,
                events_max_len,
                ..Default::default()
            };
            let name =
                format!("end to end no-op, 1 worker, concurrency {conc}, claim batch {batch}{shipped}");
            drain_row(&cfg, &q, &mut probe, n, conc, settings, name).await;
            probe.flush().await;
        }
    }
    if parts.contains("limits") {
        // 3b. flow control's cost: the 1x50 shape with no limits, with a rate limit and a
        // concurrency cap that never bind (the checks alone), and with a cap that binds (half
        // the worker's slots: claims held back, woken by lease ends)
        let q = client.queue("bench-batch").unwrap();
        let fast = baton::flow::Rate::parse("1000000/s").unwrap();
        for (label, rate, burst, cap) in [
            ("no limits", None, None, 0u32),
            (
                "rate 1M/s burst 1000 + cap 1M (never binding)",
                Some(fast),
                Some(1000),
                1_000_000,
            ),
            ("cap 25 (binding)", None, None, 25),
        ] {
            let settings = baton::QueueConfig {
                claim_batch: 100,
                events_max_len,
                rate,
                burst,
                concurrency: cap,
                ..Default::default()
            };
            let name = format!("end to end 1x50, batch 100, {label}");
            drain_row(&cfg, &q, &mut probe, n, 50, settings, name).await;
            probe.flush().await;
        }
    }
    if parts.contains("fair") {
        // 3c. fair queueing's cost: the 1x50 shape draining tasks spread over G groups, fifo and
        // fair, at 10 and 100,000 groups (one task per group: a group switch per task), fair
        // with queue limits that never bind, with every group's own rate and cap (never
        // binding), and with those and tasks of cost 2 (the costs walked task by task)
        use baton::flow::Fairness;
        let fast = baton::flow::Rate::parse("1000000/s").unwrap();
        for (label, groups, fairness, limits, group_limits, cost) in [
            (
                "fifo, tasks in 10 groups",
                10usize,
                Fairness::Fifo,
                false,
                false,
                1u32,
            ),
            ("fair, 10 groups", 10, Fairness::Fair, false, false, 1),
            ("fair, 100000 groups", 100_000, Fairness::Fair, false, false, 1),
            (
                "fair + rate and cap (never binding), 10 groups",
                10,
                Fairness::Fair,
                true,
                false,
                1,
            ),
            (
                "fair + group rate and cap (never binding), 10 groups",
                10,
                Fairness::Fair,
                false,
                true,
                1,
            ),
            (
                "fair + all limits (never binding), cost 2, 10 groups",
                10,
                Fairness::Fair,
                true,
                true,
                2,
            ),
        ] {
            let settings = baton::QueueConfig {
                claim_batch: 100,
                events_max_len,
                fairness,
                rate: limits.then_some(fast),
                burst: limits.then_some(1000),
                concurrency: if limits { 1_000_000 } else { 0 },
                group_rate: group_limits.then_some(fast),
                group_burst: group_limits.then_some(1000),
                group_concurrency: if group_limits { 1_000_000 } else { 0 },
                ..Default::default()
            };
            let mut fcfg = cfg.clone();
            fcfg.queues.insert("bench-batch".into(), settings.clone());
            let q = Client::connect(fcfg).await.unwrap().queue("bench-batch").unwrap();
            probe.flush().await;
            fill_groups(&q, n, 100, groups, cost).await;
            let name = format!("end to end 1x50, batch 100, {label}");
            drain_row(&cfg, &q, &mut probe, n, 50, settings, name).await;
            probe.flush().await;
        }
    }
    if parts.contains("fanin") {
        // 5. dependencies: 10,000 children and one task after all of them, drained at the 1x50
        // shape, against the same 10,001 tasks without dependencies; then the hand-off time
        // (last child's completion -> the join's claim, Redis ms from the events) over rounds
        // of 200 children
        let width = 10_000usize;
        let settings = baton::QueueConfig {
            claim_batch: 100,
            events_max_len: events_max_len.max(100_000),
            ..Default::default()
        };
        let mut fcfg = cfg.clone();
        fcfg.queues.insert("bench-batch".into(), settings.clone());
        let q = Client::connect(fcfg).await.unwrap().queue("bench-batch").unwrap();
        for deps in [false, true] {
            probe.flush().await;
            q.configure().await.unwrap();
            let ids = fan_out(&q, width, deps).await;
            let name = format!(
                "end to end 1x50, batch 100, {width} tasks + 1 {}",
                if deps {
                    "joined after all of them"
                } else {
                    "without dependencies"
                }
            );
            drain_row(&cfg, &q, &mut probe, ids + 1, 50, settings.clone(), name).await;
        }
        probe.flush().await;
        q.configure().await.unwrap();
        let wclient = {
            let mut wcfg = cfg.clone();
            wcfg.queues.insert("bench-batch".into(), settings.clone());
            Client::connect(wcfg).await.unwrap()
        };
        let worker = noop_worker(&wclient, "bench-batch", 50);
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let h = tokio::spawn(worker.run(async move { s.cancelled().await }));
        let gaps = handoff_gaps(&q, &q, 40).await;
        stop.cancel();
        h.await.unwrap().unwrap();
        println!(
            "join hand-off (last of 200 children completed -> join claimed), 40 rounds, 1x50: {}",
            percentiles(&gaps)
        );
    }
    if parts.contains("across") {
        // 6. dependencies across queues: 10,000 children on one queue and a join on another,
        // the hand-offs carried by a maintenance loop through the outboxes; a worker of 50 slots
        // on each queue (the join's idles); then the hand-off time over rounds of 200 children
        let width = 10_000usize;
        let settings = baton::QueueConfig {
            claim_batch: 100,
            events_max_len: events_max_len.max(100_000),
            ..Default::default()
        };
        let mut fcfg = cfg.clone();
        for name in ["bench-batch", "bench-join"] {
            fcfg.queues.insert(name.into(), settings.clone());
        }
        let fclient = Client::connect(fcfg).await.unwrap();
        let (kq, jq) = (
            fclient.queue("bench-batch").unwrap(),
            fclient.queue("bench-join").unwrap(),
        );
        probe.flush().await;
        kq.configure().await.unwrap();
        jq.configure().await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let run = |q: &str| {
            let s = stop.clone();
            tokio::spawn(noop_worker(&fclient, q, 50).run(async move { s.cancelled().await }))
        };
        let mut ids = Vec::new();
        for start in (0..width).step_by(1000) {
            let specs = (start..width.min(start + 1000))
                .map(|j| TaskSpec::new("noop", payload(j, 100)))
                .collect();
            ids.extend(
                kq.enqueue_batch(specs)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| format!("bench-batch/{}", e.id)),
            );
        }
        let join = jq
            .enqueue(TaskSpec::new("noop", payload(width, 100)).after(ids))
            .await
            .unwrap()
            .id;
        let before = probe.sample().await;
        let t0 = Instant::now();
        let workers = [run("bench-batch"), run("bench-join")];
        let maint = tokio::spawn(
            baton::Maintenance::new(vec![kq.clone(), jq.clone()], fclient.config().scheduler.clone())
                .run(stop.clone(), None),
        );
        jq.wait(&join, Duration::from_secs(120)).await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let after = probe.sample().await;
        Row {
            name: format!(
                "end to end 1x50, batch 100, {width} tasks + 1 joined after all of them from another queue"
            ),
            tasks: width + 1,
            secs,
            before,
            after,
        }
        .print();
        let gaps = handoff_gaps(&kq, &jq, 40).await;
        stop.cancel();
        for w in workers {
            w.await.unwrap().unwrap();
        }
        maint.await.unwrap().unwrap();
        println!(
            "join hand-off across queues (last of 200 children completed -> join claimed on the other queue), 40 rounds: {}",
            percentiles(&gaps)
        );
    }
    if parts.contains("procs") {
        // 4. the same drain by one and by two worker processes (this bench re-run as children)
        let q = client.queue("bench-batch").unwrap();
        let (conc, batch) = (1024usize, 256usize);
        for procs in [1usize, 2] {
            probe.flush().await;
            fill(&q, n, 100).await;
            let before = probe.sample().await;
            let t0 = Instant::now();
            let mut kids: Vec<std::process::Child> = (0..procs)
                .map(|_| {
                    std::process::Command::new(std::env::current_exe().unwrap())
                        .env(CHILD_ENV, format!("{url} bench-batch {conc} {batch}"))
                        .env("BATON_LOG", "warn")
                        .spawn()
                        .unwrap()
                })
                .collect();
            while q.counts().await.unwrap().done < n as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let secs = t0.elapsed().as_secs_f64();
            let after = probe.sample().await;
            for k in &mut kids {
                let _ = std::process::Command::new("kill")
                    .arg(k.id().to_string())
                    .status();
                let _ = k.wait();
            }
            Row {
                name: format!(
                    "end to end no-op, {procs} worker process(es), concurrency {conc}, claim batch {batch}"
                ),
                tasks: n,
                secs,
                before,
                after,
            }
            .print();
        }
        probe.flush().await;
    }
    if parts.contains("latency") {
        // 5. enqueue→start latency, paced: one enqueue per call at a fixed rate, workers with the
        // shipped claim batch and concurrency 50; the first second is dropped (warm-up)
        for (rate, secs, workers) in [
            (2_000usize, 6u64, 1usize),
            (2_000, 6, 2),
            (20_000, 4, 1),
            (20_000, 4, 2),
        ] {
            probe.flush().await;
            let q = client.queue("bench-lat").unwrap();
            q.configure().await.unwrap();
            let epoch = Instant::now();
            let lat: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
            let stop = tokio_util::sync::CancellationToken::new();
            let mut hs = Vec::new();
            for _ in 0..workers {
                let wclient = Client::connect(cfg.clone()).await.unwrap();
                let lat = lat.clone();
                let worker = Worker::builder(&wclient, "bench-lat")
                    .unwrap()
                    .concurrency(50)
                    .maintenance(None)
                    .handler("probe", move |t: baton::TaskContext| {
                        let lat = lat.clone();
                        async move {
                            let now = epoch.elapsed().as_nanos() as u64;
                            let sent: u64 = std::str::from_utf8(&t.payload).unwrap().parse().unwrap();
                            lat.lock().unwrap().push((sent, now.saturating_sub(sent)));
                            Ok(Vec::new())
                        }
                    })
                    .build()
                    .unwrap();
                let s = stop.clone();
                hs.push(tokio::spawn(worker.run(async move { s.cancelled().await })));
            }
            tokio::time::sleep(Duration::from_millis(300)).await; // workers registered and idle
            let total = rate * secs as usize;
            let t0 = Instant::now();
            let mut sent = 0usize;
            let mut calls = Vec::with_capacity(total);
            while sent < total {
                // release every task due by now, each its own enqueue call
                let due = ((t0.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
                while sent < due {
                    let q = q.clone();
                    calls.push(tokio::spawn(async move {
                        let at = epoch.elapsed().as_nanos() as u64;
                        q.enqueue(TaskSpec::new("probe", at.to_string())).await.unwrap();
                    }));
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            for c in calls {
                c.await.unwrap();
            }
            while lat.lock().unwrap().len() < total {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.cancel();
            for h in hs {
                h.await.unwrap().unwrap();
            }
            let warm = (t0 - epoch).as_nanos() as u64 + 1_000_000_000;
            let mut v: Vec<u64> = lat
                .lock()
                .unwrap()
                .iter()
                .filter(|(s, _)| *s >= warm)
                .map(|(_, l)| *l)
                .collect();
            v.sort_unstable();
            let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1e6;
            println!(
                "{:<58} {:>9} tasks  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                format!("enqueue→start, paced {rate}/s, {workers} worker(s) × concurrency 50"),
                v.len(),
                pct(0.5),
                pct(0.99),
                pct(1.0)
            );
        }
        probe.flush().await;
    }
    if parts.contains("percall") {
        // 7. the fixed cost of one call: 2000 sequential calls of one task each, server time per
        // call (commandstats), with lifecycle events on and off
        for ev in [events_max_len, 0] {
            let mut pcfg = cfg.clone();
            pcfg.queues.insert(
                "bench-call".into(),
                baton::QueueConfig {
                    events_max_len: ev,
                    ..Default::default()
                },
            );
            let pclient = Client::connect(pcfg).await.unwrap();
            let q = pclient.queue("bench-call").unwrap();
            probe.flush().await;
            q.configure().await.unwrap();
            let calls = 2000;
            let mut per = Vec::new();
            let usec = |stats: &str| -> (u64, u64) {
                let f = Probe::field(stats, "cmdstat_evalsha").unwrap_or_default();
                let get = |k: &str| {
                    f.split(',')
                        .find_map(|x| x.strip_prefix(k))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                (get("calls="), get("usec="))
            };
            let mut measure = |name: &'static str, stats: String, before: (u64, u64)| {
                let (c, u) = usec(&stats);
                per.push((name, (u - before.1) as f64 / (c - before.0).max(1) as f64));
            };
            let s0 = usec(&probe.info("commandstats").await);
            for i in 0..calls {
                q.enqueue(TaskSpec::new("noop", payload(i, 100))).await.unwrap();
            }
            measure("enqueue 1", probe.info("commandstats").await, s0);
            let s0 = usec(&probe.info("commandstats").await);
            let mut held = Vec::new();
            for _ in 0..calls {
                held.extend(q.claim("w", 1).await.unwrap());
            }
            measure("claim 1", probe.info("commandstats").await, s0);
            let s0 = usec(&probe.info("commandstats").await);
            for c in &held {
                q.complete("w", c, b"").await.unwrap();
            }
            measure("complete 1", probe.info("commandstats").await, s0);
            let s0 = usec(&probe.info("commandstats").await);
            for _ in 0..calls {
                q.heartbeat("w", &[]).await.unwrap();
            }
            measure("heartbeat, no lease", probe.info("commandstats").await, s0);
            let s0 = usec(&probe.info("commandstats").await);
            for _ in 0..calls {
                q.counts().await.unwrap();
            }
            measure("counts (read-only)", probe.info("commandstats").await, s0);
            let line: Vec<String> = per.iter().map(|(n, u)| format!("{n} {u:.1}")).collect();
            println!(
                "{:<58} µs of server time per call: {}",
                format!("one call, one task, events {}", if ev > 0 { "on" } else { "off" }),
                line.join(", ")
            );
        }
        probe.flush().await;
    }
    if parts.contains("depth") {
        // 6. claim + complete cost at two depths: the same 50k tasks drained from 10k and 1M pending
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
