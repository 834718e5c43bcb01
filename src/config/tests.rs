//! Config parsing and validation, and the shipped config file.

use super::*;

mod parsing {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.queue("anything").max_attempts, 5);
    }

    #[test]
    fn reads_durations_and_queue_tables() {
        let c =
            Config::from_toml("[queues.default]\nlease = \"30s\"\nheartbeat = \"10s\"\nmax_attempts = 3\n")
                .unwrap();
        let q = c.queue("default");
        assert_eq!(q.lease, Duration::from_secs(30));
        assert_eq!(q.heartbeat, Duration::from_secs(10));
        assert_eq!(q.max_attempts, 3);
    }

    #[test]
    fn refuses_typos_bad_durations_and_impossible_values() {
        let e = Config::from_toml("[queues.default]\nlese = \"30s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lese"), "{e}");
        let e = Config::from_toml("[queues.default]\nlease = \"30 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lease"), "{e}");
        let e = Config::from_toml("[queues.default]\nlease = \"3s\"\nheartbeat = \"3s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("queues.default.heartbeat"), "{e}");
        let e = Config::from_toml("[worker]\nconcurrency = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker.concurrency"), "{e}");
    }
}

mod shipped_file {
    use super::*;

    /// config/baton.toml documents every knob with its default: it must parse, and its values
    /// must be the built-in defaults.
    #[test]
    fn shipped_config_is_valid_and_equals_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/baton.toml")).unwrap();
        let c = Config::from_toml(&text).unwrap();
        let d = Config::default();
        assert_eq!(format!("{:?}", c.redis), format!("{:?}", d.redis));
        assert_eq!(
            format!("{:?}", c.queue("default")),
            format!("{:?}", QueueConfig::default())
        );
        assert_eq!(format!("{:?}", c.worker), format!("{:?}", d.worker));
        assert_eq!(format!("{:?}", c.scheduler), format!("{:?}", d.scheduler));
    }

    /// The commented-out examples in config/baton.toml are valid config too.
    #[test]
    fn topologies_parse_and_conflicts_are_refused() {
        let s = Config::from_toml(
            "[redis]\nsentinel = { master = \"mymaster\", nodes = [\"redis://127.0.0.1:26379\"], password = \"p\" }\n",
        )
        .unwrap();
        let sc = s.redis.sentinel.unwrap();
        assert_eq!(
            (sc.master.as_str(), sc.nodes.len(), sc.password.as_deref()),
            ("mymaster", 1, Some("p"))
        );
        let c = Config::from_toml(
            "[redis]\ncluster = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n",
        )
        .unwrap();
        assert_eq!(c.redis.cluster.unwrap().len(), 2);
        let both = "[redis]\ncluster = [\"redis://a:1\"]\nsentinel = { master = \"m\", nodes = [\"redis://b:2\"] }\n";
        assert!(Config::from_toml(both)
            .unwrap_err()
            .to_string()
            .contains("set one topology"));
        let bad = Config::from_toml("[redis]\ncluster = [\"127.0.0.1:7000\"]\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("redis.cluster") && bad.contains("redis://"), "{bad}");
        let typo = Config::from_toml("[redis]\nsentinel = { master = \"m\", node = [\"redis://b:2\"] }\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("node"), "{typo}");
        let ca = Config::from_toml("[redis]\ntls_ca = \"/nonexistent/ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(ca.contains("redis.tls_ca"), "{ca}");
    }

    #[test]
    fn shipped_examples_are_valid() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/baton.toml")).unwrap();
        let uncommented: String = text
            .lines()
            .map(|l| {
                let body = l.strip_prefix("# ").unwrap_or("");
                let is_table = body.starts_with('[');
                let is_key = body.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if is_table || is_key {
                    body.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(&uncommented).unwrap();
        assert_eq!(c.worker.handlers.len(), 4);
        assert!(c.worker.handlers["report"].dependencies);
        assert_eq!(c.worker.handlers["echo"].exec, Some(vec!["cat".to_string()]));
        assert_eq!(c.scheduler.cron["nightly-report"].schedule, "0 3 * * *");
        assert_eq!(c.worker.capacity, Some(16));
    }
}

/// Every bounded key is accepted at each end of its range and refused one past it, with a
/// message naming the key. The ranges come from the scripts' manifest (see `limits`).
mod limits_walk {
    use super::*;
    use crate::config::limits::{self, Limit, Unit};

    fn lit(l: &Limit, v: i64) -> String {
        match l.unit {
            Unit::Millis => format!("\"{v}ms\""),
            Unit::Count => v.to_string(),
        }
    }

    /// Settings a queue key at `v` needs from its neighbours to be valid on its own.
    fn queue_toml(l: &Limit, v: i64) -> String {
        let lease_max = limits::QUEUE[0].limit.range().1;
        let mut t = format!("[queues.q]\n{} = {}\n", l.key, lit(l, v));
        match l.key {
            "lease" => t += "heartbeat = \"30ms\"\n",
            // a heartbeat must stay below the lease
            "heartbeat" => t += &format!("lease = \"{lease_max}ms\"\n"),
            "backoff_base" => t += &format!("backoff_cap = {}\n", lit(l, v.max(1_000))),
            "backoff_cap" => t += &format!("backoff_base = {}\n", lit(l, v.min(0))),
            // a burst belongs to a rate limit
            "burst" => t += "rate = \"1/s\"\n",
            // group caps belong to a fair queue
            "group_concurrency" => t += "fairness = \"fair\"\n",
            "group_burst" => t += "fairness = \"fair\"\ngroup_rate = \"1/s\"\n",
            _ => {}
        }
        t
    }

    fn accepted(text: &str) {
        if let Err(e) = Config::from_toml(text) {
            panic!("refused at its limit:\n{text}\n{e}");
        }
    }

    fn refused(text: &str, key: &str) {
        match Config::from_toml(text) {
            Ok(_) => panic!("accepted one past its limit:\n{text}"),
            Err(e) => assert!(e.to_string().contains(key), "error does not name {key}: {e}"),
        }
    }

    #[test]
    fn every_queue_key_at_its_limits_and_one_past() {
        let lease_max = limits::QUEUE[0].limit.range().1;
        for ql in limits::QUEUE {
            let l = &ql.limit;
            let (lo, hi) = l.range();
            let key = format!("queues.q.{}", l.key);
            // the heartbeat's own limit is beyond any valid lease: its reachable top is lease - 1
            let top = if l.key == "heartbeat" {
                hi.min(lease_max - 1)
            } else {
                hi
            };
            accepted(&queue_toml(l, top));
            refused(&queue_toml(l, hi + 1), &key);
            accepted(&queue_toml(l, lo.max(0)));
            if lo > 0 {
                refused(&queue_toml(l, lo - 1), &key);
            }
        }
    }

    #[test]
    fn scheduler_worker_and_cron_keys_at_their_limits_and_one_past() {
        let (lo, hi) = limits::SCHEDULER_BATCH.range();
        accepted(&format!("[scheduler]\nbatch = {hi}\n"));
        refused(&format!("[scheduler]\nbatch = {}\n", hi + 1), "scheduler.batch");
        refused(&format!("[scheduler]\nbatch = {}\n", lo - 1), "scheduler.batch");
        let (_, hi) = limits::WORKER_CAPACITY.range();
        accepted(&format!("[worker]\ncapacity = {hi}\n"));
        refused(&format!("[worker]\ncapacity = {}\n", hi + 1), "worker.capacity");
        let (lo, hi) = limits::CRON_PRIORITY.range();
        let cron =
            |p: i64| format!("[scheduler.cron.c]\nschedule = \"* * * * *\"\nkind = \"k\"\npriority = {p}\n");
        accepted(&cron(hi));
        accepted(&cron(lo));
        refused(&cron(hi + 1), "scheduler.cron.c.priority");
        refused(&cron(lo - 1), "scheduler.cron.c.priority");
    }

    /// The reported misconfiguration: a lease the claim script refuses is refused at start.
    #[test]
    fn a_two_day_lease_is_refused_naming_the_key() {
        let e = Config::from_toml("[queues.emails]\nlease = \"48h\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("queues.emails.lease") && e.contains("1day"), "{e}");
        let e = Config::from_toml("[queues.emails]\ndead_ttl = \"4000d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("queues.emails.dead_ttl"), "{e}");
    }

    /// Every bounded argument of a script whose value a config key sets is listed by a key.
    #[test]
    fn the_table_covers_the_config_fed_arguments() {
        use crate::bounds;
        let fed: Vec<(&str, &str)> = limits::QUEUE
            .iter()
            .map(|q| &q.limit)
            .chain([
                &limits::SCHEDULER_BATCH,
                &limits::WORKER_CAPACITY,
                &limits::CRON_PRIORITY,
            ])
            .flat_map(|l| l.feeds.iter().map(|(b, _)| (b.script, b.arg)))
            .collect();
        for b in [
            bounds::claim::LEASE_MS,
            bounds::claim::N,
            bounds::take::LEASE_MS,
            bounds::heartbeat::LEASE_MS,
            bounds::dispatch::LEASE_MS,
            bounds::dispatch::ALIVE_MS,
            bounds::dispatch::N,
            bounds::reclaim::DEAD_TTL_MS,
            bounds::reclaim::WORKER_TTL_MS,
            bounds::reclaim::LIMIT,
            bounds::fail::DEAD_TTL_MS,
            bounds::cancel::TTL_MS,
            bounds::complete::RESULT_TTL_MS,
            bounds::enqueue::MAX_PAYLOAD,
            bounds::enqueue::PRIORITY,
            bounds::enqueue::MAX_ATTEMPTS,
            bounds::enqueue::BACKOFF_BASE_MS,
            bounds::enqueue::BACKOFF_CAP_MS,
            bounds::enqueue::TIMEOUT_MS,
            bounds::enqueue::RESULT_TTL_MS,
            bounds::enqueue::IDEM_TTL_MS,
            bounds::promote::LIMIT,
            bounds::trim::LIMIT,
            bounds::configure::EVENTS_MAX_LEN,
        ] {
            assert!(
                fed.contains(&(b.script, b.arg)),
                "{}.{} is fed by no config key",
                b.script,
                b.arg
            );
        }
    }
}
