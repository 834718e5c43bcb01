//! Config keys whose values become script arguments, with the scripts' limits they must fit.
//!
//! The limits come from `lua/manifest.json` (through [`crate::bounds`]), never from a copy:
//! a key feeding several arguments (a lease is sent to claim, take, heartbeat and dispatch, and
//! three leases are reclaim's worker silence) gets the tightest of them. Validation walks this
//! table, so a value any script would refuse is refused at start, naming the key — not by
//! every call at run time.

use super::QueueConfig;
use crate::bounds::{self, Bound};
use std::time::Duration;

/// How a key's value is written and sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A humantime duration, sent in whole milliseconds.
    Millis,
    /// A plain integer.
    Count,
}

/// One bounded config key.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// The key inside its table (`lease` of `[queues.<name>]`, `batch` of `[scheduler]`).
    pub key: &'static str,
    pub unit: Unit,
    /// Smallest value the product accepts, when stricter than the scripts (a lease shorter
    /// than 100ms cannot be renewed in time).
    pub floor: Option<i64>,
    /// The script arguments the value feeds, each with the factor it is multiplied by.
    pub feeds: &'static [(Bound, i64)],
}

impl Limit {
    /// The accepted range: the intersection of every fed argument's range, and the floor.
    pub fn range(&self) -> (i64, i64) {
        let mut lo = self.floor.unwrap_or(i64::MIN);
        let mut hi = i64::MAX;
        for (b, factor) in self.feeds {
            lo = lo.max(div_ceil(b.min, *factor));
            hi = hi.min(b.max / factor);
        }
        (lo, hi)
    }

    /// The value as a number of this key's unit.
    pub fn render(&self, v: i64) -> String {
        match self.unit {
            Unit::Millis => humantime::format_duration(Duration::from_millis(v.max(0) as u64)).to_string(),
            Unit::Count => v.to_string(),
        }
    }

    /// Refuse `v` outside the range, naming `full_key` and the limits.
    pub fn check(&self, full_key: &str, v: i64) -> Result<(), String> {
        let (lo, hi) = self.range();
        if (lo..=hi).contains(&v) {
            return Ok(());
        }
        let feeds: Vec<String> = self
            .feeds
            .iter()
            .map(|(b, _)| format!("{}.{}", b.script, b.arg))
            .collect();
        Err(format!(
            "{full_key}: must be between {} and {}, got {} (the limit of the script argument {})",
            self.render(lo),
            self.render(hi),
            self.render(v),
            feeds.join(", ")
        ))
    }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    if a <= 0 {
        a / b
    } else {
        (a + b - 1) / b
    }
}

/// The value of a duration key as the scripts receive it.
pub(crate) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A bounded key of `[queues.<name>]` and how to read it.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimit {
    pub limit: Limit,
    /// The value as the scripts receive it (milliseconds for durations).
    pub value: fn(&QueueConfig) -> i64,
}

/// Keys of `[queues.<name>]`.
pub const QUEUE: &[QueueLimit] = &[
    QueueLimit {
        limit: Limit {
            key: "lease",
            unit: Unit::Millis,
            floor: Some(100),
            feeds: &[
                (bounds::claim::LEASE_MS, 1),
                (bounds::take::LEASE_MS, 1),
                (bounds::heartbeat::LEASE_MS, 1),
                (bounds::dispatch::LEASE_MS, 1),
                // a worker silent for three leases leaves the registry
                (bounds::reclaim::WORKER_TTL_MS, 3),
            ],
        },
        value: |q| millis(q.lease),
    },
    QueueLimit {
        limit: Limit {
            key: "heartbeat",
            unit: Unit::Millis,
            floor: Some(1),
            // push dispatch counts a worker live for 1.5 heartbeats (bounded here by 2)
            feeds: &[(bounds::dispatch::ALIVE_MS, 2)],
        },
        value: |q| millis(q.heartbeat),
    },
    QueueLimit {
        limit: Limit {
            key: "max_attempts",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::enqueue::MAX_ATTEMPTS, 1)],
        },
        value: |q| q.max_attempts as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "backoff_base",
            unit: Unit::Millis,
            floor: None,
            feeds: &[(bounds::enqueue::BACKOFF_BASE_MS, 1)],
        },
        value: |q| millis(q.backoff_base),
    },
    QueueLimit {
        limit: Limit {
            key: "backoff_cap",
            unit: Unit::Millis,
            floor: None,
            feeds: &[(bounds::enqueue::BACKOFF_CAP_MS, 1)],
        },
        value: |q| millis(q.backoff_cap),
    },
    QueueLimit {
        limit: Limit {
            key: "timeout",
            unit: Unit::Millis,
            floor: None,
            feeds: &[(bounds::enqueue::TIMEOUT_MS, 1)],
        },
        value: |q| millis(q.timeout),
    },
    QueueLimit {
        limit: Limit {
            key: "result_ttl",
            unit: Unit::Millis,
            floor: None,
            feeds: &[
                (bounds::enqueue::RESULT_TTL_MS, 1),
                (bounds::complete::RESULT_TTL_MS, 1),
            ],
        },
        value: |q| millis(q.result_ttl),
    },
    QueueLimit {
        limit: Limit {
            key: "dead_ttl",
            unit: Unit::Millis,
            floor: None,
            feeds: &[
                (bounds::fail::DEAD_TTL_MS, 1),
                (bounds::reclaim::DEAD_TTL_MS, 1),
                (bounds::cancel::TTL_MS, 1),
            ],
        },
        value: |q| millis(q.dead_ttl),
    },
    QueueLimit {
        limit: Limit {
            key: "idempotency_ttl",
            unit: Unit::Millis,
            // a key is kept at least 1ms
            floor: Some(1),
            feeds: &[(bounds::enqueue::IDEM_TTL_MS, 1)],
        },
        value: |q| millis(q.idempotency_ttl),
    },
    QueueLimit {
        limit: Limit {
            key: "unique_ttl",
            unit: Unit::Millis,
            // a key is held at least 1ms
            floor: Some(1),
            feeds: &[(bounds::enqueue::UNIQUE_TTL_MS, 1)],
        },
        value: |q| millis(q.unique_ttl),
    },
    QueueLimit {
        limit: Limit {
            key: "max_payload",
            unit: Unit::Count,
            floor: Some(1),
            feeds: &[(bounds::enqueue::MAX_PAYLOAD, 1)],
        },
        value: |q| q.max_payload.min(i64::MAX as u64) as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "claim_batch",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::claim::N, 1), (bounds::take::N, 1)],
        },
        value: |q| q.claim_batch.min(i64::MAX as usize) as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "events_max_len",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::configure::EVENTS_MAX_LEN, 1)],
        },
        value: |q| q.events_max_len.min(i64::MAX as u64) as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "aging",
            unit: Unit::Millis,
            floor: None,
            feeds: &[(bounds::configure::AGING_MS, 1)],
        },
        value: |q| millis(q.aging),
    },
    QueueLimit {
        limit: Limit {
            key: "burst",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::configure::BURST, 1)],
        },
        value: |q| q.burst_or_default() as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "concurrency",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::configure::CONCURRENCY, 1)],
        },
        value: |q| q.concurrency as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "group_concurrency",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::configure::GROUP_CONCURRENCY, 1)],
        },
        value: |q| q.group_concurrency as i64,
    },
    QueueLimit {
        limit: Limit {
            key: "group_burst",
            unit: Unit::Count,
            floor: None,
            feeds: &[(bounds::configure::GROUP_BURST, 1)],
        },
        value: |q| q.group_burst.unwrap_or(1) as i64,
    },
];

/// `[scheduler] batch`: most tasks one maintenance call handles.
pub const SCHEDULER_BATCH: Limit = Limit {
    key: "batch",
    unit: Unit::Count,
    floor: None,
    feeds: &[
        (bounds::promote::LIMIT, 1),
        (bounds::reclaim::LIMIT, 1),
        (bounds::trim::LIMIT, 1),
        (bounds::dispatch::N, 1),
    ],
};

/// `[worker] capacity`: push dispatch never assigns a worker more than one batch at once.
pub const WORKER_CAPACITY: Limit = Limit {
    key: "capacity",
    unit: Unit::Count,
    floor: None,
    feeds: &[(bounds::dispatch::N, 1)],
};

/// `[scheduler.cron.<name>] priority`.
pub const CRON_PRIORITY: Limit = Limit {
    key: "priority",
    unit: Unit::Count,
    floor: None,
    feeds: &[(bounds::enqueue::PRIORITY, 1)],
};
