//! [`RedisQuotasBuilder`]: the settings of a [`RedisQuotas`], and the connection.

use std::fmt;
use std::time::Duration;

use super::RedisQuotas;
use crate::redis_conn::RedisConnection;

/// The prefix of every key ([`RedisQuotasBuilder::prefix`]).
pub const DEFAULT_REDIS_PREFIX: &str = "bearer-guard:quota:";
/// How long one request waits for Redis before the fallback decides it
/// ([`RedisQuotasBuilder::timeout`]).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// While Redis is unavailable, how often one request tries it again
/// ([`RedisQuotasBuilder::retry_every`]).
pub const DEFAULT_REDIS_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Largest batch ([`RedisQuotasBuilder::batch`]).
const MAX_BATCH: u32 = 1024;

/// What decides requests while Redis cannot answer (down, or slower than the
/// [timeout](RedisQuotasBuilder::timeout)). Every request it decides is counted in
/// [`QuotaStats`](super::QuotaStats); the outage is logged once when it starts and once when
/// it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// Each replica limits with its own in-memory buckets, with the same quotas (default).
    /// Across `N` replicas a client can get up to `N` times its quota during the outage.
    #[default]
    Local,
    /// Admit every request: no limit during the outage.
    Open,
    /// Refuse every request with `503 Service Unavailable` and `Retry-After: 1` (gRPC:
    /// `grpc-status: 14`, `UNAVAILABLE`), marked with [`QuotaUnavailable`](super::QuotaUnavailable).
    Closed,
}

/// Redis could not be reached, or a setting was refused. Never holds the URL, which may
/// carry a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaStoreError {
    reason: String,
}

impl QuotaStoreError {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        QuotaStoreError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for QuotaStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis quota store: {}", self.reason)
    }
}

impl std::error::Error for QuotaStoreError {}

#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) fallback: Fallback,
    pub(super) retry_every: Duration,
    pub(super) batch: u32,
    pub(super) lease_max_age: Duration,
}

/// Where the store's connection comes from.
pub(super) enum Source {
    Url(String),
    Connection(RedisConnection),
}

/// Configures a [`RedisQuotas`]; from [`RedisQuotas::builder`] or
/// [`RedisQuotas::with_connection`].
#[must_use]
pub struct RedisQuotasBuilder {
    source: Source,
    settings: Settings,
}

impl RedisQuotasBuilder {
    pub(super) fn new(source: Source) -> Self {
        RedisQuotasBuilder {
            source,
            settings: Settings {
                prefix: DEFAULT_REDIS_PREFIX.to_owned(),
                timeout: DEFAULT_REDIS_TIMEOUT,
                fallback: Fallback::Local,
                retry_every: DEFAULT_REDIS_RETRY_EVERY,
                batch: 1,
                lease_max_age: Duration::ZERO,
            },
        }
    }

    /// The prefix of every key (default [`DEFAULT_REDIS_PREFIX`]). It may not hold `{` or `}`,
    /// which would move the hash tag.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// How long one request waits for Redis before the [`Fallback`] decides it (default
    /// [`DEFAULT_REDIS_TIMEOUT`]): a slow Redis never stalls the API for longer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// What decides requests while Redis cannot (default [`Fallback::Local`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.settings.fallback = fallback;
        self
    }

    /// While Redis is unavailable, one request every `every` tries it again; the others go
    /// straight to the fallback (default [`DEFAULT_REDIS_RETRY_EVERY`]).
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.settings.retry_every = every;
        self
    }

    /// Batching, which decides most requests locally: a round trip may take up to `cells`
    /// cells (at most 1024) from a client's bucket while at least half its burst stays in it,
    /// and this replica spends the extra ones on the client's next requests without asking
    /// Redis, for at most `max_age`. When half of them are spent, one round trip *in the
    /// background* tops them up, so that a steady client rarely waits for Redis (only its
    /// first request, and the first after its cells expired or ran out). A replica has at
    /// most one round trip under way per client: requests that find no cell while one is
    /// wait for it (at most the [timeout](Self::timeout)) and spend the cells it brings,
    /// instead of each asking Redis. Once Redis has refused a client, its requests are
    /// refused here until its next cell conforms (Redis said when), without a round trip. A
    /// client far below its quota then costs one background round trip per `cells / 2`
    /// requests; a client near it, one per request, as without batching. Spending a lent
    /// cell takes no lock shared with other clients and allocates nothing.
    ///
    /// Tolerance: cells are granted by the same GCRA, only spent later, and a replica holds
    /// at most `cells - 1` of a client's. So in any window, across `N` replicas, a client
    /// gets at most `min(N × (cells - 1), ⌈max_age / T⌉)` requests beyond its quota's bound
    /// (`T`: the emission interval); over the long run, never more than its quota. The other
    /// way, lent cells that expire unspent are lost, and while they are out other replicas
    /// cannot use them. Off (`cells` = 1) by default: every request is one round trip.
    pub fn batch(mut self, cells: u32, max_age: Duration) -> Self {
        self.settings.batch = cells.clamp(1, MAX_BATCH);
        self.settings.lease_max_age = max_age;
        self
    }

    /// Connects, loading the script: fails when Redis cannot be reached now.
    ///
    /// # Errors
    /// The URL or the prefix is invalid, or Redis did not answer within the timeout (at
    /// least 1 s here). The message never includes the URL.
    pub async fn connect(self) -> Result<RedisQuotas, QuotaStoreError> {
        let store = self.connect_lazy()?;
        let wait = store.timeout().max(Duration::from_secs(1));
        match tokio::time::timeout(wait, store.load_script()).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(QuotaStoreError::new(e.to_string())),
            Err(_) => Err(QuotaStoreError::new(format!("no answer within {wait:?}"))),
        }
    }

    /// Builds the store without touching Redis: the connection is made on the first request,
    /// and until Redis answers the fallback decides. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// The URL or the prefix is invalid, or there is no Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisQuotas, QuotaStoreError> {
        if self.settings.prefix.contains(['{', '}']) {
            return Err(QuotaStoreError::new(
                "the key prefix may not hold `{` or `}`",
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(QuotaStoreError::new("no Tokio runtime"));
        }
        let conn = match self.source {
            Source::Connection(conn) => conn,
            Source::Url(url) => {
                let timeout = self.settings.timeout;
                RedisConnection::builder(&url)
                    .connect_timeout(timeout.max(Duration::from_millis(500)))
                    .response_timeout(timeout)
                    .connect_lazy()
                    .map_err(|e| QuotaStoreError::new(e.to_string()))?
            }
        };
        Ok(RedisQuotas::new(conn, self.settings))
    }
}

impl fmt::Debug for RedisQuotasBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQuotasBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_with_braces_or_a_bad_url_is_refused_without_printing_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let err = RedisQuotas::builder("redis://127.0.0.1/")
            .prefix("q{x}:")
            .connect_lazy()
            .expect_err("braces");
        assert!(err.to_string().contains("prefix"), "{err}");
        let err = RedisQuotas::builder("nonsense://user:hunter2@host/")
            .connect_lazy()
            .expect_err("scheme");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
        let built = RedisQuotas::builder("redis://:hunter2@127.0.0.1/");
        assert!(!format!("{built:?}").contains("hunter2"));
        let built = built.connect_lazy().expect("lazy");
        assert!(!format!("{built:?}").contains("hunter2"));
    }

    #[test]
    fn without_a_runtime_connect_lazy_is_an_error_not_a_panic() {
        let err = RedisQuotas::builder("redis://127.0.0.1/")
            .connect_lazy()
            .expect_err("no runtime");
        assert!(err.to_string().contains("Tokio"), "{err}");
    }

    #[test]
    fn batches_are_held_between_one_and_1024_cells() {
        let batch = |cells| {
            RedisQuotas::builder("redis://127.0.0.1/")
                .batch(cells, Duration::from_secs(1))
                .settings
                .batch
        };
        assert_eq!(
            (batch(0), batch(1), batch(16), batch(5000)),
            (1, 1, 16, 1024)
        );
    }
}
