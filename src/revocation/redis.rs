//! Revocations shared through Redis (feature `redis`).

use std::fmt;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::AsyncCommands as _;

use super::{KEEP_PAST_EXP, RevocationError, RevocationFuture, Revocations, unix_now};
use crate::redis_conn::{RedisConnection, RedisTopology};

/// How long a revocation waits for replicas by default (Cluster and Sentinel).
const DEFAULT_REPLICA_WAIT: Duration = Duration::from_millis(500);

/// A [`Revocations`] store in Redis, shared by every replica that points at it.
///
/// Each revoked token is one key, `<prefix><issuer>#<jti>`, whose TTL is the token's
/// remaining life plus the largest leeway (5 minutes): Redis forgets it when it no longer
/// matters. One key per command: it works on a single node, a Redis Cluster and a
/// Sentinel-managed primary alike ([`RedisConnection`], which reconnects by itself);
/// commands time out after 500 ms by default so that an unreachable Redis fails requests
/// quickly (closed, unless the validator fails open) instead of hanging them.
///
/// **Durability.** On a Cluster or behind Sentinel, [`revoke`](Revocations::revoke) does not
/// return `Ok` before at least one replica has the revocation (`SET` then `WAIT 1 500` on the
/// same node), so that it survives the loss of the primary it was written to; see
/// [`wait_for_replicas`](Self::wait_for_replicas). When no replica acknowledges it in time,
/// `revoke` fails: the key is on the primary (and will reach the replicas if the primary
/// lives), but the caller is told to try again (the companion issuer answers `503`), since
/// a failover now could lose it. Writing it again is harmless.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bearer_guard::revocation::RedisRevocations;
/// // One node; two or more comma-separated URLs: a Cluster; redis+sentinel://...: Sentinel.
/// let store = RedisRevocations::connect("redis://127.0.0.1:6379/").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    conn: RedisConnection,
    prefix: String,
    replicas: u32,
    replica_wait: Duration,
    /// Whether the store failed last time: one log line per outage, not per request.
    down: Arc<AtomicBool>,
}

impl RedisRevocations {
    /// Connects with default timeouts (500 ms). `url` is a `REDIS_URL`-style value: one URL,
    /// a Cluster's comma-separated seeds or a `redis+sentinel://` URL
    /// ([`RedisConnection::builder`]).
    ///
    /// # Errors
    /// The URL is invalid or Redis cannot be reached now. The message never includes the
    /// URL, which may hold a password.
    pub async fn connect(url: &str) -> Result<Self, RevocationError> {
        Self::connect_with_timeout(url, Duration::from_millis(500)).await
    }

    /// Connects with the given connection and response timeout.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_timeout(
        url: &str,
        timeout: Duration,
    ) -> Result<Self, RevocationError> {
        let conn = RedisConnection::builder(url)
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| RevocationError::new(e.to_string()))?;
        Ok(Self::new(conn))
    }

    /// A store on an existing connection (shared with the other Redis stores). Revocations
    /// wait for one replica (at most 500 ms) on a Cluster or behind Sentinel, for none on a
    /// single node.
    pub fn new(conn: RedisConnection) -> Self {
        let replicas = match conn.topology() {
            RedisTopology::Single => 0,
            _ => 1,
        };
        RedisRevocations {
            conn,
            prefix: "bearer-guard:revoked:".to_owned(),
            replicas,
            replica_wait: DEFAULT_REPLICA_WAIT,
            down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// How many replicas must acknowledge a revocation (Redis `WAIT`), within `timeout`,
    /// before [`revoke`](Revocations::revoke) returns `Ok`; else it fails (the key stays on
    /// the primary). Default: one replica within 500 ms on a Cluster or behind Sentinel,
    /// none on a single node; `0` turns the wait off.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = replicas;
        self.replica_wait = timeout;
        self
    }

    /// Records the outcome: one `warn` when the store starts failing, one `info` when it
    /// answers again.
    fn outcome<T>(&self, result: redis::RedisResult<T>) -> Result<T, RevocationError> {
        match result {
            Ok(value) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        target: "bearer_guard::revocation",
                        reason = "revocation_store_available",
                        prefix = %self.prefix,
                        "Redis revocation store answers again"
                    );
                }
                Ok(value)
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        target: "bearer_guard::revocation",
                        reason = "revocation_store_unavailable",
                        prefix = %self.prefix,
                        error = %e,
                        "Redis revocation store unavailable"
                    );
                }
                Err(RevocationError::new(e.to_string()))
            }
        }
    }

    /// The prefix of every key (default `bearer-guard:revoked:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, issuer: &str, jti: &str) -> String {
        format!("{}{issuer}#{jti}", self.prefix)
    }
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("prefix", &self.prefix)
            .field("topology", &self.conn.topology())
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl Revocations for RedisRevocations {
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool> {
        let mut conn = self.conn.clone();
        let key = self.key(issuer, jti);
        Box::pin(async move { self.outcome(conn.exists::<_, bool>(key).await) })
    }

    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
    ) -> RevocationFuture<'a, ()> {
        let mut conn = self.conn.clone();
        let key = self.key(issuer, jti);
        Box::pin(async move {
            // Kept through the largest leeway a validator may grant past `exp`.
            let ttl = expires_at
                .saturating_add(KEEP_PAST_EXP)
                .saturating_sub(unix_now());
            if ttl <= 0 {
                return Ok(());
            }
            if self.replicas == 0 {
                return self.outcome(conn.set_ex::<_, _, ()>(key, 1u8, ttl.unsigned_abs()).await);
            }
            // One pipeline: routed to the key's node, so `WAIT` counts that node's replicas.
            let wait_ms = u64::try_from(self.replica_wait.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let (acked,): (u32,) = self.outcome(
                redis::pipe()
                    .set_ex(&key, 1u8, ttl.unsigned_abs())
                    .ignore()
                    .cmd("WAIT")
                    .arg(self.replicas)
                    .arg(wait_ms)
                    .query_async(&mut conn)
                    .await,
            )?;
            if acked < self.replicas {
                return Err(RevocationError::new(format!(
                    "written to the primary, but {acked} of {} replicas acknowledged it within \
                     {wait_ms} ms: try again",
                    self.replicas
                )));
            }
            Ok(())
        })
    }
}
