//! The `exec` (and `shell`) handler: run a program per task.
//!
//! The payload goes to stdin, stdout becomes the result, a non-zero exit is a failure carrying
//! the tail of stderr. The program runs in its own process group, so a timeout or a lost lease
//! kills it and everything it started (not just the direct child). No shell is involved unless
//! the handler is configured with `shell = "..."`.

use super::handler::{Handler, HandlerError, HandlerResult, TaskContext};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Largest result an exec handler may return (stdout).
const MAX_RESULT: usize = 16 << 20;
/// How much of stderr is kept as the error message.
const STDERR_TAIL: usize = 2000;

pub(crate) struct ExecHandler {
    pub kind: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
}

impl Handler for ExecHandler {
    fn call(&self, task: TaskContext) -> BoxFuture<'static, HandlerResult> {
        let argv = self.argv.clone();
        let env = self.env.clone();
        let timeout = self.timeout;
        let kind = self.kind.clone();
        Box::pin(async move {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .envs(&env)
                .env("BATON_TASK_ID", &task.id)
                .env("BATON_TASK_KIND", &task.kind)
                .env("BATON_QUEUE", &task.queue)
                .env("BATON_ATTEMPT", task.attempt.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .process_group(0);
            let mut child = cmd.spawn().map_err(|e| {
                HandlerError::retry(format!(
                    "cannot start {:?}: {e} — check worker.handlers.{kind} in the config",
                    argv[0]
                ))
            })?;
            // Armed until the program has exited: dropping it (timeout, lost lease, shutdown)
            // kills the whole process group.
            let mut guard = GroupKiller(child.id());
            if let Some(mut stdin) = child.stdin.take() {
                let payload = task.payload.clone();
                // A program that does not read its stdin is fine: ignore EPIPE.
                tokio::spawn(async move {
                    let _ = stdin.write_all(&payload).await;
                });
            }
            let run = child.wait_with_output();
            let output = match timeout {
                Some(t) => match tokio::time::timeout(t, run).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(HandlerError::retry(format!(
                            "killed after {t:?} (worker.handlers.{kind}.timeout)"
                        )))
                    }
                },
                None => run.await,
            }
            .map_err(|e| HandlerError::retry(format!("waiting for {:?} failed: {e}", argv[0])))?;
            guard.0 = None; // exited: nothing to kill
            if output.status.success() {
                if output.stdout.len() > MAX_RESULT {
                    return Err(HandlerError::fatal(format!(
                        "result of {} bytes is over the {MAX_RESULT}-byte limit: write large output elsewhere and print a reference",
                        output.stdout.len()
                    )));
                }
                return Ok(output.stdout);
            }
            let how = match output.status.code() {
                Some(code) => format!("exit code {code}"),
                None => format!(
                    "killed by signal {}",
                    std::os::unix::process::ExitStatusExt::signal(&output.status).unwrap_or(0)
                ),
            };
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            let tail = match stderr.char_indices().rev().nth(STDERR_TAIL) {
                Some((i, _)) => &stderr[i..],
                None => stderr,
            };
            Err(HandlerError::retry(if tail.is_empty() {
                how
            } else {
                format!("{how}: {tail}")
            }))
        })
    }
}

struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg only sends a signal; the group is the one our child leads.
            unsafe {
                libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}
