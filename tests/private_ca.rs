//! Real TLS to an issuer behind a private CA: a local https server whose certificate a test
//! CA (rcgen) signed serves RFC 8414 metadata, a JWKS and an introspection endpoint. With
//! that CA given through `tls_config`, discovery, key fetches and introspection work; without
//! it (the system's roots only), or with a certificate for another host name, the handshake
//! is refused and nothing is accepted.

use bearer_guard::testkit as mint;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bearer_guard::introspection::Introspection;
use bearer_guard::{ConfigError, ErrorKind, RemoteKeys, Validator};
use bytes::Bytes;
use http::{Request, Response};
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
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, "bearer-guard test CA");
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA").der().clone();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `sans`, and its key.
    fn server(&self, sans: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
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
    fn pem(&self) -> String {
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
    fn client_config(&self) -> rustls::ClientConfig {
        bearer_guard::remote::private_ca(self.pem().as_bytes()).expect("CA file")
    }
}

/// The issuer at `https://localhost:<port>`: metadata, JWKS, introspection (every token
/// active, naming this issuer).
async fn https_issuer(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> String {
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
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let base = format!("https://localhost:{}", addr.port());
    let issuer = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let issuer = issuer.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let issuer = issuer.clone();
                    async move {
                        let body = match req.uri().path() {
                            "/.well-known/oauth-authorization-server" => json!({
                                "issuer": issuer,
                                "jwks_uri": format!("{issuer}/jwks"),
                                "token_endpoint": format!("{issuer}/token"),
                                "introspection_endpoint": format!("{issuer}/introspect"),
                                "response_types_supported": ["code"],
                            })
                            .to_string(),
                            "/jwks" => mint::jwks(&["ec-1"]),
                            "/introspect" => json!({
                                "active": true, "iss": issuer, "aud": mint::AUDIENCE,
                                "client_id": "svc", "scope": "read", "exp": mint::now() + 600,
                            })
                            .to_string(),
                            _ => String::new(),
                        };
                        let mut res = Response::new(Full::new(Bytes::from(body)));
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

fn validator(issuer: &str, tls: Option<rustls::ClientConfig>) -> Validator {
    let mut keys = RemoteKeys::discover(issuer);
    if let Some(tls) = tls {
        keys = keys.tls_config(tls);
    }
    Validator::builder()
        .audience(mint::AUDIENCE)
        .keys(keys)
        .build()
        .expect("validator")
}

fn introspecting(issuer: &str, tls: Option<rustls::ClientConfig>) -> Validator {
    let mut introspection =
        Introspection::builder(format!("{issuer}/introspect"), "rs", "secret").issuer(issuer);
    if let Some(tls) = tls {
        introspection = introspection.tls_config(tls);
    }
    Validator::builder()
        .audience(mint::AUDIENCE)
        .introspection(introspection.build().expect("introspection"))
        .build()
        .expect("validator")
}

fn key_fetch_failure(result: Result<(), ConfigError>) -> String {
    match result {
        Err(ConfigError::KeyFetch(reason)) => reason,
        other => panic!("expected a key fetch failure, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_and_keys_over_https_from_a_private_ca() {
    let ca = Ca::new();
    let (cert, key) = ca.server(&["localhost"]);
    let issuer = https_issuer(cert, key).await;
    let token = mint::token("ec-1", json!({ "iss": issuer }));

    // With the CA: discovery, then the JWKS, over https; the token verifies.
    let trusted = validator(&issuer, Some(ca.client_config()));
    trusted.ready().await.expect("keys over https");
    let claims = trusted.validate_async(&token).await.expect("valid");
    assert_eq!(claims.iss, issuer);

    // Without it (the system's roots): the handshake is refused, nothing verifies.
    let untrusted = validator(&issuer, None);
    let reason = key_fetch_failure(untrusted.ready().await);
    assert!(reason.contains("TLS") || reason.contains("tls"), "{reason}");
    let err = untrusted.validate_async(&token).await.expect_err("no keys");
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_even_from_the_ca() {
    let ca = Ca::new();
    let (cert, key) = ca.server(&["issuer.other.example"]);
    let issuer = https_issuer(cert, key).await;
    let v = validator(&issuer, Some(ca.client_config()));
    let reason = key_fetch_failure(v.ready().await);
    assert!(reason.contains("TLS") || reason.contains("tls"), "{reason}");
    let token = mint::token("ec-1", json!({ "iss": issuer }));
    assert_eq!(
        v.validate_async(&token).await.expect_err("no keys").kind(),
        ErrorKind::KeysUnavailable
    );
}

#[test]
fn a_ca_file_without_a_certificate_is_a_configuration_error() {
    for bad in [
        &b""[..],
        b"hello",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    ] {
        assert!(matches!(
            bearer_guard::remote::private_ca(bad),
            Err(ConfigError::InvalidCertificate(_))
        ));
    }
}

#[tokio::test]
async fn introspection_over_https_from_a_private_ca() {
    let ca = Ca::new();
    let (cert, key) = ca.server(&["localhost"]);
    let issuer = https_issuer(cert, key).await;

    let trusted = introspecting(&issuer, Some(ca.client_config()));
    let claims = trusted
        .validate_async("opaque-token-1")
        .await
        .expect("active over https");
    assert_eq!(claims.client_id(), Some("svc"));

    // Without the CA: the endpoint cannot be asked, 503, never an accept.
    let untrusted = introspecting(&issuer, None);
    let err = untrusted
        .validate_async("opaque-token-1")
        .await
        .expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::IntrospectionUnavailable);
}
