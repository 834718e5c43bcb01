//! The dead-letter set (`baton dead ...`), `baton pause`/`resume` and `baton cancel`.

use super::*;

pub(super) async fn dead(client: &Client, action: DeadAction, json: bool) -> Result<i32> {
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

pub(super) type Step<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + 'a>>;

/// Repeat a bounded batch operation on the dead-letter set until it is empty, with progress.
pub(super) async fn drain<'a>(q: &'a Queue, what: &str, step: impl Fn(&'a Queue) -> Step<'a>) -> Result<u64> {
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

pub(super) async fn pause(queue: &Queue, paused: bool, json: bool) -> Result<i32> {
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

pub(super) async fn cancel(queue: &Queue, ids: &[String], json: bool) -> Result<i32> {
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
