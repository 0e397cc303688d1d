//! [`RateLimitByClientService`]: calls the inner service while the caller is within its
//! quota, and answers through the crate's one response module otherwise.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::key::RateLimitKey;
use super::layer::{RateLimited, State};
use crate::error::ErrorKind;
use crate::future::ResponseFuture;
use crate::response::{self, Refusal, StandardRejection};
use crate::token::VerifiedToken;

/// Calls the inner service while the request's caller is within its quota, and answers
/// `429` (or `grpc-status: 8`) otherwise. Built by
/// [`RateLimitByClient`](super::RateLimitByClient).
pub struct RateLimitByClientService<S, K> {
    inner: S,
    state: Arc<State<K>>,
}

impl<S, K> RateLimitByClientService<S, K> {
    pub(crate) fn new(inner: S, state: Arc<State<K>>) -> Self {
        RateLimitByClientService { inner, state }
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
            .field("key", &self.state.key)
            .field("buckets", &self.state.buckets)
            .finish()
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitByClientService<S, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    K: RateLimitKey<ReqBody>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let caller = self.state.key.key(&req);
        match self.state.buckets.check(caller.as_ref()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(wait) => ResponseFuture::reject(too_many_requests(wait, &req)),
        }
    }
}

/// The answer over quota: the standard refusal (429 with `Retry-After`, or a trailers-only
/// gRPC `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`), marked [`RateLimited`].
fn too_many_requests<B, ResBody: Default>(
    wait: std::time::Duration,
    req: &Request<B>,
) -> Response<ResBody> {
    let refusal = Refusal::new(ErrorKind::RateLimited)
        .with_retry_after(wait)
        .with_token(req.extensions().get::<VerifiedToken>())
        .answering(None, req.version(), req.headers());
    let mut res = response::answer(&StandardRejection, &refusal);
    res.extensions_mut()
        .insert(RateLimited { retry_after: wait });
    res
}
