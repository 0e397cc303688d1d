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
    refresh.complete(fetched, shared.refresh_ahead);
}
