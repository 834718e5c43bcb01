//! `baton stats` (counts and throughput per queue) and `baton workers` (the registry).

use super::*;

pub(super) async fn stats(
    client: &Client,
    queue: Option<String>,
    sample: Duration,
    json: bool,
) -> Result<i32> {
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
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7} {:>10} {:>12}{}{}{}",
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
            if c.paused { "  (paused)" } else { "" },
            if c.aging_ms > 0 {
                format!(
                    "  (aging {})",
                    humantime::format_duration(std::time::Duration::from_millis(c.aging_ms))
                )
            } else {
                String::new()
            },
            limits_note(c)
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
pub(super) fn worker_json(w: &crate::WorkerInfo, total_completed: u64) -> serde_json::Value {
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

pub(super) fn print_workers(list: &[crate::WorkerInfo]) {
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

pub(super) async fn workers(queue: &Queue, json: bool) -> Result<i32> {
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

/// The queue's limits in force, and its tasks waiting for dependencies, for the stats table:
/// "  (rate 200/s burst 50, concurrency 7/100, per group rate 10/s burst 1 concurrency 2, held by
/// rate, 12 waiting for dependencies)"; empty when there is none of that.
fn limits_note(c: &crate::Counts) -> String {
    let mut parts = Vec::new();
    if c.rate_interval_us > 0 {
        let r = crate::flow::per_second_of_interval(c.rate_interval_us);
        parts.push(format!(
            "rate {}/s burst {}",
            (r * 100.0).round() / 100.0,
            c.burst
        ));
    }
    if c.concurrency > 0 {
        parts.push(format!("concurrency {}/{}", c.running, c.concurrency));
    }
    let mut per_group = Vec::new();
    if c.group_rate_interval_us > 0 {
        let r = crate::flow::per_second_of_interval(c.group_rate_interval_us);
        per_group.push(format!(
            "rate {}/s burst {}",
            (r * 100.0).round() / 100.0,
            c.group_burst
        ));
    }
    if c.group_concurrency > 0 {
        per_group.push(format!("concurrency {}", c.group_concurrency));
    }
    if !per_group.is_empty() {
        parts.push(format!("per group {}", per_group.join(" ")));
    }
    if let Some(h) = c.held_by {
        parts.push(format!("held by {h}"));
    }
    if c.waiting > 0 {
        parts.push(format!("{} waiting for dependencies", c.waiting));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  ({})", parts.join(", "))
    }
}
