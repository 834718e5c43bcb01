//! Opening the connection for each topology: a URL (with TLS and ACL credentials), Sentinel
//! (the primary asked of the sentinels) or Cluster (seed nodes), each probed first so a
//! refused connection or a wrong password gives a precise error instead of a reconnect loop.

use super::server::check_server;
use super::{Conn, Current, Inner, Link, Source, Timeouts, MAX_BLOCK};
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::IntoConnectionInfo;
use std::sync::Arc;
use std::time::Duration;

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
}

/// A first plain connection gives a fast, precise error (refused, auth, timeout) instead of a
/// reconnect loop.
pub(super) async fn probe(
    client: &redis::Client,
    t: &impl Timeouts,
    addr: &str,
) -> Result<MultiplexedConnection> {
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

pub(super) async fn manager(
    client: &redis::Client,
    t: &impl Timeouts,
    addr: &str,
) -> Result<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(t.connect()))
        .set_response_timeout(Some(t.response()))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client.clone(), cfg)
        .await
        .map_err(|e| Error::from_redis(e, addr, "", t.response()))
}

/// Hide a password in a URL before printing it.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
