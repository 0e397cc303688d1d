//! Token introspection (RFC 7662, feature `remote`): opaque access tokens, verified by asking
//! the issuer.
//!
//!
//! Build an [`Introspection`] and give it to
//! [`ValidatorBuilder::introspection`](crate::ValidatorBuilder::introspection): opaque tokens
//! (and, in mixed mode, JWTs of issuers without keys here) are then introspected, the answer
//! cached under the SHA-256 digest of the token for at most its ttl, one request per token
//! in flight, and mapped into the same [`VerifiedToken`](crate::VerifiedToken) and claims
//! as a JWT.
//
// Inside: `answer` reads and checks a response into an `Answer`; `cache` keeps answers;
// `flight` makes the request, one per token at a time, bounded in number; `route` decides
// which tokens are verified locally and which are introspected.

mod answer;
pub(crate) mod cache;
mod flight;
mod route;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::answer::Answer;
use self::cache::AnswerCache;
use self::flight::{Config, Endpoint, Flights};
pub(crate) use self::route::is_local_jwt;
use crate::cache::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES};
use crate::checks::Checks;
use crate::client_auth::{ClientSecret, PrivateKeyJwt};
use crate::error::ConfigError;
use bytes::Bytes;
use http_body_util::Full;

use crate::fetch::HttpService;
use crate::remote::http::{Caller, HyperClient, SharedTransport};

/// How long an active answer is cached by default (never past the token's `exp`).
pub(crate) const DEFAULT_INTROSPECTION_TTL: Duration = Duration::from_secs(60);
/// How long an inactive answer is cached by default.
pub(crate) const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Token introspection (RFC 7662, feature `remote`): verifies opaque access tokens by asking
/// the issuer's introspection endpoint.
///
/// Many authorization servers issue opaque tokens, or let operators choose them so that a
/// token can be revoked at once. A resource server learns what such a token grants by
/// `POST`ing it to the issuer's introspection endpoint, authenticated as a client; the
/// answer says whether it is `active` and, if so, its `scope`, `client_id`, `sub`, `exp`,
/// `aud`, `iss` ... which then count exactly as a JWT's claims would. Cheap to clone (one
/// `Arc`), `Send` and `Sync`.
///
/// # What is checked
///
/// - `active` must be the JSON `true`; `false` means 401 `invalid_token`. An answer that is
///   not an RFC 7662 response (no boolean `active`, not a JSON object, a repeated member
///   name) is an error of the endpoint: 503, never an acceptance.
/// - `iss`, when present, must be a trusted issuer (and this endpoint's issuer, when known
///   from [`issuer`](IntrospectionBuilder::issuer) or discovery); `aud`, when present, must
///   contain a configured audience; `exp`, `nbf`, `iat` are checked against the clock with
///   the leeway, as for JWTs. Dates must be integers. Every member but `active` is optional
///   (RFC 7662 §2.2): one the answer lacks is not checked, and not required by the claims
///   type either: an answer without `exp` counts as expiring at the end of its ttl, one
///   without `aud` as naming no audience (`"aud": []`), one without `iss` as the endpoint's
///   issuer's. Without `scope`, the token grants no scope (a route that requires one
///   answers 403 `insufficient_scope`).
/// - A `cnf` member binds the token to a DPoP key or a client certificate, as for JWTs.
///
/// # Caching, and how stale an answer may be
///
/// Answers are cached under the SHA-256 digest of the token (the token itself is never a
/// key, nor logged): an active answer for `min(exp - now, ttl)`
/// ([`ttl`](IntrospectionBuilder::ttl), 60 s by default), an inactive one for
/// [`negative_ttl`](IntrospectionBuilder::negative_ttl) (5 s). **A token revoked at the
/// issuer can therefore still be accepted for up to the ttl**; choose it as the longest
/// time a revoked token may still be used. Concurrent requests with the same uncached token
/// share one introspection request. The cache is bounded in entries and bytes
/// ([`cache`](IntrospectionBuilder::cache)), like the verified-token cache.
///
/// # When the endpoint cannot answer
///
/// Timeouts, a cap on the answer's size, at most
/// [`max_concurrent`](IntrospectionBuilder::max_concurrent) requests in flight and
/// [`max_pending`](IntrospectionBuilder::max_pending) tokens waiting: beyond that, or when
/// the endpoint is unreachable, slow, refuses the client's credentials or answers nonsense,
/// requests get 503 (never 401), and the first failure of an outage is logged (target
/// `bearer_guard::introspection`) with a stable `reason` and the URL, never the token, the
/// secret or the answer.
///
/// ```
/// use std::time::Duration;
/// use bearer_guard::introspection::Introspection;
///
/// let introspection = Introspection::builder(
///     "https://issuer.example/oauth/introspect",
///     "my-api",
///     "s3cr3t-from-the-environment",
/// )
/// .issuer("https://issuer.example")
/// .ttl(Duration::from_secs(30))
/// .build()?;
/// assert!(!format!("{introspection:?}").contains("s3cr3t"));
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Introspection {
    shared: Arc<Shared>,
}

/// What one binding of an introspection holds: the configuration (shared by every binding),
/// the rules answers are checked by, the answers, the requests in flight.
pub(crate) struct Shared {
    config: Arc<Config>,
    rules: Box<[Checks]>,
    cache: AnswerCache,
    flights: Flights,
}

impl Introspection {
    /// Introspects at `endpoint`, authenticating as `client_id` with `secret` by
    /// `client_secret_basic`.
    pub fn builder(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<ClientSecret>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder::new(Target::Endpoint(endpoint.into()), client_id, secret)
    }

    /// Introspects at the `introspection_endpoint` of the issuer's metadata (RFC 8414
    /// `/.well-known/oauth-authorization-server`, falling back to OpenID Connect discovery),
    /// read on first use or by [`ready`](Self::ready). The document's `issuer` must equal
    /// `issuer_url` exactly (or [`issuer`](IntrospectionBuilder::issuer) when given); an
    /// `https` issuer may not name a plain-`http` endpoint.
    pub fn discover(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<ClientSecret>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder::new(Target::Discover(issuer_url.into()), client_id, secret)
    }

    /// Introspects at `endpoint`, authenticating as `client_id` by `private_key_jwt`
    /// (RFC 7523 §2.2): each request carries a fresh assertion signed by `key`, whose `aud`
    /// is the issuer identifier, so [`issuer`](IntrospectionBuilder::issuer) is required.
    ///
    /// ```
    /// use bearer_guard::client_auth::PrivateKeyJwt;
    /// use bearer_guard::introspection::Introspection;
    ///
    /// let key = PrivateKeyJwt::from_jwk(
    ///     r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    ///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
    /// )?;
    /// let introspection =
    ///     Introspection::builder_with_key("https://issuer.example/oauth/introspect", "my-api", key)
    ///         .issuer("https://issuer.example")
    ///         .build()?;
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    pub fn builder_with_key(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        key: PrivateKeyJwt,
    ) -> IntrospectionBuilder {
        let mut builder =
            IntrospectionBuilder::new(Target::Endpoint(endpoint.into()), client_id, "");
        builder.private_key = Some(key);
        builder
    }

    /// As [`discover`](Self::discover), authenticating by `private_key_jwt` as
    /// [`builder_with_key`](Self::builder_with_key) does; the assertions' `aud` is the
    /// issuer the metadata must name.
    pub fn discover_with_key(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        key: PrivateKeyJwt,
    ) -> IntrospectionBuilder {
        let mut builder =
            IntrospectionBuilder::new(Target::Discover(issuer_url.into()), client_id, "");
        builder.private_key = Some(key);
        builder
    }

    /// Reads the issuer's metadata now (when built by [`discover`](Self::discover) and not
    /// read yet), so that a service that starts is a service that can introspect. Needs a
    /// Tokio runtime.
    ///
    /// # Errors
    /// [`ConfigError::Discovery`] naming the URL and what failed (connect, status, issuer
    /// mismatch, no `introspection_endpoint` ...).
    pub async fn ready(&self) -> Result<(), ConfigError> {
        self.shared
            .config
            .endpoint()
            .await
            .map(drop)
            .map_err(|e| ConfigError::Discovery(e.to_string()))
    }

    /// The issuer whose tokens this endpoint answers for, when known (configured, or the
    /// URL given to [`discover`](Self::discover)).
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.shared.config.issuer()
    }

    /// How full the answer cache is: `(entries, estimated bytes)`.
    #[must_use]
    pub fn cache_usage(&self) -> (usize, u64) {
        (self.shared.cache.len(), self.shared.cache.weight())
    }

    /// This introspection checking its answers by `rules` (the validator's trusted issuers,
    /// their audiences, leeway and lifetime cap), with a cache and flights of its own: an
    /// answer is cached as the rules judged it. The configuration, the HTTP client and the
    /// bound on concurrent requests stay shared.
    pub(crate) fn bind(&self, rules: Box<[Checks]>) -> Introspection {
        let config = Arc::clone(&self.shared.config);
        Introspection {
            shared: Arc::new(Shared::new(config, rules)),
        }
    }

    /// The cached answer for `token` at `now` (Unix seconds), if any: no allocation, no
    /// waiting. `Unavailable` is never cached.
    pub(crate) fn cached(&self, token: &str, now: i64) -> Option<Answer> {
        self.shared.cache.get(&cache::digest(token), now)
    }

    /// Asks the endpoint about `token`, unless an answer is cached or a request for the same
    /// token is in flight (then its answer is shared). The request runs in a task of its own:
    /// dropping the future does not cancel it. Must be called within a Tokio runtime (else
    /// [`Unavailable::NoRuntime`]).
    pub(crate) fn introspect(
        &self,
        token: &str,
    ) -> impl Future<Output = Answer> + Send + 'static + use<> {
        flight::join(&self.shared, token)
    }
}

impl Shared {
    fn new(config: Arc<Config>, rules: Box<[Checks]>) -> Self {
        Shared {
            cache: AnswerCache::new(config.cache_entries, config.cache_bytes),
            config,
            rules,
            flights: Flights::default(),
        }
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("config", &self.shared.config)
            .field("issuers", &self.shared.rules.len())
            .field("cached", &self.shared.cache.len())
            .finish_non_exhaustive()
    }
}

/// Where the endpoint is, as configured.
#[derive(Clone)]
enum Target {
    Endpoint(String),
    Discover(String),
}

impl fmt::Debug for Target {
    /// Without userinfo: a URL with credentials is refused by `build`, but may be printed
    /// before.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, url) = match self {
            Target::Endpoint(url) => ("Endpoint", url),
            Target::Discover(url) => ("Discover", url),
        };
        f.debug_tuple(kind).field(&crate::url::redact(url)).finish()
    }
}

/// Builds an [`Introspection`]; from [`Introspection::builder`] or
/// [`Introspection::discover`].
#[must_use]
pub struct IntrospectionBuilder {
    target: Target,
    issuer: Option<String>,
    client_id: String,
    secret: ClientSecret,
    private_key: Option<PrivateKeyJwt>,
    ttl: Duration,
    negative_ttl: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    max_body: usize,
    max_concurrent: usize,
    max_pending: usize,
    cache: (usize, u64),
    discovery_retry: Duration,
    client: Option<SharedTransport>,
    tls: Option<rustls::ClientConfig>,
    allow_http: bool,
}

impl IntrospectionBuilder {
    fn new(target: Target, client_id: impl Into<String>, secret: impl Into<ClientSecret>) -> Self {
        IntrospectionBuilder {
            target,
            issuer: None,
            client_id: client_id.into(),
            secret: secret.into(),
            private_key: None,
            ttl: DEFAULT_INTROSPECTION_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body: 64 * 1024,
            max_concurrent: 16,
            max_pending: 1024,
            cache: (DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES),
            discovery_retry: Duration::from_secs(5),
            client: None,
            tls: None,
            allow_http: false,
        }
    }

    /// The issuer whose endpoint this is: answers without `iss` are taken as its tokens,
    /// and answers naming another `iss` are refused. With [`Introspection::discover`], the
    /// `issuer` the metadata must name (the issuer URL by default).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The longest an active answer is cached, and so the longest a token revoked at the
    /// issuer may still be accepted. Never past the token's `exp`. Default 60 s; zero
    /// caches no active answer (one request per request).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an inactive answer is cached: a token presented again and again costs one
    /// request per this time. Default 5 s.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// With [`Introspection::discover`]: after a failed discovery, how long requests that
    /// need the endpoint are answered 503 at once, without asking again. A down or
    /// misconfigured issuer is asked at most once per this time, however many opaque tokens
    /// arrive. Default 5 s.
    pub fn discovery_retry(mut self, after: Duration) -> Self {
        self.discovery_retry = after;
        self
    }

    /// Connect timeout of the default HTTP client, and the total time one introspection may
    /// take (waiting for a free slot included). Default 2 s and 5 s.
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// Largest answer read, in bytes (by `Content-Length`, then while reading). Default
    /// 64 KiB.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Most introspection requests in flight at once (at least 1). Default 16.
    pub fn max_concurrent(mut self, requests: usize) -> Self {
        self.max_concurrent = requests.max(1);
        self
    }

    /// Most distinct tokens waiting for an answer at once, in flight included (at least
    /// 1); the requests of further tokens get 503 at once. Default 1024.
    pub fn max_pending(mut self, tokens: usize) -> Self {
        self.max_pending = tokens.max(1);
        self
    }

    /// Bounds of the answer cache: entries and estimated bytes. Default 4096 and 8 MiB.
    pub fn cache(mut self, entries: usize, bytes: u64) -> Self {
        self.cache = (entries, bytes);
        self
    }

    /// Uses this HTTP client for introspection (and discovery) requests: any
    /// [`HttpService`] with a `Full<Bytes>` body (a proxy-aware client, a test double).
    /// Timeouts, the size cap and the no-redirect rule still apply around it.
    pub fn http_client<S: HttpService<Full<Bytes>>>(mut self, client: S) -> Self {
        self.client = Some(Caller::shared(client));
        self
    }

    /// TLS settings for the default client: a private CA, a client certificate. Build it with
    /// an explicit crypto provider (`rustls::ClientConfig::builder_with_provider`).
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Allows `http://` URLs to hosts that are not loopback, and a plain-`http` endpoint in
    /// an `https` issuer's metadata. The client secret and the tokens then cross the network
    /// in clear text, and a forged answer means a forged token is accepted: for closed
    /// networks only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the configuration. Fetches nothing.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`], [`ConfigError::CredentialsInUrl`] or
    /// [`ConfigError::InsecureUrl`] for the endpoint or issuer URL (`https`, or `http` to a
    /// loopback host, unless [`allow_insecure_http`](Self::allow_insecure_http)).
    /// [`ConfigError::MissingIssuer`] for [`Introspection::builder_with_key`] without
    /// [`issuer`](Self::issuer): the assertions need it.
    pub fn build(self) -> Result<Introspection, ConfigError> {
        let (endpoint, issuer) = match self.target {
            Target::Endpoint(url) => (
                Endpoint::Fixed(crate::url::checked_uri(&url, self.allow_http)?),
                self.issuer,
            ),
            Target::Discover(url) => {
                crate::url::checked_uri(&url, self.allow_http)?;
                let issuer = self.issuer.unwrap_or_else(|| url.clone());
                (Endpoint::discover(url, self.discovery_retry), Some(issuer))
            }
        };
        let private_key = match (self.private_key, &issuer) {
            (None, _) => None,
            (Some(key), Some(issuer)) => Some((key, issuer.as_str().into())),
            (Some(_), None) => return Err(ConfigError::MissingIssuer),
        };
        let client = self.client.unwrap_or_else(|| {
            Arc::new(HyperClient::new(self.tls, self.connect_timeout)) as SharedTransport
        });
        let config = Config::new(flight::Settings {
            endpoint,
            issuer: issuer.map(Into::into),
            client_id: self.client_id.into(),
            secret: self.secret,
            private_key,
            client,
            timeout: self.timeout,
            max_body: self.max_body,
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            max_concurrent: self.max_concurrent,
            max_pending: self.max_pending,
            cache: self.cache,
            allow_http: self.allow_http,
        });
        Ok(Introspection {
            shared: Arc::new(Shared::new(Arc::new(config), Box::new([]))),
        })
    }
}

impl fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("target", &self.target)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("private_key", &self.private_key)
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("timeout", &self.timeout)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}
