//! Remote keys (feature `remote`) against a real JWKS / discovery server on 127.0.0.1 whose
//! behaviour is switched at runtime: eager and lazy start-up, rotation, unknown-kid floods,
//! issuer outages and slowness, `Cache-Control` refresh, discovery, the `http://` rule, bad
//! keys in a set, a custom HTTP client and redirects.
#![cfg(feature = "remote")]

#[path = "common/jwks_server.rs"]
mod jwks_server;
use bearer_guard::testkit as mint;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::{
    AccessClaims, AuthError, ConfigError, ErrorKind, RemoteKeys, RequireScope, Validator,
    ValidatorBuilder, VerifiedToken, fetch::HttpService, service::RequireScopeService,
};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jwks_server::{Behaviour, JwksServer};
use mint::{AUDIENCE, ISSUER, token};
use serde_json::{Value, json};
use tower::util::ServiceFn;
use tower::{Layer as _, ServiceExt as _, service_fn};

const JWKS: &str = "/jwks";
const RFC8414: &str = "/.well-known/oauth-authorization-server";
const OIDC: &str = "/.well-known/openid-configuration";
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// helpers

/// A server serving the JWKS of `kids` at `/jwks`.
async fn serving(kids: &[&str]) -> JwksServer {
    let server = JwksServer::start().await;
    server.json(JWKS, mint::jwks(kids));
    server
}

/// A validator with remote keys, as these tests build it: the key-source settings go to
/// [`RemoteKeys`]; [`build`](Self::build) builds and fetches at once ([`Validator::ready`]),
/// [`build_lazy`](Self::build_lazy) only builds, so that the first request fetches.
struct Remote {
    builder: ValidatorBuilder,
    keys: RemoteKeys,
}

/// Remote keys from `server`'s `/jwks`, with short timeouts.
fn remote(server: &JwksServer) -> Remote {
    Remote::new(
        Validator::builder().issuer(ISSUER).audience(AUDIENCE),
        RemoteKeys::jwks_url(server.url(JWKS)),
    )
}

impl Remote {
    fn new(builder: ValidatorBuilder, keys: RemoteKeys) -> Self {
        let keys = keys.timeouts(Duration::from_millis(100), Duration::from_millis(300));
        Remote { builder, keys }
    }

    fn with(mut self, f: impl FnOnce(RemoteKeys) -> RemoteKeys) -> Self {
        self.keys = f(self.keys);
        self
    }

    fn max_response_size(self, bytes: usize) -> Self {
        self.with(|k| k.max_response_size(bytes))
    }

    fn refresh_interval(self, min: Duration, max: Duration) -> Self {
        self.with(|k| k.refresh_interval(min, max))
    }

    fn unknown_kid_cooldown(self, cooldown: Duration) -> Self {
        self.with(|k| k.unknown_kid_cooldown(cooldown))
    }

    fn max_staleness(self, max: Duration) -> Self {
        self.with(|k| k.max_staleness(max))
    }

    fn timeouts(self, connect: Duration, total: Duration) -> Self {
        self.with(|k| k.timeouts(connect, total))
    }

    fn http_client<S: HttpService<Full<Bytes>>>(self, client: S) -> Self {
        self.with(|k| k.http_client(client))
    }

    fn allow_insecure_http(self) -> Self {
        self.with(RemoteKeys::allow_insecure_http)
    }

    async fn build(self) -> Result<Validator, ConfigError> {
        let validator = self.build_lazy()?;
        validator.ready().await?;
        Ok(validator)
    }

    fn build_lazy(self) -> Result<Validator, ConfigError> {
        self.builder.keys(self.keys).build()
    }
}

/// The reason of a `ConfigError::KeyFetch`, failing on anything else.
fn key_fetch_reason(result: Result<Validator, ConfigError>) -> String {
    match result {
        Err(ConfigError::KeyFetch(reason)) => reason,
        Err(other) => panic!("expected ConfigError::KeyFetch, got {other:?}"),
        Ok(v) => panic!("build succeeded unexpectedly: {v:?}"),
    }
}

/// A token whose header names `kid` (ES256) and whose signature is junk: an unknown kid is
/// refused before any signature check, and this is much cheaper than signing 500 tokens.
fn forged(kid: &str) -> String {
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
    let claims = mint::claims(json!({})).to_string();
    format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(claims),
        B64.encode([7u8; 64])
    )
}

/// A kid nobody publishes.
fn random_kid(i: usize) -> String {
    let mut salt = [0u8; 8];
    getrandom::fill(&mut salt).expect("random");
    format!("forged-{i}-{}", u64::from_le_bytes(salt))
}

type Handler = fn(Request<()>) -> Ready<Result<Response<String>, Infallible>>;
type App = RequireScopeService<ServiceFn<Handler>, AccessClaims>;

/// Echoes the token's client id.
fn handler(req: Request<()>) -> Ready<Result<Response<String>, Infallible>> {
    let body = req
        .extensions()
        .get::<VerifiedToken>()
        .and_then(VerifiedToken::claims::<AccessClaims>)
        .map_or("anonymous".to_owned(), |c| {
            c.client_id().unwrap_or("?").to_owned()
        });
    ready(Ok(Response::new(body)))
}

/// The `RequireScope` layer around [`handler`].
fn app(validator: &Validator) -> App {
    RequireScope::authenticated(validator).layer(service_fn(handler as Handler))
}

/// Sends `token` through `app`: status, the refusal's kind, the body.
async fn send(app: &App, token: &str) -> (StatusCode, Option<ErrorKind>, String) {
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let kind = res.extensions().get::<AuthError>().map(|e| e.kind());
    (res.status(), kind, res.into_body())
}

async fn assert_accepted(app: &App, token: &str) {
    let (status, kind, body) = send(app, token).await;
    assert_eq!((status, kind), (StatusCode::OK, None));
    assert_eq!(body, "client-a");
}

async fn assert_refused(app: &App, token: &str, status: StatusCode, kind: ErrorKind) {
    let (s, k, _) = send(app, token).await;
    assert_eq!((s, k), (status, Some(kind)));
}

// ---------------------------------------------------------------------------------------
// start-up

#[tokio::test]
async fn eager_build_fetches_once_and_serves_from_cache() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build().await.expect("build");
    assert_eq!(server.hits(JWKS), 1, "build() fetches eagerly");
    assert_eq!(validator.keys().len(), 1);

    // Known key: no fetch, neither sync nor async nor through the layer.
    let t = token("ec-1", json!({}));
    assert!(validator.validate(&t).is_ok());
    assert!(validator.validate_async(&t).await.is_ok());
    assert_accepted(&app(&validator), &t).await;
    assert_eq!(server.hits(JWKS), 1);
}

/// Builds against `server` (whose `/jwks` does `behaviour`) and returns the failure's
/// reason, checking it came within a bounded time.
async fn failed_build(behaviour: Behaviour) -> (String, JwksServer) {
    let server = JwksServer::start().await;
    server.set(JWKS, behaviour);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(3), remote(&server).build())
        .await
        .expect("build() must not hang");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    (key_fetch_reason(result), server)
}

#[tokio::test]
async fn eager_build_fails_on_http_500() {
    let (reason, server) = failed_build(Behaviour::Status(500)).await;
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(server.hits(JWKS), 1);
}

#[tokio::test]
async fn eager_build_fails_on_invalid_json() {
    let (reason, _server) = failed_build(Behaviour::Json(r#"{"keys": [ {"kty":"#.into())).await;
    assert!(reason.contains("JSON"), "{reason}");
    let (reason, _server) = failed_build(Behaviour::Json("<html>hello</html>".into())).await;
    assert!(reason.contains("JSON"), "{reason}");
}

#[tokio::test]
async fn eager_build_fails_on_5_mib_response_declared_or_chunked() {
    for declared in [true, false] {
        let (reason, _server) = failed_build(Behaviour::Huge {
            bytes: 5 * MIB,
            declared,
        })
        .await;
        assert!(
            reason.contains("larger than 1048576 bytes"),
            "declared={declared}: {reason}"
        );
    }
}

#[tokio::test]
async fn max_response_size_is_configurable() {
    let server = serving(&["ec-1"]).await;
    let size = mint::jwks(&["ec-1"]).len();
    let reason = key_fetch_reason(remote(&server).max_response_size(size - 1).build().await);
    assert!(reason.contains("larger than"), "{reason}");
    assert!(
        remote(&server)
            .max_response_size(size)
            .build()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn eager_build_fails_on_hanging_issuer_within_the_total_timeout() {
    let (reason, server) = failed_build(Behaviour::Hang).await;
    assert!(reason.contains("no complete answer"), "{reason}");
    assert!(reason.contains("within 300ms"), "{reason}");
    assert!(
        reason.contains(&server.url(JWKS)),
        "names the URL: {reason}"
    );
}

#[tokio::test]
async fn eager_build_fails_when_nobody_listens() {
    // Bind then drop: the port is (very likely) closed now.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let result = Remote::new(
        Validator::builder().issuer(ISSUER).audience(AUDIENCE),
        RemoteKeys::jwks_url(format!("http://{addr}/jwks")),
    )
    .build();
    let result = tokio::time::timeout(Duration::from_secs(2), result)
        .await
        .expect("no hang");
    let reason = key_fetch_reason(result);
    assert!(reason.contains("could not connect to"), "{reason}");
    assert!(
        reason.contains(&format!("http://{addr}/jwks")),
        "names the URL: {reason}"
    );
    assert!(
        reason.contains("check that the server is running"),
        "what to check: {reason}"
    );
}

#[tokio::test]
async fn lazy_build_does_not_fetch_until_first_request() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build_lazy().expect("build_lazy");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.hits(JWKS), 0, "build_lazy() must not fetch");
    assert!(validator.keys().is_empty());

    let app = app(&validator);
    assert_accepted(&app, &token("ec-1", json!({}))).await;
    assert!(server.hits(JWKS) >= 1, "the first request fetches");
    assert_eq!(validator.keys().len(), 1);
    assert!(
        validator
            .validate_async(&token("ec-1", json!({})))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn lazy_build_first_use_fetches_only_once() {
    // The first request and the background refresher both start at first use; only one of
    // them should go to the issuer.
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build_lazy().expect("build_lazy");
    assert!(
        validator
            .validate_async(&token("ec-1", json!({})))
            .await
            .is_ok()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.hits(JWKS), 1, "first use fetched more than once");
}

#[tokio::test]
async fn lazy_build_with_issuer_down_answers_503_quickly() {
    let server = JwksServer::start().await;
    server.set(JWKS, Behaviour::Status(500));
    let validator = remote(&server).build_lazy().expect("build_lazy");
    let app = app(&validator);
    let started = Instant::now();
    let t = token("ec-1", json!({}));
    tokio::time::timeout(
        Duration::from_secs(2),
        assert_refused(
            &app,
            &t,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::KeysUnavailable,
        ),
    )
    .await
    .expect("no hang");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        validator.validate_async(&t).await.unwrap_err().kind(),
        ErrorKind::KeysUnavailable
    );
    assert!(server.hits(JWKS) >= 1);
}

// ---------------------------------------------------------------------------------------
// rotation

#[tokio::test]
async fn rotation_is_picked_up_by_validate_async_with_one_fetch() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build().await.expect("build");
    assert_eq!(server.hits(JWKS), 1);

    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"]));
    let claims = validator
        .validate_async(&token("ed-1", json!({})))
        .await
        .expect("new key accepted on its first token");
    assert_eq!(claims.client_id(), Some("client-a"));
    assert_eq!(server.hits(JWKS), 2, "exactly one extra fetch");
    assert_eq!(validator.keys().len(), 2);

    // Both keys keep working without further fetches.
    assert!(validator.validate(&token("ed-1", json!({}))).is_ok());
    assert!(validator.validate(&token("ec-1", json!({}))).is_ok());
    assert_eq!(server.hits(JWKS), 2);
}

#[tokio::test]
async fn rotation_is_picked_up_by_the_layer_with_one_fetch() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build().await.expect("build");
    let app = app(&validator);
    assert_accepted(&app, &token("ec-1", json!({}))).await;
    assert_eq!(server.hits(JWKS), 1);

    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"]));
    assert_accepted(&app, &token("ed-1", json!({}))).await;
    assert_eq!(server.hits(JWKS), 2, "exactly one extra fetch");
    assert_accepted(&app, &token("ed-1", json!({}))).await;
    assert_eq!(server.hits(JWKS), 2);
}

#[tokio::test]
async fn removed_key_stops_working_after_refresh() {
    let server = serving(&["ec-1", "ed-1"]).await;
    let validator = remote(&server)
        .refresh_interval(Duration::from_millis(200), Duration::from_millis(200))
        .build()
        .await
        .expect("build");
    assert!(validator.validate(&token("ed-1", json!({}))).is_ok());
    server.json(JWKS, mint::jwks(&["ec-1"]));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        validator
            .validate(&token("ed-1", json!({})))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownKey
    );
    assert!(validator.validate(&token("ec-1", json!({}))).is_ok());
}

#[tokio::test]
async fn rotation_right_after_lazy_start_is_picked_up() {
    // Eager and lazy start-up should behave alike: the first fetch is not one an unknown
    // kid triggered, so it must not use up the unknown-kid budget.
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build_lazy().expect("build_lazy");
    assert!(
        validator
            .validate_async(&token("ec-1", json!({})))
            .await
            .is_ok()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"]));
    let hits = server.hits(JWKS);
    assert!(
        validator
            .validate_async(&token("ed-1", json!({})))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(JWKS), hits + 1);
}

// ---------------------------------------------------------------------------------------
// unknown-kid flood

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_unknown_kids_causes_at_most_one_fetch() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server).build().await.expect("build");
    let app = app(&validator);
    let before = server.hits(JWKS);

    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let app = app.clone();
            let t = forged(&random_kid(i));
            tokio::spawn(async move { send(&app, &t).await })
        })
        .collect();
    let results = tokio::time::timeout(Duration::from_secs(5), async {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("task"));
        }
        out
    })
    .await
    .expect("no request hangs");
    assert_eq!(results.len(), 500);
    for (status, kind, _) in &results {
        assert_eq!(
            (*status, *kind),
            (StatusCode::UNAUTHORIZED, Some(ErrorKind::UnknownKey))
        );
    }
    let delta = server.hits(JWKS) - before;
    assert!(delta <= 1, "{delta} fetches for one flood");

    // A second wave, through validate_async, within the cooldown: no fetch at all.
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let v = validator.clone();
            let t = forged(&random_kid(1000 + i));
            tokio::spawn(async move { v.validate_async(&t).await.map(|_| ()) })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), async {
        for task in tasks {
            let err = task.await.expect("task").expect_err("forged kid");
            assert_eq!(err.kind(), ErrorKind::UnknownKey);
        }
    })
    .await
    .expect("no request hangs");
    assert_eq!(
        server.hits(JWKS) - before,
        delta,
        "fetch within the cooldown"
    );

    // Genuine tokens are unaffected.
    assert_accepted(&app, &token("ec-1", json!({}))).await;
}

#[tokio::test]
async fn unknown_kid_fetches_again_after_the_cooldown() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server)
        .unknown_kid_cooldown(Duration::from_millis(300))
        .build()
        .await
        .expect("build");
    let err = validator
        .validate_async(&forged("nope-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!(server.hits(JWKS), 2);

    // Within the cooldown, even a genuinely new key waits for it.
    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"]));
    let err = validator
        .validate_async(&token("ed-1", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!(server.hits(JWKS), 2);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        validator
            .validate_async(&token("ed-1", json!({})))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(JWKS), 3);
}

// ---------------------------------------------------------------------------------------
// outages

#[tokio::test]
async fn issuer_down_serves_stale_keys_then_503_then_recovers() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server)
        .refresh_interval(Duration::from_millis(200), Duration::from_millis(200))
        .max_staleness(Duration::from_secs(2))
        .build()
        .await
        .expect("build");
    let app = app(&validator);
    // Every `fresh()` token is new (its own `jti`), so no verified-token cache hides the
    // key set's state; see `cached_token_is_refused_after_max_staleness_too` for that.
    let fresh = || token("ec-1", json!({}));
    assert_accepted(&app, &fresh()).await;

    server.set(JWKS, Behaviour::Status(500));
    let down = Instant::now();
    let hits_at_down = server.hits(JWKS);

    // Within max_staleness: the last good set keeps serving, and background refreshes are
    // being tried meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_accepted(&app, &fresh()).await;
    assert!(validator.validate_async(&fresh()).await.is_ok());
    assert!(
        server.hits(JWKS) >= hits_at_down + 2,
        "background refresh retries while the issuer is down"
    );
    // An unknown kid is still the caller's problem (401), not a 503.
    assert_refused(
        &app,
        &forged("nope"),
        StatusCode::UNAUTHORIZED,
        ErrorKind::UnknownKey,
    )
    .await;

    // Beyond max_staleness (last good fetch was at most 200 ms before `down`): 503.
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(down.elapsed())).await;
    assert_refused(
        &app,
        &fresh(),
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::KeysUnavailable,
    )
    .await;
    assert_eq!(
        validator.validate_async(&fresh()).await.unwrap_err().kind(),
        ErrorKind::KeysUnavailable
    );
    assert_eq!(
        validator.validate(&fresh()).unwrap_err().kind(),
        ErrorKind::KeysUnavailable
    );

    // The issuer comes back: the background refresh recovers without any request's help.
    server.json(JWKS, mint::jwks(&["ec-1"]));
    let back = Instant::now();
    loop {
        let (status, _, _) = send(&app, &fresh()).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "not recovered 2 s after the issuer came back (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_accepted(&app, &fresh()).await;
}

#[tokio::test]
async fn cached_token_is_refused_after_max_staleness_too() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server)
        .refresh_interval(Duration::from_millis(200), Duration::from_millis(200))
        .max_staleness(Duration::from_secs(1))
        .build()
        .await
        .expect("build");
    let app = app(&validator);
    // A client reuses its access token on every call.
    let reused = token("ec-1", json!({}));
    assert_accepted(&app, &reused).await;

    server.set(JWKS, Behaviour::Status(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_refused(
        &app,
        &token("ec-1", json!({})),
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::KeysUnavailable,
    )
    .await;
    assert_refused(
        &app,
        &reused,
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::KeysUnavailable,
    )
    .await;
    assert_eq!(
        validator.validate(&reused).unwrap_err().kind(),
        ErrorKind::KeysUnavailable
    );
}

#[tokio::test]
async fn slow_issuer_times_out_and_no_request_hangs() {
    let server = serving(&["ec-1"]).await;
    let validator = remote(&server)
        .timeouts(Duration::from_millis(100), Duration::from_millis(300))
        .build()
        .await
        .expect("build");
    let app = app(&validator);
    server.set(JWKS, Behaviour::Hang);

    let started = Instant::now();
    let unknown: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            let t = forged(&random_kid(i));
            tokio::spawn(async move { send(&app, &t).await })
        })
        .collect();
    let known: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let t = token("ec-1", json!({}));
            tokio::spawn(async move { send(&app, &t).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(2), async {
        for task in unknown {
            let (status, kind, _) = task.await.expect("task");
            assert_eq!(
                (status, kind),
                (StatusCode::UNAUTHORIZED, Some(ErrorKind::UnknownKey))
            );
        }
        for task in known {
            let (status, kind, _) = task.await.expect("task");
            assert_eq!((status, kind), (StatusCode::OK, None));
        }
    })
    .await
    .expect("no request hangs");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(server.hits(JWKS) <= 2, "one on-demand fetch at most");
}

#[tokio::test]
async fn slow_issuer_on_lazy_start_answers_503_within_a_second() {
    let server = JwksServer::start().await;
    server.set(JWKS, Behaviour::Hang);
    let validator = remote(&server).build_lazy().expect("build_lazy");
    let app = app(&validator);
    let started = Instant::now();
    let t = token("ec-1", json!({}));
    tokio::time::timeout(
        Duration::from_secs(2),
        assert_refused(
            &app,
            &t,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::KeysUnavailable,
        ),
    )
    .await
    .expect("no hang");
    // At worst the background refresher's attempt and the request's own, 300 ms each.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// background refresh and Cache-Control

/// Fetches of `/jwks` during `window` after an eager build with these settings.
async fn refreshes(
    cache_control: &str,
    min: Duration,
    max: Duration,
    window: Duration,
    lazy: bool,
) -> usize {
    let server = serving(&["ec-1"]).await;
    server.set_cache_control(JWKS, Some(cache_control));
    let builder = remote(&server).refresh_interval(min, max);
    let validator = if lazy {
        let v = builder.build_lazy().expect("build_lazy");
        assert!(v.validate_async(&token("ec-1", json!({}))).await.is_ok());
        v
    } else {
        builder.build().await.expect("build")
    };
    let before = server.hits(JWKS);
    tokio::time::sleep(window).await;
    let n = server.hits(JWKS) - before;
    drop(validator);
    n
}

#[tokio::test]
async fn background_refresh_follows_max_age_within_bounds() {
    // max-age=1 inside [500 ms, 1 s]: a fetch about every second.
    let n = refreshes(
        "public, max-age=1",
        Duration::from_millis(500),
        Duration::from_secs(1),
        Duration::from_millis(2500),
        false,
    )
    .await;
    assert!((2..=3).contains(&n), "{n} refreshes in 2.5 s");
}

#[tokio::test]
async fn background_refresh_caps_long_max_age_at_the_upper_bound() {
    // max-age=3600 but at most 1 s: still about every second.
    let n = refreshes(
        "max-age=3600",
        Duration::from_millis(500),
        Duration::from_secs(1),
        Duration::from_millis(2500),
        false,
    )
    .await;
    assert!((2..=3).contains(&n), "{n} refreshes in 2.5 s");
}

#[tokio::test]
async fn background_refresh_raises_no_cache_to_the_lower_bound() {
    // no-cache counts as max-age=0; the 1 s lower bound keeps it from hammering the issuer.
    let n = refreshes(
        "no-cache",
        Duration::from_secs(1),
        Duration::from_secs(30),
        Duration::from_millis(2500),
        true,
    )
    .await;
    assert!((1..=3).contains(&n), "{n} refreshes in 2.5 s");
}

#[tokio::test]
async fn background_refresh_follows_max_age_after_lazy_start() {
    // max-age=1 well inside [200 ms, 30 s].
    let n = refreshes(
        "max-age=1",
        Duration::from_millis(200),
        Duration::from_secs(30),
        Duration::from_millis(2500),
        true,
    )
    .await;
    assert!((2..=3).contains(&n), "{n} refreshes in 2.5 s");
}

#[tokio::test]
async fn background_refresh_follows_max_age_of_the_eager_fetch() {
    // Same, after an eager build: the first refresh must follow the build's own response
    // (max-age=1), not the upper bound.
    let n = refreshes(
        "max-age=1",
        Duration::from_millis(200),
        Duration::from_secs(30),
        Duration::from_millis(2500),
        false,
    )
    .await;
    assert!((2..=3).contains(&n), "{n} refreshes in 2.5 s");
}

// ---------------------------------------------------------------------------------------
// discovery

fn discovering(issuer: &str) -> Remote {
    Remote::new(
        Validator::builder().audience(AUDIENCE),
        RemoteKeys::discover(issuer),
    )
}

/// A token from the local issuer `iss`.
fn token_from(iss: &str, kid: &str) -> String {
    token(kid, json!({ "iss": iss }))
}

#[tokio::test]
async fn discovery_prefers_rfc_8414() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.discovery(RFC8414, &base, &server.url("/keys/8414"));
    server.discovery(OIDC, &base, &server.url("/keys/oidc"));
    server.json("/keys/8414", mint::jwks(&["ec-1"]));
    server.json("/keys/oidc", mint::jwks(&["ed-1"]));

    let validator = discovering(&base).build().await.expect("build");
    assert_eq!(validator.issuer(), base);
    assert_eq!(server.hits(RFC8414), 1);
    assert_eq!(server.hits(OIDC), 0);
    assert_eq!(server.hits("/keys/8414"), 1);
    assert_eq!(server.hits("/keys/oidc"), 0);
    assert!(validator.validate(&token_from(&base, "ec-1")).is_ok());
    // The issuer check is exact against the discovered issuer, not the mint default.
    assert_eq!(
        validator
            .validate(&token("ec-1", json!({})))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidIssuer
    );
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration_on_404() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.discovery(OIDC, &base, &server.url("/keys/oidc"));
    server.json("/keys/oidc", mint::jwks(&["ed-1"]));

    let validator = discovering(&base).build().await.expect("build");
    assert_eq!(server.hits(RFC8414), 1, "RFC 8414 tried first");
    assert_eq!(server.hits(OIDC), 1);
    assert_eq!(server.hits("/keys/oidc"), 1);
    assert!(validator.validate(&token_from(&base, "ed-1")).is_ok());
}

#[tokio::test]
async fn discovery_with_issuer_path_uses_both_well_known_forms() {
    let server = JwksServer::start().await;
    let issuer = server.url("/tenant/1");
    // RFC 8414 §3.1: the well-known segment goes between host and path.
    let rfc = format!("{RFC8414}/tenant/1");
    server.discovery(&rfc, &issuer, &server.url(JWKS));
    server.json(JWKS, mint::jwks(&["ec-1"]));
    let validator = discovering(&issuer).build().await.expect("build");
    assert_eq!(server.hits(&rfc), 1);
    assert!(validator.validate(&token_from(&issuer, "ec-1")).is_ok());

    // OIDC appends it to the issuer.
    server.remove(&rfc);
    let oidc = format!("/tenant/1{OIDC}");
    server.discovery(&oidc, &issuer, &server.url(JWKS));
    discovering(&issuer).build().await.expect("build");
    assert_eq!(server.hits(&oidc), 1);
}

#[tokio::test]
async fn discovery_refuses_issuer_mismatch() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.discovery(RFC8414, "https://evil.test", &server.url(JWKS));
    server.json(JWKS, mint::jwks(&["ec-1"]));

    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(reason.contains("issuer"), "{reason}");
    assert!(reason.contains("https://evil.test"), "{reason}");
    assert!(reason.contains(&base), "{reason}");
    assert_eq!(
        server.hits(JWKS),
        0,
        "no key fetched from a mismatched document"
    );

    // A lazy validator refuses with 503, never trusting the document.
    let validator = discovering(&base).build_lazy().expect("build_lazy");
    assert_eq!(
        validator
            .validate_async(&token_from(&base, "ec-1"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::KeysUnavailable
    );
    assert_eq!(server.hits(JWKS), 0);
}

#[tokio::test]
async fn discovery_issuer_trailing_slash_is_a_mismatch() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.json(JWKS, mint::jwks(&["ec-1"]));

    // Configured with a slash, document without.
    server.discovery(RFC8414, &base, &server.url(JWKS));
    let reason = key_fetch_reason(discovering(&format!("{base}/")).build().await);
    assert!(reason.contains("issuer"), "{reason}");

    // Configured without, document with.
    server.discovery(RFC8414, &format!("{base}/"), &server.url(JWKS));
    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(reason.contains("issuer"), "{reason}");

    // Explicit issuer differing from the discovery URL by a slash.
    server.discovery(RFC8414, &base, &server.url(JWKS));
    let result = Remote::new(
        Validator::builder()
            .issuer(format!("{base}/"))
            .audience(AUDIENCE),
        RemoteKeys::discover(&base),
    )
    .build()
    .await;
    assert!(key_fetch_reason(result).contains("issuer"));
    assert_eq!(server.hits(JWKS), 0);
}

#[tokio::test]
async fn discovery_uses_the_documents_jwks_uri_and_reads_it_once() {
    let server = JwksServer::start().await;
    let base = server.base();
    let keys = "/some/other/place/keys.json";
    server.discovery(RFC8414, &base, &server.url(keys));
    server.json(keys, mint::jwks(&["ec-1"]));
    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"])); // a decoy

    let validator = discovering(&base).build().await.expect("build");
    assert_eq!(server.hits(keys), 1);
    assert_eq!(server.hits(JWKS), 0);

    // Rotation fetches the same jwks_uri, without reading the document again.
    server.json(keys, mint::jwks(&["ec-1", "ed-1"]));
    assert!(
        validator
            .validate_async(&token_from(&base, "ed-1"))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(keys), 2);
    assert_eq!(server.hits(RFC8414), 1);
    assert_eq!(server.hits(JWKS), 0);
}

#[tokio::test]
async fn discovery_refuses_insecure_jwks_uri() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.discovery(RFC8414, &base, "http://example.invalid/jwks");
    let started = Instant::now();
    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(reason.contains("http://example.invalid/jwks"), "{reason}");
    // Refused by the scheme rule, not by a failed attempt to reach it.
    assert!(reason.contains("plain-http"), "{reason}");
    assert!(!reason.contains("transport"), "{reason}");
    assert!(started.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn discovery_refuses_document_without_jwks_uri_or_invalid() {
    let server = JwksServer::start().await;
    let base = server.base();
    server.json(RFC8414, json!({ "issuer": base }).to_string());
    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(reason.contains("jwks_uri"), "{reason}");

    server.json(RFC8414, "{\"issuer\": ");
    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(reason.contains("not the JSON expected"), "{reason}");
    assert!(reason.contains(RFC8414), "names the URL: {reason}");
}

// ---------------------------------------------------------------------------------------
// http:// rule

#[tokio::test]
async fn plain_http_to_non_loopback_needs_the_opt_in() {
    let url = "http://issuer.example/jwks";
    let base = |url: &str| {
        Remote::new(
            Validator::builder().issuer(ISSUER).audience(AUDIENCE),
            RemoteKeys::jwks_url(url),
        )
    };

    let err = base(url).build_lazy().unwrap_err();
    assert_eq!(err, ConfigError::InsecureUrl(url.into()));
    let err = base(url).build().await.unwrap_err();
    assert_eq!(err, ConfigError::InsecureUrl(url.into()));
    for other in ["http://10.0.0.1/jwks", "http://127.0.0.1.nip.io/jwks"] {
        assert_eq!(
            base(other).build_lazy().unwrap_err(),
            ConfigError::InsecureUrl(other.into())
        );
    }

    let issuer = "http://issuer.example";
    let err = discovering(issuer).build_lazy().unwrap_err();
    assert_eq!(err, ConfigError::InsecureUrl(issuer.into()));
    let err = discovering(issuer).build().await.unwrap_err();
    assert_eq!(err, ConfigError::InsecureUrl(issuer.into()));

    // With the opt-in both build (lazily: nothing is fetched).
    let v = base(url)
        .allow_insecure_http()
        .build_lazy()
        .expect("opted in");
    assert!(v.keys().is_empty());
    discovering(issuer)
        .allow_insecure_http()
        .build_lazy()
        .expect("opted in");

    // https and loopback http need nothing.
    base("https://issuer.example/jwks")
        .build_lazy()
        .expect("https");
    base("http://localhost:1/jwks")
        .build_lazy()
        .expect("loopback");
    assert!(matches!(
        base("ftp://issuer.example/jwks").build_lazy(),
        Err(ConfigError::InvalidUrl(_))
    ));
}

// ---------------------------------------------------------------------------------------
// key hygiene

/// An RSA encryption key as Keycloak publishes it next to its signing keys.
fn enc_key() -> Value {
    let mut k = mint::jwk("rsa-1");
    k["kid"] = json!("enc-1");
    k["use"] = json!("enc");
    k["alg"] = json!("RSA-OAEP");
    k
}

/// An EC key on a curve this crate does not know.
fn odd_curve_key() -> Value {
    let mut k = mint::jwk("ec-1");
    k["kid"] = json!("odd-1");
    k["crv"] = json!("secp256k1");
    k["alg"] = json!("ES256K");
    k
}

#[tokio::test]
async fn one_bad_key_does_not_break_the_set() {
    let server = JwksServer::start().await;
    let doc = json!({ "keys": [enc_key(), odd_curve_key(), mint::jwk("ec-1")] });
    server.json(JWKS, doc.to_string());
    let validator = remote(&server).build().await.expect("good key serves");
    assert_eq!(validator.keys().len(), 1);
    assert!(validator.validate(&token("ec-1", json!({}))).is_ok());
}

#[tokio::test]
async fn set_without_usable_key_is_refused_and_last_good_set_keeps_serving() {
    let server = JwksServer::start().await;
    let unusable = json!({ "keys": [enc_key(), odd_curve_key()] }).to_string();
    server.json(JWKS, unusable.clone());
    let reason = key_fetch_reason(remote(&server).build().await);
    assert!(reason.contains("no usable key"), "{reason}");
    server.json(JWKS, r#"{"keys":[]}"#);
    let reason = key_fetch_reason(remote(&server).build().await);
    assert!(reason.contains("no usable key"), "{reason}");

    server.json(JWKS, mint::jwks(&["ec-1"]));
    let validator = remote(&server).build().await.expect("build");
    let app = app(&validator);
    server.json(JWKS, unusable);
    let hits = server.hits(JWKS);
    // An unknown kid makes it refetch; the unusable set is refused, the good one stays.
    assert_refused(
        &app,
        &token("ed-1", json!({})),
        StatusCode::UNAUTHORIZED,
        ErrorKind::UnknownKey,
    )
    .await;
    assert_eq!(server.hits(JWKS), hits + 1);
    assert_eq!(validator.keys().len(), 1);
    assert_accepted(&app, &token("ec-1", json!({}))).await;
}

// ---------------------------------------------------------------------------------------
// custom client, redirects

/// A hyper-util client that counts its calls.
#[derive(Clone)]
struct CountingClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    calls: Arc<AtomicUsize>,
}

impl CountingClient {
    fn new() -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = Client::builder(TokioExecutor::new()).build_http();
        (
            CountingClient {
                inner,
                calls: Arc::clone(&calls),
            },
            calls,
        )
    }
}

impl tower::Service<Request<Full<Bytes>>> for CountingClient {
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

#[tokio::test]
async fn custom_http_client_is_used_for_jwks_and_discovery() {
    let server = serving(&["ec-1"]).await;
    let (client, calls) = CountingClient::new();
    let validator = remote(&server)
        .http_client(client)
        .build()
        .await
        .expect("build");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.hits(JWKS), 1);
    server.json(JWKS, mint::jwks(&["ec-1", "ed-1"]));
    assert!(
        validator
            .validate_async(&token("ed-1", json!({})))
            .await
            .is_ok()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let base = server.base();
    server.discovery(RFC8414, &base, &server.url(JWKS));
    let (client, calls) = CountingClient::new();
    discovering(&base)
        .http_client(client)
        .build()
        .await
        .expect("build");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "document and key set");
}

#[tokio::test]
async fn custom_http_client_gets_the_same_limits() {
    let server = JwksServer::start().await;
    server.set(
        JWKS,
        Behaviour::Huge {
            bytes: 5 * MIB,
            declared: false,
        },
    );
    let (client, _) = CountingClient::new();
    let reason = key_fetch_reason(remote(&server).http_client(client).build().await);
    assert!(reason.contains("larger than"), "{reason}");

    server.set(JWKS, Behaviour::Hang);
    let (client, _) = CountingClient::new();
    let started = Instant::now();
    let reason = key_fetch_reason(remote(&server).http_client(client).build().await);
    assert!(reason.contains("no complete answer"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = JwksServer::start().await;
    server.json("/real", mint::jwks(&["ec-1"]));
    server.set(JWKS, Behaviour::Redirect(server.url("/real")));
    let reason = key_fetch_reason(remote(&server).build().await);
    assert!(reason.contains("302"), "{reason}");
    assert!(reason.contains("redirect"), "{reason}");
    assert_eq!(server.hits(JWKS), 1);
    assert_eq!(server.hits("/real"), 0);

    // Same for the discovery document (and no fallback is needed to show it: the OIDC
    // document is absent).
    let base = server.base();
    server.discovery("/elsewhere", &base, &server.url("/real"));
    server.set(RFC8414, Behaviour::Redirect(server.url("/elsewhere")));
    let reason = key_fetch_reason(discovering(&base).build().await);
    assert!(
        reason.contains("302") && reason.contains("redirect"),
        "{reason}"
    );
    assert_eq!(server.hits("/elsewhere"), 0);
}

// ---------------------------------------------------------------------------------------
// refresh whatever the runtime; no scheme downgrade in discovery

/// A runtime of its own for the stand-in issuer, alive for the whole test.
fn issuer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A runtime that the test shuts down (or starts) on purpose.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn refresh_does_not_depend_on_the_runtime_that_built_the_validator() {
    // The issuer runs on a runtime of its own, for the whole test.
    let issuer_runtime = issuer_runtime();
    let server = issuer_runtime.block_on(serving(&["ec-1", "ed-1"]));
    let removed = token("ed-1", json!({}));

    // Built (and used once) on a runtime that is then shut down, as a setup runtime or a
    // `#[tokio::test]` would be: its background refresher dies with it.
    let setup = current_thread();
    let validator = setup.block_on(async {
        let v = remote(&server)
            .refresh_interval(Duration::from_millis(200), Duration::from_millis(200))
            .build()
            .await
            .expect("build");
        assert!(v.validate_async(&removed).await.is_ok());
        v
    });
    drop(setup);

    // The issuer removes the key.
    server.json(JWKS, mint::jwks(&["ec-1"]));
    std::thread::sleep(Duration::from_millis(300));

    // Outside any runtime, a due refresh cannot run: it is said in the log.
    let logs = bearer_guard::testkit::logs::capture();
    let _ = validator.validate(&token("ec-1", json!({})));
    assert!(
        logs.text().contains("refresh_not_running"),
        "{}",
        logs.text()
    );
    drop(logs);

    // Used on another runtime, the validator refreshes there: the removed key stops
    // verifying within a moment, cached tokens included.
    let serving_runtime = current_thread();
    let refused = serving_runtime.block_on(async {
        for _ in 0..40 {
            if validator.validate_async(&removed).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(refused, "a key removed from the JWKS kept verifying");
    let err = serving_runtime
        .block_on(validator.validate_async(&removed))
        .expect_err("removed");
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert!(
        serving_runtime
            .block_on(validator.validate_async(&token("ec-1", json!({}))))
            .is_ok()
    );
    drop(server);
}

#[test]
fn after_an_idle_spell_the_first_request_waits_for_the_overdue_refresh() {
    // The issuer runs on a runtime of its own, for the whole test.
    let issuer_runtime = issuer_runtime();
    let server = issuer_runtime.block_on(serving(&["ec-1", "ed-1"]));
    let removed = token("ed-1", json!({}));
    let kept = token("ec-1", json!({}));

    // Two validators (one asked directly, one behind the layer), built and used on a
    // runtime that is then shut down: no background refresher is left, and the removed
    // key's token is in each verified-token cache.
    let setup = current_thread();
    let (direct, layered) = setup.block_on(async {
        let build = || async {
            remote(&server)
                .refresh_interval(Duration::from_millis(200), Duration::from_millis(200))
                .build()
                .await
                .expect("build")
        };
        let (direct, layered) = (build().await, build().await);
        assert!(direct.validate_async(&removed).await.is_ok());
        assert_accepted(&app(&layered), &removed).await;
        (direct, layered)
    });
    drop(setup);
    assert_eq!(server.hits(JWKS), 2);

    // The issuer removes the key; the process is idle past the refresh time.
    server.json(JWKS, mint::jwks(&["ec-1"]));
    std::thread::sleep(Duration::from_millis(300));

    // Outside any runtime, the overdue set is not used (it cannot be refreshed here).
    let err = direct.validate(&removed).expect_err("overdue set used");
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);

    // The very first request on a new runtime waits for the refresh: refused, cached
    // token or not, by every way in.
    let serving_runtime = current_thread();
    serving_runtime.block_on(async {
        let err = direct
            .validate_async(&removed)
            .await
            .expect_err("removed key");
        assert_eq!(err.kind(), ErrorKind::UnknownKey);
        assert_eq!(server.hits(JWKS), 3, "one refresh for the first request");
        assert!(direct.validate_async(&kept).await.is_ok());
        let app = app(&layered);
        assert_refused(
            &app,
            &removed,
            StatusCode::UNAUTHORIZED,
            ErrorKind::UnknownKey,
        )
        .await;
        assert_eq!(server.hits(JWKS), 4);
        assert_accepted(&app, &kept).await;
    });
    drop(server);
}

#[test]
fn an_overdue_refresh_that_fails_serves_the_old_set_within_max_staleness() {
    let issuer_runtime = issuer_runtime();
    let server = issuer_runtime.block_on(serving(&["ec-1"]));
    let setup = current_thread();
    let validator = setup.block_on(async {
        remote(&server)
            // A retry after a failure comes after `refresh_min`: 1 s, far longer than the
            // two requests below take, however loaded the machine.
            .refresh_interval(Duration::from_secs(1), Duration::from_secs(1))
            .max_staleness(Duration::from_secs(60))
            .build()
            .await
            .expect("build")
    });
    drop(setup);
    // The issuer fails; the set is overdue.
    server.set(JWKS, Behaviour::Status(500));
    std::thread::sleep(Duration::from_millis(1100));
    let serving_runtime = current_thread();
    serving_runtime.block_on(async {
        // The refresh is tried (and fails): the last good set then serves.
        assert!(
            validator
                .validate_async(&token("ec-1", json!({})))
                .await
                .is_ok()
        );
        assert_eq!(server.hits(JWKS), 2);
        // Until the retry, no request fetches again.
        assert!(
            validator
                .validate_async(&token("ec-1", json!({})))
                .await
                .is_ok()
        );
        assert_eq!(server.hits(JWKS), 2);
    });
    drop(server);
}

/// Sends every request to `server`, whatever its scheme and host: an `https://` issuer
/// played by the local plain-http server.
#[derive(Clone)]
struct Rewriting {
    inner: Client<HttpConnector, Full<Bytes>>,
    authority: http::uri::Authority,
}

impl Rewriting {
    fn to(server: &JwksServer) -> Self {
        let base: http::Uri = server.base().parse().expect("base");
        Rewriting {
            inner: Client::builder(TokioExecutor::new()).build_http(),
            authority: base.authority().expect("authority").clone(),
        }
    }
}

impl tower::Service<Request<Full<Bytes>>> for Rewriting {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Full<Bytes>>) -> Self::Future {
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        *request.uri_mut() = http::Uri::from_parts(parts).expect("uri");
        self.inner.request(request)
    }
}

#[tokio::test]
async fn discovery_from_an_https_issuer_refuses_a_plain_http_jwks_uri() {
    let server = serving(&["ec-1"]).await;
    let issuer = "https://issuer.example";
    // An https issuer whose metadata names a plain-http (even loopback) key set.
    server.discovery(RFC8414, issuer, &server.url(JWKS));
    let discover = || RemoteKeys::discover(issuer).http_client(Rewriting::to(&server));
    let reason = key_fetch_reason(
        Remote::new(Validator::builder().audience(AUDIENCE), discover())
            .build()
            .await,
    );
    assert!(reason.contains("plain-http"), "{reason}");
    assert!(
        reason.contains("https://issuer.example/.well-known"),
        "names the URL: {reason}"
    );
    assert_eq!(
        server.hits(JWKS),
        0,
        "the downgraded key set is never fetched"
    );

    // With the explicit opt-in, the document is followed.
    let validator = Remote::new(
        Validator::builder().audience(AUDIENCE),
        discover().allow_insecure_http(),
    )
    .build()
    .await
    .expect("opted in");
    assert_eq!(server.hits(JWKS), 1);
    assert!(
        validator
            .validate_async(&token("ec-1", json!({"iss": issuer})))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn key_fetch_errors_name_the_url_without_credentials() {
    let server = JwksServer::start().await;
    server.set(JWKS, Behaviour::Status(503));
    let reason = key_fetch_reason(remote(&server).build().await);
    assert!(reason.contains(&server.url(JWKS)), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    // Credentials in a configured URL are refused before anything is fetched, and the
    // error does not repeat them.
    let url = server.url(JWKS).replace("http://", "http://user:hunter2@");
    let err = Remote::new(
        Validator::builder().issuer(ISSUER).audience(AUDIENCE),
        RemoteKeys::jwks_url(url),
    )
    .build_lazy()
    .unwrap_err();
    assert!(matches!(err, ConfigError::CredentialsInUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
}
