//! The `baton` command line for people and scripts.
//!
//! Output is for people by default and JSON with `--json`. Exit codes are stable so scripts can
//! rely on them (see [`exit`]).

mod commands;
mod doctor;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Exit codes of `baton`.
pub mod exit {
    /// Success (for `result`: the task completed).
    pub const OK: i32 = 0;
    /// An error: Redis unreachable, bad config, bad input...
    pub const ERROR: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// The task is dead (in the dead-letter set).
    pub const DEAD: i32 = 3;
    /// The task was cancelled.
    pub const CANCELLED: i32 = 4;
    /// The task has not finished within the wait (or at all, without `--wait`).
    pub const NOT_FINISHED: i32 = 5;
    /// No such task (never enqueued, or dropped after its retention).
    pub const NOT_FOUND: i32 = 6;
}

/// Baton: a distributed task scheduler on Redis.
#[derive(Parser, Debug)]
#[command(name = "baton", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file (default: $BATON_CONFIG, else config/baton.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error, 2 usage, 3 task dead, 4 task cancelled, \
5 task not finished (wait timed out), 6 no such task; doctor: 1 when a check fails.";

#[derive(Args, Debug, Clone)]
pub struct QueueArg {
    /// Queue name.
    #[arg(long, short, default_value = "default")]
    pub queue: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Enqueue a task (prints its id), or one task per line of a file.
    Enqueue(Box<EnqueueArgs>),
    /// Show a task: state, attempts, last error, result.
    Status {
        #[command(flatten)]
        queue: QueueArg,
        /// Task id.
        id: String,
    },
    /// Print a task's result on stdout (exit 0), or why there is none (exit 3-6).
    Result {
        #[command(flatten)]
        queue: QueueArg,
        /// Task id.
        id: String,
        /// Wait this long for the task to finish (e.g. 30s).
        #[arg(long, value_parser = duration)]
        wait: Option<Duration>,
    },
    /// Task counts per state and throughput, per queue.
    Stats {
        /// Only this queue (default: every queue named in the config).
        #[arg(long, short)]
        queue: Option<String>,
        /// Measure throughput over this long (0s: skip).
        #[arg(long, value_parser = duration, default_value = "1s")]
        sample: Duration,
    },
    /// Registered workers of a queue.
    Workers {
        #[command(flatten)]
        queue: QueueArg,
    },
    /// The dead-letter set: list, requeue or purge.
    Dead {
        #[command(subcommand)]
        action: DeadAction,
    },
    /// A queue's groups (tenants) under fair queueing: list them, set a weight, reset.
    Groups {
        #[command(subcommand)]
        action: GroupsAction,
    },
    /// Stop handing out tasks of a queue (enqueue and running tasks go on).
    Pause {
        #[command(flatten)]
        queue: QueueArg,
    },
    /// Hand out tasks of a paused queue again.
    Resume {
        #[command(flatten)]
        queue: QueueArg,
    },
    /// The Lua scripts: list them, or dump them (flattened) with the manifest for other languages.
    Scripts {
        #[command(subcommand)]
        action: ScriptsAction,
    },
    /// Lifecycle events of a queue: the last ones, or live with --follow (read from the queue's
    /// events stream, so a listener restarted with --after misses nothing).
    Events {
        #[command(flatten)]
        queue: QueueArg,
        /// Keep printing new events until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Print this many past events first (without --after).
        #[arg(long, default_value_t = 20)]
        last: usize,
        /// Start after this event id (the `id` of the last event handled) instead of --last.
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// Check the deployment (Redis version and settings, ACL rights, scripts, clock, workers of
    /// each configured queue) and print each finding with its fix; exit 1 on any failure,
    /// 0 when only warnings remain.
    Doctor,
    /// Flows (a DAG of tasks submitted at once) and batches: submit, status, seal, cancel.
    Flow {
        #[command(subcommand)]
        action: FlowAction,
    },
    /// Cancel unfinished tasks.
    Cancel {
        #[command(flatten)]
        queue: QueueArg,
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub queue: QueueArg,
    /// Task kind (the handler that runs it).
    #[arg(long, short)]
    pub kind: String,
    /// Payload: JSON text, @FILE to read a file, or - to read stdin.
    #[arg(
        long,
        short,
        conflicts_with = "from_file",
        required_unless_present = "from_file"
    )]
    pub payload: Option<String>,
    /// Enqueue one task per line of FILE (the line is the payload); prints the ids in order.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Do not require payloads to be JSON.
    #[arg(long)]
    pub raw: bool,
    /// Higher runs first (-1000..1000).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Run no sooner than this from now (e.g. 10s, 5m).
    #[arg(long, value_parser = duration)]
    pub delay: Option<Duration>,
    /// Attempts before the task goes to the dead-letter set.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Execution timeout of one attempt.
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// No run starts later than this from now (e.g. 10m): a task still waiting then goes to the
    /// dead-letter set unrun, with the reason.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
    /// The task's group (tenant, customer, API key): on a queue with fairness = "fair" the
    /// groups that have work share the workers by their weights.
    #[arg(long, value_name = "KEY")]
    pub group: Option<String>,
    /// What the task counts for under the rate limits of its queue and group (default 1).
    #[arg(long, value_name = "N")]
    pub cost: Option<u32>,
    /// Dependencies: run only after these tasks have finished (ids, comma-separated; QUEUE/ID
    /// for a task of another queue); until then the task is `waiting`.
    #[arg(long, value_name = "ID,ID", value_delimiter = ',', conflicts_with_all = ["delay", "debounce"])]
    pub after: Vec<String>,
    /// With --after: what a dependency that ended dead or cancelled does: fail (the task ends the
    /// same way, unrun), continue or ignore (it runs).
    #[arg(long, value_name = "POLICY", default_value = "fail", value_parser = crate::OnFailure::parse, requires = "after")]
    pub on_failure: crate::OnFailure,
    /// A repeated enqueue with the same key returns the first task's id.
    #[arg(long, conflicts_with = "throttle")]
    pub idempotency_key: Option<String>,
    /// Unique while active: while a task with this key is pending, delayed or running, print its
    /// id instead of enqueuing another (free again once it finishes, however it ends).
    #[arg(long)]
    pub unique: Option<String>,
    /// At most one task per KEY per --window: a later enqueue within the window prints the
    /// first task's id.
    #[arg(long, value_name = "KEY", requires = "window", conflicts_with = "debounce")]
    pub throttle: Option<String>,
    /// Debounce: run --window after the last enqueue with KEY; repeats while the task waits
    /// replace its payload and push it back, never past --max-wait after the first.
    #[arg(long, value_name = "KEY", requires_all = ["window", "max_wait"], conflicts_with = "delay")]
    pub debounce: Option<String>,
    /// The --throttle or --debounce window (e.g. 10s).
    #[arg(long, value_parser = duration)]
    pub window: Option<Duration>,
    /// The --debounce limit: the task runs at most this long after the first enqueue.
    #[arg(long, value_parser = duration, requires = "debounce")]
    pub max_wait: Option<Duration>,
    /// Wait this long for the result(s): prints the result (one task) or a summary (file).
    #[arg(long, value_parser = duration)]
    pub wait: Option<Duration>,
}

#[derive(Subcommand, Debug)]
pub enum ScriptsAction {
    /// Name, version and SHA1 of every script.
    List,
    /// Write every script, includes resolved, and manifest.json (with SHA1s) to DIR.
    Dump {
        /// Target directory (created if needed).
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupsAction {
    /// Groups with pending tasks (next served first), then groups with a weight set.
    List {
        #[command(flatten)]
        queue: QueueArg,
        /// Most groups listed (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Change a group's settings at run time (no restart).
    Set {
        #[command(flatten)]
        queue: QueueArg,
        /// The group ("default": tasks enqueued without one).
        group: String,
        /// Shares of the workers this group gets among the groups with pending tasks (1-10000).
        #[arg(long)]
        weight: Option<u32>,
        /// The group's own cap on tasks running at once (0 = no cap, even under the queue's
        /// group_concurrency).
        #[arg(long)]
        concurrency: Option<u32>,
        /// The group's own rate limit, tasks per period ("5/s", "100/m"; "none" = no rate
        /// limit, even under the queue's group_rate).
        #[arg(long, value_parser = group_rate)]
        rate: Option<u64>,
        /// The burst of the group's own rate limit: tasks it may start at once after an idle
        /// spell (1 = evenly spaced).
        #[arg(long)]
        burst: Option<u32>,
    },
    /// Put a group back to the defaults (weight 1, the queue's group_concurrency, group_rate
    /// and group_burst).
    Reset {
        #[command(flatten)]
        queue: QueueArg,
        group: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FlowAction {
    /// Submit a flow from a JSON file ("-" = standard input): its tasks with names, kinds,
    /// payloads, `after` edges and failure policies, and callbacks (docs/workflows.md). Checked
    /// whole first (cycles, unknown names, the size limit): nothing is written on an error.
    /// Prints the flow's id.
    Submit {
        #[command(flatten)]
        queue: QueueArg,
        /// The flow file.
        file: String,
    },
    /// A flow's (or batch's) state, counts, callbacks and each task's state.
    Status {
        #[command(flatten)]
        queue: QueueArg,
        /// The flow's id.
        id: String,
    },
    /// Seal a flow or batch left open (its submitter stopped before sealing it): what waits for
    /// the seal runs, and its callbacks may fire.
    Seal {
        #[command(flatten)]
        queue: QueueArg,
        id: String,
    },
    /// Cancel a flow or batch: every task of it not finished yet is cancelled, with what waits
    /// for it; no callback fires.
    Cancel {
        #[command(flatten)]
        queue: QueueArg,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeadAction {
    /// List dead tasks, oldest first, with their last error.
    List {
        #[command(flatten)]
        queue: QueueArg,
        /// Most tasks listed.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move dead tasks back to pending with fresh attempts.
    Requeue {
        #[command(flatten)]
        queue: QueueArg,
        /// Task ids (or --all).
        ids: Vec<String>,
        /// Every dead task.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete dead tasks now.
    Purge {
        #[command(flatten)]
        queue: QueueArg,
        /// Task ids (or --all).
        ids: Vec<String>,
        /// Every dead task.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} — write durations like 500ms, 30s, 5m, 1h"))
}

/// `--rate` of a group: µs between two tasks, 0 for "none".
fn group_rate(s: &str) -> Result<u64, String> {
    if s.trim() == "none" {
        return Ok(0);
    }
    crate::flow::Rate::parse(s).map(|r| r.interval_us())
}

/// Run the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    // One call, one answer: no connect-time warnings about the server's settings on every
    // command; `baton doctor` reports them, baton-worker and baton-scheduler log them at start.
    crate::conn::set_advice_at_connect(false);
    if let Command::Doctor = cli.command {
        return doctor::run(cli.config, cli.json).await;
    }
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baton: {e}");
            exit::ERROR
        }
    }
}
