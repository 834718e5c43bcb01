//! The Prometheus exporter and the HTTP plumbing that serves it (feature `http`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write;
use std::sync::OnceLock;

/// Histogram buckets for task wait and run times (seconds).
const TASK_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Histogram buckets for script call latency (seconds, as seen by the client: round trip).
const SCRIPT_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Prefix("baton_task_".into()), &TASK_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Prefix("baton_worker_task_".into()), &TASK_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Prefix("baton_script_".into()), &SCRIPT_BUCKETS)
                })
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; Baton's /metrics shows queue state only"
                );
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_histogram!(
        "baton_script_duration_seconds",
        metrics::Unit::Seconds,
        "Round-trip time of Baton script calls from this process, by script"
    );
    metrics::describe_counter!(
        "baton_script_errors_total",
        "Script calls from this process that failed, by script and error kind"
    );
    metrics::describe_histogram!(
        "baton_task_wait_seconds",
        metrics::Unit::Seconds,
        "Time a task waited runnable (pending) before a worker got it, from lifecycle events"
    );
    metrics::describe_histogram!(
        "baton_task_run_seconds",
        metrics::Unit::Seconds,
        "Time from claim to completion or failure of an attempt, from lifecycle events"
    );
    metrics::describe_histogram!(
        "baton_worker_task_run_seconds",
        metrics::Unit::Seconds,
        "Handler run time of tasks in this worker, by queue, kind and outcome"
    );
    metrics::describe_counter!(
        "baton_worker_tasks_total",
        "Tasks run by this worker, by queue and outcome (completed|failed as acknowledged by Redis, stale when refused, stopped)"
    );
}

/// Bind an HTTP listener for `key` (a config key, named in the error).
pub async fn bind(addr: &str, key: &str) -> crate::error::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        crate::error::Error::Config(format!(
            "{key}: cannot listen on {addr}: {e} (is the port in use? choose another address)"
        ))
    })
}

/// Serve `router` on `listener` until `stop`.
pub fn spawn_server(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server stopped");
        }
    })
}

/// The router of a worker's own `/metrics` (process-local measurements only).
pub fn worker_router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let h = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    h.render(),
                )
            }
        }),
    )
}

/// A Prometheus text page written by hand for values read at scrape time.
#[derive(Default)]
pub struct Page {
    out: String,
    declared: std::collections::HashSet<&'static str>,
}

impl Page {
    pub fn new() -> Page {
        Page::default()
    }

    /// One sample; `kind` is "gauge" or "counter". HELP/TYPE are written before the first sample
    /// of a name (samples of one name must be written together).
    pub fn sample(&mut self, name: &'static str, kind: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        if self.declared.insert(name) {
            let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Escape a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_writes_help_type_once_and_escapes_labels() {
        let mut p = Page::new();
        p.sample("baton_x", "gauge", "An x.", &[("queue", "a\"b")], 1.0);
        p.sample("baton_x", "gauge", "An x.", &[("queue", "c")], 2.5);
        let s = p.finish();
        assert_eq!(s.matches("# TYPE baton_x gauge").count(), 1);
        assert!(s.contains("baton_x{queue=\"a\\\"b\"} 1\n"), "{s}");
        assert!(s.contains("baton_x{queue=\"c\"} 2.5\n"), "{s}");
    }
}
