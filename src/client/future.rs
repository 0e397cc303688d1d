//! The response future of [`AddAccessToken`](super::AddAccessToken).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Boxed;
use super::error::BoxError;
use super::retry::After;
use crate::fetch::HttpService;

pin_project! {
    /// Response future of [`AddAccessToken`](super::AddAccessToken).
    ///
    /// With a cached token, this is the inner client's future (no allocation); only a
    /// request that must wait for a token request, or is retried after a 401, goes through
    /// a boxed future.
    pub struct AddAccessTokenFuture<S, B>
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
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<S, B> AddAccessTokenFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn sent(future: S::Future, after: Option<After<S, B>>) -> Self {
        AddAccessTokenFuture {
            kind: Kind::Sent { future, after },
        }
    }

    pub(crate) fn boxed(future: Boxed<S::Response>) -> Self {
        AddAccessTokenFuture {
            kind: Kind::Boxed { future },
        }
    }

    /// The request is not sent: `error` says why.
    pub(crate) fn failed(error: BoxError) -> Self {
        AddAccessTokenFuture {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<S, B> Future for AddAccessTokenFuture<S, B>
where
    S: HttpService<B>,
    B: From<Bytes> + Send + 'static,
{
    type Output = Result<Response<S::ResBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().kind.project() {
                KindProj::Sent { future, after } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let retry = after.take().and_then(|after| after.answered(&response));
                    match retry {
                        Some(future) => {
                            // The first answer is dropped; the retry's is returned.
                            self.as_mut().project().kind.set(Kind::Boxed { future });
                        }
                        None => return Poll::Ready(Ok(response)),
                    }
                }
                KindProj::Boxed { future } => return future.as_mut().poll(cx),
                KindProj::Failed { error } => {
                    let error = error
                        .take()
                        .expect("AddAccessTokenFuture polled after completion");
                    return Poll::Ready(Err(error));
                }
            }
        }
    }
}

impl<S, B> std::fmt::Debug for AddAccessTokenFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddAccessTokenFuture")
            .finish_non_exhaustive()
    }
}
