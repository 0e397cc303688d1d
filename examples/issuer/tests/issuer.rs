//! The example issuer (`examples/issuer/`) over real sockets, client-credentials
//! side: token issuance by every client authentication method, tokens checked with
//! `bearer_guard::Validator` and the JWKS the issuer serves, the RFC 6749 / RFC 8707 errors,
//! RFC 7009 revocation (in memory, and through a real Redis shared with a validator),
//! metadata, body limit, configuration files, and logs free of secrets and tokens.
//!
//! The other `tests/issuer_*.rs` cover the limits under load, the authorization code flow,
//! introspection and opaque tokens, and the login page in a real browser.

use bearer_guard::testkit::redis as redis_server;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use issuer_server::{
    API, ODD_ID, ODD_SECRET, OTHER_API, READER_SECRET, SVC_SECRET, Server, bind, clients_toml,
};
use oauth::{basic_header, cheap_hash, urlencode};
use redis_server::RedisServer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bearer_guard::revocation::{
    MemoryRevocations, RedisRevocations, RevocationError, RevocationFuture, Revocations,
};
use bearer_guard::{AccessClaims, ErrorKind, KeySet, Validator, token::Audience};
use http::{StatusCode, header};
use issuer::{Config, Format, Issuer, SigningKey};
use issuer_server::Reply;
use serde_json::{Value, json};

/// The issuer on a free loopback port, with the test clients and a generated key.
async fn start() -> Server {
    Server::start().await
}

/// As [`start`], revoking into `store`.
async fn start_with(store: Arc<dyn Revocations>) -> Server {
    Server::start_with(|config| config.revocations = Some(store)).await
}

/// The token's `jti`.
fn jti(token: &str) -> String {
    issuer_server::claims(token)["jti"]
        .as_str()
        .expect("jti")
        .to_owned()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn jose_header(token: &str) -> Value {
    let header = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json")
}

// ---------------------------------------------------------------------------------------------
// Issuance

#[tokio::test]
async fn basic_auth_issues_a_token_the_validator_accepts() {
    let server = start().await;
    let reply = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=read+write",
        )
        .await;
    let token = reply.assert_token();
    let body = reply.json();
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");

    let header = jose_header(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = serde_json::from_str(&server.issuer.jwks_json()).expect("jwks");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = server
        .validator(API)
        .await
        .validate(&token)
        .expect("valid token");
    assert_eq!(claims.iss, server.base);
    assert_eq!(claims.subject(), Some("svc"));
    assert_eq!(claims.client_id(), Some("svc"));
    assert_eq!(claims.aud, Audience::One(API.into()));
    assert_eq!(claims.scope.as_deref(), Some("read write"));
    assert!(claims.has_scope("write"));
    let iat = claims.iat.expect("iat");
    assert_eq!(claims.exp - iat, 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((iat - now).abs() <= 5, "iat {iat} now {now}");
    // 128 random bits, base64url without padding.
    let jti = claims.jti.clone().expect("jti");
    assert_eq!(URL_SAFE_NO_PAD.decode(&jti).expect("b64 jti").len(), 16);

    // Minted for API: another resource server refuses it.
    let other = server.validator(OTHER_API).await;
    assert!(other.validate(&token).is_err());

    // A second token is a different token.
    let again = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=read+write",
        )
        .await
        .assert_token();
    assert_ne!(again, token);
    let claims2 = server.validator(API).await.validate(&again).expect("valid");
    assert_ne!(claims2.jti, claims.jti);
}

#[tokio::test]
async fn client_secret_post_issues_the_default_scope_and_audience() {
    let server = start().await;
    let reply = server
        .form(&format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}",
            urlencode(SVC_SECRET)
        ))
        .await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["scope"], "read");
    let claims = server.validator(API).await.validate(&token).expect("valid");
    assert_eq!(claims.scope.as_deref(), Some("read"));
    assert_eq!(claims.aud, Audience::One(API.into()));

    // The reader's lifetime is its own.
    let reply = server
        .form(&format!(
            "grant_type=client_credentials&client_id=reader&client_secret={READER_SECRET}"
        ))
        .await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["expires_in"], 60);
    let claims = server.validator(API).await.validate(&token).expect("valid");
    assert_eq!(claims.exp - claims.iat.expect("iat"), 60);
}

#[tokio::test]
async fn json_body_issues_a_token() {
    let server = start().await;
    let reply = server
        .json(json!({ "client_id": "svc", "client_secret": SVC_SECRET, "scope": "write" }))
        .await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["scope"], "write");
    let claims = server.validator(API).await.validate(&token).expect("valid");
    assert_eq!(claims.scope.as_deref(), Some("write"));
    assert_eq!(claims.client_id(), Some("svc"));

    // With an explicit grant type and resources, too.
    let reply = server
        .json(json!({
            "grant_type": "client_credentials",
            "client_id": "svc",
            "client_secret": SVC_SECRET,
            "resource": [OTHER_API],
        }))
        .await;
    let token = reply.assert_token();
    server
        .validator(OTHER_API)
        .await
        .validate(&token)
        .expect("valid for the other API");

    // Another grant type is refused here too; so is a non-object or a duplicate member.
    server
        .json(json!({ "grant_type": "password", "client_id": "svc", "client_secret": SVC_SECRET }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    server
        .post("application/json", r#"["svc"]"#, &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server
        .post(
            "application/json",
            r#"{"client_id":"svc","client_id":"reader","client_secret":"x"}"#,
            &[],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    let server = start().await;
    let token = server
        .basic(
            ODD_ID,
            ODD_SECRET,
            "grant_type=client_credentials&scope=admin",
        )
        .await
        .assert_token();
    let claims = server.validator(API).await.validate(&token).expect("valid");
    assert_eq!(claims.client_id(), Some(ODD_ID));
    assert_eq!(claims.scope.as_deref(), Some("admin"));

    // The raw (not urlencoded) secret is a different secret.
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{ODD_SECRET}", urlencode(ODD_ID)))
    );
    server
        .post(
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials",
            &[("authorization", &auth)],
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn several_resources_become_the_audience() {
    let server = start().await;
    let form = format!(
        "grant_type=client_credentials&resource={}&resource={}&resource={}",
        urlencode(API),
        urlencode(OTHER_API),
        urlencode(API)
    );
    let token = server.basic("svc", SVC_SECRET, &form).await.assert_token();
    for audience in [API, OTHER_API] {
        let claims = server
            .validator(audience)
            .await
            .validate(&token)
            .expect("valid");
        assert_eq!(
            claims.aud,
            Audience::Many(vec![API.into(), OTHER_API.into()])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn wrong_secret_and_unknown_client_get_the_same_401() {
    let server = start().await;
    let form = "grant_type=client_credentials";

    let wrong = server.basic("svc", "not-the-secret", form).await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    let before = server.issuer.secret_checks();
    let unknown = server.basic("nobody", "not-the-secret", form).await;
    // Same answer, and a (dummy) verification ran for the unknown client too.
    assert_same_answer(&unknown, &wrong);
    assert_eq!(server.issuer.secret_checks(), before + 1);

    // client_secret_post and the JSON body: the same 401, challenge included (RFC 7235: a
    // 401 always says how to authenticate). A public client has no secret to match.
    for id in ["svc", "nobody", "app"] {
        let reply = server
            .form(&format!(
                "{form}&client_id={id}&client_secret=not-the-secret"
            ))
            .await;
        assert_same_answer(&reply, &wrong);
    }
    let reply = server
        .json(json!({ "client_id": "nobody", "client_secret": "x" }))
        .await;
    assert_same_answer(&reply, &wrong);
    // No secret at all, for a confidential client or an unknown one.
    for id in ["svc", "nobody"] {
        assert_same_answer(
            &server.form(&format!("{form}&client_id={id}")).await,
            &wrong,
        );
    }

    // Another client's secret is a wrong secret.
    assert_same_answer(&server.basic("svc", READER_SECRET, form).await, &wrong);
}

/// Same status, same body, same headers (but `date`).
fn assert_same_answer(reply: &Reply, expected: &Reply) {
    assert_eq!(reply.status, expected.status, "{}", reply.text());
    assert_eq!(reply.body, expected.body);
    let headers = |r: &Reply| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(name, _)| *name != header::DATE)
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(headers(reply), headers(expected));
}

#[tokio::test]
async fn missing_or_malformed_credentials_are_invalid_client() {
    let server = start().await;
    let form = "grant_type=client_credentials";
    for reply in [
        server.form(form).await,
        server.form(&format!("{form}&client_id=svc")).await,
        server
            .post(
                "application/x-www-form-urlencoded",
                form,
                &[("authorization", "Basic !!!not-base64")],
            )
            .await,
        server
            .post(
                "application/x-www-form-urlencoded",
                form,
                &[(
                    "authorization",
                    &format!("Basic {}", STANDARD.encode("no-colon")),
                )],
            )
            .await,
        server
            .post(
                "application/x-www-form-urlencoded",
                form,
                &[("authorization", "Bearer abc")],
            )
            .await,
    ] {
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(reply.header(header::WWW_AUTHENTICATE).is_some());
    }
}

#[tokio::test]
async fn unsupported_or_missing_grant_type() {
    let server = start().await;
    for grant in ["password", "implicit", "client_credentials%20"] {
        server
            .basic("svc", SVC_SECRET, &format!("grant_type={grant}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Known grants this client may not use: no redirect URIs, no code flow; a public client
    // has no client credentials.
    for grant in ["authorization_code", "refresh_token"] {
        server
            .basic("svc", SVC_SECRET, &format!("grant_type={grant}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    }
    server
        .form("grant_type=client_credentials&client_id=app")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    server
        .basic("svc", SVC_SECRET, "scope=read")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A parameter without a value is as if omitted (RFC 6749 §3.1).
    server
        .basic("svc", SVC_SECRET, "grant_type=")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn scopes_outside_the_clients_are_invalid_scope() {
    let server = start().await;
    let reply = server
        .basic(
            "reader",
            READER_SECRET,
            "grant_type=client_credentials&scope=read+write",
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    for scope in ["admin", "read%20%20write", "%20read", "re%22ad"] {
        server
            .basic(
                "svc",
                SVC_SECRET,
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    // A subset is fine, duplicates folded.
    let reply = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=write+write",
        )
        .await;
    reply.assert_token();
    assert_eq!(reply.json()["scope"], "write");
}

#[tokio::test]
async fn resources_outside_the_clients_are_invalid_target() {
    let server = start().await;
    for resource in [
        urlencode(OTHER_API),
        urlencode("https://api.test/"),
        urlencode("not a uri"),
        urlencode("https://api.test#x"),
    ] {
        server
            .basic(
                "reader",
                READER_SECRET,
                &format!("grant_type=client_credentials&resource={resource}"),
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_target");
    }
    // One bad resource among good ones spoils the request.
    server
        .basic(
            "svc",
            SVC_SECRET,
            &format!(
                "grant_type=client_credentials&resource={}&resource={}",
                urlencode(API),
                urlencode("https://evil.test")
            ),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_target");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let server = start().await;
    let grant = "grant_type=client_credentials";

    // Two client authentication methods at once.
    server
        .basic(
            "svc",
            SVC_SECRET,
            &format!("{grant}&client_secret={SVC_SECRET}"),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    server
        .basic(
            "svc",
            SVC_SECRET,
            &format!("{grant}&client_id=svc&client_secret={SVC_SECRET}"),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let auth = basic_header("svc", SVC_SECRET);
    server
        .post(
            "application/json",
            json!({ "client_id": "svc", "client_secret": SVC_SECRET }).to_string(),
            &[("authorization", &auth)],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A body client_id that contradicts the header.
    server
        .basic("svc", SVC_SECRET, &format!("{grant}&client_id=reader"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // ... but the same one is fine.
    server
        .basic("svc", SVC_SECRET, &format!("{grant}&client_id=svc"))
        .await
        .assert_token();

    // Repeated parameters, bad encodings, wrong content types.
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            format!("{grant}&{grant}"),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("{grant}&scope=read&scope=write"),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("{grant}&scope=%zz"),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("{grant}&scope=%C3"),
        ),
        ("text/plain", grant.to_owned()),
        ("application/xml", grant.to_owned()),
    ] {
        server
            .post(content_type, body, &[("authorization", &auth)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Two Authorization headers.
    server
        .post(
            "application/x-www-form-urlencoded",
            grant,
            &[("authorization", &auth), ("authorization", &auth)],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // The content type may carry parameters and any case.
    server
        .post(
            "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
            grant,
            &[("authorization", &auth)],
        )
        .await
        .assert_token();

    // Only POST.
    let reply = server.get("/oauth/token").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = start().await;
    let padding = "x".repeat(issuer::MAX_BODY + 1);
    let reply = server
        .basic(
            "svc",
            SVC_SECRET,
            &format!("grant_type=client_credentials&pad={padding}"),
        )
        .await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    let reply = server
        .json(json!({ "client_id": "svc", "client_secret": SVC_SECRET, "pad": padding }))
        .await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    // Just under the limit is fine (unknown parameters are ignored).
    let form = "grant_type=client_credentials&pad=";
    let padding = "x".repeat(issuer::MAX_BODY - form.len());
    server
        .basic("svc", SVC_SECRET, &format!("{form}{padding}"))
        .await
        .assert_token();
}

// ---------------------------------------------------------------------------------------------
// Revocation (RFC 7009)

#[tokio::test]
async fn a_client_revokes_its_own_token_and_validators_refuse_it() {
    let store = Arc::new(MemoryRevocations::new());
    let server = start_with(store.clone()).await;
    let validator = server.revoking_validator(store.clone()).await;
    let token = server.token("svc", SVC_SECRET).await;
    let other = server.token("svc", SVC_SECRET).await;
    validator
        .validate_async(&token)
        .await
        .expect("valid before");

    server
        .revoke_basic(
            "svc",
            SVC_SECRET,
            &format!("token={token}&token_type_hint=access_token"),
        )
        .await
        .assert_revoke_ok();
    assert_eq!(store.len(), 1);
    assert!(
        store
            .is_revoked(&server.base, &jti(&token))
            .await
            .expect("store")
    );
    let err = validator
        .validate_async(&token)
        .await
        .expect_err("revoked token accepted");
    assert_eq!(err.kind(), ErrorKind::Revoked);
    // The client's other token is untouched.
    validator.validate_async(&other).await.expect("other token");

    // Revoking again changes nothing and answers the same.
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={token}"))
        .await
        .assert_revoke_ok();
    assert_eq!(store.len(), 1);

    // client_secret_post works too; a wrong hint is only a hint (§2.1).
    server
        .revoke_form(&format!(
            "token={other}&token_type_hint=refresh_token&client_id=svc&client_secret={}",
            urlencode(SVC_SECRET)
        ))
        .await
        .assert_revoke_ok();
    assert_eq!(store.len(), 2);
    assert_eq!(
        validator
            .validate_async(&other)
            .await
            .expect_err("revoked")
            .kind(),
        ErrorKind::Revoked
    );
}

#[tokio::test]
async fn another_clients_token_gets_200_but_is_not_revoked() {
    // One global subscriber, capturing this thread (the runtime's only one).
    let logs = bearer_guard::testkit::logs::capture();

    let store = Arc::new(MemoryRevocations::new());
    let server = start_with(store.clone()).await;
    let validator = server.revoking_validator(store.clone()).await;
    let readers = server.token("reader", READER_SECRET).await;

    // svc tries to revoke reader's token: the same empty 200, and nothing written.
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={readers}"))
        .await
        .assert_revoke_ok();
    assert!(store.is_empty(), "{store:?}");
    validator
        .validate_async(&readers)
        .await
        .expect("still valid");

    let logs_text = logs.text();
    let refusal = logs_text
        .lines()
        .find(|l| l.contains("revoke_refused_foreign"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{logs_text}"));
    assert!(refusal.contains("INFO"), "{refusal}");
    assert!(refusal.contains("client_id=svc"), "{refusal}");
    assert!(!logs_text.contains(&readers), "{logs_text}");

    // Its owner can.
    server
        .revoke_basic("reader", READER_SECRET, &format!("token={readers}"))
        .await
        .assert_revoke_ok();
    assert_eq!(store.len(), 1);
    assert_eq!(
        validator
            .validate_async(&readers)
            .await
            .expect_err("revoked")
            .kind(),
        ErrorKind::Revoked
    );
}

#[tokio::test]
async fn revocation_needs_client_authentication() {
    let store = Arc::new(MemoryRevocations::new());
    let server = start_with(store.clone()).await;
    let token = server.token("svc", SVC_SECRET).await;
    let form = format!("token={token}");

    let wrong = server.revoke_basic("svc", "not-the-secret", &form).await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let challenge = wrong.header(header::WWW_AUTHENTICATE).expect("challenge");
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    for reply in [
        // Unknown client, another client's secret, no credentials at all.
        server.revoke_basic("nobody", "not-the-secret", &form).await,
        server.revoke_basic("svc", READER_SECRET, &form).await,
        server.revoke_form(&form).await,
        server.revoke_form(&format!("{form}&client_id=svc")).await,
    ] {
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some(challenge));
    }
    // client_secret_post: the same 401, challenge included.
    let reply = server
        .revoke_form(&format!(
            "{form}&client_id=svc&client_secret=not-the-secret"
        ))
        .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(reply.body, wrong.body);
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some(challenge));

    assert!(store.is_empty(), "{store:?}");
}

#[tokio::test]
async fn tokens_that_are_not_live_tokens_of_this_issuer_get_200_and_no_write() {
    let store = Arc::new(MemoryRevocations::new());
    let server = start_with(store.clone()).await;
    let good = server.token("svc", SVC_SECRET).await;

    // Signed by another issuer's key (same clients, same client id).
    let stranger = start().await;
    let foreign_key = stranger.token("svc", SVC_SECRET).await;
    // Signed by this issuer's key, but expired, or for another `iss`.
    let now = unix_now();
    let claims = |iss: &str, exp: i64| {
        json!({
            "iss": iss, "sub": "svc", "client_id": "svc", "aud": API,
            "iat": now - 100, "exp": exp, "jti": "minted-by-the-test",
        })
    };
    let key = server.issuer.signing_key();
    let expired = key.sign(&claims(&server.base, now - 10)).expect("sign");
    let other_iss = key
        .sign(&claims("https://elsewhere.test", now + 600))
        .expect("sign");
    // The good token with its signature changed.
    let (unsigned, signature) = good.rsplit_once('.').expect("jws");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{unsigned}.{flipped}{}", &signature[1..]);

    for token in [
        "not-a-jwt".to_owned(),
        "a.b.c".to_owned(),
        foreign_key,
        expired,
        other_iss,
        tampered,
    ] {
        server
            .revoke_basic("svc", SVC_SECRET, &format!("token={}", urlencode(&token)))
            .await
            .assert_revoke_ok();
    }
    assert!(store.is_empty(), "{store:?}");
}

#[tokio::test]
async fn malformed_revocation_requests_are_invalid_request() {
    let store = Arc::new(MemoryRevocations::new());
    let server = start_with(store.clone()).await;
    let token = server.token("svc", SVC_SECRET).await;
    let auth = basic_header("svc", SVC_SECRET);

    for form in [
        String::new(),
        "token_type_hint=access_token".to_owned(),
        // A parameter without a value is as if omitted.
        "token=".to_owned(),
        format!("token={token}&token={token}"),
        format!("token={token}&client_secret={SVC_SECRET}"),
        format!("token=%zz{token}"),
    ] {
        server
            .revoke_basic("svc", SVC_SECRET, &form)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Form encoding only (§2.1).
    for content_type in ["application/json", "text/plain"] {
        server
            .post_revoke(
                content_type,
                json!({ "token": token }).to_string(),
                &[("authorization", &auth)],
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Only POST.
    assert_eq!(
        server.get("/oauth/revoke").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(store.is_empty(), "{store:?}");
}

/// A store that refuses every write.
struct DownStore;

impl Revocations for DownStore {
    fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
        Box::pin(async { Err(RevocationError::new("connection refused")) })
    }

    fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
        Box::pin(async { Err(RevocationError::new("connection refused")) })
    }
}

#[tokio::test]
async fn an_unavailable_store_is_503_temporarily_unavailable() {
    let server = start_with(Arc::new(DownStore)).await;
    let token = server.token("svc", SVC_SECRET).await;
    let reply = server
        .revoke_basic("svc", SVC_SECRET, &format!("token={token}"))
        .await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(reply.header(header::RETRY_AFTER), Some("1"));

    // Nothing to write, nothing to fail: a foreign token still gets its 200.
    let readers = server.token("reader", READER_SECRET).await;
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={readers}"))
        .await
        .assert_revoke_ok();
}

/// A store on `redis`, once it accepts connections.
async fn redis_store(redis: &RedisServer) -> RedisRevocations {
    RedisRevocations::connect(&redis.url())
        .await
        .expect("RedisRevocations::connect")
}

/// The issuer revokes into a real Redis; a resource-side validator with its own connection to
/// it refuses the token.
#[tokio::test]
async fn revocations_reach_a_validator_through_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let issuer_store: Arc<dyn Revocations> = Arc::new(redis_store(&redis).await);
    let resource_store: Arc<dyn Revocations> = Arc::new(redis_store(&redis).await);
    let server = start_with(issuer_store).await;
    let validator = server.revoking_validator(resource_store).await;

    let token = server.token("svc", SVC_SECRET).await;
    let readers = server.token("reader", READER_SECRET).await;
    validator
        .validate_async(&token)
        .await
        .expect("valid before");

    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={token}"))
        .await
        .assert_revoke_ok();
    assert_eq!(
        validator
            .validate_async(&token)
            .await
            .expect_err("revoked token accepted")
            .kind(),
        ErrorKind::Revoked
    );

    // Another client's token: 200, and still valid on the resource side.
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={readers}"))
        .await
        .assert_revoke_ok();
    validator
        .validate_async(&readers)
        .await
        .expect("foreign token not revoked");
}

// ---------------------------------------------------------------------------------------------
// Documents

#[tokio::test]
async fn metadata_documents_describe_the_issuer() {
    let server = start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let doc = reply.json();
        assert_eq!(doc["issuer"], server.base);
        assert_eq!(
            doc["token_endpoint"],
            format!("{}/oauth/token", server.base)
        );
        assert_eq!(
            doc["jwks_uri"],
            format!("{}/.well-known/jwks.json", server.base)
        );
        let url = |path: &str| json!(format!("{}{path}", server.base));
        assert_eq!(doc["authorization_endpoint"], url("/oauth/authorize"));
        assert_eq!(doc["revocation_endpoint"], url("/oauth/revoke"));
        assert_eq!(doc["introspection_endpoint"], url("/oauth/introspect"));
        assert_eq!(doc["registration_endpoint"], url("/oauth/register"));
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "authorization_code",
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        let methods = json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ]);
        assert_eq!(doc["token_endpoint_auth_methods_supported"], methods);
        assert_eq!(doc["revocation_endpoint_auth_methods_supported"], methods);
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        let algs = json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"]);
        for endpoint in ["token", "revocation", "introspection"] {
            let member = format!("{endpoint}_endpoint_auth_signing_alg_values_supported");
            assert_eq!(doc[member.as_str()], algs, "{member}");
        }
        assert_eq!(doc["scopes_supported"], json!(["admin", "read", "write"]));
    }

    // The JWKS at jwks_uri: public parts only.
    let reply = server.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let jwks = reply.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none());
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
}

// ---------------------------------------------------------------------------------------------
// Configuration

static TEMP: AtomicU64 = AtomicU64::new(0);

/// A file in the temp directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(extension: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "bearer-guard-issuer-{}-{}.{extension}",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The shipped `examples/clients.toml` with its documented demo secrets (real argon2
/// parameters, so a few slow verifications).
#[tokio::test]
async fn shipped_demo_clients_work() {
    let (listener, addr) = bind().await;
    let issuer = issuer::load(&Config::new(format!("http://{addr}")))
        .await
        .expect("load examples/clients.toml");
    let server = Server::serve(listener, issuer);

    let reply = server
        .basic(
            "demo-client",
            "demo-secret",
            "grant_type=client_credentials",
        )
        .await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["scope"], "read write");
    let claims = server
        .validator("http://127.0.0.1:8001")
        .await
        .validate(&token)
        .expect("valid");
    assert_eq!(claims.client_id(), Some("demo-client"));

    let reply = server
        .json(json!({ "client_id": "reader", "client_secret": "reader-secret" }))
        .await;
    reply.assert_token();
    assert_eq!(reply.json()["scope"], "read");
    server
        .json(json!({ "client_id": "reader", "client_secret": "reader-secret", "scope": "write" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");

    // demo-app and alice (examples/users.toml): the code flow; demo-resource introspects.
    let redirect = "http://127.0.0.1:9999/callback";
    let verifier = issuer_server::new_verifier();
    let query = issuer_server::authorize_query(
        "demo-app",
        redirect,
        &issuer_server::challenge(&verifier),
        "s",
    );
    let location = server
        .form_to(
            "/oauth/authorize",
            &format!("{query}&username=alice&password=alice-password&approve=yes"),
        )
        .await
        .location();
    let callback = issuer_server::callback_query(&location, redirect);
    let code = issuer_server::query_value(&callback, "code").expect("code");
    let token = server
        .form(&format!(
            "grant_type=authorization_code&client_id=demo-app&code={code}&redirect_uri={}\
             &code_verifier={verifier}",
            urlencode(redirect)
        ))
        .await
        .assert_token();
    let active = server
        .introspect("demo-resource", "demo-resource-secret", &token)
        .await
        .json();
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], "alice");
    assert_eq!(active["client_id"], "demo-app");
}

/// A JSON clients file and the repository's test Ed25519 key with `kid` `ed-1`: the tokens
/// validate with `examples/jwks.json`.
#[tokio::test]
async fn json_clients_file_and_signing_key_file() {
    let clients = TempFile::new(
        "json",
        &json!({ "clients": [{
            "client_id": "svc",
            "secret_hash": cheap_hash(SVC_SECRET),
            "scopes": ["read"],
            "resources": [API],
        }]})
        .to_string(),
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (listener, addr) = bind().await;
    let mut config = Config::new(format!("http://{addr}"));
    config.clients_file = clients.0.clone();
    config.users_file = None;
    config.signing_key_file = Some(root.join("tests/keys/ed25519_private.pem"));
    config.signing_key_id = Some("ed-1".into());
    let server = Server::serve(listener, issuer::load(&config).await.expect("load"));

    let served: Value = serde_json::from_str(&server.issuer.jwks_json()).expect("jwks");
    let shipped: Value = serde_json::from_slice(
        &std::fs::read(root.join("examples/jwks.json")).expect("examples/jwks.json"),
    )
    .expect("json");
    assert_eq!(served, shipped);

    let token = server
        .basic("svc", SVC_SECRET, "grant_type=client_credentials")
        .await
        .assert_token();
    let validator = Validator::builder()
        .issuer(server.base.clone())
        .audience(API)
        .keys(KeySet::from_jwks_json(&serde_json::to_vec(&shipped).expect("json")).expect("keys"))
        .build()
        .expect("validator");
    let claims: bearer_guard::Claims<AccessClaims> = validator.validate(&token).expect("valid");
    assert_eq!(claims.scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn ecdsa_signing_keys() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, alg, crv) in [
        ("tests/keys/ec256_private.pem", "ES256", "P-256"),
        ("tests/keys/ec384_private.pem", "ES384", "P-384"),
    ] {
        let pem = std::fs::read(root.join(file)).expect("pem");
        let key = SigningKey::from_pem(&pem, None).expect("EC key");
        assert_eq!(key.public_jwk()["crv"], crv);
        let (listener, addr) = bind().await;
        let clients = issuer::parse_clients(&clients_toml(), Format::Toml).expect("clients");
        let server = Server::serve(
            listener,
            Issuer::new(format!("http://{addr}"), clients, key).expect("issuer"),
        );
        let token = server
            .basic("svc", SVC_SECRET, "grant_type=client_credentials")
            .await
            .assert_token();
        assert_eq!(jose_header(&token)["alg"], alg);
        server.validator(API).await.validate(&token).expect("valid");
    }
    // Public keys and garbage are refused.
    for file in [
        "tests/keys/ed25519_public.pem",
        "tests/keys/rsa_private_pkcs1.pem",
    ] {
        let pem = std::fs::read(root.join(file)).expect("pem");
        assert!(SigningKey::from_pem(&pem, None).is_err(), "{file}");
    }
    assert!(SigningKey::from_pem(b"not a pem", None).is_err());
}

#[test]
fn bad_clients_files_are_refused() {
    let hash = cheap_hash("secret");
    let client = |extra: &str| {
        format!(
            "[[clients]]\nclient_id = \"a\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\n\
             resources = [\"{API}\"]\n{extra}"
        )
    };
    assert!(issuer::parse_clients(&client(""), Format::Toml).is_ok());
    let bad = [
        // A plain-text secret, a bcrypt hash, argon2i, absurd parameters.
        client("").replace(&hash, "secret"),
        client("").replace(
            &hash,
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ),
        client("").replace("argon2id", "argon2i"),
        client("").replace("m=8,", "m=4000000,"),
        client("default_scope = \"read write\""),
        client("token_lifetime = 0"),
        client("token_lifetime = 999999"),
        client("typo = 1"),
        // The id form of registered clients.
        client("").replace("client_id = \"a\"", "client_id = \"dyn-a\""),
        // A public client with a secret, or without redirect URIs; a confidential one
        // without a secret; an unknown method; redirect URIs that are not https or loopback.
        client("token_endpoint_auth_method = \"none\"\nredirect_uris = [\"https://a.test/cb\"]"),
        client("").replace(
            &format!("secret_hash = \"{hash}\"\n"),
            "token_endpoint_auth_method = \"none\"\n",
        ),
        client("").replace(&format!("secret_hash = \"{hash}\"\n"), ""),
        client("token_endpoint_auth_method = \"private_key_jwt\""),
        client("redirect_uris = [\"http://a.test/cb\"]"),
        client("redirect_uris = [\"https://a.test/cb#f\"]"),
        client("").replace(&format!("[\"{API}\"]"), "[]"),
        client("").replace(API, "/relative"),
        client("").replace("[\"read\"]", "[\"re ad\"]"),
        format!("{}\n{}", client(""), client("")),
        String::new(),
    ];
    for text in &bad {
        assert!(
            issuer::parse_clients(text, Format::Toml).is_err(),
            "accepted:\n{text}"
        );
    }
    assert!(issuer::parse_clients("{\"clients\": 1}", Format::Json).is_err());
    // A public client with redirect URIs is fine.
    let public = client("").replace(&format!("secret_hash = \"{hash}\"\n"), "")
        + "token_endpoint_auth_method = \"none\"\nredirect_uris = [\"http://127.0.0.1:1/cb\"]\n";
    assert!(
        issuer::parse_clients(&public, Format::Toml).is_ok(),
        "{public}"
    );

    // Users: argon2id hashes only, each name once.
    let user = |name: &str, hash: &str| {
        format!("[[users]]\nusername = \"{name}\"\npassword_hash = \"{hash}\"\n")
    };
    assert!(issuer::parse_users(&user("alice", &hash)).is_ok());
    assert!(issuer::parse_users("").is_ok_and(|u| u.is_empty()));
    for bad in [
        user("alice", "alice-password"),
        user("", &hash),
        user("alice", &hash.replace("argon2id", "argon2i")),
        format!("{}{}", user("alice", &hash), user("alice", &hash)),
        format!("{}extra = 1\n", user("alice", &hash)),
    ] {
        assert!(issuer::parse_users(&bad).is_err(), "accepted:\n{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Everything the issuer logs, at every level, while it issues and refuses tokens: no secret,
/// no token, no Authorization header.
#[tokio::test]
async fn logs_never_contain_secrets_or_tokens() {
    // One global subscriber, capturing this thread (the runtime's only one).
    let logs = bearer_guard::testkit::logs::capture();

    let server = start().await;
    let wrong_secret = "wrong-secret-that-must-not-be-logged";
    let unknown_secret = "unknown-client-secret-not-logged";
    let mut tokens = Vec::new();
    tokens.push(
        server
            .basic(
                "svc",
                SVC_SECRET,
                "grant_type=client_credentials&scope=read+write",
            )
            .await
            .assert_token(),
    );
    tokens.push(
        server
            .form(&format!(
                "grant_type=client_credentials&client_id=reader&client_secret={READER_SECRET}"
            ))
            .await
            .assert_token(),
    );
    tokens.push(
        server
            .json(json!({ "client_id": ODD_ID, "client_secret": ODD_SECRET }))
            .await
            .assert_token(),
    );
    server
        .basic("svc", wrong_secret, "grant_type=client_credentials")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    server
        .basic("nobody", unknown_secret, "grant_type=client_credentials")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    server
        .form(&format!(
            "grant_type=client_credentials&client_id=reader&client_secret={wrong_secret}"
        ))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    server
        .basic(
            "reader",
            READER_SECRET,
            "grant_type=client_credentials&scope=write",
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    // Revocations: own, foreign, garbage, and with a wrong secret.
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={}", tokens[0]))
        .await
        .assert_revoke_ok();
    server
        .revoke_basic("svc", SVC_SECRET, &format!("token={}", tokens[1]))
        .await
        .assert_revoke_ok();
    server
        .revoke_form(&format!(
            "token={}.x&client_id=svc&client_secret={SVC_SECRET}",
            tokens[2]
        ))
        .await
        .assert_revoke_ok();
    server
        .revoke_basic("svc", wrong_secret, &format!("token={}", tokens[2]))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    let logs = logs.text();
    // The capture works: issuance and refusals are logged, with the client and scope.
    assert!(logs.contains("access token issued"), "{logs}");
    assert!(logs.contains("client_id=svc"), "{logs}");
    assert!(logs.contains("scope=read write"), "{logs}");
    assert!(logs.contains("invalid_client"), "{logs}");
    assert!(logs.contains("access token revoked"), "{logs}");
    assert!(logs.contains("revoke_refused_foreign"), "{logs}");
    assert!(logs.contains("revoke_invalid_token"), "{logs}");

    let mut forbidden: Vec<String> = vec![
        SVC_SECRET.into(),
        READER_SECRET.into(),
        ODD_SECRET.into(),
        urlencode(ODD_SECRET),
        wrong_secret.into(),
        unknown_secret.into(),
        "nobody".into(),
        basic_header("svc", SVC_SECRET),
        STANDARD.encode(format!("svc:{SVC_SECRET}")),
    ];
    for token in &tokens {
        forbidden.push(token.clone());
        forbidden.push(token.rsplit('.').next().expect("signature").to_owned());
    }
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "logged {needle:?}:\n{logs}"
        );
    }
}
