//! DPoP through `RequireScope` (the decision's bind stage): a DPoP-bound token with a fresh
//! proof passes, every request (the cached token's too) needs its own proof, and the stolen
//! token is worthless: as `Bearer`, with a proof for another URL, or with a replayed proof.
//! Challenges follow RFC 9449 §7.1; nonces are handed out and required.

use std::convert::Infallible;
use std::time::Duration;

use bearer_guard::dpop::{Dpop, DpopKey};
use bearer_guard::testkit as mint;
use bearer_guard::{
    AccessClaims, AuthError, ErrorKind, Guard, RequireScope, Validator, VerifiedToken,
    response::Refusal, response::Rejection,
};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;
use tower::{Layer as _, ServiceExt as _, service_fn};

const URL: &str = "https://api.test/data";

fn validator() -> Validator {
    mint::validator()
}

fn dpop() -> Dpop {
    Dpop::builder()
        .external_origin("https://api.test")
        .build()
        .expect("dpop")
}

/// DPoP with server nonces that live `lifetime`.
fn dpop_with_nonces(lifetime: Duration) -> Dpop {
    Dpop::builder()
        .external_origin("https://api.test")
        .nonces([7u8; 32], lifetime)
        .build()
        .expect("dpop")
}

/// A token bound to `key` (its `cnf.jkt`).
fn bound_token(key: &DpopKey) -> String {
    mint::token("ec-1", json!({ "cnf": { "jkt": key.thumbprint() } }))
}

fn proof(key: &DpopKey, method: &Method, url: &str, token: &str) -> String {
    key.proof(method, url)
        .access_token(token)
        .sign()
        .expect("proof")
}

/// A proof for `GET URL` with the server's `nonce`.
fn proof_with_nonce(key: &DpopKey, token: &str, nonce: &str) -> String {
    key.proof(&Method::GET, URL)
        .access_token(token)
        .nonce(nonce)
        .sign()
        .expect("proof")
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    kind: Option<ErrorKind>,
    detail: Option<&'static str>,
    challenges: Vec<String>,
    nonce: Option<String>,
    client: Option<String>,
}

/// Sends `GET /data` with `authorization` and `dpop` headers through `layer`.
async fn send<R: Rejection<Option<String>>>(
    layer: &RequireScope<AccessClaims, R>,
    authorization: Option<String>,
    dpop: &[String],
) -> Answer {
    let svc = layer.layer(service_fn(|req: Request<()>| async move {
        let client = req
            .extensions()
            .get::<VerifiedToken>()
            .and_then(|t| t.client_id().map(str::to_owned));
        Ok::<_, Infallible>(Response::new(client))
    }));
    let mut req = Request::get("/data").header(header::HOST, "api.test");
    if let Some(authorization) = authorization {
        req = req.header(header::AUTHORIZATION, authorization);
    }
    for proof in dpop {
        req = req.header("dpop", proof.as_str());
    }
    let res = svc
        .oneshot(req.body(()).expect("request"))
        .await
        .expect("infallible");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v: &HeaderValue| v.to_str().expect("ascii").to_owned())
    };
    Answer {
        status: res.status(),
        kind: res.extensions().get::<AuthError>().map(AuthError::kind),
        detail: res.extensions().get::<Detail>().map(|d| d.0),
        challenges: res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect(),
        nonce: header("dpop-nonce"),
        client: res.into_body(),
    }
}

/// The refusal's detail, copied into the response by the test's rejection.
#[derive(Clone, Copy)]
struct Detail(&'static str);

fn layer(guard: &Guard) -> RequireScope {
    RequireScope::all(guard, ["read"]).expect("scope")
}

/// Keeps the standard answer and records the failed proof check of the refusal's
/// `AuthError` (DPoP or mTLS) in the extensions.
fn with_detail(refusal: &Refusal) -> Response<Option<String>> {
    let mut res: Response<Option<String>> = refusal.to_response();
    let error = refusal.error();
    let detail = match (error.dpop_error(), error.certificate_error()) {
        (Some(dpop), _) => Some(dpop.as_str()),
        (_, Some(certificate)) => Some(certificate.as_str()),
        (None, None) => None,
    };
    if let Some(detail) = detail {
        res.extensions_mut().insert(Detail(detail));
    }
    res
}

#[tokio::test]
async fn a_bound_token_passes_with_a_fresh_proof_each_time_and_nowhere_else() {
    let key = DpopKey::generate().expect("key");
    let guard = Guard::new(&validator()).dpop(dpop()).rejection(with_detail);
    let route = RequireScope::all(&guard, ["read"]).expect("scope");
    let token = bound_token(&key);
    let dpop_auth = Some(format!("DPoP {token}"));

    // Twice, each with a fresh proof: the second time the token comes from the cache.
    for _ in 0..2 {
        let ok = send(
            &route,
            dpop_auth.clone(),
            &[proof(&key, &Method::GET, URL, &token)],
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
        assert_eq!(ok.client.as_deref(), Some("client-a"));
    }

    // The same proof again: a replay.
    let once = proof(&key, &Method::GET, URL, &token);
    assert_eq!(
        send(&route, dpop_auth.clone(), std::slice::from_ref(&once))
            .await
            .status,
        StatusCode::OK
    );
    let replayed = send(&route, dpop_auth.clone(), &[once]).await;
    assert_eq!(
        (replayed.status, replayed.kind, replayed.detail),
        (
            StatusCode::UNAUTHORIZED,
            Some(ErrorKind::InvalidDpopProof),
            Some("replayed")
        )
    );
    assert_eq!(
        replayed.challenges,
        [format!(
            r#"DPoP error="invalid_dpop_proof", {}"#,
            dpop().algs_param()
        )]
    );

    // A proof for another URL, or another method.
    for (method, url, detail) in [
        (Method::GET, "https://api.test/other", "uri_mismatch"),
        (Method::POST, URL, "method_mismatch"),
    ] {
        let wrong = send(
            &route,
            dpop_auth.clone(),
            &[proof(&key, &method, url, &token)],
        )
        .await;
        assert_eq!(
            (wrong.status, wrong.kind, wrong.detail),
            (
                StatusCode::UNAUTHORIZED,
                Some(ErrorKind::InvalidDpopProof),
                Some(detail)
            ),
            "{url}"
        );
    }

    // A proof made for another access token of the same key: its `ath` is that token's
    // hash. The token is read again from the header for this check, spaces and all.
    let other = bound_token(&key);
    assert_ne!(other, token);
    let for_other = send(
        &route,
        dpop_auth.clone(),
        &[proof(&key, &Method::GET, URL, &other)],
    )
    .await;
    assert_eq!(
        (for_other.status, for_other.kind, for_other.detail),
        (
            StatusCode::UNAUTHORIZED,
            Some(ErrorKind::InvalidDpopProof),
            Some("ath_mismatch")
        )
    );
    let spaced = send(
        &route,
        Some(format!("dpop   {token}")),
        &[proof(&key, &Method::GET, URL, &token)],
    )
    .await;
    assert_eq!(spaced.status, StatusCode::OK, "{spaced:?}");

    // No proof at all.
    let missing = send(&route, dpop_auth.clone(), &[]).await;
    assert_eq!(
        (missing.kind, missing.detail),
        (Some(ErrorKind::InvalidDpopProof), Some("missing_proof"))
    );

    // A thief with the token but not the key: as Bearer, or with a proof of their own key.
    let stolen = send(&route, Some(format!("Bearer {token}")), &[]).await;
    assert_eq!(
        (stolen.status, stolen.kind),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::SenderConstrained))
    );
    assert_eq!(stolen.challenges.len(), 2, "{:?}", stolen.challenges);
    assert_eq!(stolen.challenges[0], r#"Bearer error="invalid_token""#);
    assert!(stolen.challenges[1].starts_with("DPoP algs="));
    let thief = DpopKey::generate().expect("key");
    let theirs = send(
        &route,
        dpop_auth,
        &[proof(&thief, &Method::GET, URL, &token)],
    )
    .await;
    assert_eq!(
        (theirs.kind, theirs.detail),
        (Some(ErrorKind::BindingMismatch), Some("key_mismatch"))
    );
    assert!(theirs.challenges[0].starts_with(r#"DPoP error="invalid_token""#));
}

#[tokio::test]
async fn a_dpop_route_offers_both_schemes_and_a_dpop_only_route_one() {
    let key = DpopKey::generate().expect("key");
    let v = validator();
    let both = layer(&Guard::new(&v).dpop(dpop()));
    let missing = send(&both, None, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.challenges.len(), 2);
    assert_eq!(missing.challenges[0], r#"Bearer scope="read""#);
    assert!(
        missing.challenges[1].starts_with("DPoP algs=\""),
        "{missing:?}"
    );
    // A plain token works as Bearer there, and not as DPoP.
    let plain = mint::token("ec-1", json!({}));
    assert_eq!(
        send(&both, Some(format!("Bearer {plain}")), &[])
            .await
            .status,
        StatusCode::OK
    );
    let unbound = send(
        &both,
        Some(format!("DPoP {plain}")),
        &[proof(&key, &Method::GET, URL, &plain)],
    )
    .await;
    assert_eq!(unbound.kind, Some(ErrorKind::BindingMismatch));

    let only = RequireScope::all(&v, ["read"])
        .expect("scope")
        .require_dpop(dpop());
    let missing = send(&only, None, &[]).await;
    assert_eq!(missing.challenges.len(), 1);
    assert!(missing.challenges[0].starts_with("DPoP algs=\""));
    let bearer = send(&only, Some(format!("Bearer {plain}")), &[]).await;
    assert_eq!(
        (bearer.status, bearer.kind),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::DpopRequired))
    );
    let token = bound_token(&key);
    let ok = send(
        &only,
        Some(format!("DPoP {token}")),
        &[proof(&key, &Method::GET, URL, &token)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Without DPoP configured, the scheme is not served at all.
    let plain_route = RequireScope::all(&v, ["read"]).expect("scope");
    let not_served = send(&plain_route, Some(format!("DPoP {token}")), &[]).await;
    assert_eq!(not_served.kind, Some(ErrorKind::MissingToken));
}

#[tokio::test]
async fn nonces_are_handed_out_and_then_required() {
    let key = DpopKey::generate().expect("key");
    let dpop = dpop_with_nonces(Duration::from_secs(60));
    let route = layer(&Guard::new(&validator()).dpop(dpop));
    let token = bound_token(&key);
    let auth = Some(format!("DPoP {token}"));
    let first = send(
        &route,
        auth.clone(),
        &[proof(&key, &Method::GET, URL, &token)],
    )
    .await;
    assert_eq!(
        (first.status, first.kind),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::UseDpopNonce))
    );
    assert!(
        first.challenges[0].starts_with(r#"DPoP error="use_dpop_nonce""#),
        "{first:?}"
    );
    let nonce = first.nonce.expect("a DPoP-Nonce to retry with");
    let with_nonce = proof_with_nonce(&key, &token, &nonce);
    assert_eq!(
        send(&route, auth, &[with_nonce]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_nonce_past_half_its_life_is_renewed_with_the_response() {
    let key = DpopKey::generate().expect("key");
    let dpop = dpop_with_nonces(Duration::from_secs(4));
    // Two routes: one decides at once, one waits for the revocation store (its memo is cold
    // for a new `jti`): both ways out of the decision carry the nonce.
    let at_once = layer(&Guard::new(&validator()).dpop(dpop.clone()));
    let store = std::sync::Arc::new(bearer_guard::revocation::MemoryRevocations::new());
    let waiting =
        layer(&Guard::new(&mint::builder().revocation(store).build().expect("v")).dpop(dpop));
    let token = bound_token(&key);
    let auth = Some(format!("DPoP {token}"));
    let with = |nonce: &str, token: &str| proof_with_nonce(&key, token, nonce);

    let first = send(
        &at_once,
        auth.clone(),
        &[proof(&key, &Method::GET, URL, &token)],
    )
    .await;
    let nonce = first.nonce.expect("a DPoP-Nonce to retry with");
    // A fresh nonce: the answer carries none.
    let fresh = send(&at_once, auth.clone(), &[with(&nonce, &token)]).await;
    assert_eq!((fresh.status, fresh.nonce), (StatusCode::OK, None));

    // Past half its life (nonces count whole seconds: 2 s of 4), still valid: the answer
    // brings the next one.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let renewed = send(&at_once, auth.clone(), &[with(&nonce, &token)]).await;
    assert_eq!(renewed.status, StatusCode::OK, "{renewed:?}");
    let next = renewed.nonce.expect("the next nonce");
    assert_ne!(next, nonce);
    let other = mint::token(
        "ec-1",
        json!({ "cnf": { "jkt": key.thumbprint() }, "jti": "w-1" }),
    );
    let waited = send(
        &waiting,
        Some(format!("DPoP {other}")),
        &[with(&nonce, &other)],
    )
    .await;
    assert_eq!(waited.status, StatusCode::OK, "{waited:?}");
    assert!(waited.nonce.is_some(), "{waited:?}");

    // The next nonce works, and is fresh.
    let later = send(&at_once, auth, &[with(&next, &token)]).await;
    assert_eq!((later.status, later.nonce), (StatusCode::OK, None));
}
