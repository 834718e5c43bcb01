//! Baton: a distributed task scheduler on Redis.
//!
//! Every state change of a task is one versioned Lua script (`lua/`), run atomically in Redis
//! with EVALSHA; this crate is the thin orchestrator around them: a producer [`Client`]/[`Queue`],
//! a [`Worker`] runtime, and the [`Maintenance`] loops. See README.md and docs/.
//!
//! Each script is a typed operation in [`ops`] (`ops::claim` calls `lua/claim.lua`); its
//! argument limits are [`bounds`], generated from `lua/manifest.json`. Cargo features: the
//! default `cli` builds the three binaries and everything they serve; with
//! `default-features = false` a service that only enqueues (or runs Rust handlers) compiles no
//! HTTP server, HTTP client, command-line parser or Prometheus exporter.

// the doctor checks use most of it
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod advice;
pub mod bounds;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
pub mod config;
pub mod conn;
// occurrences are computed by the scheduler service
#[cfg_attr(not(feature = "services"), allow(dead_code))]
mod cron_expr;
mod error;
mod events;
pub mod flow;
pub mod keys;
#[doc(hidden)] // test and demo fixture: a throw-away redis-server
pub mod local_redis;
mod maintenance;
pub mod manifest;
pub mod metrics;
pub mod ops;
#[cfg(feature = "services")]
pub mod process;
mod retry;
#[cfg(feature = "services")]
pub mod scheduler;
pub mod scripts;
mod subscription;
mod task;
pub mod worker;

pub use client::new_id;
pub use client::{Batch, CancelledFlow, Flow, OpenBatch, SubmittedFlow, FLOW_MAX_TASKS};
pub use client::{
    Claimed, Claims, Client, Completed, Dispatched, Enqueued, FailMode, FailReport, FailStatus, Heartbeat,
    Held, LeaseStatus, Outcome, ProgressAck, Promoted, Queue, Reclaimed, Trimmed, WaitSummary, WorkerInfo,
};
pub use config::{
    BackoffKind, Config, DispatchMode, QueueConfig, RedisConfig, SchedulerConfig, Strategy, WorkerConfig,
};
pub use error::{Error, Result};
pub use events::{Event, EventTask, Since};
pub use maintenance::Maintenance;
pub use ops::flow_open::CallbackEvent;
pub use ops::flow_seal::{FlowState, Sealed};
pub use ops::flow_status::{FlowStatus, Member};
pub use ops::LeaseRef;
pub use task::{
    Backoff, Counts, Failure, LeaseInfo, OnFailure, Progress, Record, State, Task, TaskSpec, MAX_STRAYS,
};
pub use worker::{Handler, HandlerError, HandlerResult, TaskContext, Worker, WorkerStats};

/// Install rustls' ring crypto provider once (TLS for the http handler and, later, Redis).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
