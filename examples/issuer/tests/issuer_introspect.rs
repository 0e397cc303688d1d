//! The example issuer's introspection endpoint (RFC 7662) and opaque access tokens, over real
//! sockets; and two issuer replicas sharing one real Redis: each sees the other's opaque
//! tokens, codes, refresh-token families, registered clients and revocations, and the Redis
//! holds no usable token.

use bearer_guard::testkit::redis as redis_server;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use issuer_server::{
    API, OTHER_API, OTHER_RS_SECRET, READER_SECRET, RS_SECRET, Reply, SVC_SECRET, Server,
    clients_toml,
};
use oauth::urlencode;
use redis_server::RedisServer;

use std::sync::Arc;
use std::time::Duration;

use bearer_guard::revocation::RedisRevocations;
use http::{StatusCode, header};
use issuer::{SigningKey, Store, TokenFormat};
use serde_json::{Value, json};

async fn opaque() -> Server {
    Server::start_with(|config| config.token_format = TokenFormat::Opaque).await
}

fn active(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.assert_no_store();
    let body = reply.json();
    assert_eq!(body["active"], true, "{body}");
    body
}

fn assert_inactive(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.assert_no_store();
    // Nothing but `active` (RFC 7662 §2.2).
    assert_eq!(reply.json(), json!({ "active": false }));
}

#[tokio::test]
async fn opaque_tokens_are_introspected_with_their_claims() {
    let server = opaque().await;
    let reply = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=read+write",
        )
        .await;
    let token = reply.assert_token();
    assert_eq!(token.len(), 43, "256 random bits, base64url: {token}");
    assert!(!token.contains('.'));

    let body = active(&server.introspect("rs", RS_SECRET, &token).await);
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["sub"], "svc");
    assert_eq!(body["aud"], API);
    assert_eq!(body["iss"], server.iss());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["jti"].is_string(), "{body}");
    let (iat, exp) = (
        body["iat"].as_i64().expect("iat"),
        body["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);

    // The client itself sees its own token; another client does not; a resource server for
    // another audience does not.
    active(&server.introspect("svc", SVC_SECRET, &token).await);
    assert_inactive(&server.introspect("reader", READER_SECRET, &token).await);
    assert_inactive(&server.introspect("other-rs", OTHER_RS_SECRET, &token).await);
    // A token for the other audience: the other way round.
    let other = server
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
    active(&server.introspect("other-rs", OTHER_RS_SECRET, &other).await);
    assert_inactive(&server.introspect("rs", RS_SECRET, &other).await);
    // Unknown tokens.
    for token in ["nope", "a.b.c", &"x".repeat(43)] {
        assert_inactive(&server.introspect("rs", RS_SECRET, token).await);
    }
}

#[tokio::test]
async fn revoked_tokens_are_inactive_and_refresh_tokens_revoke_their_family() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    active(&server.introspect("rs", RS_SECRET, &token).await);
    // Another client cannot revoke it (200, nothing done); its owner can.
    server
        .basic_to(
            "/oauth/revoke",
            "reader",
            READER_SECRET,
            &format!("token={token}"),
        )
        .await
        .assert_revoke_ok();
    active(&server.introspect("rs", RS_SECRET, &token).await);
    server
        .basic_to(
            "/oauth/revoke",
            "svc",
            SVC_SECRET,
            &format!("token={token}"),
        )
        .await
        .assert_revoke_ok();
    assert_inactive(&server.introspect("rs", RS_SECRET, &token).await);

    // A refresh token, revoked by its public client (RFC 7009 §2.1): the family goes.
    let (code, verifier) = server.code("").await;
    let (access, refresh) = server.redeem(&code, &verifier).await.assert_tokens();
    let (access2, refresh2) = server.refresh(&refresh).await.assert_tokens();
    active(&server.introspect("rs", RS_SECRET, &access2).await);
    server
        .form_to(
            "/oauth/revoke",
            &format!(
                "token={}&token_type_hint=refresh_token&client_id=app",
                urlencode(&refresh2)
            ),
        )
        .await
        .assert_revoke_ok();
    server
        .refresh(&refresh2)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    for token in [&access, &access2] {
        assert_inactive(&server.introspect("rs", RS_SECRET, token).await);
    }
}

#[tokio::test]
async fn expired_tokens_are_inactive() {
    let clients = format!(
        "{}\n[[clients]]\nclient_id = \"short\"\nsecret_hash = \"{}\"\nresources = [\"{API}\"]\n\
         token_lifetime = 1\n",
        clients_toml(),
        oauth::cheap_hash(SVC_SECRET)
    );
    let server = Server::start_full(
        clients,
        SigningKey::generate(None).expect("key"),
        |config| {
            config.token_format = TokenFormat::Opaque;
        },
    )
    .await;
    let token = server.token("short", SVC_SECRET).await;
    active(&server.introspect("rs", RS_SECRET, &token).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_inactive(&server.introspect("rs", RS_SECRET, &token).await);

    // A JWT of this issuer's key that expired a minute ago.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let expired = server
        .issuer
        .signing_key()
        .sign(&json!({
            "iss": server.iss(), "sub": "svc", "client_id": "svc", "aud": API,
            "iat": now - 120, "exp": now - 60, "jti": "expired",
        }))
        .expect("sign");
    assert_inactive(&server.introspect("rs", RS_SECRET, &expired).await);
}

#[tokio::test]
async fn jwt_access_tokens_are_introspected_too() {
    let server = Server::start().await;
    let token = server.token("svc", SVC_SECRET).await;
    let body = active(&server.introspect("rs", RS_SECRET, &token).await);
    assert_eq!(body["jti"], issuer_server::claims(&token)["jti"]);
    // Tampered: inactive. Revoked: inactive.
    let (head, signature) = token.rsplit_once('.').expect("jws");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{head}.{flipped}{}", &signature[1..]);
    assert_inactive(&server.introspect("rs", RS_SECRET, &tampered).await);
    server
        .basic_to(
            "/oauth/revoke",
            "svc",
            SVC_SECRET,
            &format!("token={token}"),
        )
        .await
        .assert_revoke_ok();
    assert_inactive(&server.introspect("rs", RS_SECRET, &token).await);
}

#[tokio::test]
async fn introspection_needs_client_authentication() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    let form = format!("token={token}");
    for reply in [
        server.form_to("/oauth/introspect", &form).await,
        server
            .basic_to("/oauth/introspect", "rs", "wrong", &form)
            .await,
        server
            .basic_to("/oauth/introspect", "nobody", "wrong", &form)
            .await,
        server
            .form_to("/oauth/introspect", &format!("{form}&client_id=app"))
            .await,
    ] {
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(reply.header(header::WWW_AUTHENTICATE).is_some());
    }
    server
        .basic_to("/oauth/introspect", "rs", RS_SECRET, "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        server.get("/oauth/introspect").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// One replica of a two-issuer deployment: same `iss`, same key, same Redis.
async fn replica(redis: &RedisServer) -> Server {
    let pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/keys/ed25519_private.pem"),
    )
    .expect("pem");
    let key = SigningKey::from_pem(&pem, Some("ed-1".into())).expect("key");
    let store = Store::redis(&redis.url()).await.expect("store");
    let revocations = RedisRevocations::connect(&redis.url())
        .await
        .expect("revocations");
    Server::start_full(clients_toml(), key, |config| {
        config.issuer = "https://issuer.test".into();
        config.token_format = TokenFormat::Opaque;
        config.store = Some(store);
        config.revocations = Some(Arc::new(revocations));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_sharing_redis_see_each_others_tokens_codes_and_families() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (replica(&redis).await, replica(&redis).await);
    let mut secrets = Vec::new();

    // Opaque tokens: issued by A, active at B, revoked at B, inactive at A.
    let token = a.token("svc", SVC_SECRET).await;
    active(&b.introspect("rs", RS_SECRET, &token).await);
    b.basic_to(
        "/oauth/revoke",
        "svc",
        SVC_SECRET,
        &format!("token={token}"),
    )
    .await
    .assert_revoke_ok();
    assert_inactive(&a.introspect("rs", RS_SECRET, &token).await);
    secrets.push(token);

    // A code from A, redeemed at B; replayed at A: refused, and its access token revoked.
    let (code, verifier) = a.code("").await;
    let (access, refresh) = b.redeem(&code, &verifier).await.assert_tokens();
    active(&a.introspect("rs", RS_SECRET, &access).await);
    a.redeem(&code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_inactive(&b.introspect("rs", RS_SECRET, &access).await);
    b.refresh(&refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    secrets.extend([code, verifier, access, refresh]);

    // A family across replicas: rotated at A, reused at B, then the newest fails at A.
    let (code, verifier) = b.code("").await;
    let (access, refresh) = a.redeem(&code, &verifier).await.assert_tokens();
    let (access2, refresh2) = a.refresh(&refresh).await.assert_tokens();
    b.refresh(&refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    a.refresh(&refresh2)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    for token in [&access, &access2] {
        assert_inactive(&a.introspect("rs", RS_SECRET, token).await);
    }
    secrets.extend([code, verifier, access, refresh, access2, refresh2]);

    // A client registered at A can use B.
    let registered = a
        .post_to(
            "/oauth/register",
            "application/json",
            json!({ "redirect_uris": ["http://127.0.0.1:4444/cb"] }).to_string(),
            &[],
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let client_id = registered.json()["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let query = issuer_server::authorize_query(
        &client_id,
        "http://127.0.0.1:4444/cb",
        &issuer_server::challenge(&issuer_server::new_verifier()),
        "s",
    );
    let page = b.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());

    // Nothing in Redis is a usable token, code or verifier: keys carry hashes.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(keys.iter().any(|k| k.contains(":code:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(":refresh:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(":opaque:")), "{keys:?}");
    let mut dump = keys.join("\n");
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let values: Vec<String> = if kind == "list" {
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("LRANGE")
        } else if kind == "zset" {
            // The revocation log (`RedisRevocations`' mirror reads it).
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("ZRANGE")
        } else {
            vec![
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET"),
            ]
        };
        dump.push_str(&values.join("\n"));
    }
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "Redis holds a secret");
    }
}
