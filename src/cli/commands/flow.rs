//! `baton flow`: submit a flow from a JSON file, show a flow's state, seal or cancel one.

use super::*;
use crate::client::Flow;
use crate::task::OnFailure;
use serde::Deserialize;

/// A flow file (docs/workflows.md, "Flow files").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    /// The flow's id (default: a new ULID); submitting the same id again changes nothing.
    id: Option<String>,
    /// The queue (default: -q).
    queue: Option<String>,
    tasks: Vec<FileTask>,
    on_success: Option<FileCallback>,
    on_complete: Option<FileCallback>,
    on_death: Option<FileCallback>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTask {
    name: String,
    /// Another queue for this task (default: the flow's).
    queue: Option<String>,
    kind: String,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    after: Vec<String>,
    on_failure: Option<String>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
    group: Option<String>,
    cost: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCallback {
    kind: String,
    #[serde(default)]
    payload: serde_json::Value,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
    group: Option<String>,
    cost: Option<u32>,
}

/// What a task or callback may set besides its kind and payload.
struct Settings {
    priority: Option<i32>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
    group: Option<String>,
    cost: Option<u32>,
}

/// A payload as the file gives it: a JSON string is sent as its text, anything else as JSON.
fn payload(v: &serde_json::Value) -> Vec<u8> {
    match v {
        serde_json::Value::String(s) => s.clone().into_bytes(),
        serde_json::Value::Null => Vec::new(),
        v => v.to_string().into_bytes(),
    }
}

fn spec(what: &str, kind: &str, p: &serde_json::Value, s: &Settings) -> Result<TaskSpec> {
    let mut t = TaskSpec::new(kind, payload(p));
    if let Some(p) = s.priority {
        t = t.priority(p);
    }
    if let Some(n) = s.max_attempts {
        t = t.max_attempts(n);
    }
    if let Some(d) = &s.timeout {
        let d = humantime::parse_duration(d).map_err(|e| {
            Error::Invalid(format!(
                "{what}: timeout {d:?} is not a duration ({e}); write e.g. \"30s\""
            ))
        })?;
        t = t.timeout(d);
    }
    if let Some(g) = &s.group {
        t = t.group(g);
    }
    if let Some(c) = s.cost {
        t = t.cost(c);
    }
    Ok(t)
}

fn read_flow(path: &str, default_queue: &str) -> Result<(String, Flow)> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::Invalid(format!("cannot read the flow from standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read flow file {path}: {e}")))?
    };
    let f: FlowFile = serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "flow file {path}: {e} (a flow file is {{\"tasks\": [{{\"name\", \"kind\", \"payload\", \"after\", \"on_failure\"...}}], \"on_success\"...}}: docs/workflows.md)"
        ))
    })?;
    let home = f.queue.clone().unwrap_or_else(|| default_queue.to_string());
    let mut flow = Flow::new();
    if let Some(id) = f.id {
        flow = flow.id(id);
    }
    for t in &f.tasks {
        let what = format!("flow file {path}, task {}", t.name);
        let set = Settings {
            priority: t.priority,
            max_attempts: t.max_attempts,
            timeout: t.timeout.clone(),
            group: t.group.clone(),
            cost: t.cost,
        };
        let mut s = spec(&what, &t.kind, &t.payload, &set)?;
        if !t.after.is_empty() {
            s = s.after(t.after.clone());
        }
        if let Some(p) = &t.on_failure {
            s = s.on_failure(
                OnFailure::parse(p).map_err(|e| Error::Invalid(format!("{what}: on_failure {e}")))?,
            );
        }
        flow = match &t.queue {
            Some(q) if *q != home => flow.task_in(q, &t.name, s),
            _ => flow.task(&t.name, s),
        };
    }
    let cbs = [
        ("on_success", &f.on_success),
        ("on_complete", &f.on_complete),
        ("on_death", &f.on_death),
    ];
    for (event, cb) in cbs {
        if let Some(cb) = cb {
            let set = Settings {
                priority: cb.priority,
                max_attempts: cb.max_attempts,
                timeout: cb.timeout.clone(),
                group: cb.group.clone(),
                cost: cb.cost,
            };
            let s = spec(&format!("flow file {path}, {event}"), &cb.kind, &cb.payload, &set)?;
            flow = match event {
                "on_success" => flow.on_success(s),
                "on_complete" => flow.on_complete(s),
                _ => flow.on_death(s),
            };
        }
    }
    Ok((home, flow))
}

pub(super) async fn flow(client: &Client, action: FlowAction, json: bool) -> Result<i32> {
    match action {
        FlowAction::Submit { queue, file } => {
            let (qname, flow) = read_flow(&file, &queue.queue)?;
            let q = client.queue(&qname)?;
            let n = flow.len();
            let sub = q.flow(flow).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": sub.id, "queue": qname, "tasks": n, "created": sub.created})
                );
            } else {
                if !sub.created {
                    eprintln!(
                        "flow {} existed already on queue {qname}: nothing new was stored",
                        sub.id
                    );
                }
                println!("{}", sub.id);
            }
            Ok(exit::OK)
        }
        FlowAction::Status { queue, id } => {
            let q = client.queue(&queue.queue)?;
            let Some(st) = q.flow_members(&id).await? else {
                eprintln!(
                    "no flow {id} on queue {} (never submitted, or it ended and is no longer kept)",
                    q.name()
                );
                return Ok(exit::NOT_FOUND);
            };
            if json {
                let members: Vec<_> = st
                    .members
                    .iter()
                    .map(|m| {
                        serde_json::json!({"id": m.id, "name": m.name, "state": m.state.map(|s| s.as_str())})
                    })
                    .collect();
                let fired: serde_json::Map<String, serde_json::Value> = st
                    .fired
                    .iter()
                    .map(|(e, id)| (e.as_str().to_string(), serde_json::Value::from(id.clone())))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "id": id, "queue": q.name(), "state": st.state.as_str(), "gated": st.gated,
                        "total": st.total, "done": st.done, "dead": st.dead, "cancelled": st.cancelled,
                        "created_ms": st.created_ms, "ended_ms": st.ended_ms,
                        "first_death": st.first_death, "callbacks": fired, "tasks": members,
                    })
                );
                return Ok(exit::OK);
            }
            println!(
                "flow {id} on queue {}: {} — {} tasks: {} done, {} dead, {} cancelled, {} not finished",
                q.name(),
                st.state.as_str(),
                st.total,
                st.done,
                st.dead,
                st.cancelled,
                st.total.saturating_sub(st.done + st.dead + st.cancelled)
            );
            if let Some(d) = &st.first_death {
                println!("first death: {d}");
            }
            for (e, cb) in &st.fired {
                println!("callback {}: {cb}", e.as_str());
            }
            println!("{:<32} {:<10}  ID", "NAME", "STATE");
            for m in &st.members {
                println!(
                    "{:<32} {:<10}  {}",
                    m.name.as_deref().unwrap_or("-"),
                    m.state.map(|s| s.as_str()).unwrap_or("gone"),
                    m.id
                );
            }
            Ok(exit::OK)
        }
        FlowAction::Seal { queue, id } => {
            let s = client.queue(&queue.queue)?.seal_flow(&id).await?;
            println!("flow {id}: {} -> {}", s.before.as_str(), s.after.as_str());
            Ok(exit::OK)
        }
        FlowAction::Cancel { queue, id } => {
            let c = client.queue(&queue.queue)?.cancel_flow(&id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "state": c.sealed.after.as_str(), "cancelled": c.cancelled})
                );
            } else {
                println!(
                    "flow {id}: {} -> {}; {} task(s) cancelled",
                    c.sealed.before.as_str(),
                    c.sealed.after.as_str(),
                    c.cancelled
                );
            }
            Ok(exit::OK)
        }
    }
}
