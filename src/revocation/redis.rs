//! Revocations shared through Redis (feature `redis`).

use std::fmt;
use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use super::{KEEP_PAST_EXP, RevocationError, RevocationFuture, Revocations, unix_now};

/// A [`Revocations`] store in Redis, shared by every replica that points at it.
///
/// Each revoked token is one key, `<prefix><issuer>#<jti>`, whose TTL is the token's
/// remaining life plus the largest leeway (5 minutes): Redis forgets it when it no longer
/// matters. The connection is a
/// [`ConnectionManager`] that reconnects by itself; commands time out after 500 ms by
/// default so that an unreachable Redis fails requests quickly (closed, unless the validator
/// fails open) instead of hanging them.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bearer_guard::revocation::RedisRevocations;
/// let store = RedisRevocations::connect("redis://127.0.0.1:6379/").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisRevocations {
    /// Connects with default timeouts (500 ms).
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
        let conn = crate::redis_conn::connect(url, timeout)
            .await
            .map_err(RevocationError::new)?;
        Ok(RedisRevocations {
            conn,
            prefix: "bearer-guard:revoked:".to_owned(),
        })
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
            .finish_non_exhaustive()
    }
}

impl Revocations for RedisRevocations {
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool> {
        let mut conn = self.conn.clone();
        let key = self.key(issuer, jti);
        Box::pin(async move {
            conn.exists::<_, bool>(key)
                .await
                .map_err(|e| RevocationError::new(e.to_string()))
        })
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
            conn.set_ex::<_, _, ()>(key, 1u8, ttl.unsigned_abs())
                .await
                .map_err(|e| RevocationError::new(e.to_string()))
        })
    }
}
