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

mod call;
mod dedicated;
mod eval;
mod failover;
mod server;
mod topology;

pub use call::Call;
use dedicated::MAX_BLOCK;
pub use server::set_advice_at_connect;

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::Cmd;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

impl Conn {
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

    /// Run a plain command on the shared connection.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.with_link(|l| async move { l.query::<T>(cmd).await })
            .await
            .map_err(|e| self.err(e, ""))
    }

    pub(crate) fn err(&self, e: redis::RedisError, queue: &str) -> Error {
        Error::from_redis(e, &self.addr(), queue, self.inner.response_timeout)
    }
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
