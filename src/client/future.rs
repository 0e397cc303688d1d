//! The response future of [`AddAccessToken`](super::AddAccessToken).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::cache::{Slot, Token};
use super::error::BoxError;
use super::layer::Shared;

/// The boxed branch: waiting for a token, or the retry after a 401.
pub(crate) type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// What a sent request still needs if the upstream answers 401.
pub(crate) struct After<S, B> {
    pub(crate) slot: Arc<Slot>,
    pub(crate) token: Arc<Token>,
    /// A ready-to-poll clone of the inner service and a copy of the request, when the
    /// request can be replayed.
    pub(crate) retry: Option<(S, Request<B>)>,
    pub(crate) shared: Arc<Shared>,
}

pin_project! {
    /// Response future of [`AddAccessToken`](super::AddAccessToken).
    ///
    /// With a cached token, this is the inner client's future (no allocation); only a
    /// request that must wait for a token request, or is retried after a 401, goes through
    /// a boxed future.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        kind: Kind<S, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B>
    where
        S: Service<Request<B>>,
    {
        Sent {
            #[pin]
            future: S::Future,
            after: Option<After<S, B>>,
        },
        Boxed {
            future: Boxed<S::Response>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn sent(future: S::Future, after: Option<After<S, B>>) -> Self {
        ResponseFuture {
            kind: Kind::Sent { future, after },
        }
    }

    pub(crate) fn boxed(future: Boxed<S::Response>) -> Self {
        ResponseFuture {
            kind: Kind::Boxed { future },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().kind.project() {
                KindProj::Sent { future, after } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let retry = after.take().and_then(|after| after.unauthorized(&response));
                    match retry {
                        Some(future) => {
                            // The first answer is dropped; the retry's is returned.
                            self.as_mut().project().kind.set(Kind::Boxed { future });
                        }
                        None => return Poll::Ready(Ok(response)),
                    }
                }
                KindProj::Boxed { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
