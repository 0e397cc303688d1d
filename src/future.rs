//! The response future of the crate's services ([`RequireScopeService`](crate::service::RequireScopeService),
//! and the rate limit's).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response};

use pin_project_lite::pin_project;

use crate::dpop::DPOP_NONCE;

/// The boxed branch: a request that waits (for keys, a store's answer) before the inner
/// service.
pub(crate) type Waiting<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// Response future of the crate's services.
    ///
    /// The inner service's future, or the rejection the layer answered with: neither
    /// allocates. Only a request that must wait (for the issuer's keys, a revocation or quota
    /// store's answer) goes through a boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        // The inner service's, whose response brings the next DPoP nonce.
        Renew { #[pin] future: F, nonce: Option<HeaderValue> },
        Reject { response: Option<Response<B>> },
        Wait { future: Waiting<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    /// The inner service's future, whose response gets `DPoP-Nonce: nonce` (when given).
    pub(crate) fn renew(future: F, nonce: Option<HeaderValue>) -> Self {
        ResponseFuture {
            kind: Kind::Renew { future, nonce },
        }
    }

    pub(crate) fn reject(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Reject {
                response: Some(response),
            },
        }
    }

    pub(crate) fn wait(future: Waiting<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Wait { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Renew { future, nonce } => {
                let response = ready!(future.poll(cx));
                Poll::Ready(response.map(|r| with_dpop_nonce(r, nonce.take())))
            }
            KindProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Wait { future } => future.as_mut().poll(cx),
        }
    }
}

/// `response`, with `DPoP-Nonce: nonce` when given (replacing any the inner service set).
pub(crate) fn with_dpop_nonce<B>(
    mut response: Response<B>,
    nonce: Option<HeaderValue>,
) -> Response<B> {
    if let Some(nonce) = nonce {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
    response
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
