//! Looking at tasks: `baton status`, `baton result`, `baton events`.

use super::*;

pub(super) fn ms_ago(at_ms: u64) -> String {
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

pub(super) async fn events(
    queue: &Queue,
    follow: bool,
    last: usize,
    after: Option<String>,
    json: bool,
) -> Result<i32> {
    use futures_util::StreamExt;
    let print = |e: &crate::Event| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let at = chrono::DateTime::from_timestamp_millis(e.at_ms as i64)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            let tasks: Vec<String> = e.tasks.iter().map(|t| format!("{}#{}", t.id, t.run)).collect();
            let detail = match (e.kind.as_str(), &e.detail) {
                ("progress", Some(d)) => match d.split_once('|') {
                    Some((pct, "")) => format!("  {pct}%"),
                    Some((pct, msg)) => format!("  {pct}%: {msg}"),
                    None => format!("  {d}"),
                },
                (_, Some(d)) => format!("  {d}"),
                _ => String::new(),
            };
            println!(
                "{at}  {:<10} {}  {}  worker={}  {}{detail}",
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

pub(super) async fn status(queue: &Queue, id: &str, json: bool) -> Result<i32> {
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
    let strays = t.record.strays;
    let before_requeue = t.runs().saturating_sub(t.attempts + strays);
    let mut why = Vec::new();
    if strays > 0 {
        why.push(format!(
            "{strays} lease(s) expired before the run started, not charged"
        ));
    }
    if before_requeue > 0 {
        why.push(format!("{before_requeue} before the last requeue"));
    }
    if why.is_empty() {
        println!("attempts  {} of {}", t.attempts, t.record.max_attempts);
    } else {
        println!(
            "attempts  {} of {} ({} runs in all: {})",
            t.attempts,
            t.record.max_attempts,
            t.runs(),
            why.join("; ")
        );
    }
    println!("created   {}", ms_ago(t.record.created_ms));
    if let Some(at) = t.record.expires_ms {
        println!("expires   {} (no run starts after that)", ms_ago(at));
    }
    if let Some(l) = &t.lease {
        println!(
            "lease     worker {} token {} (expires {})",
            l.worker,
            l.token,
            ms_ago(l.deadline_ms)
        );
    }
    if let Some(p) = &t.progress {
        let whose = match t.state {
            State::Leased if p.current_run => "",
            State::Leased | State::Pending | State::Delayed => ", from an earlier run",
            _ => ", last reported",
        };
        let note = if p.message.is_empty() {
            String::new()
        } else {
            format!(": {}", p.message)
        };
        println!("progress  {}%{note} ({}{whose})", p.percent, ms_ago(p.at_ms));
    }
    match (t.state, t.due_or_expiry_ms) {
        (State::Delayed, Some(at)) => println!("runs      {}", ms_ago(at)),
        (s, Some(at)) if s.is_final() => println!("dropped   {}", ms_ago(at)),
        _ => {}
    }
    if let Some(e) = &t.last_error {
        println!("error     run {}, {}: {}", e.run, ms_ago(e.at_ms), e.message);
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

pub(super) async fn result(queue: &Queue, id: &str, wait: Option<Duration>) -> Result<i32> {
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
