//! A private, throw-away `redis-server` on a free loopback port.
//!
//! Used by the demo (when no Redis is configured), the benchmarks and the tests: it never
//! touches a server it did not start, keeps nothing on disk, and is stopped by PID on drop.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private redis-server.
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl LocalRedis {
    /// Start one with default settings (no persistence).
    pub fn start() -> Result<LocalRedis> {
        Self::start_with(&[])
    }

    /// Start one with extra `redis-server` arguments (e.g. `["--requirepass", "s3cret"]`).
    pub fn start_with(extra: &[&str]) -> Result<LocalRedis> {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match Self::try_start(port, extra) {
                Ok(r) => return Ok(r),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Invalid(format!(
            "could not start a private redis-server: {last}"
        )))
    }

    fn try_start(port: u16, extra: &[&str]) -> Result<LocalRedis> {
        let dir = std::env::temp_dir().join(format!("baton-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        let port_s = port.to_string();
        let mut args = vec![
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ];
        args.extend_from_slice(extra);
        let child = Command::new("redis-server")
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot run redis-server ({e}) — install it (Debian: apt-get install redis-server; scripts/test and scripts/demo do this) or configure redis.url"
                ))
            })?;
        let mut me = LocalRedis {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(Error::Invalid(format!(
                    "redis-server exited at start ({status}); port {port} may be taken"
                )));
            }
            if ping(port) {
                return Ok(me);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        me.stop();
        Err(Error::Invalid(format!(
            "redis-server on port {port} did not answer PING within 10s"
        )))
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stop the server (SIGKILL by PID: nothing is kept anyway) and remove its directory.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Invalid(format!("no free loopback port: {e}")))?;
    Ok(l.local_addr().map_err(|e| Error::Invalid(e.to_string()))?.port())
}

/// A redis-server on loopback `port` answers PING (PONG, or NOAUTH when it wants a password) —
/// not LOADING: its data is back.
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
}
