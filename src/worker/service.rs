//! The `baton-worker` process: one worker per configured queue, handlers from the config,
//! one worker id for the whole process, graceful shutdown on a signal.

use super::exec::ExecHandler;
use super::http::HttpHandler;
use super::progress::{self, Callbacks};
use super::{new_worker_id, Handler, Worker};
use crate::config::{Config, WorkerConfig};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where http handlers call back with progress: the base URL of this worker's listener as the
/// services reach it (`worker.progress_url`, else `http://<worker.metrics>` unless that listens
/// on every interface), or None.
fn progress_base(cfg: &WorkerConfig) -> Option<String> {
    if let Some(u) = &cfg.progress_url {
        return Some(u.trim_end_matches('/').to_string());
    }
    let addr: std::net::SocketAddr = cfg.metrics.as_ref()?.parse().ok()?;
    (!addr.ip().is_unspecified()).then(|| format!("http://{addr}"))
}

/// Build the handlers configured under `[worker.handlers.<kind>]`; http handlers get progress
/// callbacks delivered through `callbacks` when the worker has a listener.
pub(crate) fn build_handlers(
    cfg: &WorkerConfig,
    callbacks: &Callbacks,
) -> Result<BTreeMap<String, Arc<dyn Handler>>> {
    let progress = progress_base(cfg).map(|base| (base, callbacks.clone()));
    let mut out: BTreeMap<String, Arc<dyn Handler>> = BTreeMap::new();
    for (kind, h) in &cfg.handlers {
        let handler: Arc<dyn Handler> = if let Some(argv) = &h.exec {
            Arc::new(ExecHandler {
                kind: kind.clone(),
                argv: argv.clone(),
                env: h.env.clone(),
                timeout: h.timeout,
                dependencies: h.dependencies,
            })
        } else if let Some(line) = &h.shell {
            let argv = vec!["sh".to_string(), "-c".to_string(), line.clone()];
            Arc::new(ExecHandler {
                kind: kind.clone(),
                argv,
                env: h.env.clone(),
                timeout: h.timeout,
                dependencies: h.dependencies,
            })
        } else if let Some(url) = &h.http {
            Arc::new(HttpHandler::new(
                kind,
                url,
                h.headers.clone(),
                h.timeout,
                progress.clone(),
            )?)
        } else {
            return Err(Error::Config(format!(
                "worker.handlers.{kind}: set exec, shell or http"
            )));
        };
        out.insert(kind.clone(), handler);
    }
    Ok(out)
}

/// Run the worker process until `shutdown` resolves; then drain and deregister.
/// Returns an error if a queue's worker fails (e.g. Redis refuses the scripts).
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let callbacks = Callbacks::default();
    let handlers = build_handlers(&config.worker, &callbacks)?;
    let has_http = config.worker.handlers.values().any(|h| h.http.is_some());
    if has_http && progress_base(&config.worker).is_none() {
        tracing::info!("http handlers get no progress callback URL: set worker.metrics (and worker.progress_url when it listens on 0.0.0.0) to let them report progress");
    }
    if handlers.is_empty() {
        tracing::warn!("no [worker.handlers.*] configured: every task will fail with \"no handler\"");
    }
    tokio::pin!(shutdown);
    let client = tokio::select! {
        c = crate::process::connect_waiting(&config) => c?,
        _ = &mut shutdown => return Ok(()), // stopped while waiting for Redis
    };
    let id = new_worker_id();
    let capacity = config.worker.capacity.unwrap_or(config.worker.concurrency);
    let stop = CancellationToken::new();
    let metrics_server = match &config.worker.metrics {
        Some(addr) => {
            let listener = crate::metrics::bind(addr, "worker.metrics").await?;
            let router =
                crate::metrics::worker_router(crate::metrics::install()).merge(progress::router(callbacks));
            tracing::info!(addr = %addr, "worker metrics at /metrics");
            Some(crate::metrics::spawn_server(listener, router, stop.clone()))
        }
        None => None,
    };
    let mut runs = tokio::task::JoinSet::new();
    for queue in &config.worker.queues {
        let mut b = Worker::builder(&client, queue)?
            .id(id.clone())
            .info(serde_json::json!({ "weight": config.worker.weight, "capacity": capacity }));
        for (kind, h) in &handlers {
            b = b.handler_arc(kind.clone(), h.clone());
        }
        let worker = b.build()?;
        let s = stop.clone();
        runs.spawn(async move { worker.run(s.cancelled_owned()).await });
    }
    tracing::info!(worker = %id, queues = ?config.worker.queues, kinds = ?handlers.keys().collect::<Vec<_>>(), "baton-worker running");
    let mut first_error = None;
    tokio::select! {
        _ = shutdown => {}
        Some(r) = runs.join_next() => {
            // a queue's worker stopped on its own: that is an error; stop the others too
            first_error = Some(match r {
                Ok(Ok(_)) => Error::Invalid("a queue worker stopped unexpectedly".into()),
                Ok(Err(e)) => e,
                Err(e) => Error::Invalid(format!("a queue worker crashed: {e}")),
            });
        }
    }
    stop.cancel();
    while let Some(r) = runs.join_next().await {
        if let Ok(Err(e)) = r {
            first_error.get_or_insert(e);
        }
    }
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
