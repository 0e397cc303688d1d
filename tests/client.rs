//! The outgoing side (`bearer_guard::client`) over real sockets: the example issuer
//! (`examples/issuer/`), a protected API (axum + `RequireScope`, trusting the
//! issuer's JWKS), and a calling service whose hyper-util client is wrapped in
//! `AddAccessTokenLayer`. Shows token reuse, refresh ahead of and after expiry with one token
//! request at a time, the retry after a 401 (and no retry for a request that cannot be
//! replayed), token endpoint errors, and that the secret never prints or logs.

#[path = "common/http_stub.rs"]
mod http_stub;
use bearer_guard::testkit::logs;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing::oauth;
use http_stub::{Reply, Stub};
use oauth::cheap_hash;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request as AxumRequest, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::get;
use bearer_guard::client::{
    AddAccessTokenLayer, AddAccessTokenLayerBuilder, AuthMethod, BoxError, ClientCredentials,
    NoReplay, Replay, TokenError, TokenErrorKind, TokenTarget,
};
use bearer_guard::fetch::FetchErrorKind;
use bearer_guard::{AccessClaims, Claims, KeySet, RequireScope, Validator};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::{Format, Issuer, SigningKey};
use tower::util::MapRequestLayer;
use tower::{Service, ServiceExt};

const API: &str = "https://api.test";
const SVC_SECRET: &str = "svc-secret-0123456789";
const SHORT_SECRET: &str = "short-lived-secret-0123456789";

fn clients_toml() -> String {
    format!(
        r#"
[[clients]]
client_id = "svc"
secret_hash = "{svc}"
scopes = ["read", "write"]
default_scope = "read"
resources = ["{API}"]

[[clients]]
client_id = "short"
secret_hash = "{short}"
scopes = ["read"]
resources = ["{API}"]
token_lifetime = 2
"#,
        svc = cheap_hash(SVC_SECRET),
        short = cheap_hash(SHORT_SECRET),
    )
}

// ---------------------------------------------------------------------------------------------
// Harness

/// The protected API's switches and counters.
#[derive(Default)]
struct Api {
    /// Requests that reached the API, whatever their outcome.
    hits: AtomicUsize,
    /// Bearer tokens of the requests the handlers answered, in order.
    served: Mutex<Vec<String>>,
    /// Refuse (401) the next token not refused yet, and from then on every request with it.
    revoke_next: AtomicBool,
    /// Refuse every token.
    refuse_all: AtomicBool,
    revoked: Mutex<HashSet<String>>,
}

impl Api {
    fn served(&self) -> Vec<String> {
        self.served.lock().expect("lock").clone()
    }

    fn distinct_tokens(&self) -> usize {
        self.served().into_iter().collect::<HashSet<_>>().len()
    }
}

struct World {
    issuer: String,
    api: String,
    token_requests: Arc<AtomicUsize>,
    state: Arc<Api>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// The issuer (counting its token requests) and the protected API, each on a free loopback
/// port.
async fn start() -> World {
    logs::install();
    let (listener, addr) = bind().await;
    let clients = issuer::parse_clients(&clients_toml(), Format::Toml).expect("clients");
    let key = SigningKey::generate(None).expect("key");
    let base = format!("http://{addr}");
    let issuer = Issuer::new(base.clone(), clients, key).expect("issuer");
    let jwks = issuer.jwks_json().to_owned();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&token_requests);
    let app = issuer::app(issuer).layer(MapRequestLayer::new(move |req: AxumRequest| {
        if req.uri().path() == issuer::TOKEN_PATH {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        req
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve issuer") });

    let validator = Validator::builder()
        .issuer(base.clone())
        .audience(API)
        .keys(KeySet::from_jwks_json(jwks.as_bytes()).expect("jwks"))
        .build()
        .expect("validator");
    let state = Arc::new(Api::default());
    let api = Router::new()
        .route(
            "/data",
            get(data)
                .post(echo)
                .layer(RequireScope::all(&validator, ["read"]).expect("scopes")),
        )
        .route(
            "/write",
            get(data).layer(RequireScope::all(&validator, ["write"]).expect("scopes")),
        )
        .layer(from_fn_with_state(Arc::clone(&state), gate))
        .with_state(Arc::clone(&state));
    let (listener, api_addr) = bind().await;
    tokio::spawn(async move { axum::serve(listener, api).await.expect("serve api") });

    World {
        issuer: base,
        api: format!("http://{api_addr}"),
        token_requests,
        state,
    }
}

fn bearer(req: &AxumRequest) -> Option<String> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// Counts every request, and refuses revoked tokens before `RequireScope` sees them.
async fn gate(State(api): State<Arc<Api>>, req: AxumRequest, next: Next) -> AxumResponse {
    api.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(token) = bearer(&req) {
        let refuse = {
            let mut revoked = api.revoked.lock().expect("lock");
            api.refuse_all.load(Ordering::SeqCst)
                || revoked.contains(&token)
                || (api.revoke_next.swap(false, Ordering::SeqCst) && revoked.insert(token))
        };
        if refuse {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn record(api: &Api, req_token: Option<String>) {
    api.served
        .lock()
        .expect("lock")
        .push(req_token.unwrap_or_default());
}

async fn data(
    State(api): State<Arc<Api>>,
    claims: Claims<AccessClaims>,
    req: AxumRequest,
) -> String {
    record(&api, bearer(&req));
    claims.client_id().unwrap_or_default().to_owned()
}

async fn echo(State(api): State<Arc<Api>>, req: AxumRequest) -> Bytes {
    record(&api, bearer(&req));
    req.into_body().collect().await.expect("body").to_bytes()
}

impl World {
    fn credentials(&self, id: &str, secret: &str) -> ClientCredentials {
        ClientCredentials::builder(format!("{}{}", self.issuer, issuer::TOKEN_PATH), id, secret)
            .resource(API)
            .build()
            .expect("credentials")
    }

    /// A layer builder for `id`, whose tokens may also go to the API's loopback origin (their
    /// resource, `API`, is only the audience name).
    fn builder(&self, id: &str, secret: &str) -> AddAccessTokenLayerBuilder {
        AddAccessTokenLayer::builder(self.credentials(id, secret)).allow_origin(self.api.clone())
    }

    fn layer(&self, id: &str, secret: &str) -> AddAccessTokenLayer {
        self.builder(id, secret).build().expect("layer")
    }

    fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn get(&self, path: &str) -> Request<Full<Bytes>> {
        Request::get(format!("{}{path}", self.api))
            .body(Full::default())
            .expect("request")
    }

    fn post(&self, path: &str, body: &'static str) -> Request<Full<Bytes>> {
        Request::post(format!("{}{path}", self.api))
            .body(Full::from(body))
            .expect("request")
    }
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The calling side: the layer around a hyper-util client.
fn caller<R: Clone>(
    layer: &AddAccessTokenLayer<R>,
) -> bearer_guard::client::AddAccessToken<HttpClient, R> {
    tower::Layer::layer(layer, http_client())
}

async fn send<S>(svc: &S, req: Request<Full<Bytes>>) -> (StatusCode, String)
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError> + Clone,
{
    let res = svc.clone().oneshot(req).await.expect("call");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn send_many<S>(svc: &S, n: usize, make: impl Fn() -> Request<Full<Bytes>>) -> Vec<StatusCode>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let svc = svc.clone();
            let req = make();
            tokio::spawn(async move { svc.oneshot(req).await.expect("call").status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses
}

/// An axum calling service: `GET /report` calls the API's `/data` with the layered client and
/// relays the answer; a token failure is a 502 naming its kind.
async fn start_calling_service(world: &World, layer: AddAccessTokenLayer) -> String {
    #[derive(Clone)]
    struct Caller {
        client: bearer_guard::client::AddAccessToken<HttpClient>,
        data_url: String,
    }
    async fn report(State(caller): State<Caller>) -> AxumResponse {
        let req = Request::get(&caller.data_url)
            .body(Full::default())
            .expect("request");
        match caller.client.oneshot(req).await {
            Ok(res) => {
                let status = res.status();
                let body = res.into_body().collect().await.expect("body").to_bytes();
                (status, body).into_response()
            }
            Err(err) => match err.downcast_ref::<TokenError>() {
                Some(err) => {
                    (StatusCode::BAD_GATEWAY, err.kind().as_str().to_owned()).into_response()
                }
                None => (StatusCode::BAD_GATEWAY, "transport".to_owned()).into_response(),
            },
        }
    }
    let caller = Caller {
        client: caller(&layer),
        data_url: format!("{}/data", world.api),
    };
    let app = Router::new()
        .route("/report", get(report))
        .with_state(caller);
    let (listener, addr) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve caller") });
    format!("http://{addr}/report")
}

async fn plain_get(url: &str) -> (StatusCode, String) {
    let req = Request::get(url).body(Full::default()).expect("request");
    let res = http_client().request(req).await.expect("request");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn many_calls_through_a_calling_service_share_one_token() {
    let world = start().await;
    let layer = world.layer("svc", SVC_SECRET);
    let report = start_calling_service(&world, layer).await;

    for _ in 0..20 {
        assert_eq!(plain_get(&report).await, (StatusCode::OK, "svc".to_owned()));
    }
    assert_eq!(world.token_requests(), 1);
    assert_eq!(world.hits(), 20);
    assert_eq!(world.state.distinct_tokens(), 1);
}

#[tokio::test]
async fn concurrent_first_calls_wait_for_a_single_token_request() {
    let world = start().await;
    let svc = caller(&world.layer("svc", SVC_SECRET));
    let statuses = send_many(&svc, 20, || world.get("/data")).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(world.token_requests(), 1);
    for _ in 0..20 {
        assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    }
    assert_eq!(world.token_requests(), 1);
    assert_eq!(world.state.distinct_tokens(), 1);
    assert_eq!(world.hits(), 40);
}

/// Tokens of the `short` client live 2 s (below the default floor of the token lifetime,
/// lowered here); with `refresh_ahead` 1 s the refresh is due after 1 s. Calls then keep the old token while one background request fetches the next; after
/// expiry, concurrent calls wait for one token request.
#[tokio::test]
async fn refreshes_ahead_of_expiry_and_after_it_with_one_token_request() {
    let world = start().await;
    let layer = world
        .builder("short", SHORT_SECRET)
        .min_token_lifetime(Duration::from_secs(1))
        .refresh_ahead(Duration::from_secs(1))
        .build()
        .expect("layer");
    let svc = caller(&layer);

    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    assert_eq!(world.token_requests(), 1);
    let first = world.state.served()[0].clone();

    // Due, not expired: every call succeeds at once, and one refresh starts.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let statuses = send_many(&svc, 10, || world.get("/data")).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    wait_for(|| world.token_requests() == 2).await;
    // Calls carry the new token once it has arrived (at the latest when the old one expires,
    // from when they wait for it).
    let mut second = first.clone();
    for _ in 0..40 {
        assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
        second = world.state.served().last().cloned().expect("served");
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(first, second, "the refreshed token is used");
    assert_eq!(world.token_requests(), 2, "one background refresh");

    // Expired: concurrent calls wait for a single token request.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let before = world.state.served().len();
    let statuses = send_many(&svc, 10, || world.get("/data")).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(world.token_requests(), 3, "one token request after expiry");
    let after: HashSet<String> = world.state.served()[before..].iter().cloned().collect();
    assert_eq!(after.len(), 1, "all waited for the same new token");
    assert!(!after.contains(&first) && !after.contains(&second));
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 2 s");
}

/// Replays GETs only: a refused GET is retried once with a new token, a refused POST is
/// returned as it is (and its token dropped, so the next POST gets a new one).
#[tokio::test]
async fn retries_a_replayable_request_once_after_401_and_not_the_others() {
    let world = start().await;
    let get_only = |req: &Request<Full<Bytes>>| (req.method() == Method::GET).then(|| req.clone());
    let layer = world.layer("svc", SVC_SECRET).replay(get_only);
    let svc = caller(&layer);

    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    assert_eq!((world.token_requests(), world.hits()), (1, 1));
    let first = world.state.served()[0].clone();

    world.state.revoke_next.store(true, Ordering::SeqCst);
    assert_eq!(
        send(&svc, world.get("/data")).await,
        (StatusCode::OK, "svc".to_owned())
    );
    assert_eq!(
        (world.token_requests(), world.hits()),
        (2, 3),
        "401, new token, retry"
    );
    let second = world.state.served().last().cloned().expect("served");
    assert_ne!(first, second);

    // A POST is not replayable under this policy.
    world.state.revoke_next.store(true, Ordering::SeqCst);
    let (status, _) = send(&svc, world.post("/data", "payload")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (world.token_requests(), world.hits()),
        (2, 4),
        "not retried"
    );
    // Its token was dropped: the next call fetches a new one.
    assert_eq!(
        send(&svc, world.post("/data", "payload")).await,
        (StatusCode::OK, "payload".to_owned())
    );
    assert_eq!((world.token_requests(), world.hits()), (3, 5));

    // The default policy replays any request whose body can be cloned, bodies included.
    let svc = caller(&world.layer("svc", SVC_SECRET));
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    world.state.revoke_next.store(true, Ordering::SeqCst);
    assert_eq!(
        send(&svc, world.post("/data", "again")).await,
        (StatusCode::OK, "again".to_owned())
    );
    assert_eq!(world.token_requests(), 5);

    // `NoReplay` never retries.
    let svc = caller(&world.layer("svc", SVC_SECRET).replay(NoReplay));
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    world.state.revoke_next.store(true, Ordering::SeqCst);
    assert_eq!(
        send(&svc, world.get("/data")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    assert_eq!(world.token_requests(), 7);
}

/// An API that refuses every token costs one extra token request, not one per call.
#[tokio::test]
async fn an_upstream_refusing_every_token_does_not_cause_a_token_request_per_call() {
    let world = start().await;
    let svc = caller(&world.layer("svc", SVC_SECRET));
    world.state.refuse_all.store(true, Ordering::SeqCst);
    assert_eq!(
        send(&svc, world.get("/data")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!((world.token_requests(), world.hits()), (2, 2), "one retry");
    for _ in 0..5 {
        assert_eq!(
            send(&svc, world.get("/data")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        (world.token_requests(), world.hits()),
        (2, 7),
        "no more retries"
    );
    world.state.refuse_all.store(false, Ordering::SeqCst);
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    assert_eq!(world.token_requests(), 2);
}

#[tokio::test]
async fn wrong_secret_is_a_token_error_and_the_request_is_not_sent() {
    let world = start().await;
    let wrong = "wrong-secret-must-never-print";
    let layer = world.layer("svc", wrong);
    let svc = caller(&layer);
    let err = svc
        .clone()
        .oneshot(world.get("/data"))
        .await
        .expect_err("no token");
    let token_error = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(token_error.kind(), TokenErrorKind::Rejected);
    assert_eq!(token_error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(token_error.oauth_error(), Some("invalid_client"));
    assert_eq!(world.hits(), 0, "the request never went out");

    for shown in [
        format!("{err} {err:?}"),
        format!("{layer:?}"),
        format!("{svc:?}"),
        format!("{:?}", layer.credentials()),
    ] {
        assert!(!shown.contains(wrong), "{shown}");
    }
    assert!(format!("{layer:?}").contains("[redacted]"));

    // Through the calling service: a 502 naming the reason.
    let report = start_calling_service(&world, layer.clone()).await;
    assert_eq!(
        plain_get(&report).await,
        (StatusCode::BAD_GATEWAY, "rejected".to_owned())
    );

    // An unreachable token endpoint: a transport error, no request sent either.
    let (closed, addr) = bind().await;
    drop(closed);
    let credentials = ClientCredentials::builder(format!("http://{addr}/token"), "svc", SVC_SECRET)
        .build()
        .expect("credentials");
    let layer = AddAccessTokenLayer::builder(credentials)
        .allow_origin(world.api.clone())
        .build()
        .expect("layer");
    let err = caller(&layer)
        .oneshot(world.get("/data"))
        .await
        .expect_err("no token");
    assert_eq!(
        err.downcast_ref::<TokenError>().map(TokenError::kind),
        Some(TokenErrorKind::Transport)
    );
    assert_eq!(world.hits(), 0);
    // It names the URL, what failed and what to check (not "client error (Connect)").
    let message = err.to_string();
    assert!(
        message.contains(&format!("could not connect to http://{addr}/token")),
        "{message}"
    );
    assert!(
        message.contains("check that the server is running"),
        "{message}"
    );
    let fetch = err
        .downcast_ref::<TokenError>()
        .and_then(TokenError::fetch_error)
        .expect("a fetch error");
    assert_eq!(fetch.kind(), FetchErrorKind::Connect);
}

#[tokio::test]
async fn post_authentication_and_per_request_scope() {
    let world = start().await;
    let credentials = ClientCredentials::builder(
        format!("{}{}", world.issuer, issuer::TOKEN_PATH),
        "svc",
        SVC_SECRET,
    )
    .auth_method(AuthMethod::ClientSecretPost)
    .resource(API)
    .scope("read")
    .build()
    .expect("credentials");
    let layer = AddAccessTokenLayer::builder(credentials)
        .allow_origin(world.api.clone())
        .build()
        .expect("layer");
    let svc = caller(&layer);

    // The default scope `read` is refused at the route that needs `write`.
    assert_eq!(
        send(&svc, world.get("/write")).await.0,
        StatusCode::FORBIDDEN
    );
    let mut req = world.get("/write");
    req.extensions_mut()
        .insert(TokenTarget::new().scope("write read"));
    assert_eq!(send(&svc, req).await.0, StatusCode::OK);
    assert_eq!(world.token_requests(), 2, "one token per scope");
    for _ in 0..3 {
        let mut req = world.get("/write");
        req.extensions_mut()
            .insert(TokenTarget::new().scope("read write"));
        assert_eq!(send(&svc, req).await.0, StatusCode::OK);
        assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    }
    assert_eq!(world.token_requests(), 2, "both cached");

    // A scope the client may not have: the token endpoint's `invalid_scope`.
    let mut req = world.get("/data");
    req.extensions_mut()
        .insert(TokenTarget::new().scope("admin"));
    let err = svc.clone().oneshot(req).await.expect_err("refused");
    let err = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(err.oauth_error(), Some("invalid_scope"));
}

/// Everything logged on both sides while tokens are fetched, used, refused and retried: no
/// secret and no token.
#[tokio::test]
async fn logs_hold_neither_secrets_nor_tokens() {
    // The test runtime is single-threaded: every task logs on this thread.
    let logs = logs::capture();

    let world = start().await;
    let svc = caller(&world.layer("svc", SVC_SECRET));
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    world.state.revoke_next.store(true, Ordering::SeqCst);
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    let wrong = "wrong-secret-not-logged";
    let bad = caller(&world.layer("svc", wrong));
    assert!(bad.oneshot(world.get("/data")).await.is_err());

    let logs = logs.text();
    assert!(logs.contains("access token obtained"), "{logs}");
    assert!(logs.contains("retrying once"), "{logs}");
    assert!(logs.contains("token request failed"), "{logs}");
    assert!(
        !logs.contains(SVC_SECRET) && !logs.contains(wrong),
        "{logs}"
    );
    for token in world.state.served() {
        assert!(!logs.contains(&token), "token in logs");
    }
}

/// `Replay` is implemented by closures; a compile-time check that the policies are usable as
/// trait objects' bounds.
#[test]
fn replay_policies() {
    fn replays<P: Replay<Full<Bytes>>>(p: &P) -> bool {
        p.replay(&Request::new(Full::default())).is_some()
    }
    assert!(replays(&bearer_guard::client::CloneBody));
    assert!(!replays(&NoReplay));
    assert!(!replays(&|_: &Request<Full<Bytes>>| None));
}

/// The capture sees the events of callsites that another thread hit first (with a
/// thread-local `set_default`, tracing caches such a callsite as disabled for every thread).
#[test]
fn log_capture_sees_callsites_first_hit_on_other_threads() {
    fn event(n: u32) {
        tracing::debug!(n, "shared callsite");
    }
    let logs = logs::capture();
    std::thread::spawn(|| event(1)).join().expect("thread");
    event(2);
    let text = logs.text();
    assert!(text.contains("shared callsite n=2"), "{text:?}");
    assert!(!text.contains("n=1"), "{text:?}");
}

// ---------------------------------------------------------------------------------------------
// Where tokens go, short lifetimes, and what token endpoint failures say: stub servers on
// loopback ports.

/// A layer whose tokens come from `token_endpoint` and are for `resource` (whose origin gets
/// them).
fn stub_layer(token_endpoint: &str, resource: &str) -> AddAccessTokenLayerBuilder {
    let credentials = ClientCredentials::builder(token_endpoint, "svc", SVC_SECRET)
        .resource(resource)
        .build()
        .expect("credentials");
    AddAccessTokenLayer::builder(credentials)
}

fn has_token(head: &str) -> bool {
    head.contains("\r\nauthorization:")
}

#[tokio::test]
async fn tokens_go_to_allowed_origins_only_and_never_to_another_resource_origin() {
    let world = start().await;
    let elsewhere = Stub::start(Reply::json(200, "{}")).await;
    let svc = caller(&world.layer("svc", SVC_SECRET));

    // Another origin, through the same client: sent, without a token, and none fetched.
    let req = Request::get(elsewhere.url("/collect"))
        .body(Full::default())
        .expect("request");
    assert_eq!(send(&svc, req).await.0, StatusCode::OK);
    assert_eq!(elsewhere.heads().len(), 1);
    assert!(!has_token(&elsewhere.heads()[0]), "{:?}", elsewhere.heads());
    assert_eq!(world.token_requests(), 0);

    // The allowed origin gets one.
    assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    assert_eq!((world.token_requests(), world.hits()), (1, 1));

    // A target whose resource is the other origin cannot make a token for it go to the API,
    let mut req = world.get("/data");
    req.extensions_mut()
        .insert(TokenTarget::new().resource(elsewhere.url("/")));
    let err = svc.clone().oneshot(req).await.expect_err("refused");
    let err = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(err.kind(), TokenErrorKind::ResourceMismatch);
    assert_eq!(
        (world.token_requests(), world.hits()),
        (1, 1),
        "nothing sent"
    );
    // nor open the other origin to tokens.
    let mut req = Request::get(elsewhere.url("/collect"))
        .body(Full::default())
        .expect("request");
    req.extensions_mut()
        .insert(TokenTarget::new().resource(elsewhere.url("/")));
    assert_eq!(send(&svc, req).await.0, StatusCode::OK);
    assert_eq!(elsewhere.heads().len(), 2);
    assert!(elsewhere.heads().iter().all(|h| !has_token(h)));
    assert_eq!(world.token_requests(), 1);
}

#[tokio::test]
async fn expires_in_zero_costs_one_token_request_for_many_calls_and_is_logged() {
    let logs = logs::capture();
    let issuer = Stub::start(Reply::json(
        200,
        r#"{"access_token":"stub-token","token_type":"Bearer","expires_in":0}"#,
    ))
    .await;
    let api = Stub::start(Reply::json(200, "{}")).await;
    let layer = stub_layer(&issuer.url("/token"), &api.url("/"))
        .build()
        .expect("layer");
    let svc = caller(&layer);
    for _ in 0..20 {
        let req = Request::get(api.url("/data"))
            .body(Full::default())
            .expect("request");
        assert_eq!(send(&svc, req).await.0, StatusCode::OK);
    }
    assert_eq!(issuer.heads().len(), 1, "one token request");
    assert_eq!(api.heads().len(), 20);
    assert!(
        api.heads()
            .iter()
            .all(|h| h.contains("\r\nauthorization: bearer stub-token\r\n"))
    );
    let logs = logs.text();
    assert!(logs.contains("reason=\"short_lifetime\""), "{logs}");
    assert!(logs.contains("expires_in=0 used_for=10"), "{logs}");
}

#[tokio::test]
async fn token_endpoint_failures_name_the_url_and_what_to_check() {
    let cases = [
        (
            Reply::json(200, "{}").after(Duration::from_secs(30)),
            TokenErrorKind::Timeout,
            "no complete answer from {url} within 300ms; check",
        ),
        (
            Reply::empty(302, &["location: https://issuer.example/oauth/token/"]),
            TokenErrorKind::Status,
            "{url} answered HTTP 302 Found, a redirect to https://issuer.example/oauth/token/, \
             which is not followed; configure the final URL",
        ),
        (
            Reply::json(502, "<html>upstream down</html>"),
            TokenErrorKind::Status,
            "{url} answered HTTP 502 Bad Gateway; check",
        ),
        (
            Reply::chunked(70_000),
            TokenErrorKind::ResponseTooLarge,
            "the answer of {url} is larger than 65536 bytes; check",
        ),
        (
            Reply::json(200, "<html>login page</html>"),
            TokenErrorKind::InvalidResponse,
            "the answer of {url} is not the JSON expected (syntax at line 1, column 1); check",
        ),
        (
            Reply::json(200, r#"{"token_type":"Bearer"}"#),
            TokenErrorKind::InvalidResponse,
            "the token response of {url} is invalid: no `access_token` member; check that the \
             URL is the token endpoint",
        ),
        (
            Reply::json(400, r#"{"error":"invalid_scope"}"#),
            TokenErrorKind::Rejected,
            "the token endpoint {url} refused the request (HTTP 400): invalid_scope; check the \
             scope",
        ),
    ];
    for (reply, kind, says) in cases {
        let issuer = Stub::start(reply).await;
        let api = Stub::start(Reply::json(200, "{}")).await;
        let url = issuer.url("/oauth/token");
        // Only the slow stub meets the short timeout: a loaded machine must not turn the
        // other cases into timeouts.
        let timeout = if kind == TokenErrorKind::Timeout {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(30)
        };
        let layer = stub_layer(&url, &api.url("/"))
            .token_timeout(timeout)
            .build()
            .expect("layer");
        let req = Request::get(api.url("/data"))
            .body(Full::default())
            .expect("request");
        let err = caller(&layer).oneshot(req).await.expect_err("no token");
        let err = err.downcast_ref::<TokenError>().expect("a TokenError");
        assert_eq!(err.kind(), kind, "{err}");
        let message = err.to_string();
        assert!(message.contains(&says.replace("{url}", &url)), "{message}");
        assert!(!message.contains(SVC_SECRET), "{message}");
        assert_eq!(err.endpoint(), Some(url.as_str()));
        assert!(api.heads().is_empty(), "the request never went out");
    }
}

/// `bearer_guard_client_token_requests_total` counts each token request by its result; a
/// call that reuses a cached token counts nothing. The recorder is this thread's (the test
/// runtime has one thread), so parallel tests do not add to it.
#[tokio::test]
async fn token_requests_are_counted_by_result() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let world = start().await;
    let svc = caller(&world.layer("svc", SVC_SECRET));
    for _ in 0..3 {
        assert_eq!(send(&svc, world.get("/data")).await.0, StatusCode::OK);
    }
    let wrong = caller(&world.layer("svc", "wrong-secret-0123"));
    assert!(wrong.oneshot(world.get("/data")).await.is_err());
    let text = handle.render();
    for line in [
        r#"bearer_guard_client_token_requests_total{result="ok"} 1"#,
        r#"bearer_guard_client_token_requests_total{result="rejected"} 1"#,
    ] {
        assert!(text.contains(line), "no {line}:\n{text}");
    }
    assert!(!text.contains("wrong-secret"), "{text}");
}
