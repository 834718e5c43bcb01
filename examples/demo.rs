//! The local demo (`scripts/demo`): two workers and the maintenance loops on a private
//! redis-server (or the Redis of `--config FILE` / `BATON_CONFIG`), a few hundred tasks — some
//! delayed, some prioritized, some failing once and retried — with live progress, then stats.
//!
//! Usage: scripts/demo [--config FILE] [--tasks N]

use baton::local_redis::LocalRedis;
use baton::{Client, Config, HandlerError, TaskSpec, Worker};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut config_path = std::env::var("BATON_CONFIG").ok();
    let mut tasks = 300usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_path = args.next(),
            "--tasks" => {
                tasks = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--tasks needs a number")?
            }
            "-h" | "--help" => {
                println!("usage: scripts/demo [--config FILE] [--tasks N]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let (_private, config) = match config_path {
        Some(p) => (None, Config::load(&p)?),
        None => {
            let redis = LocalRedis::start()?;
            println!(
                "started a private redis-server on port {} (pid {})",
                redis.port(),
                redis.pid().unwrap_or(0)
            );
            let mut c = Config::default();
            c.redis.url = redis.url();
            (Some(redis), c)
        }
    };
    let client = Client::connect(config).await?;
    let queue = client.queue("demo")?;

    let mut handles = Vec::new();
    let mut stats = Vec::new();
    let stop = tokio_util::sync::CancellationToken::new();
    for n in 1..=2 {
        let w = Worker::builder(&client, "demo")?
            .concurrency(8)
            .handler("resize", |t: baton::TaskContext| async move {
                tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(0..40))).await;
                Ok(format!("resized {}", String::from_utf8_lossy(&t.payload)).into_bytes())
            })
            .handler("email", |t: baton::TaskContext| async move {
                // fails its first attempt now and then: the retry policy takes over
                if t.attempt == 1 && fastrand::u8(0..10) == 0 {
                    return Err(HandlerError::retry("smtp server busy"));
                }
                Ok(b"sent".to_vec())
            })
            .build()?;
        println!("worker {n}: {}", w.id());
        stats.push(w.stats());
        let s = stop.clone();
        handles.push(tokio::spawn(w.run(async move { s.cancelled().await })));
    }

    let t0 = Instant::now();
    let specs: Vec<TaskSpec> = (0..tasks)
        .map(|i| match i % 3 {
            0 => TaskSpec::new("email", format!("{{\"to\":\"user{i}@example.com\"}}"))
                .backoff(baton::Backoff::fixed(Duration::from_millis(300))),
            1 => TaskSpec::new("resize", format!("image-{i}.png")).priority(if i % 10 == 1 { 10 } else { 0 }),
            _ => TaskSpec::new("resize", format!("thumb-{i}.png"))
                .delay(Duration::from_millis(fastrand::u64(0..1500))),
        })
        .collect();
    for chunk in specs.chunks(100) {
        queue.enqueue_batch(chunk.to_vec()).await?;
    }
    println!("enqueued {tasks} tasks on queue \"demo\" (a third delayed up to 1.5s, some prioritized, some emails failing once)");

    let mut out = std::io::stderr();
    loop {
        let c = queue.counts().await?;
        let done = c.done + c.dead;
        let width = 40usize;
        let filled = (done as usize * width) / tasks.max(1);
        let _ = write!(
            out,
            "\r[{}{}] {done}/{tasks} done  pending {} delayed {} running {}   ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            c.pending,
            c.delayed,
            c.leased
        );
        let _ = out.flush();
        if done as usize >= tasks || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(out);
    stop.cancel();
    for h in handles {
        h.await??;
    }

    let c = queue.counts().await?;
    println!(
        "\nqueue demo: pending {} delayed {} leased {} done {} dead {} cancelled {}",
        c.pending, c.delayed, c.leased, c.done, c.dead, c.cancelled
    );
    println!(
        "finished {} tasks in {secs:.2}s ({:.0} tasks/s, delays included)",
        c.done + c.dead,
        (c.done + c.dead) as f64 / secs
    );
    let total: u64 = stats.iter().map(|s| s.completed.load(Ordering::Relaxed)).sum();
    for (i, s) in stats.iter().enumerate() {
        let done = s.completed.load(Ordering::Relaxed);
        println!(
            "worker {}: completed {done} ({:.0}% of the work), failed attempts {} (retried)",
            i + 1,
            100.0 * done as f64 / total.max(1) as f64,
            s.failed.load(Ordering::Relaxed)
        );
    }
    if c.done + c.dead < tasks as u64 {
        return Err("not every task finished within 60s".into());
    }
    println!("all workers stopped; bye");
    Ok(())
}
