//! [`RateLimitByClientService`]: calls the inner service while the caller is within its
//! quota, and answers through the crate's one response module otherwise.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower_service::Service;

use super::key::RateLimitKey;
use super::memory::Buckets;
use crate::error::ErrorKind;
use crate::future::ResponseFuture;
use crate::response::{self, Refusal, Rejection, StandardRejection};
use crate::verified::VerifiedToken;

/// Marks a response the rate limit answered with (`429`, or `grpc-status: 8`); it is in the
/// response's extensions, beside the [`AuthError`](crate::AuthError) of kind
/// [`RateLimited`](crate::ErrorKind::RateLimited).
///
/// ```
/// use bearer_guard::rate_limit::RateLimited;
/// # let response = http::Response::new(());
/// if let Some(limited) = response.extensions().get::<RateLimited>() {
///     let _wait = limited.retry_after();
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub(crate) retry_after: Duration,
}

impl RateLimited {
    /// How long until the caller's next request can pass, exactly. The `Retry-After` header
    /// carries it in whole seconds, rounded up, and at least 1.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// The state a rate limit's services share.
pub(crate) struct State<K, R> {
    pub(crate) key: K,
    /// Answers refusals, as a [`Guard`](crate::Guard)'s rejection answers the others.
    pub(crate) rejection: R,
    pub(crate) buckets: Buckets,
    /// Quotas shared through Redis: when set, they decide, and the buckets above are the
    /// local fallback.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<super::RedisQuotas>,
}

/// Calls the inner service while the request's caller is within its quota, and answers
/// `429` (or `grpc-status: 8`) otherwise. Built by
/// [`RateLimitByClient`](super::RateLimitByClient).
pub struct RateLimitByClientService<S, K, R = StandardRejection> {
    inner: S,
    state: Arc<State<K, R>>,
}

impl<S, K, R> RateLimitByClientService<S, K, R> {
    pub(crate) fn new(inner: S, state: Arc<State<K, R>>) -> Self {
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

impl<S: Clone, K, R> Clone for RateLimitByClientService<S, K, R> {
    fn clone(&self) -> Self {
        RateLimitByClientService {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug, R> fmt::Debug for RateLimitByClientService<S, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitByClientService")
            .field("inner", &self.inner)
            .field("key", &self.state.key)
            .field("buckets", &self.state.buckets)
            .finish()
    }
}

impl<S, K, R, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitByClientService<S, K, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    K: RateLimitKey<ReqBody> + Send + Sync + 'static,
    R: Rejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        #[cfg(feature = "redis")]
        if let Some(quotas) = &self.state.redis {
            return call_shared(&mut self.inner, &self.state, quotas, req);
        }
        let caller = self.state.key.key(&req);
        match self.state.buckets.check(caller.as_ref()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(wait) => {
                ResponseFuture::reject(too_many_requests(&self.state.rejection, wait, &req))
            }
        }
    }
}

/// The request's way with [`RedisQuotas`](super::RedisQuotas): a lent cell or a refusal
/// Redis announced decides now, on the borrowed caller (nothing allocated, no clone of the
/// state); so does a known outage. Otherwise the ready inner service goes into the future (a
/// clone stays behind), which awaits Redis' answer, then calls it or answers the refusal.
#[cfg(feature = "redis")]
fn call_shared<S, K, R, ReqBody, ResBody>(
    inner: &mut S,
    state: &Arc<State<K, R>>,
    quotas: &super::RedisQuotas,
    req: Request<ReqBody>,
) -> ResponseFuture<S::Future, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    K: RateLimitKey<ReqBody> + Send + Sync + 'static,
    R: Rejection<ResBody>,
{
    use super::redis::{Check, Verdict};

    let caller = state.key.key(&req);
    let Some(quota) = state.buckets.quota_for(caller.as_ref()) else {
        // Anonymous requests, and anonymous is unlimited.
        return ResponseFuture::inner(inner.call(req));
    };
    let check = match quotas.decide_locally(caller.as_ref(), quota) {
        Some(verdict) => Check::Now(verdict),
        None => {
            let caller = caller.map(super::Caller::into_owned);
            let local_state = Arc::clone(state);
            let local_caller = caller.clone();
            let local = move || local_state.buckets.check(local_caller.as_ref());
            quotas.decide(caller, quota, local)
        }
    };
    match check {
        Check::Now(Verdict::Admit) => ResponseFuture::inner(inner.call(req)),
        Check::Now(refused) => ResponseFuture::reject(refusal(&state.rejection, refused, &req)),
        Check::Wait(decision) => {
            let clone = inner.clone();
            let mut inner = std::mem::replace(inner, clone);
            let answers = Arc::clone(state);
            ResponseFuture::wait(Box::pin(async move {
                match decision.await {
                    Verdict::Admit => inner.call(req).await,
                    refused => Ok(refusal(&answers.rejection, refused, &req)),
                }
            }))
        }
    }
}

/// The answer to a refused request: over quota, or (failing closed) no store to ask.
#[cfg(feature = "redis")]
fn refusal<B, ResBody, R: Rejection<ResBody>>(
    rejection: &R,
    verdict: super::redis::Verdict,
    req: &Request<B>,
) -> Response<ResBody> {
    match verdict {
        super::redis::Verdict::Limited(wait) => too_many_requests(rejection, wait, req),
        _ => quota_unavailable(rejection, req),
    }
}

/// `503` with `Retry-After` (or gRPC `UNAVAILABLE`), marked [`QuotaUnavailable`].
///
/// [`QuotaUnavailable`]: super::QuotaUnavailable
#[cfg(feature = "redis")]
fn quota_unavailable<B, ResBody, R: Rejection<ResBody>>(
    rejection: &R,
    req: &Request<B>,
) -> Response<ResBody> {
    let refusal = Refusal::new(ErrorKind::QuotaUnavailable)
        .with_token(req.extensions().get::<VerifiedToken>())
        .answering(None, req.version(), req.headers());
    let mut res = response::answer(rejection, &refusal);
    res.extensions_mut().insert(super::QuotaUnavailable);
    res
}

/// The answer over quota: the rejection's answer to a [`ErrorKind::RateLimited`] refusal
/// (by default, 429 with `Retry-After`, or a trailers-only gRPC `RESOURCE_EXHAUSTED` with
/// `grpc-retry-pushback-ms`), marked [`RateLimited`].
fn too_many_requests<B, ResBody, R: Rejection<ResBody>>(
    rejection: &R,
    wait: Duration,
    req: &Request<B>,
) -> Response<ResBody> {
    let refusal = Refusal::new(ErrorKind::RateLimited)
        .with_retry_after(wait)
        .with_token(req.extensions().get::<VerifiedToken>())
        .answering(None, req.version(), req.headers());
    let mut res = response::answer(rejection, &refusal);
    res.extensions_mut()
        .insert(RateLimited { retry_after: wait });
    res
}
