//! Flow control settings: a queue's rate limit as written in config (`rate = "200/s"`) and as the
//! scripts receive it (µs between two tasks at the sustained rate). The limits themselves are
//! enforced in `lua/include/limits.lua`; see docs/flow-control.md.

use crate::bounds;
use serde::Deserialize;

/// The largest weight of a group under fair queueing (`lua/group_set.lua` refuses more).
pub const GROUP_WEIGHT_MAX: u32 = 10_000;

/// The order claim and dispatch take a queue's pending tasks in.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fairness {
    /// Priority, then first in first out, whatever the task's group.
    #[default]
    Fifo,
    /// Weighted fair queueing across the groups that have pending tasks (priority, then first
    /// in first out, within a group).
    Fair,
}

impl Fairness {
    /// The name the config and the configure script use.
    pub fn as_str(self) -> &'static str {
        match self {
            Fairness::Fifo => "fifo",
            Fairness::Fair => "fair",
        }
    }
}
use std::fmt;
use std::time::Duration;

/// A sustained rate: `count` tasks per `per`. Written `"<count>/<period>"`: `"200/s"`,
/// `"5/m"`, `"1000/h"`, `"10/30s"`, `"0.5/s"` (a bare unit means one of it).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rate {
    pub count: f64,
    pub per: Duration,
}

impl Rate {
    /// Parse `"<count>/<period>"`, refusing what the scripts could not enforce, with the fix.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let example = "write it as tasks per period, e.g. \"200/s\", \"5/m\", \"1000/h\" or \"10/30s\"";
        let (count, period) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a rate: {example}"))?;
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the count {:?} is not a number: {example}", count.trim()))?;
        if !count.is_finite() || count <= 0.0 {
            return Err(format!(
                "{s:?}: the count must be a positive number (a rate of zero would never run a task; \
                 pause the queue instead, or leave rate unset for no limit)"
            ));
        }
        let period = period.trim();
        let unit_only = period.chars().all(|c| c.is_ascii_alphabetic());
        let text = if unit_only {
            format!("1{period}")
        } else {
            period.to_string()
        };
        let per = humantime::parse_duration(&text)
            .map_err(|e| format!("{s:?}: the period {period:?} is not a duration ({e}): {example}"))?;
        let rate = Rate { count, per };
        let b = bounds::configure::RATE_INTERVAL_US;
        let us = rate.interval_us_exact();
        if us < b.min.max(1) as f64 {
            return Err(format!(
                "{s:?} is faster than the fastest rate the scripts enforce (one task per µs: \"1000000/s\")"
            ));
        }
        if us > b.max as f64 + 0.5 {
            return Err(format!(
                "{s:?} is slower than the slowest rate the scripts enforce (one task per {})",
                humantime::format_duration(Duration::from_micros(b.max as u64))
            ));
        }
        Ok(rate)
    }

    fn interval_us_exact(&self) -> f64 {
        self.per.as_secs_f64() * 1e6 / self.count
    }

    /// µs between two tasks at this rate, as configure receives it.
    pub fn interval_us(&self) -> u64 {
        self.interval_us_exact().round().max(1.0) as u64
    }

    /// Tasks per second.
    pub fn per_second(&self) -> f64 {
        self.count / self.per.as_secs_f64()
    }
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Rate::parse(&s)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// A rate as stored in Redis (µs between tasks), shown as tasks per second.
pub fn per_second_of_interval(us: u64) -> f64 {
    if us == 0 {
        0.0
    } else {
        1e6 / us as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_to_intervals() {
        assert_eq!(Rate::parse("200/s").unwrap().interval_us(), 5000);
        assert_eq!(Rate::parse("5/m").unwrap().interval_us(), 12_000_000);
        assert_eq!(Rate::parse("10/30s").unwrap().interval_us(), 3_000_000);
        assert_eq!(Rate::parse("0.5/s").unwrap().interval_us(), 2_000_000);
        assert_eq!(Rate::parse(" 3 / 1h ").unwrap().interval_us(), 1_200_000_000);
    }

    #[test]
    fn group_rates_are_parsed_within_the_scripts_bounds() {
        // Rate::parse checks against the queue rate's bounds; group_rate, group_burst and
        // `baton groups set --rate/--burst` reuse it, so the scripts must take the same ranges
        let (q, g, set) = (
            bounds::configure::RATE_INTERVAL_US,
            bounds::configure::GROUP_RATE_INTERVAL_US,
            bounds::group_set::VALUE,
        );
        assert_eq!((q.min, q.max), (g.min, g.max));
        assert!(set.min <= q.min && set.max >= q.max);
        let (b, gb) = (bounds::configure::BURST, bounds::configure::GROUP_BURST);
        assert_eq!((b.min, b.max), (gb.min, gb.max));
    }

    #[test]
    fn bad_rates_are_refused_with_the_fix() {
        for (bad, says) in [
            ("0/s", "positive"),
            ("-5/s", "positive"),
            ("abc/s", "not a number"),
            ("5/fortnight", "not a duration"),
            ("200", "not a rate"),
            ("2000000/s", "fastest"),
            ("1/2days", "slowest"),
            ("NaN/s", "positive"),
        ] {
            let e = Rate::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
