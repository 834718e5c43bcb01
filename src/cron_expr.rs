//! Cron expressions: parsing, and the occurrences in a time window. A leaf module, so config
//! validation and the scheduler's cron runner share it without depending on each other.

use chrono::{DateTime, Utc};
use croner::Cron;
use std::str::FromStr;

/// Most occurrences of one entry returned per window (after a long pause, older ones are
/// skipped).
pub const MAX_CATCH_UP: usize = 100;

/// Parse a cron expression (5 fields, or 6 with seconds first), UTC.
pub fn parse(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr).map_err(|e| {
        format!("{expr:?} is not a cron expression ({e}) — use 5 fields \"min hour day month weekday\" or 6 with seconds first, e.g. \"0 3 * * *\"")
    })
}

/// Occurrences in (after, until], whole seconds, at most MAX_CATCH_UP. (croner's iterator
/// keeps sub-second parts and skips occurrences, so the search steps from whole seconds.)
pub fn occurrences(cron: &Cron, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let Some(mut t) = DateTime::from_timestamp(after.timestamp(), 0) else {
        return out;
    };
    while out.len() < MAX_CATCH_UP {
        match cron.find_next_occurrence(&t, false) {
            Ok(next) if next <= until => {
                out.push(next);
                t = next;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields_and_refuses_garbage() {
        assert!(parse("0 3 * * *").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        let e = parse("every day").unwrap_err();
        assert!(e.contains("5 fields"), "{e}");
    }

    #[test]
    fn occurrences_are_the_same_for_every_replica() {
        let c = parse("*/10 * * * * *").unwrap();
        let start = DateTime::from_timestamp(1_700_000_003, 250_000_000).unwrap();
        let until = DateTime::from_timestamp(1_700_000_030, 0).unwrap();
        let got: Vec<i64> = occurrences(&c, start, until)
            .iter()
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(got, vec![1_700_000_010, 1_700_000_020, 1_700_000_030]);
        let every = parse("* * * * * *").unwrap();
        let got: Vec<i64> = occurrences(&every, start, until)
            .iter()
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(
            got,
            (1_700_000_004..=1_700_000_030).collect::<Vec<_>>(),
            "no second skipped"
        );
    }
}
