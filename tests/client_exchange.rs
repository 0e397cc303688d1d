//! `client::ExchangeTokenLayer` against the real companion issuer: a service that serves a
//! user's request calls a downstream API with a token exchanged (RFC 8693) from the user's
//! token. The downstream API (axum + `RequireScope` for its own audience) records what it
//! receives: the exchanged token (its `aud`, `sub`, `act`), never the incoming one. Caching
//! per subject token, one exchange at a time, refresh before expiry, and typed errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request as AxumRequest, State};
use axum::routing::get;
use bearer_guard::client::{
    BoxError, ClientCredentials, ExchangeTokenLayer, ExchangeTokenLayerBuilder, SubjectToken,
    TokenError, TokenErrorKind,
};
use bearer_guard::{RequireScope, VerifiedToken};
use bearer_guard_issuer::testing::oauth::{cheap_hash, urlencode};
use bearer_guard_issuer::testing::{
    self as harness, API, APP, OTHER_API, SVC_SECRET, Server, clients_toml,
};
use bearer_guard_issuer::{SigningKey, TOKEN_PATH};
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower::util::MapRequestLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The downstream API's audience.
const STOCK: &str = "https://stock.test";
const EXCH_SECRET: &str = "exch-secret-0123456789";
const SHORT_SECRET: &str = "short-exch-secret-0123456789";

/// `exch` exchanges tokens for API into tokens for STOCK; `short` too, for 2 s tokens.
async fn issuer() -> Server {
    let clients = format!(
        r#"{}
[[clients]]
client_id = "exch"
secret_hash = "{}"
scopes = ["read", "write"]
resources = ["{STOCK}"]
exchange_from = ["{API}"]

[[clients]]
client_id = "short"
secret_hash = "{}"
scopes = ["read"]
resources = ["{STOCK}"]
exchange_from = ["{API}"]
token_lifetime = 2

[[clients]]
client_id = "wrong-aud"
secret_hash = "{}"
scopes = ["read"]
resources = ["{OTHER_API}"]
exchange_from = ["{API}"]
"#,
        clients_toml(),
        cheap_hash(EXCH_SECRET),
        cheap_hash(SHORT_SECRET),
        cheap_hash(EXCH_SECRET),
    );
    Server::start_full(clients, SigningKey::generate(None).expect("key"), |_| {}).await
}

/// What the downstream API saw: the raw bearer token and the verified claims, per request.
#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    tokens: Mutex<Vec<String>>,
    claims: Mutex<Vec<Value>>,
}

/// The downstream API on a loopback port, accepting only tokens for STOCK.
async fn downstream(server: &Server) -> (String, Arc<Seen>) {
    let validator = server.validator(STOCK).await;
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/items",
            get(items).layer(RequireScope::authenticated(&validator)),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&seen),
            count,
        ))
        .with_state(Arc::clone(&seen));
    let (listener, addr) = harness::bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), seen)
}

async fn count(
    State(seen): State<Arc<Seen>>,
    req: AxumRequest,
    next: axum::middleware::Next,
) -> axum::response::Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

async fn items(State(seen): State<Arc<Seen>>, req: AxumRequest) -> &'static str {
    let raw = req.headers()[AUTHORIZATION].to_str().expect("ascii");
    let token = raw.strip_prefix("Bearer ").expect("bearer").to_owned();
    let verified = req.extensions().get::<VerifiedToken>().expect("verified");
    assert!(
        verified.actor().is_some(),
        "an exchanged token has an actor"
    );
    seen.claims
        .lock()
        .expect("lock")
        .push(harness::claims(&token));
    seen.tokens.lock().expect("lock").push(token);
    "items"
}

impl Seen {
    fn tokens(&self) -> Vec<String> {
        self.tokens.lock().expect("lock").clone()
    }

    fn claims(&self) -> Vec<Value> {
        self.claims.lock().expect("lock").clone()
    }
}

/// The calling service: a hyper-util client counting the token requests, inside the layer.
fn caller(
    layer: ExchangeTokenLayer,
    exchanges: &Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = BoxError,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let counter = Arc::clone(exchanges);
    ServiceBuilder::new()
        .layer(layer)
        .layer(MapRequestLayer::new(move |req: Request<Full<Bytes>>| {
            if req.uri().path() == TOKEN_PATH {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            req
        }))
        .service(Client::builder(TokioExecutor::new()).build_http())
}

fn builder(server: &Server, api: &str, id: &str, secret: &str) -> ExchangeTokenLayerBuilder {
    let credentials =
        ClientCredentials::builder(format!("{}{TOKEN_PATH}", server.base), id, secret)
            .resource(STOCK)
            .build()
            .expect("credentials");
    // STOCK is only the audience's name; the stub serves it on a loopback port.
    ExchangeTokenLayer::builder(credentials).allow_origin(api.to_owned())
}

/// The layer of `exch` (it may exchange tokens for API), with the default settings.
fn exch_layer(server: &Server, api: &str) -> ExchangeTokenLayer {
    builder(server, api, "exch", EXCH_SECRET)
        .build()
        .expect("layer")
}

/// A user's token for API (alice, by the authorization code flow of APP).
async fn user_token(server: &Server) -> String {
    let (code, verifier) = server.code("").await;
    server.redeem(&code, &verifier).await.assert_tokens().0
}

/// The request being served, with `token`.
fn incoming(token: &str) -> Request<()> {
    Request::get("https://orders.test/")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .expect("request")
}

/// A downstream call made on behalf of `subject`.
fn call(api: &str, subject: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(format!("{api}/items"))
        .body(Full::default())
        .expect("request");
    if let Some(subject) = subject {
        let token = SubjectToken::from_request(&incoming(subject)).expect("subject");
        req.extensions_mut().insert(token);
    }
    req
}

async fn send<S>(svc: &S, req: Request<Full<Bytes>>) -> Result<StatusCode, BoxError>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        > + Clone,
{
    let res = svc.clone().oneshot(req).await?;
    let status = res.status();
    res.into_body().collect().await?;
    Ok(status)
}

fn token_error(err: &BoxError) -> &TokenError {
    err.downcast_ref::<TokenError>()
        .unwrap_or_else(|| panic!("not a TokenError: {err}"))
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_downstream_api_gets_the_exchanged_token_never_the_incoming_one() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    let svc = caller(exch_layer(&server, &api), &exchanges);
    let user = user_token(&server).await;

    // The caller even copied the incoming Authorization header: it is replaced, on the
    // call that waits for the exchange and on the one that finds it cached.
    for _ in 0..2 {
        let mut req = call(&api, Some(&user));
        req.headers_mut().insert(
            AUTHORIZATION,
            format!("Bearer {user}").parse().expect("value"),
        );
        assert_eq!(send(&svc, req).await.expect("sent"), StatusCode::OK);
    }

    let tokens = seen.tokens();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens.iter().all(|t| *t != user),
        "the incoming token went downstream"
    );
    let claims = &seen.claims()[0];
    assert_eq!(claims["aud"], STOCK, "{claims}");
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["act"]["sub"], "exch", "{claims}");
    assert_eq!(claims["client_id"], "exch", "{claims}");
    assert_eq!(harness::claims(&user)["client_id"], APP);
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn exchanged_tokens_are_cached_per_subject_token_with_one_exchange_at_a_time() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    let svc = caller(exch_layer(&server, &api), &exchanges);
    let first_user = user_token(&server).await;
    let second_user = user_token(&server).await;

    // Concurrent calls for one subject token: one exchange, all of them served.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (svc, req) = (svc.clone(), call(&api, Some(&first_user)));
            tokio::spawn(async move { send(&svc, req).await.map_err(|e| e.to_string()) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("sent"), StatusCode::OK);
    }
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    // Again: from the cache.
    assert_eq!(
        send(&svc, call(&api, Some(&first_user)))
            .await
            .expect("sent"),
        StatusCode::OK
    );
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    let tokens = seen.tokens();
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one exchanged token"
    );

    // Another subject token: its own exchange, its own token.
    assert_eq!(
        send(&svc, call(&api, Some(&second_user)))
            .await
            .expect("sent"),
        StatusCode::OK
    );
    assert_eq!(exchanges.load(Ordering::SeqCst), 2);
    let last = seen.tokens().last().cloned().expect("token");
    assert_ne!(last, tokens[0]);
}

#[tokio::test]
async fn an_exchanged_token_is_exchanged_again_before_it_expires() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    let svc = caller(
        builder(&server, &api, "short", SHORT_SECRET)
            .min_token_lifetime(Duration::from_secs(1))
            .refresh_ahead(Duration::from_secs(1))
            .build()
            .expect("layer"),
        &exchanges,
    );
    let user = user_token(&server).await;
    assert_eq!(
        send(&svc, call(&api, Some(&user))).await.expect("sent"),
        StatusCode::OK
    );
    let first = seen.tokens()[0].clone();
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);

    // The token ages past its refresh time (half of its 2 s life), not its expiry: the call
    // goes at once with it, and one background exchange starts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        send(&svc, call(&api, Some(&user))).await.expect("sent"),
        StatusCode::OK
    );
    wait_for("the background exchange", || {
        exchanges.load(Ordering::SeqCst) == 2
    })
    .await;
    let mut next = first.clone();
    for _ in 0..50 {
        assert_eq!(
            send(&svc, call(&api, Some(&user))).await.expect("sent"),
            StatusCode::OK
        );
        next = seen.tokens().last().cloned().expect("token");
        if next != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(next, first, "the new exchanged token is used");
    assert_eq!(exchanges.load(Ordering::SeqCst), 2, "one refresh");
}

#[tokio::test]
async fn no_subject_token_no_call() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    let svc = caller(exch_layer(&server, &api), &exchanges);
    let err = send(&svc, call(&api, None)).await.expect_err("refused");
    assert_eq!(token_error(&err).kind(), TokenErrorKind::NoSubjectToken);

    // A subject token on its way to an origin the layer does not serve: refused too.
    let user = user_token(&server).await;
    let elsewhere = format!("{}/items", server.base);
    let mut req = Request::get(elsewhere)
        .body(Full::default())
        .expect("request");
    req.extensions_mut()
        .insert(SubjectToken::from_request(&incoming(&user)).expect("subject"));
    let err = send(&svc, req).await.expect_err("refused");
    assert_eq!(token_error(&err).kind(), TokenErrorKind::NoSubjectToken);

    assert_eq!(seen.hits.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(exchanges.load(Ordering::SeqCst), 0, "nothing was exchanged");
}

#[tokio::test]
async fn exchange_errors_are_typed_token_errors() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    let svc = caller(exch_layer(&server, &api), &exchanges);
    // A token for another audience than `exch` may exchange from, a revoked one, garbage.
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
    let revoked = user_token(&server).await;
    server
        .revoke_form(&format!("client_id={APP}&token={}", urlencode(&revoked)))
        .await
        .assert_revoke_ok();
    for subject in [other.as_str(), revoked.as_str(), "not-a-token"] {
        let err = send(&svc, call(&api, Some(subject)))
            .await
            .expect_err("refused");
        let err = token_error(&err);
        assert_eq!(err.kind(), TokenErrorKind::Rejected, "{err}");
        assert_eq!(err.oauth_error(), Some("invalid_grant"), "{err}");
        assert!(!err.to_string().contains(subject), "{err}");
    }

    // The service's own credentials are wrong.
    let svc = caller(
        builder(&server, &api, "exch", "wrong-secret-0123456789")
            .build()
            .expect("layer"),
        &exchanges,
    );
    let user = user_token(&server).await;
    let err = send(&svc, call(&api, Some(&user)))
        .await
        .expect_err("refused");
    let err = token_error(&err);
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_downstream_401_drops_the_exchanged_token() {
    let server = issuer().await;
    let (api, seen) = downstream(&server).await;
    let exchanges = Arc::new(AtomicUsize::new(0));
    // `wrong-aud` exchanges for OTHER_API: the downstream API (STOCK) refuses its tokens.
    let credentials = ClientCredentials::builder(
        format!("{}{TOKEN_PATH}", server.base),
        "wrong-aud",
        EXCH_SECRET,
    )
    .resource(OTHER_API)
    .build()
    .expect("credentials");
    let layer = ExchangeTokenLayer::builder(credentials)
        .allow_origin(api.clone())
        .build()
        .expect("layer");
    let svc = caller(layer, &exchanges);
    let user = user_token(&server).await;
    for expected_exchanges in [1, 2, 2] {
        let status = send(&svc, call(&api, Some(&user))).await.expect("sent");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The first 401 drops the token; its replacement, refused at once, is kept for a
        // while rather than exchanged on every call.
        assert_eq!(exchanges.load(Ordering::SeqCst), expected_exchanges);
    }
    assert_eq!(seen.hits.load(Ordering::SeqCst), 3);
}
