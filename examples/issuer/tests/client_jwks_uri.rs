//! `private_key_jwt` clients of the clients file whose keys are at a `jwks_uri`: the key set
//! fetched over real TLS (a test CA, `CLIENT_METADATA_CA_FILE`) from a loopback server
//! (`CLIENT_METADATA_ALLOW_LOOPBACK`) that counts its requests, by the rules of client
//! metadata documents; cached (never a fetch per request); fetched again for an unknown `kid`
//! at most once per interval (key rotation); never from a URL an assertion names. Every key or
//! fetch failure is 401 `invalid_client`, logged without a key or an assertion.

use std::time::Duration;

use bearer_guard_issuer::Format;
use bearer_guard_issuer::testing::oauth::urlencode;
use bearer_guard_issuer::testing::{API, Reply, Server, clients_toml};
use http::StatusCode;
use serde_json::json;

#[path = "common/client_docs.rs"]
mod client_docs;
use client_docs::{Canned, Docs, Signer, assertion_claims, assertion_form, issuer_trusting, jwks};

/// How long the issuer waits before it fetches a set again for an unknown `kid`
/// (`client_keys::REFETCH_AFTER`), and a margin.
const REFETCH_AFTER: Duration = Duration::from_millis(10_300);

/// The test clients, and a `private_key_jwt` client `id` whose keys are at `jwks_uri`.
fn clients_with(clients: &[(&str, &str)]) -> String {
    let mut toml = clients_toml();
    for (id, jwks_uri) in clients {
        toml.push_str(&format!(
            r#"
[[clients]]
client_id = "{id}"
token_endpoint_auth_method = "private_key_jwt"
jwks_uri = "{jwks_uri}"
scopes = ["read"]
resources = ["{API}"]
"#
        ));
    }
    // (TOML: tables of an array may follow other tables, `[registration]` included.)
    toml
}

/// A client-credentials request of `client_id` with `assertion`.
async fn token(server: &Server, client_id: &str, assertion: &str) -> Reply {
    server
        .form(&format!(
            "grant_type=client_credentials&client_id={}&{}",
            urlencode(client_id),
            assertion_form(assertion)
        ))
        .await
}

#[track_caller]
fn assert_invalid_client(reply: &Reply) {
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn a_client_with_a_jwks_uri_gets_tokens_with_its_assertions() {
    let docs = Docs::start().await;
    let ed = Signer::test_key("ed-1", "k1");
    let rsa = Signer::test_key("rsa-1", "k2");
    // The media type of RFC 7517 §8.5, and no-store: cached all the same (at least a minute).
    docs.answer(
        "/jwks.json",
        Canned {
            status: StatusCode::OK,
            headers: vec![
                ("content-type", "application/jwk-set+json".into()),
                ("cache-control", "no-store".into()),
            ],
            body: jwks(&[&ed, &rsa]).to_string(),
        },
    );
    let clients = clients_with(&[("jwt-client", &docs.url("/jwks.json"))]);
    let server = issuer_trusting(&docs, true, clients).await;
    // Fetched when first needed, not at start.
    assert_eq!(docs.hits("/jwks.json"), 0);

    let access = token(&server, "jwt-client", &ed.assertion("jwt-client", &server))
        .await
        .assert_token();
    let validator = server.validator(API).await;
    let claims = validator.validate_async(&access).await.expect("valid");
    assert_eq!(claims.subject(), Some("jwt-client"));
    // The other key of the set, and an assertion without kid (one key pins EdDSA).
    token(&server, "jwt-client", &rsa.assertion("jwt-client", &server))
        .await
        .assert_token();
    let no_kid = ed.sign(json!({}), &assertion_claims("jwt-client", &server));
    token(&server, "jwt-client", &no_kid).await.assert_token();
    // Without client_id: the client is the assertion's sub.
    let assertion = ed.assertion("jwt-client", &server);
    server
        .form(&format!(
            "grant_type=client_credentials&{}",
            assertion_form(&assertion)
        ))
        .await
        .assert_token();
    assert_eq!(docs.hits("/jwks.json"), 1, "one fetch for four requests");
}

#[tokio::test]
async fn an_assertion_signed_by_a_key_not_in_the_set_is_invalid_client() {
    let docs = Docs::start().await;
    let key = Signer::test_key("ed-1", "k1");
    docs.json("/jwks.json", &jwks(&[&key]), "max-age=300");
    let attacker = Signer::ed25519("evil");
    docs.json("/attacker.json", &jwks(&[&attacker]), "max-age=300");
    let clients = clients_with(&[("jwt-client", &docs.url("/jwks.json"))]);
    let server = issuer_trusting(&docs, true, clients).await;
    token(&server, "jwt-client", &key.assertion("jwt-client", &server))
        .await
        .assert_token();

    let claims = || assertion_claims("jwt-client", &server);
    let cases = [
        // Another Ed25519 key under the client's kid.
        (
            "another key, same kid",
            Signer::ed25519("k1").sign(json!({"kid": "k1"}), &claims()),
        ),
        // Another algorithm under the client's kid: the key is pinned to EdDSA.
        (
            "ES256 under an EdDSA kid",
            Signer::test_key("ec-1", "k1").sign(json!({"kid": "k1"}), &claims()),
        ),
        (
            "an unknown kid",
            Signer::ed25519("k9").sign(json!({"kid": "k9"}), &claims()),
        ),
        // Keys the assertion points at itself: never fetched, never used.
        (
            "jku",
            attacker.sign(
                json!({"kid": "evil", "jku": docs.url("/attacker.json")}),
                &claims(),
            ),
        ),
        (
            "jwk in the header",
            attacker.sign(json!({"kid": "evil", "jwk": attacker.jwk()}), &claims()),
        ),
        (
            "x5u",
            attacker.sign(json!({"x5u": docs.url("/attacker.json")}), &claims()),
        ),
    ];
    for (what, assertion) in &cases {
        let reply = token(&server, "jwt-client", assertion).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_invalid_client(&reply);
    }
    assert_eq!(docs.hits("/attacker.json"), 0, "a URL of an assertion");
    // Unknown kids fetched the set again at most once in the interval: here not at all.
    assert_eq!(docs.hits("/jwks.json"), 1);
    // The client's own key still works.
    token(&server, "jwt-client", &key.assertion("jwt-client", &server))
        .await
        .assert_token();
}

#[tokio::test]
async fn keys_rotated_at_the_jwks_uri_are_picked_up() {
    let docs = Docs::start().await;
    let old = Signer::test_key("ed-1", "2025");
    let new = Signer::test_key("ec-1", "2026");
    docs.json("/jwks.json", &jwks(&[&old]), "max-age=3600");
    let clients = clients_with(&[("jwt-client", &docs.url("/jwks.json"))]);
    let server = issuer_trusting(&docs, true, clients).await;
    token(&server, "jwt-client", &old.assertion("jwt-client", &server))
        .await
        .assert_token();

    // The client rotates: the new key only.
    docs.json("/jwks.json", &jwks(&[&new]), "max-age=3600");
    // Right after the last fetch, an unknown kid does not fetch again (a flood of made-up
    // kids cannot make the issuer fetch); the cached set still holds the old key.
    assert_invalid_client(
        &token(&server, "jwt-client", &new.assertion("jwt-client", &server)).await,
    );
    assert_eq!(docs.hits("/jwks.json"), 1);
    token(&server, "jwt-client", &old.assertion("jwt-client", &server))
        .await
        .assert_token();

    // Once the interval passed, the new kid fetches the set again.
    tokio::time::sleep(REFETCH_AFTER).await;
    token(&server, "jwt-client", &new.assertion("jwt-client", &server))
        .await
        .assert_token();
    assert_eq!(docs.hits("/jwks.json"), 2);
    // The old key is gone with the old set.
    assert_invalid_client(
        &token(&server, "jwt-client", &old.assertion("jwt-client", &server)).await,
    );
    assert_eq!(docs.hits("/jwks.json"), 2);
}

#[tokio::test]
async fn an_unusable_jwks_uri_is_invalid_client_and_logged_without_keys() {
    let docs = Docs::start().await;
    let key = Signer::test_key("ed-1", "k1");
    // Nothing listens on this port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let unreachable = format!("https://localhost:{closed}/jwks.json");
    docs.answer(
        "/error.json",
        Canned {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            headers: vec![("content-type", "application/json".into())],
            body: jwks(&[&key]).to_string(),
        },
    );
    let mut private = key.jwk();
    private["d"] = private["x"].clone();
    docs.json(
        "/private.json",
        &json!({ "keys": [private] }),
        "max-age=300",
    );
    docs.json(
        "/symmetric.json",
        &json!({ "keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "k1"}] }),
        "max-age=300",
    );
    docs.answer(
        "/html.json",
        Canned {
            status: StatusCode::OK,
            headers: vec![("content-type", "text/html".into())],
            body: jwks(&[&key]).to_string(),
        },
    );
    let mut big = jwks(&[&key]);
    big["padding"] = json!("x".repeat(16 * 1024));
    docs.json("/big.json", &big, "max-age=300");
    docs.answer(
        "/moved.json",
        Canned {
            status: StatusCode::MOVED_PERMANENTLY,
            headers: vec![
                ("location", docs.url("/good.json")),
                ("content-type", "application/json".into()),
            ],
            body: jwks(&[&key]).to_string(),
        },
    );
    docs.json("/good.json", &jwks(&[&key]), "max-age=300");
    let bad = [
        ("unreachable", unreachable),
        ("error", docs.url("/error.json")),
        ("private", docs.url("/private.json")),
        ("symmetric", docs.url("/symmetric.json")),
        ("html", docs.url("/html.json")),
        ("big", docs.url("/big.json")),
        ("moved", docs.url("/moved.json")),
    ];
    let clients: Vec<(&str, &str)> = bad.iter().map(|(id, u)| (*id, u.as_str())).collect();
    let server = issuer_trusting(&docs, true, clients_with(&clients)).await;

    let logs = bearer_guard::testkit::logs::capture();
    let mut assertions = Vec::new();
    for (id, _) in &bad {
        // Twice: the second is refused without a fetch (no storm against a failing server).
        for _ in 0..2 {
            let assertion = key.assertion(id, &server);
            let reply = token(&server, id, &assertion).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{id}");
            assert_invalid_client(&reply);
            assertions.push(assertion);
        }
    }
    for path in [
        "/error.json",
        "/private.json",
        "/symmetric.json",
        "/html.json",
        "/big.json",
        "/moved.json",
    ] {
        assert_eq!(docs.hits(path), 1, "{path}");
    }
    assert_eq!(docs.hits("/good.json"), 0, "the redirect was followed");

    let text = logs.text();
    for reason in [
        "unreachable",
        "status",
        "private_key",
        "symmetric_key",
        "content_type",
        "too_large",
        "redirect",
    ] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "{reason} not logged:\n{text}"
        );
    }
    assert!(text.contains("client_keys_refused"), "{text}");
    assert!(text.contains("jwks_uri_unavailable"), "{text}");
    let x = key.jwk()["x"].as_str().expect("x").to_owned();
    assert!(!text.contains(&x), "a key was logged:\n{text}");
    for assertion in &assertions {
        let signature = assertion.rsplit('.').next().expect("signature");
        assert!(!text.contains(signature), "an assertion was logged");
    }
}

#[tokio::test]
async fn a_jwks_uri_on_loopback_is_refused_unless_allowed() {
    let docs = Docs::start().await;
    let key = Signer::test_key("ed-1", "k1");
    docs.json("/jwks.json", &jwks(&[&key]), "max-age=300");
    let clients = clients_with(&[("jwt-client", &docs.url("/jwks.json"))]);
    // `localhost` resolves to loopback: not fetched, before any connection.
    let strict = issuer_trusting(&docs, false, clients.clone()).await;
    assert_invalid_client(
        &token(&strict, "jwt-client", &key.assertion("jwt-client", &strict)).await,
    );
    assert_eq!(docs.hits("/jwks.json"), 0);
    // Allowed (local tests only): fetched.
    let loose = issuer_trusting(&docs, true, clients).await;
    token(&loose, "jwt-client", &key.assertion("jwt-client", &loose))
        .await
        .assert_token();
    assert_eq!(docs.hits("/jwks.json"), 1);
}

#[test]
fn a_jwks_uri_is_https_and_instead_of_a_jwk() {
    let client = |extra: &str| {
        format!(
            "[[clients]]\nclient_id = \"k\"\nscopes = [\"read\"]\nresources = [\"{API}\"]\n{extra}"
        )
    };
    let parse = |text: &str| bearer_guard_issuer::parse_clients(text, Format::Toml);
    let method = "token_endpoint_auth_method = \"private_key_jwt\"\n";
    let good = client(&format!(
        "{method}jwks_uri = \"https://client.test/jwks.json\""
    ));
    let parsed = parse(&good).expect("a jwks_uri");
    assert!(!parsed.list[0].is_public());
    let jwk = format!(
        "jwk = {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{}\" }}\n",
        Signer::test_key("ed-1", "k").jwk()["x"]
            .as_str()
            .expect("x")
    );
    for (bad, why) in [
        (
            client(&format!(
                "{method}jwks_uri = \"http://client.test/jwks.json\""
            )),
            "not an https URL",
        ),
        (
            client(&format!(
                "{method}jwks_uri = \"https://u:p@client.test/jwks\""
            )),
            "user name or password",
        ),
        (
            client(&format!(
                "{method}jwks_uri = \"https://client.test/jwks#k\""
            )),
            "fragment",
        ),
        (
            client(&format!("{method}jwks_uri = \"https://client.test\"")),
            "no path",
        ),
        (
            client(&format!(
                "{method}{jwk}jwks_uri = \"https://client.test/jwks.json\""
            )),
            "not both",
        ),
        (
            client("jwks_uri = \"https://client.test/jwks.json\"\nsecret_hash = \"x\""),
            "is for token_endpoint_auth_method",
        ),
        (
            client(&format!(
                "{method}jwks_uri = \"https://client.test/jwks.json\"\nsecret_hash = \"x\""
            )),
            "no secret_hash",
        ),
        (client(method), "needs a public `jwk` or a `jwks_uri`"),
    ] {
        let err = parse(&bad).expect_err(&bad).to_string();
        assert!(err.contains(why), "{why:?} not in {err:?}");
    }
}
