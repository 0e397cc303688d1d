//! Quotas shared by every replica through Redis (feature `redis`): see [`RedisQuotas`].

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use governor::Quota;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The GCRA script, evaluated by Redis (`SCRIPT LOAD` once, then `EVALSHA`).
const SCRIPT: &str = include_str!("gcra.lua");

/// The prefix of every key ([`RedisQuotasBuilder::prefix`]).
pub const DEFAULT_REDIS_PREFIX: &str = "bearer-guard:quota:";
/// How long one request waits for Redis before the fallback decides it
/// ([`RedisQuotasBuilder::timeout`]).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// While Redis is unavailable, how often one request tries it again
/// ([`RedisQuotasBuilder::retry_every`]).
pub const DEFAULT_REDIS_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Largest batch ([`RedisQuotasBuilder::batch`]).
const MAX_BATCH: u32 = 64;
/// Bounds that keep every time in the script below 2^53 µs (exact in Lua's doubles):
/// an emission interval of at most about a year, a burst tolerance of at most about 70.
const MAX_T_US: u64 = 1 << 45;
const MAX_TAU_US: u64 = 1 << 51;
/// Past this many clients holding leased cells, expired leases are swept out.
const SWEEP_LEASES_AT: usize = 1024;
/// `grpc-status` for `UNAVAILABLE`.
const GRPC_UNAVAILABLE: u16 = 14;

/// What decides requests while Redis cannot answer (down, or slower than the
/// [timeout](RedisQuotasBuilder::timeout)). Every request it decides is counted in
/// [`QuotaStats`]; the outage is logged once when it starts and once when it ends.
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
    /// `grpc-status: 14`, `UNAVAILABLE`), marked with [`QuotaUnavailable`].
    Closed,
}

/// Marks a `503` (or `grpc-status: 14`) answered because Redis could not decide a request
/// under [`Fallback::Closed`]; it is in the response's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUnavailable;

/// Redis could not be reached, or a setting was refused. Never holds the URL, which may
/// carry a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaStoreError {
    reason: String,
}

impl fmt::Display for QuotaStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis quota store: {}", self.reason)
    }
}

impl std::error::Error for QuotaStoreError {}

fn store_error(reason: impl Into<String>) -> QuotaStoreError {
    QuotaStoreError {
        reason: reason.into(),
    }
}

/// How requests were decided, since the store was built (shared by its clones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaStats {
    /// Requests Redis decided (one round trip each).
    pub redis: u64,
    /// Requests admitted on a cell lent by an earlier round trip ([batching]), without one.
    ///
    /// [batching]: RedisQuotasBuilder::batch
    pub batched: u64,
    /// Round trips that failed or timed out.
    pub errors: u64,
    /// Requests the [`Fallback`] admitted.
    pub fallback_admitted: u64,
    /// Requests the [`Fallback`] refused (`429` from local buckets, or `503`).
    pub fallback_refused: u64,
}

/// Per-client quotas kept in Redis, shared by every replica that points at the same Redis:
/// give it to [`RateLimitByClientBuilder::redis`](super::RateLimitByClientBuilder::redis).
///
/// - **Algorithm.** GCRA, as governor runs it in memory: the same [`Quota`]s give the same
///   answers (`429` with `Retry-After`, gRPC status 8). A Lua script evaluates it atomically
///   on Redis' clock (`TIME`: one clock for all replicas) in one round trip per request
///   (`EVALSHA`; reloaded by itself after `NOSCRIPT`, as from a restarted Redis). Times are
///   whole microseconds: an emission interval is rounded *up* to one (stricter by at most
///   1 µs per request), and held to at most about a year.
/// - **Keys.** One per client: `<prefix>{<key>}`, the key escaped (`%XX` for every byte but
///   ASCII letters, digits and `-_.:@`), so that no client id can reach another's key, and
///   in braces, a hash tag: Redis Cluster keeps each bucket in one slot. A key expires when
///   its bucket would be full again, so idle clients cost nothing.
/// - **When Redis cannot answer** within the [timeout](RedisQuotasBuilder::timeout), the
///   [`Fallback`] decides (default: each replica's local buckets). One `warn` (target
///   `bearer_guard::rate_limit`, `reason = "quota_store_unavailable"`) when Redis first
///   fails, one `info` when it answers again; meanwhile only one request every
///   [`retry_every`](RedisQuotasBuilder::retry_every) tries Redis, the others go straight to
///   the fallback, and [`stats`](Self::stats) counts them.
///
/// Clones share the connection, the counters and the lent cells.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::num::NonZeroU32;
/// use bearer_guard::rate_limit::{Fallback, Quota, RateLimitByClient, RedisQuotas};
///
/// let quotas = RedisQuotas::builder("redis://127.0.0.1:6379/")
///     .fallback(Fallback::Local)
///     .connect()
///     .await?;
/// let limit = RateLimitByClient::builder(Quota::per_minute(NonZeroU32::new(60).unwrap()))
///     .client("payments", Quota::per_minute(NonZeroU32::new(120).unwrap()))
///     .redis(quotas)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisQuotas {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    settings: Settings,
    /// The script's SHA-1, as `SCRIPT LOAD` answered it.
    sha: OnceLock<String>,
    /// 0 while Redis answers; else when the next request may try it, in ms since `epoch`.
    retry_at: AtomicU64,
    epoch: Instant,
    leases: Mutex<HashMap<String, Lease>>,
    redis: AtomicU64,
    batched: AtomicU64,
    errors: AtomicU64,
    admitted: AtomicU64,
    refused: AtomicU64,
}

#[derive(Clone, Debug)]
struct Settings {
    prefix: String,
    timeout: Duration,
    fallback: Fallback,
    retry_every: Duration,
    batch: u32,
    lease_max_age: Duration,
}

/// Cells lent by Redis to this replica, to be spent before `until`.
struct Lease {
    cells: u32,
    until: Instant,
}

/// Configures a [`RedisQuotas`]; from [`RedisQuotas::builder`].
#[must_use]
pub struct RedisQuotasBuilder {
    url: String,
    settings: Settings,
}

impl RedisQuotas {
    /// Starts configuring a store at `url` (`redis://`, `rediss://`, `redis+unix://`). The
    /// URL is never printed: it may carry a password.
    pub fn builder(url: impl Into<String>) -> RedisQuotasBuilder {
        RedisQuotasBuilder {
            url: url.into(),
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

    /// How requests were decided so far.
    #[must_use]
    pub fn stats(&self) -> QuotaStats {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let i = &self.inner;
        QuotaStats {
            redis: get(&i.redis),
            batched: get(&i.batched),
            errors: get(&i.errors),
            fallback_admitted: get(&i.admitted),
            fallback_refused: get(&i.refused),
        }
    }

    /// The Redis key of the bucket of `key`: `<prefix>{<escaped key>}`.
    #[must_use]
    pub fn bucket_key(&self, key: &str) -> String {
        let prefix = &self.inner.settings.prefix;
        let mut out = String::with_capacity(prefix.len() + key.len() + 2);
        out.push_str(prefix);
        out.push('{');
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out.push('}');
        out
    }

    /// Decides one request of `key` under `quota`: now when a lent cell admits it or Redis is
    /// known to be down (then `local` is the local bucket, for [`Fallback::Local`]), else
    /// after a round trip to Redis.
    pub(super) fn check<L>(&self, key: &str, quota: Quota, local: L) -> Check
    where
        L: FnOnce() -> Result<(), Duration> + Send + 'static,
    {
        let bucket = self.bucket_key(key);
        if self.take_lent(&bucket) {
            self.inner.batched.fetch_add(1, Ordering::Relaxed);
            return Check::Now(Verdict::Admit);
        }
        if !self.may_try() {
            return Check::Now(self.fall_back(local));
        }
        let this = self.clone();
        Check::Wait(Box::pin(async move {
            let sent = Instant::now();
            let cells = Cells::of(quota);
            match this.round_trip(&bucket, cells).await {
                Ok((taken, wait)) => {
                    this.answered();
                    this.inner.redis.fetch_add(1, Ordering::Relaxed);
                    if taken == 0 {
                        Verdict::Limited(Duration::from_micros(wait))
                    } else {
                        this.lend(bucket, taken, sent);
                        Verdict::Admit
                    }
                }
                Err(reason) => {
                    this.failed(&reason);
                    this.fall_back(local)
                }
            }
        }))
    }

    fn fall_back(&self, local: impl FnOnce() -> Result<(), Duration>) -> Verdict {
        let verdict = match self.inner.settings.fallback {
            Fallback::Local => local().map_or_else(Verdict::Limited, |()| Verdict::Admit),
            Fallback::Open => Verdict::Admit,
            Fallback::Closed => Verdict::Unavailable,
        };
        let counter = match verdict {
            Verdict::Admit => &self.inner.admitted,
            _ => &self.inner.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// One `EVALSHA` (plus `SCRIPT LOAD` when Redis does not know the script), within the
    /// timeout: `(cells taken, µs to wait)`.
    async fn round_trip(&self, bucket: &str, cells: Cells) -> Result<(u64, u64), String> {
        let settings = &self.inner.settings;
        let mut conn = self.inner.conn.clone();
        let want = settings.batch.min(cells.burst);
        let keep = cells.burst / 2;
        let attempt = async {
            let sha = match self.inner.sha.get() {
                Some(sha) => sha.clone(),
                None => load(&mut conn, &self.inner.sha).await?,
            };
            match evalsha(&mut conn, &sha, bucket, cells, want, keep).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    let sha = load(&mut conn, &self.inner.sha).await?;
                    evalsha(&mut conn, &sha, bucket, cells, want, keep).await
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(settings.timeout, attempt).await {
            Ok(Ok((taken, wait))) => Ok((taken.min(u64::from(want)), wait)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", settings.timeout)),
        }
    }

    /// Whether this request may ask Redis: always while it answers; during an outage, one
    /// request every `retry_every`.
    fn may_try(&self) -> bool {
        let retry_at = self.inner.retry_at.load(Ordering::Acquire);
        if retry_at == 0 {
            return true;
        }
        let now = self.millis();
        let next = now + millis(self.inner.settings.retry_every);
        now >= retry_at
            && self
                .inner
                .retry_at
                .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn failed(&self, reason: &str) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        let next = self.millis() + millis(self.inner.settings.retry_every);
        if self.inner.retry_at.swap(next, Ordering::AcqRel) == 0 {
            tracing::warn!(
                target: "bearer_guard::rate_limit",
                reason = "quota_store_unavailable",
                fallback = ?self.inner.settings.fallback,
                error = reason,
                "Redis quota store unavailable: the fallback decides until it answers again"
            );
        }
    }

    fn answered(&self) {
        if self.inner.retry_at.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!(
                target: "bearer_guard::rate_limit",
                reason = "quota_store_available",
                "Redis quota store answers again"
            );
        }
    }

    /// ms since `epoch`, plus one (0 means "Redis answers").
    fn millis(&self) -> u64 {
        millis(self.inner.epoch.elapsed()) + 1
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.inner
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends a cell lent earlier for `bucket`, if one is left and still fresh.
    fn take_lent(&self, bucket: &str) -> bool {
        if self.inner.settings.batch <= 1 {
            return false;
        }
        let mut leases = self.leases();
        let Some(lease) = leases.get_mut(bucket) else {
            return false;
        };
        let fresh = lease.until > Instant::now();
        if fresh {
            lease.cells -= 1;
        }
        if !fresh || lease.cells == 0 {
            leases.remove(bucket);
        }
        fresh
    }

    /// Keeps the `taken - 1` cells Redis lent beyond this request, at most `batch - 1` for a
    /// client, for at most `max_age` from when the round trip was sent.
    fn lend(&self, bucket: String, taken: u64, sent: Instant) {
        let Ok(extra @ 1..) = u32::try_from(taken.saturating_sub(1)) else {
            return;
        };
        let settings = &self.inner.settings;
        if settings.batch <= 1 {
            return;
        }
        let until = sent + settings.lease_max_age;
        let now = Instant::now();
        let mut leases = self.leases();
        if leases.len() >= SWEEP_LEASES_AT {
            leases.retain(|_, lease| lease.until > now);
        }
        let lease = leases.entry(bucket).or_insert(Lease { cells: 0, until });
        if lease.until <= now {
            *lease = Lease { cells: 0, until };
        }
        // Cells lent later never extend the life of those lent earlier, and concurrent round
        // trips never leave more than `batch - 1` cells here: the rest are dropped.
        lease.cells = lease.cells.saturating_add(extra).min(settings.batch - 1);
        lease.until = lease.until.min(until);
    }
}

async fn load(conn: &mut ConnectionManager, sha: &OnceLock<String>) -> redis::RedisResult<String> {
    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SCRIPT)
        .query_async(conn)
        .await?;
    Ok(sha.get_or_init(|| loaded).clone())
}

async fn evalsha(
    conn: &mut ConnectionManager,
    sha: &str,
    bucket: &str,
    cells: Cells,
    want: u32,
    keep: u32,
) -> redis::RedisResult<(u64, u64)> {
    redis::cmd("EVALSHA")
        .arg(sha)
        .arg(1)
        .arg(bucket)
        .arg(cells.t_us)
        .arg(cells.tau_us)
        .arg(want)
        .arg(keep)
        .arg("")
        .query_async(conn)
        .await
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A quota in the script's units: whole microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cells {
    t_us: u64,
    tau_us: u64,
    burst: u32,
}

impl Cells {
    fn of(quota: Quota) -> Self {
        let t_ns = quota.replenish_interval().as_nanos();
        let t_us = u64::try_from(t_ns.div_ceil(1000)).map_or(MAX_T_US, |t| t.clamp(1, MAX_T_US));
        let burst = quota.burst_size().get();
        Cells {
            t_us,
            tau_us: t_us.saturating_mul(u64::from(burst - 1)).min(MAX_TAU_US),
            burst,
        }
    }
}

/// A decision: now, or after a round trip to Redis.
pub(super) enum Check {
    Now(Verdict),
    Wait(Pin<Box<dyn Future<Output = Verdict> + Send>>),
}

/// What to answer a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Admit,
    Limited(Duration),
    Unavailable,
}

/// The answer under [`Fallback::Closed`]: `503` with `Retry-After: 1`, or a trailers-only
/// gRPC `UNAVAILABLE`.
pub(super) fn unavailable<B: Default>(grpc: bool) -> Response<B> {
    let mut res = Response::new(B::default());
    let headers = res.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(GRPC_UNAVAILABLE));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("rate limit store unavailable"),
        );
        *res.status_mut() = StatusCode::OK;
    } else {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    res.extensions_mut().insert(QuotaUnavailable);
    res
}

impl RedisQuotasBuilder {
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

    /// Batching: a round trip may take up to `cells` cells (at most 64) from a client's
    /// bucket while at least half its burst stays in it, and this replica spends the extra
    /// ones on the client's next requests without asking Redis, for at most `max_age`. A
    /// client far below its quota then costs one round trip per `cells` requests; a client
    /// near it, one per request, as without batching.
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
        let mut conn = store.inner.conn.clone();
        let wait = store.inner.settings.timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(wait, load(&mut conn, &store.inner.sha)).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(store_error(e.to_string())),
            Err(_) => Err(store_error(format!("no answer within {wait:?}"))),
        }
    }

    /// Builds the store without touching Redis: the connection is made on the first request,
    /// and until Redis answers the fallback decides. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// The URL or the prefix is invalid, or there is no Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisQuotas, QuotaStoreError> {
        if self.settings.prefix.contains(['{', '}']) {
            return Err(store_error("the key prefix may not hold `{` or `}`"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(store_error("no Tokio runtime"));
        }
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| store_error(format!("invalid Redis URL ({:?})", e.kind())))?;
        let timeout = self.settings.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| store_error(e.to_string()))?;
        Ok(RedisQuotas {
            inner: Arc::new(Inner {
                conn,
                settings: self.settings,
                sha: OnceLock::new(),
                retry_at: AtomicU64::new(0),
                epoch: Instant::now(),
                leases: Mutex::new(HashMap::new()),
                redis: AtomicU64::new(0),
                batched: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for RedisQuotasBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQuotasBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisQuotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQuotas")
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn n(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn store(prefix: &str) -> RedisQuotas {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        RedisQuotas::builder("redis://127.0.0.1:1/")
            .prefix(prefix)
            .connect_lazy()
            .expect("lazy store")
    }

    #[test]
    fn keys_are_escaped_into_one_hash_tag_and_cannot_collide() {
        let s = store("q:");
        assert_eq!(s.bucket_key("client:billing"), "q:{client:billing}");
        assert_eq!(s.bucket_key("sub:a.b@c-d_e"), "q:{sub:a.b@c-d_e}");
        assert_eq!(s.bucket_key("client:a}b{c"), "q:{client:a%7Db%7Bc}");
        assert_eq!(s.bucket_key("client:%7D"), "q:{client:%257D}");
        assert_eq!(s.bucket_key("client:é\n "), "q:{client:%C3%A9%0A%20}");
        let keys = ["a}", "a%7D", "a%257D", "a", "a ", "a+", "A"];
        let mut escaped: Vec<String> = keys.iter().map(|k| s.bucket_key(k)).collect();
        escaped.sort();
        escaped.dedup();
        assert_eq!(escaped.len(), keys.len(), "{escaped:?}");
        for key in &escaped {
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert_eq!(key.matches('}').count(), 1, "{key}");
            assert!(key.ends_with('}'), "{key}");
        }
    }

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
    fn quotas_become_whole_microseconds_rounded_up() {
        let per_minute = Cells::of(Quota::per_minute(n(120)));
        assert_eq!(
            per_minute,
            Cells {
                t_us: 500_000,
                tau_us: 500_000 * 119,
                burst: 120
            }
        );
        // 1/3 s is 333 333.33 µs: rounded up, never down (stricter, not looser).
        assert_eq!(Cells::of(Quota::per_second(n(3))).t_us, 333_334);
        // Sub-microsecond intervals: one microsecond.
        assert_eq!(Cells::of(Quota::per_second(n(5_000_000))).t_us, 1);
        // Absurdly slow quotas are held to the bounds that keep the script exact.
        let slow = Quota::with_period(Duration::from_secs(1 << 40))
            .expect("non-zero")
            .allow_burst(n(1 << 20));
        let slow = Cells::of(slow);
        assert_eq!((slow.t_us, slow.tau_us), (MAX_T_US, MAX_TAU_US));
    }

    #[test]
    fn the_closed_answer_is_503_or_grpc_unavailable_with_a_marker() {
        let res: Response<()> = unavailable(false);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        assert!(res.extensions().get::<QuotaUnavailable>().is_some());
        let res: Response<()> = unavailable(true);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        assert!(res.extensions().get::<QuotaUnavailable>().is_some());
    }

    #[test]
    fn lent_cells_are_spent_once_capped_and_never_outlive_their_grant() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let s = RedisQuotas::builder("redis://127.0.0.1:1/")
            .batch(8, Duration::from_millis(5))
            .connect_lazy()
            .expect("lazy");
        let sent = Instant::now();
        s.lend("k".to_owned(), 4, sent);
        assert!((0..3).all(|_| s.take_lent("k")), "three lent cells");
        assert!(!s.take_lent("k"), "spent");
        assert!(!s.take_lent("other"));
        // Concurrent grants add up to `batch - 1` cells at most.
        for _ in 0..3 {
            s.lend("k".to_owned(), 8, Instant::now());
        }
        assert_eq!(s.leases()["k"].cells, 7);
        // A later grant never extends the life of earlier cells.
        let until = s.leases()["k"].until;
        std::thread::sleep(Duration::from_millis(1));
        s.lend("k".to_owned(), 2, Instant::now());
        assert_eq!(s.leases()["k"].until, until);
        std::thread::sleep(Duration::from_millis(10));
        assert!(!s.take_lent("k"), "expired");
        assert!(s.leases().is_empty());
        // Off by default: nothing is lent or spent.
        let off = store("q:");
        off.lend("k".to_owned(), 4, Instant::now());
        assert!(!off.take_lent("k"));
        assert!(off.leases().is_empty());
    }
}
