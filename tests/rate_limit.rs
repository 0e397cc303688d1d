//! Per-client rate limits behind `RequireScope` in an axum app over a real TCP socket, under
//! concurrent load from a real hyper client.
#![cfg(all(feature = "axum", feature = "rate-limit"))]

use bearer_guard::testkit as mint;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use bearer_guard::rate_limit::{Quota, RateLimitByClient};
use bearer_guard::{AccessClaims, Claims, RequireScope, Validator};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mint::token;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceBuilder;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

fn n(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// A burst of `burst`, then one request per hour: nothing refills during a test.
fn hourly(burst: u32) -> Quota {
    Quota::per_hour(n(1)).allow_burst(n(burst))
}

async fn whoami(claims: Option<Claims<AccessClaims>>) -> String {
    match claims {
        Some(c) => c.client_id().unwrap_or_default().to_owned(),
        None => "anonymous".to_owned(),
    }
}

/// `/data` needs a token; `/public` takes one optionally. Authentication comes first, then
/// the rate limit.
fn app(limit: RateLimitByClient) -> Router {
    let v = validator();
    Router::new()
        .route(
            "/data",
            get(whoami).layer(
                ServiceBuilder::new()
                    .layer(RequireScope::all(&v, ["read"]).expect("scopes"))
                    .layer(limit.clone()),
            ),
        )
        .route(
            "/public",
            get(whoami).layer(
                ServiceBuilder::new()
                    .layer(RequireScope::authenticated(&v).optional())
                    .layer(limit),
            ),
        )
}

async fn spawn_server(limit: RateLimitByClient) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app(limit)).await.expect("serve");
    });
    addr
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    grpc_status: Option<String>,
    body: String,
}

async fn get_(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    grpc: bool,
) -> Reply {
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    // gRPC is HTTP/2: a gRPC request goes over a prior-knowledge HTTP/2 connection.
    let h2;
    let client = if grpc {
        h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        &h2
    } else {
        client
    };
    let res = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let retry_after = header("retry-after").map(|s| s.parse().expect("whole seconds"));
    let grpc_status = header("grpc-status");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        retry_after,
        grpc_status,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

fn client_token(id: &str) -> String {
    token(
        "ec-1",
        json!({ "client_id": id, "sub": id, "scope": "read" }),
    )
}

/// Fires `count` concurrent requests for each `(client id, token)`.
async fn flood(
    http: &HttpClient,
    addr: SocketAddr,
    tokens: &[(&'static str, String)],
    count: usize,
) -> Vec<(&'static str, Reply)> {
    let mut set = JoinSet::new();
    for _ in 0..count {
        for (id, token) in tokens {
            let (http, token, id) = (http.clone(), token.clone(), *id);
            set.spawn(async move { (id, get_(&http, addr, "/data", Some(&token), false).await) });
        }
    }
    set.join_all().await
}

/// For each client: (number of 200s, number of 429s); asserts every reply is one of the two,
/// that each 200 is the client's own, and that each 429 has `Retry-After` >= 1.
fn tally(replies: &[(&'static str, Reply)], id: &str) -> (usize, usize) {
    let mut counts = (0, 0);
    for (_, reply) in replies.iter().filter(|(who, _)| *who == id) {
        match reply.status {
            StatusCode::OK => {
                assert_eq!(reply.body, id, "{reply:?}");
                counts.0 += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(reply.retry_after.is_some_and(|s| s >= 1), "{reply:?}");
                assert_eq!(reply.body, "", "{reply:?}");
                counts.1 += 1;
            }
            other => panic!("unexpected {other} for {id}: {reply:?}"),
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_exactly_its_burst_under_concurrent_load() {
    let limit = RateLimitByClient::builder(hourly(3))
        .client("billing", hourly(5))
        .client("reports", hourly(12))
        .build();
    let addr = spawn_server(limit.clone()).await;
    let http = client();
    let tokens = [
        ("billing", client_token("billing")),
        ("reports", client_token("reports")),
        ("other", client_token("other")),
    ];
    let replies = flood(&http, addr, &tokens, 50).await;
    assert_eq!(replies.len(), 150);
    assert_eq!(tally(&replies, "billing"), (5, 45));
    assert_eq!(tally(&replies, "reports"), (12, 38));
    assert_eq!(tally(&replies, "other"), (3, 47), "the default quota");
    // Named clients have fixed buckets; only "other" lives in the keyed store.
    assert_eq!(limit.tracked_clients(), 1);
    // A one-per-hour refill: the wait is close to an hour.
    let (_, limited) = replies
        .iter()
        .find(|(id, r)| *id == "billing" && r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429");
    assert!(
        (3500..=3600).contains(&limited.retry_after.expect("retry-after")),
        "{limited:?}"
    );
}

#[tokio::test]
async fn one_client_exhausting_its_quota_does_not_affect_another() {
    let limit = RateLimitByClient::builder(hourly(2))
        .client("billing", hourly(2))
        .build();
    let addr = spawn_server(limit).await;
    let http = client();
    let billing = client_token("billing");
    for _ in 0..2 {
        let reply = get_(&http, addr, "/data", Some(&billing), false).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    for _ in 0..5 {
        let reply = get_(&http, addr, "/data", Some(&billing), false).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    }
    // Another client, and another token of a third client: full quota each.
    for id in ["reports", "audit"] {
        let t = client_token(id);
        for _ in 0..2 {
            let reply = get_(&http, addr, "/data", Some(&t), false).await;
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, id));
        }
    }
    // A fresh token of the exhausted client shares its bucket: the limit is per client.
    let again = client_token("billing");
    let reply = get_(&http, addr, "/data", Some(&again), false).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
}

#[tokio::test]
async fn requests_pass_again_after_waiting() {
    let quota = Quota::with_period(Duration::from_millis(400))
        .expect("non-zero")
        .allow_burst(n(2));
    let addr = spawn_server(RateLimitByClient::new(quota)).await;
    let http = client();
    let t = client_token("billing");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get_(&http, addr, "/data", Some(&t), false).await);
    }
    assert_eq!(
        statuses
            .iter()
            .map(|r| r.status.as_u16())
            .collect::<Vec<_>>(),
        [200, 200, 429]
    );
    assert_eq!(statuses[2].retry_after, Some(1), "400 ms rounds up to 1 s");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let reply = get_(&http, addr, "/data", Some(&t), false).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test]
async fn anonymous_requests_share_one_bucket_apart_from_clients() {
    let limit = RateLimitByClient::builder(hourly(3))
        .anonymous(hourly(2))
        .build();
    let addr = spawn_server(limit).await;
    let http = client();
    for expected in [200, 200, 429, 429] {
        let reply = get_(&http, addr, "/public", None, false).await;
        assert_eq!(reply.status.as_u16(), expected, "{reply:?}");
    }
    let t = client_token("billing");
    let reply = get_(&http, addr, "/public", Some(&t), false).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "billing")
    );

    let unlimited = RateLimitByClient::builder(hourly(1))
        .anonymous_unlimited()
        .build();
    let addr = spawn_server(unlimited).await;
    for _ in 0..10 {
        let reply = get_(&http, addr, "/public", None, false).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "anonymous")
        );
    }
}

#[tokio::test]
async fn grpc_requests_over_quota_get_resource_exhausted() {
    let addr = spawn_server(RateLimitByClient::new(hourly(1))).await;
    let http = client();
    let t = client_token("billing");
    let reply = get_(&http, addr, "/data", Some(&t), true).await;
    assert_eq!((reply.status, reply.grpc_status), (StatusCode::OK, None));
    let reply = get_(&http, addr, "/data", Some(&t), true).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.grpc_status.as_deref(), Some("8"), "{reply:?}");
    assert!(reply.retry_after.is_some_and(|s| s >= 1), "{reply:?}");
    // The gRPC content type over HTTP/1.1 is not a gRPC request: a plain 429.
    let mut req = Request::get(format!("http://{addr}/data"))
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/grpc")
        .body(Empty::new())
        .expect("request");
    *req.version_mut() = http::Version::HTTP_11;
    let res = http.request(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn rejected_tokens_never_reach_the_rate_limit() {
    // Authentication runs first: requests refused there do not use up the client's quota.
    let addr = spawn_server(RateLimitByClient::new(hourly(1))).await;
    let http = client();
    let no_scope = token("ec-1", json!({ "client_id": "billing", "scope": "other" }));
    for _ in 0..3 {
        let reply = get_(&http, addr, "/data", Some(&no_scope), false).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    }
    let reply = get_(&http, addr, "/data", Some(&client_token("billing")), false).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

/// The layer's one record carries the typed claims: a key read from them (here, a tenant
/// claim of a custom claims type) sees them on an optional route, behind the real layer, and
/// an anonymous request there is still anonymous.
#[tokio::test]
async fn a_key_from_the_claims_sees_them_through_the_layer_on_an_optional_route() {
    #[derive(serde::Deserialize)]
    struct Tenanted {
        tenant: String,
    }
    let v = mint::builder()
        .claims::<Tenanted>()
        .build()
        .expect("validator");
    let limit = RateLimitByClient::builder(hourly(1))
        .key_from_claims(|c: &Tenanted| Some(c.tenant.as_str()))
        .anonymous(hourly(1))
        .build();
    let svc = ServiceBuilder::new()
        .layer(RequireScope::authenticated(&v).optional())
        .layer(limit)
        .service(tower::service_fn(|req: Request<()>| async move {
            let tenant = req
                .extensions()
                .get::<bearer_guard::VerifiedToken>()
                .and_then(|t| t.claims_ref::<Tenanted>().map(|c| c.tenant.clone()));
            Ok::<_, std::convert::Infallible>(http::Response::new(tenant.unwrap_or_default()))
        }));
    let send = |tenant: Option<&str>| {
        let mut req = Request::builder();
        if let Some(tenant) = tenant {
            let t = token("ec-1", json!({ "tenant": tenant }));
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let svc = svc.clone();
        async move {
            let res = tower::ServiceExt::oneshot(svc, req.body(()).expect("request"))
                .await
                .expect("infallible");
            (res.status().as_u16(), res.into_body())
        }
    };
    assert_eq!(send(Some("t1")).await, (200, "t1".to_owned()));
    assert_eq!(send(Some("t1")).await.0, 429, "the tenant's own bucket");
    assert_eq!(send(Some("t2")).await, (200, "t2".to_owned()));
    assert_eq!(send(None).await, (200, String::new()), "anonymous");
    assert_eq!(
        send(None).await.0,
        429,
        "the anonymous bucket, apart from tenants"
    );
}
