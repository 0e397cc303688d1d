//! [`KeyCache`]: one issuer's keys, fetched, swapped atomically, refreshed when due.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::http::Uri;
use arc_swap::ArcSwapOption;

use super::discovery::{Failure, discover};
use super::http::{self, SharedTransport};
use super::{RemoteKeys, Settings, Source};
use crate::error::ConfigError;
use crate::fetch::Limits;
use crate::keyring::{Key, KeySet};

/// Refresh interval when the issuer sends no `max-age`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Retry interval after a failed refresh (capped by the refresh bounds).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// One fetched key set.
pub(crate) struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
}

impl Snapshot {
    pub(crate) fn keys(&self) -> &KeySet {
        &self.keys
    }
}

/// The cache of an issuer's keys, shared by every clone of a validator.
pub(crate) struct KeyCache {
    settings: Settings,
    issuer: String,
    client: SharedTransport,
    limits: Limits,
    current: ArcSwapOption<Snapshot>,
    jwks_uri: ArcSwapOption<Uri>,
    /// Bumped after every fetch, whether it succeeded or failed; waiters use it to see that
    /// someone else fetched (or tried to) while they waited, and do not fetch again.
    generation: AtomicU64,
    /// Milliseconds since `epoch` of the last fetch an unknown `kid` triggered (0: never).
    last_on_demand: AtomicU64,
    /// Milliseconds since `epoch` at which the next refresh is due (0: after the first
    /// fetch).
    next_due: AtomicU64,
    /// A refresh started by the request path or the background task is running.
    refreshing: AtomicBool,
    epoch: Instant,
    fetch_lock: tokio::sync::Mutex<()>,
    background_started: AtomicBool,
    /// The due time last reported as not refreshable (no runtime), so it is said once.
    warned_due: AtomicU64,
}

/// What the request path should do about keys.
pub(crate) enum Keys {
    /// Verify with these (always `Some`).
    Ready(arc_swap::Guard<Option<Arc<Snapshot>>>),
    /// None usable (never fetched, stale beyond the limit, or past the refresh time and not
    /// refreshed yet), and a fetch may be tried: wait for it, then look again.
    Fetch(u64),
    /// None usable and no fetch allowed now.
    Unavailable,
}

impl KeyCache {
    pub(crate) fn new(remote: RemoteKeys, issuer: String) -> Result<Self, ConfigError> {
        let RemoteKeys {
            settings,
            client,
            tls,
        } = remote;
        // Refuse insecure URLs at build time, before anything is fetched.
        match &settings.source {
            Source::Jwks(url) | Source::Discover(url) => {
                crate::url::checked_uri(url, settings.allow_http)?;
            }
        }
        let client = client
            .unwrap_or_else(|| Arc::new(http::HyperClient::new(tls, settings.connect_timeout)));
        Ok(KeyCache {
            limits: http::limits(settings.timeout, settings.max_body),
            settings,
            issuer,
            client,
            current: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            last_on_demand: AtomicU64::new(0),
            next_due: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            epoch: Instant::now(),
            fetch_lock: tokio::sync::Mutex::new(()),
            background_started: AtomicBool::new(false),
            warned_due: AtomicU64::new(0),
        })
    }

    /// The current keys, or what to do instead. Lock-free and allocation-free, except when
    /// a refresh is due and has to be started.
    ///
    /// A set past its refresh time is not used until that refresh has been tried: a key the
    /// issuer removed must not verify one more token because no refresh happened to run (an
    /// idle process, a background task whose runtime is gone). The request waits for the
    /// refresh (one fetch, shared, bounded by the fetch timeout); only when it fails does the
    /// old set serve again, within `max_staleness`, until the retry.
    pub(crate) fn keys(self: &Arc<Self>) -> Keys {
        self.start_background();
        let snapshot = self.current.load();
        match &*snapshot {
            Some(s) if s.fetched_at.elapsed() <= self.settings.max_staleness => {
                if self.overdue() {
                    self.refresh_if_due();
                    return Keys::Fetch(self.generation());
                }
                Keys::Ready(snapshot)
            }
            _ if self.may_fetch_on_demand() => Keys::Fetch(self.generation()),
            _ => Keys::Unavailable,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the set is past its refresh time and no refresh has been tried since.
    fn overdue(&self) -> bool {
        let due = self.next_due.load(Ordering::Acquire);
        due != 0 && self.now_ms() >= due
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 keeps meaning "never".
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether an unknown `kid` (or a missing key set) may trigger a fetch now.
    pub(crate) fn may_fetch_on_demand(&self) -> bool {
        let last = self.last_on_demand.load(Ordering::Acquire);
        last == 0 || self.now_ms().saturating_sub(last) >= self.settings.cooldown.as_millis() as u64
    }

    /// Fetches because a request found no key, no key set, or an overdue set. One fetch at a
    /// time; requests that waited on someone else's fetch (successful or not) return without
    /// fetching again, and none fetches on demand within the cooldown of the last on-demand
    /// fetch. An overdue set is refreshed whatever the cooldown: that is its due refresh.
    pub(crate) async fn refresh_on_demand(&self, seen_generation: u64) {
        let _guard = self.fetch_lock.lock().await;
        if self.generation() != seen_generation {
            return;
        }
        if self.overdue() {
            self.refresh_locked().await;
            return;
        }
        if !self.may_fetch_on_demand() {
            return;
        }
        let had_keys = self.current.load().is_some();
        self.last_on_demand.store(self.now_ms(), Ordering::Release);
        match self.fetch_and_install().await {
            // The first fetch of a lazy start is not an unknown-kid fetch: no cooldown.
            Ok(()) if !had_keys => self.last_on_demand.store(0, Ordering::Release),
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(
                    target: "bearer_guard::remote",
                    reason = err.reason(),
                    error = %err,
                    "on-demand key refresh failed; keeping the last good key set"
                );
            }
        }
    }

    /// Fetches the keys unless a fetch already succeeded: for `Validator::ready`.
    pub(crate) async fn ready(self: &Arc<Self>) -> Result<(), ConfigError> {
        self.start_background();
        let _guard = self.fetch_lock.lock().await;
        if self.current.load().is_some() {
            return Ok(());
        }
        self.fetch_and_install()
            .await
            .map_err(|e| ConfigError::KeyFetch(e.to_string()))
    }

    /// Starts a refresh when one is due and none is running. It runs on the caller's Tokio
    /// runtime, whichever that is: the background task of the runtime the validator was
    /// first used on may be gone.
    fn refresh_if_due(self: &Arc<Self>) {
        let due = self.next_due.load(Ordering::Acquire);
        if due == 0 || self.now_ms() < due || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let cache = Arc::clone(self);
                runtime.spawn(async move { cache.refresh_when_due(Duration::ZERO).await });
            }
            Err(_) => {
                // The set stays overdue (and unused) until a refresh can run; said once per
                // due time, not once per request.
                self.refreshing.store(false, Ordering::Release);
                if self.warned_due.swap(due, Ordering::AcqRel) != due {
                    tracing::warn!(
                        target: "bearer_guard::remote",
                        reason = "refresh_not_running",
                        "key refresh is due but no Tokio runtime is running to fetch it; \
                         the key set is not used until it is refreshed"
                    );
                }
            }
        }
    }

    /// The refresh itself, `lead` ahead of the due time at most: the caller set
    /// `refreshing`; this clears it.
    async fn refresh_when_due(&self, lead: Duration) {
        let guard = self.fetch_lock.lock().await;
        let lead = u64::try_from(lead.as_millis()).unwrap_or(0);
        if self.now_ms().saturating_add(lead) >= self.next_due.load(Ordering::Acquire) {
            self.refresh_locked().await;
        }
        drop(guard);
        self.refreshing.store(false, Ordering::Release);
    }

    /// One refresh, the fetch lock held: on failure, logged and retried later (the old set
    /// serves meanwhile, within `max_staleness`).
    async fn refresh_locked(&self) {
        if let Err(err) = self.fetch_and_install().await {
            tracing::warn!(
                target: "bearer_guard::remote",
                reason = err.reason(),
                error = %err,
                "key refresh failed; keeping the last good key set"
            );
            self.schedule(RETRY_AFTER_FAILURE.min(self.settings.refresh_min));
        }
    }

    fn schedule(&self, after: Duration) {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX / 2);
        self.next_due
            .store(self.now_ms().saturating_add(after), Ordering::Release);
    }

    /// Fetches the key set and swaps it in; schedules the next refresh after the response's
    /// `max-age`, within the bounds.
    async fn fetch_and_install(&self) -> Result<(), Failure> {
        let outcome = self.fetch_and_install_inner().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let result = match &outcome {
            Ok(()) => "ok",
            Err(failure) => failure.reason(),
        };
        crate::metrics::key_fetch(&self.issuer, result);
        outcome
    }

    async fn fetch_and_install_inner(&self) -> Result<(), Failure> {
        let uri = self.jwks_uri().await?;
        let (fetched, max_age) = http::get(&*self.client, &uri, &self.limits).await?;
        let mut keys = KeySet::from_jwks_json_with(&fetched.body, &self.settings.jwks)
            .map_err(|e| Failure::document(fetched.url(), format!("key set refused: {e}")))?;
        if let Some(old) = &*self.current.load() {
            // Unchanged keys keep their identity, so cached tokens they verified stay valid.
            keys.reuse_identical(&old.keys);
        }
        let count = keys.len();
        self.current.store(Some(Arc::new(Snapshot {
            keys,
            fetched_at: Instant::now(),
        })));
        let next = max_age
            .unwrap_or(DEFAULT_REFRESH)
            .clamp(self.settings.refresh_min, self.settings.refresh_max);
        self.schedule(next);
        tracing::info!(
            target: "bearer_guard::remote",
            reason = "keys_refreshed",
            keys = count,
            next_refresh_s = next.as_secs(),
            "key set fetched"
        );
        Ok(())
    }

    /// The JWKS URL: configured, or read from the discovery document once.
    async fn jwks_uri(&self) -> Result<Uri, Failure> {
        if let Some(uri) = &*self.jwks_uri.load() {
            return Ok(Uri::clone(uri));
        }
        let allow_http = self.settings.allow_http;
        let uri = match &self.settings.source {
            Source::Jwks(url) => crate::url::checked_uri(url, allow_http)?,
            Source::Discover(url) => {
                let found =
                    discover(&*self.client, &self.limits, allow_http, url, &self.issuer).await?;
                found.endpoint("jwks_uri", found.metadata.jwks_uri.as_deref(), allow_http)?
            }
        };
        self.jwks_uri.store(Some(Arc::new(uri.clone())));
        Ok(uri)
    }

    /// Starts the background refresher once, if a Tokio runtime is running. It holds only a
    /// weak reference and ends when the last validator is dropped, or with its runtime (the
    /// request path then starts refreshes itself).
    fn start_background(self: &Arc<Self>) {
        if self.background_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.background_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        // The background task refreshes a little ahead of the due time, so that requests
        // seldom find the set overdue (and wait for the refresh) while it runs.
        let lead = self.settings.timeout.min(self.settings.refresh_min / 4);
        runtime.spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(cache) => cache.until_due(lead),
                    None => return,
                };
                tokio::time::sleep(wait).await;
                let Some(cache) = weak.upgrade() else { return };
                if cache.next_due.load(Ordering::Acquire) != 0
                    && cache.until_due(lead).is_zero()
                    && !cache.refreshing.swap(true, Ordering::AcqRel)
                {
                    cache.refresh_when_due(lead).await;
                }
            }
        });
    }

    /// How long until `lead` before the next refresh is due (a while, before the first
    /// fetch).
    fn until_due(&self, lead: Duration) -> Duration {
        match self.next_due.load(Ordering::Acquire) {
            0 => RETRY_AFTER_FAILURE.min(self.settings.refresh_min),
            due => Duration::from_millis(due.saturating_sub(self.now_ms())).saturating_sub(lead),
        }
    }

    /// Whether `key` is in the current key set (a cached token stays valid only as long as
    /// the key that verified it). An overdue set answers `false` (after starting its
    /// refresh), as [`keys`](Self::keys) makes a request wait: cache hits must not keep a
    /// removed key alive.
    pub(crate) fn contains(self: &Arc<Self>, key: &Key) -> bool {
        if self.overdue() {
            self.refresh_if_due();
            return false;
        }
        self.current.load().as_ref().is_some_and(|s| {
            s.fetched_at.elapsed() <= self.settings.max_staleness
                && s.keys.iter().any(|k| k.same(key))
        })
    }

    /// The last fetched key set, if any.
    pub(crate) fn current(&self) -> Option<KeySet> {
        self.current.load().as_ref().map(|s| s.keys.clone())
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("source", &self.settings.source)
            .field("keys", &self.current.load().as_ref().map(|s| s.keys.len()))
            .finish_non_exhaustive()
    }
}
