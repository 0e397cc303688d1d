//! DPoP at the example issuer's token endpoint (RFC 9449 §5, §8, §10), over real sockets: a
//! token request with a valid proof gets a DPoP-bound token (`cnf.jkt`, `token_type: DPoP`)
//! for every grant; a public client's refresh token is bound to the key, and so is a code
//! asked for with `dpop_jkt`; bad proofs are 400 `invalid_dpop_proof`, and they never use up
//! the code or refresh token; nonces when configured; `cnf` in introspection; the metadata.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing::{self as issuer_server, oauth};
use issuer_server::{
    APP, FORM, READER_SECRET, REDIRECT, RS_SECRET, Reply, SVC_SECRET, Server, claims,
};
use oauth::urlencode;

use std::time::{SystemTime, UNIX_EPOCH};

use bearer_guard::dpop::DpopKey;
use http::{Method, StatusCode, header};
use oauth::basic_header;
use serde_json::Value;

fn key() -> DpopKey {
    DpopKey::generate().expect("key")
}

/// The token endpoint's DPoP requests, on the test server.
trait DpopRequests {
    fn token_url(&self) -> String;
    fn proof(&self, key: &DpopKey, nonce: Option<&str>) -> String;
    async fn token_with(&self, form: &str, headers: &[(&str, &str)]) -> Reply;
    async fn svc_token(&self, proofs: &[&str]) -> Reply;
}

impl DpopRequests for Server {
    /// The public token endpoint URL: what proofs name in `htu`.
    fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base)
    }

    /// A fresh proof of `key` for the token endpoint, with `nonce` if given.
    fn proof(&self, key: &DpopKey, nonce: Option<&str>) -> String {
        let mut proof = key.proof(&Method::POST, &self.token_url());
        if let Some(nonce) = nonce {
            proof = proof.nonce(nonce);
        }
        proof.sign().expect("proof")
    }

    /// A form to the token endpoint with these extra headers (a `DPoP` proof).
    async fn token_with(&self, form: &str, headers: &[(&str, &str)]) -> Reply {
        self.post(FORM, form.to_owned(), headers).await
    }

    /// A client-credentials request by `svc` with `proofs` as `DPoP` headers.
    async fn svc_token(&self, proofs: &[&str]) -> Reply {
        let auth = basic_header("svc", SVC_SECRET);
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(proofs.iter().map(|p| ("dpop", *p)));
        self.token_with("grant_type=client_credentials", &headers)
            .await
    }
}

/// `form` for the code flow's token requests of [`APP`].
fn redeem_form(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id={APP}&code={}&redirect_uri={}&code_verifier={}",
        urlencode(code),
        urlencode(REDIRECT),
        urlencode(verifier)
    )
}

fn refresh_form(refresh: &str) -> String {
    format!(
        "grant_type=refresh_token&client_id={APP}&refresh_token={}",
        urlencode(refresh)
    )
}

/// A DPoP token response bound to `key`: returns the whole body.
fn assert_dpop_token(reply: &Reply, key: &DpopKey) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.assert_no_store();
    let body = reply.json();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    if token.contains('.') {
        assert_eq!(claims(token)["cnf"]["jkt"], key.thumbprint());
    }
    body
}

/// A 400 `invalid_dpop_proof`.
fn assert_invalid_proof(reply: &Reply) {
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    i64::try_from(secs).expect("i64")
}

#[tokio::test]
async fn metadata_lists_the_proof_algorithms() {
    let server = Server::start().await;
    let doc = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    let algs = doc["dpop_signing_alg_values_supported"]
        .as_array()
        .expect("dpop_signing_alg_values_supported");
    for alg in ["ES256", "ES384", "EdDSA", "PS256", "RS256"] {
        assert!(algs.iter().any(|a| a == alg), "{alg} in {algs:?}");
    }
    assert!(
        !algs
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.starts_with("HS")))
    );
}

#[tokio::test]
async fn a_proof_binds_the_client_credentials_token_and_no_proof_is_bearer() {
    let server = Server::start().await;
    let key = key();
    let bound = server.svc_token(&[&server.proof(&key, None)]).await;
    let body = assert_dpop_token(&bound, &key);
    assert!(body.get("refresh_token").is_none());
    assert!(
        bound.headers.get("dpop-nonce").is_none(),
        "no nonces by default"
    );

    let token = server.svc_token(&[]).await.assert_token();
    assert!(claims(&token).get("cnf").is_none(), "no proof, no binding");
}

#[tokio::test]
async fn bad_proofs_are_invalid_dpop_proof_and_logged_without_the_proof() {
    let logs = bearer_guard::testkit::logs::capture();
    let server = Server::start().await;
    let key = key();
    let url = server.token_url();
    let sign = |method: &Method, htu: &str, iat: Option<i64>| {
        let mut proof = key.proof(method, htu);
        if let Some(iat) = iat {
            proof = proof.issued_at(iat);
        }
        proof.sign().expect("proof")
    };
    let bad = [
        (
            "another URL",
            sign(&Method::POST, &format!("{url}/x"), None),
        ),
        (
            "another host",
            sign(&Method::POST, "http://other.test/oauth/token", None),
        ),
        ("another method", sign(&Method::GET, &url, None)),
        ("too old", sign(&Method::POST, &url, Some(now() - 3600))),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("a bearer token", server.svc_token(&[]).await.assert_token()),
    ];
    for (what, proof) in &bad {
        let reply = server.svc_token(&[proof]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text()
        );
        assert_invalid_proof(&reply);
        assert!(!reply.text().contains(&proof[proof.len() - 8..]), "{what}");
    }
    // The security log says why, and never quotes a proof.
    let text = logs.text();
    for reason in ["uri_mismatch", "method_mismatch", "too_old", "malformed"] {
        let line = format!("event=\"dpop_proof_refused\" client_id=svc reason=\"{reason}\"");
        assert!(text.contains(&line), "{line} in {text}");
    }
    for (_, proof) in bad.iter().filter(|(_, p)| p.len() > 100) {
        assert!(!text.contains(&proof[proof.len() - 16..]), "{text}");
    }
    // Two proofs; the same proof twice (a replay).
    let once = server.proof(&key, None);
    let two = server.proof(&key, None);
    assert_invalid_proof(&server.svc_token(&[&once, &two]).await);
    assert_dpop_token(&server.svc_token(&[&once]).await, &key);
    assert_invalid_proof(&server.svc_token(&[&once]).await);
}

#[tokio::test]
async fn the_proof_is_checked_only_after_client_authentication() {
    let server = Server::start().await;
    let key = key();
    let proof = server.proof(&key, None);
    let wrong = basic_header("svc", READER_SECRET);
    server
        .token_with(
            "grant_type=client_credentials",
            &[("authorization", &wrong), ("dpop", &proof)],
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    // Not checked, so not spent: the same proof still works for the real client.
    assert_dpop_token(&server.svc_token(&[&proof]).await, &key);
}

#[tokio::test]
async fn nonces_when_configured_cost_one_retry() {
    let server = Server::start_with(|config| config.dpop_nonces = true).await;
    let key = key();
    let first = server.svc_token(&[&server.proof(&key, None)]).await;
    first.assert_error(StatusCode::BAD_REQUEST, "use_dpop_nonce");
    let nonce = first.header(header::HeaderName::from_static("dpop-nonce"));
    let nonce = nonce.expect("a DPoP-Nonce to retry with").to_owned();
    let wrong = server
        .svc_token(&[&server.proof(&key, Some("forged"))])
        .await;
    wrong.assert_error(StatusCode::BAD_REQUEST, "use_dpop_nonce");

    let ok = server.svc_token(&[&server.proof(&key, Some(&nonce))]).await;
    assert_dpop_token(&ok, &key);
    let next = ok.header(header::HeaderName::from_static("dpop-nonce"));
    assert!(next.is_some(), "the next nonce comes with the token");
    // Requests without a proof are not concerned.
    server.svc_token(&[]).await.assert_token();
}

#[tokio::test]
async fn the_code_flow_binds_access_and_refresh_tokens_and_bad_proofs_spend_nothing() {
    let server = Server::start().await;
    let key = key();
    let (code, verifier) = server.code("").await;
    // A bad proof does not use up the code.
    let thief = DpopKey::generate().expect("key");
    let stale = thief
        .proof(&Method::POST, &server.token_url())
        .issued_at(now() - 3600);
    let stale = stale.sign().expect("proof");
    assert_invalid_proof(
        &server
            .token_with(&redeem_form(&code, &verifier), &[("dpop", &stale)])
            .await,
    );
    let redeemed = server
        .token_with(
            &redeem_form(&code, &verifier),
            &[("dpop", &server.proof(&key, None))],
        )
        .await;
    let body = assert_dpop_token(&redeemed, &key);
    let refresh = body["refresh_token"].as_str().expect("refresh_token");

    // APP is a public client: its refresh token is bound to the key (RFC 9449 §5). Without
    // a proof, or with another key's, it is refused, and not used up.
    let form = refresh_form(refresh);
    assert_invalid_proof(&server.token_with(&form, &[]).await);
    let other = server.proof(&thief, None);
    assert_invalid_proof(&server.token_with(&form, &[("dpop", &other)]).await);
    let rotated = server
        .token_with(&form, &[("dpop", &server.proof(&key, None))])
        .await;
    let body = assert_dpop_token(&rotated, &key);
    // The next refresh token is bound too.
    let next = refresh_form(body["refresh_token"].as_str().expect("refresh_token"));
    assert_invalid_proof(&server.token_with(&next, &[]).await);
}

#[tokio::test]
async fn a_code_flow_without_proof_leaves_refresh_tokens_unbound() {
    let server = Server::start().await;
    let (code, verifier) = server.code("").await;
    let (_, refresh) = server.redeem(&code, &verifier).await.assert_tokens();
    let (access, _) = server.refresh(&refresh).await.assert_tokens();
    assert!(claims(&access).get("cnf").is_none());
}

#[tokio::test]
async fn dpop_jkt_binds_the_code_to_the_key() {
    let server = Server::start().await;
    let key = key();
    let extra = format!("&dpop_jkt={}", key.thumbprint());
    let (code, verifier) = server.code(&extra).await;
    let form = redeem_form(&code, &verifier);
    // Without a proof, or with another key's: refused, and the code is not used up.
    assert_invalid_proof(&server.token_with(&form, &[]).await);
    let other = server.proof(&DpopKey::generate().expect("key"), None);
    let reply = server.token_with(&form, &[("dpop", &other)]).await;
    assert_invalid_proof(&reply);
    assert!(
        reply.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("not the key this grant is bound to"))
    );
    let ok = server
        .token_with(&form, &[("dpop", &server.proof(&key, None))])
        .await;
    assert_dpop_token(&ok, &key);

    // A dpop_jkt that is no thumbprint goes back to the client as invalid_request.
    let query = format!(
        "{}&dpop_jkt=short",
        issuer_server::authorize_query(
            APP,
            REDIRECT,
            &issuer_server::challenge(&issuer_server::new_verifier()),
            "st"
        )
    );
    let reply = server.get(&format!("/oauth/authorize?{query}")).await;
    let callback = issuer_server::callback_query(&reply.location(), REDIRECT);
    assert_eq!(
        issuer_server::query_value(&callback, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn a_nonce_answer_to_a_code_redemption_can_be_retried() {
    let server = Server::start_with(|config| config.dpop_nonces = true).await;
    let key = key();
    let (code, verifier) = server.code("").await;
    let form = redeem_form(&code, &verifier);
    let first = server
        .token_with(&form, &[("dpop", &server.proof(&key, None))])
        .await;
    first.assert_error(StatusCode::BAD_REQUEST, "use_dpop_nonce");
    let nonce = first
        .header(header::HeaderName::from_static("dpop-nonce"))
        .expect("nonce")
        .to_owned();
    let ok = server
        .token_with(&form, &[("dpop", &server.proof(&key, Some(&nonce)))])
        .await;
    assert_dpop_token(&ok, &key);
}

#[tokio::test]
async fn introspection_shows_the_binding_of_opaque_and_jwt_tokens() {
    for format in [issuer::TokenFormat::Opaque, issuer::TokenFormat::Jwt] {
        let server = Server::start_with(|config| config.token_format = format).await;
        let key = key();
        let reply = server.svc_token(&[&server.proof(&key, None)]).await;
        let body = assert_dpop_token(&reply, &key);
        let token = body["access_token"].as_str().expect("token");
        let answer = server.introspect("rs", RS_SECRET, token).await.json();
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["cnf"]["jkt"], key.thumbprint(), "{answer}");
        assert_eq!(answer["token_type"], "DPoP", "{answer}");
        // A token without a proof has no binding.
        let plain = server.svc_token(&[]).await.assert_token();
        let answer = server.introspect("rs", RS_SECRET, &plain).await.json();
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        assert!(answer.get("cnf").is_none(), "{answer}");
    }
}
