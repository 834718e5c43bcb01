//! The scheduler's HTTP side (`[scheduler] http`): the dashboard at `/` (one embedded page, no
//! CDN), its JSON API under `/api`, and Prometheus metrics at `/metrics`.
//!
//! Reads need nothing; actions that change state (requeue, purge, pause, resume) need
//! `Authorization: Bearer <[scheduler] http_token>` and are refused (403) when no token is set.

use super::observe::History;
use crate::client::Queue;
use crate::error::Error;
use crate::metrics::Page;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const DASHBOARD: &str = include_str!("dashboard.html");

/// What the handlers share.
pub struct Web {
    pub queues: BTreeMap<String, Queue>,
    pub token: Option<String>,
    pub history: Arc<History>,
    pub prometheus: PrometheusHandle,
}

type Shared = Arc<Web>;

/// The router (served by `baton-scheduler`, and by tests directly).
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/overview", get(overview))
        .route("/api/queues/{q}/dead", get(dead))
        .route("/api/queues/{q}/tasks/{id}", get(task))
        .route("/api/queues/{q}/flows/{id}", get(flow))
        .route("/api/queues/{q}/{action}", post(action))
        .with_state(Arc::new(web))
}

/// An error reply: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::BadArgument { .. } | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

/// Groups read per queue for the metrics and the dashboard (those next in the fair order, then
/// those with settings), of which the largest backlogs are shown: a bounded label count.
const TOP_GROUPS_SCANNED: usize = 200;
const TOP_GROUPS_SHOWN: usize = 10;

/// The groups with the largest backlogs, at most TOP_GROUPS_SHOWN.
fn top_by_backlog(mut g: Vec<crate::ops::groups::GroupInfo>) -> Vec<crate::ops::groups::GroupInfo> {
    g.retain(|x| x.backlog > 0);
    g.sort_by(|a, b| b.backlog.cmp(&a.backlog).then_with(|| a.name.cmp(&b.name)));
    g.truncate(TOP_GROUPS_SHOWN);
    g
}

type CountsField = fn(&crate::task::Counts) -> u64;
type WorkerField = fn(&crate::client::WorkerInfo) -> f64;

type ApiResult = std::result::Result<Json<Value>, ApiError>;

fn queue<'a>(web: &'a Web, name: &str) -> std::result::Result<&'a Queue, ApiError> {
    web.queues.get(name).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("queue {name:?} is not maintained by this scheduler (see [scheduler] queues)"),
        )
    })
}

async fn overview(AxState(web): AxState<Shared>) -> ApiResult {
    let mut list = Vec::new();
    for q in web.queues.values() {
        let c = q.counts().await?;
        let groups = top_by_backlog(q.groups(TOP_GROUPS_SCANNED).await?);
        let workers = q.workers(200).await?;
        let total_done: u64 = workers.iter().map(|w| w.completed).sum();
        let alive_ms = q.settings().dispatch_liveness().as_millis() as u64;
        let workers: Vec<Value> = workers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id,
                    "alive": (w.last_seen.as_millis() as u64) < alive_ms,
                    "capacity": w.info.get("capacity").and_then(Value::as_u64)
                        .or_else(|| w.info.get("concurrency").and_then(Value::as_u64)),
                    "weight": w.info.get("weight").and_then(Value::as_u64).unwrap_or(1),
                    "inflight": w.inflight,
                    "completed": w.completed,
                    "failed": w.failed,
                    "share": if total_done == 0 { 0.0 } else { w.completed as f64 / total_done as f64 },
                })
            })
            .collect();
        list.push(json!({
            "name": q.name(),
            "paused": c.paused,
            "aging_ms": c.aging_ms,
            "limits": {
                "rate_per_s": (c.rate_interval_us > 0).then(|| crate::flow::per_second_of_interval(c.rate_interval_us)),
                "burst": c.burst,
                "concurrency": (c.concurrency > 0).then_some(c.concurrency),
                "running": c.running,
                "held_by": c.held_by,
            },
            "counts": {
                "pending": c.pending, "delayed": c.delayed, "waiting": c.waiting, "leased": c.leased,
                "done": c.done, "dead": c.dead, "cancelled": c.cancelled,
            },
            "totals": {
                "enqueued": c.enqueued_total, "completed": c.completed_total, "failed": c.failed_total,
                "retried": c.retried_total, "dead": c.dead_total, "reclaimed": c.expired_total,
                "lapsed": c.lapsed_total, "held_rate": c.held_rate_total,
                "held_concurrency": c.held_concurrency_total,
                "held_group_rate": c.held_group_rate_total,
                "held_group_concurrency": c.held_group_concurrency_total,
            },
            "groups": groups,
            "history": web.history.get(q.name()),
            "workers": workers,
        }));
    }
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "actions": web.token.is_some(),
        "queues": list,
    })))
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn dead(AxState(web): AxState<Shared>, Path(q): Path<String>, Query(l): Query<Limit>) -> ApiResult {
    let q = queue(&web, &q)?;
    let ids = q.dead_ids(l.limit.unwrap_or(50).clamp(1, 500)).await?;
    let tasks = futures_util::future::join_all(ids.iter().map(|id| q.get(id))).await;
    let mut out = Vec::new();
    for t in tasks {
        if let Some(t) = t? {
            out.push(json!({
                "id": t.id,
                "kind": t.record.kind,
                "attempts": t.attempts,
                "error": t.last_error.as_ref().map(|f| f.message.clone()),
                "finished_ms": t.last_error.as_ref().map(|f| f.at_ms),
            }));
        }
    }
    Ok(Json(json!({ "tasks": out })))
}

async fn task(AxState(web): AxState<Shared>, Path((q, id)): Path<(String, String)>) -> ApiResult {
    let queue = queue(&web, &q)?;
    match queue.get(&id).await? {
        Some(t) => Ok(Json(t.to_json())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no task {id} in queue {q} (never existed, or dropped after its retention)"),
        )),
    }
}

/// Members of a flow shown at once, each with what it waits for (one dependencies read each).
const FLOW_MEMBERS_SHOWN: usize = 200;

#[derive(serde::Deserialize)]
struct FlowPage {
    start: Option<usize>,
}

/// A flow or batch: its state and counts, the callbacks fired, and a page of its members with
/// their states and, by name where they are members too, the tasks each waits for.
async fn flow(
    AxState(web): AxState<Shared>,
    Path((q, id)): Path<(String, String)>,
    Query(p): Query<FlowPage>,
) -> ApiResult {
    let queue = queue(&web, &q)?;
    let start = p.start.unwrap_or(0);
    let Some(st) = queue.flow_status(&id, start, FLOW_MEMBERS_SHOWN).await? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no flow {id} in queue {q} (never opened, or ended and no longer kept)"),
        ));
    };
    let names: BTreeMap<&str, &str> = st
        .members
        .iter()
        .filter_map(|m| m.name.as_deref().map(|n| (m.id.as_str(), n)))
        .collect();
    // a dependency's own state when it is a member shown (the dependencies read says only
    // whether it finished)
    let states: BTreeMap<&str, Option<&str>> = st
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.state.map(|s| s.as_str())))
        .collect();
    let deps =
        futures_util::future::join_all(st.members.iter().map(|m| queue.member_dependencies(&m.id))).await;
    let mut members = Vec::with_capacity(st.members.len());
    for (m, d) in st.members.iter().zip(deps) {
        let after: Vec<Value> = d?
            .iter()
            // the gate of a flow submitted whole ("#<flow>") is the seal, not a task
            .filter(|d| !d.id.starts_with('#'))
            .map(|d| {
                let state = states
                    .get(d.id.as_str())
                    .copied()
                    .flatten()
                    .unwrap_or(d.state.as_str());
                json!({ "id": d.id, "name": names.get(d.id.as_str()), "state": state })
            })
            .collect();
        members.push(json!({
            "id": m.id,
            "name": m.name,
            "state": m.state.map(|s| s.as_str()),
            "after": after,
        }));
    }
    let fired: BTreeMap<&str, &str> = st.fired.iter().map(|(e, id)| (e.as_str(), id.as_str())).collect();
    Ok(Json(json!({
        "id": id,
        "queue": q,
        "state": st.state.as_str(),
        "gated": st.gated,
        "total": st.total,
        "done": st.done,
        "dead": st.dead,
        "cancelled": st.cancelled,
        "created_ms": st.created_ms,
        "ended_ms": (st.ended_ms > 0).then_some(st.ended_ms),
        "first_death": st.first_death,
        "fired": fired,
        "start": start,
        "members": members,
    })))
}

#[derive(serde::Deserialize, Default)]
struct Ids {
    #[serde(default)]
    ids: Vec<String>,
}

async fn action(
    AxState(web): AxState<Shared>,
    Path((q, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Ids>>,
) -> ApiResult {
    authorize(&web, &headers)?;
    let queue = queue(&web, &q)?;
    let ids = body.map(|Json(b)| b.ids).unwrap_or_default();
    let need_ids = || -> std::result::Result<Vec<&str>, ApiError> {
        if ids.is_empty() || ids.len() > 1000 {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "send {\"ids\": [...]} with 1 to 1000 task ids".into(),
            ));
        }
        Ok(ids.iter().map(String::as_str).collect())
    };
    let count = match action.as_str() {
        "requeue" => queue.requeue_dead(&need_ids()?).await?,
        "purge" => queue.purge_dead(&need_ids()?).await?,
        "pause" => {
            queue.set_paused(true).await?;
            0
        }
        "resume" => {
            queue.set_paused(false).await?;
            0
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: requeue, purge, pause or resume"),
            ))
        }
    };
    tracing::info!(queue = %q, action = %action, count, "dashboard action");
    Ok(Json(json!({ "ok": true, "count": count })))
}

/// Constant-time comparison of the presented bearer token with the configured one.
fn authorize(web: &Web, headers: &HeaderMap) -> std::result::Result<(), ApiError> {
    let Some(want) = &web.token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "actions disabled: set [scheduler] http_token to enable them".into(),
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = got.len() == want.len()
        && got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer <[scheduler] http_token>".into(),
        ))
    }
}

async fn metrics(AxState(web): AxState<Shared>) -> Response {
    let mut page = Page::new();
    let mut depth = Vec::new();
    let mut totals = Vec::new();
    let mut per_worker = Vec::new();
    let mut up = Vec::new();
    let mut backlog = Vec::new();
    for q in web.queues.values() {
        let (c, w, g) = match tokio::try_join!(q.counts(), q.workers(1000), q.groups(TOP_GROUPS_SCANNED)) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(queue = q.name(), error = %e, "metrics: queue state unavailable");
                up.push((q.name().to_string(), 0.0));
                continue;
            }
        };
        up.push((q.name().to_string(), 1.0));
        for (state, n) in [
            ("pending", c.pending),
            ("delayed", c.delayed),
            ("leased", c.leased),
            ("done", c.done),
            ("dead", c.dead),
            ("cancelled", c.cancelled),
        ] {
            depth.push((q.name().to_string(), state, n));
        }
        totals.push((q.name().to_string(), c));
        for gi in top_by_backlog(g) {
            backlog.push((q.name().to_string(), gi.name, gi.backlog));
        }
        for wi in w {
            per_worker.push((q.name().to_string(), wi));
        }
    }
    for (q, g, n) in &backlog {
        page.sample(
            "baton_group_backlog",
            "gauge",
            "Pending tasks of the queue's largest groups (fair queues; at most ten groups per queue)",
            &[("queue", q), ("group", g)],
            *n as f64,
        );
    }
    for (q, v) in &up {
        page.sample(
            "baton_queue_up",
            "gauge",
            "1 when the queue's state could be read from Redis at this scrape",
            &[("queue", q)],
            *v,
        );
    }
    for (q, state, n) in &depth {
        page.sample(
            "baton_queue_tasks",
            "gauge",
            "Tasks in each state set",
            &[("queue", q), ("state", state)],
            *n as f64,
        );
    }
    let counters: [(&'static str, &str, CountsField); 7] = [
        ("baton_tasks_enqueued_total", "Tasks enqueued (created)", |c| {
            c.enqueued_total
        }),
        ("baton_tasks_completed_total", "Tasks completed", |c| {
            c.completed_total
        }),
        ("baton_tasks_failed_total", "Attempts that failed", |c| {
            c.failed_total
        }),
        (
            "baton_tasks_retried_total",
            "Failed attempts scheduled to run again",
            |c| c.retried_total,
        ),
        (
            "baton_tasks_reclaimed_total",
            "Leases that expired and were reclaimed",
            |c| c.expired_total,
        ),
        (
            "baton_tasks_dead_total",
            "Tasks moved to the dead-letter set",
            |c| c.dead_total,
        ),
        (
            "baton_tasks_lapsed_total",
            "Tasks that expired (expires_at) before a run could start, moved to the dead-letter set unrun",
            |c| c.lapsed_total,
        ),
    ];
    for (name, help, f) in counters {
        for (q, c) in &totals {
            page.sample(name, "counter", help, &[("queue", q)], f(c) as f64);
        }
    }
    for (q, c) in &totals {
        for (limit, n) in [
            ("rate", c.held_rate_total),
            ("concurrency", c.held_concurrency_total),
            ("group_rate", c.held_group_rate_total),
            ("group_concurrency", c.held_group_concurrency_total),
        ] {
            page.sample(
                "baton_throttled_total",
                "counter",
                "Claim and dispatch calls the queue's limit cut short while tasks were pending (rate, concurrency), and groups parked by their own limit (group_rate, group_concurrency)",
                &[("queue", q), ("limit", limit)],
                n as f64,
            );
        }
    }
    for (q, c) in &totals {
        page.sample(
            "baton_queue_paused",
            "gauge",
            "1 when the queue is paused",
            &[("queue", q)],
            c.paused as u8 as f64,
        );
    }
    let wf: [(&'static str, &str, &str, WorkerField); 5] = [
        (
            "baton_worker_inflight",
            "gauge",
            "Leases a worker holds now",
            |w| w.inflight as f64,
        ),
        (
            "baton_worker_completed_total",
            "counter",
            "Tasks a worker completed",
            |w| w.completed as f64,
        ),
        (
            "baton_worker_failed_total",
            "counter",
            "Attempts that failed on a worker",
            |w| w.failed as f64,
        ),
        (
            "baton_worker_busy_seconds_total",
            "counter",
            "Time a worker's handlers ran",
            |w| w.busy_ms as f64 / 1000.0,
        ),
        (
            "baton_worker_last_seen_seconds",
            "gauge",
            "Time since a worker's last heartbeat",
            |w| w.last_seen.as_secs_f64(),
        ),
    ];
    for (name, kind, help, f) in wf {
        for (q, w) in &per_worker {
            page.sample(name, kind, help, &[("queue", q), ("worker", &w.id)], f(w));
        }
    }
    let mut body = page.finish();
    body.push_str(&web.prometheus.render());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}
