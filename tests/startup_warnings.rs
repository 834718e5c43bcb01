//! At start baton-worker and baton-scheduler warn about Redis settings that can lose tasks: an
//! eviction policy other than noeviction, and no persistence at all — saying what can be lost
//! and the fix. The `baton` CLI's commands do not repeat it on every call (`baton doctor`
//! reports it on demand).
mod common;
use baton::local_redis::LocalRedis;
use common::{baton, product_config, TempDir, SCHEDULER, WORKER};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Run a service until it logs `ready` (after connecting), then stop it; its stderr.
fn service_stderr(bin: &str, config: &Path, ready: &str) -> String {
    let mut child = std::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .env("BATON_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let buf = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let b = buf.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    let start = Instant::now();
    while !buf.lock().unwrap().contains(ready) {
        if start.elapsed() > Duration::from_secs(15) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("{bin} did not log {ready:?}: {}", buf.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A moment more: a warning repeated after start would show up.
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    let out = buf.lock().unwrap().clone();
    out
}

#[test]
fn services_warn_once_at_start_and_cli_commands_stay_quiet() {
    let risky = LocalRedis::start_with(&["--maxmemory-policy", "allkeys-lru"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &risky.url(), "[worker.handlers.echo]\nexec = [\"cat\"]\n");
    for (bin, ready) in [
        (WORKER, "baton-worker running"),
        (SCHEDULER, "baton-scheduler running"),
    ] {
        let err = service_stderr(bin, &cfg, ready);
        assert_eq!(
            err.matches("maxmemory-policy allkeys-lru").count(),
            1,
            "{bin} warns once about eviction: {err}"
        );
        assert!(err.contains("lose tasks") && err.contains("noeviction"), "{err}");
        assert_eq!(
            err.matches("no persistence").count(),
            1,
            "{bin} warns once about persistence: {err}"
        );
        assert!(err.contains("appendonly yes"), "{err}");
    }

    // The CLI's commands do not print it on every call.
    let (code, _out, err) = baton(&cfg, &["stats", "--queue", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("maxmemory-policy") && !err.contains("no persistence"),
        "a CLI command warned: {err}"
    );

    // A safe server: no warning from the services either.
    let safe = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &safe.url(), "[worker.handlers.echo]\nexec = [\"cat\"]\n");
    let err = service_stderr(WORKER, &cfg, "baton-worker running");
    assert!(
        !err.contains("maxmemory-policy") && !err.contains("no persistence"),
        "{err}"
    );
}
