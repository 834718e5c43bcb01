//! The `baton` subcommands: dispatch, and the helpers they share. Each group of commands
//! lives in its own file.

use super::{exit, Cli, Command, DeadAction, EnqueueArgs, FlowAction, GroupsAction, ScriptsAction};
use crate::client::{Client, Outcome, Queue};
use crate::error::{Error, Result};
use crate::task::{State, Task, TaskSpec};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

mod dead;
mod enqueue;
mod flow;
mod groups;
mod inspect;
mod scripts;
mod stats;

use dead::{cancel, dead, pause};
use enqueue::enqueue;
use flow::flow;
use groups::groups;
use inspect::{events, result, status};
use scripts::scripts;
use stats::{stats, workers};

pub(super) async fn run(cli: Cli) -> Result<i32> {
    if let Command::Scripts { action } = &cli.command {
        return scripts(action, cli.json); // needs no Redis
    }
    let config = crate::process::load_config(cli.config.clone())?;
    let client = Client::connect(config).await?;
    let json = cli.json;
    match cli.command {
        Command::Enqueue(args) => enqueue(&client, *args, json).await,
        Command::Status { queue, id } => status(&client.queue(&queue.queue)?, &id, json).await,
        Command::Result { queue, id, wait } => result(&client.queue(&queue.queue)?, &id, wait).await,
        Command::Stats { queue, sample } => stats(&client, queue, sample, json).await,
        Command::Workers { queue } => workers(&client.queue(&queue.queue)?, json).await,
        Command::Dead { action } => dead(&client, action, json).await,
        Command::Groups { action } => groups(&client, action, json).await,
        Command::Flow { action } => flow(&client, action, json).await,
        Command::Pause { queue } => pause(&client.queue(&queue.queue)?, true, json).await,
        Command::Resume { queue } => pause(&client.queue(&queue.queue)?, false, json).await,
        Command::Events {
            queue,
            follow,
            last,
            after,
        } => events(&client.queue(&queue.queue)?, follow, last, after, json).await,
        Command::Cancel { queue, ids } => cancel(&client.queue(&queue.queue)?, &ids, json).await,
        Command::Scripts { .. } => unreachable!("handled above"),
        Command::Doctor => unreachable!("handled in cli::run"),
    }
}

pub(super) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-"),
    );
    pb
}

pub(super) fn report(json: bool, what: &str, n: u64) {
    if json {
        println!("{}", serde_json::json!({ what: n }));
    } else {
        println!("{what} {n}");
    }
}
