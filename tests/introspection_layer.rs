//! Opaque tokens through the decision path (RFC 7662), over real sockets: the companion
//! issuer (issuing opaque tokens and answering introspection) and a protected API built
//! with `RequireScope`. Scopes, `DPoP` binding and the extractors work on an introspected
//! token as on a JWT; a JWT of a trusted issuer is still verified locally (mixed mode); an
//! endpoint that cannot answer is 503 on every way into a decision, never 401.

#[path = "common/http_stub.rs"]
mod http_stub;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use issuer_server::{API, FORM, RS_SECRET, Reply, SVC_SECRET, Server, client_from, send_with};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bearer_guard::dpop::{Dpop, DpopKey};
use bearer_guard::{
    AccessClaims, Claims, ErrorKind, Guard, Issuer, RequireScope, RequiredScopes, Validator,
    introspection::Introspection,
};
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::TokenFormat;
use oauth::basic_header;

async fn opaque_issuer() -> Server {
    Server::start_with(|config| config.token_format = TokenFormat::Opaque).await
}

/// The issuer's introspection endpoint, as the resource server `rs`, sending through
/// `client` (counting what it sends).
fn introspection(server: &Server, client: &Counting) -> Introspection {
    Introspection::builder(format!("{}/oauth/introspect", server.base), "rs", RS_SECRET)
        .issuer(server.iss())
        .http_client(client.clone())
        .build()
        .expect("introspection")
}

/// A hyper client over real sockets that counts the introspection requests (POSTs) sent.
#[derive(Clone)]
struct Counting {
    http: Client<HttpConnector, Full<Bytes>>,
    posts: Arc<AtomicUsize>,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            http: Client::builder(TokioExecutor::new()).build_http(),
            posts: Arc::default(),
        }
    }

    fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

impl tower::Service<Request<Full<Bytes>>> for Counting {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        if request.method() == Method::POST {
            self.posts.fetch_add(1, Ordering::SeqCst);
        }
        self.http.request(request)
    }
}

/// The protected API on a loopback port: `/read` needs `read`, `/write` needs `write`;
/// both answer with the caller's client id and subject, read through the extractor.
async fn api(guard: &Guard) -> SocketAddr {
    async fn who(claims: Claims<AccessClaims>) -> String {
        format!(
            "{} {}",
            claims.client_id().unwrap_or("-"),
            claims.sub.as_deref().unwrap_or("-")
        )
    }
    let app = Router::new()
        .route(
            "/read",
            get(who).layer(RequireScope::all(guard, ["read"]).expect("scope")),
        )
        .route(
            "/write",
            get(who).layer(RequireScope::all(guard, ["write"]).expect("scope")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `GET http://addr{path}` with these headers.
async fn call(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send_with(
        &client_from(None),
        req.body(Full::default()).expect("request"),
    )
    .await
}

async fn bearer(addr: SocketAddr, path: &str, token: &str) -> Reply {
    call(addr, path, &[("authorization", &format!("Bearer {token}"))]).await
}

/// `GET path` with `token` as `DPoP` and a proof of `key` for this request.
async fn with_proof(addr: SocketAddr, path: &str, token: &str, key: &DpopKey) -> Reply {
    let url = format!("http://{addr}{path}");
    let proof = key
        .proof(&Method::GET, &url)
        .access_token(token)
        .sign()
        .expect("proof");
    let auth = format!("DPoP {token}");
    call(addr, path, &[("authorization", &auth), ("dpop", &proof)]).await
}

fn challenge(reply: &Reply) -> &str {
    reply.header(header::WWW_AUTHENTICATE).unwrap_or("")
}

#[tokio::test]
async fn an_opaque_token_gets_its_scopes_and_claims_through_the_layer() {
    let server = opaque_issuer().await;
    let counting = Counting::new();
    let validator = Validator::builder()
        .audience(API)
        .introspection(introspection(&server, &counting))
        .build()
        .expect("validator");
    assert_eq!(validator.issuer(), server.iss());
    validator.ready().await.expect("nothing to fetch");
    let addr = api(&Guard::new(&validator)).await;

    let read = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=read",
        )
        .await
        .assert_token();
    assert_eq!(read.split('.').count(), 1, "an opaque token");
    let reply = bearer(addr, "/read", &read).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "svc svc");
    // Out of scope: 403, naming the scope, as for a JWT.
    let reply = bearer(addr, "/write", &read).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        challenge(&reply).contains(r#"error="insufficient_scope", scope="write""#),
        "{}",
        challenge(&reply)
    );
    // Both answers came from one introspection: the answer is cached.
    assert_eq!(counting.posts(), 1);

    // A token the issuer never issued: inactive, 401 invalid_token.
    let reply = bearer(addr, "/read", "2YotnFZFEjr1zCsicMWpAA").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&reply).contains(r#"error="invalid_token""#));
    assert_eq!(
        validator
            .validate_async("2YotnFZFEjr1zCsicMWpAA")
            .await
            .map(drop)
            .map_err(|e| e.kind()),
        Err(ErrorKind::InactiveToken)
    );

    // The bare ways in decide the same.
    let claims = validator.validate_async(&read).await.expect("active");
    assert_eq!(claims.client_id(), Some("svc"));
    let write = RequiredScopes::all(["write"]).expect("scope");
    assert_eq!(
        validator
            .authorize_async(&read, &write)
            .await
            .map(drop)
            .map_err(|e| e.kind()),
        Err(ErrorKind::InsufficientScope)
    );
}

#[tokio::test]
async fn a_revoked_opaque_token_is_refused_once_its_answer_is_stale() {
    let server = opaque_issuer().await;
    let counting = Counting::new();
    let introspection =
        Introspection::builder(format!("{}/oauth/introspect", server.base), "rs", RS_SECRET)
            .issuer(server.iss())
            .http_client(counting.clone())
            .ttl(Duration::from_secs(1))
            .build()
            .expect("introspection");
    let validator = Validator::builder()
        .audience(API)
        .introspection(introspection)
        .build()
        .expect("validator");
    let addr = api(&Guard::new(&validator)).await;
    let token = server.token("svc", SVC_SECRET).await;
    assert_eq!(bearer(addr, "/read", &token).await.status, StatusCode::OK);
    let revoked = server
        .basic_to(
            "/oauth/revoke",
            "svc",
            SVC_SECRET,
            &format!("token={token}"),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    // At most the ttl later (plus the clock's second), the issuer's answer is asked again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = bearer(addr, "/read", &token).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            assert!(challenge(&reply).contains(r#"error="invalid_token""#));
            break;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(tokio::time::Instant::now() < deadline, "still accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counting.posts() >= 2);
}

#[tokio::test]
async fn mixed_mode_verifies_jwts_locally_and_introspects_opaque_tokens() {
    let jwt_issuer = Server::start().await;
    let opaque = opaque_issuer().await;
    let counting = Counting::new();
    // The JWT issuer by its keys, the opaque one by introspection (trusted without being
    // named again).
    let validator = Validator::builder()
        .audience(API)
        .trust(Issuer::discover(jwt_issuer.base.clone()))
        .introspection(introspection(&opaque, &counting))
        .build()
        .expect("validator");
    validator.ready().await.expect("keys");
    let addr = api(&Guard::new(&validator)).await;

    let jwt = jwt_issuer.token("svc", SVC_SECRET).await;
    assert_eq!(jwt.split('.').count(), 3);
    for _ in 0..3 {
        assert_eq!(bearer(addr, "/read", &jwt).await.status, StatusCode::OK);
    }
    assert_eq!(
        counting.posts(),
        0,
        "a JWT of a trusted issuer is never introspected"
    );

    let token = opaque.token("svc", SVC_SECRET).await;
    let reply = bearer(addr, "/read", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(counting.posts(), 1);

    // A JWT forged by an issuer nobody trusts goes to the opaque issuer's endpoint, which
    // does not know it: inactive.
    let stranger = Server::start().await;
    let forged = stranger.token("svc", SVC_SECRET).await;
    let reply = bearer(addr, "/read", &forged).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(counting.posts(), 2);
}

#[tokio::test]
async fn an_endpoint_that_cannot_answer_is_503_on_every_way_in() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!(
        "http://{}/oauth/introspect",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let validator = Validator::builder()
        .audience(API)
        .introspection(
            Introspection::builder(endpoint, "rs", RS_SECRET)
                .issuer("https://issuer.test")
                .timeouts(Duration::from_millis(500), Duration::from_secs(1))
                .build()
                .expect("introspection"),
        )
        .build()
        .expect("validator");
    let addr = api(&Guard::new(&validator)).await;
    let reply = bearer(addr, "/read", "an-opaque-token").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.header(header::RETRY_AFTER).is_some());
    assert!(reply.header(header::WWW_AUTHENTICATE).is_none());
    let kind = |r: Result<Claims<AccessClaims>, bearer_guard::AuthError>| {
        r.map(drop).map_err(|e| e.kind())
    };
    assert_eq!(
        kind(validator.validate_async("an-opaque-token").await),
        Err(ErrorKind::IntrospectionUnavailable)
    );
    assert_eq!(
        kind(validator.validate("an-opaque-token")),
        Err(ErrorKind::IntrospectionUnavailable)
    );
    // gRPC: UNAVAILABLE.
    let svc = RequireScope::all(&validator, ["read"]).expect("scope");
    let grpc = tower::ServiceBuilder::new().layer(svc).service_fn(
        |_req: Request<axum::body::Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
        },
    );
    let req = Request::post("/pkg.Svc/Method")
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::AUTHORIZATION, "Bearer an-opaque-token")
        .body(axum::body::Body::empty())
        .expect("request");
    let res = tower::ServiceExt::oneshot(grpc, req)
        .await
        .expect("infallible");
    assert_eq!(res.headers()["grpc-status"], "14");
}

/// The synchronous `validate` never waits: it starts the introspection and answers
/// "unavailable"; a later call finds the answer cached.
#[tokio::test]
async fn sync_validate_starts_the_introspection_and_a_later_call_uses_its_answer() {
    let server = opaque_issuer().await;
    let counting = Counting::new();
    let validator = Validator::builder()
        .audience(API)
        .introspection(introspection(&server, &counting))
        .build()
        .expect("validator");
    let token = server.token("svc", SVC_SECRET).await;
    assert_eq!(
        validator.validate(&token).map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::IntrospectionUnavailable)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let claims = loop {
        match validator.validate(&token) {
            Ok(claims) => break claims,
            Err(e) => assert_eq!(e.kind(), ErrorKind::IntrospectionUnavailable),
        }
        assert!(tokio::time::Instant::now() < deadline, "never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(claims.client_id(), Some("svc"));
    assert_eq!(counting.posts(), 1);
}

/// A DPoP-bound opaque token (`cnf.jkt` in the introspection answer) needs its proof: as
/// `Bearer` it is refused, with its proof it passes.
#[tokio::test]
async fn a_dpop_bound_opaque_token_needs_its_proof() {
    let server = opaque_issuer().await;
    let counting = Counting::new();
    let validator = Validator::builder()
        .audience(API)
        .introspection(introspection(&server, &counting))
        .build()
        .expect("validator");
    let dpop = Dpop::builder()
        .origin_from_host("http")
        .build()
        .expect("dpop");
    let guard = Guard::new(&validator).dpop(dpop);
    let addr = api(&guard).await;

    let key = DpopKey::generate().expect("key");
    let token_url = format!("{}/oauth/token", server.base);
    let proof = key.proof(&Method::POST, &token_url).sign().expect("proof");
    let auth = basic_header("svc", SVC_SECRET);
    let reply = server
        .post(
            FORM,
            "grant_type=client_credentials".to_owned(),
            &[("authorization", auth.as_str()), ("dpop", proof.as_str())],
        )
        .await;
    let body = reply.json();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();

    // Stolen and sent as a bearer token: refused.
    let reply = bearer(addr, "/read", &token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // With a proof of the key for this request: admitted.
    let reply = with_proof(addr, "/read", &token, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Another key's proof: refused.
    let thief = DpopKey::generate().expect("key");
    let reply = with_proof(addr, "/read", &token, &thief).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// The issuer a stand-in endpoint answers for.
const STUB_ISS: &str = "https://issuer.test";

/// A stand-in introspection endpoint on a loopback port that gives every token this
/// `answer`, and the protected API of a validator introspecting there (answers cached for
/// `ttl`).
async fn api_answering(answer: &serde_json::Value, ttl: Duration) -> (http_stub::Stub, SocketAddr) {
    let stub = http_stub::Stub::start(http_stub::Reply::json(200, &answer.to_string())).await;
    let introspection = Introspection::builder(stub.url("/oauth/introspect"), "rs", RS_SECRET)
        .issuer(STUB_ISS)
        .ttl(ttl)
        .build()
        .expect("introspection");
    let validator = Validator::builder()
        .audience(API)
        .introspection(introspection)
        .build()
        .expect("validator");
    let addr = api(&Guard::new(&validator)).await;
    (stub, addr)
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.expect("after 1970").as_secs()).expect("seconds")
}

/// An answer with every member RFC 7662 §2.2 lists, all of them agreeing with us.
fn full_answer() -> serde_json::Value {
    let now = unix_now();
    serde_json::json!({
        "active": true, "iss": STUB_ISS, "aud": API, "exp": now + 600, "iat": now - 10,
        "nbf": now - 10, "sub": "alice", "client_id": "svc", "jti": "j-1", "scope": "read",
        "token_type": "Bearer", "username": "alice",
    })
}

fn without(member: &str) -> serde_json::Value {
    let mut answer = full_answer();
    answer.as_object_mut().expect("object").remove(member);
    answer
}

/// RFC 7662 §2.2: every member but `active` is optional. An answer without one is admitted
/// (the default claims type reads it), unless the route needs what is missing: without
/// `scope`, a route requiring one is 403 `insufficient_scope`, not 401.
#[tokio::test]
async fn answers_without_optional_members_are_admitted() {
    let mut failed = Vec::new();
    for member in [
        "exp",
        "aud",
        "iat",
        "nbf",
        "sub",
        "client_id",
        "jti",
        "iss",
        "scope",
        "token_type",
    ] {
        let (stub, addr) = api_answering(&without(member), Duration::from_secs(60)).await;
        let reply = bearer(addr, "/read", "an-opaque-token").await;
        let expected = match member {
            "sub" => "svc -",
            "client_id" => "- alice",
            _ => "svc alice",
        };
        let ok = if member == "scope" {
            reply.status == StatusCode::FORBIDDEN
                && challenge(&reply).contains(r#"error="insufficient_scope", scope="read""#)
        } else {
            reply.status == StatusCode::OK && reply.text() == expected
        };
        if !ok {
            failed.push(format!(
                "without `{member}`: {} {} {}",
                reply.status,
                challenge(&reply),
                reply.text()
            ));
        }
        assert_eq!(stub.heads().len(), 1, "without `{member}`");
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// What an answer does say is still checked: a member that contradicts us, or has the wrong
/// JSON type, is 401 `invalid_token`.
#[tokio::test]
async fn answers_that_contradict_us_are_refused() {
    let now = unix_now();
    let mut admitted = Vec::new();
    for (name, changes) in [
        (
            "aud of another API",
            serde_json::json!({"aud": "https://other.test"}),
        ),
        (
            "aud list without us",
            serde_json::json!({"aud": ["https://other.test"]}),
        ),
        ("aud a number", serde_json::json!({"aud": 7})),
        ("aud null", serde_json::json!({"aud": null})),
        (
            "iss untrusted",
            serde_json::json!({"iss": "https://evil.test"}),
        ),
        ("iss a number", serde_json::json!({"iss": 7})),
        ("exp past", serde_json::json!({"exp": now - 3600})),
        ("exp a string", serde_json::json!({"exp": "soon"})),
        ("exp null", serde_json::json!({"exp": null})),
        ("nbf future", serde_json::json!({"nbf": now + 3600})),
        ("iat future", serde_json::json!({"iat": now + 3600})),
        ("iat a string", serde_json::json!({"iat": "then"})),
        ("sub a number", serde_json::json!({"sub": 7})),
        ("client_id a bool", serde_json::json!({"client_id": true})),
        ("jti a number", serde_json::json!({"jti": 7})),
        ("scope a list", serde_json::json!({"scope": ["read"]})),
    ] {
        let mut answer = full_answer();
        // Without `exp` unless the case sets it, so that only this member can refuse.
        answer.as_object_mut().expect("object").remove("exp");
        for (member, value) in changes.as_object().expect("object") {
            answer[member] = value.clone();
        }
        let (_stub, addr) = api_answering(&answer, Duration::from_secs(60)).await;
        let reply = bearer(addr, "/read", "an-opaque-token").await;
        if reply.status != StatusCode::UNAUTHORIZED
            || !challenge(&reply).contains(r#"error="invalid_token""#)
        {
            admitted.push(format!("{name}: {} {}", reply.status, challenge(&reply)));
        }
    }
    assert!(admitted.is_empty(), "{admitted:#?}");
}

/// An answer without `exp` is cached for the introspection's ttl: no request to the
/// endpoint within it, one after.
#[tokio::test]
async fn an_answer_without_exp_is_cached_for_the_ttl() {
    let ttl = Duration::from_secs(1);
    let (stub, addr) = api_answering(&without("exp"), ttl).await;
    let started = tokio::time::Instant::now();
    let reply = bearer(addr, "/read", "an-opaque-token").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", challenge(&reply));
    let reply = bearer(addr, "/read", "an-opaque-token").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", challenge(&reply));
    if started.elapsed() < ttl {
        assert_eq!(stub.heads().len(), 1, "the answer is cached");
    }
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let reply = bearer(addr, "/read", "an-opaque-token").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", challenge(&reply));
    assert_eq!(stub.heads().len(), 2, "asked again once the ttl passed");
}
