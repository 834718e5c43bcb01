//! Config validation: every impossible value is refused at start with a message naming the
//! key and the fix; values that become script arguments are checked against the scripts'
//! own limits ([`super::limits`]).

use super::limits;
use super::Config;
use crate::error::{Error, Result};
use crate::keys::validate_name;

impl Config {
    /// Refuse impossible values, naming the key and the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: &str| Err(Error::Config(format!("{key}: {msg}")));
        if !(self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://")
            || self.redis.url.starts_with("unix://")
            || self.redis.url.starts_with("redis+unix://"))
        {
            return bad(
                "redis.url",
                "must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)",
            );
        }
        let url_ok = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        match (&self.redis.sentinel, &self.redis.cluster) {
            (Some(_), Some(_)) => {
                return bad(
                    "redis.sentinel/cluster",
                    "set one topology: url, sentinel or cluster, not several",
                )
            }
            (Some(s), None) => {
                if s.master.is_empty() {
                    return bad(
                        "redis.sentinel.master",
                        "name the master the sentinels monitor (e.g. \"mymaster\")",
                    );
                }
                if s.nodes.is_empty() || !s.nodes.iter().all(|n| url_ok(n)) {
                    return bad(
                        "redis.sentinel.nodes",
                        "list the sentinels as redis://host:port URLs (e.g. [\"redis://127.0.0.1:26379\"])",
                    );
                }
            }
            (None, Some(c)) => {
                if c.is_empty() || !c.iter().all(|n| url_ok(n)) {
                    return bad(
                        "redis.cluster",
                        "list seed nodes as redis://host:port URLs (e.g. [\"redis://127.0.0.1:7000\"])",
                    );
                }
                if self.redis.db.unwrap_or(0) != 0 {
                    return bad("redis.db", "Redis Cluster has only database 0");
                }
            }
            (None, None) => {}
        }
        if let Some(ca) = &self.redis.tls_ca {
            if !ca.is_file() {
                return bad(
                    "redis.tls_ca",
                    &format!("{} is not a readable file (a PEM CA certificate)", ca.display()),
                );
            }
        }
        if self.redis.wait_replicas > 0 && self.redis.wait_timeout.is_zero() {
            return bad(
                "redis.wait_timeout",
                "must be longer than 0s when wait_replicas is set (e.g. \"1s\")",
            );
        }
        validate_name(&self.redis.prefix, "redis.prefix").map_err(|e| Error::Config(e.to_string()))?;
        if self.redis.response_timeout.is_zero() || self.redis.connect_timeout.is_zero() {
            return bad(
                "redis.response_timeout/connect_timeout",
                "must be longer than 0s (e.g. \"5s\")",
            );
        }
        for (name, q) in &self.queues {
            let key = |k: &str| format!("queues.{name}.{k}");
            validate_name(name, "queue name").map_err(|e| Error::Config(format!("[queues.{name}]: {e}")))?;
            for l in limits::QUEUE {
                l.limit
                    .check(&key(l.limit.key), (l.value)(q))
                    .map_err(Error::Config)?;
            }
            if q.heartbeat >= q.lease {
                return bad(
                    &key("heartbeat"),
                    &format!(
                        "must be shorter than the lease ({:?}); about a third of it is right",
                        q.lease
                    ),
                );
            }
            if q.backoff_cap < q.backoff_base {
                return bad(&key("backoff_cap"), "must not be shorter than backoff_base");
            }
            // sent as a whole percent
            let jitter_max = crate::bounds::enqueue::JITTER_PCT.max as f64 / 100.0;
            if !(0.0..=jitter_max).contains(&q.backoff_jitter) {
                return bad(
                    &key("backoff_jitter"),
                    &format!("must be between 0.0 and {jitter_max:.1}"),
                );
            }
            if q.dead_ttl.is_zero() {
                return bad(&key("dead_ttl"), "must be longer than 0s");
            }
            if q.group_concurrency > 0 && q.fairness != crate::flow::Fairness::Fair {
                return bad(
                    &key("group_concurrency"),
                    "applies to a fair queue, where tasks are kept by group: set fairness = \"fair\" as well, or remove group_concurrency",
                );
            }
            if q.group_rate.is_some() && q.fairness != crate::flow::Fairness::Fair {
                return bad(
                    &key("group_rate"),
                    "applies to a fair queue, where tasks are kept by group: set fairness = \"fair\" as well, or remove group_rate",
                );
            }
            if q.group_burst.is_some() && q.group_rate.is_none() {
                return bad(
                    &key("group_burst"),
                    "applies to a group rate limit: set group_rate as well (e.g. group_rate = \"10/s\"), or remove group_burst",
                );
            }
            if q.burst.is_some() && q.rate.is_none() {
                return bad(
                    &key("burst"),
                    "applies to a rate limit: set rate as well (e.g. rate = \"200/s\"), or remove burst",
                );
            }
        }
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency", "must be at least 1");
        }
        if self.worker.queues.is_empty() {
            return bad("worker.queues", "list at least one queue (e.g. [\"default\"])");
        }
        for q in &self.worker.queues {
            validate_name(q, "worker.queues entry").map_err(|e| Error::Config(e.to_string()))?;
        }
        if self.worker.weight == 0 {
            return bad("worker.weight", "must be at least 1");
        }
        if let Some(c) = self.worker.capacity {
            if c == 0 {
                return bad(
                    "worker.capacity",
                    "must be at least 1 (or left out: defaults to concurrency)",
                );
            }
            limits::WORKER_CAPACITY
                .check("worker.capacity", c.min(i64::MAX as usize) as i64)
                .map_err(Error::Config)?;
        }
        for (kind, h) in &self.worker.handlers {
            let key = format!("worker.handlers.{kind}");
            validate_name(kind, "task kind").map_err(|e| Error::Config(format!("[{key}]: {e}")))?;
            let n = h.exec.is_some() as u8 + h.shell.is_some() as u8 + h.http.is_some() as u8;
            if n != 1 {
                return bad(&key, "set exactly one of exec = [\"program\", \"arg\"], shell = \"command line\" or http = \"http://host/path\"");
            }
            if h.exec.as_ref().is_some_and(|a| a.is_empty() || a[0].is_empty()) {
                return bad(
                    &format!("{key}.exec"),
                    "must name a program, e.g. exec = [\"cat\"]",
                );
            }
            if let Some(u) = &h.http {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return bad(&format!("{key}.http"), "must be an http:// or https:// URL");
                }
            }
            if h.timeout.is_some_and(|t| t.is_zero()) {
                return bad(&format!("{key}.timeout"), "must be longer than 0s (or left out)");
            }
            if h.dependencies && h.http.is_some() {
                return bad(
                    &format!("{key}.dependencies"),
                    "applies to exec and shell handlers (a file for the program); an http service reads them with the dependencies script or a client library",
                );
            }
        }
        for (name, c) in &self.scheduler.cron {
            let key = format!("scheduler.cron.{name}");
            validate_name(name, "cron entry name").map_err(|e| Error::Config(format!("[{key}]: {e}")))?;
            crate::cron_expr::parse(&c.schedule)
                .map_err(|e| Error::Config(format!("{key}.schedule: {e}")))?;
            validate_name(&c.queue, "queue").map_err(|e| Error::Config(format!("{key}.queue: {e}")))?;
            validate_name(&c.kind, "kind").map_err(|e| Error::Config(format!("{key}.kind: {e}")))?;
            limits::CRON_PRIORITY
                .check(&format!("{key}.priority"), c.priority as i64)
                .map_err(Error::Config)?;
            let max_payload = self.queue(&c.queue).max_payload;
            if c.payload.len() as u64 > max_payload {
                return bad(
                    &format!("{key}.payload"),
                    &format!(
                        "is {} bytes, over queues.{}.max_payload ({max_payload}): store large data elsewhere",
                        c.payload.len(),
                        c.queue
                    ),
                );
            }
        }
        for q in &self.scheduler.queues {
            validate_name(q, "scheduler.queues entry").map_err(|e| Error::Config(e.to_string()))?;
        }
        if self.worker.poll_interval.is_zero() {
            return bad("worker.poll_interval", "must be longer than 0s");
        }
        let s = &self.scheduler;
        if s.promote_interval.is_zero()
            || s.reclaim_interval.is_zero()
            || s.trim_interval.is_zero()
            || s.dispatch_interval.is_zero()
        {
            return bad("scheduler.*_interval", "must be longer than 0s");
        }
        limits::SCHEDULER_BATCH
            .check("scheduler.batch", s.batch.min(i64::MAX as usize) as i64)
            .map_err(Error::Config)?;
        for (key, addr) in [
            ("scheduler.http", &s.http),
            ("worker.metrics", &self.worker.metrics),
        ] {
            if let Some(a) = addr {
                if a.parse::<std::net::SocketAddr>().is_err() {
                    return bad(
                        key,
                        &format!("{a:?} is not an address with a port, e.g. \"127.0.0.1:9090\""),
                    );
                }
            }
        }
        if let Some(u) = &self.worker.progress_url {
            if self.worker.metrics.is_none() {
                return bad(
                    "worker.progress_url",
                    "needs worker.metrics: progress callbacks arrive on that listener (e.g. metrics = \"0.0.0.0:9091\")",
                );
            }
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 8 {
                return bad(
                    "worker.progress_url",
                    &format!("{u:?} is not a base URL, e.g. \"http://worker-1.internal:9091\""),
                );
            }
        }
        if matches!(&s.http_token, Some(t) if t.len() < 16) {
            return bad(
                "scheduler.http_token",
                "must be at least 16 characters (e.g. `openssl rand -hex 16`)",
            );
        }
        Ok(())
    }
}
