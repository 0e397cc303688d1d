//! An issuer stand-in over https whose certificate a test CA (rcgen) signed: RFC 8414
//! metadata, a JWKS of the test key `ec-1` (`bearer_guard::testkit`) and an introspection
//! endpoint (every token active, naming this issuer), at `https://localhost:<port>`. For
//! tests of a resource server behind a private CA (`tests/private_ca.rs`, the example's).
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;

use bearer_guard::testkit as mint;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A test CA.
pub struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA").der().clone();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `sans`, and its key.
    pub fn server(&self, sans: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, sans[0]);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    /// The CA certificate as PEM, as an operator's CA file holds it.
    pub fn pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.cert.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// A client configuration that trusts this CA only, as the crate builds it from a CA
    /// file.
    pub fn client_config(&self) -> rustls::ClientConfig {
        bearer_guard::remote::private_ca(self.pem().as_bytes()).expect("CA file")
    }
}

/// Serves the stand-in at `https://localhost:<port>` with this certificate; returns that URL
/// (the issuer identifier). It runs until the test's runtime ends.
pub async fn serve(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> String {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!(
        "https://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let issuer = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, issuer) = (acceptor.clone(), issuer.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let issuer = issuer.clone();
                    async move {
                        let body = match req.uri().path() {
                            "/.well-known/oauth-authorization-server" => Some(
                                json!({
                                    "issuer": issuer,
                                    "jwks_uri": format!("{issuer}/jwks"),
                                    "token_endpoint": format!("{issuer}/token"),
                                    "introspection_endpoint": format!("{issuer}/introspect"),
                                    "response_types_supported": ["code"],
                                })
                                .to_string(),
                            ),
                            "/jwks" => Some(mint::jwks(&["ec-1"])),
                            "/introspect" => Some(
                                json!({
                                    "active": true, "iss": issuer, "aud": mint::AUDIENCE,
                                    "client_id": "svc", "scope": "read",
                                    "exp": mint::now() + 600,
                                })
                                .to_string(),
                            ),
                            _ => None,
                        };
                        let mut res =
                            Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
                        if body.is_none() {
                            *res.status_mut() = StatusCode::NOT_FOUND;
                        }
                        res.headers_mut()
                            .insert("content-type", "application/json".parse().expect("ct"));
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    base
}
