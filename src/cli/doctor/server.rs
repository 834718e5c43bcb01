//! Checks of the server itself: reachability, version, role and replication, topology,
//! persistence, eviction and memory.

use super::*;

/// Reachability, version, topology, role and replicas.
pub(super) async fn server(conn: &Conn, config: &Config, addr: &str, out: &mut Vec<Finding>) {
    let info: String = match conn.query(redis::cmd("INFO").arg("server")).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::warn(
                "redis",
                format!("{addr} reachable, but INFO server failed: {}", brief(&e)),
                "allow the user INFO (both ACL roles of docs/operations.md have it)",
            ));
            return;
        }
    };
    let version = advice::info_field(&info, "redis_version").unwrap_or("");
    out.push(Finding::ok("redis", format!("{addr} reachable, Redis {version}")));
    let v = advice::version(addr, version);
    if v.status != Status::Ok {
        out.push(v);
    }
    if config.redis.cluster.is_some() {
        cluster(conn, config.redis.wait_replicas, out).await;
        return;
    }
    match &config.redis.sentinel {
        Some(s) => out.push(Finding::ok(
            "topology",
            format!(
                "Sentinel: primary of {:?} named by {} sentinel(s) is {addr}",
                s.master,
                s.nodes.len()
            ),
        )),
        None => out.push(Finding::ok(
            "topology",
            "one server (redis.url): no automatic failover (see [redis] sentinel and cluster in docs/operations.md)",
        )),
    }
    match conn.query::<String>(redis::cmd("INFO").arg("replication")).await {
        Ok(repl) => {
            let role = advice::info_field(&repl, "role").unwrap_or("unknown");
            out.push(advice::role(addr, role));
            if role == "master" {
                let n = advice::info_field(&repl, "connected_slaves")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                out.push(advice::replicas(n, config.redis.wait_replicas));
            }
        }
        Err(e) => out.push(Finding::warn(
            "role",
            format!(
                "INFO replication failed ({}): role and replicas not checked",
                brief(&e)
            ),
            "allow the user INFO",
        )),
    }
}

/// Redis Cluster: the state, and the replicas of the least-replicated primary against
/// `wait_replicas`.
pub(super) async fn cluster(conn: &Conn, wait_replicas: u32, out: &mut Vec<Finding>) {
    let info: String = match conn.query(redis::cmd("CLUSTER").arg("INFO")).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::warn(
                "topology",
                format!(
                    "Redis Cluster: CLUSTER INFO failed ({}); state not checked",
                    brief(&e)
                ),
                "allow the user CLUSTER INFO and CLUSTER NODES, or check them by hand",
            ));
            return;
        }
    };
    let state = advice::info_field(&info, "cluster_state").unwrap_or("unknown");
    let nodes: String = conn
        .query(redis::cmd("CLUSTER").arg("NODES"))
        .await
        .unwrap_or_default();
    let shards = cluster_shards(&nodes);
    let replicas: usize = shards.iter().map(|s| s.1).sum();
    let msg = format!(
        "Redis Cluster: cluster_state {state}, {} primaries, {replicas} connected replica(s)",
        shards.len()
    );
    if state == "ok" {
        out.push(Finding::ok("topology", msg));
    } else {
        out.push(Finding::fail(
            "topology",
            format!("{msg}: slots without a live primary refuse their queues' calls"),
            "check CLUSTER NODES: every slot needs a reachable primary",
        ));
    }
    if let Some(least) = shards.iter().map(|s| s.1).min() {
        let mut f = advice::replicas(least as u32, wait_replicas);
        f.message = format!("least-replicated primary: {}", f.message);
        out.push(f);
    }
}

/// `(primary id, connected replicas)` of each live primary of a `CLUSTER NODES` reply.
pub(super) fn cluster_shards(nodes: &str) -> Vec<(String, usize)> {
    let rows: Vec<Vec<&str>> = nodes.lines().map(|l| l.split_whitespace().collect()).collect();
    let live = |r: &Vec<&str>| r.len() > 7 && r[7] == "connected" && !r[2].contains("fail");
    let mut shards: Vec<(String, usize)> = rows
        .iter()
        .filter(|r| live(r) && r[2].contains("master"))
        .map(|r| (r[0].to_string(), 0))
        .collect();
    for r in rows.iter().filter(|r| live(r) && r[2].contains("slave")) {
        if let Some(s) = shards.iter_mut().find(|s| s.0 == r[3]) {
            s.1 += 1;
        }
    }
    shards
}

/// Persistence, eviction, memory (CONFIG GET, INFO memory).
pub(super) async fn settings(conn: &Conn, addr: &str, out: &mut Vec<Finding>) {
    let reply: Result<Vec<String>, Error> = conn
        .query(redis::cmd("CONFIG").arg("GET").arg(&advice::CONFIG_PARAMS[..]))
        .await;
    match reply {
        Ok(r) => out.extend(advice::server_config(addr, &r)),
        Err(e) => out.push(Finding::warn(
            "persistence",
            format!("cannot read the server's settings ({}): persistence and eviction not checked", brief(&e)),
            "run baton doctor as a user allowed CONFIG GET, or check save, appendonly and maxmemory-policy by hand",
        )),
    }
    if let Ok(mem) = conn.query::<String>(redis::cmd("INFO").arg("memory")).await {
        let num = |k| {
            advice::info_field(&mem, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        out.push(advice::memory(num("used_memory"), num("maxmemory")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_counted_per_live_primary() {
        let nodes = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383
d 127.0.0.1:7003@17003 slave a 0 0 1 connected
e 127.0.0.1:7004@17004 slave b 0 0 2 connected
f 127.0.0.1:7005@17005 slave,fail c 0 0 3 disconnected
";
        let shards = cluster_shards(nodes);
        assert_eq!(shards, vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 0)]);
    }
}
