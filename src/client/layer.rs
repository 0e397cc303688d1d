//! [`AddAccessTokenLayer`] and the [`Replay`] policies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tower_layer::Layer;

use super::cache::{TokenKey, Tokens};
use super::credentials::{ClientCredentials, TokenTarget};
use super::service::AddAccessToken;

/// Default time before expiry at which a token is refreshed.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Default limit of a token request, from sending it to reading the whole response.
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of (scope, resource) pairs whose tokens are cached.
pub const DEFAULT_MAX_CACHED_TOKENS: usize = 32;

/// A [`Layer`] that sends every outgoing request with `Authorization: Bearer <token>`,
/// obtaining the token by the client-credentials grant and caching it.
///
/// See the [module documentation](super) for the whole behaviour. Cloning the layer or its
/// services is cheap, and all of them share one token cache.
///
/// `R` says which requests can be sent again after a 401: [`CloneBody`] (the default)
/// replays every request, cloning it before it goes out, and needs `ReqBody: Clone`; see
/// [`replay`](Self::replay) for the others.
pub struct AddAccessTokenLayer<R = CloneBody> {
    shared: Arc<Shared>,
    replay: R,
}

/// The configuration and the token cache, shared by the layer and its services.
pub(crate) struct Shared {
    pub(crate) credentials: ClientCredentials,
    pub(crate) refresh_ahead: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_cached_tokens: usize,
    pub(crate) tokens: Tokens,
}

impl Shared {
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Arc<Shared> {
        let mut settings = Settings {
            refresh_ahead: self.refresh_ahead,
            timeout: self.timeout,
            max_cached_tokens: self.max_cached_tokens,
        };
        change(&mut settings);
        Arc::new(Shared {
            credentials: self.credentials.clone(),
            refresh_ahead: settings.refresh_ahead,
            timeout: settings.timeout,
            max_cached_tokens: settings.max_cached_tokens,
            tokens: Tokens::new(settings.max_cached_tokens),
        })
    }

    /// The cache key of a request: its [`TokenTarget`] over the credentials' defaults.
    pub(crate) fn key(&self, target: Option<TokenTarget>) -> TokenKey {
        let target = target.unwrap_or_default();
        TokenKey {
            scope: target.scope.or_else(|| self.credentials.scope.clone()),
            resource: target
                .resource
                .or_else(|| self.credentials.resource.clone()),
        }
    }
}

struct Settings {
    refresh_ahead: Duration,
    timeout: Duration,
    max_cached_tokens: usize,
}

impl AddAccessTokenLayer {
    /// A layer obtaining tokens with `credentials`, with the defaults: refresh 60 s before
    /// expiry, 10 s token request timeout, replay by [`CloneBody`].
    pub fn new(credentials: ClientCredentials) -> Self {
        AddAccessTokenLayer {
            shared: Arc::new(Shared {
                credentials,
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                timeout: DEFAULT_TOKEN_TIMEOUT,
                max_cached_tokens: DEFAULT_MAX_CACHED_TOKENS,
                tokens: Tokens::new(DEFAULT_MAX_CACHED_TOKENS),
            }),
            replay: CloneBody,
        }
    }
}

impl<R> AddAccessTokenLayer<R> {
    /// How long before a token expires a new one is fetched ([`DEFAULT_REFRESH_AHEAD`]).
    /// The old token is still sent meanwhile; the refresh runs in the background. A token
    /// is never refreshed in the first half of its life, whatever this setting.
    ///
    /// The settings start a new, empty token cache: set them before cloning the layer.
    #[must_use]
    pub fn refresh_ahead(self, ahead: Duration) -> Self {
        AddAccessTokenLayer {
            shared: self.shared.with(|s| s.refresh_ahead = ahead),
            replay: self.replay,
        }
    }

    /// The limit of one token request, connection and response body included
    /// ([`DEFAULT_TOKEN_TIMEOUT`]).
    #[must_use]
    pub fn token_timeout(self, timeout: Duration) -> Self {
        AddAccessTokenLayer {
            shared: self.shared.with(|s| s.timeout = timeout),
            replay: self.replay,
        }
    }

    /// How many (scope, resource) pairs keep a cached token
    /// ([`DEFAULT_MAX_CACHED_TOKENS`]); more only matter with per-request
    /// [`TokenTarget`]s.
    #[must_use]
    pub fn max_cached_tokens(self, max: usize) -> Self {
        AddAccessTokenLayer {
            shared: self.shared.with(|s| s.max_cached_tokens = max.max(1)),
            replay: self.replay,
        }
    }

    /// Which requests are sent again, once, with a new token after the upstream answered
    /// 401:
    ///
    /// - [`CloneBody`] (the default): all; the request is cloned before it is sent, so
    ///   `ReqBody: Clone` (`Full<Bytes>`, `String` ...).
    /// - [`NoReplay`]: none, for any body type (streams); the 401 still drops the token, so
    ///   the next request gets a new one.
    /// - a closure `Fn(&Request<B>) -> Option<Request<B>>`: a copy of the request, or
    ///   `None` for one that cannot be replayed (say, a streaming body).
    ///
    /// ```
    /// use bearer_guard::client::{AddAccessTokenLayer, ClientCredentials};
    /// use bytes::Bytes;
    /// use http::{Method, Request};
    /// use http_body_util::Full;
    /// # let credentials =
    /// #     ClientCredentials::builder("https://issuer.example/token", "id", "secret").build()?;
    ///
    /// // Replay only GETs.
    /// let layer = AddAccessTokenLayer::new(credentials).replay(|req: &Request<Full<Bytes>>| {
    ///     (req.method() == Method::GET).then(|| req.clone())
    /// });
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
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

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddAccessTokenLayer")
            .field("credentials", &self.credentials)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("token_timeout", &self.timeout)
            .field("max_cached_tokens", &self.max_cached_tokens)
            .finish_non_exhaustive()
    }
}

impl<S, R: Clone> Layer<S> for AddAccessTokenLayer<R> {
    type Service = AddAccessToken<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AddAccessToken::new(inner, Arc::clone(&self.shared), self.replay.clone())
    }
}

/// Makes the copy of a request that is sent again, with a new token, when the upstream
/// answered the first one with 401. See [`AddAccessTokenLayer::replay`].
pub trait Replay<B> {
    /// A copy of `request` (taken before the token is added), or `None` when it cannot be
    /// sent twice.
    fn replay(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Replays every request by cloning it (method, URI, headers, extensions and body); needs
/// `B: Clone`. The default policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> Replay<B> for CloneBody {
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

/// Never replays: a 401 is returned as it is (the token is still dropped).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<B> Replay<B> for NoReplay {
    fn replay(&self, _request: &Request<B>) -> Option<Request<B>> {
        None
    }
}

impl<B, F> Replay<B> for F
where
    F: Fn(&Request<B>) -> Option<Request<B>>,
{
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        self(request)
    }
}
