//! Prometheus metrics.
//!
//! Two sources end up in one `/metrics` page:
//! - process-local measurements (script call latency and errors, task wait and run times) go
//!   through the `metrics` facade into a Prometheus recorder installed by the serving process;
//!   without a recorder (a library user who serves nothing) they cost nothing;
//! - queue state (depths, totals, per-worker load) is read from Redis at scrape time and written
//!   straight into the page by [`Page`], so a removed worker or queue never leaves a stale series.

//!
//! Recording through the facade is always compiled (it is cheap); the exporter and its HTTP
//! server are behind the `http` feature, so a producer-only build carries neither.

#[cfg(feature = "http")]
mod export;
#[cfg(feature = "http")]
pub use export::*;

/// Record one script call (called by the connection layer for every call).
pub(crate) fn script_call(script: &'static str, secs: f64, error: Option<&'static str>) {
    metrics::histogram!("baton_script_duration_seconds", "script" => script).record(secs);
    if let Some(kind) = error {
        metrics::counter!("baton_script_errors_total", "script" => script, "kind" => kind).increment(1);
    }
}
