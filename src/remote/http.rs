//! Fetching JSON documents (JWKS, discovery) over HTTP: a replaceable client, and the caps
//! and timeouts applied around whichever client is used.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};

use crate::error::BoxError;

/// The future an [`HttpClient`] returns.
pub type ResponseFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<BoxBody<Bytes, BoxError>>, BoxError>> + Send + 'a>>;

/// The HTTP client that fetches discovery documents and key sets.
///
/// The default is hyper with rustls (system roots, or your
/// [`tls_config`](crate::RemoteKeys::tls_config) for a private CA or mTLS). Implement
/// this trait to bring your own (a proxy-aware client, reqwest, a test double). Whatever the
/// client, timeouts, the body-size cap and the status check are applied around it, and
/// redirects are never followed: a client that follows them must stay on the same origin.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` (a `GET`) and returns the response with its body unread.
    fn send(&self, request: Request<Empty<Bytes>>) -> ResponseFuture<'_>;
}

/// The default client: hyper-util over rustls, HTTP/1.1, no redirects.
pub(crate) struct HyperClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
}

impl HyperClient {
    pub(crate) fn new(tls: Option<rustls::ClientConfig>, connect_timeout: Duration) -> Self {
        let tls = tls.unwrap_or_else(default_tls);
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https);
        HyperClient { client }
    }
}

/// rustls with the `ring` provider passed explicitly (never the process default, which
/// panics when several providers are compiled in) and the system's root certificates.
fn default_tls() -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt as _;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|_| {
        // `ring` supports the safe defaults; this branch is unreachable in practice.
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
    });
    match builder.clone().with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(err) => {
            tracing::warn!(
                target: "bearer_guard::remote",
                reason = "no_root_certificates",
                error = %err,
                "no system root certificates; https fetches will fail until `tls_config` is set"
            );
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    }
}

impl HttpClient for HyperClient {
    fn send(&self, request: Request<Empty<Bytes>>) -> ResponseFuture<'_> {
        let fut = self.client.request(request);
        Box::pin(async move {
            let res = fut.await.map_err(|e| Box::new(e) as BoxError)?;
            Ok(res.map(|body| body.map_err(box_error).boxed()))
        })
    }
}

fn box_error(e: hyper::Error) -> BoxError {
    Box::new(e)
}

/// Limits applied to every fetch.
#[derive(Clone, Debug)]
pub(crate) struct FetchLimits {
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
}

/// A fetched document and its `Cache-Control: max-age`.
pub(crate) struct Fetched {
    pub(crate) body: Bytes,
    pub(crate) max_age: Option<Duration>,
}

/// Why a fetch failed. Holds the URL and a reason, never a body.
#[derive(Debug, Clone)]
pub(crate) enum FetchError {
    Timeout,
    Transport(String),
    Status(StatusCode),
    TooLarge(usize),
    Invalid(String),
}

impl FetchError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Transport(_) => "transport",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Invalid(_) => "invalid_document",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Transport(e) => write!(f, "transport error: {e}"),
            FetchError::Status(s) if s.is_redirection() => {
                write!(f, "HTTP {s} (redirects are not followed)")
            }
            FetchError::Status(s) => write!(f, "HTTP {s}"),
            FetchError::TooLarge(max) => write!(f, "response larger than {max} bytes"),
            FetchError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// `GET uri` through `client`, with the total timeout, the status check and the body cap.
pub(crate) async fn get(
    client: &dyn HttpClient,
    uri: &Uri,
    limits: &FetchLimits,
) -> Result<Fetched, FetchError> {
    let request = Request::get(uri.clone())
        .header(ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    let fetch = async {
        let res = client
            .send(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if res.status() != StatusCode::OK {
            return Err(FetchError::Status(res.status()));
        }
        let declared = res
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_body as u64) {
            return Err(FetchError::TooLarge(limits.max_body));
        }
        let max_age = res
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let mut body = res.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Transport(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limits.max_body {
                    return Err(FetchError::TooLarge(limits.max_body));
                }
                buf.extend_from_slice(&data);
            }
        }
        let body = Bytes::from(buf);
        Ok(Fetched { body, max_age })
    };
    tokio::time::timeout(limits.timeout, fetch)
        .await
        .map_err(|_| FetchError::Timeout)?
}

/// `max-age` from a `Cache-Control` value; `no-store` and `no-cache` count as zero.
pub(crate) fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            age = arg
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache, max-age=300"), Some(Duration::ZERO));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }
}
