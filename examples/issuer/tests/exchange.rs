//! Token exchange (RFC 8693) at the example issuer, over real sockets: what an exchanged
//! token says (`sub`, `aud`, `scope`, `exp`, `act`), the §2.2.2 errors, `actor_token` and
//! `may_act` (§4.4), nested actors, and revocation cascading from a subject token to the
//! tokens exchanged from it.

use bearer_guard_issuer::testing::oauth::urlencode;
use bearer_guard_issuer::testing::{
    self as t, API, EXCH_SECRET, EXCH2_SECRET, OTHER_API, OTHER_RS_SECRET, RS_SECRET, Reply,
    SVC_SECRET, Server, claims, exchange_clients_toml,
};
use bearer_guard_issuer::{SigningKey, TokenFormat};
use http::StatusCode;
use serde_json::{Value, json};

const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";

async fn start(adjust: impl FnOnce(&mut bearer_guard_issuer::Config)) -> Server {
    Server::start_full(
        exchange_clients_toml(),
        SigningKey::generate(None).expect("key"),
        adjust,
    )
    .await
}

async fn exchange(server: &Server, id: &str, secret: &str, subject: &str, extra: &str) -> Reply {
    server
        .basic(
            id,
            secret,
            &format!(
                "grant_type={GRANT}&subject_token={}&subject_token_type={}{extra}",
                urlencode(subject),
                urlencode(ACCESS)
            ),
        )
        .await
}

/// Alice's token for [`API`] with `read write`, from the authorization code flow.
async fn alice(server: &Server) -> String {
    let (code, verifier) = server.code("&scope=read+write").await;
    server.redeem(&code, &verifier).await.assert_tokens().0
}

#[tokio::test]
async fn exchanged_token_keeps_sub_narrows_scope_and_names_the_client_as_actor() {
    let server = start(|_| {}).await;
    let subject = alice(&server).await;
    let before = claims(&subject);
    assert_eq!(before["aud"], API);

    let reply = exchange(&server, "exch", EXCH_SECRET, &subject, "&scope=read").await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["issued_token_type"], ACCESS);
    assert_eq!(reply.json()["scope"], "read");
    let after = claims(&token);
    assert_eq!(after["sub"], "alice");
    assert_eq!(after["aud"], OTHER_API);
    assert_eq!(after["scope"], "read");
    assert_eq!(after["client_id"], "exch");
    assert_eq!(after["act"], json!({"sub": "exch", "client_id": "exch"}));
    assert!(after.get("may_act").is_none());
    assert!(after["exp"].as_i64() <= before["exp"].as_i64(), "{after}");

    // Without `scope`: all of the subject token's that the client may have.
    let all = exchange(&server, "exch", EXCH_SECRET, &subject, "").await;
    assert_eq!(claims(&all.assert_token())["scope"], "read write");

    // The resource server of OTHER_API verifies it and reads the actor.
    let validator = server.validator(OTHER_API).await;
    let verified = validator.validate(&token).expect("a valid token");
    assert_eq!(verified.sub.as_deref(), Some("alice"));
    let rs = server.introspect("other-rs", OTHER_RS_SECRET, &token).await;
    assert_eq!(rs.json()["act"]["client_id"], "exch", "{}", rs.text());
}

#[tokio::test]
async fn exchanging_an_exchanged_token_nests_the_actors() {
    let server = start(|_| {}).await;
    let subject = alice(&server).await;
    let first = exchange(&server, "exch", EXCH_SECRET, &subject, "")
        .await
        .assert_token();
    let second = exchange(&server, "exch2", EXCH2_SECRET, &first, "")
        .await
        .assert_token();
    let second = claims(&second);
    assert_eq!(second["sub"], "alice");
    assert_eq!(second["aud"], API);
    // exch2 may only have `read`.
    assert_eq!(second["scope"], "read");
    assert_eq!(
        second["act"],
        json!({"sub": "exch2", "client_id": "exch2",
               "act": {"sub": "exch", "client_id": "exch"}})
    );
}

#[tokio::test]
async fn exchange_errors_follow_rfc_8693() {
    let server = start(|_| {}).await;
    let subject = alice(&server).await;
    let bad = |r: Reply, error: &str| r.assert_error(StatusCode::BAD_REQUEST, error);

    // More scope than the subject token's, or than the client's.
    let reader = server.token("reader", t::READER_SECRET).await;
    bad(
        exchange(&server, "exch", EXCH_SECRET, &subject, "&scope=admin").await,
        "invalid_scope",
    );
    // A resource that is not the client's (`resource` or `audience`).
    for extra in [
        format!("&resource={}", urlencode(API)),
        format!("&audience={}", urlencode("https://elsewhere.test")),
    ] {
        bad(
            exchange(&server, "exch", EXCH_SECRET, &subject, &extra).await,
            "invalid_target",
        );
    }
    // The audience it asks for by `audience`: accepted.
    exchange(
        &server,
        "exch",
        EXCH_SECRET,
        &subject,
        &format!("&audience={}", urlencode(OTHER_API)),
    )
    .await
    .assert_token();
    // Subject tokens it may not exchange: another audience, garbage, a token of another
    // issuer's key.
    let for_other = server
        .basic(
            "svc",
            SVC_SECRET,
            &format!(
                "grant_type=client_credentials&resource={}",
                urlencode(OTHER_API)
            ),
        )
        .await
        .assert_token();
    let foreign = SigningKey::generate(None)
        .expect("key")
        .sign(&claims(&subject))
        .expect("sign");
    for token in [for_other.as_str(), "garbage", &foreign] {
        bad(
            exchange(&server, "exch", EXCH_SECRET, token, "").await,
            "invalid_grant",
        );
    }
    // A `read`-only token for API exchanged with `write`: invalid_scope.
    bad(
        exchange(&server, "exch", EXCH_SECRET, &reader, "&scope=write").await,
        "invalid_scope",
    );
    // Malformed requests.
    for f in [
        format!(
            "grant_type={GRANT}&subject_token_type={}",
            urlencode(ACCESS)
        ),
        format!("grant_type={GRANT}&subject_token={}", urlencode(&subject)),
        format!(
            "grant_type={GRANT}&subject_token={}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token",
            urlencode(&subject)
        ),
        format!(
            "grant_type={GRANT}&subject_token={}&subject_token_type={}&actor_token={}",
            urlencode(&subject),
            urlencode(ACCESS),
            urlencode(&subject)
        ),
        format!(
            "grant_type={GRANT}&subject_token={}&subject_token_type={}&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token",
            urlencode(&subject),
            urlencode(ACCESS)
        ),
    ] {
        bad(
            server.basic("exch", EXCH_SECRET, &f).await,
            "invalid_request",
        );
    }
    // A client not registered for exchange.
    bad(
        exchange(&server, "svc", SVC_SECRET, &subject, "").await,
        "unauthorized_client",
    );
    // Client authentication comes first.
    exchange(&server, "exch", "wrong-secret", &subject, "")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn an_actor_token_must_be_the_client_s_own() {
    let server = start(|_| {}).await;
    let subject = alice(&server).await;
    let own = server.token("exch", EXCH_SECRET).await;
    let with = |actor: &str| {
        format!(
            "&actor_token={}&actor_token_type={}",
            urlencode(actor),
            urlencode(ACCESS)
        )
    };
    let token = exchange(&server, "exch", EXCH_SECRET, &subject, &with(&own))
        .await
        .assert_token();
    assert_eq!(claims(&token)["act"]["sub"], "exch");
    let someone_else = server.token("svc", SVC_SECRET).await;
    exchange(&server, "exch", EXCH_SECRET, &subject, &with(&someone_else))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

/// An Ed25519 PKCS#8 PEM, for a test that signs tokens with the issuer's own key.
fn pem() -> String {
    use base64::Engine as _;
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

#[tokio::test]
async fn may_act_names_who_may_exchange() {
    let key = || SigningKey::from_pem(pem().as_bytes(), Some("k".into())).expect("key");
    let server = Server::start_full(exchange_clients_toml(), key(), |_| {}).await;
    let mut subject: Value = claims(&alice(&server).await);
    let jti = |c: &mut Value, n: &str| c["jti"] = json!(format!("may-act-{n}"));

    jti(&mut subject, "1");
    subject["may_act"] = json!({"client_id": "exch2"});
    let token = key().sign(&subject).expect("sign");
    exchange(&server, "exch", EXCH_SECRET, &token, "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");

    jti(&mut subject, "2");
    subject["may_act"] = json!({"client_id": "exch", "sub": "exch"});
    let token = key().sign(&subject).expect("sign");
    exchange(&server, "exch", EXCH_SECRET, &token, "")
        .await
        .assert_token();
}

#[tokio::test]
async fn revoking_the_subject_token_revokes_what_was_exchanged_from_it() {
    for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let server = start(|c| c.token_format = format).await;
        let subject = server.token("svc", SVC_SECRET).await;
        let first = exchange(&server, "exch", EXCH_SECRET, &subject, "")
            .await
            .assert_token();
        let second = exchange(&server, "exch2", EXCH2_SECRET, &first, "")
            .await
            .assert_token();
        let active = |r: Reply| r.json()["active"] == true;
        assert!(active(
            server.introspect("other-rs", OTHER_RS_SECRET, &first).await
        ));
        assert!(active(server.introspect("rs", RS_SECRET, &second).await));

        server
            .revoke_basic("svc", SVC_SECRET, &format!("token={}", urlencode(&subject)))
            .await
            .assert_revoke_ok();

        assert!(!active(server.introspect("rs", RS_SECRET, &subject).await));
        assert!(
            !active(server.introspect("other-rs", OTHER_RS_SECRET, &first).await),
            "{format:?}: the exchanged token outlived its subject token"
        );
        assert!(
            !active(server.introspect("rs", RS_SECRET, &second).await),
            "{format:?}: the token exchanged from the exchanged one outlived it"
        );
        // And the revoked token cannot be exchanged again.
        exchange(&server, "exch", EXCH_SECRET, &subject, "")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
}

/// The shipped `examples/clients.toml`: `demo-service` (secret `demo-service-secret`)
/// exchanges a token for http://127.0.0.1:8001 into one for http://127.0.0.1:8002.
#[tokio::test]
async fn shipped_demo_service_exchanges_tokens() {
    let (listener, addr) = t::bind().await;
    let issuer =
        bearer_guard_issuer::load(&bearer_guard_issuer::Config::new(format!("http://{addr}")))
            .await
            .expect("load examples/clients.toml");
    let server = Server::serve(listener, issuer);
    let subject = server
        .basic(
            "demo-client",
            "demo-secret",
            "grant_type=client_credentials&resource=http%3A%2F%2F127.0.0.1%3A8001",
        )
        .await
        .assert_token();
    let token = exchange(&server, "demo-service", "demo-service-secret", &subject, "")
        .await
        .assert_token();
    let claims = claims(&token);
    assert_eq!(claims["aud"], "http://127.0.0.1:8002");
    assert_eq!(claims["sub"], "demo-client");
    assert_eq!(claims["act"]["client_id"], "demo-service");
}
