//! A `redis-server` of the test's own: started on a free loopback port without
//! persistence, killed on drop. Shared by the Redis tests of the crate and of the companion
//! issuer. [`RedisCluster`]: six of them as a Redis Cluster (three primaries, one replica
//! each); [`RedisSentinel`]: a primary, its replica and a Sentinel watching them.
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
        Self::start_with(port, None, &[]).await
    }

    /// Starts `redis-server [config] --port <port> ... <extra>`, waiting until it answers
    /// PING.
    pub async fn start_with(
        port: u16,
        config: Option<&std::path::Path>,
        extra: &[String],
    ) -> Result<RedisServer, String> {
        let mut command = Command::new("redis-server");
        if let Some(config) = config {
            command.arg(config);
        }
        let child = command
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(extra)
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

/// `redis-cli -p <port> <args>`: its stdout, or why it failed.
pub fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `check` every 50 ms until it holds, or panics after `within` with `what`.
pub async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory of its own under the temp dir, removed on drop.
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "bearer-guard-{what}-{}-{n}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A node of [`RedisCluster::nodes`], as `CLUSTER NODES` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's port on 127.0.0.1.
    pub port: u16,
    /// Whether it serves slots as a primary.
    pub primary: bool,
    /// The slot ranges it serves (primaries), inclusive.
    pub slots: Vec<(u16, u16)>,
}

/// A local Redis Cluster: six `redis-server --cluster-enabled yes` nodes on free ports, made
/// a cluster of three primaries with one replica each by `redis-cli --cluster create`; every
/// node is killed on drop. A primary that stops answering is replaced by its replica after
/// the node timeout (1 s).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the cluster and waits until every node says `cluster_state:ok` and every
    /// primary has its replica; `None` (after a loud message) without `redis-server` outside
    /// CI.
    pub async fn start() -> Option<RedisCluster> {
        if !redis_server_installed() {
            return None;
        }
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start().await {
                Ok(cluster) => return Some(cluster),
                Err(e) => last = e,
            }
        }
        panic!("could not start a Redis Cluster: {last}");
    }

    async fn try_start() -> Result<RedisCluster, String> {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = free_port();
            let extra: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{i}.conf"),
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &free_port().to_string(),
                "--dir",
                &dir.0.to_string_lossy(),
            ]
            .map(str::to_owned)
            .into();
            nodes.push(RedisServer::start_with(port, None, &extra).await?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        cli(nodes[0].port(), &args)?;
        let cluster = RedisCluster { nodes, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(cluster.all_ok() && cluster.replicas_in_sync()) {
            if Instant::now() > deadline {
                return Err("cluster_state:ok not reached within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(cluster)
    }

    fn all_ok(&self) -> bool {
        self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
            cli(n.port(), &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
        })
    }

    fn replicas_in_sync(&self) -> bool {
        let nodes = self.nodes();
        nodes.iter().filter(|n| n.primary).count() == 3
            && nodes.iter().filter(|n| n.primary).all(|n| {
                cli(n.port, &["INFO", "replication"])
                    .is_ok_and(|i| i.contains("connected_slaves:1") && i.contains("state=online"))
            })
    }

    /// The `REDIS_URL` value of the cluster: its seeds, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The live nodes as a live node sees them (empty if none answers).
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let Some(text) = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find_map(|n| cli(n.port(), &["CLUSTER", "NODES"]).ok())
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let flags = fields.get(2)?;
                if flags.contains("fail") {
                    return None;
                }
                let slots = fields[8.min(fields.len())..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|a| (a, a)),
                    })
                    .collect();
                Some(ClusterNode {
                    port,
                    primary: flags.contains("master"),
                    slots,
                })
            })
            .collect()
    }

    /// The port of the primary that serves `key` now.
    pub fn primary_of(&self, key: &str) -> Option<u16> {
        let port = self.nodes.iter().find(|n| n.child.is_some())?.port();
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.nodes()
            .into_iter()
            .find(|n| n.primary && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .map(|n| n.port)
    }

    /// Kills the node on `port` with SIGKILL (no goodbye to clients or to the cluster).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node of this cluster");
        node.stop();
    }

    /// Waits until the live nodes say `cluster_state:ok` and `key` has a live primary that is
    /// not `old` (a failover happened).
    pub async fn wait_for_failover(&self, key: &str, old: u16, within: Duration) {
        wait_until("the replica took over", within, || {
            self.all_ok() && self.primary_of(key).is_some_and(|p| p != old)
        })
        .await;
    }
}

/// A primary, one replica and one Sentinel watching them (`mymaster`, quorum 1, down after
/// 1 s); killed on drop.
#[derive(Debug)]
pub struct RedisSentinel {
    /// The primary the Sentinel was started with.
    pub primary: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    sentinel: RedisServer,
    _dir: TempDir,
}

impl RedisSentinel {
    /// Starts all three and waits until the replica is in sync and the Sentinel knows it;
    /// `None` (after a loud message) without `redis-server` outside CI.
    pub async fn start() -> Option<RedisSentinel> {
        let primary = RedisServer::start().await?;
        let dir = TempDir::new("sentinel");
        let replica = RedisServer::start_with(
            free_port(),
            None,
            &[
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                primary.port().to_string(),
            ],
        )
        .await
        .expect("replica");
        let config = dir.0.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "sentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n",
                primary.port()
            ),
        )
        .expect("sentinel.conf");
        let sentinel =
            RedisServer::start_with(free_port(), Some(&config), &["--sentinel".to_owned()])
                .await
                .expect("sentinel");
        let this = RedisSentinel {
            primary,
            replica,
            sentinel,
            _dir: dir,
        };
        let (p, s) = (this.primary.port(), this.sentinel.port());
        wait_until(
            "replica in sync, known to the Sentinel",
            Duration::from_secs(20),
            || {
                cli(p, &["INFO", "replication"])
                    .is_ok_and(|i| i.contains("connected_slaves:1") && i.contains("state=online"))
                    && cli(s, &["SENTINEL", "REPLICAS", "mymaster"])
                        .is_ok_and(|r| r.contains(&this.replica.port().to_string()))
            },
        )
        .await;
        Some(this)
    }

    /// The `REDIS_URL` value: `redis+sentinel://127.0.0.1:<sentinel>/mymaster`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/mymaster",
            self.sentinel.port()
        )
    }

    /// The port of the primary the Sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = cli(
            self.sentinel.port(),
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .ok()?;
        answer.lines().nth(1)?.trim().parse().ok()
    }
}
