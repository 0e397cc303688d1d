//! [`AddAccessToken`]: the service [`AddAccessTokenLayer`](super::AddAccessTokenLayer)
//! wraps around an HTTP client. The decisions live elsewhere (whether a request gets a
//! token and which: [`Shared`]; after a 401: [`After`]); this is the plumbing.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::credentials::TokenTarget;
use super::error::BoxError;
use super::future::AddAccessTokenFuture;
use super::replay::{CloneBody, Replay};
use super::retry::{After, nonce_origin};
use super::shared::{Decision, Shared, Ticket};
use crate::fetch::HttpService;

/// Adds `Authorization: Bearer <token>` (or `DPoP <token>` and a `DPoP` proof) to each
/// request for an allowed origin and sends it through the inner HTTP client, which also
/// carries the token requests. Built by [`AddAccessTokenLayer`](super::AddAccessTokenLayer).
///
/// Its error is a [`BoxError`]: the inner client's error, or a
/// [`TokenError`](super::TokenError) when no token could be obtained (the request was then
/// not sent).
pub struct AddAccessToken<S, R = CloneBody> {
    inner: S,
    shared: Arc<Shared>,
    replay: R,
}

impl<S, R> AddAccessToken<S, R> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, replay: R) -> Self {
        AddAccessToken {
            inner,
            shared,
            replay,
        }
    }

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

impl<S: Clone, R: Clone> Clone for AddAccessToken<S, R> {
    fn clone(&self) -> Self {
        AddAccessToken {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for AddAccessToken<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddAccessToken")
            .field("inner", &self.inner)
            .field("client_id", &self.shared.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl<S, R, B> Service<Request<B>> for AddAccessToken<S, R>
where
    S: HttpService<B>,
    B: From<Bytes> + Send + 'static,
    R: Replay<B>,
{
    type Response = Response<S::ResBody>;
    type Error = BoxError;
    type Future = AddAccessTokenFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let target = req.extensions_mut().remove::<TokenTarget>();
        if req.headers().contains_key(AUTHORIZATION) {
            // The caller chose its own credentials.
            return AddAccessTokenFuture::sent(self.inner.call(req), None);
        }
        let key = match self.shared.decide(req.uri(), target) {
            Decision::Token(key) => key,
            Decision::Untouched => return AddAccessTokenFuture::sent(self.inner.call(req), None),
            Decision::Refuse(err) => return AddAccessTokenFuture::failed(err.into()),
        };
        let slot = self.shared.tokens.slot(key, Instant::now());
        // The copy is taken before the token is added.
        let copy = self.replay.replay(&req);
        match self.shared.ticket(&slot, &self.inner) {
            Ticket::Ready(token) => {
                if let Err(err) = self.shared.authorize(&token, &mut req) {
                    return AddAccessTokenFuture::failed(err.into());
                }
                let retry = copy.map(|copy| (self.inner.clone(), copy));
                let origin = nonce_origin(&token, &req);
                let future = self.inner.call(req);
                let after = After {
                    slot,
                    token,
                    retry,
                    shared: Arc::clone(&self.shared),
                    origin,
                };
                AddAccessTokenFuture::sent(future, Some(after))
            }
            Ticket::Wait(wait) => {
                // The inner service is ready now; take that instance into the future and
                // leave a clone behind (tower-service: "be careful when cloning inner
                // services").
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.shared);
                AddAccessTokenFuture::boxed(Box::pin(async move {
                    let token = wait.wait().await?;
                    shared.authorize(&token, &mut req)?;
                    let origin = nonce_origin(&token, &req);
                    let response = inner.call(req).await.map_err(Into::into)?;
                    let after = After {
                        slot,
                        token,
                        retry: copy.map(|copy| (inner, copy)),
                        shared,
                        origin,
                    };
                    match after.answered(&response) {
                        Some(retry) => retry.await,
                        None => Ok(response),
                    }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;
    use std::time::Duration;

    use http::StatusCode;
    use http_body_util::Full;
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    use super::*;
    use crate::client::{
        AddAccessTokenLayer, AddAccessTokenLayerBuilder, ClientCredentials, TokenError,
        TokenErrorKind,
    };

    const TOKEN_JSON: &str = r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#;

    fn builder() -> AddAccessTokenLayerBuilder {
        let credentials =
            ClientCredentials::builder("https://issuer.example/token", "svc", "secret-value")
                .scope("read")
                .resource("https://api.example")
                .build()
                .expect("credentials");
        AddAccessTokenLayer::builder(credentials)
    }

    fn layer() -> AddAccessTokenLayer {
        builder().build().expect("layer")
    }

    fn full(body: impl Into<Bytes>) -> Full<Bytes> {
        Full::new(body.into())
    }

    fn request_to(url: &str) -> Request<Full<Bytes>> {
        Request::get(url).body(Full::default()).expect("request")
    }

    fn api_request() -> Request<Full<Bytes>> {
        request_to("https://api.example/x")
    }

    fn is_token_request<B>(req: &Request<B>) -> bool {
        req.uri().path() == "/token"
    }

    async fn error_kind<S>(svc: S) -> Option<TokenErrorKind>
    where
        S: Service<Request<Full<Bytes>>, Error = BoxError>,
        S::Response: fmt::Debug,
    {
        let err = svc.oneshot(api_request()).await.expect_err("no token");
        err.downcast_ref::<TokenError>().map(TokenError::kind)
    }

    /// An issuer and an API in one `service_fn`: the token endpoint answers `token_json`,
    /// the API echoes the `Authorization` it got (or `-`). Counts the token requests.
    fn upstream(
        token_json: &'static str,
    ) -> (
        impl HttpService<Full<Bytes>, ResBody = Full<Bytes>>,
        Arc<AtomicUsize>,
    ) {
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&token_requests);
        let svc = service_fn(move |req: Request<Full<Bytes>>| {
            let counter = Arc::clone(&counter);
            async move {
                if is_token_request(&req) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    return Ok::<_, Infallible>(Response::new(full(token_json)));
                }
                let auth = req.headers().get(AUTHORIZATION).cloned();
                let echo = auth.map_or_else(
                    || Bytes::from("-"),
                    |v| Bytes::copy_from_slice(v.as_bytes()),
                );
                Ok(Response::new(full(echo)))
            }
        });
        (svc, token_requests)
    }

    async fn authorization<S>(svc: &S, req: Request<Full<Bytes>>) -> Result<String, BoxError>
    where
        S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = BoxError>
            + Clone,
    {
        use http_body_util::BodyExt as _;
        let res = svc.clone().oneshot(req).await?;
        let body = res.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn adds_a_sensitive_bearer_header_and_takes_the_target_out() {
        let svc = layer().layer(service_fn(|req: Request<Full<Bytes>>| async move {
            if is_token_request(&req) {
                return Ok::<_, Infallible>(Response::new(full(TOKEN_JSON)));
            }
            let auth = &req.headers()[AUTHORIZATION];
            assert_eq!(auth, "Bearer tok-1");
            assert!(auth.is_sensitive());
            assert!(req.extensions().get::<TokenTarget>().is_none());
            Ok(Response::new(full("ok")))
        }));
        let mut req = api_request();
        req.extensions_mut()
            .insert(TokenTarget::new().scope("read"));
        let res = svc.oneshot(req).await.expect("ok");
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_with_its_own_authorization_is_sent_untouched() {
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&token_requests);
        let svc = layer().layer(service_fn(move |req: Request<Full<Bytes>>| {
            if is_token_request(&req) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let auth = req.headers().get(AUTHORIZATION).cloned();
            async move {
                assert_eq!(auth.expect("kept"), "Basic Zm9vOmJhcg==");
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            }
        }));
        let mut req = api_request();
        req.headers_mut()
            .insert(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().expect("value"));
        svc.oneshot(req).await.expect("ok");
        assert_eq!(token_requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn only_the_resource_origin_and_allowed_origins_get_a_token() {
        let (inner, token_requests) = upstream(TOKEN_JSON);
        let svc = layer().layer(inner.clone());
        for other in [
            "https://evil.example/x",
            "http://api.example/x",      // same host, plain http
            "https://api.example:8443/", // same host, other port
            "https://api.example.evil.example/",
            "/relative",
        ] {
            let auth = authorization(&svc, request_to(other)).await.expect("sent");
            assert_eq!(auth, "-", "{other}");
        }
        assert_eq!(
            token_requests.load(Ordering::SeqCst),
            0,
            "no token fetched for them"
        );
        let auth = authorization(&svc, request_to("https://API.example:443/y")).await;
        assert_eq!(auth.expect("sent"), "Bearer tok-1");

        let svc = builder()
            .allow_origin("https://api-eu.example")
            .build()
            .expect("layer")
            .layer(inner);
        let auth = authorization(&svc, request_to("https://api-eu.example/z")).await;
        assert_eq!(auth.expect("sent"), "Bearer tok-1");
        let auth = authorization(&svc, request_to("https://evil.example/z")).await;
        assert_eq!(auth.expect("sent"), "-");
    }

    #[tokio::test]
    async fn a_target_resource_on_another_origin_is_refused_before_any_request() {
        let (inner, token_requests) = upstream(TOKEN_JSON);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let counting = tower::ServiceBuilder::new()
            .map_request(move |req: Request<Full<Bytes>>| {
                counter.fetch_add(1, Ordering::SeqCst);
                req
            })
            .service(inner);
        let svc = builder()
            .allow_origin("https://api-eu.example")
            .build()
            .expect("layer")
            .layer(counting);
        // A token for https://api.example must not go to https://api-eu.example, even though
        // both are allowed origins of the layer.
        let mut req = request_to("https://api-eu.example/z");
        req.extensions_mut()
            .insert(TokenTarget::new().resource("https://api.example/v2"));
        let err = authorization(&svc, req).await.expect_err("refused");
        let err = err.downcast_ref::<TokenError>().expect("a TokenError");
        assert_eq!(err.kind(), TokenErrorKind::ResourceMismatch);
        assert!(err.to_string().contains("https://api.example:443"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");
        assert_eq!(token_requests.load(Ordering::SeqCst), 0);

        // A target on the request's own origin, or one that is not a URL, is fine.
        for resource in ["https://api-eu.example/v2", "urn:example:api"] {
            let mut req = request_to("https://api-eu.example/z");
            req.extensions_mut()
                .insert(TokenTarget::new().resource(resource));
            assert_eq!(
                authorization(&svc, req).await.expect("sent"),
                "Bearer tok-1"
            );
        }
        // A target cannot widen the origins: not allowed stays not allowed.
        let mut req = request_to("https://evil.example/");
        req.extensions_mut()
            .insert(TokenTarget::new().resource("https://evil.example/"));
        assert_eq!(authorization(&svc, req).await.expect("sent"), "-");
    }

    #[tokio::test]
    async fn a_zero_or_tiny_expires_in_does_not_cost_a_token_request_per_call() {
        for json in [
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":0}"#,
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":"1"}"#,
        ] {
            let (inner, token_requests) = upstream(json);
            let svc = layer().layer(inner);
            for _ in 0..20 {
                let auth = authorization(&svc, api_request()).await.expect("sent");
                assert_eq!(auth, "Bearer tok-1");
            }
            assert_eq!(token_requests.load(Ordering::SeqCst), 1, "{json}");
        }
    }

    #[tokio::test]
    async fn a_token_endpoint_that_does_not_answer_times_out() {
        let svc = builder()
            .token_timeout(Duration::from_millis(50))
            .build()
            .expect("layer")
            .layer(service_fn(|_req: Request<Full<Bytes>>| async {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        assert_eq!(error_kind(svc).await, Some(TokenErrorKind::Timeout));
    }

    #[tokio::test]
    async fn a_token_response_over_64_kib_is_refused() {
        for declared in [true, false] {
            let svc = layer().layer(service_fn(move |_req: Request<Full<Bytes>>| async move {
                let body = format!(
                    r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
                    "a".repeat(64 * 1024)
                );
                let len = body.len();
                let mut res = Response::new(full(body));
                // Without Content-Length the cap applies while reading.
                if declared {
                    res.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, len.into());
                }
                Ok::<_, Infallible>(res)
            }));
            assert_eq!(
                error_kind(svc).await,
                Some(TokenErrorKind::ResponseTooLarge)
            );
        }
    }

    #[tokio::test]
    async fn poll_ready_is_forwarded() {
        let (mock, mut handle) =
            tower_test::mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
        let mut svc = tower_test::mock::Spawn::new(layer().layer(mock));
        handle.allow(0);
        assert!(svc.poll_ready().is_pending());
        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
    }

    #[test]
    fn without_a_tokio_runtime_the_call_fails_instead_of_panicking() {
        let mut svc = layer().layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(full(TOKEN_JSON)))
        }));
        let future = svc.call(api_request());
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Err(err)) => assert_eq!(
                err.downcast_ref::<TokenError>().map(TokenError::kind),
                Some(TokenErrorKind::Unavailable)
            ),
            other => panic!("expected an error, got {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
}
