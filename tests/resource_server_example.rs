//! `examples/resource_server.rs` as a real process, against two companion issuers started
//! here: both issuers' tokens pass, every 401 points at the RFC 9728 document, the document
//! lists the issuers, and `GET /metrics` counts a refusal under its reason; with the
//! `INTROSPECTION_*` settings, opaque tokens are introspected beside local JWTs.

#[path = "common/example.rs"]
mod example;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use issuer::TokenFormat;
use issuer_server::{API, RS_SECRET, SVC_SECRET, Server};
use serde_json::{Value, json};

/// The example's process; killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the example for `issuers` (comma-separated), with `API` as its audience and
/// `env` besides.
fn start(issuers: &str, env: &[(&str, &str)]) -> Example {
    let mut child = Command::new(example::build_example("resource_server"))
        .envs(env.iter().copied())
        .env("ISSUER", issuers)
        .env("AUDIENCE", API)
        .env("BIND", "127.0.0.1:0")
        .env("REQUIRED_SCOPE", "read")
        .env_remove("REDIS_URL")
        .env_remove("RATE_LIMIT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("address");
    Example { child, addr }
}

/// `GET path`: status, the `WWW-Authenticate` values, the body.
async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = http
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let challenges = res
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        challenges,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_metadata_and_metrics() {
    let (a, b) = (Server::start().await, Server::start().await);
    let example = tokio::task::spawn_blocking({
        let issuers = format!("{},{}", a.base, b.base);
        move || start(&issuers, &[])
    })
    .await
    .expect("started");
    let addr = example.addr;

    // No token: 401, pointing at the metadata (RFC 9728 §5.1); DPoP offered beside Bearer.
    let (status, challenges, _) = get(addr, "/protected-resource", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let metadata_url = format!("{API}/.well-known/oauth-protected-resource");
    assert_eq!(
        challenges[0],
        format!(r#"Bearer resource_metadata="{metadata_url}", scope="read""#)
    );
    assert!(challenges[1].starts_with(&format!(
        r#"DPoP resource_metadata="{metadata_url}", algs=""#
    )));

    // The document: this API, both issuers, the route's scope, DPoP algorithms.
    let (status, _, body) = get(addr, "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["resource"], API);
    assert_eq!(doc["authorization_servers"], json!([a.base, b.base]));
    assert_eq!(doc["scopes_supported"], json!(["read"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert!(
        doc["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    // Tokens of both issuers pass.
    for server in [&a, &b] {
        let token = server.token("svc", SVC_SECRET).await;
        let (status, _, body) = get(addr, "/protected-resource", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The refusal above is counted under its reason, the two admissions too.
    let (status, _, metrics) = get(addr, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics
            .contains(r#"bearer_guard_requests_total{outcome="refused",reason="missing_token"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"bearer_guard_requests_total{outcome="admitted"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("bearer_guard_key_fetches_total"),
        "{metrics}"
    );
    for secret in [SVC_SECRET, "eyJ"] {
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_in_mixed_mode() {
    let opaque = Server::start_with(|config| config.token_format = TokenFormat::Opaque).await;
    let jwt = Server::start().await;
    let example = tokio::task::spawn_blocking({
        let issuers = format!("{},{}", opaque.base, jwt.base);
        move || {
            start(
                &issuers,
                &[
                    ("INTROSPECTION_CLIENT_ID", "rs"),
                    ("INTROSPECTION_CLIENT_SECRET", RS_SECRET),
                    ("INTROSPECTION_CACHE_TTL", "30"),
                ],
            )
        }
    })
    .await
    .expect("started");
    let addr = example.addr;

    // An opaque token of the first issuer (found by discovery) passes, twice, with one
    // introspection; a JWT of the second is verified here; a made-up token is inactive.
    let token = opaque.token("svc", SVC_SECRET).await;
    assert_eq!(token.split('.').count(), 1, "opaque");
    for _ in 0..2 {
        let (status, _, body) = get(addr, "/protected-resource", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["client"], "svc");
    }
    let local = jwt.token("svc", SVC_SECRET).await;
    let (status, _, _) = get(addr, "/protected-resource", Some(&local)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, challenges, _) = get(
        addr,
        "/protected-resource",
        Some("not-a-token-anyone-issued"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenges[0].contains(r#"error="invalid_token""#),
        "{challenges:?}"
    );

    let (_, _, metrics) = get(addr, "/metrics", None).await;
    for line in [
        r#"bearer_guard_introspection_requests_total{result="active"} 1"#,
        r#"bearer_guard_introspection_requests_total{result="inactive"} 1"#,
        r#"bearer_guard_requests_total{outcome="refused",reason="inactive"} 1"#,
        r#"bearer_guard_requests_total{outcome="admitted"} 3"#,
    ] {
        assert!(metrics.contains(line), "no {line}:\n{metrics}");
    }
    assert!(!metrics.contains(&token));
}
