//! [`OperationScopesService`] and its [`OperationScopesFuture`]: the body read up to the bound,
//! the decision, then the inner service with the same bytes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::Body;
use super::decide::{Shared, status};
use crate::response::{Rejection, StandardRejection};

/// Reads the request body, checks its operations, then calls the inner service with a
/// [`Body`] of the same bytes, or answers. Built by
/// [`OperationScopes`](super::OperationScopes).
pub struct OperationScopesService<S, R = StandardRejection> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S, R> OperationScopesService<S, R> {
    pub(super) fn new(inner: S, shared: Arc<Shared<R>>) -> Self {
        OperationScopesService { inner, shared }
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

impl<S: Clone, R> Clone for OperationScopesService<S, R> {
    fn clone(&self) -> Self {
        OperationScopesService {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for OperationScopesService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationScopesService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for OperationScopesService<S, R>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone,
    ReqBody: http_body::Body,
    R: Rejection<ResBody>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = OperationScopesFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let max = self.shared.max_body;
        if let Err(refused) = before_reading(&parts.headers, &body, max) {
            return OperationScopesFuture::answered(status(refused));
        }
        // The inner service is ready now; take that instance into the future and leave a
        // clone behind (tower-service: "be careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let expected = usize::try_from(http_body::Body::size_hint(&body).lower()).unwrap_or(max);
        OperationScopesFuture {
            state: State::Reading {
                body,
                read: Read::new(expected.min(max)),
                parts: Some(parts),
                inner: Some(inner),
                shared: Arc::clone(&self.shared),
            },
        }
    }
}

/// What is refused before a byte is read: an encoded body (this layer would not see the
/// JSON-RPC a decoding layer behind it hands on), and one announced over the limit.
fn before_reading<B: http_body::Body>(
    headers: &HeaderMap,
    body: &B,
    max: usize,
) -> Result<(), StatusCode> {
    let encoded = headers.get_all(CONTENT_ENCODING).iter().any(|value| {
        !value
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
    });
    if encoded {
        tracing::debug!(target: "bearer_guard::jsonrpc", "encoded JSON-RPC body: 415");
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .max(body.size_hint().lower());
    if announced > max as u64 {
        tracing::debug!(target: "bearer_guard::jsonrpc", length = announced, max, "JSON-RPC body over the limit: 413");
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    Ok(())
}

pin_project! {
    /// Response future of [`OperationScopesService`]: reads the body, then the inner
    /// service's future, or the answer the layer gave. No box: the body's bytes are the
    /// one buffer (none when the body came in one frame).
    pub struct OperationScopesFuture<S, B, R>
    where
        S: Service<Request<Body>>,
    {
        #[pin]
        state: State<S, B, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<Body>>,
    {
        Reading {
            #[pin]
            body: B,
            read: Read,
            parts: Option<Parts>,
            inner: Option<S>,
            shared: Arc<Shared<R>>,
        },
        Calling { #[pin] future: S::Future },
        Answered { response: Option<S::Response> },
    }
}

impl<S, B, R> OperationScopesFuture<S, B, R>
where
    S: Service<Request<Body>>,
{
    fn answered(response: S::Response) -> Self {
        OperationScopesFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }
}

impl<S, B, R, ResBody> Future for OperationScopesFuture<S, B, R>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    B: http_body::Body,
    R: Rejection<ResBody>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reading {
                    body,
                    read,
                    parts,
                    inner,
                    shared,
                } => {
                    let read = ready!(read.poll_body(body, shared.max_body, cx));
                    let parts = parts
                        .take()
                        .expect("OperationScopesFuture polled after completion");
                    let mut inner = inner
                        .take()
                        .expect("OperationScopesFuture polled after completion");
                    let decided = read
                        .map_err(status)
                        .and_then(|bytes| shared.decide(&parts, &bytes).map(|()| bytes));
                    let next = match decided {
                        Ok(bytes) => State::Calling {
                            future: inner.call(Request::from_parts(parts, Body::from(bytes))),
                        },
                        Err(response) => State::Answered {
                            response: Some(response),
                        },
                    };
                    state.set(next);
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Answered { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("OperationScopesFuture polled after completion")));
                }
            }
        }
    }
}

impl<S, B, R> fmt::Debug for OperationScopesFuture<S, B, R>
where
    S: Service<Request<Body>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationScopesFuture")
            .finish_non_exhaustive()
    }
}

/// The bytes read so far: none, one frame as it came, or several copied into one buffer.
/// Never more than the limit: a frame that would pass it is refused, not kept.
#[derive(Debug)]
struct Read {
    bytes: Collected,
    /// The body's announced length (at most the limit): the buffer's size when frames must
    /// be joined.
    expected: usize,
}

#[derive(Debug)]
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Read {
    fn new(expected: usize) -> Self {
        Read {
            bytes: Collected::Empty,
            expected,
        }
    }

    fn len(&self) -> usize {
        match &self.bytes {
            Collected::Empty => 0,
            Collected::One(bytes) => bytes.len(),
            Collected::Many(bytes) => bytes.len(),
        }
    }

    /// Reads `body` to its end: the bytes, or `413` as soon as they would pass `max`, or
    /// `400` when the body fails.
    fn poll_body<B: http_body::Body>(
        &mut self,
        mut body: Pin<&mut B>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, StatusCode>> {
        loop {
            let Some(frame) = ready!(body.as_mut().poll_frame(cx)) else {
                return Poll::Ready(Ok(self.take()));
            };
            let Ok(frame) = frame else {
                tracing::debug!(target: "bearer_guard::jsonrpc", "JSON-RPC body failed while read: 400");
                return Poll::Ready(Err(StatusCode::BAD_REQUEST));
            };
            // Trailers are not kept.
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if data.remaining() > max - self.len() {
                tracing::debug!(target: "bearer_guard::jsonrpc", max, "JSON-RPC body over the limit: 413");
                return Poll::Ready(Err(StatusCode::PAYLOAD_TOO_LARGE));
            }
            self.push(data.copy_to_bytes(data.remaining()));
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.bytes = match std::mem::replace(&mut self.bytes, Collected::Empty) {
            Collected::Empty => Collected::One(data),
            Collected::One(first) => {
                let mut joined =
                    BytesMut::with_capacity(self.expected.max(first.len() + data.len()));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Collected::Many(joined)
            }
            Collected::Many(mut joined) => {
                joined.extend_from_slice(&data);
                Collected::Many(joined)
            }
        };
    }

    fn take(&mut self) -> Bytes {
        match std::mem::replace(&mut self.bytes, Collected::Empty) {
            Collected::Empty => Bytes::new(),
            Collected::One(bytes) => bytes,
            Collected::Many(bytes) => bytes.freeze(),
        }
    }
}
