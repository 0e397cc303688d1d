//! [`AddAccessToken`]: the service [`AddAccessTokenLayer`](super::AddAccessTokenLayer)
//! wraps around an HTTP client.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use super::cache::{Lookup, Refresh, Slot, Token};
use super::credentials::TokenTarget;
use super::error::{BoxError, TokenError, TokenErrorKind};
use super::fetch;
use super::future::{After, ResponseFuture};
use super::layer::{CloneBody, Replay, Shared};

/// Adds `Authorization: Bearer <token>` to each request and sends it through the inner
/// HTTP client, which also carries the token requests. Built by
/// [`AddAccessTokenLayer`](super::AddAccessTokenLayer).
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for AddAccessToken<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    R: Replay<ReqBody>,
    ReqBody: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let target = req.extensions_mut().remove::<TokenTarget>();
        if req.headers().contains_key(AUTHORIZATION) {
            // The caller chose its own credentials.
            return ResponseFuture::sent(self.inner.call(req), None);
        }
        let now = Instant::now();
        let slot = self.shared.tokens.slot(self.shared.key(target), now);
        match slot.lookup(now) {
            Lookup::Ready(token, refresh) => {
                if let Some(refresh) = refresh {
                    spawn_refresh(self.inner.clone(), Arc::clone(&self.shared), refresh);
                }
                let retry = self
                    .replay
                    .replay(&req)
                    .map(|copy| (self.inner.clone(), copy));
                authorize(&mut req, &token);
                let future = self.inner.call(req);
                let after = After {
                    slot,
                    token,
                    retry,
                    shared: Arc::clone(&self.shared),
                };
                ResponseFuture::sent(future, Some(after))
            }
            Lookup::Wait(wait, refresh) => {
                if let Some(refresh) = refresh {
                    spawn_refresh(self.inner.clone(), Arc::clone(&self.shared), refresh);
                }
                let replay = self.replay.replay(&req);
                // The inner service is ready now; take that instance into the future and
                // leave a clone behind (tower-service: "be careful when cloning inner
                // services").
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.shared);
                ResponseFuture::boxed(Box::pin(async move {
                    let token = wait.wait().await?;
                    authorize(&mut req, &token);
                    let response = inner.call(req).await.map_err(Into::into)?;
                    let after = After {
                        slot,
                        token,
                        retry: replay.map(|copy| (inner, copy)),
                        shared,
                    };
                    match after.unauthorized(&response) {
                        Some(retry) => retry.await,
                        None => Ok(response),
                    }
                }))
            }
        }
    }
}

/// Sets the token, marked sensitive, as the request's `Authorization`.
fn authorize<B>(req: &mut Request<B>, token: &Token) {
    req.headers_mut()
        .insert(AUTHORIZATION, token.header.clone());
}

impl<S, ReqBody> After<S, ReqBody> {
    /// On a 401: drops the token, and returns the retry when the request may be sent again.
    pub(crate) fn unauthorized<ResBody>(
        self,
        response: &Response<ResBody>,
    ) -> Option<super::future::Boxed<Response<ResBody>>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ReqBody: From<Bytes> + Send + 'static,
        ResBody: Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BoxError>,
    {
        if response.status() != StatusCode::UNAUTHORIZED {
            self.token.mark_accepted();
            return None;
        }
        let retry = self.slot.reject(&self.token, Instant::now());
        match (retry, self.retry) {
            (true, Some((inner, req))) => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "unauthorized",
                    "upstream refused the access token; retrying once with a new one"
                );
                Some(Box::pin(resend(inner, req, self.slot, self.shared)))
            }
            (true, None) => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "unauthorized",
                    "upstream refused the access token; the request cannot be replayed"
                );
                None
            }
            (false, _) => {
                tracing::warn!(
                    target: "bearer_guard::client",
                    reason = "unauthorized_again",
                    "upstream refused a freshly replaced access token; not retrying"
                );
                None
            }
        }
    }
}

/// Sends `req` again with the slot's (new) token.
async fn resend<S, ReqBody, ResBody>(
    mut inner: S,
    mut req: Request<ReqBody>,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
) -> Result<Response<ResBody>, BoxError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    let token = match slot.lookup(Instant::now()) {
        Lookup::Ready(token, refresh) => {
            if let Some(refresh) = refresh {
                spawn_refresh(inner.clone(), Arc::clone(&shared), refresh);
            }
            token
        }
        Lookup::Wait(wait, refresh) => {
            if let Some(refresh) = refresh {
                spawn_refresh(inner.clone(), Arc::clone(&shared), refresh);
            }
            wait.wait().await?
        }
    };
    authorize(&mut req, &token);
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let response = inner.call(req).await.map_err(Into::into)?;
    if response.status() != StatusCode::UNAUTHORIZED {
        token.mark_accepted();
    }
    Ok(response)
}

/// Runs the token request of `refresh` in its own task, through a clone of the inner
/// service, so that no caller's cancellation stops it.
fn spawn_refresh<S, ReqBody, ResBody>(inner: S, shared: Arc<Shared>, refresh: Refresh)
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    let request = match fetch::request::<ReqBody>(&shared.credentials, refresh.key()) {
        Ok(request) => request,
        Err(err) => return finish(refresh, Err(err), &shared),
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        let err = TokenError::new(TokenErrorKind::Unavailable);
        return finish(refresh, Err(err), &shared);
    };
    runtime.spawn(async move {
        let fetched = fetch::send(inner, request, shared.timeout).await;
        finish(refresh, fetched, &shared);
    });
}

fn finish(refresh: Refresh, fetched: Result<fetch::Fetched, TokenError>, shared: &Shared) {
    let key = refresh.key();
    let scope = key.scope.as_deref().unwrap_or("");
    let resource = key.resource.as_deref().unwrap_or("");
    match &fetched {
        Ok(f) => tracing::debug!(
            target: "bearer_guard::client",
            client_id = %shared.credentials.client_id,
            scope,
            resource,
            expires_in = f.expires_in.as_secs(),
            "access token obtained"
        ),
        Err(err) => tracing::warn!(
            target: "bearer_guard::client",
            client_id = %shared.credentials.client_id,
            scope,
            resource,
            reason = err.kind().as_str(),
            status = err.status().map(|s| s.as_u16()),
            oauth_error = err.oauth_error(),
            "token request failed"
        ),
    }
    refresh.complete(fetched, shared.refresh_ahead, Instant::now());
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;
    use std::time::Duration;

    use http_body_util::Full;
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    use super::*;
    use crate::client::{AddAccessTokenLayer, ClientCredentials, TokenErrorKind};

    const TOKEN_JSON: &str = r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#;

    fn layer() -> AddAccessTokenLayer {
        let credentials =
            ClientCredentials::builder("https://issuer.example/token", "svc", "secret-value")
                .scope("read")
                .build()
                .expect("credentials");
        AddAccessTokenLayer::new(credentials)
    }

    fn full(body: impl Into<Bytes>) -> Full<Bytes> {
        Full::new(body.into())
    }

    fn api_request() -> Request<Full<Bytes>> {
        Request::get("https://api.example/x")
            .body(Full::default())
            .expect("request")
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
    async fn a_token_endpoint_that_does_not_answer_times_out() {
        let svc = layer()
            .token_timeout(Duration::from_millis(50))
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
