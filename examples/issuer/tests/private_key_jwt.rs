//! `private_key_jwt` client authentication (RFC 7523 §2.2, with the audience rule of
//! draft-ietf-oauth-rfc7523bis) at the token, introspection and revocation endpoints: a
//! client registered with `token_endpoint_auth_method = "private_key_jwt"` and a public JWK
//! authenticates with a fresh signed assertion; every bad assertion is 401 `invalid_client`.
//! The shipped demo client `demo-jwt-client` (`examples/clients.toml`) gets its token with the
//! shipped demo key (`examples/keys/demo-jwt-client.pem`), and with nothing else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::client_auth::PrivateKeyJwt;
use bearer_guard_issuer::SigningKey;
use bearer_guard_issuer::testing::oauth::{basic_header, urlencode};
use bearer_guard_issuer::testing::{API, FORM, SVC_SECRET, Server, clients_toml};
use http::StatusCode;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CLIENT: &str = "pkj";

#[path = "common/client_docs.rs"]
mod client_docs;

/// A fresh Ed25519 key of a client, and its public key's `x`.
struct ClientKey {
    signer: client_docs::Signer,
    x: String,
}

impl ClientKey {
    fn generate() -> ClientKey {
        let signer = client_docs::Signer::ed25519("pkj-1");
        let x = signer.jwk()["x"].as_str().expect("x").to_owned();
        ClientKey { signer, x }
    }

    /// A JWS of `claims` under `header` (its `alg` EdDSA unless given).
    fn sign(&self, header: Value, claims: &Value) -> String {
        self.signer.sign(header, claims)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        .try_into()
        .expect("i64")
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random");
    B64.encode(bytes)
}

/// The issuer with the test clients and `pkj`, registered with `key`'s public JWK.
async fn issuer(key: &ClientKey) -> Server {
    let clients = format!(
        r#"{}
[[clients]]
client_id = "{CLIENT}"
token_endpoint_auth_method = "private_key_jwt"
jwk = {{ kty = "OKP", crv = "Ed25519", x = "{}", kid = "pkj-1" }}
scopes = ["read"]
resources = ["{API}"]
introspect_for = ["{API}"]
"#,
        clients_toml(),
        key.x
    );
    Server::start_full(clients, SigningKey::generate(None).expect("key"), |_| {}).await
}

/// Good claims of an assertion of `pkj` for `server`.
fn claims(server: &Server) -> Value {
    let now = now();
    json!({
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": server.iss(),
        "jti": random_jti(),
        "iat": now,
        "exp": now + 60,
    })
}

/// A client-credentials request authenticated by `assertion`.
fn token_form(assertion: &str, client_id: Option<&str>) -> String {
    let mut form = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        urlencode(assertion)
    );
    if let Some(id) = client_id {
        form.push_str(&format!("&client_id={}", urlencode(id)));
    }
    form
}

#[tokio::test]
async fn a_good_assertion_authenticates_at_every_endpoint() {
    let key = ClientKey::generate();
    let server = issuer(&key).await;

    // Token endpoint, with and without client_id.
    let assertion = key.sign(json!({"typ": "JWT", "kid": "pkj-1"}), &claims(&server));
    let token = server
        .form(&token_form(&assertion, Some(CLIENT)))
        .await
        .assert_token();
    let assertion = key.sign(json!({}), &claims(&server));
    server
        .form(&token_form(&assertion, None))
        .await
        .assert_token();

    // Introspection and revocation.
    let assertion = key.sign(json!({}), &claims(&server));
    let reply = server
        .form_to(
            "/oauth/introspect",
            &format!(
                "token={}&client_assertion_type={}&client_assertion={}",
                urlencode(&token),
                urlencode(JWT_BEARER),
                urlencode(&assertion)
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["active"], true);
    let assertion = key.sign(json!({}), &claims(&server));
    server
        .revoke_form(&format!(
            "token={}&client_assertion_type={}&client_assertion={}",
            urlencode(&token),
            urlencode(JWT_BEARER),
            urlencode(&assertion)
        ))
        .await
        .assert_revoke_ok();
}

#[tokio::test]
async fn every_bad_assertion_is_invalid_client() {
    let key = ClientKey::generate();
    let server = issuer(&key).await;
    let other = ClientKey::generate();
    let good = claims(&server);
    let with = |name: &str, value: Value| {
        let mut c = claims(&server);
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = claims(&server);
        c.as_object_mut().expect("object").remove(name);
        c
    };
    let token_endpoint = format!("{}/oauth/token", server.base);
    let now = now();

    // An HMAC assertion keyed with the public key, and an unsigned one.
    let hmac = {
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg": "HS256"}).to_string()),
            B64.encode(good.to_string())
        );
        let secret = EncodingKey::from_secret(key.x.as_bytes());
        let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::HS256, &secret).expect("hmac");
        let signature = signer.try_sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(signature))
    };
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none"}).to_string()),
        B64.encode(good.to_string())
    );
    let attacker_jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": other.x});

    let cases: Vec<(&str, String)> = vec![
        (
            "aud: the token endpoint",
            key.sign(json!({}), &with("aud", json!(token_endpoint))),
        ),
        (
            "aud: another issuer",
            key.sign(json!({}), &with("aud", json!("https://other.test"))),
        ),
        (
            "aud: an array",
            key.sign(json!({}), &with("aud", json!([server.iss()]))),
        ),
        ("no aud", key.sign(json!({}), &without("aud"))),
        (
            "iss: another client",
            key.sign(json!({}), &with("iss", json!("svc"))),
        ),
        (
            "sub: another client",
            key.sign(json!({}), &with("sub", json!("svc"))),
        ),
        (
            "expired",
            key.sign(json!({}), &with("exp", json!(now - 120))),
        ),
        (
            "exp too far",
            key.sign(json!({}), &with("exp", json!(now + 3600))),
        ),
        ("no exp", key.sign(json!({}), &without("exp"))),
        ("no jti", key.sign(json!({}), &without("jti"))),
        ("another key", other.sign(json!({}), &good)),
        (
            "another key, named in the header",
            other.sign(json!({"jwk": attacker_jwk}), &good),
        ),
        ("alg none", unsigned),
        ("HMAC with the public key", hmac),
        (
            "an access token's typ",
            key.sign(json!({"typ": "at+jwt"}), &good),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (what, assertion) in &cases {
        let reply = server.form(&token_form(assertion, Some(CLIENT))).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.text()
        );
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }

    // Replay: the same assertion twice.
    let assertion = key.sign(json!({}), &claims(&server));
    server
        .form(&token_form(&assertion, Some(CLIENT)))
        .await
        .assert_token();
    server
        .form(&token_form(&assertion, Some(CLIENT)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    // A good assertion of pkj presented as another client; an assertion type other than
    // jwt-bearer; pkj with a secret instead.
    let assertion = key.sign(json!({}), &claims(&server));
    server
        .form(&token_form(&assertion, Some("svc")))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let assertion = key.sign(json!({}), &claims(&server));
    server
        .form(&format!(
            "grant_type=client_credentials&client_id={CLIENT}&client_assertion_type=urn%3Aother&client_assertion={}",
            urlencode(&assertion)
        ))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    server
        .basic(CLIENT, SVC_SECRET, "grant_type=client_credentials")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    // Two methods at once.
    let assertion = key.sign(json!({}), &claims(&server));
    let reply = server
        .post(
            FORM,
            token_form(&assertion, Some(CLIENT)),
            &[("authorization", &basic_header("svc", SVC_SECRET))],
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[test]
fn registration_needs_a_public_asymmetric_key() {
    let client = |extra: &str| {
        format!(
            "[[clients]]\nclient_id = \"k\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
             scopes = [\"read\"]\nresources = [\"{API}\"]\n{extra}"
        )
    };
    let key = ClientKey::generate();
    let good = client(&format!(
        "jwk = {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{}\" }}",
        key.x
    ));
    let parsed = bearer_guard_issuer::parse_clients(&good, bearer_guard_issuer::Format::Toml)
        .expect("a public key");
    assert!(!parsed.list[0].is_public());
    for bad in [
        client(""),
        client(&format!(
            "jwk = {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{}\", d = \"{}\" }}",
            key.x, key.x
        )),
        client("jwk = { kty = \"oct\", k = \"c2VjcmV0\" }"),
        client(&format!(
            "jwk = {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{}\", alg = \"HS256\" }}",
            key.x
        )),
        client(&format!(
            "jwk = {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{}\" }}\nsecret_hash = \"x\"",
            key.x
        )),
    ] {
        assert!(
            bearer_guard_issuer::parse_clients(&bad, bearer_guard_issuer::Format::Toml).is_err(),
            "accepted:\n{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The shipped demo client and its key

/// The demo client of `examples/clients.toml`, and the audience it may have.
const DEMO_CLIENT: &str = "demo-jwt-client";
const DEMO_API: &str = "http://127.0.0.1:8001";

/// A file of `examples/`, as shipped.
fn example_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The issuer with the shipped clients.
async fn demo_issuer() -> Server {
    Server::start_full(
        example_file("clients.toml"),
        SigningKey::generate(None).expect("key"),
        |_| {},
    )
    .await
}

/// An ES256 JWS of `claims` by the P-256 private key `pem` (PKCS#8).
fn es256(pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("a P-256 PEM");
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "ES256", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::ES256, &key).expect("signer");
    let signature = signer.try_sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", B64.encode(signature))
}

/// Good claims of an assertion of `demo-jwt-client` for `server`.
fn demo_claims(server: &Server) -> Value {
    let now = now();
    json!({
        "iss": DEMO_CLIENT,
        "sub": DEMO_CLIENT,
        "aud": server.iss(),
        "jti": random_jti(),
        "iat": now,
        "exp": now + 60,
    })
}

#[test]
fn the_shipped_jwk_of_demo_jwt_client_is_the_public_half_of_the_shipped_key() {
    let clients: toml::Table = toml::from_str(&example_file("clients.toml")).expect("TOML");
    let entry = clients["clients"]
        .as_array()
        .expect("[[clients]]")
        .iter()
        .find(|c| c["client_id"].as_str() == Some(DEMO_CLIENT))
        .expect("demo-jwt-client in examples/clients.toml");
    assert_eq!(
        entry["token_endpoint_auth_method"].as_str(),
        Some("private_key_jwt")
    );
    let jwk = &entry["jwk"];
    // The library's own reading of the PEM: the key a client using it would sign with.
    let key = PrivateKeyJwt::from_pem(example_file("keys/demo-jwt-client.pem").as_bytes())
        .expect("the demo key");
    assert_eq!(key.algorithm(), Algorithm::ES256);
    let public: Value = serde_json::from_str(&key.public_jwk()).expect("JWK");
    for member in ["kty", "crv", "x", "y", "alg"] {
        assert_eq!(
            jwk.get(member).and_then(|v| v.as_str()),
            public[member].as_str(),
            "`{member}` of the registered JWK"
        );
    }
    assert!(jwk.get("d").is_none(), "a private member in clients.toml");
}

#[tokio::test]
async fn demo_jwt_client_gets_a_token_with_the_shipped_key() {
    let pem = example_file("keys/demo-jwt-client.pem");
    let server = demo_issuer().await;

    let assertion = es256(&pem, &demo_claims(&server));
    let reply = server
        .form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await;
    let token = reply.assert_token();
    assert_eq!(reply.json()["scope"], "read", "{}", reply.text());
    let claims = bearer_guard_issuer::testing::claims(&token);
    assert_eq!(claims["iss"], server.iss());
    assert_eq!(claims["sub"], DEMO_CLIENT);
    assert_eq!(claims["client_id"], DEMO_CLIENT);
    assert_eq!(claims["aud"], DEMO_API);
    assert_eq!(claims["scope"], "read");

    // The client is also found from the assertion's `sub` alone.
    let assertion = es256(&pem, &demo_claims(&server));
    server
        .form(&token_form(&assertion, None))
        .await
        .assert_token();
    // It may not have more than `read`.
    let assertion = es256(&pem, &demo_claims(&server));
    server
        .form(&format!(
            "{}&scope=write",
            token_form(&assertion, Some(DEMO_CLIENT))
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn demo_jwt_client_bad_assertions_are_invalid_client() {
    let pem = example_file("keys/demo-jwt-client.pem");
    let server = demo_issuer().await;
    let with = |name: &str, value: Value| {
        let mut c = demo_claims(&server);
        c[name] = value;
        c
    };
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("another P-256 key")
        .serialize_pem();
    let now = now();

    // The same assertion twice: the second is a replay.
    let assertion = es256(&pem, &demo_claims(&server));
    server
        .form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await
        .assert_token();
    let replayed = server
        .form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await;
    replayed.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    let cases = [
        (
            "aud: the token endpoint's URL",
            es256(
                &pem,
                &with("aud", json!(format!("{}/oauth/token", server.base))),
            ),
        ),
        ("expired", es256(&pem, &with("exp", json!(now - 120)))),
        (
            "signed by another P-256 key",
            es256(&other, &demo_claims(&server)),
        ),
    ];
    for (what, assertion) in &cases {
        let reply = server.form(&token_form(assertion, Some(DEMO_CLIENT))).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.text()
        );
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }

    // The key itself still works: the refusals were for the assertions.
    let assertion = es256(&pem, &demo_claims(&server));
    server
        .form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await
        .assert_token();
}

/// One of two issuer replicas behind one identifier, sharing `redis`: the shipped clients.
async fn demo_replica(redis: &bearer_guard::testkit::redis::RedisServer) -> Server {
    let store = bearer_guard_issuer::Store::redis(&redis.url())
        .await
        .expect("store");
    Server::start_full(
        example_file("clients.toml"),
        SigningKey::generate(None).expect("key"),
        |config| {
            config.issuer = "https://issuer.test".into();
            config.store = Some(store);
        },
    )
    .await
}

/// The `jti` of an assertion is remembered in Redis when the issuer's store is Redis: an
/// assertion accepted by one replica is a replay at the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_accepted_by_one_replica_is_a_replay_at_the_other() {
    let Some(redis) = bearer_guard::testkit::redis::RedisServer::start().await else {
        return;
    };
    let (a, b) = (demo_replica(&redis).await, demo_replica(&redis).await);
    let pem = example_file("keys/demo-jwt-client.pem");
    let assertion = es256(&pem, &demo_claims(&a));
    a.form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await
        .assert_token();
    b.form(&token_form(&assertion, Some(DEMO_CLIENT)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    // A fresh one passes at B: the replica works, only the replay was refused.
    let fresh = es256(&pem, &demo_claims(&b));
    b.form(&token_form(&fresh, Some(DEMO_CLIENT)))
        .await
        .assert_token();
}
