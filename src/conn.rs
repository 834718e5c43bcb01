//! Redis connections (single node, Sentinel, Cluster; TLS and ACL users), explicit timeouts,
//! and running the scripts with EVALSHA.
//!
//! Sentinel: the primary is asked of the sentinels at start and again after a READONLY reply
//! (the old primary was demoted) or a connection failure (it died); the scripts are then loaded
//! on the new primary and the call is sent once more. Cluster: redis-rs' cluster connection
//! follows MOVED/ASK and refreshes the slot map after failovers; SCRIPT LOAD goes to every
//! primary, and a NOSCRIPT from a newly promoted replica reloads them.
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
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A cloneable handle on Baton's Redis connection, whatever the topology.
#[derive(Clone)]
pub struct Conn {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    current: std::sync::RwLock<Current>,
    /// Held while the primary is looked up again (Sentinel): one lookup at a time.
    switching: tokio::sync::Mutex<()>,
    /// Sentinel: the last lookup failed, so the current connection may point at a dead (or
    /// restarted, empty) former primary; nothing is sent on it until a lookup succeeds.
    suspect: std::sync::atomic::AtomicBool,
    response_timeout: Duration,
    connect_timeout: Duration,
    /// `[redis] wait_replicas` / `wait_timeout`.
    wait: Option<(u32, Duration)>,
}

/// The connection in use now. Replaced when Sentinel names a new primary.
#[derive(Clone)]
struct Current {
    link: Link,
    /// The server's client (single node and Sentinel), for dedicated connections.
    client: Option<redis::Client>,
    addr: String,
    generation: u64,
}

/// How to reach Redis.
#[allow(clippy::large_enum_variant)] // one per process
enum Source {
    Url,
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
    Cluster {
        /// Builds the shared cluster connection (again after a node failure).
        main: ClusterClient,
        /// When the cluster connection was last rebuilt.
        rebuilt: std::sync::Mutex<Option<Instant>>,
        /// For blocking reads: a response timeout long enough for XREAD BLOCK.
        blocking: ClusterClient,
        /// Every seed, for pub/sub (a cluster broadcasts PUBLISH to every node).
        seeds: Vec<redis::Client>,
    },
}

/// A connection that runs commands: the shared auto-reconnecting one, a cluster connection
/// (follows MOVED/ASK, refreshes slots), or a plain dedicated one.
#[derive(Clone)]
pub enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
    Plain(MultiplexedConnection),
}

impl Link {
    /// Run one command.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> redis::RedisResult<T> {
        match self {
            Link::One(c) => cmd.query_async(&mut c.clone()).await,
            Link::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            Link::Plain(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    async fn pipe<T: redis::FromRedisValue>(&self, p: &redis::Pipeline) -> redis::RedisResult<T> {
        match self {
            Link::One(c) => p.query_async(&mut c.clone()).await,
            Link::Cluster(c) => p.query_async(&mut c.clone()).await,
            Link::Plain(c) => p.query_async(&mut c.clone()).await,
        }
    }
}

fn cfg_err(key: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "{key} {what:?} is not a valid Redis URL ({e}) — e.g. redis://127.0.0.1:6379/0"
    ))
}

/// Connection info from a URL with the config's credentials (and db) applied.
fn node_info(
    url: &str,
    key: &str,
    username: Option<&str>,
    password: Option<&str>,
    db: Option<i64>,
) -> Result<redis::ConnectionInfo> {
    let info = url
        .into_connection_info()
        .map_err(|e| cfg_err(key, &redact(url), e))?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = username {
        settings = settings.set_username(u);
    }
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    if let Some(db) = db {
        settings = settings.set_db(db);
    }
    Ok(info.set_redis_settings(settings))
}

fn tls_certs(cfg: &RedisConfig) -> Result<Option<redis::TlsCertificates>> {
    let Some(path) = &cfg.tls_ca else { return Ok(None) };
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("redis.tls_ca: cannot read {}: {e}", path.display())))?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

fn open_client(info: redis::ConnectionInfo, certs: &Option<redis::TlsCertificates>) -> Result<redis::Client> {
    match certs {
        Some(c) => redis::Client::build_with_tls(info, c.clone()),
        None => redis::Client::open(info),
    }
    .map_err(|e| Error::Config(format!("redis: {e}")))
}

impl Conn {
    /// Connect with the configured timeouts and topology, check the server, load the scripts.
    pub async fn connect(cfg: &RedisConfig) -> Result<Conn> {
        crate::install_crypto_provider();
        let certs = tls_certs(cfg)?;
        let (user, pass) = (cfg.username.as_deref(), cfg.password.as_deref());
        let wait = (cfg.wait_replicas > 0).then_some((cfg.wait_replicas, cfg.wait_timeout));
        let (source, current) = if let Some(nodes) = &cfg.cluster {
            let infos = nodes
                .iter()
                .map(|n| node_info(n, "redis.cluster", user, pass, None))
                .collect::<Result<Vec<_>>>()?;
            let build = |response: Duration| {
                let mut b = ClusterClient::builder(infos.clone())
                    .connection_timeout(cfg.connect_timeout)
                    .response_timeout(response)
                    .retries(4);
                if let Some(c) = &certs {
                    b = b.certs(c.clone());
                }
                b.build()
                    .map_err(|e| Error::Config(format!("redis.cluster: {e}")))
            };
            let main = build(cfg.response_timeout)?;
            let blocking = build(cfg.response_timeout + MAX_BLOCK)?;
            let seeds = infos
                .iter()
                .map(|i| open_client(i.clone(), &certs))
                .collect::<Result<Vec<_>>>()?;
            let addr = format!(
                "cluster {}",
                nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(",")
            );
            // Probe one seed first: a precise error (refused, auth) beats the cluster's retries.
            let mut probe = probe(&seeds[0], cfg, &infos[0].addr().to_string()).await?;
            check_server(&mut probe, &addr).await?;
            let link = tokio::time::timeout(cfg.connect_timeout * 2, main.get_async_connection())
                .await
                .map_err(|_| Error::Unreachable {
                    addr: addr.clone(),
                    detail: format!("no cluster connection within {:?}", cfg.connect_timeout * 2),
                })?
                .map_err(|e| Error::from_redis(e, &addr, "", cfg.response_timeout))?;
            let current = Current {
                link: Link::Cluster(link),
                client: None,
                addr,
                generation: 0,
            };
            let source = Source::Cluster {
                main,
                rebuilt: std::sync::Mutex::new(None),
                blocking,
                seeds,
            };
            (source, current)
        } else if let Some(s) = &cfg.sentinel {
            let addrs = s
                .nodes
                .iter()
                .map(|n| node_info(n, "redis.sentinel.nodes", None, None, None).map(|i| i.addr().clone()))
                .collect::<Result<Vec<_>>>()?;
            let tls = s.nodes.iter().any(|n| n.starts_with("rediss://"));
            let mut b = SentinelClientBuilder::new(addrs, s.master.clone(), SentinelServerType::Master)
                .map_err(|e| Error::Config(format!("redis.sentinel: {e}")))?
                .set_client_to_redis_db(cfg.db.unwrap_or(0));
            if let Some(u) = &s.username {
                b = b.set_client_to_sentinel_username(u);
            }
            if let Some(p) = &s.password {
                b = b.set_client_to_sentinel_password(p);
            }
            if let Some(u) = user {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = pass {
                b = b.set_client_to_redis_password(p);
            }
            if tls {
                b = b
                    .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                    .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
            }
            if let Some(c) = &certs {
                b = b
                    .set_client_to_redis_certificates(c.clone())
                    .set_client_to_sentinel_certificates(c.clone());
            }
            let sc = b
                .build()
                .map_err(|e| Error::Config(format!("redis.sentinel: {e}")))?;
            let source = Source::Sentinel(Box::new(tokio::sync::Mutex::new(sc)));
            let current = Self::resolve(&source, cfg, 0).await?;
            (source, current)
        } else {
            let info = node_info(&cfg.url, "redis.url", user, pass, cfg.db)?;
            let addr = info.addr().to_string();
            let client = open_client(info, &certs)?;
            let mut p = probe(&client, cfg, &addr).await?;
            check_server(&mut p, &addr).await?;
            let link = Link::One(manager(&client, cfg, &addr).await?);
            let current = Current {
                link,
                client: Some(client),
                addr,
                generation: 0,
            };
            (Source::Url, current)
        };
        let conn = Conn {
            inner: Arc::new(Inner {
                source,
                current: std::sync::RwLock::new(current),
                switching: tokio::sync::Mutex::new(()),
                suspect: std::sync::atomic::AtomicBool::new(false),
                response_timeout: cfg.response_timeout,
                connect_timeout: cfg.connect_timeout,
                wait,
            }),
        };
        conn.load_scripts().await?;
        Ok(conn)
    }

    /// Ask the sentinels for the primary and connect to it (checked, scripts not loaded yet).
    async fn resolve(source: &Source, cfg_like: &impl Timeouts, generation: u64) -> Result<Current> {
        let Source::Sentinel(sc) = source else {
            unreachable!("resolve is for Sentinel")
        };
        let client = {
            let mut sc = sc.lock().await;
            tokio::time::timeout(cfg_like.connect() * 2, sc.async_get_client())
                .await
                .map_err(|_| Error::Unreachable {
                    addr: "sentinels".into(),
                    detail: format!("no answer from the sentinels within {:?}", cfg_like.connect() * 2),
                })?
                .map_err(|e| Error::Unreachable {
                    addr: "sentinels".into(),
                    detail: format!("no primary from the sentinels: {e}"),
                })?
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut p = probe(&client, cfg_like, &addr).await?;
        check_server(&mut p, &addr).await?;
        let link = Link::One(manager(&client, cfg_like, &addr).await?);
        tracing::info!(primary = %addr, "connected to the primary named by the sentinels");
        Ok(Current {
            link,
            client: Some(client),
            addr,
            generation,
        })
    }

    fn is_suspect(&self) -> bool {
        self.inner.suspect.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The link in use and its generation, without copying the rest (the per-call path).
    fn link(&self) -> (Link, u64) {
        let cur = self.inner.current.read().expect("conn lock");
        (cur.link.clone(), cur.generation)
    }

    fn generation(&self) -> u64 {
        self.inner.current.read().expect("conn lock").generation
    }

    fn current(&self) -> Current {
        self.inner.current.read().expect("conn lock").clone()
    }

    /// The server address (for messages).
    pub fn addr(&self) -> String {
        self.current().addr
    }

    /// Sentinel: after a READONLY reply or a connection failure, ask the sentinels for the
    /// primary again, reconnect and reload the scripts. Returns whether the connection changed.
    async fn failover(&self, seen: u64) -> bool {
        if let Source::Cluster { main, rebuilt, .. } = &self.inner.source {
            return self.rebuild_cluster(main, rebuilt, seen).await;
        }
        if !matches!(self.inner.source, Source::Sentinel(_)) {
            return false;
        }
        let _guard = self.inner.switching.lock().await;
        if self.generation() != seen && !self.is_suspect() {
            return true; // another caller already switched
        }
        let generation = self.generation() + 1;
        match Self::resolve(&self.inner.source, &*self.inner, generation).await {
            Ok(next) => {
                self.inner
                    .suspect
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                let old = self.current().addr;
                *self.inner.current.write().expect("conn lock") = next;
                if let Err(e) = self.load_scripts().await {
                    tracing::warn!(error = %e, "scripts not loaded on the new primary yet");
                }
                tracing::warn!(from = %old, to = %self.current().addr, "primary changed (Sentinel): reconnected");
                true
            }
            Err(e) => {
                self.inner
                    .suspect
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(error = %e, "primary lookup after a connection failure failed; will retry");
                false
            }
        }
    }

    /// Cluster: after a node failure, build a fresh cluster connection (it reads the slot map
    /// anew from a live node, so a promoted replica is found at once) — at most twice a second.
    async fn rebuild_cluster(
        &self,
        main: &ClusterClient,
        rebuilt: &std::sync::Mutex<Option<Instant>>,
        seen: u64,
    ) -> bool {
        let _guard = self.inner.switching.lock().await;
        if self.generation() != seen {
            return true;
        }
        if rebuilt
            .lock()
            .expect("lock")
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return false;
        }
        *rebuilt.lock().expect("lock") = Some(Instant::now());
        match tokio::time::timeout(self.inner.connect_timeout * 2, main.get_async_connection()).await {
            Ok(Ok(link)) => {
                let mut cur = self.inner.current.write().expect("conn lock");
                cur.link = Link::Cluster(link);
                cur.generation += 1;
                drop(cur);
                tracing::warn!("cluster node failure: reconnected with a fresh slot map");
                true
            }
            _ => false,
        }
    }

    /// Run `f` on the current link; on Sentinel, a READONLY or connection failure looks the
    /// primary up again and runs `f` once more on the new one.
    async fn with_link<T, F, Fut>(&self, f: F) -> redis::RedisResult<T>
    where
        F: Fn(Link) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.is_suspect() && !self.failover(self.generation()).await {
            // Never write to an address the sentinels no longer name: it may be a former
            // primary restarted empty, whose writes would be wiped when it rejoins as replica.
            return Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "no reachable primary named by the sentinels yet (failover in progress?)",
            )));
        }
        let (link, generation) = self.link();
        match f(link).await {
            Err(e) if should_switch(&e) && self.failover(generation).await => f(self.link().0).await,
            r => r,
        }
    }

    /// SCRIPT LOAD every script (on every primary of a cluster); check Redis computed the SHA
    /// we call them by.
    pub async fn load_scripts(&self) -> Result<()> {
        let (link, _) = self.link();
        for name in ScriptName::ALL {
            let sha: String = link
                .query(redis::cmd("SCRIPT").arg("LOAD").arg(&name.script().body))
                .await
                .map_err(|e| self.err(e, ""))?;
            if sha != name.script().sha {
                return Err(Error::Protocol(format!(
                    "SCRIPT LOAD of {} returned sha {sha}, expected {}",
                    name.file_stem(),
                    name.script().sha
                )));
            }
        }
        tracing::debug!(addr = %self.addr(), schema = SCHEMA_VERSION, "scripts loaded");
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
        let v = match self
            .with_link(|l| async move { l.query::<Value>(&call.cmd).await })
            .await
        {
            Ok(v) => v,
            Err(e) if is_noscript(&e) => {
                self.load_scripts().await?;
                self.with_link(|l| async move { l.query::<Value>(&call.cmd).await })
                    .await
                    .map_err(|e| self.err(e, queue))?
            }
            Err(e) => return Err(self.err(e, queue)),
        };
        if durable(call.script) {
            self.wait_replicas(queue).await?;
        }
        Ok(v)
    }

    /// `[redis] wait_replicas`: block until that many replicas acknowledged this connection's
    /// writes so far, or fail naming the setting.
    async fn wait_replicas(&self, queue: &str) -> Result<()> {
        let Some((n, timeout)) = self.inner.wait else {
            return Ok(());
        };
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(n).arg(timeout.as_millis() as u64);
        let (link, _) = self.link();
        let got: i64 = tokio::time::timeout(timeout + self.inner.response_timeout, link.query(&cmd))
            .await
            .map_err(|_| Error::Timeout {
                addr: self.addr(),
                timeout: timeout + self.inner.response_timeout,
            })?
            .map_err(|e| self.err(e, queue))?;
        if got < n as i64 {
            return Err(Error::NotDurable {
                addr: self.addr(),
                detail: format!(
                    "only {got} of the {n} replicas required by redis.wait_replicas acknowledged the write within redis.wait_timeout ({timeout:?}); it ran on the primary and may be lost if the primary fails now — check the replicas, or lower wait_replicas"
                ),
            });
        }
        Ok(())
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
        if let Ok(rs) = &r {
            if calls.iter().zip(rs).any(|(c, r)| durable(c.script) && r.is_ok()) {
                self.wait_replicas(queue).await?;
            }
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
                let pipe = &pipe;
                self.with_link(|l| async move { l.pipe::<Vec<Value>>(pipe).await })
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
                            addr: self.addr(),
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
                        } else if round == 0 && should_switch(&e) && self.failover(self.generation()).await {
                            again.push(i); // READONLY: it did not run; send it to the new primary
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
        self.with_link(|l| async move { l.query::<T>(cmd).await })
            .await
            .map_err(|e| self.err(e, ""))
    }

    /// A dedicated connection for blocking reads that wait up to `block` (≤ 10 s; XREAD
    /// BLOCK): no script call ever waits behind it.
    pub async fn blocking(&self, block: Duration) -> Result<Link> {
        let block = block.min(MAX_BLOCK);
        match &self.inner.source {
            Source::Cluster { blocking, .. } => blocking
                .get_async_connection()
                .await
                .map(Link::Cluster)
                .map_err(|e| self.err(e, "")),
            _ => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.connect_timeout))
                    .set_response_timeout(Some(block + self.inner.response_timeout));
                let client = self.current().client.expect("single-node client");
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map(Link::Plain)
                    .map_err(|e| self.err(e, ""))
            }
        }
    }

    /// A dedicated pub/sub connection (never shared with script calls). On a cluster, any node
    /// will do: PUBLISH (also from scripts) reaches every node.
    pub async fn pubsub(&self) -> Result<PubSub> {
        let clients: Vec<redis::Client> = match &self.inner.source {
            Source::Cluster { seeds, .. } => seeds.clone(),
            _ => vec![self.current().client.expect("single-node client")],
        };
        let mut last = None;
        for client in clients {
            let addr = client.get_connection_info().addr().to_string();
            match tokio::time::timeout(self.inner.connect_timeout, client.get_async_pubsub()).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => last = Some(Error::from_redis(e, &addr, "", self.inner.response_timeout)),
                Err(_) => {
                    last = Some(Error::Unreachable {
                        addr,
                        detail: format!("no pub/sub connection within {:?}", self.inner.connect_timeout),
                    })
                }
            }
        }
        Err(last.expect("at least one node"))
    }

    pub(crate) fn err(&self, e: redis::RedisError, queue: &str) -> Error {
        Error::from_redis(e, &self.addr(), queue, self.inner.response_timeout)
    }
}

/// Longest blocking read a dedicated connection is made for.
const MAX_BLOCK: Duration = Duration::from_secs(10);

/// Scripts whose acknowledgement `[redis] wait_replicas` makes durable.
fn durable(script: ScriptName) -> bool {
    matches!(script, ScriptName::Enqueue | ScriptName::Complete)
}

/// A reply or failure after which Sentinel users should look the primary up again (and
/// cluster users rebuild their connection).
fn should_switch(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        || e.is_timeout()
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}

/// What connecting needs from a config or the live connection.
trait Timeouts {
    fn connect(&self) -> Duration;
    fn response(&self) -> Duration;
}

impl Timeouts for RedisConfig {
    fn connect(&self) -> Duration {
        self.connect_timeout
    }
    fn response(&self) -> Duration {
        self.response_timeout
    }
}

impl Timeouts for Inner {
    fn connect(&self) -> Duration {
        self.connect_timeout
    }
    fn response(&self) -> Duration {
        self.response_timeout
    }
}

/// A first plain connection gives a fast, precise error (refused, auth, timeout) instead of a
/// reconnect loop.
async fn probe(client: &redis::Client, t: &impl Timeouts, addr: &str) -> Result<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t.connect()))
        .set_response_timeout(Some(t.response()));
    let mut con = tokio::time::timeout(
        t.connect() + Duration::from_millis(100),
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    .map_err(|_| Error::Unreachable {
        addr: addr.to_string(),
        detail: format!("no connection within {:?}", t.connect()),
    })?
    .map_err(|e| Error::from_redis(e, addr, "", t.response()))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .map_err(|e| Error::from_redis(e, addr, "", t.response()))?;
    Ok(con)
}

async fn manager(client: &redis::Client, t: &impl Timeouts, addr: &str) -> Result<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(t.connect()))
        .set_response_timeout(Some(t.response()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client.clone(), cfg)
        .await
        .map_err(|e| Error::from_redis(e, addr, "", t.response()))
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Whether connecting logs [`crate::advice`] about the server's settings (no persistence, an
/// evicting maxmemory-policy) as warnings. On by default, so baton-worker, baton-scheduler and
/// library users warn once at start (and again on a new Sentinel primary). The `baton` CLI
/// turns it off: its commands would repeat the warning on every call, and `baton doctor`
/// reports the same findings on demand. Process-wide because it is a choice of the program, not
/// of a connection; the refusal of Redis < 7.0 does not depend on it.
static ADVICE_AT_CONNECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turn the settings warnings at connect on or off for this process (see [`ADVICE_AT_CONNECT`]).
pub fn set_advice_at_connect(on: bool) {
    ADVICE_AT_CONNECT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Refuse a Redis older than 7.0 (the scripts use `#!lua` flags and SET NX GET); when asked
/// (see [`set_advice_at_connect`]), warn about settings that can lose tasks. A warning check
/// that fails (e.g. CONFIG denied by ACL) is skipped: it is advice, not a requirement.
async fn check_server(con: &mut redis::aio::MultiplexedConnection, addr: &str) -> Result<()> {
    use crate::advice;
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("server").query_async(con).await;
    if let Ok(info) = info {
        let version = advice::version(addr, advice::info_field(&info, "redis_version").unwrap_or(""));
        if version.status == advice::Status::Fail {
            return Err(Error::Invalid(version.to_string()));
        }
    }
    if !ADVICE_AT_CONNECT.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(&advice::CONFIG_PARAMS[..])
        .query_async(con)
        .await;
    if let Ok(reply) = reply {
        for f in advice::server_config(addr, &reply) {
            if f.status != advice::Status::Ok {
                tracing::warn!("{f}");
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
