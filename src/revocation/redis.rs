//! Revocations shared through Redis (feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands as _;

use super::mirror::{LogKeys, Mirror};
use super::{
    KEEP_PAST_EXP, Outage, RevocationError, RevocationFuture, Revocations, store_answered,
    store_failed, unix_now,
};
use crate::redis_conn::{RedisConnection, RedisTopology};

/// How long a revocation waits for replicas by default (Cluster and Sentinel): below the
/// connection's default response timeout (500 ms), so that `WAIT` answers before it.
const DEFAULT_REPLICA_WAIT: Duration = Duration::from_millis(300);

/// A [`Revocations`] store in Redis, shared by every replica that points at it.
///
/// Each revoked token is one key, `<prefix><issuer>#<jti>`, whose TTL is the token's
/// remaining life plus the largest leeway (5 minutes): Redis forgets it when it no longer
/// matters. It is also appended to a log (three keys under the hash tag `{<prefix>log}`,
/// written by one script), which [mirrors](Self::mirror) read. One key, or one hash tag, per
/// command: it works on a single node, a Redis Cluster and a Sentinel-managed primary alike
/// ([`RedisConnection`], which reconnects by itself); commands time out after 500 ms by
/// default so that an unreachable Redis fails requests quickly (closed, unless the validator
/// fails open) instead of hanging them.
///
/// **Without a round trip per request**: with [`mirror`](Self::mirror), each process keeps a
/// copy of every revocation, refreshed in the background, and answers lookups from it; see
/// there for the staleness bound and what happens while Redis cannot be read.
///
/// **Durability.** On a Cluster or behind Sentinel, [`revoke`](Revocations::revoke) does not
/// return `Ok` before at least one replica has the revocation (its key and its log entry,
/// each with `WAIT 1 300` on its node), so that it survives the loss of the primary it was
/// written to; see [`wait_for_replicas`](Self::wait_for_replicas). When no replica
/// acknowledges it in time, `revoke` fails: the revocation is on the primary (and will reach
/// the replicas if the primary lives), but the caller is told to try again (the companion
/// issuer answers `503`), since a failover now could lose it. Writing it again is harmless.
///
/// **Outages** are logged once: one `warn` (target `bearer_guard::revocation`,
/// `reason = "revocation_store_unavailable"`, with the key prefix) when Redis first fails,
/// one `info` (`"revocation_store_available"`, with the outage's length) when it answers
/// again, whatever failed meanwhile (lookups, revocations, the mirror's reads).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use bearer_guard::revocation::RedisRevocations;
/// // One node; two or more comma-separated URLs: a Cluster; redis+sentinel://...: Sentinel.
/// let store = RedisRevocations::connect("redis://127.0.0.1:6379/")
///     .await?
///     .mirror(Duration::from_secs(1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    conn: RedisConnection,
    prefix: String,
    replicas: u32,
    replica_wait: Duration,
    /// One log line per outage, not per request.
    outage: Arc<Outage>,
    mirror: Option<Arc<Mirror>>,
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
    /// wait for one replica (at most 300 ms) on a Cluster or behind Sentinel, for none on a
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
            outage: Arc::new(Outage::new()),
            mirror: None,
        }
    }

    /// Keeps a copy of every revocation in this process, refreshed from Redis in the
    /// background every quarter of `max_staleness` (at least every 10 ms; one command, which
    /// returns only what is new), and answers lookups from it while it is fresh: no round
    /// trip on the request path, whatever the number of tokens.
    ///
    /// - **Staleness.** The copy is used only while its last successful refresh was *sent*
    ///   at most `max_staleness` ago, and a refresh sees every revocation that Redis
    ///   acknowledged before it was sent. So a token whose [`revoke`](Revocations::revoke)
    ///   returned `Ok` is refused by every mirrored replica at most `max_staleness` later
    ///   (plus the validator's [memo](crate::ValidatorBuilder::revocation_memo), only for
    ///   answers that came from Redis itself).
    /// - **Fail closed.** While the copy is older than that (Redis unreachable, a failover
    ///   under way), lookups go to Redis as without a mirror, and fail: the validator refuses
    ///   the request with `503` (unless it fails open). A revoked token is never admitted
    ///   because of an outage.
    /// - **Failover.** The log is read from the last entry already read; when a failover
    ///   lost writes (the new primary's log is shorter, or different there), the whole log
    ///   is read again. Revocations acknowledged by a replica are never lost
    ///   ([`wait_for_replicas`](Self::wait_for_replicas)).
    /// - **Cost.** One small command per refresh and replica; memory for each unexpired
    ///   revocation (about 100 bytes plus the issuer and `jti`).
    /// - **Writers.** Only revocations written through [`revoke`](Revocations::revoke) of this
    ///   version or later are in the log: a token revoked by an older writer (its key only)
    ///   would be missed. Upgrade every writer (the issuer) before mirroring.
    ///
    /// The copy starts being read on the first lookup made within a Tokio runtime; set the
    /// [`prefix`](Self::prefix) first.
    #[must_use]
    pub fn mirror(mut self, max_staleness: Duration) -> Self {
        self.mirror = Some(Arc::new(Mirror::new(&self.prefix, max_staleness)));
        self
    }

    /// The mirror, started if it was not yet.
    fn mirrored(&self) -> Option<&Mirror> {
        let mirror = self.mirror.as_ref()?;
        mirror.start(&self.conn, &self.outage);
        Some(mirror)
    }

    /// How many replicas must acknowledge a revocation (Redis `WAIT`), within `timeout`,
    /// before [`revoke`](Revocations::revoke) returns `Ok`; else it fails (the revocation
    /// stays on the primary). Default: one replica within 300 ms on a Cluster or behind
    /// Sentinel, none on a single node; `0` turns the wait off. The wait is held to 80 % of
    /// the connection's response timeout, so that `WAIT` answers before the connection gives
    /// up on it.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = replicas;
        self.replica_wait = timeout;
        self
    }

    /// Records the outcome: one `warn` when the store starts failing, one `info` when it
    /// answers again. Errors are marked as reported: the validator does not log them again.
    fn outcome<T>(&self, result: redis::RedisResult<T>) -> Result<T, RevocationError> {
        match result {
            Ok(value) => {
                store_answered(&self.outage, &self.prefix);
                Ok(value)
            }
            Err(e) => {
                store_failed(&self.outage, &self.prefix, &e.to_string());
                Err(RevocationError::reported(e.to_string()))
            }
        }
    }

    /// The prefix of every key (default `bearer-guard:revoked:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        // A mirror reads the log of its prefix: a new one for the new prefix.
        if let Some(mirror) = &self.mirror {
            self.mirror = Some(Arc::new(Mirror::new(&self.prefix, mirror.max_staleness())));
        }
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
            .field("mirror", &self.mirror.as_ref().map(|m| m.max_staleness()))
            .finish_non_exhaustive()
    }
}

impl Revocations for RedisRevocations {
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool> {
        if let Some(answer) = self.mirrored().and_then(|m| m.answer(issuer, jti)) {
            return Box::pin(std::future::ready(Ok(answer)));
        }
        let mut conn = self.conn.clone();
        let key = self.key(issuer, jti);
        Box::pin(async move { self.outcome(conn.exists::<_, bool>(key).await) })
    }

    fn known_unrevoked(&self, jti: &str) -> bool {
        self.mirrored().is_some_and(|m| m.clear(jti))
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
            let keep_until = expires_at.saturating_add(KEEP_PAST_EXP);
            let ttl = keep_until.saturating_sub(unix_now());
            if ttl <= 0 {
                return Ok(());
            }
            let set = redis::cmd("SET")
                .arg(&key)
                .arg(1u8)
                .arg("EX")
                .arg(ttl.unsigned_abs())
                .to_owned();
            let append = LogKeys::new(&self.prefix).append(issuer, jti, keep_until);
            if self.replicas == 0 && self.conn.topology() == RedisTopology::Single {
                // One node: both in one round trip.
                let mut pipe = redis::pipe();
                pipe.add_command(set).ignore().add_command(append).ignore();
                return self.outcome(pipe.query_async::<()>(&mut conn).await);
            }
            // The key, then the log entry (another slot on a Cluster), each acknowledged by
            // the replicas of its own node.
            for cmd in [set, append] {
                self.write(&mut conn, cmd).await?;
            }
            Ok(())
        })
    }
}

impl RedisRevocations {
    /// Runs `cmd`, then (with replicas to wait for) `WAIT` on the same node, in one pipeline.
    async fn write(
        &self,
        conn: &mut RedisConnection,
        cmd: redis::Cmd,
    ) -> Result<(), RevocationError> {
        if self.replicas == 0 {
            return self
                .outcome(cmd.query_async::<redis::Value>(conn).await)
                .map(drop);
        }
        // One pipeline: routed to the key's node, so `WAIT` counts that node's replicas.
        // `WAIT` answers within its timeout; a longer one than the connection waits for an
        // answer would turn "not acknowledged" into an error, logged as an outage.
        let wait = self
            .replica_wait
            .min(self.conn.response_timeout().mul_f32(0.8));
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let (acked,): (u32,) = self.outcome(
            redis::pipe()
                .add_command(cmd)
                .ignore()
                .cmd("WAIT")
                .arg(self.replicas)
                .arg(wait_ms)
                .query_async(conn)
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
    }
}
