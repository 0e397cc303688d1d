//! One bounded HTTP fetch over any tower `Service`: a total timeout, a body-size cap (checked
//! against `Content-Length` first, then while reading), redirects never followed, a status
//! check the caller chooses, and one typed error, [`FetchError`], that names the URL
//! (without userinfo), says what failed and what to check.
//!
//! The outgoing client's token requests go through it; so can the remote key sets, whose
//! type-erased client becomes a `Service` with [`service_fn`]:
//!
//! ```ignore
//! let fetched = fetch::get(fetch::service_fn(|req| client.send(req)), &uri, &limits).await?;
//! ```

mod error;
#[cfg(test)]
mod tests;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{ACCEPT, CONTENT_LENGTH, LOCATION};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::error::BoxError;

pub use self::error::{FetchError, FetchErrorKind};

/// The limits and the status rule of one fetch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// From `poll_ready` to the last byte of the body.
    pub(crate) timeout: Duration,
    /// Largest body read, in bytes.
    pub(crate) max_body: usize,
    /// The statuses whose body is read; any other is a [`FetchErrorKind::Status`] error. A
    /// 3xx always is one: redirects are never followed.
    pub(crate) accept: fn(StatusCode) -> bool,
}

/// The status rule of a document fetch (JWKS, discovery): `200 OK` only.
#[allow(dead_code)] // for the remote key sets, which move onto this fetch next
pub(crate) fn only_ok(status: StatusCode) -> bool {
    status == StatusCode::OK
}

/// A response read whole, within the limits.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    #[allow(dead_code)] // the remote key sets read `Cache-Control`
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    url: Arc<str>,
}

impl Fetched {
    /// The URL it was fetched from, without userinfo.
    pub(crate) fn url(&self) -> &Arc<str> {
        &self.url
    }

    /// The body as JSON. The error names the position of the fault, never the content.
    #[allow(dead_code)] // for the remote key sets, which move onto this fetch next
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, FetchError> {
        json(&self.url, self.status, &self.body)
    }
}

/// `body` as JSON `T`; a failure is a [`FetchErrorKind::InvalidJson`] error for `url`.
pub(crate) fn json<T: DeserializeOwned>(
    url: &Arc<str>,
    status: StatusCode,
    body: &[u8],
) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::invalid_json(Arc::clone(url), status, &e))
}

/// `GET uri` with `Accept: application/json` and an empty body, through [`send`].
#[allow(dead_code)] // for the remote key sets, which move onto this fetch next
pub(crate) async fn get<S, B, R>(
    service: S,
    uri: &Uri,
    limits: &Limits,
) -> Result<Fetched, FetchError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    B: Default,
    R: Body,
    R::Error: Into<BoxError>,
{
    let mut request = Request::new(B::default());
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(ACCEPT, http::HeaderValue::from_static("application/json"));
    send(service, request, limits).await
}

/// Sends `request` through `service` (after `poll_ready`) and reads the whole answer, all
/// within `limits.timeout`; the body is read only for a status `limits.accept`s, and only up
/// to `limits.max_body` bytes.
pub(crate) async fn send<S, B, R>(
    mut service: S,
    request: Request<B>,
    limits: &Limits,
) -> Result<Fetched, FetchError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: Body,
    R::Error: Into<BoxError>,
{
    let url: Arc<str> = crate::url::redact(&request.uri().to_string()).into();
    let exchange = exchange(&mut service, request, limits, &url);
    match tokio::time::timeout(limits.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::timeout(url, limits.timeout)),
    }
}

async fn exchange<S, B, R>(
    service: &mut S,
    request: Request<B>,
    limits: &Limits,
    url: &Arc<str>,
) -> Result<Fetched, FetchError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: Body,
    R::Error: Into<BoxError>,
{
    let sent = async {
        poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(request).await
    };
    let response = sent
        .await
        .map_err(|e| FetchError::send(Arc::clone(url), e.into()))?;
    let (parts, body) = response.into_parts();
    let status = parts.status;
    if status.is_redirection() {
        let location = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok());
        return Err(FetchError::redirect(Arc::clone(url), status, location));
    }
    if !(limits.accept)(status) {
        return Err(FetchError::unaccepted(Arc::clone(url), status));
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body as u64) {
        return Err(FetchError::too_large(
            Arc::clone(url),
            status,
            limits.max_body,
        ));
    }
    let body = read_capped(body, limits.max_body, url, status).await?;
    Ok(Fetched {
        status,
        headers: parts.headers,
        body,
        url: Arc::clone(url),
    })
}

/// The whole body, refused as soon as it grows past `max` bytes.
async fn read_capped<R>(
    body: R,
    max: usize,
    url: &Arc<str>,
    status: StatusCode,
) -> Result<Bytes, FetchError>
where
    R: Body,
    R::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::body(Arc::clone(url), status, e.into()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len().saturating_add(data.remaining()) > max {
            return Err(FetchError::too_large(Arc::clone(url), status, max));
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            buf.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    Ok(Bytes::from(buf))
}

/// A [`Service`] from a closure returning a future: how a type-erased client (say an
/// `Arc<dyn HttpClient>`, whose `send` returns a boxed future) goes through [`send`].
#[allow(dead_code)] // for the remote key sets, which move onto this fetch next
pub(crate) fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

/// See [`service_fn`]. Always ready.
#[allow(dead_code)] // for the remote key sets, which move onto this fetch next
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServiceFn<F>(F);

impl<F, Fut, B, R, E> Service<Request<B>> for ServiceFn<F>
where
    F: FnMut(Request<B>) -> Fut,
    Fut: Future<Output = Result<Response<R>, E>>,
{
    type Response = Response<R>;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Fut {
        (self.0)(request)
    }
}
