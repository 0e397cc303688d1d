//! Quotas shared by every replica through Redis (feature `redis`): see [`RedisQuotas`].

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use crate::redis_conn::RedisConnection;

use super::Caller;
use super::quota::Quota;

mod builder;
mod lease;

use self::builder::Settings;
pub use self::builder::{
    DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_RETRY_EVERY, DEFAULT_REDIS_TIMEOUT, Fallback,
    QuotaStoreError, RedisQuotasBuilder,
};
use self::lease::{Flight, LeaseKey, Leases, Slot, Take};

/// The GCRA script, evaluated by Redis (`EVALSHA`; on `NOSCRIPT`, from a restarted or newly
/// promoted node, loaded on that node and run again).
static SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("gcra.lua")));

/// Bounds that keep every time in the script below 2^53 µs (exact in Lua's doubles):
/// an emission interval of at most about a year, a burst tolerance of at most about 70 years.
const MAX_T_US: u64 = 1 << 45;
const MAX_TAU_US: u64 = 1 << 51;

/// Marks a `503` (or `grpc-status: 14`) answered because Redis could not decide a request
/// under [`Fallback::Closed`]; it is in the response's extensions, beside the
/// [`AuthError`](crate::AuthError) of kind
/// [`QuotaUnavailable`](crate::ErrorKind::QuotaUnavailable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUnavailable;

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
    /// Round trips made in the background to refill a replica's lent cells before they run
    /// out ([batching]); no request waited for them.
    ///
    /// [batching]: RedisQuotasBuilder::batch
    pub prefetched: u64,
    /// Requests refused locally, without a round trip, because Redis had said the client's
    /// next cell conforms only later ([batching]).
    ///
    /// [batching]: RedisQuotasBuilder::batch
    pub refused_locally: u64,
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
/// - **Keys.** One per caller: `<prefix>{<key>}`, where the key names the token's issuer with
///   its client id or subject ([`Caller`](super::Caller): `client:<len>:<issuer>:<id>`), escaped
///   (`%XX` for every byte but ASCII letters, digits and `-_.:@`), so that no client id can
///   reach another's key, nor another issuer's client of the same id, and
///   in braces, a hash tag: Redis Cluster keeps each bucket in one slot. A key expires when
///   its bucket would be full again, so idle clients cost nothing.
/// - **When Redis cannot answer** within the [timeout](RedisQuotasBuilder::timeout), the
///   [`Fallback`] decides (default: each replica's local buckets). One `warn` (target
///   `bearer_guard::rate_limit`, `reason = "quota_store_unavailable"`, with the key prefix)
///   when Redis first fails, one `info` (`"quota_store_available"`) when it answers again; meanwhile only one request every
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
    conn: RedisConnection,
    settings: Settings,
    /// 0 while Redis answers; else when the next request may try it, in ms since `epoch`.
    retry_at: AtomicU64,
    /// When the current outage began, in ms since `epoch` (valid while `retry_at` is not 0).
    down_since: AtomicU64,
    epoch: Instant,
    leases: Leases,
    redis: AtomicU64,
    batched: AtomicU64,
    prefetched: AtomicU64,
    refused_locally: AtomicU64,
    errors: AtomicU64,
    admitted: AtomicU64,
    refused: AtomicU64,
}

impl RedisQuotas {
    /// Starts configuring a store at `url`, a `REDIS_URL`-style value: one URL (`redis://`,
    /// `rediss://`, `redis+unix://`), a Cluster's comma-separated seeds, or a
    /// `redis+sentinel://` URL ([`RedisConnection::builder`]). The URL is never printed: it
    /// may carry a password.
    pub fn builder(url: impl Into<String>) -> RedisQuotasBuilder {
        RedisQuotasBuilder::new(self::builder::Source::Url(url.into()))
    }

    /// Starts configuring a store on an existing connection (shared with the other Redis
    /// stores); its own timeouts still bound each request's wait
    /// ([`timeout`](RedisQuotasBuilder::timeout)).
    pub fn with_connection(conn: RedisConnection) -> RedisQuotasBuilder {
        RedisQuotasBuilder::new(self::builder::Source::Connection(conn))
    }

    fn new(conn: RedisConnection, settings: Settings) -> Self {
        let leases = Leases::new(settings.batch, settings.lease_max_age);
        RedisQuotas {
            inner: Arc::new(Inner {
                conn,
                settings,
                retry_at: AtomicU64::new(0),
                down_since: AtomicU64::new(0),
                epoch: Instant::now(),
                leases,
                redis: AtomicU64::new(0),
                batched: AtomicU64::new(0),
                prefetched: AtomicU64::new(0),
                refused_locally: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn timeout(&self) -> Duration {
        self.inner.settings.timeout
    }

    /// `SCRIPT LOAD` (on every primary of a Cluster).
    async fn load_script(&self) -> redis::RedisResult<String> {
        SCRIPT
            .prepare_invoke()
            .load_async(&mut self.inner.conn.clone())
            .await
    }

    /// How requests were decided so far.
    #[must_use]
    pub fn stats(&self) -> QuotaStats {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let i = &self.inner;
        QuotaStats {
            redis: get(&i.redis),
            batched: get(&i.batched),
            prefetched: get(&i.prefetched),
            refused_locally: get(&i.refused_locally),
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
        push_escaped(&mut out, key);
        out.push('}');
        out
    }

    /// The Redis key of `caller`'s bucket (the anonymous one for `None`), written at once.
    fn bucket_of(&self, caller: Option<&Caller<'_>>) -> String {
        let prefix = &self.inner.settings.prefix;
        let mut out = String::with_capacity(prefix.len() + 64);
        out.push_str(prefix);
        out.push('{');
        match caller {
            None => out.push_str("anonymous"),
            Some(caller) => {
                let mut escaped = Escaped(&mut out);
                let _ = caller.write_shared_key(&mut escaped);
            }
        }
        out.push('}');
        out
    }

    /// Decides one request of `caller` under `quota` now, without Redis, when this replica
    /// can: a lent cell admits it (and, when half of them are spent, starts a top-up in the
    /// background), or Redis said when this client's next cell conforms. `None`:
    /// [`decide`](Self::decide) must. Allocation-free.
    pub(super) fn decide_locally(
        &self,
        caller: Option<&Caller<'_>>,
        quota: Quota,
    ) -> Option<Verdict> {
        match self.inner.leases.take(caller, Instant::now()) {
            Take::Admit(top_up) => {
                self.inner.batched.fetch_add(1, Ordering::Relaxed);
                if let Some(flight) = top_up {
                    self.top_up(flight, Cells::of(quota));
                }
                Some(Verdict::Admit)
            }
            Take::Refuse(wait) => {
                self.inner.refused_locally.fetch_add(1, Ordering::Relaxed);
                Some(Verdict::Limited(wait))
            }
            Take::Miss => None,
        }
    }

    /// Decides one request of `caller` under `quota` that [`decide_locally`](Self::decide_locally)
    /// could not: now when Redis is known to be down (then `local` is the local bucket, for
    /// [`Fallback::Local`]), else after a round trip to Redis: this request's own, or
    /// (batching) the one already under way for this client on this replica, whose cells it
    /// then spends.
    pub(super) fn decide<L>(&self, caller: Option<Caller<'static>>, quota: Quota, local: L) -> Check
    where
        L: FnOnce() -> Result<(), Duration> + Send + 'static,
    {
        if !self.may_try() {
            return Check::Now(self.fall_back(local));
        }
        let this = self.clone();
        let cells = Cells::of(quota);
        if self.inner.leases.batch() <= 1 {
            let bucket = self.bucket_of(caller.as_ref());
            return Check::Wait(Box::pin(async move {
                this.ask(&bucket, cells, 1, None)
                    .await
                    .unwrap_or_else(|| this.fall_back(local))
            }));
        }
        let slot = self
            .inner
            .leases
            .slot(LeaseKey(caller), |key| self.bucket_of(key.0.as_ref()));
        Check::Wait(Box::pin(async move {
            this.leased(&slot, cells)
                .await
                .unwrap_or_else(|| this.fall_back(local))
        }))
    }

    /// The way of a request with batching on: a cell of the lease when one is there, else
    /// the round trip under way for the client, waited for (at most the timeout in all),
    /// else its own. `None`: Redis did not answer, the fallback decides.
    async fn leased(&self, slot: &Arc<Slot>, cells: Cells) -> Option<Verdict> {
        let leases = &self.inner.leases;
        let deadline = Instant::now() + self.timeout();
        let mut waited = false;
        loop {
            match leases.take_from(slot, Instant::now()) {
                Take::Admit(top_up) => {
                    self.inner.batched.fetch_add(1, Ordering::Relaxed);
                    if let Some(flight) = top_up {
                        self.top_up(flight, cells);
                    }
                    return Some(Verdict::Admit);
                }
                Take::Refuse(wait) => {
                    self.inner.refused_locally.fetch_add(1, Ordering::Relaxed);
                    return Some(Verdict::Limited(wait));
                }
                Take::Miss => {}
            }
            if waited && self.is_down() {
                // The round trip waited for failed: no other is tried before `retry_every`.
                return None;
            }
            let now = Instant::now();
            let flight = Flight::start(slot);
            if flight.is_some() || now >= deadline {
                // This request's own round trip: one cell for it, the rest lent (to the
                // requests waiting for it, first).
                return self
                    .ask(&slot.bucket, cells, leases.batch(), Some(slot))
                    .await;
            }
            slot.landing(deadline - now).await;
            waited = true;
        }
    }

    /// One round trip for a request: takes up to `want` cells, the first for it, the others
    /// lent to `slot`. `None`: Redis did not answer (the failure is recorded).
    async fn ask(
        &self,
        bucket: &str,
        cells: Cells,
        want: u32,
        slot: Option<&Slot>,
    ) -> Option<Verdict> {
        let sent = Instant::now();
        match self.round_trip(bucket, cells, want).await {
            Ok((taken, wait)) => {
                self.answered();
                self.inner.redis.fetch_add(1, Ordering::Relaxed);
                let leases = &self.inner.leases;
                if taken == 0 {
                    let wait = Duration::from_micros(wait);
                    if let Some(slot) = slot {
                        leases.refuse_until(slot, sent + wait, Instant::now());
                    }
                    Some(Verdict::Limited(wait))
                } else {
                    if let Some(slot) = slot {
                        leases.lend(slot, taken - 1, sent, Instant::now());
                    }
                    Some(Verdict::Admit)
                }
            }
            Err(reason) => {
                self.failed(&reason);
                None
            }
        }
    }

    /// Off the request path: tops up the cells lent for the flight's client before they run
    /// out. The flight lands when the round trip is over, waking whoever waits for it.
    fn top_up(&self, flight: Flight, cells: Cells) {
        let want = self.inner.leases.top_up(flight.slot(), Instant::now());
        if want == 0 || !self.may_try() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let slot = flight.slot();
            let sent = Instant::now();
            match this.round_trip(&slot.bucket, cells, want).await {
                Ok((taken, wait)) => {
                    this.answered();
                    this.inner.prefetched.fetch_add(1, Ordering::Relaxed);
                    let leases = &this.inner.leases;
                    if taken == 0 {
                        let until = sent + Duration::from_micros(wait);
                        leases.refuse_until(slot, until, Instant::now());
                    } else {
                        leases.lend(slot, taken, sent, Instant::now());
                    }
                }
                Err(reason) => this.failed(&reason),
            }
            drop(flight);
        });
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
    /// timeout, for up to `want` cells: `(cells taken, µs to wait)`.
    async fn round_trip(
        &self,
        bucket: &str,
        cells: Cells,
        want: u32,
    ) -> Result<(u64, u64), String> {
        let settings = &self.inner.settings;
        let mut conn = self.inner.conn.clone();
        let want = want.clamp(1, cells.burst);
        let keep = cells.burst / 2;
        let mut invocation = SCRIPT.key(bucket);
        invocation
            .arg(cells.t_us)
            .arg(cells.tau_us)
            .arg(want)
            .arg(keep)
            .arg("");
        let attempt = invocation.invoke_async::<(u64, u64)>(&mut conn);
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

    /// Whether Redis is known to be down (it failed, and has not answered since).
    fn is_down(&self) -> bool {
        self.inner.retry_at.load(Ordering::Acquire) != 0
    }

    /// A round trip failed. The first failure of an outage logs one `warn`; the others are
    /// only counted ([`stats`](Self::stats)).
    fn failed(&self, reason: &str) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        let now = self.millis();
        let next = now + millis(self.inner.settings.retry_every);
        if self.inner.retry_at.swap(next, Ordering::AcqRel) == 0 {
            self.inner.down_since.store(now, Ordering::Release);
            tracing::warn!(
                target: "bearer_guard::rate_limit",
                reason = "quota_store_unavailable",
                prefix = %self.inner.settings.prefix,
                fallback = ?self.inner.settings.fallback,
                error = reason,
                "Redis quota store unavailable: the fallback decides until it answers again"
            );
        }
    }

    /// A round trip succeeded: the first after an outage logs one `info`, with how long the
    /// outage lasted.
    fn answered(&self) {
        if self.inner.retry_at.load(Ordering::Acquire) != 0
            && self.inner.retry_at.swap(0, Ordering::AcqRel) != 0
        {
            let since = self.inner.down_since.load(Ordering::Acquire);
            let outage = Duration::from_millis(self.millis().saturating_sub(since));
            tracing::info!(
                target: "bearer_guard::rate_limit",
                reason = "quota_store_available",
                prefix = %self.inner.settings.prefix,
                outage_ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX),
                "Redis quota store answers again, after an outage of {outage:?}"
            );
        }
    }

    /// ms since `epoch`, plus one (0 means "Redis answers").
    fn millis(&self) -> u64 {
        millis(self.inner.epoch.elapsed()) + 1
    }
}

/// Appends `key` escaped: `%XX` for every byte but ASCII letters, digits and `-_.:@`.
fn push_escaped(out: &mut String, key: &str) {
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A writer that escapes what it is given into a string ([`push_escaped`]).
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
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
        let burst = quota.burst().get();
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
    fn a_callers_bucket_is_written_at_once_as_its_escaped_shared_key() {
        use std::borrow::Cow;
        let s = store("q:");
        let callers = [
            Caller::Client {
                issuer: Cow::Borrowed("https://a.test"),
                id: Cow::Borrowed("b}i{l l%"),
            },
            Caller::Subject {
                issuer: Cow::Borrowed("https://a.test:x"),
                sub: Cow::Borrowed("é"),
            },
            Caller::Other(Cow::Borrowed("tenant:7")),
        ];
        for caller in &callers {
            assert_eq!(
                s.bucket_of(Some(caller)),
                s.bucket_key(&caller.shared_key())
            );
        }
        assert_eq!(
            s.bucket_of(Some(&callers[0])),
            "q:{client:14:https:%2F%2Fa.test:b%7Di%7Bl%20l%25}"
        );
        assert_eq!(s.bucket_of(None), "q:{anonymous}");
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
}
