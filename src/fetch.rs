//! Outgoing HTTP calls (key sets, discovery, introspection, token requests): the one client
//! abstraction they all go through ([`HttpService`], any tower `Service` of `http` requests),
//! and what they can fail with: one typed [`FetchError`] that names the URL (without
//! userinfo), says what failed ([`FetchErrorKind`]) and what to check.
//
// Inside: one bounded fetch over any tower `Service`: a total timeout, a body-size cap
// (checked against `Content-Length` first, then while reading), redirects never followed, a
// status check the caller chooses. The remote key sets and discovery documents use it through
// `service_fn`.

mod error;
mod service;

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
pub use self::service::HttpService;

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
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn only_ok(status: StatusCode) -> bool {
    status == StatusCode::OK
}

/// A response read whole, within the limits.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    url: Arc<str>,
}

impl Fetched {
    /// The URL it was fetched from, without userinfo.
    pub(crate) fn url(&self) -> &Arc<str> {
        &self.url
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
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
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

/// A [`Service`] from a closure returning a future: how the type-erased client of the key
/// sets and introspection (`remote::http::SharedTransport`, whose `send` returns a boxed
/// future) goes through [`send`].
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

/// See [`service_fn`]. Always ready.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
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

#[cfg(test)]
mod tests {
    // The bounded fetch against `service_fn`s (each kind of failure) and over real sockets.

    use std::convert::Infallible;
    use std::error::Error as StdError;
    use std::fmt;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::header::{CONTENT_LENGTH, LOCATION};
    use http_body::Frame;
    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::service_fn as tower_service_fn;

    use super::*;

    const URL: &str = "https://issuer.example/doc";

    fn limits(timeout_ms: u64, max_body: usize) -> Limits {
        Limits {
            timeout: Duration::from_millis(timeout_ms),
            max_body,
            accept: only_ok,
        }
    }

    /// One fetch of `URL` through a `service_fn` answering with `answer`.
    async fn fetch_with<F, Fut, R>(answer: F, limits: &Limits) -> Result<Fetched, FetchError>
    where
        F: FnMut(Request<Empty<Bytes>>) -> Fut,
        Fut: Future<Output = Result<Response<R>, BoxError>>,
        R: Body,
        R::Error: Into<BoxError>,
    {
        get(tower_service_fn(answer), &Uri::from_static(URL), limits).await
    }

    fn response(status: u16, body: &'static str) -> Response<Full<Bytes>> {
        let mut res = Response::new(Full::from(body));
        *res.status_mut() = StatusCode::from_u16(status).expect("status");
        res
    }

    /// An error shaped like hyper-util's connector error ("tcp connect error", source io).
    #[derive(Debug)]
    struct ConnectLike(std::io::Error);

    impl fmt::Display for ConnectLike {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("tcp connect error")
        }
    }

    impl StdError for ConnectLike {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    type Answer = std::future::Ready<Result<Response<Full<Bytes>>, BoxError>>;

    /// A case of a failing `call`: the error, the kind it is told as, what the message says.
    type Case = (fn() -> BoxError, FetchErrorKind, &'static str);

    fn failing(err: impl Fn() -> BoxError) -> impl FnMut(Request<Empty<Bytes>>) -> Answer {
        move |_| std::future::ready(Err(err()))
    }

    #[tokio::test]
    async fn reads_an_accepted_answer_whole_and_asks_for_json() {
        let fetched = fetch_with(
            |req: Request<Empty<Bytes>>| async move {
                assert_eq!(req.uri(), URL);
                assert_eq!(req.headers()[ACCEPT], "application/json");
                Ok(response(200, r#"{"keys":[]}"#))
            },
            &limits(1000, 1024),
        )
        .await
        .expect("fetched");
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(&fetched.body[..], br#"{"keys":[]}"#);
        let value: serde_json::Value =
            json(fetched.url(), fetched.status, &fetched.body).expect("json");
        assert!(value["keys"].is_array());
    }

    #[tokio::test]
    async fn send_failures_are_told_apart_by_the_error_chain() {
        use std::io::{Error, ErrorKind};
        let cases: [Case; 5] = [
            (
                || Box::new(Error::from(ErrorKind::ConnectionRefused)),
                FetchErrorKind::Connect,
                "could not connect to https://issuer.example/doc (connection refused); check",
            ),
            (
                || {
                    Box::new(ConnectLike(Error::other(
                        "failed to lookup address information",
                    )))
                },
                FetchErrorKind::Connect,
                "(failed to lookup address information)",
            ),
            (
                || {
                    Box::new(ConnectLike(Error::new(
                        ErrorKind::InvalidData,
                        "invalid peer certificate: UnknownIssuer",
                    )))
                },
                FetchErrorKind::Tls,
                "TLS handshake with https://issuer.example/doc failed (invalid peer certificate: UnknownIssuer)",
            ),
            (
                || Box::new(Error::from(ErrorKind::ConnectionReset)),
                FetchErrorKind::Transport,
                "request to https://issuer.example/doc failed after connecting (connection reset)",
            ),
            (
                || "line one\nline two".into(),
                FetchErrorKind::Transport,
                "(line one line two)",
            ),
        ];
        for (make, kind, says) in cases {
            let err = fetch_with(failing(make), &limits(1000, 1024))
                .await
                .expect_err("fails");
            assert_eq!(err.kind(), kind, "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.source().is_some());
            assert_eq!(err.status(), None);
        }
    }

    #[cfg(feature = "remote")]
    #[tokio::test]
    async fn a_rustls_error_in_the_chain_is_tls() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let err = fetch_with(
            failing(move || {
                Box::new(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    tls.clone(),
                ))
            }),
            &limits(1000, 1024),
        )
        .await
        .expect_err("fails");
        assert_eq!(err.kind(), FetchErrorKind::Tls);
    }

    #[tokio::test]
    async fn poll_ready_failures_count_too() {
        struct NeverReady;
        impl Service<Request<Empty<Bytes>>> for NeverReady {
            type Response = Response<Full<Bytes>>;
            type Error = std::io::Error;
            type Future = std::future::Pending<Result<Self::Response, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Err(std::io::ErrorKind::ConnectionRefused.into()))
            }
            fn call(&mut self, _: Request<Empty<Bytes>>) -> Self::Future {
                std::future::pending()
            }
        }
        let err = get(NeverReady, &Uri::from_static(URL), &limits(1000, 10))
            .await
            .expect_err("fails");
        assert_eq!(err.kind(), FetchErrorKind::Connect);
    }

    #[tokio::test]
    async fn no_answer_in_time_is_a_timeout() {
        let err = fetch_with(
            |_| std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>(),
            &limits(50, 1024),
        )
        .await
        .expect_err("times out");
        assert_eq!(err.kind(), FetchErrorKind::Timeout);
        assert!(
            err.to_string()
                .contains("no complete answer from https://issuer.example/doc within 50ms"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn statuses_not_accepted_and_redirects_are_errors() {
        let err = fetch_with(
            |_| async { Ok(response(404, "secret-ish page")) },
            &limits(1000, 1024),
        )
        .await
        .expect_err("404");
        assert_eq!(err.kind(), FetchErrorKind::Status(StatusCode::NOT_FOUND));
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert!(
            err.to_string().contains("answered HTTP 404 Not Found"),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("secret-ish"));

        // A redirect is never followed, whatever the status rule accepts.
        let accept_all = Limits {
            accept: |_| true,
            ..limits(1000, 1024)
        };
        let err = fetch_with(
            |_| async {
                let mut res = response(302, "");
                res.headers_mut().insert(
                    LOCATION,
                    http::HeaderValue::from_static("https://user:hunter2@elsewhere.example/doc"),
                );
                Ok(res)
            },
            &accept_all,
        )
        .await
        .expect_err("redirect");
        assert_eq!(err.kind(), FetchErrorKind::Status(StatusCode::FOUND));
        let message = err.to_string();
        assert!(
            message
                .contains("a redirect to https://***@elsewhere.example/doc, which is not followed"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");

        // Statuses the rule accepts are read.
        let fetched = fetch_with(|_| async { Ok(response(400, "{}")) }, &accept_all)
            .await
            .expect("accepted");
        assert_eq!(fetched.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_by_header_and_while_reading() {
        for declared in [true, false] {
            let err = fetch_with(
                move |_| async move {
                    let mut res = response(200, "0123456789abcdef");
                    if declared {
                        res.headers_mut().insert(CONTENT_LENGTH, 16.into());
                    }
                    Ok(res)
                },
                &limits(1000, 15),
            )
            .await
            .expect_err("too large");
            assert_eq!(err.kind(), FetchErrorKind::TooLarge);
            assert!(err.to_string().contains("is larger than 15 bytes"), "{err}");
        }
        // Exactly at the cap is fine.
        let fetched = fetch_with(
            |_| async { Ok(response(200, "0123456789abcdef")) },
            &limits(1000, 16),
        )
        .await
        .expect("at the cap");
        assert_eq!(fetched.body.len(), 16);
    }

    /// A body that fails after its first frame.
    struct Broken(bool);

    impl Body for Broken {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())))
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_breaks_and_a_body_that_is_not_json() {
        let err = fetch_with(
            |_| async { Ok(Response::new(Broken(false))) },
            &limits(1000, 1024),
        )
        .await
        .expect_err("broken");
        assert_eq!(err.kind(), FetchErrorKind::Body);
        assert!(
            err.to_string().contains(
                "reading the answer of https://issuer.example/doc failed (unexpected end of file)"
            ),
            "{err}"
        );

        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            n: u64,
        }
        let fetched = fetch_with(
            |_| async { Ok(response(200, r#"{"n":"token-SECRET"}"#)) },
            &limits(1000, 1024),
        )
        .await
        .expect("fetched");
        let err =
            json::<Doc>(fetched.url(), fetched.status, &fetched.body).expect_err("not a number");
        assert_eq!(err.kind(), FetchErrorKind::InvalidJson);
        let message = format!("{err} {err:?}");
        assert!(
            message.contains("unexpected member or type at line 1, column"),
            "{message}"
        );
        assert!(!message.contains("SECRET"), "{message}");
    }

    #[tokio::test]
    async fn userinfo_never_prints() {
        let uri = Uri::from_static("https://user:hunter2@issuer.example/doc");
        let err = get(
            tower_service_fn(|_: Request<Empty<Bytes>>| async {
                Ok::<_, Infallible>(response(500, ""))
            }),
            &uri,
            &limits(1000, 10),
        )
        .await
        .expect_err("500");
        assert_eq!(err.url(), "https://***@issuer.example/doc");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    // ---------------------------------------------------------------------------------------
    // Over real sockets, with hyper-util's client.

    /// Answers every connection with `reply` after `delay`, then closes it.
    async fn serve(reply: &'static [u8], delay: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        addr
    }

    fn hyper_client() -> hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    > {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
    }

    async fn fetch_over_socket(url: &str, limits: &Limits) -> Result<Fetched, FetchError> {
        get(hyper_client(), &url.parse().expect("uri"), limits).await
    }

    #[tokio::test]
    async fn over_a_socket_connect_refused_is_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url = format!("http://{addr}/jwks");
        let err = fetch_over_socket(&url, &limits(5000, 1024))
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), FetchErrorKind::Connect, "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("could not connect to {url} (")),
            "{message}"
        );
        assert!(!message.contains("client error (Connect)"), "{message}");
    }

    #[tokio::test]
    async fn over_a_socket_a_slow_server_hits_the_timeout() {
        let addr = serve(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
            Duration::from_secs(30),
        )
        .await;
        let err = fetch_over_socket(&format!("http://{addr}/jwks"), &limits(200, 1024))
            .await
            .expect_err("slow");
        assert_eq!(err.kind(), FetchErrorKind::Timeout);
    }

    #[tokio::test]
    async fn over_a_socket_oversized_bodies_are_refused() {
        const DECLARED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n";
        const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            200\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n0\r\n\r\n";
        for reply in [DECLARED, CHUNKED] {
            let addr = serve(reply, Duration::ZERO).await;
            let err = fetch_over_socket(&format!("http://{addr}/jwks"), &limits(5000, 100))
                .await
                .expect_err("too large");
            assert_eq!(err.kind(), FetchErrorKind::TooLarge, "{err}");
        }
    }

    #[tokio::test]
    async fn over_a_socket_a_redirect_is_not_followed() {
        let addr = serve(
            b"HTTP/1.1 301 Moved Permanently\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n",
            Duration::ZERO,
        )
        .await;
        let err = fetch_over_socket(&format!("http://{addr}/jwks"), &limits(5000, 100))
            .await
            .expect_err("redirect");
        assert_eq!(
            err.kind(),
            FetchErrorKind::Status(StatusCode::MOVED_PERMANENTLY)
        );
        assert!(
            err.to_string()
                .contains("a redirect to http://127.0.0.1:9/elsewhere"),
            "{err}"
        );
    }

    /// The remote key sets' type-erased client goes through the same fetch, by `service_fn`;
    /// over a real socket, its default (hyper-util with rustls) client also tells TLS failures
    /// apart: https to a server that answers in plain text.
    #[cfg(feature = "remote")]
    #[tokio::test]
    async fn a_type_erased_client_fetches_through_service_fn() {
        use std::sync::Arc;

        use crate::remote::http::{HyperClient, SharedTransport};

        let client: SharedTransport = Arc::new(HyperClient::new(None, Duration::from_secs(5)));
        let addr = serve(
            b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"keys\":[]}",
            Duration::ZERO,
        )
        .await;
        let uri: Uri = format!("http://{addr}/jwks").parse().expect("uri");
        let fetched = get(
            service_fn(|req| client.send(req)),
            &uri,
            &limits(5000, 1024),
        )
        .await
        .expect("fetched");
        assert_eq!(&fetched.body[..], br#"{"keys":[]}"#);

        let uri: Uri = format!("https://{addr}/jwks").parse().expect("uri");
        let err = get(
            service_fn(|req| client.send(req)),
            &uri,
            &limits(5000, 1024),
        )
        .await
        .expect_err("not TLS");
        assert_eq!(err.kind(), FetchErrorKind::Tls, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("TLS handshake with https://{addr}/jwks failed")),
            "{err}"
        );
    }
}
