//! The `exec` (and `shell`) handler: run a program per task.
//!
//! The payload goes to stdin, stdout becomes the result, a non-zero exit is a failure carrying
//! the tail of stderr. The program runs in its own process group, so a timeout or a lost lease
//! kills it and everything it started (not just the direct child). No shell is involved unless
//! the handler is configured with `shell = "..."`. A watchdog kills that group should the worker
//! itself be killed, and stdout is read up to the result cap only.
//!
//! Progress: the program may write lines `<percent> [message]` on file descriptor 3
//! (`BATON_PROGRESS_FD`), e.g. `echo "40 resizing" >&3` in a shell; the worker forwards the
//! latest to Redis a few times a second (see `progress.rs`). A program that never writes there
//! is fine.

use super::handler::{Handler, HandlerError, HandlerResult, TaskContext, MAX_RESULT};
use super::progress::{read_lines, Feed, PROGRESS_FD};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of stderr is kept as the error message.
const STDERR_TAIL: usize = 2000;

pub(crate) struct ExecHandler {
    pub kind: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    /// Hand the program its dependencies as a JSON file (`BATON_DEPENDENCIES_FILE`).
    pub dependencies: bool,
}

/// The task's dependencies as JSON, written to a file of their own: `[{"id", "state",
/// "result", "error"}]` (result and error as text, lossy UTF-8; null when absent). The file is
/// removed when the guard is dropped, after the program ended.
async fn dependencies_file(task: &TaskContext) -> Result<DepsFile, HandlerError> {
    let deps = task
        .dependencies()
        .await
        .map_err(|e| HandlerError::retry(format!("cannot read the dependencies of {}: {e}", task.id)))?;
    let list: Vec<serde_json::Value> = deps
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "state": d.state.as_str(),
                "result": (d.state == crate::State::Done).then(|| String::from_utf8_lossy(&d.result).into_owned()),
                "error": d.error,
            })
        })
        .collect();
    let path = std::env::temp_dir().join(format!("baton-deps-{}-{}.json", std::process::id(), task.id));
    std::fs::write(&path, serde_json::to_vec(&list).unwrap_or_default())
        .map_err(|e| HandlerError::retry(format!("cannot write {}: {e}", path.display())))?;
    Ok(DepsFile(path))
}

/// A dependencies file, removed on drop.
struct DepsFile(std::path::PathBuf);

impl Drop for DepsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Handler for ExecHandler {
    fn call(&self, task: TaskContext) -> BoxFuture<'static, HandlerResult> {
        let argv = self.argv.clone();
        let env = self.env.clone();
        let timeout = self.timeout;
        let kind = self.kind.clone();
        let want_deps = self.dependencies;
        Box::pin(async move {
            let deps_file = match want_deps {
                true => Some(dependencies_file(&task).await?),
                false => None,
            };
            let mut cmd = tokio::process::Command::new(&argv[0]);
            if let Some(f) = &deps_file {
                cmd.env("BATON_DEPENDENCIES_FILE", &f.0);
            }
            cmd.args(&argv[1..])
                .envs(&env)
                .env("BATON_TASK_ID", &task.id)
                .env("BATON_TASK_KIND", &task.kind)
                .env("BATON_QUEUE", &task.queue)
                .env("BATON_ATTEMPT", task.attempt.to_string())
                .env("BATON_RUN", task.run.to_string())
                .env("BATON_PROGRESS_FD", PROGRESS_FD.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .process_group(0);
            let (progress_read, progress_write) = progress_pipe()
                .map_err(|e| HandlerError::retry(format!("cannot make the progress pipe: {e}")))?;
            let fd = progress_write.as_raw_fd();
            // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) are made.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == PROGRESS_FD {
                        // already in place: only let it survive exec
                        if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, PROGRESS_FD) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let spawned = cmd.spawn();
            drop(progress_write); // the program holds the write end now; EOF when it is gone
            let mut child = spawned.map_err(|e| {
                HandlerError::retry(format!(
                    "cannot start {:?}: {e} — check worker.handlers.{kind} in the config",
                    argv[0]
                ))
            })?;
            // Armed until the program has exited: dropping it (timeout, lost lease, shutdown)
            // kills the whole process group.
            let mut guard = GroupKiller(child.id());
            // And if this worker dies without dropping anything (SIGKILL), a watchdog reading
            // from a pipe only we hold sees end-of-file and kills the group, so no handler
            // outlives its worker to race the retry on another one. Killed itself (kill on
            // drop) when the program has finished normally.
            let _watchdog = match child.id() {
                Some(pgid) => Some(watchdog(pgid).map_err(|e| {
                    HandlerError::retry(format!("cannot start the handler's watchdog (sh): {e}"))
                })?),
                None => None,
            };
            if let Some(mut stdin) = child.stdin.take() {
                let payload = task.payload.clone();
                // A program that does not read its stdin is fine: ignore EPIPE.
                tokio::spawn(async move {
                    let _ = stdin.write_all(&payload).await;
                });
            }
            let feed = Feed::start(&task);
            let lines = async {
                match tokio::net::unix::pipe::Receiver::from_owned_fd(progress_read) {
                    Ok(r) => read_lines(r, &feed, &task.id).await,
                    Err(e) => tracing::warn!(task = %task.id, error = %e, "cannot read the progress pipe"),
                }
            };
            let stdout = child.stdout.take().expect("piped stdout");
            let stderr = child.stderr.take().expect("piped stderr");
            // Bounded reads: a program printing without end is stopped at the cap (its group
            // killed when the guard drops), never buffered whole.
            let run = async {
                let (out, err) = tokio::try_join!(read_capped(stdout, MAX_RESULT), async {
                    Ok(read_tail(stderr, STDERR_TAIL * 4).await)
                })?;
                let status = child
                    .wait()
                    .await
                    .map_err(|e| HandlerError::retry(format!("waiting for {:?} failed: {e}", argv[0])))?;
                Ok::<_, HandlerError>((status, out, err))
            };
            // Progress lines are read while the program runs, and for a moment after it exits
            // (lines still in the pipe; a process it left running may hold the pipe open).
            let run = async {
                tokio::pin!(run);
                tokio::pin!(lines);
                let mut eof = false;
                let r = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        _ = &mut lines, if !eof => eof = true,
                    }
                };
                if !eof {
                    let _ = tokio::time::timeout(Duration::from_millis(100), &mut lines).await;
                }
                r
            };
            let (status, stdout, stderr) = match timeout {
                Some(t) => match tokio::time::timeout(t, run).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(HandlerError::retry(format!(
                            "killed after {t:?} (worker.handlers.{kind}.timeout)"
                        )))
                    }
                },
                None => run.await,
            }?;
            guard.0 = None; // exited: nothing to kill
            feed.finish().await; // its last report goes before the outcome
            if status.success() {
                return Ok(stdout);
            }
            let output = std::process::Output {
                status,
                stdout,
                stderr,
            };
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

/// Read all of `r`, or fail (fatal: the same program would print as much again) past `cap`.
async fn read_capped(r: impl tokio::io::AsyncRead + Unpin, cap: usize) -> Result<Vec<u8>, HandlerError> {
    let mut out = Vec::new();
    let n = r.take(cap as u64 + 1).read_to_end(&mut out).await;
    n.map_err(|e| HandlerError::retry(format!("reading the handler's stdout failed: {e}")))?;
    if out.len() > cap {
        return Err(HandlerError::fatal(format!(
            "result over the {cap}-byte limit: the program was stopped — write large output elsewhere and print a reference"
        )));
    }
    Ok(out)
}

/// The last `keep` bytes of `r` (read to its end, in bounded memory).
async fn read_tail(mut r: impl tokio::io::AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut tail = Vec::with_capacity(keep);
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > keep {
            tail.drain(..tail.len() - keep);
        }
    }
    tail
}

/// A `sh` that kills process group `pgid` when its stdin reaches end-of-file: the write end is
/// held by this worker (inside the returned child), so the kernel closes it when the worker dies.
fn watchdog(pgid: u32) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg("read _; kill -KILL -$0")
        .arg(pgid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
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

/// A pipe for progress lines: (read end, write end), both close-on-exec (the write end is
/// moved to fd 3 of the program only, in `pre_exec`).
fn progress_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
