//! Per-client rate limits (feature `rate-limit`), built on [`governor`].
//!
//! [`RateLimitByClient`] is a layer placed *after* (inside) [`RequireScope`]: it reads the
//! [`Claims`] the authentication layer put into the request's extensions, takes the client id
//! from them, and lets the request through only while that client is within its quota. Each
//! client has its own bucket: one client exhausting its quota does not slow down another.
//!
//! - **Quotas.** A default [`Quota`] for every client, and per-client quotas for named ones
//!   ([`client`](RateLimitByClientBuilder::client)). Quotas are governor's GCRA: a burst of
//!   `max_burst` requests, then one more every `replenish_1_per`.
//! - **Key.** By default, for [`AccessClaims`]: `client_id` (or `azp`), else `sub`. Other
//!   claims types or keys: [`key_from_claims`](RateLimitByClientBuilder::key_from_claims) or
//!   any closure over the request ([`key`](RateLimitByClientBuilder::key)).
//! - **Anonymous requests** (no claims: a route with [optional](crate::RequireScope::optional)
//!   authentication, or a key function that found no key) share **one** bucket, limited by
//!   the default quota unless set with [`anonymous`](RateLimitByClientBuilder::anonymous).
//!   [`anonymous_unlimited`](RateLimitByClientBuilder::anonymous_unlimited) lets them through
//!   unlimited instead. Note that a `RateLimitByClient` placed *outside* `RequireScope` sees no
//!   claims at all and so limits every request under that one shared bucket.
//! - **Over quota**, the layer answers itself, never with an `Err`: `429 Too Many Requests`
//!   with `Retry-After` (whole seconds, rounded up, at least 1) or, for gRPC requests
//!   (`content-type: application/grpc`), HTTP 200 with `grpc-status: 8`
//!   (`RESOURCE_EXHAUSTED`) and `grpc-retry-pushback-ms`. The response's extensions hold a
//!   [`RateLimited`]; a `tracing` event (target `bearer_guard::rate_limit`) is emitted with
//!   `reason = "rate_limited"` and the `client_id`, never the token.
//! - **Several replicas** (feature `redis`): with [`redis`](RateLimitByClientBuilder::redis)
//!   the buckets live in Redis ([`RedisQuotas`]), so that N replicas give each client its
//!   quota once, not N times. The in-memory buckets then only serve
//!   [`Fallback::Local`] while Redis cannot answer.
//!
//! # Memory
//!
//! Named clients have fixed buckets. Every other client gets a bucket in a governor keyed
//! state store, created on its first request. Keys come from validated tokens, so their number
//! is bounded by the issuer's clients (or subjects, when tokens carry no `client_id`), not by
//! what an attacker sends; a custom [`key`](RateLimitByClientBuilder::key) function over
//! unauthenticated input (an IP address, a header) does not have that bound. In any case,
//! every [`retain_recent_every`](RateLimitByClientBuilder::retain_recent_every) requests
//! (default [`DEFAULT_RETAIN_RECENT_EVERY`]) the store drops the buckets that have fully
//! replenished, which are indistinguishable from new ones.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//! use bearer_guard::rate_limit::{Quota, RateLimitByClient, RateLimited};
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! let burst = |n| NonZeroU32::new(n).expect("non-zero");
//! let limit = RateLimitByClient::builder(Quota::per_second(burst(10)))
//!     .client("billing", Quota::per_minute(burst(600)).allow_burst(burst(50)))
//!     .anonymous(Quota::per_hour(burst(1)))
//!     .build();
//!
//! let mut svc = ServiceBuilder::new()
//!     // .layer(RequireScope::all(&validator, ["read"]).optional()) goes here, outside.
//!     .layer(limit)
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     }));
//!
//! # tokio_test_block_on(async {
//! // Requests without claims share the anonymous bucket: one per hour.
//! let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
//! assert!((3599..=3600).contains(&retry_after));
//! assert!(res.extensions().get::<RateLimited>().is_some());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! In an axum app, with [`tower::ServiceBuilder`](https://docs.rs/tower) listing the layers
//! from the outermost in:
//!
//! ```no_run
//! # use axum::{Router, routing::get};
//! # use bearer_guard::{RequireScope, Validator, rate_limit::{Quota, RateLimitByClient}};
//! # use tower::ServiceBuilder;
//! # fn app(validator: &Validator, quota: Quota) -> Router {
//! Router::new().route(
//!     "/reports",
//!     get(|| async { "reports" }).layer(
//!         ServiceBuilder::new()
//!             .layer(RequireScope::all(validator, ["reports:read"]))
//!             .layer(RateLimitByClient::new(quota)),
//!     ),
//! )
//! # }
//! ```
//!
//! [`RequireScope`]: crate::RequireScope

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::challenge::is_grpc;
use crate::claims::{AccessClaims, Claims};

pub use governor::Quota;

// Redis quotas (feature `redis`): the store, in `rate_limit/redis.rs`.
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{
    DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_RETRY_EVERY, DEFAULT_REDIS_TIMEOUT, Fallback, QuotaStats,
    QuotaStoreError, QuotaUnavailable, RedisQuotas, RedisQuotasBuilder,
};

/// How many requests to clients without a named quota pass between two sweeps of the keyed
/// store ([`RateLimitByClientBuilder::retain_recent_every`]).
pub const DEFAULT_RETAIN_RECENT_EVERY: u64 = 4096;

/// `grpc-status` for `RESOURCE_EXHAUSTED`.
const GRPC_RESOURCE_EXHAUSTED: u16 = 8;

/// Marks a response the rate limit answered with (`429`, or `grpc-status: 8`); it is in the
/// response's extensions.
///
/// ```
/// use bearer_guard::rate_limit::RateLimited;
/// # let response = http::Response::new(());
/// if let Some(limited) = response.extensions().get::<RateLimited>() {
///     let _wait = limited.retry_after();
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    /// How long until the client's next request can pass, exactly. The `Retry-After` header
    /// carries it in whole seconds, rounded up, and at least 1.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// Finds the rate-limit key (the client) of a request.
///
/// `None` puts the request in the shared anonymous bucket (or lets it through, with
/// [`anonymous_unlimited`](RateLimitByClientBuilder::anonymous_unlimited)).
///
/// Implemented by [`ClientId`] (the default), [`ClaimsKey`] and every closure
/// `Fn(&Request<B>) -> Option<K>` where `K: Into<String>`.
pub trait RateLimitKey<B> {
    /// The key of `req`, if it has one.
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>>;

    /// The key of `req`'s bucket in Redis ([`RedisQuotas`]), typed so that two key spaces
    /// never share a bucket: [`ClientId`] answers `client:<client_id>` or `sub:<sub>`, the
    /// default is `key:<key>`.
    #[cfg(feature = "redis")]
    fn shared_key(&self, req: &Request<B>) -> Option<String> {
        self.key(req).map(|key| format!("key:{key}"))
    }
}

impl<F, B, K> RateLimitKey<B> for F
where
    F: Fn(&Request<B>) -> Option<K>,
    K: Into<String>,
{
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        self(req).map(|k| Cow::Owned(k.into()))
    }
}

/// The default key: the client of the request's [`Claims<AccessClaims>`]
/// ([`AccessClaims::client_id`], that is `client_id` or `azp`), else its subject (`sub`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientId;

impl<B> RateLimitKey<B> for ClientId {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let claims: &'r AccessClaims = req.extensions().get::<Claims<AccessClaims>>()?;
        claims
            .client_id()
            .or_else(|| claims.subject())
            .map(Cow::Borrowed)
    }

    /// A token whose `sub` equals another client's id must not drain that client's bucket.
    #[cfg(feature = "redis")]
    fn shared_key(&self, req: &Request<B>) -> Option<String> {
        let claims: &AccessClaims = req.extensions().get::<Claims<AccessClaims>>()?;
        match claims.client_id() {
            Some(client_id) => Some(format!("client:{client_id}")),
            None => claims.subject().map(|sub| format!("sub:{sub}")),
        }
    }
}

/// A key read from the request's [`Claims<T>`] by a function, for claims types other than
/// [`AccessClaims`]. Built by [`RateLimitByClientBuilder::key_from_claims`].
pub struct ClaimsKey<T, F> {
    f: F,
    claims: PhantomData<fn(&T)>,
}

impl<T, F: Clone> Clone for ClaimsKey<T, F> {
    fn clone(&self) -> Self {
        ClaimsKey {
            f: self.f.clone(),
            claims: PhantomData,
        }
    }
}

impl<T, F> fmt::Debug for ClaimsKey<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsKey")
            .field("claims", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T, F, B> RateLimitKey<B> for ClaimsKey<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<&str>,
{
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let claims: &'r T = req.extensions().get::<Claims<T>>()?;
        (self.f)(claims).map(Cow::Borrowed)
    }
}

/// A [`Layer`] that limits each client's request rate, answering `429 Too Many Requests`
/// with `Retry-After` (or `grpc-status: 8`) over quota. See the [module docs](self).
///
/// Place it inside [`RequireScope`](crate::RequireScope), so that it sees the claims.
/// Cloning the layer or its service is one reference-count increment; all clones share the
/// same buckets.
pub struct RateLimitByClient<K = ClientId> {
    state: Arc<State<K>>,
}

struct State<K> {
    key: K,
    default_quota: Quota,
    /// Clients without a named quota, one bucket each.
    default: DefaultKeyedRateLimiter<String>,
    /// Clients with a named quota; fixed after building, so lookups take no lock.
    clients: HashMap<String, Bucket>,
    /// `None`: anonymous requests are not limited.
    anonymous: Option<Bucket>,
    calls: AtomicU64,
    retain_every: u64,
    /// Redis quotas: when set, they decide, and the buckets above are the local fallback.
    #[cfg(feature = "redis")]
    shared: Option<RedisQuotas>,
}

struct Bucket {
    quota: Quota,
    limiter: DefaultDirectRateLimiter,
}

impl Bucket {
    fn new(quota: Quota) -> Self {
        Bucket {
            quota,
            limiter: DefaultDirectRateLimiter::direct(quota),
        }
    }

    fn check(&self) -> Result<(), Duration> {
        waited(self.limiter.check(), self.limiter.clock())
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.quota.fmt(f)
    }
}

/// The wait until the next conforming request, from governor's answer.
fn waited(
    outcome: Result<(), NotUntil<<DefaultClock as Clock>::Instant>>,
    clock: &DefaultClock,
) -> Result<(), Duration> {
    outcome.map_err(|not_until| not_until.wait_time_from(clock.now()))
}

impl<K> State<K> {
    /// Takes one request from the bucket of client `key` (the anonymous bucket for `None`);
    /// `Err(wait)`, logged, when it is over quota.
    fn check(&self, key: Option<Cow<'_, str>>) -> Result<(), Duration> {
        let (verdict, client_id) = self.take(key);
        if let Err(wait) = verdict {
            record_limited(client_id.as_deref(), wait);
        }
        verdict
    }

    /// [`check`](Self::check) without the log; also answers the client id.
    fn take<'k>(&self, key: Option<Cow<'k, str>>) -> (Result<(), Duration>, Option<Cow<'k, str>>) {
        match key {
            None => (self.anonymous.as_ref().map_or(Ok(()), Bucket::check), None),
            Some(key) => match self.clients.get(key.as_ref()) {
                Some(bucket) => (bucket.check(), Some(key)),
                None => {
                    self.sweep();
                    let key = key.into_owned();
                    let verdict = waited(self.default.check_key(&key), self.default.clock());
                    (verdict, Some(Cow::Owned(key)))
                }
            },
        }
    }

    /// Once every `retain_every` calls, drops the keyed buckets that have fully refilled.
    fn sweep(&self) {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if calls.is_multiple_of(self.retain_every) {
            self.default.retain_recent();
            self.default.shrink_to_fit();
        }
    }
}

impl RateLimitByClient {
    /// Starts a rate limit with `default` as every client's quota, keyed by [`ClientId`].
    pub fn builder(default: Quota) -> RateLimitByClientBuilder {
        RateLimitByClientBuilder {
            key: ClientId,
            default,
            clients: HashMap::new(),
            anonymous: Some(default),
            retain_every: DEFAULT_RETAIN_RECENT_EVERY,
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// The same quota for every client, keyed by [`ClientId`]; anonymous requests share one
    /// bucket with that quota.
    pub fn new(default: Quota) -> Self {
        Self::builder(default).build()
    }
}

impl<K> RateLimitByClient<K> {
    /// The number of buckets currently held for clients without a named quota.
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.state.default.len()
    }
}

/// Configures a [`RateLimitByClient`]; from [`RateLimitByClient::builder`].
#[must_use]
pub struct RateLimitByClientBuilder<K = ClientId> {
    key: K,
    default: Quota,
    clients: HashMap<String, Quota>,
    anonymous: Option<Quota>,
    retain_every: u64,
    #[cfg(feature = "redis")]
    shared: Option<RedisQuotas>,
}

impl<K> RateLimitByClientBuilder<K> {
    /// Keeps the buckets in Redis, shared by every replica that points at it (feature
    /// `redis`): the same quotas, and the same answers, but each client gets its quota once
    /// across all replicas instead of once per replica. The in-memory buckets then only
    /// decide under [`Fallback::Local`], while Redis cannot answer. See [`RedisQuotas`].
    #[cfg(feature = "redis")]
    pub fn redis(mut self, quotas: RedisQuotas) -> Self {
        self.shared = Some(quotas);
        self
    }

    /// Gives `client_id` its own quota instead of the default one. Setting a client twice
    /// keeps the last quota.
    pub fn client(mut self, client_id: impl Into<String>, quota: Quota) -> Self {
        self.clients.insert(client_id.into(), quota);
        self
    }

    /// Limits requests without a key (no claims) under one shared bucket with `quota`. The
    /// default is one shared bucket with the default quota.
    pub fn anonymous(mut self, quota: Quota) -> Self {
        self.anonymous = Some(quota);
        self
    }

    /// Lets requests without a key (no claims) through without any limit.
    pub fn anonymous_unlimited(mut self) -> Self {
        self.anonymous = None;
        self
    }

    /// Sweeps fully replenished buckets out of the keyed store once every `calls` requests
    /// that use it (clients without a named quota). `0` counts as 1. Default:
    /// [`DEFAULT_RETAIN_RECENT_EVERY`].
    pub fn retain_recent_every(mut self, calls: u64) -> Self {
        self.retain_every = calls.max(1);
        self
    }

    /// Keys requests with a closure over the request, for example a tenant claim or a
    /// header. `None` means anonymous.
    ///
    /// ```
    /// use bearer_guard::rate_limit::{Quota, RateLimitByClient};
    /// # let quota = Quota::per_second(std::num::NonZeroU32::MIN);
    /// let layer = RateLimitByClient::builder(quota)
    ///     .key(|req: &http::Request<()>| {
    ///         let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
    ///         Some(format!("tenant:{tenant}"))
    ///     })
    ///     .build();
    /// ```
    pub fn key<F>(self, f: F) -> RateLimitByClientBuilder<F> {
        RateLimitByClientBuilder {
            key: f,
            default: self.default,
            clients: self.clients,
            anonymous: self.anonymous,
            retain_every: self.retain_every,
            #[cfg(feature = "redis")]
            shared: self.shared,
        }
    }

    /// Keys requests with a function of their [`Claims<T>`], for a custom claims type.
    /// Requests without `Claims<T>`, or for which `f` returns `None`, are anonymous.
    ///
    /// ```
    /// use bearer_guard::rate_limit::{Quota, RateLimitByClient};
    /// #[derive(serde::Deserialize)]
    /// struct Mine { tenant: String }
    /// # let quota = Quota::per_second(std::num::NonZeroU32::MIN);
    /// let layer = RateLimitByClient::builder(quota)
    ///     .key_from_claims(|c: &Mine| Some(c.tenant.as_str()))
    ///     .build();
    /// ```
    pub fn key_from_claims<T, F>(self, f: F) -> RateLimitByClientBuilder<ClaimsKey<T, F>>
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> Option<&str>,
    {
        self.key(ClaimsKey {
            f,
            claims: PhantomData,
        })
    }

    /// Builds the layer and its buckets.
    pub fn build(self) -> RateLimitByClient<K> {
        RateLimitByClient {
            state: Arc::new(State {
                key: self.key,
                default_quota: self.default,
                default: DefaultKeyedRateLimiter::keyed(self.default),
                clients: self
                    .clients
                    .into_iter()
                    .map(|(client, quota)| (client, Bucket::new(quota)))
                    .collect(),
                anonymous: self.anonymous.map(Bucket::new),
                calls: AtomicU64::new(0),
                retain_every: self.retain_every,
                #[cfg(feature = "redis")]
                shared: self.shared,
            }),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for RateLimitByClientBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitByClientBuilder")
            .field("key", &self.key)
            .field("default", &self.default)
            .field("clients", &self.clients)
            .field("anonymous", &self.anonymous)
            .field("retain_recent_every", &self.retain_every)
            .finish()
    }
}

impl<K> Clone for RateLimitByClient<K> {
    fn clone(&self) -> Self {
        RateLimitByClient {
            state: Arc::clone(&self.state),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for State<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RateLimitByClient");
        d.field("key", &self.key)
            .field("default", &self.default_quota)
            .field("clients", &self.clients)
            .field("anonymous", &self.anonymous)
            .field("retain_recent_every", &self.retain_every);
        #[cfg(feature = "redis")]
        d.field("redis", &self.shared);
        d.finish()
    }
}

impl<K: fmt::Debug> fmt::Debug for RateLimitByClient<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.state.fmt(f)
    }
}

impl<S, K> Layer<S> for RateLimitByClient<K> {
    type Service = RateLimitByClientService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitByClientService {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// Calls the inner service while the request's client is within its quota, and answers
/// `429` (or `grpc-status: 8`) otherwise. Built by [`RateLimitByClient`].
pub struct RateLimitByClientService<S, K = ClientId> {
    inner: S,
    state: Arc<State<K>>,
}

impl<S, K> RateLimitByClientService<S, K> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K> Clone for RateLimitByClientService<S, K> {
    fn clone(&self) -> Self {
        RateLimitByClientService {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug> fmt::Debug for RateLimitByClientService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitByClientService")
            .field("inner", &self.inner)
            .field("limit", &self.state)
            .finish()
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitByClientService<S, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    K: RateLimitKey<ReqBody> + Send + Sync + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        #[cfg(feature = "redis")]
        if let Some(quotas) = self.state.shared.clone() {
            return self.call_shared(&quotas, req);
        }
        match self.state.check(self.state.key.key(&req)) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(wait) => ResponseFuture::limited(too_many_requests(wait, is_grpc(req.headers()))),
        }
    }
}

// ---- Redis quotas (feature `redis`): the waiting branch ------------------------------------

#[cfg(feature = "redis")]
impl<S, K> RateLimitByClientService<S, K> {
    /// The request's way with [`RedisQuotas`]: a lent cell or a known outage decides now;
    /// otherwise the ready inner service goes into the future (a clone stays behind), which
    /// awaits Redis' answer, then calls it or answers the refusal.
    fn call_shared<ReqBody, ResBody>(
        &mut self,
        quotas: &RedisQuotas,
        req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
        K: RateLimitKey<ReqBody> + Send + Sync + 'static,
        ResBody: Default,
    {
        let state = Arc::clone(&self.state);
        let grpc = is_grpc(req.headers());
        let key = state.key.key(&req).map(Cow::into_owned);
        let (quota, bucket) = match &key {
            Some(key) => (
                state
                    .clients
                    .get(key)
                    .map_or(state.default_quota, |b| b.quota),
                state
                    .key
                    .shared_key(&req)
                    .unwrap_or_else(|| format!("key:{key}")),
            ),
            None => match &state.anonymous {
                Some(bucket) => (bucket.quota, "anonymous".to_owned()),
                None => return ResponseFuture::inner(self.inner.call(req)),
            },
        };
        let local_key = key.clone();
        let local = move || state.take(local_key.map(Cow::Owned)).0;
        match quotas.check(&bucket, quota, local) {
            redis::Check::Now(redis::Verdict::Admit) => ResponseFuture::inner(self.inner.call(req)),
            redis::Check::Now(refused) => {
                ResponseFuture::limited(refusal(refused, grpc, key.as_deref()))
            }
            redis::Check::Wait(decision) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::wait(Box::pin(async move {
                    match decision.await {
                        redis::Verdict::Admit => inner.call(req).await,
                        refused => Ok(refusal(refused, grpc, key.as_deref())),
                    }
                }))
            }
        }
    }
}

/// `429` (logged) or, under [`Fallback::Closed`], `503`.
#[cfg(feature = "redis")]
fn refusal<B: Default>(
    verdict: redis::Verdict,
    grpc: bool,
    client_id: Option<&str>,
) -> Response<B> {
    match verdict {
        redis::Verdict::Limited(wait) => {
            record_limited(client_id, wait);
            too_many_requests(wait, grpc)
        }
        _ => redis::unavailable(grpc),
    }
}

/// The log of a refusal over quota: the client, never the token.
fn record_limited(client_id: Option<&str>, wait: Duration) {
    tracing::info!(
        target: "bearer_guard::rate_limit",
        reason = "rate_limited",
        client_id,
        retry_after_secs = retry_after_secs(wait),
        "request refused: client over its rate limit"
    );
}

/// `Retry-After` seconds: rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The answer over quota: 429 with `Retry-After`, or a trailers-only gRPC
/// `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`.
fn too_many_requests<B: Default>(wait: Duration, grpc: bool) -> Response<B> {
    let mut res = Response::new(B::default());
    let headers = res.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
    if grpc {
        let pushback_ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(GRPC_RESOURCE_EXHAUSTED));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("rate limit exceeded"),
        );
        headers.insert("grpc-retry-pushback-ms", HeaderValue::from(pushback_ms));
        *res.status_mut() = StatusCode::OK;
    } else {
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    }
    res.extensions_mut()
        .insert(RateLimited { retry_after: wait });
    res
}

pin_project! {
    /// Response future of [`RateLimitByClientService`]: the inner service's future, or the
    /// `429` answer; neither allocates. With [`RedisQuotas`], a request that waits for
    /// Redis' answer goes through a boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

/// The boxed branch: a request that waits for Redis before the inner service.
type Waiting<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        Limited { response: Option<Response<B>> },
        Wait { future: Waiting<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    #[cfg(feature = "redis")]
    fn wait(future: Waiting<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Wait { future },
        }
    }

    fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    fn limited(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Limited {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Limited { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Wait { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::num::NonZeroU32;

    use http::header::{CONTENT_TYPE, RETRY_AFTER};
    use http::{Request, Response, StatusCode};
    use serde_json::json;
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn n(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    /// One request per hour after a burst of `burst`: nothing replenishes during a test.
    fn hourly(burst: u32) -> Quota {
        Quota::per_hour(n(1)).allow_burst(n(burst))
    }

    fn claims(value: serde_json::Value) -> Claims<AccessClaims> {
        let mut base = json!({"iss": "i", "aud": "a", "exp": 1});
        if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), value) {
            base.extend(extra);
        }
        Claims(Arc::new(serde_json::from_value(base).expect("claims")))
    }

    fn request(claims: Option<Claims<AccessClaims>>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(claims) = claims {
            req.extensions_mut().insert(claims);
        }
        req
    }

    fn client(id: &str) -> Option<Claims<AccessClaims>> {
        Some(claims(json!({"client_id": id, "sub": id})))
    }

    async fn send<K: RateLimitKey<()> + Send + Sync + 'static>(
        layer: &RateLimitByClient<K>,
        req: Request<()>,
    ) -> Response<String> {
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new("ok".to_owned()))
        }));
        svc.oneshot(req).await.expect("infallible")
    }

    async fn statuses<K: RateLimitKey<()> + Send + Sync + 'static>(
        layer: &RateLimitByClient<K>,
        count: usize,
        claims: impl Fn() -> Option<Claims<AccessClaims>>,
    ) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(send(layer, request(claims())).await.status().as_u16());
        }
        out
    }

    #[tokio::test]
    async fn named_clients_get_their_own_quota_and_others_the_default() {
        let layer = RateLimitByClient::builder(hourly(2))
            .client("billing", hourly(4))
            .build();
        assert_eq!(
            statuses(&layer, 5, || client("billing")).await,
            [200, 200, 200, 200, 429]
        );
        assert_eq!(
            statuses(&layer, 3, || client("reports")).await,
            [200, 200, 429]
        );
        assert_eq!(
            statuses(&layer, 3, || client("other")).await,
            [200, 200, 429],
            "each unnamed client has its own bucket"
        );
        assert_eq!(layer.tracked_clients(), 2);
    }

    #[tokio::test]
    async fn over_quota_is_429_with_retry_after_rounded_up_and_a_marker() {
        let layer = RateLimitByClient::new(Quota::per_minute(n(1)));
        assert_eq!(send(&layer, request(client("a"))).await.status(), 200);
        let res = send(&layer, request(client("a"))).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.body(), "");
        let secs: u64 = res.headers()[RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((59..=60).contains(&secs), "{secs}");
        let marker = res.extensions().get::<RateLimited>().expect("marker");
        assert!(marker.retry_after() <= Duration::from_secs(60));
        assert!(marker.retry_after() > Duration::from_secs(58));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(720)), 720);
    }

    #[tokio::test]
    async fn grpc_requests_over_quota_get_resource_exhausted_with_http_200() {
        let layer = RateLimitByClient::new(hourly(1));
        let grpc = || {
            let mut req = request(client("a"));
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            req
        };
        assert_eq!(send(&layer, grpc()).await.body(), "ok");
        let res = send(&layer, grpc()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(res.headers()["grpc-message"], "rate limit exceeded");
        let pushback: u64 = res.headers()["grpc-retry-pushback-ms"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("ms");
        assert!(pushback > 3_590_000, "{pushback}");
        assert!(res.extensions().get::<RateLimited>().is_some());
        assert_eq!(res.body(), "");
    }

    #[tokio::test]
    async fn anonymous_requests_share_one_bucket_by_default() {
        let layer = RateLimitByClient::builder(hourly(5))
            .anonymous(hourly(2))
            .build();
        assert_eq!(statuses(&layer, 3, || None).await, [200, 200, 429]);
        // A valid token without client_id or sub has no key either.
        assert_eq!(
            send(&layer, request(Some(claims(json!({})))))
                .await
                .status(),
            429
        );
        assert_eq!(
            statuses(&layer, 2, || client("a")).await,
            [200, 200],
            "clients are not affected by the anonymous bucket"
        );
        let default = RateLimitByClient::new(hourly(1));
        assert_eq!(statuses(&default, 2, || None).await, [200, 429]);
    }

    #[tokio::test]
    async fn anonymous_unlimited_lets_requests_without_claims_through() {
        let layer = RateLimitByClient::builder(hourly(1))
            .anonymous_unlimited()
            .build();
        assert!(
            statuses(&layer, 20, || None)
                .await
                .iter()
                .all(|s| *s == 200)
        );
        assert_eq!(statuses(&layer, 2, || client("a")).await, [200, 429]);
    }

    #[tokio::test]
    async fn a_client_named_anonymous_is_not_the_anonymous_bucket() {
        let layer = RateLimitByClient::new(hourly(1));
        assert_eq!(statuses(&layer, 2, || None).await, [200, 429]);
        assert_eq!(statuses(&layer, 1, || client("anonymous")).await, [200]);
    }

    #[tokio::test]
    async fn sub_stands_in_for_a_missing_client_id() {
        let layer = RateLimitByClient::builder(hourly(5))
            .client("svc", hourly(1))
            .build();
        let by_sub = || Some(claims(json!({"sub": "svc"})));
        assert_eq!(statuses(&layer, 2, by_sub).await, [200, 429]);
        let by_azp = || Some(claims(json!({"azp": "web", "sub": "svc"})));
        assert_eq!(statuses(&layer, 1, by_azp).await, [200]);
    }

    #[tokio::test]
    async fn custom_keys_from_a_closure_or_from_claims() {
        let layer = RateLimitByClient::builder(hourly(1))
            .key(|req: &Request<()>| Some(req.headers().get("x-tenant")?.to_str().ok()?.to_owned()))
            .build();
        let tenant = |t: &'static str| {
            let mut req = request(None);
            req.headers_mut()
                .insert("x-tenant", HeaderValue::from_static(t));
            req
        };
        assert_eq!(send(&layer, tenant("t1")).await.status(), 200);
        assert_eq!(send(&layer, tenant("t1")).await.status(), 429);
        assert_eq!(send(&layer, tenant("t2")).await.status(), 200);

        #[derive(Debug)]
        struct Mine {
            tenant: String,
        }
        let layer = RateLimitByClient::builder(hourly(1))
            .key_from_claims(|c: &Mine| Some(c.tenant.as_str()))
            .anonymous_unlimited()
            .build();
        let mine = |t: &str| {
            let mut req = Request::new(());
            req.extensions_mut().insert(Claims(Arc::new(Mine {
                tenant: t.to_owned(),
            })));
            req
        };
        assert_eq!(send(&layer, mine("x")).await.status(), 200);
        assert_eq!(send(&layer, mine("x")).await.status(), 429);
        assert_eq!(send(&layer, mine("y")).await.status(), 200);
        // AccessClaims are not `Mine`: anonymous, and anonymous is unlimited here.
        assert_eq!(send(&layer, request(client("x"))).await.status(), 200);
    }

    #[tokio::test]
    async fn requests_pass_again_once_the_bucket_refills() {
        let quota = Quota::with_period(Duration::from_millis(200))
            .expect("non-zero")
            .allow_burst(n(2));
        let layer = RateLimitByClient::new(quota);
        assert_eq!(statuses(&layer, 3, || client("a")).await, [200, 200, 429]);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(statuses(&layer, 2, || client("a")).await, [200, 429]);
    }

    #[tokio::test]
    async fn idle_buckets_are_swept_out_of_the_keyed_store() {
        let quota = Quota::with_period(Duration::from_millis(20)).expect("non-zero");
        let layer = RateLimitByClient::builder(quota)
            .retain_recent_every(8)
            .build();
        for i in 0..7 {
            send(&layer, request(client(&format!("c{i}")))).await;
        }
        assert_eq!(layer.tracked_clients(), 7);
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&layer, request(client("last"))).await;
        // The sweep ran before the eighth request's check; only that client is left.
        assert_eq!(layer.tracked_clients(), 1);
    }

    #[tokio::test]
    async fn poll_ready_is_forwarded_to_the_inner_service() {
        let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, Response<()>, _>(
            RateLimitByClient::new(hourly(1)),
        );
        handle.allow(0);
        assert!(svc.poll_ready().is_pending());
        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
    }

    #[test]
    fn over_quota_is_logged_with_reason_and_client_id_but_no_token() {
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let token = crate::mint::token("ec-1", json!({"client_id": "billing"}));
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let layer = RateLimitByClient::new(hourly(1));
                let with_token = || {
                    let mut req = request(client("billing"));
                    req.headers_mut().insert(
                        "authorization",
                        HeaderValue::try_from(format!("Bearer {token}")).expect("header"),
                    );
                    req
                };
                assert_eq!(send(&layer, with_token()).await.status(), 200);
                assert_eq!(send(&layer, with_token()).await.status(), 429);
                assert_eq!(statuses(&layer, 2, || None).await, [200, 429]);
            });
        });
        let logs = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].contains("reason=\"rate_limited\""), "{logs}");
        assert!(lines[0].contains("client_id=\"billing\""), "{logs}");
        assert!(lines[0].contains("retry_after_secs="), "{logs}");
        assert!(lines[1].contains("reason=\"rate_limited\""), "{logs}");
        assert!(!lines[1].contains("client_id"), "anonymous: {logs}");
        let signature = token.rsplit('.').next().expect("jws");
        assert!(
            !logs.contains(signature) && !logs.contains("Bearer"),
            "{logs}"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn shared_keys_keep_clients_subjects_and_custom_keys_apart() {
        let key = |claims| ClientId.shared_key(&request(claims));
        assert_eq!(key(client("billing")).as_deref(), Some("client:billing"));
        let by_azp = Some(self::claims(json!({"azp": "web", "sub": "billing"})));
        assert_eq!(key(by_azp).as_deref(), Some("client:web"));
        let by_sub = Some(self::claims(json!({"sub": "billing"})));
        assert_eq!(key(by_sub).as_deref(), Some("sub:billing"));
        assert_eq!(key(Some(self::claims(json!({})))), None);
        assert_eq!(key(None), None);
        let custom = |_: &Request<()>| Some("billing");
        assert_eq!(
            custom.shared_key(&request(None)).as_deref(),
            Some("key:billing")
        );
    }

    #[test]
    fn debug_shows_quotas_and_clients() {
        let layer = RateLimitByClient::builder(hourly(3))
            .client("billing", hourly(7))
            .build();
        let shown = format!("{layer:?}");
        assert!(
            shown.contains("billing") && shown.contains("ClientId"),
            "{shown}"
        );
    }
}
