//! The `baton` subcommands.

use super::{exit, Cli, Command, DeadAction, EnqueueArgs, ScriptsAction};
use crate::client::{Client, Outcome, Queue};
use crate::error::{Error, Result};
use crate::task::{State, Task, TaskSpec};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

pub(super) async fn run(cli: Cli) -> Result<i32> {
    if let Command::Scripts { action } = &cli.command {
        return scripts(action, cli.json); // needs no Redis
    }
    let config = crate::process::load_config(cli.config.clone())?;
    let client = Client::connect(config).await?;
    let json = cli.json;
    match cli.command {
        Command::Enqueue(args) => enqueue(&client, args, json).await,
        Command::Status { queue, id } => status(&client.queue(&queue.queue)?, &id, json).await,
        Command::Result { queue, id, wait } => result(&client.queue(&queue.queue)?, &id, wait).await,
        Command::Stats { queue, sample } => stats(&client, queue, sample, json).await,
        Command::Workers { queue } => workers(&client.queue(&queue.queue)?, json).await,
        Command::Dead { action } => dead(&client, action, json).await,
        Command::Pause { queue } => pause(&client.queue(&queue.queue)?, true, json).await,
        Command::Resume { queue } => pause(&client.queue(&queue.queue)?, false, json).await,
        Command::Events {
            queue,
            follow,
            last,
            after,
        } => events(&client.queue(&queue.queue)?, follow, last, after, json).await,
        Command::Cancel { queue, ids } => cancel(&client.queue(&queue.queue)?, &ids, json).await,
        Command::Scripts { .. } => unreachable!("handled above"),
        Command::Doctor => unreachable!("handled in cli::run"),
    }
}

fn read_payload(arg: &str) -> Result<Vec<u8>> {
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::Invalid(format!("cannot read the payload from stdin: {e}")))?;
        Ok(buf)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read the payload file {path}: {e}")))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

fn check_json(payload: &[u8], what: &str) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| {
            Error::Invalid(format!(
                "{what} is not valid JSON ({e}) — fix it, or pass --raw to send the bytes as they are"
            ))
        })
}

fn spec(args: &EnqueueArgs, payload: Vec<u8>) -> TaskSpec {
    let mut s = TaskSpec::new(&args.kind, payload).priority(args.priority);
    if let Some(d) = args.delay {
        s = s.delay(d);
    }
    if let Some(n) = args.max_attempts {
        s = s.max_attempts(n);
    }
    if let Some(t) = args.timeout {
        s = s.timeout(t);
    }
    s
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-"),
    );
    pb
}

async fn enqueue(client: &Client, args: EnqueueArgs, json: bool) -> Result<i32> {
    let queue = client.queue(&args.queue.queue)?;
    if let Some(path) = &args.from_file {
        return enqueue_file(&queue, &args, path, json).await;
    }
    let payload = read_payload(args.payload.as_deref().unwrap_or(""))?;
    if !args.raw {
        check_json(&payload, "the payload")?;
    }
    let mut s = spec(&args, payload);
    if let Some(k) = &args.idempotency_key {
        s = s.idempotency_key(k);
    }
    let e = queue.enqueue(s).await?;
    if !e.created {
        eprintln!(
            "baton: idempotency key already used: task {} exists, nothing new enqueued",
            e.id
        );
    }
    match args.wait {
        None => {
            if json {
                println!("{}", serde_json::json!({"id": e.id, "created": e.created}));
            } else {
                println!("{}", e.id);
            }
            Ok(exit::OK)
        }
        Some(wait) => {
            eprintln!("{}", e.id);
            result(&queue, &e.id, Some(wait)).await
        }
    }
}

async fn enqueue_file(queue: &Queue, args: &EnqueueArgs, path: &std::path::Path, json: bool) -> Result<i32> {
    if args.idempotency_key.is_some() {
        return Err(Error::Invalid(
            "--idempotency-key applies to one task; it cannot be used with --from-file".into(),
        ));
    }
    let text =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    // Validate every line first: a bad line enqueues nothing.
    let mut payloads = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if !args.raw {
            check_json(line, &format!("line {} of {}", i + 1, path.display()))?;
        }
        payloads.push(line.to_vec());
    }
    let pb = bar(payloads.len() as u64, "enqueue");
    let mut ids = Vec::with_capacity(payloads.len());
    let mut out = std::io::stdout().lock();
    for chunk in payloads.chunks(1000) {
        let specs = chunk.iter().map(|p| spec(args, p.clone())).collect();
        for e in queue.enqueue_batch(specs).await? {
            if !json {
                let _ = writeln!(out, "{}", e.id);
            }
            ids.push(e.id);
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(&ids).unwrap_or_default());
    }
    let _ = out.flush();
    eprintln!("enqueued {} tasks on {}", ids.len(), queue.name());
    if let Some(wait) = args.wait {
        let pb = bar(ids.len() as u64, "wait   ");
        let summary = queue.wait_many(&ids, wait, |n| pb.set_position(n)).await?;
        pb.finish_and_clear();
        eprintln!(
            "done {}, dead {}, cancelled {}, missing {}, unfinished {}",
            summary.done, summary.dead, summary.cancelled, summary.missing, summary.unfinished
        );
        return Ok(if summary.unfinished > 0 {
            exit::NOT_FINISHED
        } else if summary.dead > 0 {
            exit::DEAD
        } else if summary.cancelled > 0 {
            exit::CANCELLED
        } else {
            exit::OK
        });
    }
    Ok(exit::OK)
}

fn ms_ago(at_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if at_ms > now {
        format!(
            "in {}",
            humantime::format_duration(Duration::from_millis((at_ms - now) / 1000 * 1000))
        )
    } else {
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_millis((now - at_ms) / 1000 * 1000))
        )
    }
}

async fn events(queue: &Queue, follow: bool, last: usize, after: Option<String>, json: bool) -> Result<i32> {
    use futures_util::StreamExt;
    let print = |e: &crate::Event| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let at = chrono::DateTime::from_timestamp_millis(e.at_ms as i64)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            let tasks: Vec<String> = e
                .tasks
                .iter()
                .map(|t| format!("{}#{}", t.id, t.attempt))
                .collect();
            println!(
                "{at}  {:<10} {}  {}  worker={}  {}",
                e.kind,
                e.id,
                e.queue,
                e.worker.as_deref().unwrap_or("-"),
                tasks.join(" ")
            );
        }
    };
    // Past events first, then (with --follow) the stream from the last one printed.
    let past = match &after {
        Some(id) => queue.events_after(id, 10_000).await?,
        None if last > 0 => queue.recent_events(last).await?,
        None => Vec::new(),
    };
    past.iter().for_each(print);
    if !follow {
        return Ok(exit::OK);
    }
    let since = match past.last().map(|e| e.id.clone()).or(after) {
        Some(id) => crate::events::Since::After(id),
        None => crate::events::Since::Now,
    };
    let stream = queue.events(since).await?;
    let mut stream = std::pin::pin!(stream);
    use std::io::Write;
    while let Some(e) = stream.next().await {
        print(&e?);
        let _ = std::io::stdout().flush();
    }
    Ok(exit::OK)
}

async fn status(queue: &Queue, id: &str, json: bool) -> Result<i32> {
    let Some(t) = queue.get(id).await? else {
        eprintln!(
            "baton: no task {id} on queue {} (never enqueued, or dropped after its retention)",
            queue.name()
        );
        return Ok(exit::NOT_FOUND);
    };
    if json {
        println!("{}", t.to_json());
        return Ok(exit::OK);
    }
    println!("task      {}", t.id);
    println!("queue     {}", t.queue);
    println!("state     {}", t.state);
    println!("kind      {}", t.record.kind);
    println!("priority  {}", t.record.priority);
    println!("attempts  {} of {}", t.attempts, t.record.max_attempts);
    println!("created   {}", ms_ago(t.record.created_ms));
    if let Some(l) = &t.lease {
        println!(
            "lease     worker {} token {} (expires {})",
            l.worker,
            l.token,
            ms_ago(l.deadline_ms)
        );
    }
    match (t.state, t.due_or_expiry_ms) {
        (State::Delayed, Some(at)) => println!("runs      {}", ms_ago(at)),
        (s, Some(at)) if s.is_final() => println!("dropped   {}", ms_ago(at)),
        _ => {}
    }
    if let Some(e) = &t.last_error {
        println!(
            "error     attempt {}, {}: {}",
            e.attempt,
            ms_ago(e.at_ms),
            e.message
        );
    }
    let payload = String::from_utf8_lossy(&t.record.payload);
    println!("payload   {}", payload.chars().take(500).collect::<String>());
    if let Some(r) = &t.result {
        println!(
            "result    {}",
            String::from_utf8_lossy(r).chars().take(500).collect::<String>()
        );
    }
    Ok(exit::OK)
}

async fn result(queue: &Queue, id: &str, wait: Option<Duration>) -> Result<i32> {
    let outcome = match wait {
        Some(w) => queue.wait(id, w).await,
        None => match queue.get(id).await? {
            None => Err(Error::NotFound {
                queue: queue.name().into(),
                id: id.into(),
            }),
            Some(t) => match t.state {
                State::Done => Ok(Outcome::Done(t.result.unwrap_or_default())),
                State::Dead => Ok(Outcome::Dead(t.last_error.map(|e| e.message).unwrap_or_default())),
                State::Cancelled => Ok(Outcome::Cancelled),
                s => Err(Error::WaitTimeout {
                    queue: queue.name().into(),
                    id: id.into(),
                    waited: Duration::ZERO,
                    state: s.to_string(),
                }),
            },
        },
    };
    match outcome {
        Ok(Outcome::Done(r)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&r);
            let _ = out.flush();
            Ok(exit::OK)
        }
        Ok(Outcome::Dead(e)) => {
            eprintln!("baton: task {id} is dead: {e}");
            Ok(exit::DEAD)
        }
        Ok(Outcome::Cancelled) => {
            eprintln!("baton: task {id} was cancelled");
            Ok(exit::CANCELLED)
        }
        Err(e @ Error::WaitTimeout { .. }) => {
            eprintln!("baton: {e}");
            Ok(exit::NOT_FINISHED)
        }
        Err(e @ Error::NotFound { .. }) => {
            eprintln!("baton: {e}");
            Ok(exit::NOT_FOUND)
        }
        Err(e) => Err(e),
    }
}

async fn stats(client: &Client, queue: Option<String>, sample: Duration, json: bool) -> Result<i32> {
    let names = match &queue {
        Some(q) => vec![q.clone()],
        None => client.config().scheduler_queues(),
    };
    let queues = names
        .iter()
        .map(|n| client.queue(n))
        .collect::<Result<Vec<_>>>()?;
    let mut first = Vec::new();
    for q in &queues {
        first.push(q.counts().await?);
    }
    let t0 = Instant::now();
    let mut rows = Vec::new();
    if !sample.is_zero() {
        tokio::time::sleep(sample).await;
    }
    let mut per_worker = std::collections::HashMap::new();
    for q in &queues {
        per_worker.insert(q.name().to_string(), q.workers(1000).await?);
    }
    for (q, before) in queues.iter().zip(first) {
        let c = if sample.is_zero() {
            before
        } else {
            q.counts().await?
        };
        let secs = t0.elapsed().as_secs_f64();
        let rate = if sample.is_zero() {
            None
        } else {
            Some((c.completed_total - before.completed_total) as f64 / secs)
        };
        rows.push((q.name().to_string(), c, rate));
    }
    let row_json = |(name, c, rate): &(String, crate::Counts, Option<f64>)| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        if let Some(list) = per_worker.get(name) {
            let total: u64 = list.iter().map(|w| w.completed).sum();
            v["per_worker"] = serde_json::Value::Array(list.iter().map(|w| worker_json(w, total)).collect());
        }
        v["queue"] = serde_json::json!(name);
        v["throughput_per_s"] = serde_json::json!(rate.map(|r| (r * 10.0).round() / 10.0));
        v
    };
    if json {
        if queue.is_some() {
            println!("{}", row_json(&rows[0]));
        } else {
            let map: serde_json::Map<String, serde_json::Value> =
                rows.iter().map(|r| (r.0.clone(), row_json(r))).collect();
            println!("{}", serde_json::Value::Object(map));
        }
        return Ok(exit::OK);
    }
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7} {:>10} {:>12}",
        "QUEUE",
        "PENDING",
        "DELAYED",
        "LEASED",
        "DONE",
        "DEAD",
        "CANCELLED",
        "WORKERS",
        "COMPLETED",
        "TASKS/S"
    );
    for (name, c, rate) in &rows {
        println!(
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7} {:>10} {:>12}{}",
            name,
            c.pending,
            c.delayed,
            c.leased,
            c.done,
            c.dead,
            c.cancelled,
            c.workers,
            c.completed_total,
            rate.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into()),
            if c.paused { "  (paused)" } else { "" }
        );
    }
    // one queue: how its work spreads over the workers
    if let [(name, _, _)] = &rows[..] {
        if let Some(list) = per_worker.get(name).filter(|l| !l.is_empty()) {
            println!();
            print_workers(list);
        }
    }
    Ok(exit::OK)
}

/// One worker as JSON: its registered description plus the registry's counters.
fn worker_json(w: &crate::WorkerInfo, total_completed: u64) -> serde_json::Value {
    let mut v = match &w.info {
        serde_json::Value::Object(o) => serde_json::Value::Object(o.clone()),
        _ => serde_json::json!({}),
    };
    v["id"] = serde_json::json!(w.id);
    v["last_seen_ms"] = serde_json::json!(w.last_seen.as_millis() as u64);
    v["inflight"] = serde_json::json!(w.inflight);
    v["assigned"] = serde_json::json!(w.assigned);
    v["completed"] = serde_json::json!(w.completed);
    v["failed"] = serde_json::json!(w.failed);
    v["busy_ms"] = serde_json::json!(w.busy_ms);
    let attempts = w.completed + w.failed;
    v["mean_exec_ms"] = serde_json::json!((attempts > 0).then(|| w.busy_ms as f64 / attempts as f64));
    v["share"] =
        serde_json::json!((total_completed > 0).then(|| w.completed as f64 / total_completed as f64));
    for k in ["weight", "capacity"] {
        if v.get(k).is_none() {
            v[k] = serde_json::json!(null);
        }
    }
    v
}

fn print_workers(list: &[crate::WorkerInfo]) {
    let total: u64 = list.iter().map(|w| w.completed).sum();
    println!(
        "{:<40} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6} {:>10} {:>9}",
        "WORKER",
        "WEIGHT",
        "CAPACITY",
        "INFLIGHT",
        "ASSIGNED",
        "COMPLETED",
        "FAILED",
        "SHARE",
        "MEAN EXEC",
        "LAST SEEN"
    );
    for w in list {
        let v = worker_json(w, total);
        let num = |k: &str| {
            v.get(k)
                .filter(|x| !x.is_null())
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into())
        };
        let share = v["share"]
            .as_f64()
            .map(|s| format!("{:.1}%", s * 100.0))
            .unwrap_or_else(|| "-".into());
        let mean = v["mean_exec_ms"]
            .as_f64()
            .map(|m| format!("{m:.1}ms"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6} {:>10} {:>7}ms",
            w.id,
            num("weight"),
            num("capacity"),
            w.inflight,
            w.assigned,
            w.completed,
            w.failed,
            share,
            mean,
            w.last_seen.as_millis()
        );
    }
}

async fn workers(queue: &Queue, json: bool) -> Result<i32> {
    let list = queue.workers(1000).await?;
    if json {
        let total: u64 = list.iter().map(|w| w.completed).sum();
        let arr: Vec<serde_json::Value> = list.iter().map(|w| worker_json(w, total)).collect();
        println!("{}", serde_json::Value::Array(arr));
        return Ok(exit::OK);
    }
    print_workers(&list);
    if list.is_empty() {
        eprintln!("no worker registered on queue {}", queue.name());
    }
    Ok(exit::OK)
}

async fn dead(client: &Client, action: DeadAction, json: bool) -> Result<i32> {
    match action {
        DeadAction::List { queue, limit } => {
            let q = client.queue(&queue.queue)?;
            let ids = q.dead_ids(limit.clamp(1, 10_000)).await?;
            let mut tasks = Vec::new();
            for id in &ids {
                if let Some(t) = q.get(id).await? {
                    tasks.push(t);
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(tasks.iter().map(Task::to_json).collect())
                );
            } else {
                for t in &tasks {
                    let err = t.last_error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
                    println!("{}  {}  attempts {}  {}", t.id, t.record.kind, t.attempts, err);
                }
                if tasks.is_empty() {
                    eprintln!("the dead-letter set of {} is empty", q.name());
                }
            }
            Ok(exit::OK)
        }
        DeadAction::Requeue { queue, ids, all } | DeadAction::Purge { queue, ids, all }
            if !all && ids.is_empty() =>
        {
            let _ = queue;
            Err(Error::Invalid("name the task ids, or pass --all".into()))
        }
        DeadAction::Requeue { queue, ids, all } => {
            let q = client.queue(&queue.queue)?;
            let n = if all {
                drain(&q, "requeue", |q| {
                    Box::pin(async move { q.requeue_oldest_dead(1000).await })
                })
                .await?
            } else {
                q.requeue_dead(&ids.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                    .await?
            };
            report(json, "requeued", n);
            Ok(exit::OK)
        }
        DeadAction::Purge { queue, ids, all } => {
            let q = client.queue(&queue.queue)?;
            let n = if all {
                drain(&q, "purge", |q| {
                    Box::pin(async move { q.purge_oldest_dead(1000).await })
                })
                .await?
            } else {
                q.purge_dead(&ids.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                    .await?
            };
            report(json, "purged", n);
            Ok(exit::OK)
        }
    }
}

type Step<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + 'a>>;

/// Repeat a bounded batch operation on the dead-letter set until it is empty, with progress.
async fn drain<'a>(q: &'a Queue, what: &str, step: impl Fn(&'a Queue) -> Step<'a>) -> Result<u64> {
    let total = q.counts().await?.dead;
    let pb = bar(total, what);
    let mut n = 0;
    loop {
        let k = step(q).await?;
        n += k;
        pb.set_position(n.min(total));
        if k == 0 || n >= total {
            break;
        }
    }
    pb.finish_and_clear();
    Ok(n)
}

fn report(json: bool, what: &str, n: u64) {
    if json {
        println!("{}", serde_json::json!({ what: n }));
    } else {
        println!("{what} {n}");
    }
}

async fn pause(queue: &Queue, paused: bool, json: bool) -> Result<i32> {
    let was = queue.set_paused(paused).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"queue": queue.name(), "paused": paused, "was_paused": was})
        );
    } else {
        let now = if paused { "paused" } else { "running" };
        let before = if was { "paused" } else { "running" };
        println!("queue {}: {now} (was {before})", queue.name());
    }
    Ok(exit::OK)
}

async fn cancel(queue: &Queue, ids: &[String], json: bool) -> Result<i32> {
    let refs: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let out = queue.cancel(&refs).await?;
    let all = out.iter().all(|s| s.is_some());
    if json {
        let v: Vec<serde_json::Value> = ids
            .iter()
            .zip(&out)
            .map(|(id, s)| serde_json::json!({"id": id, "cancelled_from": s.map(|s| s.as_str())}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (id, s) in ids.iter().zip(&out) {
            match s {
                Some(s) => println!("{id}: cancelled (was {s})"),
                None => println!("{id}: not cancelled (unknown, or already finished)"),
            }
        }
    }
    Ok(if all { exit::OK } else { exit::ERROR })
}

/// The manifest with each script's SHA1 added (what other-language clients vendor).
fn manifest_with_shas() -> serde_json::Value {
    let mut m: serde_json::Value = serde_json::from_str(crate::manifest::text()).unwrap_or_default();
    for name in crate::scripts::ScriptName::ALL {
        m["scripts"][name.file_stem()]["sha1"] = serde_json::json!(name.script().sha);
    }
    m
}

fn scripts(action: &ScriptsAction, json: bool) -> Result<i32> {
    let m = crate::manifest::get();
    match action {
        ScriptsAction::List => {
            if json {
                println!("{}", manifest_with_shas()["scripts"]);
                return Ok(exit::OK);
            }
            println!("{:<12} {:>7} {:<40} READ-ONLY", "SCRIPT", "VERSION", "SHA1");
            for name in crate::scripts::ScriptName::ALL {
                let spec = &m.scripts[name.file_stem()];
                println!(
                    "{:<12} {:>7} {:<40} {}",
                    name.file_stem(),
                    spec.version,
                    name.script().sha,
                    if spec.read_only { "yes" } else { "" }
                );
            }
            println!("data schema version {}", m.schema_version);
            Ok(exit::OK)
        }
        ScriptsAction::Dump { dir } => {
            let io = |e: std::io::Error| Error::Invalid(format!("cannot write to {}: {e}", dir.display()));
            std::fs::create_dir_all(dir).map_err(io)?;
            for name in crate::scripts::ScriptName::ALL {
                let s = name.script();
                std::fs::write(dir.join(format!("{}.lua", name.file_stem())), &s.body).map_err(io)?;
            }
            let text = serde_json::to_string_pretty(&manifest_with_shas()).unwrap_or_default();
            std::fs::write(dir.join("manifest.json"), text + "\n").map_err(io)?;
            eprintln!(
                "wrote {} scripts and manifest.json to {}",
                crate::scripts::ScriptName::ALL.len(),
                dir.display()
            );
            Ok(exit::OK)
        }
    }
}
