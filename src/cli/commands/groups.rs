//! `baton groups`: a queue's groups under fair queueing — list, set a weight or a cap, reset.

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
                    "{:<32} {:>9} {:>7} {:>12} {:>9}  STATE",
                    "GROUP", "BACKLOG", "WEIGHT", "VIRTUAL TIME", "RUNNING"
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
                    let state = match (g.parked_until_ms, g.virtual_time) {
                        (Some(ms), _) => format!("parked by its cap (looked at again by Redis ms {ms})"),
                        (None, Some(_)) => "ready".into(),
                        (None, None) => "idle".into(),
                    };
                    println!(
                        "{:<32} {:>9} {:>7} {:>12} {:>9}  {state}",
                        g.name, g.backlog, g.weight, vt, running
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
            let mut changes = Vec::new();
            changes.extend(weight.map(Change::Weight));
            changes.extend(concurrency.map(Change::Concurrency));
            if changes.is_empty() {
                return Err(Error::Invalid(
                    "say what to set: --weight W and/or --concurrency C (0 = no cap)".into(),
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
    let was_cap = before
        .concurrency
        .map_or_else(|| "the queue's".to_string(), |c| c.to_string());
    let (what, now, was) = match change {
        Change::Weight(w) => ("weight", w.to_string(), before.weight.to_string()),
        Change::Concurrency(c) => ("concurrency", c.to_string(), was_cap),
        Change::Reset => (
            "settings",
            "weight 1, the queue's concurrency".to_string(),
            format!("weight {}, concurrency {was_cap}", before.weight),
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
