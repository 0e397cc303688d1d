//! A `redis-server` of the test's own: started on a free loopback port without
//! persistence, killed on drop. Shared by the Redis tests of the crate and of the companion
//! issuer.
//!
//! Without a `redis-server` binary, [`RedisServer::start`] prints a loud message and returns
//! `None` (the test skips), except under CI (`CI` set), where it fails: CI never skips them.
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free port; `None` (after a loud message) when no binary exists
    /// outside CI.
    pub async fn start() -> Option<RedisServer> {
        if !redis_server_installed() {
            return None;
        }
        let mut last = String::new();
        // A free port can be taken by someone else between our probe and redis' bind.
        for _ in 0..5 {
            match RedisServer::start_on(free_port()).await {
                Ok(server) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Starts a server on `port`, waiting until it answers PING.
    pub async fn start_on(port: u16) -> Result<RedisServer, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if ping(port) {
                return Ok(server);
            }
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                server.child = None;
                return Err(format!("redis-server on port {port} exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {port}: no PONG within 5 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Kills the server (SIGKILL: no goodbye to the clients) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_server_installed() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed; CI never skips the Redis tests \
             (`.ci/run` installs it with apt-get install redis-server)"
        );
        // Straight to the process' stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n\
             ##################################################################\n\
             ## SKIPPED: redis-server not found on PATH.                      ##\n\
             ## The Redis revocation tests did NOT run.                       ##\n\
             ## Install it (apt-get install redis-server) to run them.        ##\n\
             ##################################################################\n"
        );
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Whether a Redis server on `port` of 127.0.0.1 answers `PING` within half a second.
pub fn ping(port: u16) -> bool {
    let timeout = Duration::from_millis(500);
    let attempt = || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf)?;
        Ok::<_, std::io::Error>(buf[..n].starts_with(b"+PONG"))
    };
    attempt().unwrap_or(false)
}
