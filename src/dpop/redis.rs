//! The replay store shared through Redis (feature `redis`).

use std::fmt;
use std::time::Duration;

use crate::redis_conn::RedisConnection;

use super::replay::{DpopReplay, ReplayError, ReplayFuture, ReplayKey};

/// A [`DpopReplay`] store in Redis, shared by every replica that points at it: a proof
/// accepted by one replica is a replay at all the others.
///
/// Each proof is one key, `<prefix><hex of the replay key>`, written with
/// `SET key 1 NX PX <ttl>`: one atomic single-key command (so it works unchanged on a Redis
/// Cluster), whose answer says whether the key was new, and which Redis expires
/// by itself when the proof's window has passed. The connection is a [`RedisConnection`]
/// (single node, Cluster or Sentinel) that reconnects by itself; commands time out after
/// 500 ms by default. When Redis cannot
/// answer, proofs are refused with 503 (fail closed).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use bearer_guard::dpop::{Dpop, RedisReplay};
/// let replay = RedisReplay::connect("redis://127.0.0.1:6379/").await?;
/// let dpop = Dpop::builder().replay(Arc::new(replay)).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplay {
    conn: RedisConnection,
    prefix: String,
}

impl RedisReplay {
    /// Connects with default timeouts (500 ms). `url` is a `REDIS_URL`-style value: one URL,
    /// a Cluster's comma-separated seeds or a `redis+sentinel://` URL
    /// ([`RedisConnection::builder`]).
    ///
    /// # Errors
    /// The URL is invalid or Redis cannot be reached now. The message never includes the
    /// URL, which may hold a password.
    pub async fn connect(url: &str) -> Result<Self, ReplayError> {
        Self::connect_with_timeout(url, Duration::from_millis(500)).await
    }

    /// Connects with the given connection and response timeout.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, ReplayError> {
        let conn = RedisConnection::builder(url)
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| ReplayError::new(e.to_string()))?;
        Ok(Self::new(conn))
    }

    /// A store on an existing connection (shared with the other Redis stores).
    pub fn new(conn: RedisConnection) -> Self {
        RedisReplay {
            conn,
            prefix: "bearer-guard:dpop:".to_owned(),
        }
    }

    /// The prefix of every key (default `bearer-guard:dpop:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis key for a proof.
    #[must_use]
    pub fn key(&self, key: &ReplayKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }
}

impl fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplay")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DpopReplay for RedisReplay {
    fn first_use(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        ReplayFuture::new(async move {
            // `OK` when the key was set (first use), nil when it existed (a replay).
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1u8)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(|e| ReplayError::new(e.to_string()))?;
            Ok(set.is_some())
        })
    }
}
