//! The soak (`scripts/soak`): Baton's processes under chaos, then a check of every task.
//!
//! It starts a private `redis-server` with AOF (`appendfsync always`) on a free loopback port in
//! a temporary directory, one `baton-scheduler` and N `baton-worker` processes serving a pull
//! and a push queue, and a producer that enqueues tasks at a steady rate with idempotency keys,
//! retrying every failed call with the same key. A task counts as acknowledged only once
//! enqueue returned its id. Meanwhile a chaos loop SIGKILLs workers (a replacement starts),
//! SIGTERMs workers (rolling restart), SIGSTOPs a worker past its lease and SIGCONTs it,
//! SIGKILLs the scheduler and SIGKILLs Redis itself, restarting it on the same port and
//! directory so the AOF brings the data back.
//!
//! The handler (`handler.sh` in the work directory) appends `task attempt worker-pid queue` to
//! a runs log when it starts, sleeps as its payload says, fails the first attempt of a few
//! tasks on purpose, and prints the SHA-1 of its payload: the expected result.
//!
//! At the end the producer stops, the queues drain (bounded), and every acknowledged task is
//! read back. The report: acknowledged; done with the right result; done with a wrong one;
//! dead; lost (acknowledged but unknown to Redis); stuck (not finished by the drain deadline);
//! runs per task (from the runs log); attempts charged that never ran (each attempt number a
//! finished task was charged, 1..=attempts, must appear in the runs log); tasks completed more
//! than once (events stream); stale acknowledgements refused (the workers' logs, with their
//! `/metrics` as a cross-check); processes left alive (any process carrying the soak's marker
//! in its environment once every worker is gone, or outliving its worker during the run); peak
//! worker RSS. Exit status 0 only when lost = stuck = orphans = wrong results =
//! charged-without-running = completed-twice = 0.
//!
//! Usage: scripts/soak [--duration 10m] [--workers 4] [--debug] (see --help)

use baton::{Client, Config, Event, State, TaskSpec};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const QUEUES: [&str; 2] = ["soak-pull", "soak-push"];
const LEASE: Duration = Duration::from_secs(2);
/// High enough that chaos alone never kills a task (a few reclaims plus one planned failure).
const MAX_ATTEMPTS: u32 = 10;
/// The line a worker logs for each acknowledgement Redis refused (src/worker/acks.rs).
const STALE_LOG: &str = "acknowledgement refused as stale";
const HELP: &str = "\
usage: scripts/soak [--debug] [OPTIONS]   (or: cargo run --example soak -- [OPTIONS])

  --duration D      how long to produce and run chaos (default 10m; humantime: 60s, 3m, 1h)
  --workers N       baton-worker processes kept running (default 4)
  --concurrency N   tasks each worker runs at once per queue (default 4)
  --rate N          tasks enqueued per second (default 25), half on each queue
  --chaos-every D   mean time between chaos actions (default 3s)
  --drain D         longest wait for the queues to empty at the end (default 60s)
  --seed N          seed of the producer's and the chaos loop's choices (default: random)
  --bin-dir DIR     where baton-worker and baton-scheduler are (default: beside this example)
  --keep            keep the work directory (logs, runs log, AOF) even when the soak holds
  --debug           (scripts/soak only) use debug builds

Exit status 0 when lost = stuck = orphans = wrong results = charged-without-running =
completed-twice = 0, 1 otherwise (the work directory is then kept), 2 on a usage error.";

#[derive(Clone)]
struct Opts {
    duration: Duration,
    workers: usize,
    concurrency: usize,
    rate: f64,
    chaos_every: Duration,
    drain: Duration,
    seed: u64,
    bin_dir: PathBuf,
    keep: bool,
}

fn parse_args() -> Result<Opts, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/soak -> target/<profile>
    let default_bins = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut o = Opts {
        duration: Duration::from_secs(600),
        workers: 4,
        concurrency: 4,
        rate: 25.0,
        chaos_every: Duration::from_secs(3),
        drain: Duration::from_secs(60),
        seed: fastrand::u64(..),
        bin_dir: default_bins,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    let dur = |v: Option<String>, name: &str| -> Result<Duration, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        humantime::parse_duration(&v).map_err(|e| format!("{name} {v:?}: {e}"))
    };
    let num = |v: Option<String>, name: &str| -> Result<u64, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        v.parse().map_err(|_| format!("{name} {v:?}: not a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--duration" => o.duration = dur(args.next(), &a)?,
            "--workers" => o.workers = num(args.next(), &a)?.max(1) as usize,
            "--concurrency" => o.concurrency = num(args.next(), &a)?.max(1) as usize,
            "--rate" => o.rate = (num(args.next(), &a)? as f64).max(1.0),
            "--chaos-every" => o.chaos_every = dur(args.next(), &a)?.max(Duration::from_millis(200)),
            "--drain" => o.drain = dur(args.next(), &a)?,
            "--seed" => o.seed = num(args.next(), &a)?,
            "--bin-dir" => o.bin_dir = args.next().ok_or("--bin-dir needs a value")?.into(),
            "--keep" => o.keep = true,
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    for b in ["baton-worker", "baton-scheduler"] {
        if !o.bin_dir.join(b).is_file() {
            return Err(format!(
                "{} not found — build the binaries first (scripts/soak does) or pass --bin-dir",
                o.bin_dir.join(b).display()
            ));
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    match run(o).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// Processes

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Redis,
    Scheduler,
    Worker,
}

/// How a managed process ended.
#[derive(Clone, Debug)]
enum End {
    Sigkill,
    /// SIGTERM from the chaos loop (rolling restart) or at the end, and the exit status.
    Sigterm(Option<i32>),
    /// Exited without being asked: the status and the last line of its log.
    Unexpected(String),
}

struct Proc {
    role: Role,
    name: String,
    child: Child,
    log: PathBuf,
    metrics_port: Option<u16>,
    started: Instant,
    /// SIGSTOPped until then.
    stopped_until: Option<Instant>,
    /// SIGTERM sent: its exit is expected.
    terminating: bool,
    peak_rss_kb: u64,
    stale_scraped: Option<u64>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) only sends a signal, to a child of ours that has not been reaped.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, sig);
        }
    }
}

/// What is left of a worker after it ended.
struct WorkerRecord {
    name: String,
    pid: u32,
    lived: Duration,
    end: End,
    peak_rss_kb: u64,
    stale_scraped: Option<u64>,
    log: PathBuf,
}

/// One chaos action, kept for the report and for explaining a violation.
struct ChaosRecord {
    at: SystemTime,
    what: String,
    pid: u32,
}

enum Restart {
    Worker,
    Scheduler,
    Redis,
}

/// Every process of the soak, driven by one thread: chaos, restarts, supervision, sampling.
struct Fleet {
    dir: PathBuf,
    bin: PathBuf,
    config: PathBuf,
    port: u16,
    workers_wanted: usize,
    redis: Option<Proc>,
    scheduler: Option<Proc>,
    workers: Vec<Proc>,
    spawned: HashMap<&'static str, usize>,
    restarts: Vec<(Instant, Restart)>,
    chaos: Vec<ChaosRecord>,
    chaos_counts: BTreeMap<&'static str, u32>,
    chaos_log: std::fs::File,
    t0: Instant,
    t0_wall: SystemTime,
    /// Exits nobody asked for (with the reason), any role.
    unexpected: Vec<String>,
    /// Redis outages (start, end), to tell a worker refused at start from a real crash.
    redis_down: Vec<(Instant, Option<Instant>)>,
    gone: Vec<WorkerRecord>,
    /// Processes carrying the marker, cut off from every managed worker: first seen, cmdline.
    detached: HashMap<u32, (Instant, String)>,
    /// Those that stayed cut off for more than 2 s during the run.
    orphans_during_run: BTreeMap<u32, String>,
}

impl Fleet {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn note(&mut self, what: String, pid: u32, kind: Option<&'static str>) {
        let rel = self.now();
        let _ = writeln!(self.chaos_log, "{:>9.3}s  {what}", rel.as_secs_f64());
        if let Some(k) = kind {
            *self.chaos_counts.entry(k).or_default() += 1;
            self.chaos.push(ChaosRecord {
                at: SystemTime::now(),
                what,
                pid,
            });
        }
    }

    fn next_name(&mut self, role: &'static str) -> String {
        let n = self.spawned.entry(role).or_default();
        *n += 1;
        format!("{role}-{n}")
    }

    fn start_redis(&mut self) -> Result<(), BoxError> {
        let name = self.next_name("redis");
        let rdir = self.dir.join("redis");
        std::fs::create_dir_all(&rdir)?;
        let log = rdir.join("redis.log");
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--maxmemory-policy", "noeviction", "--daemonize", "no"])
            .arg("--dir")
            .arg(&rdir)
            .arg("--logfile")
            .arg(&log)
            .current_dir(&rdir);
        let mut child = spawn_marked(&mut cmd, &self.dir, Stdio::null()).map_err(|e| {
            format!("cannot run redis-server ({e}); scripts/soak installs it (scripts/ensure-redis)")
        })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(format!(
                    "redis-server exited at start ({status}) on port {port}: {}",
                    last_line(&log)
                )
                .into());
            }
            if baton::local_redis::ping(self.port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port} did not answer PING within 60s").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = child.id();
        self.note(format!("started {name} (pid {pid})"), pid, None);
        self.redis = Some(Proc {
            role: Role::Redis,
            name,
            child,
            log,
            metrics_port: None,
            started: Instant::now(),
            stopped_until: None,
            terminating: false,
            peak_rss_kb: 0,
            stale_scraped: None,
        });
        if let Some(last) = self.redis_down.last_mut() {
            last.1.get_or_insert(Instant::now());
        }
        Ok(())
    }

    fn start_service(&mut self, role: Role) -> Result<(), BoxError> {
        let (label, bin) = match role {
            Role::Worker => ("worker", "baton-worker"),
            Role::Scheduler => ("scheduler", "baton-scheduler"),
            Role::Redis => unreachable!(),
        };
        let name = self.next_name(label);
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(self.bin.join(bin));
        cmd.arg("--config").arg(&self.config).env("BATON_LOG", "info");
        let metrics_port = if role == Role::Worker {
            let p = free_port()?;
            cmd.env("BATON__WORKER__METRICS", format!("127.0.0.1:{p}"));
            Some(p)
        } else {
            None
        };
        let child = spawn_marked(&mut cmd, &self.dir, Stdio::from(file))?;
        let pid = child.id();
        self.note(format!("started {name} (pid {pid})"), pid, None);
        let p = Proc {
            role,
            name,
            child,
            log,
            metrics_port,
            started: Instant::now(),
            stopped_until: None,
            terminating: false,
            peak_rss_kb: 0,
            stale_scraped: None,
        };
        match role {
            Role::Worker => self.workers.push(p),
            _ => self.scheduler = Some(p),
        }
        Ok(())
    }

    fn redis_is_down(&self, at: Instant) -> bool {
        self.redis_down
            .iter()
            .any(|(s, e)| at >= *s && e.is_none_or(|e| at <= e + Duration::from_secs(3)))
    }

    fn retire_worker(&mut self, mut p: Proc, end: End) {
        sample_rss(&mut p);
        self.gone.push(WorkerRecord {
            name: p.name.clone(),
            pid: p.pid(),
            lived: p.started.elapsed(),
            end,
            peak_rss_kb: p.peak_rss_kb,
            stale_scraped: p.stale_scraped,
            log: p.log.clone(),
        });
    }

    /// Reap exits: expected ones (SIGTERM) are recorded, others too, and a replacement is due.
    fn supervise(&mut self) {
        let mut i = 0;
        while i < self.workers.len() {
            let exited = self.workers[i].child.try_wait().ok().flatten();
            let Some(status) = exited else {
                i += 1;
                continue;
            };
            let p = self.workers.remove(i);
            if p.terminating {
                let what = format!("{} (pid {}) exited after SIGTERM: {status}", p.name, p.pid());
                self.note(what, p.pid(), None);
                if status.code() != Some(0) {
                    self.unexpected.push(format!(
                        "{} exited {status} after SIGTERM: {}",
                        p.name,
                        last_line(&p.log)
                    ));
                }
                self.retire_worker(p, End::Sigterm(status.code()));
            } else {
                let why = self.unexpected_exit(&p, status);
                self.retire_worker(p, End::Unexpected(why));
                self.restarts
                    .push((Instant::now() + Duration::from_millis(500), Restart::Worker));
            }
        }
        if let Some((p, status)) = exited(&mut self.scheduler) {
            self.unexpected_exit(&p, status);
            self.restarts
                .push((Instant::now() + Duration::from_millis(500), Restart::Scheduler));
        }
        if let Some((p, status)) = exited(&mut self.redis) {
            self.unexpected_exit(&p, status);
            self.redis_down.push((Instant::now(), None));
            self.restarts.push((Instant::now(), Restart::Redis));
        }
    }

    fn unexpected_exit(&mut self, p: &Proc, status: ExitStatus) -> String {
        let redis_down = p.role != Role::Redis && self.redis_is_down(Instant::now());
        let why = format!(
            "{} (pid {}) exited by itself, {status}{}: {}",
            p.name,
            p.pid(),
            if redis_down { " while Redis was down" } else { "" },
            last_line(&p.log)
        );
        self.note(why.clone(), p.pid(), None);
        self.unexpected.push(why.clone());
        why
    }

    fn tick_restarts(&mut self, all: bool) -> Result<(), BoxError> {
        let now = Instant::now();
        let mut keep = Vec::new();
        let mut due = Vec::new();
        for (at, r) in self.restarts.drain(..) {
            if all || at <= now {
                due.push(r);
            } else {
                keep.push((at, r));
            }
        }
        self.restarts = keep;
        // Redis first: the others cannot start without it
        due.sort_by_key(|r| match r {
            Restart::Redis => 0,
            Restart::Scheduler => 1,
            Restart::Worker => 2,
        });
        for r in due {
            match r {
                Restart::Redis => {
                    if self.redis.is_none() {
                        self.start_redis()?;
                    }
                }
                Restart::Scheduler => {
                    if self.scheduler.is_none() {
                        self.start_service(Role::Scheduler)?;
                    }
                }
                Restart::Worker => {
                    let live = self.workers.iter().filter(|w| !w.terminating).count();
                    if live < self.workers_wanted {
                        self.start_service(Role::Worker)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn resume_stopped(&mut self, all: bool) {
        let now = Instant::now();
        let mut notes = Vec::new();
        for w in &mut self.workers {
            if let Some(until) = w.stopped_until {
                if all || now >= until {
                    w.signal(libc::SIGCONT);
                    w.stopped_until = None;
                    notes.push((format!("SIGCONT {} (pid {})", w.name, w.pid()), w.pid()));
                }
            }
        }
        for (what, pid) in notes {
            self.note(what, pid, None);
        }
    }

    /// A worker chaos may act on: running, not stopped, not shutting down, up for a second.
    fn pick_worker(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let ok: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                let w = &self.workers[i];
                w.stopped_until.is_none() && !w.terminating && w.started.elapsed() > Duration::from_secs(1)
            })
            .collect();
        (!ok.is_empty()).then(|| ok[rng.usize(..ok.len())])
    }

    /// Carry out one chaos action; false when it could not be done now (nothing to act on).
    fn act(&mut self, a: Action, rng: &mut fastrand::Rng) -> bool {
        match a {
            Action::KillWorker => {
                let Some(i) = self.pick_worker(rng) else {
                    return false;
                };
                let mut p = self.workers.remove(i);
                sample_rss(&mut p);
                p.signal(libc::SIGKILL);
                let _ = p.child.wait();
                self.note(
                    format!("SIGKILL {} (pid {})", p.name, p.pid()),
                    p.pid(),
                    Some(a.name()),
                );
                self.retire_worker(p, End::Sigkill);
                let after = Duration::from_millis(rng.u64(200..1000));
                self.restarts.push((Instant::now() + after, Restart::Worker));
            }
            Action::TermWorker => {
                let Some(i) = self.pick_worker(rng) else {
                    return false;
                };
                let w = &mut self.workers[i];
                w.signal(libc::SIGTERM);
                w.terminating = true;
                let (name, pid) = (w.name.clone(), w.pid());
                self.note(
                    format!("SIGTERM {name} (pid {pid}): rolling restart"),
                    pid,
                    Some(a.name()),
                );
                self.restarts.push((Instant::now(), Restart::Worker));
            }
            Action::StopWorker => {
                let Some(i) = self.pick_worker(rng) else {
                    return false;
                };
                let past = LEASE + Duration::from_millis(rng.u64(1000..2000));
                let w = &mut self.workers[i];
                w.signal(libc::SIGSTOP);
                w.stopped_until = Some(Instant::now() + past);
                let (name, pid) = (w.name.clone(), w.pid());
                self.note(
                    format!(
                        "SIGSTOP {name} (pid {pid}) for {:.1}s (lease {}s)",
                        past.as_secs_f64(),
                        LEASE.as_secs()
                    ),
                    pid,
                    Some(a.name()),
                );
            }
            Action::KillScheduler => {
                let Some(mut p) = self.scheduler.take() else {
                    return false;
                };
                p.signal(libc::SIGKILL);
                let _ = p.child.wait();
                self.note(
                    format!("SIGKILL {} (pid {})", p.name, p.pid()),
                    p.pid(),
                    Some(a.name()),
                );
                let after = Duration::from_millis(rng.u64(300..2000));
                self.restarts.push((Instant::now() + after, Restart::Scheduler));
            }
            Action::KillRedis => {
                let Some(mut p) = self.redis.take() else {
                    return false;
                };
                p.signal(libc::SIGKILL);
                let _ = p.child.wait();
                self.redis_down.push((Instant::now(), None));
                self.note(
                    format!("SIGKILL {} (pid {})", p.name, p.pid()),
                    p.pid(),
                    Some(a.name()),
                );
                let after = Duration::from_millis(rng.u64(300..2000));
                self.restarts.push((Instant::now() + after, Restart::Redis));
            }
        }
        true
    }

    fn managed_worker_pids(&self) -> HashSet<u32> {
        self.workers.iter().map(Proc::pid).collect()
    }

    /// Once a second: each worker's RSS and stale count (/metrics), and processes that outlived
    /// their worker.
    fn sample(&mut self) {
        for w in &mut self.workers {
            sample_rss(w);
            if w.stopped_until.is_none() {
                if let Some(n) = w.metrics_port.and_then(scrape_stale) {
                    w.stale_scraped = Some(n);
                }
            }
        }
        let managed = self.managed_worker_pids();
        let procs = marked_processes(&self.dir);
        let detached: HashMap<u32, String> = detached_from(&procs, &managed, std::process::id())
            .into_iter()
            .map(|p| (p.pid, p.cmdline.clone()))
            .collect();
        let now = Instant::now();
        self.detached.retain(|pid, _| detached.contains_key(pid));
        for (pid, cmd) in detached {
            let (first, _) = self.detached.entry(pid).or_insert((now, cmd.clone()));
            if now.duration_since(*first) > Duration::from_secs(2) {
                self.orphans_during_run.entry(pid).or_insert(cmd);
            }
        }
    }
}

impl Drop for Fleet {
    /// Whatever happens, no process of the soak outlives it.
    fn drop(&mut self) {
        for p in self
            .workers
            .iter_mut()
            .chain(self.scheduler.as_mut())
            .chain(self.redis.as_mut())
        {
            p.signal(libc::SIGKILL);
            let _ = p.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    KillWorker,
    TermWorker,
    StopWorker,
    KillScheduler,
    KillRedis,
}

impl Action {
    const ALL: [Action; 5] = [
        Action::KillWorker,
        Action::TermWorker,
        Action::StopWorker,
        Action::KillScheduler,
        Action::KillRedis,
    ];

    fn name(self) -> &'static str {
        match self {
            Action::KillWorker => "worker SIGKILL",
            Action::TermWorker => "worker SIGTERM",
            Action::StopWorker => "worker SIGSTOP",
            Action::KillScheduler => "scheduler SIGKILL",
            Action::KillRedis => "redis SIGKILL",
        }
    }

    fn random(rng: &mut fastrand::Rng) -> Action {
        // weights: worker kills most often, everything else regularly
        match rng.u32(0..11) {
            0..=3 => Action::KillWorker,
            4 => Action::TermWorker,
            5..=6 => Action::StopWorker,
            7..=8 => Action::KillScheduler,
            _ => Action::KillRedis,
        }
    }
}

const CHAOS: u8 = 0;
const CALM: u8 = 1;
const FINISH: u8 = 2;

/// The control thread: chaos while `phase` is CHAOS; then (CALM) every stopped worker is resumed,
/// every restart done, and exits are still supervised; returns the fleet at FINISH.
fn control(mut f: Fleet, o: Opts, phase: Arc<AtomicU8>) -> Result<Fleet, BoxError> {
    let mut rng = fastrand::Rng::with_seed(o.seed ^ 0xc4a05);
    // every kind of action early on, so even a short run sees each of them
    let mut plan: Vec<Action> = Action::ALL.to_vec();
    rng.shuffle(&mut plan);
    let gap = |rng: &mut fastrand::Rng| o.chaos_every.mul_f64(0.5 + rng.f64());
    let mut next_chaos = Instant::now() + gap(&mut rng);
    let mut next_sample = Instant::now();
    let mut calm = false;
    loop {
        let p = phase.load(Ordering::SeqCst);
        if p == FINISH {
            return Ok(f);
        }
        if p == CALM && !calm {
            calm = true;
            f.note(
                "chaos over: resuming stopped workers, restarting what is down".into(),
                0,
                None,
            );
            f.resume_stopped(true);
        }
        f.resume_stopped(false);
        f.supervise();
        // on an error the fleet is dropped here, which kills every process
        f.tick_restarts(calm)?;
        let now = Instant::now();
        if now >= next_sample {
            f.sample();
            next_sample = now + Duration::from_secs(1);
        }
        if !calm && now >= next_chaos {
            let a = plan.last().copied().unwrap_or_else(|| Action::random(&mut rng));
            if f.act(a, &mut rng) && plan.last() == Some(&a) {
                plan.pop();
            }
            next_chaos = now + gap(&mut rng);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Producer

struct Acked {
    queue: usize,
    key: String,
    id: String,
    payload: Vec<u8>,
}

#[derive(Default)]
struct ProduceStats {
    /// Enqueue calls that failed and were sent again with the same idempotency key.
    retried_calls: u64,
    /// Retries answered with an existing task: the failed call had landed after all.
    answered_by_key: u64,
    /// Tasks given up on after a minute of failures (not acknowledged, not checked).
    given_up: u64,
    first_error: Option<String>,
}

async fn produce(client: Client, o: Opts, stop: Arc<AtomicBool>) -> (Vec<Acked>, ProduceStats) {
    let queues: Vec<_> = QUEUES
        .iter()
        .map(|q| client.queue(q).expect("queue name"))
        .collect();
    let mut rng = fastrand::Rng::with_seed(o.seed ^ 0x9e0d);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acked = Vec::new();
    let mut st = ProduceStats::default();
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        n += 1;
        let qi = (n % 2) as usize;
        let key = format!("soak-{}-{n}", o.seed);
        let sleep_ms = rng.u64(20..400);
        let fail_first = rng.u8(0..20) == 0; // 5 %: the first attempt fails on purpose
        let pad: String = (0..rng.usize(0..120)).map(|_| rng.alphanumeric()).collect();
        let payload = format!("n={n} sleep=0.{sleep_ms:03} fail={} pad={pad}", fail_first as u8).into_bytes();
        let mut spec = TaskSpec::new("soak", payload.clone()).idempotency_key(key.clone());
        if rng.u8(0..10) == 0 {
            spec = spec.delay(Duration::from_millis(rng.u64(0..1500)));
        }
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut tries = 0u32;
        loop {
            tries += 1;
            match queues[qi].enqueue(spec.clone()).await {
                Ok(e) => {
                    if tries > 1 && !e.created {
                        st.answered_by_key += 1;
                    }
                    acked.push(Acked {
                        queue: qi,
                        key,
                        id: e.id,
                        payload,
                    });
                    break;
                }
                Err(e) => {
                    st.retried_calls += 1;
                    st.first_error.get_or_insert_with(|| e.to_string());
                    if Instant::now() > give_up {
                        st.given_up += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    (acked, st)
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(o: Opts) -> Result<bool, BoxError> {
    let dir = std::env::temp_dir().join(format!(
        "baton-soak-{}-{:x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir)?;
    let runs_log = dir.join("runs.log");
    let handler = dir.join("handler.sh");
    std::fs::write(&handler, HANDLER)?;
    std::fs::File::create(&runs_log)?;
    let port = free_port()?;
    let config = dir.join("baton.toml");
    std::fs::write(&config, config_toml(port, &o, &handler, &runs_log))?;
    println!(
        "soak: {} of chaos, {} workers x {} per queue, {} tasks/s, seed {}, work dir {}",
        humantime::format_duration(o.duration),
        o.workers,
        o.concurrency,
        o.rate,
        o.seed,
        dir.display()
    );

    let mut fleet = Fleet {
        dir: dir.clone(),
        bin: o.bin_dir.clone(),
        config: config.clone(),
        port,
        workers_wanted: o.workers,
        redis: None,
        scheduler: None,
        workers: Vec::new(),
        spawned: HashMap::new(),
        restarts: Vec::new(),
        chaos: Vec::new(),
        chaos_counts: BTreeMap::new(),
        chaos_log: std::fs::File::create(dir.join("chaos.log"))?,
        t0: Instant::now(),
        t0_wall: SystemTime::now(),
        unexpected: Vec::new(),
        redis_down: Vec::new(),
        gone: Vec::new(),
        detached: HashMap::new(),
        orphans_during_run: BTreeMap::new(),
    };
    fleet.start_redis()?;
    let client = Client::connect(Config::load(&config)?).await?;
    fleet.start_service(Role::Scheduler)?;
    for _ in 0..o.workers {
        fleet.start_service(Role::Worker)?;
    }

    let t0 = Instant::now();
    let phase = Arc::new(AtomicU8::new(CHAOS));
    let control_thread = {
        let (o, phase) = (o.clone(), phase.clone());
        std::thread::spawn(move || control(fleet, o, phase))
    };
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(client.clone(), o.clone(), stop_producing.clone()));
    let queues: Vec<_> = QUEUES
        .iter()
        .map(|q| client.queue(q).expect("queue name"))
        .collect();

    // produce under chaos for the duration (Ctrl-C ends it early, and the soak fails)
    let interrupted = {
        let end = tokio::time::sleep(o.duration);
        tokio::pin!(end);
        let mut progress = tokio::time::interval(Duration::from_secs(10));
        progress.tick().await;
        loop {
            tokio::select! {
                _ = &mut end => break false,
                _ = tokio::signal::ctrl_c() => break true,
                _ = progress.tick() => print_progress(t0, &queues).await,
            }
        }
    };
    stop_producing.store(true, Ordering::SeqCst);
    phase.store(CALM, Ordering::SeqCst);
    let (acked, pstats) = producer.await?;
    println!(
        "[{:>4.0}s] chaos and producing stopped ({} acknowledged); draining (at most {})",
        t0.elapsed().as_secs_f64(),
        acked.len(),
        humantime::format_duration(o.drain)
    );

    // drain: every task final, or the deadline
    let drain_deadline = Instant::now() + o.drain;
    let drain_started = Instant::now();
    let mut drained = false;
    while !interrupted && Instant::now() < drain_deadline {
        let mut open = 0;
        let mut ok = true;
        for q in &queues {
            match q.counts().await {
                Ok(c) => open += c.pending + c.delayed + c.leased,
                Err(_) => ok = false,
            }
        }
        if ok && open == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain_took = drain_started.elapsed();

    // read every acknowledged task back, and the events, while Redis is up
    let runs = read_runs(&runs_log)?;
    let events = read_events(&queues).await;
    let check = check_tasks(&queues, &acked, &runs).await?;

    // stop everything: SIGTERM workers and scheduler, then look for leftovers, then Redis
    phase.store(FINISH, Ordering::SeqCst);
    let mut fleet = match control_thread.join().expect("control thread") {
        Ok(f) => f,
        Err(e) => return Err(format!("chaos loop failed: {e}").into()),
    };
    let stop_report = stop_all(&mut fleet);
    let orphans_at_end = leftovers(&fleet.dir);
    if let Some(mut r) = fleet.redis.take() {
        r.signal(libc::SIGTERM);
        let _ = r.child.wait();
    }
    drop(client);
    let report = Report::build(
        &o,
        &fleet,
        &acked,
        &pstats,
        &runs,
        &events,
        &check,
        orphans_at_end,
        stop_report,
    );
    let mut text = report.render(&o, &fleet, drained, drain_took, t0.elapsed());
    if interrupted {
        text.push_str("interrupted (Ctrl-C): the soak did not run its course\n");
    }
    print!("{text}");
    let _ = std::fs::write(dir.join("report.txt"), &text);
    write_workers(&fleet);
    let holds = report.holds() && !interrupted;
    if holds && !o.keep {
        drop(fleet);
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "work directory kept: {} (logs, runs.log, chaos.log, report.txt, redis/)",
            dir.display()
        );
    }
    Ok(holds)
}

async fn print_progress(t0: Instant, queues: &[baton::Queue]) {
    let mut line = format!("[{:>4.0}s]", t0.elapsed().as_secs_f64());
    for q in queues {
        match q.counts().await {
            Ok(c) => {
                let _ = write!(
                    line,
                    "  {}: done {} pending {} delayed {} leased {} dead {}",
                    q.name(),
                    c.done,
                    c.pending,
                    c.delayed,
                    c.leased,
                    c.dead
                );
            }
            Err(_) => {
                let _ = write!(line, "  {}: (Redis unreachable)", q.name());
            }
        }
    }
    println!("{line}");
}

/// The handler every task runs (`exec = ["/bin/sh", "<dir>/handler.sh"]`).
const HANDLER: &str = r#"#!/bin/sh
# The soak's handler. Its first command records that this run started (one short line appended
# with O_APPEND, so concurrent handlers never interleave; no subprocess before it); the second
# line says when, for the claim-to-start latency. Then it sleeps as the payload says, fails the
# first attempt when the payload asks for it, and prints the SHA-1 of the payload (checked at
# the end of the soak). $PPID is the worker that started it.
printf 'run %s %s %s %s\n' "$BATON_TASK_ID" "$BATON_ATTEMPT" "$PPID" "$BATON_QUEUE" >>"$BATON_SOAK_RUNS"
printf 'at %s %s %s %s\n' "$BATON_TASK_ID" "$BATON_ATTEMPT" "$PPID" "$(date +%s%3N)" >>"$BATON_SOAK_RUNS"
p=$(cat)
set -- $p
sleep "${2#sleep=}"
if [ "$3" = "fail=1" ] && [ "$BATON_ATTEMPT" = 1 ]; then
  echo "planned failure of the first attempt" >&2
  exit 3
fi
printf '%s' "$p" | sha1sum
"#;

fn expected_result(payload: &[u8]) -> Vec<u8> {
    format!("{}  -\n", sha1_smol::Sha1::from(payload).digest()).into_bytes()
}

fn config_toml(port: u16, o: &Opts, handler: &Path, runs: &Path) -> String {
    let queue = |name: &str, dispatch: &str| {
        format!(
            r#"
[queues.{name}]
lease = "{lease}s"
heartbeat = "500ms"
max_attempts = {MAX_ATTEMPTS}
backoff = "fixed"
backoff_base = "200ms"
backoff_cap = "200ms"
backoff_jitter = 0.0
result_ttl = "7d"
dead_ttl = "7d"
idempotency_ttl = "7d"
events_max_len = 10000000
dispatch = "{dispatch}"
"#,
            lease = LEASE.as_secs()
        )
    };
    format!(
        r#"# Written by the soak (examples/soak.rs).
[redis]
url = "redis://127.0.0.1:{port}/0"
connect_timeout = "1s"
response_timeout = "2s"
{pull}{push}
[worker]
queues = ["{q0}", "{q1}"]
concurrency = {c}
shutdown_grace = "5s"
maintenance = false        # the scheduler alone promotes, reclaims and dispatches: killing it matters

[worker.handlers.soak]
exec = ["/bin/sh", "{handler}"]
timeout = "20s"
env = {{ BATON_SOAK_RUNS = "{runs}" }}

[scheduler]
queues = ["{q0}", "{q1}"]
"#,
        pull = queue(QUEUES[0], "pull"),
        push = queue(QUEUES[1], "push"),
        q0 = QUEUES[0],
        q1 = QUEUES[1],
        c = o.concurrency,
        handler = handler.display(),
        runs = runs.display(),
    )
}

// ---------------------------------------------------------------------------------------------
// Reading back

/// One run the handler logged.
struct Run {
    attempt: u32,
    /// The worker that started the handler.
    pid: u32,
    /// When the handler started, ms since the Unix epoch (its second line; none if it was
    /// killed in between).
    at_ms: Option<u64>,
}

/// Per task id: each run the handler logged.
struct Runs {
    by_task: HashMap<String, Vec<Run>>,
    malformed: u64,
    runs: u64,
}

/// `run <task> <attempt> <worker pid> <queue>`, then `at <task> <attempt> <worker pid> <ms>`.
fn read_runs(path: &Path) -> Result<Runs, BoxError> {
    let text = std::fs::read_to_string(path)?;
    let mut r = Runs {
        by_task: HashMap::new(),
        malformed: 0,
        runs: 0,
    };
    let mut at: HashMap<(String, u32, u32), Vec<u64>> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        match (f.first().copied(), f.len(), num(2), num(3)) {
            (Some("run"), 5, Some(attempt), Some(pid)) => {
                r.runs += 1;
                r.by_task.entry(f[1].to_string()).or_default().push(Run {
                    attempt: attempt as u32,
                    pid: pid as u32,
                    at_ms: None,
                });
            }
            (Some("at"), 5, Some(attempt), Some(pid)) if num(4).is_some() => {
                at.entry((f[1].to_string(), attempt as u32, pid as u32))
                    .or_default()
                    .push(num(4).unwrap_or(0));
            }
            _ => r.malformed += 1,
        }
    }
    for (id, runs) in &mut r.by_task {
        for run in runs.iter_mut() {
            if let Some(list) = at.get_mut(&(id.clone(), run.attempt, run.pid)) {
                run.at_ms = list.pop();
            }
        }
    }
    Ok(r)
}

/// One event as it concerns one task: type, attempt, worker, Redis ms.
type TaskEvent = (String, u32, Option<String>, u64);

/// Per task id: its events, from both queues' streams.
struct Events {
    by_task: HashMap<String, Vec<TaskEvent>>,
    read: u64,
    error: Option<String>,
}

async fn read_events(queues: &[baton::Queue]) -> Events {
    let mut ev = Events {
        by_task: HashMap::new(),
        read: 0,
        error: None,
    };
    for q in queues {
        let mut after = "0-0".to_string();
        loop {
            let page: Vec<Event> = match q.events_after(&after, 5000).await {
                Ok(p) => p,
                Err(e) => {
                    ev.error = Some(e.to_string());
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            for e in page {
                ev.read += 1;
                // events number runs over a task's whole life; the soak requeues no dead task,
                // so a run's number is its attempt (BATON_ATTEMPT in the runs log)
                for t in e.tasks {
                    ev.by_task.entry(t.id).or_default().push((
                        e.kind.clone(),
                        t.run,
                        e.worker.clone(),
                        e.at_ms,
                    ));
                }
            }
        }
    }
    ev
}

#[derive(Default)]
struct Check {
    done_right: u64,
    done_wrong: Vec<String>,
    dead: Vec<(String, String)>,
    lost: Vec<String>,
    stuck: Vec<(String, String)>,
    cancelled: Vec<String>,
    /// (task, attempts charged, attempt numbers charged that never ran)
    charged_not_run: Vec<(String, u32, Vec<u32>)>,
    /// runs per task: index 0, 1, 2, 3+ runs
    histogram: [u64; 4],
    /// leases that expired before their run started (not charged), summed over the tasks, and
    /// how many tasks had one
    strays: (u64, u64),
    /// per queue: acknowledged
    per_queue: [u64; 2],
}

async fn check_tasks(queues: &[baton::Queue], acked: &[Acked], runs: &Runs) -> Result<Check, BoxError> {
    let mut c = Check::default();
    for a in acked {
        c.per_queue[a.queue] += 1;
        let q = &queues[a.queue];
        let ran = runs.by_task.get(&a.id).map_or(&[][..], Vec::as_slice);
        c.histogram[ran.len().min(3)] += 1;
        let mut tries = 0;
        let task = loop {
            tries += 1;
            match q.get(&a.id).await {
                Ok(t) => break t,
                Err(e) if tries < 50 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(format!("cannot read task {}: {e}", a.id).into()),
            }
        };
        let Some(t) = task else {
            let idem: Option<String> = q
                .conn()
                .query(redis::cmd("GET").arg(q.keys().idem(&a.key)))
                .await
                .ok()
                .flatten();
            c.lost.push(format!(
                "{} ({}, key {}: the key {})",
                a.id,
                q.name(),
                a.key,
                match idem {
                    Some(id) if id == a.id => "still names it".to_string(),
                    Some(id) => format!("names another task {id}"),
                    None => "is gone too".to_string(),
                }
            ));
            continue;
        };
        match t.state {
            State::Done => {
                if t.result.as_deref() == Some(&expected_result(&a.payload)[..]) {
                    c.done_right += 1;
                } else {
                    c.done_wrong.push(format!(
                        "{} ({}): result {:?}, expected {:?}",
                        a.id,
                        q.name(),
                        t.result.as_deref().map(String::from_utf8_lossy),
                        String::from_utf8_lossy(&expected_result(&a.payload))
                    ));
                }
            }
            State::Dead => c.dead.push((
                a.id.clone(),
                t.last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("run {}: {}", e.run, e.message)),
            )),
            State::Cancelled => c.cancelled.push(a.id.clone()),
            s => c.stuck.push((
                a.id.clone(),
                format!(
                    "{}: {s}, attempts {}{}",
                    q.name(),
                    t.attempts,
                    t.lease
                        .as_ref()
                        .map_or(String::new(), |l| format!(", lease held by {}", l.worker))
                ),
            )),
        }
        if t.record.strays > 0 {
            c.strays.0 += t.record.strays as u64;
            c.strays.1 += 1;
        }
        if t.state.is_final() {
            // attempts charged: 1..=attempts (done: the completing one included)
            let ran_attempts: HashSet<u32> = ran.iter().map(|r| r.attempt).collect();
            let missing: Vec<u32> = (1..=t.attempts).filter(|n| !ran_attempts.contains(n)).collect();
            if !missing.is_empty() {
                c.charged_not_run.push((a.id.clone(), t.attempts, missing));
            }
        }
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Stopping and leftovers

struct StopReport {
    /// Processes that did not exit within 20 s of SIGTERM (then SIGKILLed).
    hung: Vec<String>,
    /// Non-zero exits after the final SIGTERM.
    failed: Vec<String>,
}

fn stop_all(f: &mut Fleet) -> StopReport {
    let mut rep = StopReport {
        hung: Vec::new(),
        failed: Vec::new(),
    };
    for w in &mut f.workers {
        sample_rss(w);
        if let Some(n) = w.metrics_port.and_then(scrape_stale) {
            w.stale_scraped = Some(n);
        }
    }
    let mut procs: Vec<Proc> = f.workers.drain(..).chain(f.scheduler.take()).collect();
    for p in &procs {
        p.signal(libc::SIGCONT);
        p.signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in &mut procs {
        let status = loop {
            if let Ok(Some(s)) = p.child.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match status {
            Some(s) if s.code() == Some(0) => {}
            Some(s) => rep.failed.push(format!(
                "{} exited {s} after SIGTERM: {}",
                p.name,
                last_line(&p.log)
            )),
            None => {
                rep.hung.push(format!(
                    "{} (pid {}) still running 20s after SIGTERM",
                    p.name,
                    p.pid()
                ));
                p.signal(libc::SIGKILL);
                let _ = p.child.wait();
            }
        }
        let what = format!("final SIGTERM: {} (pid {}) ended", p.name, p.pid());
        f.note(what, p.pid(), None);
    }
    for p in procs {
        if p.role == Role::Worker {
            f.retire_worker(p, End::Sigterm(None));
        }
    }
    rep
}

/// Processes carrying the soak's marker once every worker and the scheduler are gone (Redis
/// excluded): a first look after 1 s, and what is still there 2 s later.
fn leftovers(dir: &Path) -> Vec<MarkedProc> {
    std::thread::sleep(Duration::from_secs(1));
    let me = std::process::id();
    let redis_pids: HashSet<u32> = marked_processes(dir)
        .into_iter()
        .filter(|p| p.cmdline.starts_with("redis-server"))
        .map(|p| p.pid)
        .collect();
    let first: HashSet<u32> = marked_processes(dir)
        .into_iter()
        .filter(|p| p.pid != me && !redis_pids.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    if first.is_empty() {
        return Vec::new();
    }
    std::thread::sleep(Duration::from_secs(2));
    marked_processes(dir)
        .into_iter()
        .filter(|p| first.contains(&p.pid))
        .collect()
}

#[derive(Clone, Debug)]
struct MarkedProc {
    pid: u32,
    ppid: u32,
    handler: bool,
    cmdline: String,
}

/// Every live (non-zombie) process whose environment carries `BATON_SOAK=<dir>`: what the
/// soak started and everything they started (handlers inherit it through the worker).
fn marked_processes(dir: &Path) -> Vec<MarkedProc> {
    let marker = format!("BATON_SOAK={}", dir.display()).into_bytes();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|v| v == marker.as_slice()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" || state == "X" {
            continue; // exited, not reaped yet: not alive
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
            .unwrap_or_default();
        let handler = env.split(|b| *b == 0).any(|v| v.starts_with(b"BATON_SOAK_RUNS="));
        out.push(MarkedProc {
            pid,
            ppid,
            handler,
            cmdline,
        });
    }
    out
}

/// Marked processes (not managed ones, not us) whose chain of parents reaches no managed
/// worker: a handler, or anything it started, that outlived its worker.
fn detached_from(procs: &[MarkedProc], managed_workers: &HashSet<u32>, me: u32) -> Vec<MarkedProc> {
    let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    procs
        .iter()
        .filter(|p| p.pid != me && p.ppid != me && !managed_workers.contains(&p.pid))
        .filter(|p| {
            let mut at = p.ppid;
            for _ in 0..64 {
                if managed_workers.contains(&at) {
                    return false;
                }
                match parent.get(&at) {
                    Some(&pp) => at = pp,
                    None => return true, // left the marked tree: reparented
                }
            }
            true
        })
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    acked: u64,
    per_queue: [u64; 2],
    produce: String,
    done_right: u64,
    done_wrong: Vec<String>,
    dead: Vec<(String, String)>,
    lost: Vec<String>,
    stuck: Vec<(String, String)>,
    cancelled: Vec<String>,
    histogram: [u64; 4],
    strays: (u64, u64),
    runs_total: u64,
    runs_malformed: u64,
    runs_unacked: u64,
    charged_not_run: Vec<String>,
    /// The attempts charged without a run, counted by what the chaos loop did right after
    /// their claim.
    charged_causes: String,
    start_lag: String,
    completed_twice: Vec<String>,
    events_note: String,
    stale_logged: u64,
    stale_scraped: u64,
    stale_note: String,
    orphans: Vec<String>,
    peak_rss: String,
    chaos: String,
    exits: Vec<String>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn build(
        o: &Opts,
        f: &Fleet,
        acked: &[Acked],
        ps: &ProduceStats,
        runs: &Runs,
        events: &Events,
        c: &Check,
        orphans_at_end: Vec<MarkedProc>,
        stop: StopReport,
    ) -> Report {
        let _ = o;
        let acked_ids: HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
        let runs_unacked = runs
            .by_task
            .iter()
            .filter(|(id, _)| !acked_ids.contains(id.as_str()))
            .map(|(_, r)| r.len() as u64)
            .sum();
        let mut produce = format!(
            "enqueue calls retried {}, {} of them answered by the idempotency key (the failed call had landed)",
            ps.retried_calls, ps.answered_by_key
        );
        if ps.given_up > 0 {
            let _ = write!(
                produce,
                "; {} tasks given up after a minute of failures",
                ps.given_up
            );
        }
        // charged without running, explained by the events and the chaos log
        let t0_ms = epoch_ms(f.t0_wall);
        let rel = |ms: u64| (ms as i64 - t0_ms as i64) as f64 / 1000.0;
        let mut causes: BTreeMap<&'static str, u64> = BTreeMap::new();
        let charged_not_run = c
            .charged_not_run
            .iter()
            .map(|(id, charged, missing)| {
                let mut s =
                    format!("{id}: charged {charged} attempts, no run logged for attempt(s) {missing:?}");
                for &m in missing {
                    let cause = charge_cause(f, events.by_task.get(id).map_or(&[][..], Vec::as_slice), m);
                    *causes.entry(cause).or_default() += 1;
                }
                for (kind, attempt, worker, at_ms) in events.by_task.get(id).into_iter().flatten() {
                    let _ = write!(s, "\n      {:>8.3}s  {kind} attempt {attempt}", rel(*at_ms));
                    let Some(w) = worker else { continue };
                    let _ = write!(s, " by {w}");
                    if !missing.contains(attempt) || kind != "claimed" {
                        continue;
                    }
                    // what the chaos loop did around this claim: to its worker, or to anything
                    // from 1 s before to one lease after
                    let pid = worker_pid(w);
                    for r in &f.chaos {
                        let d = epoch_ms(r.at) as i64 - *at_ms as i64;
                        if Some(r.pid) == pid && d >= -1000 || (-1000..=LEASE.as_millis() as i64).contains(&d)
                        {
                            let _ = write!(
                                s,
                                "\n                 chaos {:+} ms after that claim: {}",
                                d, r.what
                            );
                        }
                    }
                }
                s
            })
            .collect();
        let charged_causes = causes
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join("; ");
        // how long after its claim (Redis time) a handler logs its start: the window in which a
        // worker's death charges an attempt that never ran
        let mut start_lag: Vec<i64> = Vec::new();
        for (id, rs) in &runs.by_task {
            let Some(evs) = events.by_task.get(id) else {
                continue;
            };
            for r in rs {
                let Some(run_ms) = r.at_ms else { continue };
                let claim = evs
                    .iter()
                    .filter(|(kind, attempt, worker, at)| {
                        kind == "claimed"
                            && *attempt == r.attempt
                            && *at <= run_ms + 5
                            && worker.as_deref().and_then(worker_pid) == Some(r.pid)
                    })
                    .map(|e| e.3)
                    .max();
                if let Some(at) = claim {
                    start_lag.push(run_ms as i64 - at as i64);
                }
            }
        }
        start_lag.sort_unstable();
        let pct = |p: f64| start_lag[((start_lag.len() - 1) as f64 * p).round() as usize];
        let start_lag = if start_lag.is_empty() {
            "not measured".to_string()
        } else {
            format!(
                "p50 {} ms, p99 {} ms, max {} ms ({} runs)",
                pct(0.5),
                pct(0.99),
                start_lag[start_lag.len() - 1],
                start_lag.len()
            )
        };
        let completed_twice = events
            .by_task
            .iter()
            .filter(|(id, _)| acked_ids.contains(id.as_str()))
            .filter_map(|(id, evs)| {
                let n = evs.iter().filter(|e| e.0 == "completed").count();
                (n > 1).then(|| format!("{id}: {n} completed events"))
            })
            .collect();
        let events_note = match &events.error {
            Some(e) => format!("events stream not fully read ({e}): completed-twice not checked"),
            None => format!("{} events read", events.read),
        };
        // stale acknowledgements: every worker logs each refused one (complete); /metrics as read
        // at each worker's last scrape (a killed worker's last second is missing there)
        let mut stale_logged = 0;
        let mut stale_scraped = 0;
        let mut stale_by_end: BTreeMap<&str, u64> = BTreeMap::new();
        for w in &f.gone {
            let n = std::fs::read_to_string(&w.log)
                .map(|t| t.lines().filter(|l| l.contains(STALE_LOG)).count() as u64)
                .unwrap_or(0);
            stale_logged += n;
            stale_scraped += w.stale_scraped.unwrap_or(0);
            let end = match &w.end {
                End::Sigkill => "SIGKILLed",
                End::Sigterm(_) => "SIGTERMed",
                End::Unexpected(_) => "exited by themselves",
            };
            *stale_by_end.entry(end).or_default() += n;
        }
        let stopped: HashSet<u32> = f
            .chaos
            .iter()
            .filter(|r| r.what.starts_with("SIGSTOP"))
            .map(|r| r.pid)
            .collect();
        let stale_from_stopped: u64 = f
            .gone
            .iter()
            .filter(|w| stopped.contains(&w.pid))
            .map(|w| {
                std::fs::read_to_string(&w.log)
                    .map(|t| t.lines().filter(|l| l.contains(STALE_LOG)).count() as u64)
                    .unwrap_or(0)
            })
            .sum();
        let stale_note = format!(
            "{stale_from_stopped} of them by the {} SIGSTOPped workers",
            stopped.len()
        );
        // one entry per process: seen cut off during the run, or alive at the end, or both
        let mut orphans: BTreeMap<u32, String> = f
            .orphans_during_run
            .iter()
            .map(|(pid, cmd)| {
                (
                    *pid,
                    format!("pid {pid} detached from every worker for over 2s during the run: {cmd}"),
                )
            })
            .collect();
        for p in &orphans_at_end {
            let end = format!(
                "alive after every worker exited (parent {}{})",
                p.ppid,
                if p.handler { ", started by a handler" } else { "" }
            );
            orphans
                .entry(p.pid)
                .and_modify(|s| {
                    let _ = write!(s, "; still {end}");
                })
                .or_insert_with(|| format!("pid {} {end}: {}", p.pid, p.cmdline));
        }
        let orphans: Vec<String> = orphans.into_values().collect();
        let peak = f.gone.iter().max_by_key(|w| w.peak_rss_kb);
        let lowest = f
            .gone
            .iter()
            .filter(|w| w.peak_rss_kb > 0)
            .map(|w| w.peak_rss_kb)
            .min()
            .unwrap_or(0);
        let peak_rss = match peak {
            Some(w) if w.peak_rss_kb > 0 => format!(
                "{:.1} MiB ({}, up {:.0}s; the {} workers' peaks ranged {:.1}–{:.1} MiB)",
                w.peak_rss_kb as f64 / 1024.0,
                w.name,
                w.lived.as_secs_f64(),
                f.gone.len(),
                lowest as f64 / 1024.0,
                w.peak_rss_kb as f64 / 1024.0
            ),
            _ => "not sampled".into(),
        };
        let chaos = f
            .chaos_counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut exits = f.unexpected.clone();
        exits.extend(stop.hung);
        exits.extend(stop.failed);
        Report {
            acked: acked.len() as u64,
            per_queue: c.per_queue,
            produce,
            done_right: c.done_right,
            done_wrong: c.done_wrong.clone(),
            dead: c.dead.clone(),
            lost: c.lost.clone(),
            stuck: c.stuck.clone(),
            cancelled: c.cancelled.clone(),
            histogram: c.histogram,
            strays: c.strays,
            runs_total: runs.runs,
            runs_malformed: runs.malformed,
            runs_unacked,
            charged_not_run,
            charged_causes,
            start_lag,
            completed_twice,
            events_note,
            stale_logged,
            stale_scraped,
            stale_note,
            orphans,
            peak_rss,
            chaos,
            exits,
        }
    }

    fn holds(&self) -> bool {
        self.lost.is_empty()
            && self.stuck.is_empty()
            && self.orphans.is_empty()
            && self.done_wrong.is_empty()
            && self.charged_not_run.is_empty()
            && self.completed_twice.is_empty()
            && self.cancelled.is_empty()
    }

    fn render(&self, o: &Opts, f: &Fleet, drained: bool, drain_took: Duration, total: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== soak report: {} of chaos, {} workers, seed {} ({:.0}s in all) ==",
            humantime::format_duration(o.duration),
            o.workers,
            o.seed,
            total.as_secs_f64()
        );
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "{k:<26}{v}");
        };
        row(
            &mut s,
            "acknowledged",
            format!(
                "{} ({} {}, {} {}; {})",
                self.acked, QUEUES[0], self.per_queue[0], QUEUES[1], self.per_queue[1], self.produce
            ),
        );
        row(&mut s, "done, right result", self.done_right.to_string());
        row(&mut s, "done, wrong result", self.done_wrong.len().to_string());
        row(&mut s, "dead", self.dead.len().to_string());
        row(&mut s, "lost", self.lost.len().to_string());
        row(
            &mut s,
            "stuck",
            format!(
                "{}{}{}",
                self.stuck.len(),
                {
                    let mut by: BTreeMap<String, u64> = BTreeMap::new();
                    for (_, w) in &self.stuck {
                        // "<queue>: <state>, attempts ..."
                        *by.entry(w.split(',').next().unwrap_or("").to_string())
                            .or_default() += 1;
                    }
                    by.iter().map(|(k, n)| format!(" [{k}: {n}]")).collect::<String>()
                },
                if drained {
                    format!(
                        " (queues drained {:.1}s after producing stopped)",
                        drain_took.as_secs_f64()
                    )
                } else {
                    format!(" (queues not drained after {:.0}s)", drain_took.as_secs_f64())
                }
            ),
        );
        if !self.cancelled.is_empty() {
            row(&mut s, "cancelled (by nobody)", self.cancelled.len().to_string());
        }
        row(
            &mut s,
            "runs per task",
            format!(
                "1: {}  2: {}  3+: {}  (never ran: {}; {} runs logged, {} of tasks never acknowledged{})",
                self.histogram[1],
                self.histogram[2],
                self.histogram[3],
                self.histogram[0],
                self.runs_total,
                self.runs_unacked,
                if self.runs_malformed > 0 {
                    format!(", {} malformed lines", self.runs_malformed)
                } else {
                    String::new()
                }
            ),
        );
        row(
            &mut s,
            "charged without running",
            if self.charged_not_run.is_empty() {
                "0".to_string()
            } else {
                format!(
                    "{} (attempts by cause — {})",
                    self.charged_not_run.len(),
                    self.charged_causes
                )
            },
        );
        row(
            &mut s,
            "strays",
            format!(
                "{} leases expired before their run started, on {} tasks: not charged",
                self.strays.0, self.strays.1
            ),
        );
        row(&mut s, "claim to handler start", self.start_lag.clone());
        row(
            &mut s,
            "completed twice",
            format!("{} ({})", self.completed_twice.len(), self.events_note),
        );
        row(
            &mut s,
            "stale acks refused",
            format!(
                "{} (worker logs; {}; /metrics at each worker's last scrape: {})",
                self.stale_logged, self.stale_note, self.stale_scraped
            ),
        );
        row(&mut s, "handler processes left", self.orphans.len().to_string());
        row(&mut s, "peak worker RSS", self.peak_rss.clone());
        row(
            &mut s,
            "chaos",
            if self.chaos.is_empty() {
                "none".into()
            } else {
                self.chaos.clone()
            },
        );
        row(
            &mut s,
            "unexpected exits",
            format!(
                "{}{}",
                self.exits.len(),
                if self.exits.is_empty() {
                    ""
                } else {
                    " (listed below; not a verdict condition)"
                }
            ),
        );
        let list = |s: &mut String, title: &str, items: &[String]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(s, "{title} ({}):", items.len());
            for i in items.iter().take(10) {
                let _ = writeln!(s, "  - {i}");
            }
            if items.len() > 10 {
                let _ = writeln!(s, "  ... and {} more", items.len() - 10);
            }
        };
        list(&mut s, "lost", &self.lost);
        list(
            &mut s,
            "stuck",
            &self
                .stuck
                .iter()
                .map(|(i, w)| format!("{i}: {w}"))
                .collect::<Vec<_>>(),
        );
        list(&mut s, "wrong results", &self.done_wrong);
        list(&mut s, "charged without running", &self.charged_not_run);
        list(&mut s, "completed twice", &self.completed_twice);
        list(&mut s, "cancelled", &self.cancelled);
        list(&mut s, "left alive", &self.orphans);
        list(
            &mut s,
            "dead",
            &self
                .dead
                .iter()
                .map(|(i, e)| format!("{i}: {e}"))
                .collect::<Vec<_>>(),
        );
        list(&mut s, "unexpected exits", &self.exits);
        let _ = f;
        if self.holds() {
            let _ = writeln!(
                s,
                "verdict: HOLDS — lost = stuck = orphans = wrong results = charged-without-running = completed-twice = 0"
            );
        } else {
            let mut bad = Vec::new();
            for (n, what) in [
                (self.lost.len(), "lost"),
                (self.stuck.len(), "stuck"),
                (self.orphans.len(), "orphans"),
                (self.done_wrong.len(), "wrong results"),
                (self.charged_not_run.len(), "charged-without-running"),
                (self.completed_twice.len(), "completed-twice"),
                (self.cancelled.len(), "cancelled"),
            ] {
                if n > 0 {
                    bad.push(format!("{what} = {n}"));
                }
            }
            let _ = writeln!(s, "verdict: FAILS — {}", bad.join(", "));
        }
        s
    }
}

/// One line per worker process in `workers.txt`: how long it lived, how it ended, its peak RSS
/// and the stale acknowledgements it logged and reported.
fn write_workers(f: &Fleet) {
    let mut out = String::new();
    for w in &f.gone {
        let stale = std::fs::read_to_string(&w.log)
            .map(|t| t.lines().filter(|l| l.contains(STALE_LOG)).count())
            .unwrap_or(0);
        let end = match &w.end {
            End::Sigkill => "SIGKILL".to_string(),
            End::Sigterm(Some(code)) => format!("SIGTERM, exit {code}"),
            End::Sigterm(None) => "SIGTERM at the end".to_string(),
            End::Unexpected(why) => format!("exited by itself: {why}"),
        };
        let _ = writeln!(
            out,
            "{} pid {} lived {:.1}s, ended: {end}; peak RSS {} KiB; stale acks logged {stale}, on /metrics {}",
            w.name,
            w.pid,
            w.lived.as_secs_f64(),
            w.peak_rss_kb,
            w.stale_scraped.map_or("-".to_string(), |n| n.to_string())
        );
    }
    let _ = std::fs::write(f.dir.join("workers.txt"), out);
}

/// Why attempt `attempt` of a task was charged though no run of it was logged: what the chaos
/// loop did right after its claim (the latest claim of that attempt, by Redis' clock).
fn charge_cause(f: &Fleet, events: &[TaskEvent], attempt: u32) -> &'static str {
    let Some((_, _, worker, at)) = events
        .iter()
        .filter(|e| e.0 == "claimed" && e.1 == attempt)
        .max_by_key(|e| e.3)
    else {
        return "no claim event found";
    };
    let pid = worker.as_deref().and_then(worker_pid);
    let after = |r: &ChaosRecord, within: i64| {
        let d = epoch_ms(r.at) as i64 - *at as i64;
        (-50..=within).contains(&d)
    };
    let lease = LEASE.as_millis() as i64;
    for r in &f.chaos {
        if Some(r.pid) == pid && r.what.starts_with("SIGKILL") && after(r, lease) {
            return "its worker was SIGKILLed between the claim and the handler's start";
        }
        if Some(r.pid) == pid && r.what.starts_with("SIGSTOP") && after(r, lease) {
            return "its worker was SIGSTOPped between the claim and the handler's start";
        }
    }
    for r in &f.chaos {
        if r.what.starts_with("SIGKILL redis") && after(r, 1000) {
            return "Redis was SIGKILLed after the claim ran, before its reply reached the worker";
        }
    }
    "unexplained"
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `w-<pid>-<ulid>` -> pid
fn worker_pid(worker_id: &str) -> Option<u32> {
    worker_id.strip_prefix("w-")?.split('-').next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Spawn with the soak's marker in the environment and no inherited Baton settings (a
/// BATON__REDIS__URL of the caller must not point the soak at another Redis).
fn spawn_marked(cmd: &mut Command, dir: &Path, stderr: Stdio) -> std::io::Result<Child> {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BATON") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BATON_SOAK", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn sample_rss(p: &mut Proc) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", p.pid())) else {
        return;
    };
    if let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
    {
        p.peak_rss_kb = p.peak_rss_kb.max(kb);
    }
}

/// The worker's `baton_worker_tasks_total{outcome="stale"}`, summed over queues.
fn scrape_stale(port: u16) -> Option<u64> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    if !body.starts_with("HTTP/1.") || !body.contains(" 200 ") {
        return None;
    }
    Some(
        body.lines()
            .filter(|l| l.starts_with("baton_worker_tasks_total{") && l.contains("outcome=\"stale\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
        .unwrap_or_default()
}

/// The process in `slot` if it has exited (taken out of the slot), with its status.
fn exited(slot: &mut Option<Proc>) -> Option<(Proc, ExitStatus)> {
    let status = slot.as_mut()?.child.try_wait().ok().flatten()?;
    Some((slot.take().expect("checked"), status))
}
