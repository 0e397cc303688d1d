//! One Redis connection for every shared store (feature `redis`): a single node, a Redis
//! Cluster or a Sentinel-managed primary, chosen by one `REDIS_URL`-style value.
//!
//! [`RedisConnection`] is what [`RedisRevocations`](crate::revocation::RedisRevocations),
//! [`RedisReplay`](crate::dpop::RedisReplay) and
//! [`RedisQuotas`](crate::rate_limit::RedisQuotas) talk through. It is built by
//! [`RedisConnection::builder`] from one string:
//!
//! | value | deployment |
//! |---|---|
//! | `redis://[user:password@]host:6379[/db]` (or `rediss://`, `redis+unix://`) | one node, as before |
//! | `redis://h1:7000,redis://h2:7001[,...]`: two or more comma-separated URLs | a Redis Cluster given by its seed nodes |
//! | `redis+sentinel://[user:password@]s1:26379,s2:26379/mymaster[/db]` | the primary that the Sentinels name `mymaster` |
//!
//! - **Cluster**: the `redis` crate's own cluster client routes each command by its key's
//!   slot, follows `MOVED`/`ASK`, and refreshes the topology after a failover. Every store
//!   sends one key per command (or a hash-tagged key), so every command has one slot.
//! - **Sentinel**: the primary is asked of the Sentinels (the first that answers); when a
//!   command fails with a connection error or `READONLY` (the old primary came back as a
//!   replica), the primary is asked again in the background, and the next commands go to
//!   the new one. Credentials and `db` of the URL are for the data nodes; Sentinels are
//!   reached without them.
//! - **Timeouts**: every attempt to connect or to answer is bounded (default 500 ms), so
//!   that an unreachable Redis fails a request quickly instead of hanging it.
//!
//! The URL is never printed, not in errors and not in `Debug`: it may carry a password.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bearer_guard::redis_conn::RedisConnection;
//! use bearer_guard::revocation::RedisRevocations;
//! use bearer_guard::dpop::RedisReplay;
//!
//! let url = std::env::var("REDIS_URL")?; // e.g. "redis://10.0.0.1:7000,redis://10.0.0.2:7000"
//! let conn = RedisConnection::builder(&url).connect().await?;
//! let revocations = RedisRevocations::new(conn.clone());
//! let replay = RedisReplay::new(conn);
//! # let _ = (revocations, replay);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo as _, Pipeline, RedisFuture, Value};

mod sentinel;

use self::sentinel::SentinelConn;

/// Bound of each connection attempt and each answer unless set
/// ([`RedisConnectionBuilder::timeout`]).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// The kind of deployment a [`RedisConnection`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// One node (`redis://host:port/`).
    Single,
    /// A Redis Cluster (two or more comma-separated seed URLs).
    Cluster,
    /// The primary named by Redis Sentinels (`redis+sentinel://...`).
    Sentinel,
}

/// A Redis value could not be parsed, or Redis could not be reached. Never holds the URL,
/// which may carry a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConnectError {
    reason: String,
}

impl RedisConnectError {
    fn new(reason: impl Into<String>) -> Self {
        RedisConnectError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RedisConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for RedisConnectError {}

/// What a `REDIS_URL`-style value names.
#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        /// `redis://[userinfo@]<first sentinel>/<db>`: the data nodes' credentials and db.
        node: String,
    },
}

impl Target {
    fn topology(&self) -> RedisTopology {
        match self {
            Target::Single(_) => RedisTopology::Single,
            Target::Cluster(_) => RedisTopology::Cluster,
            Target::Sentinel { .. } => RedisTopology::Sentinel,
        }
    }
}

/// The kind of a redis error, without its text (which may quote the URL).
fn invalid(e: &redis::RedisError) -> RedisConnectError {
    RedisConnectError::new(format!("invalid Redis URL ({:?})", e.kind()))
}

/// Parses a `REDIS_URL` value (see the [module docs](self)).
fn parse(value: &str) -> Result<Target, RedisConnectError> {
    let value = value.trim();
    for (scheme, node_scheme) in [
        ("redis+sentinel://", "redis://"),
        ("rediss+sentinel://", "rediss://"),
    ] {
        if let Some(rest) = value.strip_prefix(scheme) {
            return parse_sentinel(rest, node_scheme);
        }
    }
    if !value.contains(',') {
        // Checked now, so that a bad URL fails at build time, lazily or not.
        value.into_connection_info().map_err(|e| invalid(&e))?;
        return Ok(Target::Single(value.to_owned()));
    }
    let seeds: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if seeds.len() < 2 {
        return Err(RedisConnectError::new(
            "invalid Redis URL: a cluster needs two or more seed URLs",
        ));
    }
    for seed in &seeds {
        if !(seed.starts_with("redis://") || seed.starts_with("rediss://")) {
            return Err(RedisConnectError::new(
                "invalid Redis URL: cluster seeds are redis:// or rediss:// URLs",
            ));
        }
        seed.as_str()
            .into_connection_info()
            .map_err(|e| invalid(&e))?;
    }
    Ok(Target::Cluster(seeds))
}

/// `[userinfo@]host:port,host:port/master[/db]`, after the scheme.
fn parse_sentinel(rest: &str, node_scheme: &str) -> Result<Target, RedisConnectError> {
    let bad = |what: &str| RedisConnectError::new(format!("invalid Redis Sentinel URL: {what}"));
    let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no master name"))?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut path = path.trim_end_matches('/').splitn(2, '/');
    let master = path.next().unwrap_or_default();
    if master.is_empty() {
        return Err(bad("no master name"));
    }
    let db = path.next().unwrap_or("0");
    let sentinels: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{h}"))
        .collect();
    let Some(first) = hosts.split(',').map(str::trim).find(|h| !h.is_empty()) else {
        return Err(bad("no Sentinel address"));
    };
    for sentinel in &sentinels {
        sentinel
            .as_str()
            .into_connection_info()
            .map_err(|_| bad("a Sentinel address is not host:port"))?;
    }
    let node = match userinfo {
        Some(userinfo) => format!("{node_scheme}{userinfo}@{first}/{db}"),
        None => format!("{node_scheme}{first}/{db}"),
    };
    node.as_str()
        .into_connection_info()
        .map_err(|_| bad("bad credentials or database"))?;
    Ok(Target::Sentinel {
        sentinels,
        master: master.to_owned(),
        node,
    })
}

/// Configures a [`RedisConnection`]; from [`RedisConnection::builder`],
/// [`cluster`](RedisConnection::cluster) or [`sentinel`](RedisConnection::sentinel).
#[must_use]
pub struct RedisConnectionBuilder {
    target: Result<Target, RedisConnectError>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl RedisConnectionBuilder {
    /// Bounds each connection attempt and each answer (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.response_timeout = timeout;
        self
    }

    /// Bounds each connection attempt (default 500 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds each answer (default 500 ms).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The deployment this builder will connect to, once the value parsed.
    ///
    /// # Errors
    /// The value given to the builder was not a valid Redis URL.
    pub fn topology(&self) -> Result<RedisTopology, RedisConnectError> {
        self.target
            .as_ref()
            .map(Target::topology)
            .map_err(Clone::clone)
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2))
    }

    fn cluster_builder(&self, seeds: &[String]) -> ClusterClientBuilder {
        ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            // A few quick retries: enough to follow MOVED after a failover, not to hang.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(200)
    }

    fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.response_timeout)
    }

    fn sentinel(
        &self,
        sentinels: &[String],
        master: &str,
        node: &str,
    ) -> Result<Arc<SentinelConn>, RedisConnectError> {
        let node = node.into_connection_info().map_err(|e| invalid(&e))?;
        let info = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(node.redis_settings().clone());
        let client = SentinelClient::build(
            sentinels.to_vec(),
            master.to_owned(),
            Some(info),
            SentinelServerType::Master,
        )
        .map_err(|e| invalid(&e))?;
        Ok(Arc::new(SentinelConn {
            sentinel: tokio::sync::Mutex::new(client),
            current: RwLock::new(None),
            config: self.manager_config(),
            timeout: self.connect_timeout,
            refreshing: AtomicBool::new(false),
        }))
    }

    /// Connects now: fails when Redis (for a Cluster: a seed node; for Sentinel: a Sentinel
    /// and the primary it names) cannot be reached.
    ///
    /// # Errors
    /// The value is not a valid Redis URL, or Redis did not answer. The message never
    /// includes the URL.
    pub async fn connect(self) -> Result<RedisConnection, RedisConnectError> {
        let target = self.target.clone()?;
        let failed = |e: redis::RedisError| RedisConnectError::new(e.to_string());
        let conn = match &target {
            Target::Single(url) => redis::Client::open(url.as_str())
                .map_err(|e| invalid(&e))?
                .get_connection_manager_with_config(self.manager_config())
                .await
                .map(Conn::Single)
                .map_err(failed)?,
            Target::Cluster(seeds) => {
                let client = self
                    .cluster_builder(seeds)
                    .build()
                    .map_err(|e| invalid(&e))?;
                let wait = self.connect_timeout.saturating_mul(2);
                match tokio::time::timeout(wait, client.get_async_connection()).await {
                    Ok(conn) => conn.map(Conn::Cluster).map_err(failed)?,
                    Err(_) => {
                        return Err(RedisConnectError::new(format!(
                            "Redis Cluster: no answer within {wait:?}"
                        )));
                    }
                }
            }
            Target::Sentinel {
                sentinels,
                master,
                node,
            } => {
                let conn = self.sentinel(sentinels, master, node)?;
                conn.resolve().await.map_err(failed)?;
                Conn::Sentinel(conn)
            }
        };
        Ok(RedisConnection {
            conn,
            topology: target.topology(),
            response_timeout: self.response_timeout,
        })
    }

    /// Builds the connection without touching Redis: it connects on first use. Must be
    /// called within a Tokio runtime.
    ///
    /// # Errors
    /// The value is not a valid Redis URL, or there is no Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisConnection, RedisConnectError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisConnectError::new("no Tokio runtime"));
        }
        let target = self.target.clone()?;
        let conn = match &target {
            Target::Single(url) => redis::Client::open(url.as_str())
                .map_err(|e| invalid(&e))?
                .get_connection_manager_lazy(self.manager_config())
                .map(Conn::Single)
                .map_err(|e| RedisConnectError::new(e.to_string()))?,
            Target::Cluster(seeds) => Conn::Cluster(
                self.cluster_builder(seeds)
                    .build()
                    .map_err(|e| invalid(&e))?
                    .get_pending_async_connection_with_config(self.cluster_config()),
            ),
            Target::Sentinel {
                sentinels,
                master,
                node,
            } => Conn::Sentinel(self.sentinel(sentinels, master, node)?),
        };
        Ok(RedisConnection {
            conn,
            topology: target.topology(),
            response_timeout: self.response_timeout,
        })
    }
}

impl fmt::Debug for RedisConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnectionBuilder")
            .field("topology", &self.topology().ok())
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

/// A connection to a single Redis node, a Redis Cluster or a Sentinel-managed primary,
/// reconnecting by itself; clones share it. It is a [`redis::aio::ConnectionLike`] (of the
/// `redis` crate 1.x), so any `redis` command runs on it.
#[derive(Clone)]
pub struct RedisConnection {
    conn: Conn,
    topology: RedisTopology,
    /// How long an answer is waited for: a command that blocks (`WAIT`) must answer sooner.
    response_timeout: Duration,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl RedisConnection {
    /// Starts configuring a connection from a `REDIS_URL`-style value: one URL (a single
    /// node), two or more comma-separated `redis://`/`rediss://` URLs (a Redis Cluster's seed
    /// nodes), or `redis+sentinel://[user:password@]host:port,host:port/<master>[/db]`.
    /// An invalid value is reported by [`connect`](RedisConnectionBuilder::connect).
    pub fn builder(value: &str) -> RedisConnectionBuilder {
        Self::with_target(parse(value))
    }

    /// Starts configuring a connection to a Redis Cluster, from its seed nodes' URLs.
    pub fn cluster<I, S>(seeds: I) -> RedisConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        Self::with_target(if seeds.is_empty() {
            Err(RedisConnectError::new("a cluster needs a seed node"))
        } else {
            parse(&seeds.join(",")).map(|t| match t {
                Target::Single(url) => Target::Cluster(vec![url]),
                other => other,
            })
        })
    }

    /// Starts configuring a connection to the primary the Sentinels at `sentinels`
    /// (`host:port` each) name `master`; `node_url` (`redis://[user:password@]x/db`, its host
    /// ignored) gives the data nodes' credentials and database, if any.
    pub fn sentinel<I, S>(
        sentinels: I,
        master: &str,
        node_url: Option<&str>,
    ) -> RedisConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hosts: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        let target = parse_sentinel(&format!("{}/{master}", hosts.join(",")), "redis://");
        let target = match (target, node_url) {
            (
                Ok(Target::Sentinel {
                    sentinels, master, ..
                }),
                Some(node),
            ) => node
                .into_connection_info()
                .map(|_| Target::Sentinel {
                    sentinels,
                    master,
                    node: node.to_owned(),
                })
                .map_err(|e| invalid(&e)),
            (target, _) => target,
        };
        Self::with_target(target)
    }

    fn with_target(target: Result<Target, RedisConnectError>) -> RedisConnectionBuilder {
        RedisConnectionBuilder {
            target,
            connect_timeout: DEFAULT_TIMEOUT,
            response_timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The kind of deployment.
    #[must_use]
    pub fn topology(&self) -> RedisTopology {
        self.topology
    }

    /// How long each answer is waited for.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.conn {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
            Conn::Sentinel(sentinel) => {
                let sentinel = Arc::clone(sentinel);
                Box::pin(async move {
                    let mut conn = sentinel.manager().await?;
                    let answer = conn.req_packed_command(cmd).await;
                    sentinel.check(answer.as_ref().err());
                    answer
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.conn {
            Conn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(sentinel) => {
                let sentinel = Arc::clone(sentinel);
                Box::pin(async move {
                    let mut conn = sentinel.manager().await?;
                    let answer = conn.req_packed_commands(cmd, offset, count).await;
                    sentinel.check(answer.as_ref().err());
                    answer
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
            Conn::Sentinel(sentinel) => sentinel.current().map_or(0, |conn| conn.get_db()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        for value in [
            "nonsense://user:hunter2@host",
            "redis://:hunter2@a:1,nonsense://:hunter2@b:2",
            "redis+sentinel://:hunter2@s1:26379",
            "redis+sentinel://:hunter2@/mymaster",
        ] {
            let error = parse(value).err().expect("invalid");
            assert!(error.to_string().starts_with("invalid Redis"), "{error}");
            assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn one_value_names_a_single_node_a_cluster_or_sentinels() {
        let single = parse("redis://:pw@127.0.0.1:6379/2").expect("single");
        assert_eq!(single.topology(), RedisTopology::Single);
        let Target::Cluster(seeds) =
            parse("redis://127.0.0.1:7000, redis://127.0.0.1:7001,").expect("cluster")
        else {
            panic!("not a cluster");
        };
        assert_eq!(seeds, ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
        let Target::Sentinel {
            sentinels,
            master,
            node,
        } = parse("redis+sentinel://u:pw@s1:26379,s2:26380/mymaster/3").expect("sentinel")
        else {
            panic!("not sentinel");
        };
        assert_eq!(sentinels, ["redis://s1:26379", "redis://s2:26380"]);
        assert_eq!(master, "mymaster");
        let info = node.as_str().into_connection_info().expect("node");
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(info.redis_settings().username(), Some("u"));
        assert_eq!(info.redis_settings().db(), 3);
    }

    #[test]
    fn the_builders_debug_shows_no_password() {
        let built = RedisConnection::builder("redis://:hunter2@a:1,redis://:hunter2@b:2");
        let shown = format!("{built:?}");
        assert!(
            shown.contains("Cluster") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
