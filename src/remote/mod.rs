//! Keys from the issuer: a JWKS URL or an RFC 8414 / OpenID discovery document, cached,
//! refreshed in the background, and refetched once on an unknown `kid` (feature `remote`).
//!
//! # How the cache behaves
//!
//! - The key set lives behind one `Arc`, swapped atomically: a request reads it without a
//!   lock or an allocation.
//! - A background task refreshes it after `Cache-Control: max-age`, clamped to
//!   [`refresh_interval`](crate::ValidatorBuilder::refresh_interval)'s bounds (5 minutes
//!   when the issuer sends none).
//! - A token whose `kid` is unknown triggers one refetch, shared by every request waiting on
//!   it; then, for the [`unknown_kid_cooldown`](crate::ValidatorBuilder::unknown_kid_cooldown)
//!   (30 s), unknown kids are refused at once without fetching. A flood of forged kids causes
//!   at most one fetch per cooldown.
//! - When fetching fails, the last good set keeps serving for up to
//!   [`max_staleness`](crate::ValidatorBuilder::max_staleness) (1 hour) after its last
//!   successful fetch; after that requests get 503 ([`ErrorKind::KeysUnavailable`]) until
//!   the issuer answers again. Every failure is logged with a `reason`.

pub(crate) mod http;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::http::Uri;
use arc_swap::ArcSwapOption;
use serde::Deserialize;

use self::http::{FetchError, FetchLimits, HttpClient};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::keys::{JwksOptions, KeySet};

/// Where the keys come from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Jwks(String),
    Discover(String),
}

/// Settings of a remote key source, with their defaults.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) source: Source,
    pub(crate) allow_http: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) cooldown: Duration,
    pub(crate) refresh_min: Duration,
    pub(crate) refresh_max: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) jwks: JwksOptions,
}

/// Refresh interval when the issuer sends no `max-age`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Retry interval after a failed background refresh (capped by the refresh bounds).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

impl Settings {
    pub(crate) fn new(source: Source) -> Self {
        Settings {
            source,
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
            cooldown: Duration::from_secs(30),
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(24 * 3600),
            max_staleness: Duration::from_secs(3600),
            jwks: JwksOptions::default(),
        }
    }
}

/// One fetched key set.
pub(crate) struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
}

/// The cache of an issuer's keys, shared by every clone of a validator.
pub(crate) struct KeyCache {
    settings: Settings,
    issuer: String,
    client: Arc<dyn HttpClient>,
    limits: FetchLimits,
    current: ArcSwapOption<Snapshot>,
    jwks_uri: ArcSwapOption<Uri>,
    /// Bumped on every successful fetch; waiters use it to see that someone else fetched.
    generation: AtomicU64,
    /// Milliseconds since `epoch` of the last fetch an unknown `kid` triggered (0: never).
    last_on_demand: AtomicU64,
    epoch: Instant,
    fetch_lock: tokio::sync::Mutex<()>,
    refresher_started: AtomicBool,
    /// Milliseconds until the next background refresh, as the last fetch asked.
    next_refresh_ms: AtomicU64,
}

/// What the request path should do about keys.
pub(crate) enum Keys {
    /// Verify with these (always `Some`).
    Ready(arc_swap::Guard<Option<Arc<Snapshot>>>),
    /// None usable (never fetched, or stale beyond the limit), and a fetch may be tried.
    Fetch(u64),
    /// None usable and no fetch allowed now.
    Unavailable,
}

impl KeyCache {
    pub(crate) fn new(
        settings: Settings,
        issuer: String,
        client: Option<Arc<dyn HttpClient>>,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Self, ConfigError> {
        // Refuse insecure URLs at build time, before anything is fetched.
        match &settings.source {
            Source::Jwks(url) | Source::Discover(url) => {
                crate::url::checked_uri(url, settings.allow_http)?;
            }
        }
        let client = client
            .unwrap_or_else(|| Arc::new(http::HyperClient::new(tls, settings.connect_timeout)));
        Ok(KeyCache {
            limits: FetchLimits {
                timeout: settings.timeout,
                max_body: settings.max_body,
            },
            settings,
            issuer,
            client,
            current: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            last_on_demand: AtomicU64::new(0),
            epoch: Instant::now(),
            fetch_lock: tokio::sync::Mutex::new(()),
            refresher_started: AtomicBool::new(false),
            next_refresh_ms: AtomicU64::new(0),
        })
    }

    /// The current keys, or what to do instead. Lock-free and allocation-free.
    pub(crate) fn keys(self: &Arc<Self>) -> Keys {
        self.start_refresher();
        let snapshot = self.current.load();
        match &*snapshot {
            Some(s) if s.fetched_at.elapsed() <= self.settings.max_staleness => {
                Keys::Ready(snapshot)
            }
            _ if self.may_fetch_on_demand() => Keys::Fetch(self.generation.load(Ordering::Acquire)),
            _ => Keys::Unavailable,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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

    /// Fetches because a request found no key (or no key set). One fetch at a time; requests
    /// that waited on someone else's fetch return without fetching again, and none fetches
    /// within the cooldown of the last on-demand fetch.
    pub(crate) async fn refresh_on_demand(&self, seen_generation: u64) {
        let _guard = self.fetch_lock.lock().await;
        if self.generation() != seen_generation || !self.may_fetch_on_demand() {
            return;
        }
        let had_keys = self.current.load().is_some();
        self.last_on_demand.store(self.now_ms(), Ordering::Release);
        match self.fetch_and_install().await {
            // The first fetch of a lazy start is not an unknown-kid fetch: no cooldown.
            Ok(_) if !had_keys => self.last_on_demand.store(0, Ordering::Release),
            Ok(_) => {}
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

    /// The first fetch, for an eager `build()`.
    pub(crate) async fn initial_fetch(self: &Arc<Self>) -> Result<(), ConfigError> {
        let _guard = self.fetch_lock.lock().await;
        self.fetch_and_install()
            .await
            .map_err(|e| ConfigError::KeyFetch(e.to_string()))?;
        drop(_guard);
        self.start_refresher();
        Ok(())
    }

    /// Fetches the key set and swaps it in; returns the refresh interval the response asks
    /// for.
    async fn fetch_and_install(&self) -> Result<Duration, FetchError> {
        let uri = self.jwks_uri().await?;
        let fetched = http::get(&*self.client, &uri, &self.limits).await?;
        let mut keys = KeySet::from_jwks_json_with(&fetched.body, &self.settings.jwks)
            .map_err(|e| FetchError::Invalid(format!("key set refused: {e}")))?;
        if let Some(old) = &*self.current.load() {
            // Unchanged keys keep their identity, so cached tokens they verified stay valid.
            keys.reuse_identical(&old.keys);
        }
        let count = keys.len();
        self.current.store(Some(Arc::new(Snapshot {
            keys,
            fetched_at: Instant::now(),
        })));
        self.generation.fetch_add(1, Ordering::AcqRel);
        let next = fetched
            .max_age
            .unwrap_or(DEFAULT_REFRESH)
            .clamp(self.settings.refresh_min, self.settings.refresh_max);
        self.next_refresh_ms
            .store(next.as_millis() as u64, Ordering::Release);
        tracing::info!(
            target: "bearer_guard::remote",
            reason = "keys_refreshed",
            keys = count,
            next_refresh_s = next.as_secs(),
            "key set fetched"
        );
        Ok(next)
    }

    /// The JWKS URL: configured, or read from the discovery document once.
    async fn jwks_uri(&self) -> Result<Uri, FetchError> {
        if let Some(uri) = &*self.jwks_uri.load() {
            return Ok(Uri::clone(uri));
        }
        let uri = match &self.settings.source {
            Source::Jwks(url) => checked(url, self.settings.allow_http)?,
            Source::Discover(issuer) => self.discover(issuer).await?,
        };
        self.jwks_uri.store(Some(Arc::new(uri.clone())));
        Ok(uri)
    }

    /// RFC 8414 metadata, falling back to OpenID Connect discovery. The document's `issuer`
    /// must equal ours exactly (RFC 8414 §3.3).
    async fn discover(&self, issuer: &str) -> Result<Uri, FetchError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: Option<String>,
        }
        let mut last_err = None;
        for url in discovery_urls(issuer) {
            let uri = checked(&url, self.settings.allow_http)?;
            let fetched = match http::get(&*self.client, &uri, &self.limits).await {
                Ok(f) => f,
                Err(e) => {
                    // Keep the first failure: the RFC 8414 one is the more telling.
                    last_err.get_or_insert(e);
                    continue;
                }
            };
            // A catch-all web app may answer the first URL with HTML: try the next one.
            let parsed = crate::json::check_strict(&fetched.body)
                .and_then(|()| serde_json::from_slice::<Metadata>(&fetched.body));
            let meta = match parsed {
                Ok(meta) => meta,
                Err(e) => {
                    last_err.get_or_insert(FetchError::Invalid(format!("discovery document: {e}")));
                    continue;
                }
            };
            if meta.issuer != self.issuer {
                return Err(FetchError::Invalid(format!(
                    "discovery document names issuer `{}`, expected `{}`",
                    meta.issuer, self.issuer
                )));
            }
            let jwks = meta.jwks_uri.ok_or_else(|| {
                FetchError::Invalid("discovery document has no `jwks_uri`".into())
            })?;
            return checked(&jwks, self.settings.allow_http);
        }
        Err(last_err.unwrap_or(FetchError::Invalid("no discovery URL".into())))
    }

    /// Starts the background refresher once, if a Tokio runtime is running. It holds only a
    /// weak reference and ends when the last validator is dropped.
    fn start_refresher(self: &Arc<Self>) {
        if self.refresher_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut first = true;
            loop {
                if !first {
                    let next = match weak.upgrade() {
                        Some(cache) => cache.next_refresh(),
                        None => return,
                    };
                    tokio::time::sleep(next).await;
                }
                let Some(cache) = weak.upgrade() else { return };
                let _guard = cache.fetch_lock.lock().await;
                if std::mem::take(&mut first) && cache.current.load().is_some() {
                    // Fetched already (eager build, or a request of a lazy one): wait for
                    // the interval that fetch asked for.
                    continue;
                }
                if let Err(err) = cache.fetch_and_install().await {
                    tracing::warn!(
                        target: "bearer_guard::remote",
                        reason = err.reason(),
                        error = %err,
                        "background key refresh failed; keeping the last good key set"
                    );
                    let retry = RETRY_AFTER_FAILURE.min(cache.settings.refresh_min);
                    cache
                        .next_refresh_ms
                        .store(retry.as_millis() as u64, Ordering::Release);
                }
            }
        });
    }

    /// The wait before the next background refresh.
    fn next_refresh(&self) -> Duration {
        match self.next_refresh_ms.load(Ordering::Acquire) {
            0 => DEFAULT_REFRESH.clamp(self.settings.refresh_min, self.settings.refresh_max),
            ms => Duration::from_millis(ms),
        }
    }
}

impl Snapshot {
    pub(crate) fn keys(&self) -> &KeySet {
        &self.keys
    }
}

impl KeyCache {
    /// Whether `key` is in the current key set (a cached token stays valid only as long as
    /// the key that verified it).
    pub(crate) fn contains(&self, key: &crate::keys::Key) -> bool {
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

fn checked(url: &str, allow_http: bool) -> Result<Uri, FetchError> {
    crate::url::checked_uri(url, allow_http).map_err(|e| FetchError::Invalid(e.to_string()))
}

/// RFC 8414 §3.1 inserts the well-known segment between host and path; OpenID Connect
/// Discovery appends it to the issuer.
fn discovery_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = match trimmed.find("://").map(|i| i + 3) {
        Some(start) => match trimmed[start..].find('/') {
            Some(slash) => trimmed.split_at(start + slash),
            None => (trimmed, ""),
        },
        None => (trimmed, ""),
    };
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

/// The error the request path answers with when no keys could be had.
pub(crate) fn unavailable() -> AuthError {
    AuthError::new(ErrorKind::KeysUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_rfc_8414_and_oidc() {
        assert_eq!(
            discovery_urls("https://issuer.example"),
            [
                "https://issuer.example/.well-known/oauth-authorization-server",
                "https://issuer.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            discovery_urls("https://issuer.example/tenant/1/"),
            [
                "https://issuer.example/.well-known/oauth-authorization-server/tenant/1",
                "https://issuer.example/tenant/1/.well-known/openid-configuration"
            ]
        );
    }
}
