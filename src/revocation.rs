//! Token revocation: cut a token off before it expires, on every replica at once.
//!
//! A signed JWT stays valid until `exp`. When a client's secret leaks or a token is stolen,
//! [`Validator`](crate::Validator)s configured with
//! [`revocation`](crate::ValidatorBuilder::revocation) also ask a [`Revocations`] store,
//! keyed by issuer and `jti`. [`MemoryRevocations`] serves one process; `RedisRevocations`
//! (feature `redis`) is shared by every replica.
//!
//! - **Off the hot path.** A store that keeps a fresh copy of its revocations in process
//!   (`RedisRevocations::mirror`) answers most lookups without waiting
//!   ([`Revocations::known_unrevoked`]): no round trip per request, however many tokens. Other
//!   answers are memoised for a short time (default 500 ms,
//!   [`revocation_memo`](crate::ValidatorBuilder::revocation_memo)): a revoked token can be
//!   accepted for at most that long after the revocation reaches the store (or, mirrored,
//!   the mirror's staleness bound). Tokens without `jti` are refused while revocation is on.
//! - **Fail closed.** When the store cannot answer, requests fail closed with 503 and
//!   `Retry-After` ([`ErrorKind::RevocationUnavailable`](crate::ErrorKind::RevocationUnavailable)),
//!   unless [`revocation_fail_open`](crate::ValidatorBuilder::revocation_fail_open) is set.
//! - **One log line per outage**, not one per request: a `warn` (target
//!   `bearer_guard::revocation`, `reason = "revocation_store_unavailable"`) when the store
//!   starts failing, an `info` (`"revocation_store_available"`, with the outage's length)
//!   when it answers again. `RedisRevocations` logs its own outages (lookups, writes and
//!   mirror reads together), so the validator does not log them a second time.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "redis")]
mod mirror;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisRevocations;

/// The future a [`Revocations`] store returns.
pub type RevocationFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, RevocationError>> + Send + 'a>>;

/// A store of revoked tokens, keyed by issuer and `jti`.
///
/// Entries carry the token's `exp` (seconds since the epoch): once the token has expired (and
/// the largest leeway a validator may grant has passed) the entry is useless, and stores drop
/// it by themselves (a TTL in Redis).
pub trait Revocations: Send + Sync + 'static {
    /// Whether the token `jti` of `issuer` is revoked.
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool>;

    /// `true` when the store knows now, without waiting, that no token with this `jti` is
    /// revoked, whatever its issuer: it keeps a copy of its revocations that is fresh enough
    /// (`RedisRevocations::mirror`). The validator then admits the token without calling
    /// [`is_revoked`](Self::is_revoked). `false` means "ask": the default, for stores
    /// without such a copy.
    fn known_unrevoked(&self, jti: &str) -> bool {
        let _ = jti;
        false
    }

    /// Revokes the token `jti` of `issuer` until `expires_at`.
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
    ) -> RevocationFuture<'a, ()>;
}

/// A revocation store could not answer. Carries a reason, never a token.
#[derive(Clone)]
pub struct RevocationError {
    reason: String,
    /// The store logged the outage itself: the validator does not log it again.
    reported: bool,
}

impl RevocationError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        RevocationError {
            reason: reason.into(),
            reported: false,
        }
    }

    /// An error whose outage the store has logged already.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn reported(reason: impl Into<String>) -> Self {
        RevocationError {
            reason: reason.into(),
            reported: true,
        }
    }
}

impl fmt::Debug for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RevocationError")
            .field(&self.reason)
            .finish()
    }
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation store unavailable: {}", self.reason)
    }
}

impl std::error::Error for RevocationError {}

impl PartialEq for RevocationError {
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason
    }
}

impl Eq for RevocationError {}

/// An in-process revocation store, for one replica, tests and development.
///
/// ```
/// use bearer_guard::revocation::{MemoryRevocations, Revocations};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryRevocations::new();
/// store.revoke("https://issuer.example", "jti-1", i64::MAX).await.unwrap();
/// assert!(store.is_revoked("https://issuer.example", "jti-1").await.unwrap());
/// assert!(!store.is_revoked("https://issuer.example", "jti-2").await.unwrap());
/// # });
/// ```
#[derive(Default)]
pub struct MemoryRevocations {
    revoked: Mutex<HashMap<(String, String), i64>>,
}

impl MemoryRevocations {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of revoked tokens not yet expired.
    #[must_use]
    pub fn len(&self) -> usize {
        let now = unix_now();
        self.lock()
            .values()
            .filter(|&&exp| exp.saturating_add(KEEP_PAST_EXP) > now)
            .count()
    }

    /// Whether no unexpired token is revoked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), i64>> {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocations")
            .field("revoked", &self.len())
            .finish()
    }
}

impl Revocations for MemoryRevocations {
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool> {
        let now = unix_now();
        let revoked = self
            .lock()
            .get(&(issuer.to_owned(), jti.to_owned()))
            .is_some_and(|&exp| exp.saturating_add(KEEP_PAST_EXP) > now);
        Box::pin(std::future::ready(Ok(revoked)))
    }

    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
    ) -> RevocationFuture<'a, ()> {
        let now = unix_now();
        let mut map = self.lock();
        map.retain(|_, exp| exp.saturating_add(KEEP_PAST_EXP) > now);
        if expires_at.saturating_add(KEEP_PAST_EXP) > now {
            map.insert((issuer.to_owned(), jti.to_owned()), expires_at);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// When an outage began, so that it is logged once when it begins and once when it ends,
/// not once per failed request. An outage ends only once the store has answered with no
/// failure for [`Outage::SETTLE`]: on a Cluster a dead shard fails while the others answer,
/// and their answers must not end the outage between two of its failures.
pub(crate) struct Outage {
    epoch: Instant,
    /// ms since `epoch`, plus one, when the outage began; 0: no outage.
    since: AtomicU64,
    /// ms since `epoch`, plus one, of the last failure.
    last_failed: AtomicU64,
}

impl Outage {
    /// How long the store must answer without a failure for an outage to end.
    pub(crate) const SETTLE: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Outage {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
            last_failed: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// A failure: `true` for the first of an outage (the caller logs it).
    pub(crate) fn failed(&self) -> bool {
        let now = self.now();
        self.last_failed.fetch_max(now, Ordering::AcqRel);
        self.since
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// A success: when it ends an outage (the last failure [`SETTLE`](Self::SETTLE) ago or
    /// more), how long the outage lasted (the caller logs it).
    pub(crate) fn answered(&self) -> Option<Duration> {
        if self.since.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now = self.now();
        let settle = u64::try_from(Self::SETTLE.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.last_failed.load(Ordering::Acquire)) < settle {
            return None;
        }
        match self.since.swap(0, Ordering::AcqRel) {
            0 => None,
            since => Some(Duration::from_millis(now.saturating_sub(since))),
        }
    }
}

/// A store's command failed: logged when it begins an outage.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn store_failed(outage: &Outage, prefix: &str, error: &str) {
    if outage.failed() {
        tracing::warn!(
            target: "bearer_guard::revocation",
            reason = "revocation_store_unavailable",
            prefix,
            error,
            "Redis revocation store unavailable: lookups fail (requests refused with 503 \
             unless the validator fails open) until it answers again"
        );
    }
}

/// A store's command succeeded: logged when it ends an outage.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn store_answered(outage: &Outage, prefix: &str) {
    if let Some(outage) = outage.answered() {
        tracing::info!(
            target: "bearer_guard::revocation",
            reason = "revocation_store_available",
            prefix,
            outage_ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX),
            "Redis revocation store answers again, after an outage of {outage:?}"
        );
    }
}

/// How long past `exp` a revocation is kept: a validator accepts a token until `exp` plus
/// its leeway, which is at most [`MAX_LEEWAY`](crate::checks::MAX_LEEWAY).
pub(crate) const KEEP_PAST_EXP: i64 = crate::checks::MAX_LEEWAY.as_secs() as i64;

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Default time a store's answer is trusted without asking again.
pub const DEFAULT_REVOCATION_MEMO: Duration = Duration::from_millis(500);
/// Longest memo accepted; longer settings are shortened to it.
pub const MAX_REVOCATION_MEMO: Duration = Duration::from_secs(3600);

/// The validator's view of a store: the store, and the memo of its recent answers.
pub(crate) struct RevocationCheck {
    store: Arc<dyn Revocations>,
    memo: quick_cache::sync::Cache<MemoKey, Memo>,
    memo_ttl: Duration,
    fail_open: bool,
    epoch: Instant,
    /// When the store last failed to answer, in ms since `epoch`, plus one (0: never). Lets
    /// a synchronous check that cannot wait tell "the store is down" (fail open may accept)
    /// from "the store was not asked yet" (never accepted).
    last_failure: AtomicU64,
    /// The outage of a store that does not log its own.
    outage: Outage,
}

/// A memo entry's key: the issuer (its index in the validator) and the `jti`, so that the
/// same `jti` from two issuers never shares an answer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    issuer: usize,
    jti: Box<str>,
}

/// [`MemoKey`] borrowed, for allocation-free lookups.
#[derive(Hash)]
struct MemoRef<'a> {
    issuer: usize,
    jti: &'a str,
}

impl quick_cache::Equivalent<MemoKey> for MemoRef<'_> {
    fn equivalent(&self, key: &MemoKey) -> bool {
        self.issuer == key.issuer && self.jti == &*key.jti
    }
}

#[derive(Clone, Copy)]
struct Memo {
    until: Instant,
    revoked: bool,
}

/// What the memo knows about a token.
pub(crate) enum Known {
    NotRevoked,
    Revoked,
    /// Ask the store.
    Unknown,
    /// Not known, and the store failed to answer moments ago.
    StoreDown,
}

impl RevocationCheck {
    pub(crate) fn new(store: Arc<dyn Revocations>, memo_ttl: Duration, fail_open: bool) -> Self {
        RevocationCheck {
            store,
            memo: quick_cache::sync::Cache::new(65_536),
            // A memo longer than an hour would defeat revocation; it also keeps `Instant`
            // arithmetic far from overflow.
            memo_ttl: memo_ttl.min(MAX_REVOCATION_MEMO),
            fail_open,
            epoch: Instant::now(),
            last_failure: AtomicU64::new(0),
            outage: Outage::new(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    pub(crate) fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// What is known of `jti` of `issuer` without waiting: the store's own copy, when it
    /// keeps a fresh one ([`Revocations::known_unrevoked`]; it is the store's answer, and
    /// newer than the memo's), else the memo's answer. Allocation-free.
    pub(crate) fn known(&self, issuer: usize, jti: &str) -> Known {
        if self.store.known_unrevoked(jti) {
            return Known::NotRevoked;
        }
        let now = Instant::now();
        match self.memo.get(&MemoRef { issuer, jti }) {
            Some(m) if m.until > now && m.revoked => Known::Revoked,
            Some(m) if m.until > now => Known::NotRevoked,
            _ if self.failed_recently(now) => Known::StoreDown,
            _ => Known::Unknown,
        }
    }

    /// Whether the store failed within the last memo period (at least a second).
    fn failed_recently(&self, now: Instant) -> bool {
        let last = self.last_failure.load(Ordering::Acquire);
        let window = u64::try_from(self.memo_ttl.max(Duration::from_secs(1)).as_millis())
            .unwrap_or(u64::MAX);
        last != 0 && self.millis(now).saturating_sub(last) < window
    }

    /// Asks the store. `Ok(true)`: revoked. On a store failure, `Ok(false)` when failing
    /// open, else the error.
    pub(crate) async fn ask(
        &self,
        (issuer_index, issuer): (usize, &str),
        jti: &str,
        exp: i64,
        client_id: Option<&str>,
    ) -> Result<bool, RevocationError> {
        let asked = Instant::now();
        let answer = self.store.is_revoked(issuer, jti).await;
        let result = match answer {
            Ok(true) => "revoked",
            Ok(false) => "not_revoked",
            Err(_) => "error",
        };
        crate::metrics::revocation_lookup(result, asked.elapsed());
        match answer {
            Ok(revoked) => {
                if let Some(outage) = self.outage.answered() {
                    tracing::info!(
                        target: "bearer_guard::revocation",
                        reason = "revocation_store_available",
                        outage_ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX),
                        "revocation store answers again, after an outage of {outage:?}"
                    );
                }
                // A revoked answer holds until the token expires (at most an hour here);
                // a clean one for the memo time.
                let ttl = if revoked {
                    let left = exp.saturating_add(KEEP_PAST_EXP).saturating_sub(unix_now());
                    Duration::from_secs(u64::try_from(left).unwrap_or(0).min(3600))
                } else {
                    self.memo_ttl
                };
                if !ttl.is_zero() {
                    self.memo.insert(
                        MemoKey {
                            issuer: issuer_index,
                            jti: jti.into(),
                        },
                        Memo {
                            until: Instant::now() + ttl,
                            revoked,
                        },
                    );
                }
                Ok(revoked)
            }
            Err(err) => {
                self.last_failure
                    .store(self.millis(Instant::now()), Ordering::Release);
                // Once per outage, and only for a store that does not log its own.
                if !err.reported && self.outage.failed() {
                    let action = if self.fail_open {
                        "tokens accepted unchecked (fail open, as configured)"
                    } else {
                        "requests refused with 503 (fail closed)"
                    };
                    tracing::warn!(
                        target: "bearer_guard::revocation",
                        reason = "revocation_store_unavailable",
                        client_id,
                        error = %err,
                        "revocation store unavailable: {action} until it answers again"
                    );
                }
                if self.fail_open { Ok(false) } else { Err(err) }
            }
        }
    }
}

impl fmt::Debug for RevocationCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationCheck")
            .field("memo_ttl", &self.memo_ttl)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use http::{Request, Response, StatusCode};
    use serde_json::json;
    use tower::{Layer as _, ServiceExt as _, service_fn};

    use super::*;
    use crate::testkit::{self as mint, AUDIENCE, ISSUER, token};
    use crate::{AuthError, ErrorKind, KeySet, RequireScope, Validator, keys::Key};

    fn validator(store: Arc<dyn Revocations>, memo: Duration) -> Validator {
        mint::builder()
            .revocation(store)
            .revocation_memo(memo)
            .build()
            .expect("validator")
    }

    fn jti_of(t: &str) -> String {
        mint::claims_of(t)["jti"].as_str().expect("jti").to_owned()
    }

    async fn status(v: &Validator, t: &str) -> (StatusCode, Option<ErrorKind>, Option<String>) {
        let svc = RequireScope::authenticated(v).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let req = Request::builder()
            .header("authorization", format!("Bearer {t}"))
            .body(())
            .expect("req");
        let res = svc.oneshot(req).await.expect("infallible");
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_owned());
        (
            res.status(),
            res.extensions().get::<AuthError>().map(AuthError::kind),
            retry,
        )
    }

    #[tokio::test]
    async fn revoked_on_one_validator_is_refused_by_another_sharing_the_store() {
        let store = Arc::new(MemoryRevocations::new());
        let a = validator(store.clone(), Duration::ZERO);
        let b = validator(store.clone(), Duration::ZERO);
        let t = token("ec-1", json!({}));
        assert_eq!(status(&a, &t).await.0, StatusCode::OK);
        assert_eq!(status(&b, &t).await.0, StatusCode::OK);
        store
            .revoke(ISSUER, &jti_of(&t), mint::now() + 600)
            .await
            .expect("revoke");
        assert_eq!(
            status(&b, &t).await,
            (StatusCode::UNAUTHORIZED, Some(ErrorKind::Revoked), None)
        );
        assert_eq!(status(&a, &t).await.1, Some(ErrorKind::Revoked));
        // Another token of the same client is unaffected.
        assert_eq!(
            status(&a, &token("ec-1", json!({}))).await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn the_memo_bounds_how_long_a_revoked_cached_token_survives() {
        let store = Arc::new(MemoryRevocations::new());
        let v = validator(store.clone(), Duration::from_millis(300));
        let t = token("ed-1", json!({}));
        assert_eq!(status(&v, &t).await.0, StatusCode::OK);
        store
            .revoke(ISSUER, &jti_of(&t), mint::now() + 600)
            .await
            .expect("revoke");
        // Within the memo the earlier answer stands (the documented staleness) ...
        assert_eq!(status(&v, &t).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(350)).await;
        // ... and right after it, the revocation is seen.
        assert_eq!(status(&v, &t).await.1, Some(ErrorKind::Revoked));
        assert_eq!(
            v.validate_async(&t).await.expect_err("revoked").kind(),
            ErrorKind::Revoked
        );
    }

    #[tokio::test]
    async fn tokens_without_jti_are_refused_while_revocation_is_on() {
        let v = validator(Arc::new(MemoryRevocations::new()), Duration::ZERO);
        let t = token("ec-1", json!({"jti": null}));
        let err = v.validate_async(&t).await.expect_err("no jti");
        assert_eq!(
            (err.kind(), err.claim_name()),
            (ErrorKind::MissingClaim, Some("jti"))
        );
    }

    /// A store that fails while `down` is set, and counts questions.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        asked: AtomicUsize,
    }

    impl Revocations for Flaky {
        fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let down = self.down.load(Ordering::SeqCst);
            Box::pin(async move {
                if down {
                    Err(RevocationError::new("connection refused"))
                } else {
                    Ok(false)
                }
            })
        }
        fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_closed_with_503_and_retry_after() {
        let store = Arc::new(Flaky::default());
        store.down.store(true, Ordering::SeqCst);
        let v = validator(store.clone(), Duration::ZERO);
        let t = token("ec-1", json!({}));
        assert_eq!(
            status(&v, &t).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(ErrorKind::RevocationUnavailable),
                Some("1".into())
            )
        );
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(
            status(&v, &t).await.0,
            StatusCode::OK,
            "recovers when the store does"
        );
    }

    #[test]
    fn an_outage_is_logged_once_when_it_begins_and_once_when_it_ends() {
        // One process-wide capture (see `testkit::logs`), on this thread's runtime.
        let capture = crate::testkit::logs::capture();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let t = token("ec-1", json!({ "client_id": "outage-logged-once" }));
        rt.block_on(async {
            let store = Arc::new(Flaky::default());
            let v = validator(store.clone(), Duration::ZERO);
            store.down.store(true, Ordering::SeqCst);
            for _ in 0..10 {
                assert_eq!(status(&v, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
            }
            store.down.store(false, Ordering::SeqCst);
            for _ in 0..3 {
                assert_eq!(status(&v, &t).await.0, StatusCode::OK);
            }
            // A failure again before the store has answered for `SETTLE` (a flapping store,
            // a Cluster's dead shard between answers of the others): the same outage.
            store.down.store(true, Ordering::SeqCst);
            assert_eq!(status(&v, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
            store.down.store(false, Ordering::SeqCst);
            assert_eq!(status(&v, &t).await.0, StatusCode::OK);
            // Answering for `SETTLE` ends it.
            tokio::time::sleep(Outage::SETTLE).await;
            assert_eq!(status(&v, &t).await.0, StatusCode::OK);
            // A second outage is a second line.
            store.down.store(true, Ordering::SeqCst);
            assert_eq!(status(&v, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
        });
        let text = capture.text();
        let began: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("revocation_store_unavailable"))
            .collect();
        assert_eq!(began.len(), 2, "{text}");
        assert!(
            began
                .iter()
                .all(|l| l.contains("WARN") && l.contains("fail closed")),
            "{text}"
        );
        let ended: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("revocation_store_available"))
            .collect();
        assert_eq!(ended.len(), 1, "{text}");
        assert!(
            ended[0].contains("INFO") && ended[0].contains("outage_ms="),
            "{text}"
        );
        assert!(!text.contains(&t), "{text}");
    }

    #[tokio::test]
    async fn fail_open_accepts_when_the_store_is_unreachable() {
        let store = Arc::new(Flaky::default());
        store.down.store(true, Ordering::SeqCst);
        let keys = KeySet::new([
            Key::from_pem(mint::EC256_PUBLIC, crate::keys::Algorithm::ES256)
                .expect("k")
                .with_kid("ec-1"),
        ]);
        let v = Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(keys)
            // Settings apply whatever their order.
            .revocation_fail_open()
            .revocation(store.clone())
            .build()
            .expect("validator");
        assert_eq!(
            status(&v, &token("ec-1", json!({}))).await.0,
            StatusCode::OK
        );
        assert!(store.asked.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn the_memo_keeps_the_store_off_the_hot_path() {
        let store = Arc::new(Flaky::default());
        let v = validator(store.clone(), Duration::from_secs(60));
        let t = token("ec-1", json!({}));
        for _ in 0..50 {
            assert_eq!(status(&v, &t).await.0, StatusCode::OK);
        }
        assert_eq!(store.asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn memory_store_forgets_expired_entries() {
        let store = MemoryRevocations::new();
        store
            .revoke(ISSUER, "old", mint::now() - 301)
            .await
            .expect("revoke");
        // Expired, but a validator may still accept it within its leeway: kept.
        store
            .revoke(ISSUER, "recent", mint::now() - 1)
            .await
            .expect("revoke");
        assert!(store.is_revoked(ISSUER, "recent").await.expect("ask"));
        store
            .revoke(ISSUER, "new", mint::now() + 60)
            .await
            .expect("revoke");
        assert!(!store.is_revoked(ISSUER, "old").await.expect("ask"));
        assert!(store.is_revoked(ISSUER, "new").await.expect("ask"));
        assert!(
            !store
                .is_revoked("https://other.test", "new")
                .await
                .expect("ask")
        );
        assert_eq!(store.len(), 2);
    }
}
