//! Real Redis topologies started by the tests on free loopback ports and stopped by PID:
//! primary + replica + 3 sentinels, and a 3-primary cluster with one replica each.
#![allow(dead_code)]

use super::web::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One redis-server process (data node or sentinel) in its own directory.
pub struct Node {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Start a new node on a free port chosen by `pick`; `make` builds its directory and
    /// arguments for that port. A port taken between the pick and the server's bind (another
    /// process's outgoing connection, say) makes redis-server exit at start: try another port.
    fn spawn_on(tag: &str, pick: fn() -> u16, make: impl Fn(u16, &PathBuf) -> Vec<String>) -> Node {
        let mut last = 0;
        for _ in 0..5 {
            let port = pick();
            let dir = node_dir(tag, port);
            std::fs::create_dir_all(&dir).unwrap();
            let args = make(port, &dir);
            let mut n = Node {
                port,
                dir,
                args,
                child: None,
            };
            if n.try_start() {
                return n;
            }
            last = port;
        }
        panic!("redis-server ({tag}) did not start on five free ports (last {last})");
    }

    /// A plain data node (no persistence) on `port`, started and answering.
    pub fn data(port: u16) -> Node {
        let dir = node_dir("data", port);
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = Node {
            port,
            args: data_args(port, &[]),
            dir,
            child: None,
        };
        n.start();
        n
    }

    /// A data node that keeps everything in its append-only file (fsync on every write), on a
    /// free port: killed and started again, it comes back with every acknowledged write.
    pub fn durable() -> Node {
        Node::spawn_on("durable", free_port, |p, _| {
            data_args(p, &["--appendonly", "yes", "--appendfsync", "always"])
        })
    }

    /// Restart a data node (a killed primary: it has no persistence, so it comes back empty) as a
    /// replica of `primary`. Never bring an empty node back as a primary: if the sentinels ever
    /// promoted it again, the others would resync from it and lose everything.
    pub fn restart_as_replica_of(&mut self, primary: u16) {
        self.args = data_args(self.port, &["--replicaof", "127.0.0.1", &primary.to_string()]);
        self.start();
    }

    /// (Re)start the process with its arguments on its port, and wait until it answers.
    pub fn start(&mut self) {
        assert!(
            self.try_start(),
            "redis-server on port {} did not start",
            self.port
        );
    }

    /// Start the process; false if it exited or did not answer within 10 s.
    fn try_start(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server (scripts/test installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL by PID.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run a command with redis-cli against this node.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port below the kernel's ephemeral range whose cluster bus port (port + 10000) is free
/// too: outgoing connections never take either of them while the node starts.
fn free_cluster_port() -> u16 {
    use std::net::TcpListener;
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    let mut x = seed | 1;
    loop {
        // xorshift: a spread of candidates in 12000..22000 (bus ports 22000..32000)
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = 12000 + (x % 10000) as u16;
        let a = TcpListener::bind(("127.0.0.1", p));
        let b = TcpListener::bind(("127.0.0.1", p + 10000));
        if a.is_ok() && b.is_ok() {
            return p;
        }
    }
}

fn node_dir(tag: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("baton-topo-{}-{tag}-{port}", std::process::id()))
}

fn data_args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        "--loglevel",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A primary, one replica and three sentinels watching them as "mymaster".
pub struct SentinelSet {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
}

pub const MASTER: &str = "mymaster";

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let primary = Node::spawn_on("primary", free_port, |p, _| data_args(p, &[]));
        let pp = primary.port;
        let replica = Node::spawn_on("replica", free_port, |p, _| {
            data_args(p, &["--replicaof", "127.0.0.1", &pp.to_string()])
        });
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Node::spawn_on("sentinel", free_port, |sp, dir| {
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {sp}\nbind 127.0.0.1\ndaemonize no\nloglevel warning\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {pp} 2\n\
                     sentinel down-after-milliseconds {MASTER} 2000\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                        dir.display()
                    ),
                )
                .unwrap();
                vec![conf.display().to_string(), "--sentinel".into()]
            }));
        }
        let set = SentinelSet {
            primary,
            replica,
            sentinels,
        };
        set.wait_ready();
        set
    }

    /// Sentinel URLs for `[redis] sentinel.nodes`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// The port the sentinels name as primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = self.sentinels[0].cli(&["SENTINEL", "get-master-addr-by-name", MASTER]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// Wait until the replica is in sync and every sentinel knows the replica and the others.
    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let synced = self
                .replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up");
            let known = self.sentinels.iter().all(|s| {
                let info = s.cli(&["SENTINEL", "master", MASTER]);
                let field = |name: &str| {
                    let lines: Vec<&str> = info.lines().collect();
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                field("num-slaves") == "1" && field("num-other-sentinels") == "2"
            });
            if synced && known {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sentinel set did not settle"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the sentinels name a primary other than `old`; returns its port.
    pub fn wait_failover(&self, old: u16, within: Duration) -> u16 {
        let start = Instant::now();
        loop {
            if let Some(p) = self.primary_port().filter(|p| *p != old) {
                return p;
            }
            assert!(start.elapsed() < within, "no failover within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The data node listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        if self.primary.port == port {
            &mut self.primary
        } else {
            &mut self.replica
        }
    }
}

/// A Redis Cluster of `primaries` primaries with one replica each (replicas 0 = none).
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start(primaries: usize, replicas: usize) -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            nodes.push(Node::spawn_on("cluster", free_cluster_port, |p, _| {
                data_args(
                    p,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        // a replica may take over whatever the age of its data (test clusters
                        // are idle at times, and the default refuses after long idle periods)
                        "--cluster-replica-validity-factor",
                        "0",
                    ],
                )
            }));
        }
        if primaries == 1 && replicas == 0 {
            // redis-cli --cluster create wants 3 primaries: one node takes every slot itself.
            assert_eq!(nodes[0].cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), "OK");
            let c = Cluster { nodes };
            c.wait_ok();
            return c;
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create").args(&addrs);
        cmd.arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes");
        let out = cmd.output().expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = Cluster { nodes };
        c.wait_ok();
        c
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Wait until every live node reports cluster_state:ok and every live replica is in sync
    /// with its primary.
    pub fn wait_ok(&self) {
        let start = Instant::now();
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let role = n.cli(&["ROLE"]);
                n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && (!role.starts_with("slave")
                        || n.cli(&["INFO", "replication"]).contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ports of the current primaries that serve slots.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter(|n| n.cli(&["ROLE"]).starts_with("master"))
            .map(|n| n.port)
            .collect()
    }

    /// The port of the primary serving `key`.
    pub fn primary_of(&self, key: &str) -> u16 {
        self.try_primary_of(key)
            .unwrap_or_else(|slot| panic!("no primary serves slot {slot}"))
    }

    /// The port of the primary serving `key`, or the slot when none does (mid-failover).
    pub fn try_primary_of(&self, key: &str) -> Result<u16, u32> {
        let slot = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .unwrap()
            .cli(&["CLUSTER", "KEYSLOT", key]);
        // Ask any node which node owns the slot: CLUSTER NODES lists "myself" ranges per node.
        let table = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .unwrap()
            .cli(&["CLUSTER", "NODES"]);
        let slot: u32 = slot.parse().unwrap();
        for line in table.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let port: u16 = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            for r in &f[8..] {
                let (a, b) = match r.split_once('-') {
                    Some((a, b)) => (
                        a.parse::<u32>().unwrap_or(u32::MAX),
                        b.parse::<u32>().unwrap_or(0),
                    ),
                    None => (
                        r.parse::<u32>().unwrap_or(u32::MAX),
                        r.parse::<u32>().unwrap_or(0),
                    ),
                };
                if a <= slot && slot <= b {
                    return Ok(port);
                }
            }
        }
        Err(slot)
    }

    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).expect("node")
    }
}
