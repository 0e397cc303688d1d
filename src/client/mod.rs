//! The outgoing side (feature `client`): fetch, cache and send access tokens on calls to
//! other services.
//!
//! [`AddAccessTokenLayer`] goes around the HTTP client a service calls another service's
//! API with. It obtains access tokens by the OAuth 2.0 client-credentials grant
//! (RFC 6749 §4.4), caches them, and sends each request to that API with
//! `Authorization: Bearer`, or, with a DPoP key, as DPoP-bound tokens (RFC 9449); requests
//! to other origins go without.
//!
//! [`ExchangeTokenLayer`] is for calls made *on behalf of the user* of the request being
//! served: the outgoing request carries that request's token as a [`SubjectToken`], and
//! the layer exchanges it (RFC 8693 token exchange) for a token of the downstream API,
//! cached per subject token, and sends that one; the user's own token never goes
//! downstream.
//!
//! Both authenticate at the token endpoint with a client secret (`client_secret_basic`,
//! `client_secret_post`) or, with [`ClientCredentials::private_key_jwt`], with a fresh
//! assertion signed by the client's private key (`private_key_jwt`, RFC 7523).
//!
//! # Example
//!
//! A stand-in for the HTTP client answers both the token endpoint and the API; three calls
//! cost one token request, and a call to another origin goes without a token:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use bearer_guard::client::{AddAccessTokenLayer, BoxError, ClientCredentials};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let token_requests = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&token_requests);
//! let http_client = service_fn(move |req: Request<Full<Bytes>>| {
//!     let counter = Arc::clone(&counter);
//!     async move {
//!         let response: Response<Full<Bytes>> = if req.uri().path() == "/oauth/token" {
//!             counter.fetch_add(1, Ordering::SeqCst);
//!             Response::new(Full::from(
//!                 r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#,
//!             ))
//!         } else if req.headers().get("authorization").is_some_and(|v| v == "Bearer tok-1") {
//!             Response::new(Full::from("the transactions"))
//!         } else {
//!             let mut unauthorized = Response::new(Full::default());
//!             *unauthorized.status_mut() = StatusCode::UNAUTHORIZED;
//!             unauthorized
//!         };
//!         Ok::<_, Infallible>(response)
//!     }
//! });
//!
//! let credentials = ClientCredentials::builder(
//!     "https://issuer.example/oauth/token",
//!     "billing-service",
//!     "s3cr3t", // from the environment or a secret store, in real life
//! )
//! .scope("read:transactions")
//! .resource("https://api.example")
//! .build()?;
//! let api = ServiceBuilder::new()
//!     .layer(AddAccessTokenLayer::new(credentials))
//!     .service(http_client);
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! for _ in 0..3 {
//!     let req = Request::get("https://api.example/transactions").body(Full::default())?;
//!     let res = api.clone().oneshot(req).await?;
//!     assert_eq!(res.status(), StatusCode::OK);
//! }
//! assert_eq!(token_requests.load(Ordering::SeqCst), 1);
//!
//! // Another origin gets no token (the stand-in answers 401 to a request without one).
//! let req = Request::get("https://elsewhere.example/transactions").body(Full::default())?;
//! let res = api.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok::<(), BoxError>(())
//! # })?;
//! # Ok::<(), BoxError>(())
//! ```
//!
//! # What it does
//!
//! - **Where tokens go**: only to requests for the *origin* (scheme, host, port) of the
//!   credentials' [`resource`](ClientCredentialsBuilder::resource), when it is an `https`
//!   URL (or `http` to loopback), and to the origins added with
//!   [`allow_origin`](AddAccessTokenLayerBuilder::allow_origin) (the same API under other
//!   names). Any other request goes through as it is, without a token and without a token
//!   request: a client that also calls third parties, or follows a URL from a response,
//!   does not hand them its tokens. A request whose URI has no scheme and host (a relative
//!   one, completed by a layer inside this one) gets no token either: put this layer
//!   innermost. A request that already carries `Authorization` is sent as it is.
//! - **Per-request targets**: a [`TokenTarget`] in a request's extensions picks another
//!   scope or resource for that request. A target cannot widen the origins above, and a
//!   target whose resource is an `http(s)` URL gets its token only on requests to that
//!   URL's own origin: a token minted for API X never goes to origin Y, even when both are
//!   allowed. Such a request fails with [`TokenErrorKind::ResourceMismatch`] and is not
//!   sent. (The default resource's token may go to every allowed origin: allowing them is
//!   the statement that they serve that resource.) A target resource that is not a URL
//!   (`urn:...`) is sent to any allowed origin.
//! - **Token requests** are `POST`s to the token endpoint with `grant_type=client_credentials`,
//!   the `scope` and the RFC 8707 `resource`, authenticated by `client_secret_basic` (the
//!   default) or `client_secret_post` ([`AuthMethod`]). They go **through the wrapped client
//!   itself** (a clone of it), so they use its connection pool, TLS settings and proxy;
//!   hence its request body must be `From<Bytes>`. Each is one bounded fetch: 10 s in all
//!   ([`token_timeout`](AddAccessTokenLayerBuilder::token_timeout)), a response of at most
//!   64 KiB (by `Content-Length`, then while reading), and a redirect is an error, never
//!   followed (build a client that follows redirects itself with them off).
//! - **Caching**: one token per (scope, resource), shared by every clone of the layer and
//!   its services.
//! - **Refresh**: a token is refreshed 60 s before it expires
//!   ([`refresh_ahead`](AddAccessTokenLayerBuilder::refresh_ahead); never in the first half
//!   of its life). Requests keep using the old token while the refresh runs in the
//!   background. Without a valid token, requests wait. Either way **one token request is
//!   in flight at a time** per (scope, resource), and every waiter shares its outcome. It
//!   runs in its own Tokio task, so a caller that gives up does not cancel it. A response
//!   without `expires_in` is taken to last 5 minutes; one whose `expires_in` is below 10 s
//!   ([`min_token_lifetime`](AddAccessTokenLayerBuilder::min_token_lifetime)), `0`
//!   included, is kept 10 s, with a warning in the log, rather than cost a token request
//!   per call.
//! - **401**: when the upstream answers 401, the token is dropped and the request is sent
//!   once more with a new one if it can be replayed (see [`Replay`]: by default it is
//!   cloned, which needs `ReqBody: Clone`). Otherwise the 401 is returned, and the next
//!   request gets a new token. A token that replaced a refused one and is refused in turn
//!   within 30 s is kept and its 401s are returned as they are: an upstream that refuses
//!   every token (wrong audience, untrusted issuer) does not turn each call into a token
//!   request.
//! - **DPoP** (RFC 9449), with [`dpop`](AddAccessTokenLayerBuilder::dpop): token requests
//!   carry a proof of the layer's key, so the issuer binds the tokens to it (`cnf.jkt`,
//!   `token_type: DPoP`); each request with such a token carries
//!   `Authorization: DPoP <token>` and a fresh `DPoP` proof (`htm`, `htu` without query and
//!   fragment, `ath`, the origin's latest nonce). A token endpoint's `400 use_dpop_nonce` and
//!   an API's `401` `DPoP error="use_dpop_nonce"` are retried once with the `DPoP-Nonce`
//!   they sent, and every `DPoP-Nonce` an origin sends is used in its next proofs. A token
//!   endpoint answering `token_type: Bearer` to a proof gets its token sent as Bearer (and a
//!   warning in the log); a `DPoP` token without a key configured is an error.
//! - **Errors**: when no token can be had, the service returns a [`TokenError`] (boxed in
//!   [`BoxError`]; `downcast_ref` it) and the request is not sent. Its message names the
//!   token endpoint's URL and says what failed and what to check (`the token request failed:
//!   could not connect to https://issuer.example/oauth/token (Connection refused (os error
//!   111)); check that the server is running ...`); [`TokenError::fetch_error`] gives the
//!   [`FetchError`](crate::fetch::FetchError) of a failed
//!   exchange (connect, TLS, timeout, status, size, JSON). The inner client's own errors
//!   pass through, boxed.
//!
//! # Security
//!
//! - The [`ClientSecret`](crate::client_auth::ClientSecret) never prints (`[redacted]`), has no accessor and is zeroed on drop;
//!   [`TokenError`]s, `Debug` output and the `tracing` events (target
//!   `bearer_guard::client`) hold neither the secret nor a token, nor a DPoP proof or
//!   private key. The `Authorization` headers the layer sets (Basic, Bearer and DPoP) and
//!   the `DPoP` proofs are marked sensitive.
//! - The token endpoint must be `https` (plain `http` only to loopback, or with
//!   [`allow_insecure_http`](ClientCredentialsBuilder::allow_insecure_http)); so must the
//!   origins tokens go to ([`allow_insecure_http`](AddAccessTokenLayerBuilder::allow_insecure_http)
//!   on the layer's builder for a plain-`http` service mesh). URLs with credentials in them
//!   are refused; URLs are printed without userinfo.
//! - Tokens only go to the origins above. Prefer `client_secret_basic`: with
//!   `client_secret_post` the secret is in the request body, which middleware between this
//!   layer and the network could log.
//!
//! # The wrapped client
//!
//! Any `tower::Service<http::Request<B>, Response = http::Response<ResBody>>` that is
//! `Clone + Send + 'static`, with `B: From<Bytes>` and `ResBody: http_body::Body`, on a
//! Tokio runtime (the token requests run as tasks); [`HttpService`](crate::fetch::HttpService)
//! names these bounds, for this layer and every other outgoing call of the crate.
//!
//! With **hyper-util**'s client, whose `Client<C, Full<Bytes>>` is such a service:
//!
//! ```no_run
//! use bearer_guard::client::{AddAccessTokenLayer, BoxError, ClientCredentials};
//! use http_body_util::{BodyExt, Full};
//! use hyper::body::Bytes;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), BoxError> {
//! let credentials = ClientCredentials::builder(
//!     "https://issuer.example/oauth/token",
//!     "billing-service",
//!     std::env::var("CLIENT_SECRET")?,
//! )
//! .scope("read:transactions")
//! .resource("https://api.example")
//! .build()?;
//!
//! // `build_http` speaks plain http; for https, build it over hyper-rustls' `HttpsConnector`.
//! let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let api = ServiceBuilder::new()
//!     .layer(AddAccessTokenLayer::new(credentials))
//!     .service(http);
//!
//! let req = http::Request::get("https://api.example/transactions").body(Full::default())?;
//! let res = api.oneshot(req).await?;
//! let body = res.into_body().collect().await?.to_bytes();
//! # Ok(())
//! # }
//! ```
//!
//! With **reqwest**: `reqwest::Client` is a `tower::Service<reqwest::Request>`; a small
//! adapter makes it one over `http` types (reqwest converts both ways, and its `Body` is
//! `From<Bytes>` and an `http_body::Body`). Its body is not `Clone`, so replay through a
//! closure that copies buffered bodies. Build the client with
//! `redirect(reqwest::redirect::Policy::none())` so that token requests are not redirected.
//! (reqwest is not a dependency of this crate; this sketch is not compiled.)
//!
//! ```ignore
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//!
//! #[derive(Clone)]
//! struct Reqwest(reqwest::Client);
//!
//! impl tower::Service<http::Request<reqwest::Body>> for Reqwest {
//!     type Response = http::Response<reqwest::Body>;
//!     type Error = reqwest::Error;
//!     type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;
//!
//!     fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
//!         Poll::Ready(Ok(()))
//!     }
//!
//!     fn call(&mut self, req: http::Request<reqwest::Body>) -> Self::Future {
//!         let client = self.0.clone();
//!         Box::pin(async move {
//!             let req = reqwest::Request::try_from(req)?;
//!             Ok(http::Response::from(client.execute(req).await?))
//!         })
//!     }
//! }
//!
//! let layer = AddAccessTokenLayer::builder(credentials)
//!     .replay(|req: &http::Request<reqwest::Body>| {
//!         let body = req.body().as_bytes()?; // `None` for a streaming body: not replayed
//!         let mut copy = http::Request::new(reqwest::Body::from(body.to_vec()));
//!         *copy.method_mut() = req.method().clone();
//!         *copy.uri_mut() = req.uri().clone();
//!         *copy.version_mut() = req.version();
//!         *copy.headers_mut() = req.headers().clone();
//!         Some(copy)
//!     })
//!     .build()?;
//! let api = tower::ServiceBuilder::new().layer(layer).service(Reqwest(reqwest::Client::new()));
//! ```

mod cache;
mod credentials;
mod dpop;
mod endpoint;
mod error;
mod exchange;
mod future;
mod layer;
mod origin;
mod replay;
mod retry;
mod service;
mod shared;
mod subject;

pub use self::credentials::{AuthMethod, ClientCredentials, ClientCredentialsBuilder, TokenTarget};
pub use self::error::{BoxError, TokenError, TokenErrorKind};
pub use self::exchange::{ExchangeToken, ExchangeTokenLayer, ExchangeTokenLayerBuilder};
pub use self::future::AddAccessTokenFuture;
pub use self::layer::{
    AddAccessTokenLayer, AddAccessTokenLayerBuilder, DEFAULT_MAX_CACHED_TOKENS,
    DEFAULT_MIN_TOKEN_LIFETIME, DEFAULT_REFRESH_AHEAD, DEFAULT_TOKEN_TIMEOUT,
};
pub use self::replay::{CloneBody, NoReplay, Replay};
pub use self::service::AddAccessToken;
pub use self::subject::SubjectToken;

/// The boxed, rare branch of a call: waiting for a token, or the retry after a 401.
type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BoxError>> + Send>>;
