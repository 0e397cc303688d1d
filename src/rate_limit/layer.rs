//! [`RateLimitByClient`] and its builder.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;

use super::key::{ClaimsKey, ClientOrSubject};
use super::memory::{Buckets, Issuers};
use super::quota::Quota;
use super::service::{RateLimitByClientService, State};
use crate::response::StandardRejection;

/// How many requests to callers without a named quota pass between two sweeps of the keyed
/// store ([`RateLimitByClientBuilder::retain_recent_every`]).
pub const DEFAULT_RETAIN_RECENT_EVERY: u64 = 4096;

/// A [`Layer`] that limits each caller's request rate, answering `429 Too Many Requests`
/// with `Retry-After` (or `grpc-status: 8`) over quota. See the [module docs](super).
///
/// Place it inside [`RequireScope`](crate::RequireScope), so that it sees the verified token.
/// Cloning the layer or its service is one reference-count increment; all clones share the
/// same buckets.
pub struct RateLimitByClient<K = ClientOrSubject, R = StandardRejection> {
    state: Arc<State<K, R>>,
}

impl RateLimitByClient {
    /// Starts a rate limit with `default` as every caller's quota, keyed by
    /// [`ClientOrSubject`].
    pub fn builder(default: Quota) -> RateLimitByClientBuilder {
        RateLimitByClientBuilder {
            key: ClientOrSubject,
            rejection: StandardRejection,
            settings: Settings {
                default,
                clients: HashMap::new(),
                anonymous: Some(default),
                retain_every: DEFAULT_RETAIN_RECENT_EVERY,
                #[cfg(feature = "redis")]
                redis: None,
            },
        }
    }

    /// The same quota for every caller, keyed by [`ClientOrSubject`]; anonymous requests
    /// share one bucket with that quota.
    pub fn new(default: Quota) -> Self {
        Self::builder(default).build()
    }
}

impl<K, R> RateLimitByClient<K, R> {
    /// The number of buckets currently held for callers without a named quota.
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.state.buckets.tracked()
    }
}

/// Configures a [`RateLimitByClient`]; from [`RateLimitByClient::builder`].
#[must_use]
pub struct RateLimitByClientBuilder<K = ClientOrSubject, R = StandardRejection> {
    key: K,
    rejection: R,
    /// Everything the key and the rejection types do not change.
    settings: Settings,
}

/// The settings of a rate limit besides its key and its rejection.
struct Settings {
    default: Quota,
    clients: HashMap<(Issuers, String), Quota>,
    anonymous: Option<Quota>,
    retain_every: u64,
    #[cfg(feature = "redis")]
    redis: Option<super::RedisQuotas>,
}

impl<K, R> RateLimitByClientBuilder<K, R> {
    /// Keeps the buckets in Redis, shared by every replica that points at it (feature
    /// `redis`): the same quotas and the same answers, but each client gets its quota once
    /// across all replicas instead of once per replica. The in-memory buckets then only
    /// decide under [`Fallback::Local`](super::Fallback::Local), while Redis cannot answer.
    /// See [`RedisQuotas`](super::RedisQuotas).
    #[cfg(feature = "redis")]
    pub fn redis(mut self, quotas: super::RedisQuotas) -> Self {
        self.settings.redis = Some(quotas);
        self
    }

    /// Gives the client `client_id` of **every** trusted issuer its own quota instead of the
    /// default one. A client id is only unique within its issuer (RFC 6749 §2.2), so each
    /// issuer's `client_id` gets a bucket of its own with this quota: client `app` of one
    /// issuer never drains client `app` of another. Only tokens whose `client_id` is this id
    /// draw from it (never one whose `sub` merely equals it). Setting a client twice keeps
    /// the last quota; [`issuer_client`](Self::issuer_client) wins over it for its issuer.
    pub fn client(mut self, client_id: impl Into<String>, quota: Quota) -> Self {
        self.settings
            .clients
            .insert((Issuers::Any, client_id.into()), quota);
        self
    }

    /// Gives the client `client_id` of the issuer `issuer` (the token's `iss`, exactly) its
    /// own quota. Tokens of other issuers with the same `client_id` do not get it: they draw
    /// from [`client`](Self::client)'s quota if one is set for that id, else the default.
    pub fn issuer_client(
        mut self,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        quota: Quota,
    ) -> Self {
        self.settings
            .clients
            .insert((Issuers::One(issuer.into()), client_id.into()), quota);
        self
    }

    /// Limits requests without a key (no verified token) under one shared bucket with
    /// `quota`. The default is one shared bucket with the default quota.
    pub fn anonymous(mut self, quota: Quota) -> Self {
        self.settings.anonymous = Some(quota);
        self
    }

    /// Lets requests without a key (no verified token) through without any limit.
    pub fn anonymous_unlimited(mut self) -> Self {
        self.settings.anonymous = None;
        self
    }

    /// Sweeps fully replenished buckets out of the keyed store once every `calls` requests
    /// that use it (callers without a named quota). `0` counts as 1. Default:
    /// [`DEFAULT_RETAIN_RECENT_EVERY`].
    pub fn retain_recent_every(mut self, calls: u64) -> Self {
        self.settings.retain_every = calls.max(1);
        self
    }

    /// Keys requests with a closure over the request, for example a header. `None` means
    /// anonymous. A key over unauthenticated input (an IP address, a header) is chosen by
    /// the caller: the keyed store grows with it until swept.
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
    pub fn key<F>(self, f: F) -> RateLimitByClientBuilder<F, R> {
        RateLimitByClientBuilder {
            key: f,
            rejection: self.rejection,
            settings: self.settings,
        }
    }

    /// Keys requests with a function of their typed claims ([`VerifiedToken::claims`](crate::VerifiedToken::claims)),
    /// for a claim of your own (a tenant). Requests without claims of type `T`, or for which
    /// `f` returns `None`,
    /// are anonymous.
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
    pub fn key_from_claims<T, F>(self, f: F) -> RateLimitByClientBuilder<ClaimsKey<T, F>, R>
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> Option<&str>,
    {
        self.key(ClaimsKey {
            f,
            claims: PhantomData,
        })
    }

    /// Answers refusals (over quota, or the quota store unavailable) with `rejection`
    /// instead of the standard answers: the same [`Rejection`](crate::response::Rejection)
    /// a [`Guard`](crate::Guard) takes, given a [`Refusal`](crate::response::Refusal) of
    /// kind [`RateLimited`](crate::ErrorKind::RateLimited) (with its
    /// [`retry_after`](crate::response::Refusal::retry_after)) or
    /// [`QuotaUnavailable`](crate::ErrorKind::QuotaUnavailable). The response still gets the
    /// [`RateLimited`](super::RateLimited) or [`QuotaUnavailable`](super::QuotaUnavailable)
    /// marker and the [`AuthError`](crate::AuthError) in its extensions.
    pub fn rejection<R2>(self, rejection: R2) -> RateLimitByClientBuilder<K, R2> {
        RateLimitByClientBuilder {
            key: self.key,
            rejection,
            settings: self.settings,
        }
    }

    /// Builds the layer and its buckets.
    pub fn build(self) -> RateLimitByClient<K, R> {
        RateLimitByClient {
            state: Arc::new(State {
                key: self.key,
                rejection: self.rejection,
                buckets: Buckets::new(
                    self.settings.default,
                    self.settings.clients,
                    self.settings.anonymous,
                    self.settings.retain_every,
                ),
                #[cfg(feature = "redis")]
                redis: self.settings.redis,
            }),
        }
    }
}

impl<K: fmt::Debug, R> fmt::Debug for RateLimitByClientBuilder<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitByClientBuilder")
            .field("key", &self.key)
            .field("default", &self.settings.default)
            .field("clients", &self.settings.clients)
            .field("anonymous", &self.settings.anonymous)
            .field("retain_recent_every", &self.settings.retain_every)
            .finish()
    }
}

impl<K, R> Clone for RateLimitByClient<K, R> {
    fn clone(&self) -> Self {
        RateLimitByClient {
            state: Arc::clone(&self.state),
        }
    }
}

impl<K: fmt::Debug, R> fmt::Debug for RateLimitByClient<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RateLimitByClient");
        d.field("key", &self.state.key)
            .field("buckets", &self.state.buckets);
        #[cfg(feature = "redis")]
        d.field("redis", &self.state.redis);
        d.finish()
    }
}

impl<S, K, R> Layer<S> for RateLimitByClient<K, R> {
    type Service = RateLimitByClientService<S, K, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitByClientService::new(inner, Arc::clone(&self.state))
    }
}
