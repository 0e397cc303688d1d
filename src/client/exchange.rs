//! [`ExchangeTokenLayer`]: calls made while serving a request go downstream with a token
//! exchanged (RFC 8693) from that request's token, never with the token itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::credentials::{ClientCredentials, TokenTarget};
use super::error::{BoxError, TokenError, TokenErrorKind};
use super::future::AddAccessTokenFuture;
use super::layer::{
    DEFAULT_MIN_TOKEN_LIFETIME, DEFAULT_REFRESH_AHEAD, DEFAULT_TOKEN_TIMEOUT,
    checked_resource_origin,
};
use super::origin::Origins;
use super::retry::After;
use super::shared::{ExchangeSettings, Settings, Shared, Ticket};
use super::subject::SubjectToken;
use crate::error::ConfigError;
use crate::fetch::HttpService;

/// Default number of (subject token, audience) pairs whose exchanged tokens are cached.
const DEFAULT_MAX_EXCHANGED: usize = 1024;

/// A [`Layer`] for the HTTP client a service calls a downstream API with *on behalf of the
/// user of the request it is serving*: each request to that API must carry the served
/// request's token as a [`SubjectToken`] extension, which the layer exchanges at the token
/// endpoint (RFC 8693 token exchange) for a token whose audience is the downstream API, and
/// sends as `Authorization: Bearer`. The subject token itself never goes downstream.
///
/// - **Token requests**: `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
///   `subject_token`, `subject_token_type` and `requested_token_type`
///   `urn:ietf:params:oauth:token-type:access_token`, the credentials'
///   [`resource`](super::ClientCredentialsBuilder::resource) and
///   [`scope`](super::ClientCredentialsBuilder::scope), and the optional
///   [`audience`](ExchangeTokenLayerBuilder::audience); authenticated as the credentials
///   say (`client_secret_basic`, `client_secret_post` or `private_key_jwt`). They go through
///   the wrapped client, bounded as [`AddAccessTokenLayer`](super::AddAccessTokenLayer)'s
///   are.
/// - **Caching**: one exchanged token per subject token (keyed by its SHA-256 digest,
///   never the token) and target, in a bounded cache shared by every clone; one exchange
///   in flight per key, every waiter sharing its outcome; refreshed (exchanged again) in
///   the background shortly before it expires, as long as the subject token is still
///   being used and valid.
/// - **Where tokens go**: only to the origin of the credentials' `resource` and the
///   [`allow_origin`](ExchangeTokenLayerBuilder::allow_origin)s. A request to such an
///   origin loses any `Authorization` header it had and gets the exchanged token; without
///   a `SubjectToken` it fails with [`TokenErrorKind::NoSubjectToken`] and is not sent. A
///   request *with* a `SubjectToken` to any other origin fails the same way (a token meant
///   for one API is never exchanged for a call to another); one without goes through
///   untouched.
/// - **Failures**: an exchange the endpoint refuses (an expired or revoked subject token
///   is `invalid_grant`, a resource the client may not ask for `invalid_target`) is a
///   [`TokenError`] of kind [`Rejected`](TokenErrorKind::Rejected) with its
///   [`oauth_error`](TokenError::oauth_error); the request is not sent. A downstream `401`
///   drops the exchanged token (the next request exchanges again) and is returned as it
///   is: requests are not replayed.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
///
/// use bearer_guard::client::{BoxError, ClientCredentials, ExchangeTokenLayer, SubjectToken};
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// // A stand-in for the HTTP client: the token endpoint exchanges, the API echoes.
/// let http_client = service_fn(|req: Request<Full<Bytes>>| async move {
///     let body = if req.uri().path() == "/oauth/token" {
///         r#"{"access_token":"exchanged","token_type":"Bearer","expires_in":300,
///             "issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#
///             .to_owned()
///     } else {
///         let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap_or(""));
///         format!("{auth:?}")
///     };
///     Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(body)))
/// });
///
/// let credentials = ClientCredentials::builder(
///     "https://issuer.example/oauth/token",
///     "orders-service",
///     "s3cr3t", // from the environment or a secret store, in real life
/// )
/// .resource("https://stock.example")
/// .build()?;
/// let downstream = ServiceBuilder::new()
///     .layer(ExchangeTokenLayer::new(credentials)?)
///     .service(http_client);
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # rt.block_on(async {
/// // While serving `incoming` (the request the user sent):
/// let incoming = Request::get("https://orders.example/")
///     .header("authorization", "Bearer the-users-token")
///     .body(())?;
/// let mut call = Request::get("https://stock.example/items").body(Full::default())?;
/// call.extensions_mut().insert(SubjectToken::from_request(&incoming).expect("a token"));
/// let res = downstream.clone().oneshot(call).await?;
/// let body = res.into_body().collect().await?.to_bytes();
/// assert_eq!(body, r#"Some("Bearer exchanged")"#);
/// # Ok::<(), BoxError>(())
/// # })?;
/// # Ok::<(), BoxError>(())
/// ```
pub struct ExchangeTokenLayer {
    shared: Arc<Shared>,
}

impl ExchangeTokenLayer {
    /// A layer exchanging tokens with `credentials` for their `resource`, with the defaults
    /// (see [`builder`](Self::builder)).
    ///
    /// # Errors
    /// As [`ExchangeTokenLayerBuilder::build`].
    pub fn new(credentials: ClientCredentials) -> Result<Self, ConfigError> {
        Self::builder(credentials).build()
    }

    /// Starts the configuration of a layer exchanging tokens with `credentials`: the token
    /// endpoint, this service's client authentication, and the downstream API's
    /// `resource` (whose origin gets the tokens) and `scope`.
    pub fn builder(credentials: ClientCredentials) -> ExchangeTokenLayerBuilder {
        ExchangeTokenLayerBuilder {
            credentials,
            settings: Settings {
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                token_timeout: DEFAULT_TOKEN_TIMEOUT,
                max_cached_tokens: DEFAULT_MAX_EXCHANGED,
                min_token_lifetime: DEFAULT_MIN_TOKEN_LIFETIME,
            },
            audience: None,
            allowed: Vec::new(),
            allow_insecure_http: false,
        }
    }

    /// The credentials tokens are exchanged with.
    #[must_use]
    pub fn credentials(&self) -> &ClientCredentials {
        &self.shared.credentials
    }
}

impl Clone for ExchangeTokenLayer {
    fn clone(&self) -> Self {
        ExchangeTokenLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl fmt::Debug for ExchangeTokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<S> Layer<S> for ExchangeTokenLayer {
    type Service = ExchangeToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExchangeToken {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Configures an [`ExchangeTokenLayer`]; from [`ExchangeTokenLayer::builder`].
#[must_use]
pub struct ExchangeTokenLayerBuilder {
    credentials: ClientCredentials,
    settings: Settings,
    audience: Option<String>,
    allowed: Vec<String>,
    allow_insecure_http: bool,
}

impl ExchangeTokenLayerBuilder {
    /// The RFC 8693 `audience` to ask for beside the credentials' `resource`: the logical
    /// name of the downstream service, when the issuer knows it by one. It does not make
    /// tokens go anywhere: see [`allow_origin`](Self::allow_origin).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Also sends exchanged tokens to requests for `origin` (`https://host[:port]`): the
    /// same downstream API under another name, or the API of a `resource` that is not a URL.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed.push(origin.into());
        self
    }

    /// Sends tokens over plain `http` to hosts that are not loopback: for closed networks
    /// whose transport is protected otherwise only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// How long before an exchanged token expires it is exchanged again, in the background
    /// (60 s by default; never in the first half of the token's life).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.settings.refresh_ahead = ahead;
        self
    }

    /// The limit of one token request, response included (10 s by default).
    pub fn token_timeout(mut self, timeout: Duration) -> Self {
        self.settings.token_timeout = timeout;
        self
    }

    /// How many subject tokens keep an exchanged token (1024 by default). Past it, entries
    /// without a valid token go first; an evicted subject token is exchanged again on its
    /// next call.
    pub fn max_cached_tokens(mut self, max: usize) -> Self {
        self.settings.max_cached_tokens = max.max(1);
        self
    }

    /// The shortest lifetime an exchanged token is kept for, whatever its `expires_in`
    /// (10 s by default).
    pub fn min_token_lifetime(mut self, floor: Duration) -> Self {
        self.settings.min_token_lifetime = floor;
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// - [`ConfigError::InvalidUrl`]: no origin would get tokens (the credentials have no
    ///   `http(s)` `resource` and no origin was allowed), or an allowed origin is not an
    ///   `http(s)` origin.
    /// - [`ConfigError::InsecureUrl`], [`ConfigError::CredentialsInUrl`]: as
    ///   [`AddAccessTokenLayerBuilder::build`](super::AddAccessTokenLayerBuilder::build).
    pub fn build(self) -> Result<ExchangeTokenLayer, ConfigError> {
        let mut origins = Origins::default();
        if let Some(origin) = checked_resource_origin(&self.credentials, self.allow_insecure_http)?
        {
            origins.insert(origin);
        }
        for origin in &self.allowed {
            origins.allow(origin, self.allow_insecure_http)?;
        }
        if origins.is_empty() {
            return Err(ConfigError::InvalidUrl(
                "an ExchangeTokenLayer needs the downstream API: an http(s) resource in the \
                 credentials, or allow_origin"
                    .into(),
            ));
        }
        let exchange = ExchangeSettings {
            audience: self.audience,
        };
        let shared = Shared::exchanging(self.credentials, self.settings, origins, exchange);
        Ok(ExchangeTokenLayer {
            shared: Arc::new(shared),
        })
    }
}

impl fmt::Debug for ExchangeTokenLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeTokenLayerBuilder")
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .field("audience", &self.audience)
            .field("allowed", &self.allowed)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

/// Sends each request for the downstream API with the token exchanged from its
/// [`SubjectToken`]; built by [`ExchangeTokenLayer`]. Its error is a [`BoxError`]: the inner
/// client's, or a [`TokenError`] (the request was then not sent).
pub struct ExchangeToken<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ExchangeToken<S> {
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

impl<S: Clone> Clone for ExchangeToken<S> {
    fn clone(&self) -> Self {
        ExchangeToken {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ExchangeToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeToken")
            .field("inner", &self.inner)
            .field("client_id", &self.shared.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for ExchangeToken<S>
where
    S: HttpService<B>,
    B: From<Bytes> + Send + 'static,
{
    type Response = Response<S::ResBody>;
    type Error = BoxError;
    type Future = AddAccessTokenFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let subject = req.extensions_mut().remove::<SubjectToken>();
        // Not this layer's: a target cannot redirect an exchanged token.
        req.extensions_mut().remove::<TokenTarget>();
        if !self.shared.serves(req.uri()) {
            if subject.is_some() {
                return AddAccessTokenFuture::failed(
                    refused("the request carries a SubjectToken to an origin this layer does not serve; nothing was exchanged or sent").into(),
                );
            }
            return AddAccessTokenFuture::sent(self.inner.call(req), None);
        }
        // Whatever the caller set (the incoming token copied over, say) never goes out.
        req.headers_mut().remove(AUTHORIZATION); // every value of it
        let Some(subject) = subject else {
            return AddAccessTokenFuture::failed(
                refused("a request to the downstream API carries no SubjectToken; it was not sent")
                    .into(),
            );
        };
        let key = self.shared.exchange_key(&subject);
        let slot = self
            .shared
            .tokens
            .slot_for(key, Instant::now(), Some(&subject));
        match self.shared.ticket(&slot, &self.inner) {
            Ticket::Ready(token) => {
                if let Err(err) = self.shared.authorize(&token, &mut req) {
                    return AddAccessTokenFuture::failed(err.into());
                }
                let future = self.inner.call(req);
                let after = After {
                    slot,
                    token,
                    retry: None,
                    shared: Arc::clone(&self.shared),
                    origin: None,
                };
                AddAccessTokenFuture::sent(future, Some(after))
            }
            Ticket::Wait(wait) => {
                // Take the ready instance into the future, leave a clone behind.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.shared);
                AddAccessTokenFuture::boxed(Box::pin(async move {
                    let token = wait.wait().await?;
                    shared.authorize(&token, &mut req)?;
                    let response = inner.call(req).await.map_err(Into::into)?;
                    let after: After<S, B> = After {
                        slot,
                        token,
                        retry: None,
                        shared,
                        origin: None,
                    };
                    // Without a copy of the request, there is no retry to run.
                    drop(after.answered(&response));
                    Ok(response)
                }))
            }
        }
    }
}

fn refused(detail: &'static str) -> TokenError {
    TokenError::new(TokenErrorKind::NoSubjectToken).with_detail(detail)
}
