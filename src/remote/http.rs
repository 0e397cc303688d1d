//! Fetching JSON documents (JWKS, discovery) and posting forms (token introspection) over
//! HTTP: the default client (hyper over rustls) or the caller's [`HttpService`], and the caps
//! and timeouts applied around whichever client is used.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http::header::CACHE_CONTROL;
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use crate::fetch::{self, FetchError, Fetched, HttpService, Limits};

use crate::error::{BoxError, ConfigError};

/// What [`Transport::send`] returns: the response with its body unread.
pub(crate) type SendFuture = Pin<
    Box<dyn Future<Output = Result<Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>> + Send>,
>;

/// The HTTP client of key sets, discovery and introspection, type-erased: the default
/// [`HyperClient`], or the caller's [`HttpService`] ([`Caller`]). Whatever the client,
/// timeouts, the body-size cap and the status check are applied around it (`fetch`), and
/// redirects are never followed.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Sends `request` (a `GET`, or a `POST` with a form body).
    fn send(&self, request: Request<Full<Bytes>>) -> SendFuture;
}

/// The client every fetch of one key source or introspection goes through.
pub(crate) type SharedTransport = Arc<dyn Transport>;

/// The caller's [`HttpService`], behind a lock so that it need not be `Sync`: each call
/// clones it (the lock is held for the clone only), as tower services expect.
pub(crate) struct Caller<S>(Mutex<S>);

impl<S: HttpService<Full<Bytes>>> Caller<S> {
    pub(crate) fn shared(service: S) -> SharedTransport {
        Arc::new(Caller(Mutex::new(service)))
    }
}

impl<S: HttpService<Full<Bytes>>> Transport for Caller<S> {
    fn send(&self, request: Request<Full<Bytes>>) -> SendFuture {
        let mut service = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            Ok(response.map(|body| {
                body.map_frame(|frame| {
                    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                })
                .map_err(Into::into)
                .boxed_unsync()
            }))
        })
    }
}

/// The default client: hyper-util over rustls, HTTP/1.1, no redirects.
pub(crate) struct HyperClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
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

/// The crypto provider of outgoing TLS: aws-lc-rs with the default `aws_lc_rs` feature (the
/// signature backend's library, with post-quantum hybrid key exchange preferred), ring with
/// `rust_crypto` alone. Passed explicitly, never the process default (which panics when
/// several providers are compiled in).
pub(crate) fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws_lc_rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws_lc_rs"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A TLS configuration for an issuer behind a private CA: the certificates of `ca_pem` (one
/// or more PEM `CERTIFICATE` blocks) are its only trust roots, the crypto provider is the
/// crate's (aws-lc-rs by default, ring with `rust_crypto` alone). Give it to
/// [`RemoteKeys::tls_config`](crate::RemoteKeys::tls_config) and
/// [`IntrospectionBuilder::tls_config`](crate::introspection::IntrospectionBuilder::tls_config).
///
/// ```
/// # fn f(ca_pem: &[u8]) -> Result<(), bearer_guard::ConfigError> {
/// use bearer_guard::RemoteKeys;
/// let keys = RemoteKeys::discover("https://login.internal")
///     .tls_config(bearer_guard::remote::private_ca(ca_pem)?);
/// # Ok(()) }
/// assert!(bearer_guard::remote::private_ca(b"not a certificate").is_err());
/// ```
///
/// # Errors
/// [`ConfigError::InvalidCertificate`] when `ca_pem` holds no certificate, or one that does
/// not parse.
pub fn private_ca(ca_pem: &[u8]) -> Result<rustls::ClientConfig, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| ConfigError::InvalidCertificate(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ConfigError::InvalidCertificate(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ConfigError::InvalidCertificate(
            "no CERTIFICATE block".to_owned(),
        ));
    }
    Ok(rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::InvalidCertificate(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// rustls with [`tls_provider`] and the system's root certificates.
fn default_tls() -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt as _;
    let builder = rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            // Both providers support the safe defaults; this branch is unreachable in practice.
            rustls::ClientConfig::builder_with_provider(tls_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("the provider supports TLS 1.3")
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

impl Transport for HyperClient {
    fn send(&self, request: Request<Full<Bytes>>) -> SendFuture {
        let fut = self.client.request(request);
        Box::pin(async move {
            let res = fut.await.map_err(|e| Box::new(e) as BoxError)?;
            Ok(res.map(|body| body.map_err(box_error).boxed_unsync()))
        })
    }
}

fn box_error(e: hyper::Error) -> BoxError {
    Box::new(e)
}

/// A JSON document fetched through `client`: `GET uri`, 200 only, within `limits`, with its
/// `Cache-Control: max-age`.
pub(crate) async fn get(
    client: &dyn Transport,
    uri: &Uri,
    limits: &Limits,
) -> Result<(Fetched, Option<Duration>), FetchError> {
    let fetched = fetch::get(fetch::service_fn(|req| client.send(req)), uri, limits).await?;
    let max_age = fetched
        .headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    Ok((fetched, max_age))
}

/// The limits of every key-set and discovery fetch: `200 OK` only.
pub(crate) fn limits(timeout: Duration, max_body: usize) -> Limits {
    Limits {
        timeout,
        max_body,
        accept: fetch::only_ok,
    }
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
