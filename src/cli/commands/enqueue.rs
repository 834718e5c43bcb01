//! `baton enqueue`: one task from the command line, or one per line of a file.

use super::*;

pub(super) fn read_payload(arg: &str) -> Result<Vec<u8>> {
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

pub(super) fn check_json(payload: &[u8], what: &str) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| {
            Error::Invalid(format!(
                "{what} is not valid JSON ({e}) — fix it, or pass --raw to send the bytes as they are"
            ))
        })
}

pub(super) fn spec(args: &EnqueueArgs, payload: Vec<u8>) -> TaskSpec {
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
    if let Some(d) = args.expires_in {
        s = s.expires_in(d);
    }
    if let Some(c) = args.cost {
        s = s.cost(c);
    }
    if !args.after.is_empty() {
        s = s.after(args.after.iter().cloned()).on_failure(args.on_failure);
    }
    if let Some(g) = &args.group {
        s = s.group(g);
    }
    s
}

pub(super) async fn enqueue(client: &Client, args: EnqueueArgs, json: bool) -> Result<i32> {
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
    if let (Some(k), Some(w)) = (&args.throttle, args.window) {
        s = s.throttle(k, w);
    }
    if let Some(k) = &args.unique {
        s = s.unique(k);
    }
    if let (Some(k), Some(w), Some(m)) = (&args.debounce, args.window, args.max_wait) {
        s = s.debounce(k, w, m);
    }
    if args.window.is_some() && args.throttle.is_none() && args.debounce.is_none() {
        return Err(Error::Invalid(
            "--window goes with --throttle KEY or --debounce KEY".into(),
        ));
    }
    let e = queue.enqueue(s).await?;
    if e.debounced {
        eprintln!(
            "baton: debounced into task {}: it takes this payload and runs later (within --max-wait of its first enqueue)",
            e.id
        );
    } else if e.unique_held {
        eprintln!(
            "baton: unique key held: task {} is still pending, delayed or running; nothing new enqueued",
            e.id
        );
    } else if e.forgotten {
        eprintln!(
            "baton: idempotency key already used by task {}, which has finished and is no longer kept (its result_ttl is shorter than the key's idempotency_ttl); nothing new enqueued — use a new key, or keep results as long as keys",
            e.id
        );
    } else if !e.created && args.throttle.is_some() {
        eprintln!(
            "baton: throttled: task {} was enqueued with this key within the window; nothing new enqueued",
            e.id
        );
    } else if !e.created {
        eprintln!(
            "baton: idempotency key already used: task {} exists, nothing new enqueued",
            e.id
        );
    }
    match args.wait {
        None => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": e.id, "created": e.created, "forgotten": e.forgotten, "unique_held": e.unique_held, "debounced": e.debounced})
                );
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

pub(super) async fn enqueue_file(
    queue: &Queue,
    args: &EnqueueArgs,
    path: &std::path::Path,
    json: bool,
) -> Result<i32> {
    if args.idempotency_key.is_some()
        || args.unique.is_some()
        || args.throttle.is_some()
        || args.debounce.is_some()
    {
        return Err(Error::Invalid(
            "--idempotency-key, --unique, --throttle and --debounce apply to one task; they cannot be used with --from-file".into(),
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
