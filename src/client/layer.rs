//! [`AddAccessTokenLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::credentials::ClientCredentials;
use super::origin::{Origin, Origins};
use super::replay::CloneBody;
use super::service::AddAccessToken;
use super::shared::{Settings, Shared};
use crate::dpop::DpopKey;
use crate::error::ConfigError;

/// Default time before expiry at which a token is refreshed.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Default limit of a token request, from sending it to reading the whole response.
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of (scope, resource) pairs whose tokens are cached.
pub const DEFAULT_MAX_CACHED_TOKENS: usize = 32;
/// Default shortest lifetime a token is kept for, whatever its `expires_in` says.
pub const DEFAULT_MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

const DEFAULT_SETTINGS: Settings = Settings {
    refresh_ahead: DEFAULT_REFRESH_AHEAD,
    token_timeout: DEFAULT_TOKEN_TIMEOUT,
    max_cached_tokens: DEFAULT_MAX_CACHED_TOKENS,
    min_token_lifetime: DEFAULT_MIN_TOKEN_LIFETIME,
};

/// A [`Layer`] that sends requests to the API its tokens are for with
/// `Authorization: Bearer <token>` (or, with a [DPoP key](AddAccessTokenLayerBuilder::dpop),
/// `Authorization: DPoP <token>` and a fresh proof), obtaining the token by the
/// client-credentials grant and caching it. Requests to any other origin go on without a
/// token.
///
/// See the [module documentation](super) for the whole behaviour. Build it with
/// [`builder`](Self::builder) (or [`new`](Self::new) for the defaults). Cloning the layer or
/// its services is cheap, and all of them share one token cache.
///
/// `R` says which requests can be sent again after a 401: [`CloneBody`] (the default)
/// replays every request, cloning it before it goes out, and needs `ReqBody: Clone`; see
/// [`replay`](AddAccessTokenLayerBuilder::replay) for the others.
pub struct AddAccessTokenLayer<R = CloneBody> {
    shared: Arc<Shared>,
    replay: R,
}

impl AddAccessTokenLayer {
    /// A layer obtaining tokens with `credentials`, with the defaults: tokens go to the
    /// origin of the credentials' [`resource`](super::ClientCredentialsBuilder::resource)
    /// only, are refreshed 60 s before expiry, token requests time out after 10 s, and
    /// requests are replayed by [`CloneBody`].
    pub fn new(credentials: ClientCredentials) -> Self {
        let origins = resource_origin(&credentials, false);
        AddAccessTokenLayer {
            shared: Arc::new(Shared::new(credentials, DEFAULT_SETTINGS, origins, None)),
            replay: CloneBody,
        }
    }

    /// Starts the configuration of a layer obtaining tokens with `credentials`.
    pub fn builder(credentials: ClientCredentials) -> AddAccessTokenLayerBuilder {
        AddAccessTokenLayerBuilder {
            credentials,
            settings: DEFAULT_SETTINGS,
            allowed: Vec::new(),
            allow_insecure_http: false,
            dpop: None,
            replay: CloneBody,
        }
    }
}

impl<R> AddAccessTokenLayer<R> {
    /// The same layer, sharing the same token cache, with another replay policy (see
    /// [`AddAccessTokenLayerBuilder::replay`]).
    #[must_use]
    pub fn replay<P>(self, policy: P) -> AddAccessTokenLayer<P> {
        AddAccessTokenLayer {
            shared: self.shared,
            replay: policy,
        }
    }

    /// The credentials tokens are obtained with.
    #[must_use]
    pub fn credentials(&self) -> &ClientCredentials {
        &self.shared.credentials
    }

    /// The DPoP key tokens are bound to, if the layer has one (see
    /// [`AddAccessTokenLayerBuilder::dpop`]).
    #[must_use]
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.shared.dpop.as_ref().map(|d| d.key())
    }
}

impl<R: Clone> Clone for AddAccessTokenLayer<R> {
    fn clone(&self) -> Self {
        AddAccessTokenLayer {
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<R> fmt::Debug for AddAccessTokenLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<S, R: Clone> Layer<S> for AddAccessTokenLayer<R> {
    type Service = AddAccessToken<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AddAccessToken::new(inner, Arc::clone(&self.shared), self.replay.clone())
    }
}

/// Configures an [`AddAccessTokenLayer`]; from [`AddAccessTokenLayer::builder`]. Every
/// setting is fixed by [`build`](Self::build), before the layer (and its one token cache)
/// exists.
///
/// ```
/// use std::time::Duration;
///
/// use bearer_guard::client::{AddAccessTokenLayer, ClientCredentials};
///
/// let credentials = ClientCredentials::builder(
///     "https://issuer.example/oauth/token",
///     "billing-service",
///     "s3cr3t-from-the-environment",
/// )
/// .resource("https://api.example")
/// .build()?;
/// let layer = AddAccessTokenLayer::builder(credentials)
///     // The same API behind a second host name.
///     .allow_origin("https://api-eu.example")
///     .refresh_ahead(Duration::from_secs(120))
///     .token_timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[must_use]
pub struct AddAccessTokenLayerBuilder<R = CloneBody> {
    credentials: ClientCredentials,
    settings: Settings,
    allowed: Vec<String>,
    allow_insecure_http: bool,
    dpop: Option<DpopKey>,
    replay: R,
}

impl<R> AddAccessTokenLayerBuilder<R> {
    /// How long before a token expires a new one is fetched ([`DEFAULT_REFRESH_AHEAD`]).
    /// The old token is still sent meanwhile; the refresh runs in the background. A token
    /// is never refreshed in the first half of its life, whatever this setting.
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.settings.refresh_ahead = ahead;
        self
    }

    /// The limit of one token request, connection and response body included
    /// ([`DEFAULT_TOKEN_TIMEOUT`]).
    pub fn token_timeout(mut self, timeout: Duration) -> Self {
        self.settings.token_timeout = timeout;
        self
    }

    /// How many (scope, resource) pairs keep a cached token
    /// ([`DEFAULT_MAX_CACHED_TOKENS`]); more only matter with per-request
    /// [`TokenTarget`](super::TokenTarget)s.
    pub fn max_cached_tokens(mut self, max: usize) -> Self {
        self.settings.max_cached_tokens = max.max(1);
        self
    }

    /// The shortest lifetime a token is kept for ([`DEFAULT_MIN_TOKEN_LIFETIME`]): a token
    /// endpoint answering `expires_in: 0`, or a few seconds, would otherwise cost a token
    /// request per call. A shorter `expires_in` is raised to it, with a warning in the log;
    /// should the upstream refuse the token before, the 401 drops it. Lower it only for an
    /// issuer whose tokens really live that briefly.
    pub fn min_token_lifetime(mut self, floor: Duration) -> Self {
        self.settings.min_token_lifetime = floor;
        self
    }

    /// Also sends tokens to requests for `origin` (`https://host[:port]`, no path). By
    /// default they only go to the origin of the credentials' `resource`; add the origins
    /// that serve the same API under other names (a regional host, a loopback port in
    /// tests). The token of a [`TokenTarget`](super::TokenTarget) whose resource is an
    /// `http(s)` URL still goes to that resource's origin only.
    ///
    /// The origin follows the crate's URL rule: `https`, or plain `http` to a loopback host
    /// (see [`allow_insecure_http`](Self::allow_insecure_http)); [`build`](Self::build)
    /// refuses anything else.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed.push(origin.into());
        self
    }

    /// Sends tokens over plain `http` to hosts that are not loopback (the resource's origin
    /// and [`allow_origin`](Self::allow_origin)s): anyone on the path can then read and
    /// replay them. For closed networks whose transport is protected otherwise (a service
    /// mesh's mTLS) only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Binds the tokens to `key` with DPoP (RFC 9449): token requests carry a proof of it,
    /// and a token the endpoint issues as `token_type: DPoP` goes out as
    /// `Authorization: DPoP <token>` with a fresh proof for each request (its method, its URI
    /// without query and fragment, the token's hash). A stolen token is then useless
    /// without the key. A token endpoint that issues `Bearer` tokens all the same is used
    /// as such (with a warning in the log).
    ///
    /// Nonces (RFC 9449 §8, §9): a token endpoint's `400 use_dpop_nonce`, and an API's
    /// `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"`, are retried once with the
    /// `DPoP-Nonce` they sent (the API's only for a request that can be
    /// [replayed](Self::replay)); the latest nonce of each origin goes into the next proofs.
    ///
    /// Generate the key at start ([`DpopKey::generate`]: ES256), or load one
    /// ([`DpopKey::from_pem`]) to keep tokens valid across restarts. Proofs are marked
    /// sensitive and never logged.
    ///
    /// ```
    /// use bearer_guard::client::{AddAccessTokenLayer, ClientCredentials};
    /// use bearer_guard::dpop::DpopKey;
    /// # let credentials = ClientCredentials::builder("https://issuer.example/token", "id", "secret")
    /// #     .resource("https://api.example")
    /// #     .build()?;
    /// let layer = AddAccessTokenLayer::builder(credentials)
    ///     .dpop(DpopKey::generate()?)
    ///     .build()?;
    /// assert_eq!(layer.dpop_key().map(|k| k.thumbprint().len()), Some(43));
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Which requests are sent again, once, with a new token after the upstream answered
    /// 401:
    ///
    /// - [`CloneBody`] (the default): all; the request is cloned before it is sent, so
    ///   `ReqBody: Clone` (`Full<Bytes>`, `String` ...).
    /// - [`NoReplay`](super::NoReplay): none, for any body type (streams); the 401 still
    ///   drops the token, so the next request gets a new one.
    /// - a closure `Fn(&Request<B>) -> Option<Request<B>>`: a copy of the request, or
    ///   `None` for one that cannot be replayed (say, a streaming body).
    ///
    /// ```
    /// use bearer_guard::client::{AddAccessTokenLayer, ClientCredentials};
    /// use bytes::Bytes;
    /// use http::{Method, Request};
    /// use http_body_util::Full;
    /// # let credentials = ClientCredentials::builder("https://issuer.example/token", "id", "secret")
    /// #     .resource("https://api.example")
    /// #     .build()?;
    ///
    /// // Replay only GETs.
    /// let layer = AddAccessTokenLayer::builder(credentials)
    ///     .replay(|req: &Request<Full<Bytes>>| (req.method() == Method::GET).then(|| req.clone()))
    ///     .build()?;
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    pub fn replay<P>(self, policy: P) -> AddAccessTokenLayerBuilder<P> {
        AddAccessTokenLayerBuilder {
            credentials: self.credentials,
            settings: self.settings,
            allowed: self.allowed,
            allow_insecure_http: self.allow_insecure_http,
            dpop: self.dpop,
            replay: policy,
        }
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// - [`ConfigError::InvalidUrl`]: an [`allow_origin`](Self::allow_origin) is not an
    ///   `http(s)` origin (it has a path, a query, another scheme ...).
    /// - [`ConfigError::InsecureUrl`]: an allowed origin is plain `http` to a host that is not
    ///   loopback, without [`allow_insecure_http`](Self::allow_insecure_http).
    /// - [`ConfigError::CredentialsInUrl`]: an allowed origin carries userinfo.
    pub fn build(self) -> Result<AddAccessTokenLayer<R>, ConfigError> {
        let mut origins = resource_origin(&self.credentials, self.allow_insecure_http);
        for origin in &self.allowed {
            origins.allow(origin, self.allow_insecure_http)?;
        }
        let shared = Shared::new(self.credentials, self.settings, origins, self.dpop);
        Ok(AddAccessTokenLayer {
            shared: Arc::new(shared),
            replay: self.replay,
        })
    }
}

impl<R> fmt::Debug for AddAccessTokenLayerBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddAccessTokenLayerBuilder")
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .field("allowed", &self.allowed)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

/// The origin of the credentials' resource: `None` when there is no resource or it is not an
/// `http(s)` URL (a URN: only `allow_origin`s get tokens), an error when it is one that
/// breaks the crate's URL rule. Shared with the exchange layer's builder.
pub(super) fn checked_resource_origin(
    credentials: &ClientCredentials,
    allow_http: bool,
) -> Result<Option<Origin>, ConfigError> {
    let Some(resource) = credentials.resource.as_deref() else {
        return Ok(None);
    };
    if Origin::of_str(resource).is_none() {
        return Ok(None);
    }
    let uri = crate::url::checked_uri(resource, allow_http)?;
    Ok(Origin::of(&uri))
}

/// The origin of the credentials' resource, when it is an `http(s)` URL that follows the
/// crate's URL rule; one that breaks it is logged and gets no token.
fn resource_origin(credentials: &ClientCredentials, allow_http: bool) -> Origins {
    let mut origins = Origins::default();
    match checked_resource_origin(credentials, allow_http) {
        Ok(Some(origin)) => origins.insert(origin),
        Ok(None) => {}
        Err(err) => tracing::warn!(
            target: "bearer_guard::client",
            reason = "resource_origin_refused",
            error = %err,
            "no token goes to the resource's origin"
        ),
    }
    origins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins_of(
        resource: &str,
        builder: impl FnOnce(AddAccessTokenLayerBuilder) -> AddAccessTokenLayerBuilder,
    ) -> String {
        let credentials =
            ClientCredentials::builder("https://issuer.example/token", "svc", "secret")
                .resource(resource)
                .build()
                .expect("credentials");
        let layer = builder(AddAccessTokenLayer::builder(credentials))
            .build()
            .expect("layer");
        format!("{:?}", layer.shared.origins())
    }

    #[test]
    fn tokens_go_to_the_resource_origin_when_it_follows_the_url_rule() {
        assert_eq!(
            origins_of("https://api.example/v1?x", |b| b),
            r#"["https://api.example:443"]"#
        );
        assert_eq!(
            origins_of("http://127.0.0.1:8080/", |b| b),
            r#"["http://127.0.0.1:8080"]"#
        );
        // Plain http elsewhere: only with the opt-in.
        assert_eq!(origins_of("http://api.internal/", |b| b), "[]");
        assert_eq!(
            origins_of("http://api.internal/", |b| b.allow_insecure_http()),
            r#"["http://api.internal:80"]"#
        );
        // A resource that is no URL gives no origin; allowed ones add theirs.
        assert_eq!(origins_of("urn:example:api", |b| b), "[]");
        assert_eq!(
            origins_of("urn:example:api", |b| b.allow_origin("https://api.example")),
            r#"["https://api.example:443"]"#
        );
    }

    #[test]
    fn build_refuses_origins_that_break_the_url_rule() {
        let credentials =
            ClientCredentials::builder("https://issuer.example/token", "svc", "secret")
                .build()
                .expect("credentials");
        let build = |origin: &str| {
            AddAccessTokenLayer::builder(credentials.clone())
                .allow_origin(origin)
                .build()
                .err()
        };
        assert!(matches!(
            build("http://api.example"),
            Some(ConfigError::InsecureUrl(_))
        ));
        assert!(matches!(
            build("https://api.example/v1"),
            Some(ConfigError::InvalidUrl(_))
        ));
        assert!(matches!(
            build("https://u:p@api.example"),
            Some(ConfigError::CredentialsInUrl(_))
        ));
        assert!(build("https://api.example:8443").is_none());
    }
}
