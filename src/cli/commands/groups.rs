//! `baton groups`: a queue's groups under fair queueing — list, set a weight, a cap or a rate,
//! reset.

use super::*;
use crate::ops::group_set::Change;

pub(super) async fn groups(client: &Client, action: GroupsAction, json: bool) -> Result<i32> {
    match action {
        GroupsAction::List { queue, limit } => {
            let max = crate::bounds::groups::LIMIT.max as usize;
            if limit == 0 || limit > max {
                return Err(Error::Invalid(format!(
                    "--limit must be between 1 and {max}, got {limit}"
                )));
            }
            let q = client.queue(&queue.queue)?;
            let list = q.groups(limit).await?;
            if json {
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
            } else if list.is_empty() {
                println!("queue {}: no group has pending tasks or settings", q.name());
            } else {
                println!(
                    "{:<32} {:>9} {:>7} {:>12} {:>9} {:>14}  STATE",
                    "GROUP", "BACKLOG", "WEIGHT", "VIRTUAL TIME", "RUNNING", "RATE"
                );
                for g in &list {
                    let vt = g
                        .virtual_time
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "-".into());
                    let running = match g.concurrency {
                        Some(c) => format!("{}/{c}", g.running),
                        None => "-".into(),
                    };
                    let rate = match g.rate_interval_us {
                        Some(us) => format!("{} b{}", rate_text(us), g.burst),
                        None => "-".into(),
                    };
                    let state = match (g.parked_until_ms, g.virtual_time) {
                        (Some(ms), _) => {
                            let by = match g.held_by.as_deref() {
                                Some("group_rate") => "its rate",
                                _ => "its cap",
                            };
                            format!("parked by {by} (looked at again by Redis ms {ms})")
                        }
                        (None, Some(_)) => "ready".into(),
                        (None, None) => "idle".into(),
                    };
                    println!(
                        "{:<32} {:>9} {:>7} {:>12} {:>9} {:>14}  {state}",
                        g.name, g.backlog, g.weight, vt, running, rate
                    );
                }
            }
            Ok(exit::OK)
        }
        GroupsAction::Set {
            queue,
            group,
            weight,
            concurrency,
            rate,
            burst,
        } => {
            let max = crate::flow::GROUP_WEIGHT_MAX;
            if let Some(w) = weight.filter(|w| *w == 0 || *w > max) {
                return Err(Error::Invalid(format!(
                    "--weight must be between 1 and {max}, got {w} (a group that should get nothing: cancel its tasks; back to the default: baton groups reset)"
                )));
            }
            let cmax = crate::bounds::group_set::VALUE.max;
            if let Some(c) = concurrency.filter(|c| *c as i64 > cmax) {
                return Err(Error::Invalid(format!(
                    "--concurrency must be between 0 (no cap) and {cmax}, got {c}"
                )));
            }
            let bb = crate::bounds::configure::GROUP_BURST;
            if let Some(b) = burst.filter(|b| !bb.contains((*b).into())) {
                return Err(Error::Invalid(format!(
                    "--burst must be between {} and {}, got {b}",
                    bb.min, bb.max
                )));
            }
            let mut changes = Vec::new();
            changes.extend(weight.map(Change::Weight));
            changes.extend(concurrency.map(Change::Concurrency));
            changes.extend(rate.map(Change::RateIntervalUs));
            changes.extend(burst.map(Change::Burst));
            if changes.is_empty() {
                return Err(Error::Invalid(
                    "say what to set: --weight W, --concurrency C (0 = no cap), --rate R (e.g. 5/s; none = no rate limit) and/or --burst B".into(),
                ));
            }
            let q = client.queue(&queue.queue)?;
            for c in changes {
                set(&q, &group, c, json).await?;
            }
            Ok(exit::OK)
        }
        GroupsAction::Reset { queue, group } => {
            set(&client.queue(&queue.queue)?, &group, Change::Reset, json).await?;
            Ok(exit::OK)
        }
    }
}

async fn set(q: &Queue, group: &str, change: Change, json: bool) -> Result<()> {
    let before = q.change_group(group, change).await?;
    let own = |v: Option<u64>, show: fn(u64) -> String| v.map_or_else(|| "the queue's".to_string(), show);
    let was_cap = own(before.concurrency, |c| c.to_string());
    let was_rate = own(before.rate_interval_us, rate_text);
    let was_burst = own(before.burst, |b| b.to_string());
    let (what, now, was) = match change {
        Change::Weight(w) => ("weight", w.to_string(), before.weight.to_string()),
        Change::Concurrency(c) => ("concurrency", c.to_string(), was_cap),
        Change::RateIntervalUs(us) => ("rate", rate_text(us), was_rate),
        Change::Burst(b) => ("burst", b.to_string(), was_burst),
        Change::Reset => (
            "settings",
            "weight 1, the queue's concurrency, rate and burst".to_string(),
            format!(
                "weight {}, concurrency {was_cap}, rate {was_rate}, burst {was_burst}",
                before.weight
            ),
        ),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"queue": q.name(), "group": group, "set": what, "value": now, "was": was})
        );
    } else {
        println!("queue {} group {group}: {what} {now} (was {was})", q.name());
    }
    Ok(())
}

/// A rate as stored (µs between tasks), "none" for 0: per second, or per minute, hour or day
/// when slower (so "1/h" does not show as "0/s").
fn rate_text(us: u64) -> String {
    if us == 0 {
        return "none".into();
    }
    let per_s = crate::flow::per_second_of_interval(us);
    let (n, unit) = [(1.0, "s"), (60.0, "m"), (3600.0, "h"), (86400.0, "day")]
        .into_iter()
        .map(|(k, u)| (per_s * k, u))
        .find(|(n, _)| *n >= 1.0)
        .unwrap_or((per_s * 86400.0, "day"));
    format!("{}/{unit}", (n * 1000.0).round() / 1000.0)
}
