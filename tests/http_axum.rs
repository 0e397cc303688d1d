//! The layer in an axum app over a real TCP socket, driven by a real hyper client.
#![cfg(feature = "axum")]

use bearer_guard::testkit as mint;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::handler::Handler;
use axum::routing::get;
use base64::Engine as _;
use bearer_guard::{AccessClaims, Claims, RequireScope, Validator};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mint::{now, token};
use serde_json::json;
use tokio::net::TcpListener;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

async fn client_of(claims: Claims<AccessClaims>) -> String {
    claims.client_id().unwrap_or_default().to_owned()
}

async fn created(claims: Claims<AccessClaims>) -> (StatusCode, String) {
    (
        StatusCode::CREATED,
        format!("created by {}", client_of(claims).await),
    )
}

async fn me(claims: Option<Claims<AccessClaims>>) -> String {
    match claims {
        Some(c) => client_of(c).await,
        None => "anonymous".to_owned(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// The README's app: per-method scopes on `/transactions`, any-of on `/reports`, optional
/// authentication on `/me`, an open `/healthz`, and a route that forgot its layer.
fn app() -> Router {
    let v = validator();
    Router::new()
        .route(
            "/transactions",
            get(client_of.layer(RequireScope::all(&v, ["read:transactions"]).expect("scopes")))
                .post(
                    created.layer(RequireScope::all(&v, ["write:transactions"]).expect("scopes")),
                ),
        )
        .route(
            "/reports",
            get(client_of).layer(RequireScope::any(&v, ["reports:read", "admin"]).expect("scopes")),
        )
        .route(
            "/me",
            get(me).layer(RequireScope::authenticated(&v).optional()),
        )
        .route("/healthz", get(healthz))
        .route("/misconfigured", get(client_of))
}

/// Serves [`app`] on an ephemeral port of 127.0.0.1; the server lives as long as the test's
/// runtime.
async fn spawn_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app()).await.expect("serve") });
    addr
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        challenge,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

async fn get_(client: &HttpClient, addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    send(client, addr, Method::GET, path, auth).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn scoped(scope: &str) -> String {
    bearer(&token("ec-1", json!({ "scope": scope })))
}

#[track_caller]
fn assert_reply(reply: &Reply, status: StatusCode, challenge: Option<&str>, body: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.challenge.as_deref(), challenge, "{reply:?}");
    assert_eq!(reply.body, body, "{reply:?}");
}

#[tokio::test]
async fn valid_token_with_scope_reaches_the_handler_with_claims() {
    let (addr, c) = (spawn_server().await, client());
    let reply = get_(
        &c,
        addr,
        "/transactions",
        Some(&scoped("read:transactions")),
    )
    .await;
    assert_reply(&reply, StatusCode::OK, None, "client-a");
    let reply = send(
        &c,
        addr,
        Method::POST,
        "/transactions",
        Some(&scoped("read:transactions write:transactions")),
    )
    .await;
    assert_reply(&reply, StatusCode::CREATED, None, "created by client-a");
}

#[tokio::test]
async fn missing_token_gets_a_challenge_naming_the_routes_scope() {
    let (addr, c) = (spawn_server().await, client());
    for (method, scope) in [
        (Method::GET, "read:transactions"),
        (Method::POST, "write:transactions"),
    ] {
        let reply = send(&c, addr, method, "/transactions", None).await;
        let challenge = format!(r#"Bearer scope="{scope}""#);
        assert_reply(&reply, StatusCode::UNAUTHORIZED, Some(&challenge), "");
    }
    // Another scheme is no credentials: the same challenge.
    let reply = get_(&c, addr, "/reports", Some("Basic dXNlcjpwYXNz")).await;
    let challenge = r#"Bearer scope="reports:read admin""#;
    assert_reply(&reply, StatusCode::UNAUTHORIZED, Some(challenge), "");
}

#[tokio::test]
async fn invalid_tokens_get_invalid_token() {
    let (addr, c) = (spawn_server().await, client());
    let good = token("ec-1", json!({ "scope": "read:transactions" }));
    let (head, rest) = good.split_once('.').expect("jws");
    let (_, sig) = rest.split_once('.').expect("jws");
    let forged = mint::claims(json!({ "scope": "read:transactions", "client_id": "mallory" }));
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let cases = [
        (
            "expired",
            token(
                "ec-1",
                json!({ "scope": "read:transactions", "exp": now() - 3600 }),
            ),
        ),
        (
            "wrong audience",
            token(
                "ec-1",
                json!({ "scope": "read:transactions", "aud": "https://other.test" }),
            ),
        ),
        ("tampered payload", format!("{head}.{forged}.{sig}")),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, t) in cases {
        let reply = get_(&c, addr, "/transactions", Some(&bearer(&t))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            reply.challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#),
            "{what}"
        );
        assert_eq!(reply.body, "", "{what}");
    }
}

#[tokio::test]
async fn malformed_header_gets_invalid_request() {
    let (addr, c) = (spawn_server().await, client());
    let reply = get_(&c, addr, "/transactions", Some("Bearer a b")).await;
    assert_reply(
        &reply,
        StatusCode::BAD_REQUEST,
        Some(r#"Bearer error="invalid_request""#),
        "",
    );
}

#[tokio::test]
async fn read_only_token_is_forbidden_to_post() {
    let (addr, c) = (spawn_server().await, client());
    let read_only = scoped("read:transactions");
    let reply = send(&c, addr, Method::POST, "/transactions", Some(&read_only)).await;
    assert_reply(
        &reply,
        StatusCode::FORBIDDEN,
        Some(r#"Bearer error="insufficient_scope", scope="write:transactions""#),
        "",
    );
    // The same token still reads.
    let reply = get_(&c, addr, "/transactions", Some(&read_only)).await;
    assert_reply(&reply, StatusCode::OK, None, "client-a");
    // And a write-only token cannot read.
    let reply = get_(
        &c,
        addr,
        "/transactions",
        Some(&scoped("write:transactions")),
    )
    .await;
    assert_reply(
        &reply,
        StatusCode::FORBIDDEN,
        Some(r#"Bearer error="insufficient_scope", scope="read:transactions""#),
        "",
    );
}

#[tokio::test]
async fn any_of_route_admits_either_scope() {
    let (addr, c) = (spawn_server().await, client());
    for scope in ["reports:read", "admin", "other admin"] {
        let reply = get_(&c, addr, "/reports", Some(&scoped(scope))).await;
        assert_reply(&reply, StatusCode::OK, None, "client-a");
    }
    let t = bearer(&token(
        "ed-1",
        json!({ "scope": null, "scp": ["reports:read"] }),
    ));
    let reply = get_(&c, addr, "/reports", Some(&t)).await;
    assert_reply(&reply, StatusCode::OK, None, "client-a");
    let reply = get_(&c, addr, "/reports", Some(&scoped("read:transactions"))).await;
    assert_reply(
        &reply,
        StatusCode::FORBIDDEN,
        Some(r#"Bearer error="insufficient_scope", scope="reports:read admin""#),
        "",
    );
}

#[tokio::test]
async fn optional_route_serves_anonymous_and_authenticated_but_refuses_bad_tokens() {
    let (addr, c) = (spawn_server().await, client());
    let reply = get_(&c, addr, "/me", None).await;
    assert_reply(&reply, StatusCode::OK, None, "anonymous");
    let t = bearer(&token("rsa-1", json!({ "client_id": "client-b" })));
    let reply = get_(&c, addr, "/me", Some(&t)).await;
    assert_reply(&reply, StatusCode::OK, None, "client-b");
    let expired = bearer(&token("ec-1", json!({ "exp": now() - 3600 })));
    let reply = get_(&c, addr, "/me", Some(&expired)).await;
    assert_reply(
        &reply,
        StatusCode::UNAUTHORIZED,
        Some(r#"Bearer error="invalid_token""#),
        "",
    );
    let reply = get_(&c, addr, "/me", Some("Bearer a b")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unprotected_route_ignores_tokens() {
    let (addr, c) = (spawn_server().await, client());
    for auth in [None, Some("Bearer not-a-jwt"), Some("Bearer a b")] {
        let reply = get_(&c, addr, "/healthz", auth).await;
        assert_reply(&reply, StatusCode::OK, None, "ok");
    }
}

#[tokio::test]
async fn claims_extractor_without_the_layer_is_a_500_not_a_way_in() {
    let (addr, c) = (spawn_server().await, client());
    for auth in [None, Some(scoped("read:transactions"))] {
        let reply = get_(&c, addr, "/misconfigured", auth.as_deref()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.challenge, None);
        assert!(reply.body.contains("RequireScope"), "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_see_their_own_claims() {
    const N: usize = 200;
    let (addr, c) = (spawn_server().await, client());
    let tokens: Vec<String> = (0..N)
        .map(|i| {
            bearer(&token(
                "ed-1",
                json!({ "scope": "read:transactions", "client_id": format!("client-{i}") }),
            ))
        })
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in tokens.into_iter().enumerate() {
        let c = c.clone();
        set.spawn(async move { (i, get_(&c, addr, "/transactions", Some(&t)).await) });
    }
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        let (i, reply) = joined.expect("task");
        assert_reply(&reply, StatusCode::OK, None, &format!("client-{i}"));
        done += 1;
    }
    assert_eq!(done, N);
}
