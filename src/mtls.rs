//! Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf` has `x5t#S256` is
//! accepted only from a TLS connection whose client certificate hashes to it.
//!
//! The layer cannot see TLS. The application hands it the connection's client certificate
//! as a [`PeerCertificate`] in each request's extensions:
//!
//! - with rustls (feature `mtls`): [`PeerCertificate::from_tls_stream`] once per accepted
//!   connection, and [`AddPeerCertificateLayer`] around the service that serves it
//!   (`examples/mtls.rs` does exactly that with hyper);
//! - with any other TLS stack: [`PeerCertificate::from_der`] with the leaf certificate's DER,
//!   inserted the same way;
//! - behind a proxy that terminates TLS: only from a header the proxy sets itself and strips
//!   from what clients send (RFC 8705 §7.2 leaves this to the deployment); anyone who can set
//!   that header can claim any certificate.
//!
//! [`check_x5t`] then compares the token's `cnf.x5t#S256` with the certificate, in constant
//! time. A missing or different certificate is answered 401 `invalid_token` (RFC 8705 §3).
//! The TLS server itself must require client certificates, or ask for them and let the
//! binding check refuse requests without one; this check does not validate the chain (the
//! TLS handshake did, against the CAs the server trusts).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Request;
use subtle::ConstantTimeEq as _;
use tower_layer::Layer;
use tower_service::Service;

pub use crate::error::mtls::{MtlsError, MtlsErrorKind};
use crate::keyring::provider;

/// The client's leaf certificate of the request's TLS connection, as a request extension.
///
/// Cheap to clone (one `Arc`). `Debug` shows only the thumbprint.
#[derive(Clone)]
pub struct PeerCertificate {
    inner: Arc<Inner>,
}

struct Inner {
    der: Box<[u8]>,
    x5t_s256: String,
}

impl PeerCertificate {
    /// A certificate from its DER encoding (what TLS libraries hand out).
    #[must_use]
    pub fn from_der(der: impl Into<Vec<u8>>) -> Self {
        let der = der.into().into_boxed_slice();
        // SHA-256 cannot fail in either backend; an empty thumbprint would match nothing.
        let x5t_s256 =
            (provider().key_utils.compute_digest)(&der, jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .map(|digest| URL_SAFE_NO_PAD.encode(digest))
                .unwrap_or_default();
        PeerCertificate {
            inner: Arc::new(Inner { der, x5t_s256 }),
        }
    }

    /// The leaf certificate a rustls server connection received, if the client sent one.
    #[cfg(feature = "mtls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
    #[must_use]
    pub fn from_rustls(conn: &rustls::ServerConnection) -> Option<Self> {
        let leaf = conn.peer_certificates()?.first()?;
        Some(PeerCertificate::from_der(leaf.as_ref()))
    }

    /// The leaf certificate of an accepted `tokio-rustls` connection, if the client sent one.
    #[cfg(feature = "mtls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
    #[must_use]
    pub fn from_tls_stream<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> Option<Self> {
        PeerCertificate::from_rustls(stream.get_ref().1)
    }

    /// The certificate's DER encoding.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// Its SHA-256 thumbprint, base64url (RFC 8705 §3.1): what `cnf.x5t#S256` holds.
    #[must_use]
    pub fn x5t_s256(&self) -> &str {
        &self.inner.x5t_s256
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("x5t#S256", &self.inner.x5t_s256)
            .finish()
    }
}

/// Checks a certificate-bound token: `cnf_x5t` (the token's `cnf.x5t#S256`) must be the
/// thumbprint of `peer`, compared in constant time.
///
/// ```
/// use bearer_guard::mtls::{MtlsErrorKind, PeerCertificate, check_x5t};
/// let peer = PeerCertificate::from_der(b"certificate DER".to_vec());
/// assert!(check_x5t(peer.x5t_s256(), Some(&peer)).is_ok());
/// assert_eq!(
///     check_x5t(peer.x5t_s256(), None).unwrap_err().kind(),
///     MtlsErrorKind::MissingCertificate
/// );
/// ```
///
/// # Errors
/// [`MtlsErrorKind::MissingCertificate`] without a certificate,
/// [`MtlsErrorKind::CertificateMismatch`] when the thumbprints differ.
pub fn check_x5t(cnf_x5t: &str, peer: Option<&PeerCertificate>) -> Result<(), MtlsError> {
    let peer = peer.ok_or(MtlsError::new(MtlsErrorKind::MissingCertificate))?;
    let ours = peer.x5t_s256().as_bytes();
    if ours.is_empty() || !bool::from(ours.ct_eq(cnf_x5t.as_bytes())) {
        return Err(MtlsError::new(MtlsErrorKind::CertificateMismatch));
    }
    Ok(())
}

/// Inserts one connection's [`PeerCertificate`] into every request served on it. Build one
/// per accepted connection, around the application's service.
#[derive(Clone, Debug)]
pub struct AddPeerCertificateLayer {
    cert: Option<PeerCertificate>,
}

impl AddPeerCertificateLayer {
    /// A layer for a connection with this client certificate (`None`: the client sent
    /// none; requests then carry no `PeerCertificate`).
    #[must_use]
    pub fn new(cert: Option<PeerCertificate>) -> Self {
        AddPeerCertificateLayer { cert }
    }
}

impl<S> Layer<S> for AddPeerCertificateLayer {
    type Service = AddPeerCertificate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddPeerCertificate {
            inner,
            cert: self.cert.clone(),
        }
    }
}

/// The service of [`AddPeerCertificateLayer`].
#[derive(Clone, Debug)]
pub struct AddPeerCertificate<S> {
    inner: S,
    cert: Option<PeerCertificate>,
}

impl<S, B> Service<Request<B>> for AddPeerCertificate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // A request never brings its own certificate: whatever is there is replaced.
        match &self.cert {
            Some(cert) => {
                req.extensions_mut().insert(cert.clone());
            }
            None => {
                req.extensions_mut().remove::<PeerCertificate>();
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt as _, service_fn};

    use super::*;

    #[test]
    fn thumbprint_is_base64url_sha256_of_the_der() {
        // SHA-256("abc") (FIPS 180-2 appendix B.1), base64url.
        let peer = PeerCertificate::from_der(b"abc".to_vec());
        assert_eq!(
            peer.x5t_s256(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert_eq!(peer.der(), b"abc");
        let shown = format!("{peer:?}");
        assert!(
            shown.contains("ungWv48B") && !shown.contains("97, 98"),
            "{shown}"
        );
    }

    #[test]
    fn check_x5t_needs_the_same_certificate() {
        let a = PeerCertificate::from_der(b"cert a".to_vec());
        let b = PeerCertificate::from_der(b"cert b".to_vec());
        assert_eq!(check_x5t(a.x5t_s256(), Some(&a)), Ok(()));
        let kind = |cnf: &str, peer| check_x5t(cnf, peer).map_err(|e| e.kind());
        assert_eq!(
            kind(a.x5t_s256(), Some(&b)),
            Err(MtlsErrorKind::CertificateMismatch)
        );
        assert_eq!(
            kind(a.x5t_s256(), None),
            Err(MtlsErrorKind::MissingCertificate)
        );
        assert_eq!(kind("", Some(&a)), Err(MtlsErrorKind::CertificateMismatch));
        assert_eq!(
            kind(&a.x5t_s256()[1..], Some(&a)),
            Err(MtlsErrorKind::CertificateMismatch)
        );
    }

    /// Through the resource server's layer: a certificate-bound token over the wrong
    /// certificate, or none, is refused as `BindingMismatch`, and the answer's `AuthError`
    /// says which certificate check failed.
    #[tokio::test]
    async fn a_refused_binding_says_which_certificate_check_failed() {
        use crate::testkit::{self as mint, layer::bearer};
        use crate::{AuthError, ErrorKind, RequireScope};

        let ours = PeerCertificate::from_der(b"cert a".to_vec());
        let theirs = PeerCertificate::from_der(b"cert b".to_vec());
        let token = mint::token(
            "ec-1",
            serde_json::json!({"cnf": {"x5t#S256": ours.x5t_s256()}}),
        );
        let layer = RequireScope::authenticated(&mint::validator());
        let ok =
            service_fn(|_: Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) });
        let service = tower_layer::Layer::layer(&layer, ok);
        for (peer, expected) in [
            (Some(&ours), None),
            (Some(&theirs), Some(MtlsErrorKind::CertificateMismatch)),
            (None, Some(MtlsErrorKind::MissingCertificate)),
        ] {
            let mut req = Request::builder()
                .header("authorization", bearer(&token))
                .body(())
                .expect("request");
            if let Some(peer) = peer {
                req.extensions_mut().insert(peer.clone());
            }
            let res = service.clone().oneshot(req).await.expect("infallible");
            let error = res.extensions().get::<AuthError>();
            assert_eq!(error.and_then(AuthError::certificate_error), expected);
            if expected.is_some() {
                assert_eq!(res.status(), http::StatusCode::UNAUTHORIZED);
                assert_eq!(error.map(AuthError::kind), Some(ErrorKind::BindingMismatch));
                assert_eq!(error.and_then(AuthError::dpop_error), None);
            } else {
                assert_eq!(res.status(), http::StatusCode::OK);
            }
        }
    }

    #[tokio::test]
    async fn layer_replaces_whatever_certificate_a_request_brings() {
        let seen = |req: Request<()>| async move {
            Ok::<_, Infallible>(
                req.extensions()
                    .get::<PeerCertificate>()
                    .map(|c| c.x5t_s256().to_owned()),
            )
        };
        let ours = PeerCertificate::from_der(b"ours".to_vec());
        let mut forged = Request::new(());
        forged
            .extensions_mut()
            .insert(PeerCertificate::from_der(b"forged".to_vec()));
        let with = AddPeerCertificateLayer::new(Some(ours.clone())).layer(service_fn(seen));
        assert_eq!(
            with.oneshot(forged).await.expect("infallible").as_deref(),
            Some(ours.x5t_s256())
        );
        let mut forged = Request::new(());
        forged
            .extensions_mut()
            .insert(PeerCertificate::from_der(b"forged".to_vec()));
        let without = AddPeerCertificateLayer::new(None).layer(service_fn(seen));
        assert_eq!(without.oneshot(forged).await.expect("infallible"), None);
    }
}
