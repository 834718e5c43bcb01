//! `baton groups`: a queue's groups under fair queueing — list, set a weight, reset.

use super::*;

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
                    "{:<40} {:>9} {:>7} {:>14}",
                    "GROUP", "BACKLOG", "WEIGHT", "VIRTUAL TIME"
                );
                for g in &list {
                    let vt = g
                        .virtual_time
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "-".into());
                    println!("{:<40} {:>9} {:>7} {:>14}", g.name, g.backlog, g.weight, vt);
                }
            }
            Ok(exit::OK)
        }
        GroupsAction::Set { queue, group, weight } => {
            let max = crate::bounds::group_set::WEIGHT.max;
            if weight == 0 || weight as i64 > max {
                return Err(Error::Invalid(format!(
                    "--weight must be between 1 and {max}, got {weight} (a group that should get nothing: cancel its tasks; back to the default: baton groups reset)"
                )));
            }
            set(&client.queue(&queue.queue)?, &group, weight, json).await
        }
        GroupsAction::Reset { queue, group } => set(&client.queue(&queue.queue)?, &group, 0, json).await,
    }
}

async fn set(q: &Queue, group: &str, weight: u32, json: bool) -> Result<i32> {
    let before = q.set_group_weight(group, weight).await?;
    let now = weight.max(1);
    if json {
        println!(
            "{}",
            serde_json::json!({"queue": q.name(), "group": group, "weight": now, "was": before})
        );
    } else {
        println!("queue {} group {group}: weight {now} (was {before})", q.name());
    }
    Ok(exit::OK)
}
