//! Redis connections, explicit timeouts, and running the scripts with EVALSHA.
//!
//! One multiplexed, auto-reconnecting connection per process carries every script call (it
//! pipelines concurrent calls by itself); pub/sub wake-ups get their own connections, so no
//! blocking read ever stalls the shared one. Scripts are SCRIPT LOADed at start and called by
//! SHA; a NOSCRIPT reply (Redis restarted, failed over, or SCRIPT FLUSH) reloads them and resends
//! exactly the calls that were refused — NOSCRIPT means the script did not run, so resending is
//! safe even inside a pipeline.

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::scripts::{ScriptName, SCHEMA_VERSION};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{Cmd, IntoConnectionInfo, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cloneable handle on Baton's Redis connection.
#[derive(Clone)]
pub struct Conn {
    inner: Arc<Inner>,
    mgr: ConnectionManager,
}

struct Inner {
    client: redis::Client,
    addr: String,
    response_timeout: Duration,
    connect_timeout: Duration,
}

/// One script call, ready to send: `EVALSHA sha numkeys keys… args…`.
#[derive(Clone)]
pub struct Call {
    script: ScriptName,
    cmd: Cmd,
    /// Arguments given so far.
    args: usize,
    /// Every argument so far was given with `named` (so the call is checked on send).
    checked: bool,
}

impl Call {
    /// Start a call of `script` with the queue keyset plus `extra_keys`.
    pub fn new(script: ScriptName, keyset: &[String], extra_keys: &[String]) -> Call {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.script().sha).arg(keyset.len() + extra_keys.len());
        for k in keyset.iter().chain(extra_keys) {
            cmd.arg(k);
        }
        Call {
            script,
            cmd,
            args: 0,
            checked: true,
        }
    }

    /// Append one ARGV value, unchecked (tests use it to send deliberately bad calls).
    pub fn arg<T: redis::ToRedisArgs>(&mut self, v: T) -> &mut Call {
        self.cmd.arg(v);
        self.args += 1;
        self.checked = false;
        self
    }

    /// Skip the manifest check for this call (tests of the scripts' own validation).
    pub fn unchecked(&mut self) -> &mut Call {
        self.checked = false;
        self
    }

    /// Append the ARGV value the manifest calls `name` at this position. In debug builds a
    /// name that disagrees with `lua/manifest.json` panics.
    pub fn named<T: redis::ToRedisArgs>(&mut self, name: &str, v: T) -> &mut Call {
        #[cfg(not(debug_assertions))]
        let _ = name; // checked in debug builds only
        #[cfg(debug_assertions)]
        {
            let spec = &crate::manifest::get().scripts[self.script.file_stem()];
            let want = spec.arg_name(self.args);
            assert!(
                want == Some(name),
                "script {}: argument {} is {:?} in lua/manifest.json, but the Rust call site passes {name:?}",
                self.script.file_stem(),
                self.args + 1,
                want
            );
        }
        self.cmd.arg(v);
        self.args += 1;
        self
    }

    /// In debug builds, panic if a checked call is incomplete per the manifest.
    fn verify(&self) {
        #[cfg(debug_assertions)]
        if self.checked {
            let spec = &crate::manifest::get().scripts[self.script.file_stem()];
            assert!(
                spec.complete_with(self.args),
                "script {}: {} arguments is not a complete call per lua/manifest.json",
                self.script.file_stem(),
                self.args
            );
        }
    }

    /// The script this call runs.
    pub fn script(&self) -> ScriptName {
        self.script
    }
}

impl Conn {
    /// Connect with the configured timeouts, check the server, load the scripts.
    pub async fn connect(cfg: &RedisConfig) -> Result<Conn> {
        let mut info = cfg.url.as_str().into_connection_info().map_err(|e| {
            Error::Config(format!(
                "redis.url {:?} is not a valid Redis URL ({e}) — e.g. redis://127.0.0.1:6379/0",
                redact(&cfg.url)
            ))
        })?;
        let addr = info.addr().to_string();
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &cfg.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &cfg.password {
            settings = settings.set_password(p);
        }
        if let Some(db) = cfg.db {
            settings = settings.set_db(db);
        }
        info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| Error::Config(format!("redis.url: {e}")))?;
        let inner = Inner {
            client,
            addr: addr.clone(),
            response_timeout: cfg.response_timeout,
            connect_timeout: cfg.connect_timeout,
        };

        // A first plain connection gives a fast, precise error (refused, auth, timeout) instead
        // of the manager's reconnect loop.
        let probe_cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.response_timeout));
        let mut probe = tokio::time::timeout(
            cfg.connect_timeout + Duration::from_millis(100),
            inner
                .client
                .get_multiplexed_async_connection_with_config(&probe_cfg),
        )
        .await
        .map_err(|_| Error::Unreachable {
            addr: addr.clone(),
            detail: format!("no connection within {:?}", cfg.connect_timeout),
        })?
        .map_err(|e| inner.err(e, ""))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut probe)
            .await
            .map_err(|e| inner.err(e, ""))?;
        check_server(&mut probe, &addr).await?;

        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mgr = ConnectionManager::new_with_config(inner.client.clone(), mgr_cfg)
            .await
            .map_err(|e| inner.err(e, ""))?;
        let conn = Conn {
            inner: Arc::new(inner),
            mgr,
        };
        conn.load_scripts().await?;
        Ok(conn)
    }

    /// The server address (for messages).
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// SCRIPT LOAD every script; check Redis computed the SHA we call them by.
    pub async fn load_scripts(&self) -> Result<()> {
        let mut pipe = redis::pipe();
        for name in ScriptName::ALL {
            pipe.cmd("SCRIPT").arg("LOAD").arg(&name.script().body);
        }
        let shas: Vec<String> = pipe
            .query_async(&mut self.mgr.clone())
            .await
            .map_err(|e| self.err(e, ""))?;
        for (name, sha) in ScriptName::ALL.iter().zip(shas) {
            if sha != name.script().sha {
                return Err(Error::Protocol(format!(
                    "SCRIPT LOAD of {} returned sha {sha}, expected {}",
                    name.file_stem(),
                    name.script().sha
                )));
            }
        }
        tracing::debug!(addr = %self.inner.addr, schema = SCHEMA_VERSION, "scripts loaded");
        Ok(())
    }

    /// Run one script call; on NOSCRIPT reload the scripts and send it again.
    pub async fn eval(&self, call: &Call, queue: &str) -> Result<Value> {
        let start = Instant::now();
        let r = self.eval_inner(call, queue).await;
        crate::metrics::script_call(
            call.script.file_stem(),
            start.elapsed().as_secs_f64(),
            r.as_ref().err().map(Error::kind_name),
        );
        r
    }

    async fn eval_inner(&self, call: &Call, queue: &str) -> Result<Value> {
        call.verify();
        let mut mgr = self.mgr.clone();
        match call.cmd.query_async::<Value>(&mut mgr).await {
            Ok(v) => Ok(v),
            Err(e) if is_noscript(&e) => {
                self.load_scripts().await?;
                call.cmd
                    .query_async::<Value>(&mut mgr)
                    .await
                    .map_err(|e| self.err(e, queue))
            }
            Err(e) => Err(self.err(e, queue)),
        }
    }

    /// Run several script calls in one round trip. Each call gets its own result; calls refused
    /// with NOSCRIPT are resent (alone) after reloading the scripts.
    pub async fn eval_pipeline(&self, calls: &[Call], queue: &str) -> Result<Vec<Result<Value>>> {
        let start = Instant::now();
        let r = self.eval_pipeline_inner(calls, queue).await;
        let secs = start.elapsed().as_secs_f64();
        for (i, call) in calls.iter().enumerate() {
            let err = match &r {
                Err(e) => Some(e.kind_name()),
                Ok(rs) => rs[i].as_ref().err().map(Error::kind_name),
            };
            crate::metrics::script_call(call.script.file_stem(), secs, err);
        }
        r
    }

    async fn eval_pipeline_inner(&self, calls: &[Call], queue: &str) -> Result<Vec<Result<Value>>> {
        calls.iter().for_each(Call::verify);
        let mut results: Vec<Option<Result<Value>>> = (0..calls.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..calls.len()).collect();
        for round in 0..2 {
            // After a first round, a failure must not hide the results already in: the calls
            // still to send get the error, the others keep their answers.
            let sent = async {
                if round > 0 {
                    self.load_scripts().await?;
                }
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for &i in &todo {
                    pipe.add_command(calls[i].cmd.clone());
                }
                pipe.query_async::<Vec<Value>>(&mut self.mgr.clone())
                    .await
                    .map_err(|e| self.err(e, queue))
            };
            let values = match (sent.await, round) {
                (Ok(v), _) => v,
                (Err(e), 0) => return Err(e),
                (Err(e), _) => {
                    let detail = e.to_string();
                    for &i in &todo {
                        results[i] = Some(Err(Error::Unreachable {
                            addr: self.inner.addr.clone(),
                            detail: detail.clone(),
                        }));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            for (&i, v) in todo.iter().zip(values) {
                match v {
                    Value::ServerError(se) => {
                        let e: redis::RedisError = se.into();
                        if round == 0 && is_noscript(&e) {
                            again.push(i);
                        } else {
                            results[i] = Some(Err(self.err(e, queue)));
                        }
                    }
                    v => results[i] = Some(Ok(v)),
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every call answered"))
            .collect())
    }

    /// Run a plain command on the shared connection.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        cmd.query_async(&mut self.mgr.clone())
            .await
            .map_err(|e| self.err(e, ""))
    }

    /// A dedicated connection for blocking reads that wait up to `block` (XREAD BLOCK): its
    /// response timeout is `block` plus the configured one, and no script call ever waits
    /// behind it.
    pub async fn blocking(&self, block: Duration) -> Result<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(block + self.inner.response_timeout));
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| self.err(e, ""))
    }

    /// A dedicated pub/sub connection (never shared with script calls).
    pub async fn pubsub(&self) -> Result<PubSub> {
        tokio::time::timeout(self.inner.connect_timeout, self.inner.client.get_async_pubsub())
            .await
            .map_err(|_| Error::Unreachable {
                addr: self.inner.addr.clone(),
                detail: format!("no pub/sub connection within {:?}", self.inner.connect_timeout),
            })?
            .map_err(|e| self.err(e, ""))
    }

    pub(crate) fn err(&self, e: redis::RedisError, queue: &str) -> Error {
        self.inner.err(e, queue)
    }
}

impl Inner {
    fn err(&self, e: redis::RedisError, queue: &str) -> Error {
        Error::from_redis(e, &self.addr, queue, self.response_timeout)
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Refuse a Redis older than 7.0 (the scripts use `#!lua` flags and SET NX GET); warn about
/// settings that can lose tasks. A warning check that fails (e.g. CONFIG denied by ACL) is
/// skipped: it is advice, not a requirement.
async fn check_server(con: &mut redis::aio::MultiplexedConnection, addr: &str) -> Result<()> {
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("server").query_async(con).await;
    if let Ok(info) = info {
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("")
            .trim()
            .to_string();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major > 0 && major < 7 {
            return Err(Error::Invalid(format!(
                "Redis at {addr} is version {version}; Baton's scripts need Redis 7.0 or newer — upgrade the server"
            )));
        }
    }
    let policy: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(con)
        .await;
    if let Ok(v) = policy {
        if let Some(p) = v.get(1) {
            if p != "noeviction" {
                tracing::warn!(
                    "Redis at {addr} has maxmemory-policy {p}: under memory pressure it may evict task keys and lose tasks — set maxmemory-policy noeviction"
                );
            }
        }
    }
    Ok(())
}

/// Hide a password in a URL before printing it.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
