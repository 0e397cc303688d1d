//! Real TLS to an issuer behind a private CA: a local https server whose certificate a test
//! CA (rcgen) signed serves RFC 8414 metadata, a JWKS and an introspection endpoint. With
//! that CA given through `tls_config`, discovery, key fetches and introspection work; without
//! it (the system's roots only), or with a certificate for another host name, the handshake
//! is refused and nothing is accepted.

#[path = "common/https_issuer.rs"]
mod https_issuer;

use bearer_guard::testkit as mint;
use https_issuer::{Ca, serve as https_issuer};

use bearer_guard::introspection::Introspection;
use bearer_guard::{ConfigError, ErrorKind, RemoteKeys, Validator};
use serde_json::json;

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
    let ca = Ca::new("bearer-guard test CA");
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
    let ca = Ca::new("bearer-guard test CA");
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
    let ca = Ca::new("bearer-guard test CA");
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
