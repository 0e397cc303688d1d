//! Several issuers on one API, and RFC 9728 protected-resource metadata, over real sockets:
//! the companion issuer twice (two ports, two keys) trusted by one validator, a protected
//! route, and the metadata document beside it.
#![cfg(feature = "remote")]

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use bearer_guard::{
    AccessClaims, AuthError, Claims, ErrorKind, Guard, Issuer, RemoteKeys, RequireScope, Validator,
    metadata::ProtectedResource,
};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use issuer_server::{API, SVC_SECRET, Server};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The protected API: `GET /data` (scope `read`) and its RFC 9728 document.
fn api(validator: &Validator, resource: &ProtectedResource) -> Router {
    let guard = Guard::new(validator)
        .protected_resource(resource)
        .expect("metadata URL");
    Router::new()
        .route(
            "/data",
            get(|claims: Claims<AccessClaims>| async move { claims.iss.clone() })
                .layer(RequireScope::all(&guard, ["read"]).expect("scope")),
        )
        .route_service(resource.well_known_path(), resource.service())
}

async fn send(
    app: &Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<ErrorKind>, Vec<String>, String) {
    let mut req = Request::get(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let kind = res.extensions().get::<AuthError>().map(AuthError::kind);
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
        kind,
        challenges,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Counts what the validator fetches from the issuers.
#[derive(Clone)]
struct Counting {
    inner: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn new() -> Self {
        Counting {
            inner: Client::builder(TokioExecutor::new()).build_http(),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
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
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.request(request)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Good RFC 9068 claims from `iss` for the API.
fn claims_from(iss: &str) -> Value {
    json!({
        "iss": iss, "sub": "svc", "client_id": "svc", "aud": API, "scope": "read",
        "iat": now(), "exp": now() + 300, "jti": format!("j-{}", now()),
    })
}

#[tokio::test]
async fn tokens_of_every_trusted_issuer_pass_and_only_with_their_own_keys() {
    let (a, b) = (Server::start().await, Server::start().await);
    let fetches = Counting::new();
    let remote = |base: &str| RemoteKeys::discover(base).http_client(fetches.clone());
    let validator = Validator::builder()
        .audience(API)
        .trust(Issuer::new(&a.base).keys(remote(&a.base)))
        .trust(Issuer::new(&b.base).keys(remote(&b.base)))
        .build()
        .expect("validator");
    validator.ready().await.expect("both issuers' keys");
    let resource = ProtectedResource::builder(API)
        .authorization_server(&a.base)
        .authorization_server(&b.base)
        .build()
        .expect("metadata");
    let app = api(&validator, &resource);

    // Tokens from both issuers, on one route.
    for server in [&a, &b] {
        let token = server.token("svc", SVC_SECRET).await;
        let (status, _, _, body) = send(&app, "/data", Some(&token)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, server.base.as_str())
        );
    }

    assert_eq!(
        fetches.calls(),
        4,
        "a discovery document and a key set per issuer"
    );

    // Signed by A's key but claiming to come from B: refused, though A is trusted (B's set
    // does not have that key: one refetch of B's keys, then the cooldown).
    let mixed = a
        .issuer
        .signing_key()
        .sign(&claims_from(&b.base))
        .expect("sign");
    let (status, kind, _, _) = send(&app, "/data", Some(&mixed)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        matches!(
            kind,
            Some(ErrorKind::UnknownKey | ErrorKind::InvalidSignature)
        ),
        "{kind:?}"
    );

    // A third issuer's token: refused at once, and nothing is fetched for it.
    let c = Server::start().await;
    let stranger = c.token("svc", SVC_SECRET).await;
    assert_eq!(
        fetches.calls(),
        5,
        "B's keys, fetched again for the unknown key"
    );
    let before = fetches.calls();
    let (status, kind, challenges, _) = send(&app, "/data", Some(&stranger)).await;
    assert_eq!(
        (status, kind),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::InvalidIssuer))
    );
    assert_eq!(fetches.calls(), before, "no fetch for an unknown issuer");
    // Every challenge points at the metadata (RFC 9728 §5.1).
    assert_eq!(
        challenges,
        [format!(
            r#"Bearer resource_metadata="{}", error="invalid_token""#,
            resource.metadata_url()
        )]
    );
}

#[tokio::test]
async fn one_issuer_down_does_not_stop_the_other() {
    let a = Server::start().await;
    // B's address, with nothing listening there.
    let (listener, b_addr) = issuer_server::bind().await;
    drop(listener);
    let b_base = format!("http://{b_addr}");
    let validator = Validator::builder()
        .audience(API)
        .trust(Issuer::discover(&a.base))
        .trust(Issuer::discover(&b_base))
        .build()
        .expect("validator");
    // Starting: B's failure is reported, naming it; A's keys are in place all the same.
    let err = validator.ready().await.expect_err("B is down");
    assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
    let resource = ProtectedResource::builder(API)
        .authorization_server(&a.base)
        .build()
        .expect("metadata");
    let app = api(&validator, &resource);
    let token = a.token("svc", SVC_SECRET).await;
    assert_eq!(send(&app, "/data", Some(&token)).await.0, StatusCode::OK);
    // B's tokens: 503 while its keys cannot be had (signed by a key of its own).
    let b_key = issuer::SigningKey::generate(None).expect("key");
    let b_token = b_key.sign(&claims_from(&b_base)).expect("sign");
    let (status, kind, _, _) = send(&app, "/data", Some(&b_token)).await;
    assert_eq!(
        (status, kind),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorKind::KeysUnavailable)
        )
    );
    // ... and A's keep working.
    assert_eq!(send(&app, "/data", Some(&token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_metadata_document_follows_rfc_9728_field_by_field() {
    let a = Server::start().await;
    let validator = Validator::builder()
        .audience(API)
        .trust(Issuer::discover(&a.base))
        .build()
        .expect("validator");
    let resource = ProtectedResource::builder(format!("{API}/mcp"))
        .authorization_server(&a.base)
        .resource_name("Test API")
        .resource_documentation("https://docs.test/api")
        .build()
        .expect("metadata");
    let guard = Guard::new(&validator)
        .protected_resource(&resource)
        .expect("guard");
    let app = Router::new()
        .route(
            "/mcp",
            get(|| async { "ok" })
                .layer(RequireScope::any(&guard, ["mcp:tools", "mcp:admin"]).expect("scopes")),
        )
        .route(
            "/other",
            get(|| async { "ok" }).layer(RequireScope::all(&guard, ["read"]).expect("scope")),
        )
        .route_service(resource.well_known_path(), resource.service());

    // Served at the path-suffixed well-known URL of RFC 9728 §3.1.
    assert_eq!(
        resource.metadata_url(),
        "https://api.test/.well-known/oauth-protected-resource/mcp"
    );
    let (status, _, _, body) = send(&app, "/.well-known/oauth-protected-resource/mcp", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("json");
    // §2: `resource` is the identifier the URL was built from (§3.3), `authorization_servers`
    // the issuers, `scopes_supported` those the routes require, `bearer_methods_supported`
    // the header only (RFC 6750 §2.1).
    assert_eq!(
        doc,
        json!({
            "resource": "https://api.test/mcp",
            "authorization_servers": [a.base],
            "scopes_supported": ["mcp:admin", "mcp:tools", "read"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Test API",
            "resource_documentation": "https://docs.test/api",
        })
    );
    // §5.1: a 401 names the metadata URL in `resource_metadata`.
    let (status, _, challenges, _) = send(&app, "/mcp", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges,
        [format!(
            r#"Bearer resource_metadata="{}", scope="mcp:tools mcp:admin""#,
            resource.metadata_url()
        )]
    );

    // A client that knows only the API's URL: metadata -> issuer -> token -> API.
    let metadata = resource.metadata_url().replace(API, "");
    let (_, _, _, body) = send(&app, &metadata, None).await;
    let doc: Value = serde_json::from_str(&body).expect("json");
    let issuer_url = doc["authorization_servers"][0].as_str().expect("issuer");
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let meta = http
        .get(
            format!("{issuer_url}/.well-known/oauth-authorization-server")
                .parse()
                .expect("uri"),
        )
        .await
        .expect("issuer metadata");
    let meta: Value =
        serde_json::from_slice(&meta.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    assert!(
        meta["token_endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with(&a.base))
    );
}
