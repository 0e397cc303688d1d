//! Asking the endpoint (RFC 7662 §2.1): one request per token at a time, shared by every
//! request that waits for the same token; at most `max_concurrent` in flight and
//! `max_pending` tokens waiting; all within one deadline. Failures are logged once per
//! outage (target `bearer_guard::introspection`), with a stable `reason`, never the token,
//! the secret or the answer.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::Full;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, timeout_at};
use zeroize::Zeroizing;

use super::Shared;
use super::answer::{self, Answer, Unavailable};
use super::cache::{Key, digest};
use crate::checks::now;
use crate::client_auth::{
    ClientSecret, JWT_BEARER, PrivateKeyJwt, basic_authorization, form_encode,
};
use crate::fetch::{self, FetchErrorKind, Limits};
use crate::remote::discovery::{Failure, discover};
use crate::remote::http::SharedTransport;

const TARGET: &str = "bearer_guard::introspection";
/// Largest metadata document read when discovering the endpoint.
const MAX_METADATA: usize = 1024 * 1024;

/// Where requests go.
pub(crate) enum Endpoint {
    Fixed(Uri),
    /// Read from the metadata of the issuer at `url`, once; one discovery at a time, and
    /// none for `retry` after one failed.
    Discover {
        url: String,
        found: OnceLock<Uri>,
        retry: Duration,
        /// Held while discovering; the last failure: when the next attempt may start, and
        /// what went wrong.
        failed: tokio::sync::Mutex<Option<(Instant, String)>>,
    },
}

impl Endpoint {
    pub(crate) fn discover(url: String, retry: Duration) -> Self {
        Endpoint::Discover {
            url,
            found: OnceLock::new(),
            retry,
            failed: tokio::sync::Mutex::new(None),
        }
    }
}

/// What the builder settled.
pub(crate) struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) issuer: Option<Box<str>>,
    pub(crate) client_id: Box<str>,
    pub(crate) secret: ClientSecret,
    /// `private_key_jwt` instead of the secret: the key, and the issuer identifier (the
    /// assertions' `aud`).
    pub(crate) private_key: Option<(PrivateKeyJwt, Box<str>)>,
    pub(crate) client: SharedTransport,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) max_concurrent: usize,
    pub(crate) max_pending: usize,
    pub(crate) cache: (usize, u64),
    pub(crate) allow_http: bool,
}

/// The configuration, shared by every binding of an introspection; and what belongs to the
/// endpoint rather than to a binding: the bound on requests in flight, the outage flag.
pub(crate) struct Config {
    settings: Settings,
    pub(crate) cache_entries: usize,
    pub(crate) cache_bytes: u64,
    permits: Semaphore,
    /// The last request failed: the next failure is not logged as a warning again.
    failing: AtomicBool,
}

impl Config {
    pub(crate) fn new(settings: Settings) -> Self {
        Config {
            cache_entries: settings.cache.0,
            cache_bytes: settings.cache.1,
            permits: Semaphore::new(settings.max_concurrent),
            failing: AtomicBool::new(false),
            settings,
        }
    }

    /// The endpoint: configured, or read from the issuer's metadata once.
    pub(crate) async fn endpoint(&self) -> Result<Uri, Failure> {
        let (url, found, retry, failed) = match &self.settings.endpoint {
            Endpoint::Fixed(uri) => return Ok(uri.clone()),
            Endpoint::Discover {
                url,
                found,
                retry,
                failed,
            } => (url, found, *retry, failed),
        };
        if let Some(uri) = found.get() {
            return Ok(uri.clone());
        }
        let mut failed = failed.lock().await;
        if let Some(uri) = found.get() {
            return Ok(uri.clone());
        }
        if let Some((next, error)) = &*failed {
            let now = Instant::now();
            if now < *next {
                let (error, after) = (error.clone(), *next - now);
                return Err(Failure::Retry { error, after });
            }
        }
        match self.discover(url).await {
            Ok(uri) => {
                let _ = found.set(uri.clone());
                tracing::info!(
                    target: TARGET,
                    reason = "endpoint_discovered",
                    endpoint = %crate::url::redact(&uri.to_string()),
                    "introspection endpoint discovered"
                );
                Ok(uri)
            }
            Err(failure) => {
                *failed = Some((Instant::now() + retry, failure.to_string()));
                Err(failure)
            }
        }
    }

    /// Reads the endpoint from the metadata of the issuer at `url`.
    async fn discover(&self, url: &str) -> Result<Uri, Failure> {
        let s = &self.settings;
        let limits = crate::remote::http::limits(s.timeout, MAX_METADATA);
        let expected = s.issuer.as_deref().unwrap_or(url);
        let doc = discover(&*s.client, &limits, s.allow_http, url, expected).await?;
        let uri = doc.endpoint(
            "introspection_endpoint",
            doc.metadata.introspection_endpoint(),
            s.allow_http,
        )?;
        Ok(uri)
    }

    pub(crate) fn issuer(&self) -> Option<&str> {
        self.settings.issuer.as_deref()
    }

    /// Logs a failure: a warning for the first of an outage, at debug level after that.
    fn failed(&self, why: Unavailable, error: &dyn fmt::Display) {
        if self.failing.swap(true, Ordering::AcqRel) {
            tracing::debug!(target: TARGET, reason = why.reason(), error = %error, "token introspection failed");
        } else {
            tracing::warn!(
                target: TARGET,
                reason = why.reason(),
                error = %error,
                "token introspection failed; such requests get 503 until the endpoint answers"
            );
        }
    }

    /// The endpoint answered: ends an outage.
    fn answered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(
                target: TARGET,
                reason = "recovered",
                "the introspection endpoint answers again"
            );
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let endpoint = match &s.endpoint {
            Endpoint::Fixed(uri) => uri.to_string(),
            Endpoint::Discover { url, found, .. } => match found.get() {
                Some(uri) => uri.to_string(),
                None => format!("(from the metadata of {url})"),
            },
        };
        f.debug_struct("Config")
            .field("endpoint", &crate::url::redact(&endpoint))
            .field("issuer", &s.issuer)
            .field("client_id", &s.client_id)
            .field("secret", &s.secret)
            .field("private_key", &s.private_key)
            .field("ttl", &s.ttl)
            .field("negative_ttl", &s.negative_ttl)
            .field("timeout", &s.timeout)
            .field("max_body", &s.max_body)
            .field("max_pending", &s.max_pending)
            .field("cache", &s.cache)
            .finish_non_exhaustive()
    }
}

/// The requests in flight: one per token digest, its answer to come.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<Key, watch::Receiver<Option<Answer>>>>);

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Receiver<Option<Answer>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer for `token`: cached, shared with the request in flight for it, or asked for
/// in a new task (which outlives a caller that gives up).
pub(crate) fn join(
    shared: &Arc<Shared>,
    token: &str,
) -> impl Future<Output = Answer> + Send + 'static + use<> {
    let joined = start_or_join(shared, token);
    async move {
        let mut flight = match joined {
            Ok(flight) => flight,
            Err(answer) => return answer,
        };
        match flight.wait_for(Option::is_some).await {
            Ok(answer) => answer
                .clone()
                .unwrap_or(Answer::Unavailable(Unavailable::Aborted)),
            Err(_) => Answer::Unavailable(Unavailable::Aborted),
        }
    }
}

/// Under the flights' lock: a request in flight is joined; else a cached answer is returned
/// (a flight that just ended has cached its answer before leaving the map); else a flight
/// starts, unless too many are waiting.
fn start_or_join(
    shared: &Arc<Shared>,
    token: &str,
) -> Result<watch::Receiver<Option<Answer>>, Answer> {
    let key = digest(token);
    let mut flights = shared.flights.lock();
    if let Some(flight) = flights.get(&key) {
        return Ok(flight.clone());
    }
    if let Some(answer) = shared.cache.get(&key, now()) {
        return Err(answer);
    }
    let config = &*shared.config;
    if flights.len() >= config.settings.max_pending {
        drop(flights);
        config.failed(
            Unavailable::Overloaded,
            &"too many tokens waiting for introspection",
        );
        return Err(Answer::Unavailable(Unavailable::Overloaded));
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(Answer::Unavailable(Unavailable::NoRuntime));
    };
    let (tx, rx) = watch::channel(None);
    flights.insert(key, rx.clone());
    drop(flights);
    let token = Zeroizing::new(token.to_owned());
    let flight = Flight {
        shared: Arc::clone(shared),
        key,
    };
    runtime.spawn(async move {
        let started = std::time::Instant::now();
        let (answer, now) = flight.shared.ask(&token).await;
        crate::metrics::introspection(answer.result(), started.elapsed());
        let s = &flight.shared.config.settings;
        flight
            .shared
            .cache
            .insert(flight.key, &answer, now, s.ttl, s.negative_ttl);
        tx.send_replace(Some(answer));
        drop(flight);
    });
    Ok(rx)
}

/// A flight's place in the map, left when the flight ends, however it ends.
struct Flight {
    shared: Arc<Shared>,
    key: Key,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.shared.flights.lock().remove(&self.key);
    }
}

impl Shared {
    /// One introspection request for `token`, and the time its answer was read: a free
    /// slot, the endpoint, the request, all before one deadline.
    async fn ask(&self, token: &str) -> (Answer, i64) {
        let config = &*self.config;
        let s = &config.settings;
        let deadline = Instant::now() + s.timeout;
        let Ok(Ok(_permit)) = timeout_at(deadline, config.permits.acquire()).await else {
            let why = Unavailable::Overloaded;
            config.failed(why, &"no free introspection slot within the timeout");
            return (Answer::Unavailable(why), now());
        };
        let endpoint = match timeout_at(deadline, config.endpoint()).await {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(failure)) => {
                config.failed(Unavailable::Discovery, &failure);
                return (Answer::Unavailable(Unavailable::Discovery), now());
            }
            Err(_) => {
                let why = Unavailable::Discovery;
                config.failed(
                    why,
                    &"no introspection endpoint discovered within the timeout",
                );
                return (Answer::Unavailable(why), now());
            }
        };
        let limits = Limits {
            timeout: deadline.saturating_duration_since(Instant::now()),
            max_body: s.max_body,
            accept: fetch::only_ok,
        };
        let request = match request(&endpoint, s, token) {
            Ok(request) => request,
            Err(what) => {
                let why = Unavailable::Fetch(FetchErrorKind::Transport);
                config.failed(why, &what);
                return (Answer::Unavailable(why), now());
            }
        };
        let sent = fetch::send(
            fetch::service_fn(|req| s.client.send(req)),
            request,
            &limits,
        )
        .await;
        let now = now();
        let fetched = match sent {
            Ok(fetched) => fetched,
            Err(err) => {
                let why = Unavailable::Fetch(err.kind());
                config.failed(why, &err);
                return (Answer::Unavailable(why), now);
            }
        };
        let answer = answer::read(&fetched.body, &self.rules, config.issuer(), now, s.ttl);
        match &answer {
            Answer::Unavailable(why @ Unavailable::InvalidResponse(what)) => {
                let url = fetched.url();
                config.failed(*why, &format_args!("the answer of {url} is {what}"));
            }
            _ => config.answered(),
        }
        (answer, now)
    }
}

/// `POST endpoint` with `token=..&token_type_hint=access_token`, authenticated by
/// `client_secret_basic`, or `private_key_jwt` (RFC 7523 §2.2: a fresh assertion in the
/// form, for the issuer identifier) when the settings have a key. The error says what
/// failed.
fn request(
    endpoint: &Uri,
    s: &Settings,
    token: &str,
) -> Result<Request<Full<Bytes>>, &'static str> {
    let mut form = Zeroizing::new(String::with_capacity(token.len() + 40));
    form.push_str("token=");
    form_encode(&mut form, token);
    form.push_str("&token_type_hint=access_token");
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(endpoint.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    match &s.private_key {
        None => {
            let basic = basic_authorization(&s.client_id, &s.secret)
                .map_err(|_| "the client id cannot be sent in a Basic header")?;
            builder = builder.header(AUTHORIZATION, basic);
        }
        Some((key, issuer)) => {
            let assertion = key
                .assertion(&s.client_id, issuer)
                .map_err(|_| "the client assertion could not be signed")?;
            form.push_str("&client_id=");
            form_encode(&mut form, &s.client_id);
            form.push_str("&client_assertion_type=");
            form_encode(&mut form, JWT_BEARER);
            form.push_str("&client_assertion=");
            form_encode(&mut form, &assertion);
        }
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
        .map_err(|_| "the introspection request could not be built")
}
