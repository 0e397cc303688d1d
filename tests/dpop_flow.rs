//! DPoP end to end, over real sockets: the companion issuer (`examples/issuer/`), a
//! protected API (axum + `RequireScope` with DPoP), and a hyper-util client wrapped in
//! `AddAccessTokenLayer` with a DPoP key. The issuer binds the token to the client's key; the
//! bound token works with the client's fresh proofs, and is worthless to whoever captured
//! it: as `Bearer`, with the proof sent to another URL, with the proof replayed, or with a
//! proof of another key. Nonces, the API's and the issuer's, cost one retry each.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request as AxumRequest, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response as AxumResponse;
use axum::routing::get;
use bearer_guard::client::{AddAccessTokenLayer, BoxError, ClientCredentials};
use bearer_guard::dpop::{Dpop, DpopKey};
use bearer_guard::{AccessClaims, Claims, Guard, KeySet, RequireScope, Validator};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer_server::{API, SVC_SECRET, Server, claims};
use tower::ServiceExt as _;
use tower::util::MapRequestLayer;

type Http = Client<HttpConnector, Full<Bytes>>;

/// What the API saw.
#[derive(Default)]
struct Seen {
    /// Requests per path, whatever their outcome.
    hits: Mutex<HashMap<String, usize>>,
    /// The `Authorization` and `DPoP` headers of the last request: what an eavesdropper at
    /// the API (or a log of it) would have.
    last: Mutex<Option<(String, String)>>,
}

impl Seen {
    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn last(&self) -> (String, String) {
        self.last.lock().expect("lock").clone().expect("a request")
    }
}

async fn watch(State(seen): State<Arc<Seen>>, req: AxumRequest, next: Next) -> AxumResponse {
    *seen
        .hits
        .lock()
        .expect("lock")
        .entry(req.uri().path().to_owned())
        .or_default() += 1;
    let headers = req.headers();
    let header = |name| {
        headers
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().expect("ascii").to_owned())
    };
    if let (Some(auth), Some(proof)) = (header(AUTHORIZATION.as_str()), header("dpop")) {
        *seen.last.lock().expect("lock") = Some((auth, proof));
    }
    next.run(req).await
}

async fn client_id(claims: Claims<AccessClaims>) -> String {
    claims.client_id().unwrap_or_default().to_owned()
}

struct World {
    issuer: Server,
    /// `http://127.0.0.1:<port>` of the API.
    api: String,
    seen: Arc<Seen>,
}

/// The issuer (`adjust`ed) and the API: `/data` and `/other` accept DPoP (and plain Bearer
/// tokens), `/nonce/data` requires DPoP with nonces.
async fn start(adjust: impl FnOnce(&mut issuer::Config)) -> World {
    let issuer = Server::start_with(adjust).await;
    let validator = Validator::builder()
        .issuer(issuer.iss())
        .audience(API)
        .keys(KeySet::from_jwks_json(issuer.issuer.jwks_json().as_bytes()).expect("jwks"))
        .build()
        .expect("validator");
    let (listener, addr) = issuer_server::bind().await;
    let api = format!("http://{addr}");
    let dpop = Dpop::builder()
        .external_origin(api.clone())
        .build()
        .expect("dpop");
    let guard = Guard::new(&validator).dpop(dpop);
    let with_nonces = Dpop::builder()
        .external_origin(api.clone())
        .nonces([7u8; 32], Duration::from_secs(60))
        .build()
        .expect("dpop");
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/data",
            get(client_id).layer(RequireScope::all(&guard, ["read"]).expect("scope")),
        )
        .route(
            "/other",
            get(client_id).layer(RequireScope::all(&guard, ["read"]).expect("scope")),
        )
        .route(
            "/nonce/data",
            get(client_id).layer(
                RequireScope::all(&validator, ["read"])
                    .expect("scope")
                    .require_dpop(with_nonces),
            ),
        )
        .layer(from_fn_with_state(Arc::clone(&seen), watch));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve api") });
    World { issuer, api, seen }
}

impl World {
    /// The calling side: `svc`'s client-credentials layer with `key`, around a hyper-util
    /// client that counts the token requests.
    fn caller(
        &self,
        key: &DpopKey,
    ) -> (
        impl tower::Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>
        + Clone
        + std::fmt::Debug
        + use<>,
        Arc<AtomicUsize>,
    ) {
        let credentials = ClientCredentials::builder(
            format!("{}{}", self.issuer.base, issuer::TOKEN_PATH),
            "svc",
            SVC_SECRET,
        )
        .resource(API)
        .build()
        .expect("credentials");
        let layer = AddAccessTokenLayer::builder(credentials)
            .allow_origin(self.api.clone())
            .dpop(key.clone())
            .build()
            .expect("layer");
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&token_requests);
        let count = MapRequestLayer::new(move |req: Request<Full<Bytes>>| {
            if req.uri().path() == issuer::TOKEN_PATH {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            req
        });
        let http = tower::Layer::layer(&count, http());
        (tower::Layer::layer(&layer, http), token_requests)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }
}

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    async fn of(res: Response<Incoming>) -> Answer {
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    fn challenges(&self) -> Vec<&str> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    /// The challenge of `scheme` (`Bearer `, `DPoP `), which must be there.
    fn challenge(&self, scheme: &str) -> &str {
        let all = self.challenges();
        all.iter()
            .find(|c| c.starts_with(scheme))
            .copied()
            .unwrap_or_else(|| panic!("no {scheme}challenge in {all:?}"))
    }
}

async fn call<S>(svc: &S, url: &str) -> Answer
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>
        + Clone,
{
    let req = Request::get(url).body(Full::default()).expect("request");
    Answer::of(svc.clone().oneshot(req).await.expect("call")).await
}

/// A request by hand, with these headers: what a thief can send.
async fn send_raw(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::default()).expect("request");
    Answer::of(http().request(req).await.expect("request")).await
}

#[tokio::test]
async fn the_bound_token_works_with_fresh_proofs_and_is_worthless_without_the_key() {
    let world = start(|_| {}).await;
    let key = DpopKey::generate().expect("key");
    let (svc, token_requests) = world.caller(&key);
    let data = world.url("/data");

    for _ in 0..2 {
        let ok = call(&svc, &data).await;
        assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "svc"));
    }
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    let (auth, proof) = world.seen.last();
    let token = auth.strip_prefix("DPoP ").expect("the DPoP scheme");
    let claims = claims(token);
    assert_eq!(
        claims["cnf"]["jkt"],
        key.thumbprint(),
        "bound to the client's key"
    );

    // The captured request, replayed as it was.
    let replayed = send_raw(&data, &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert!(
        replayed
            .challenge("DPoP ")
            .starts_with(r#"DPoP error="invalid_dpop_proof""#)
    );
    // The token as a Bearer token.
    let bearer = send_raw(&data, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bearer.challenge("Bearer "),
        r#"Bearer error="invalid_token""#
    );
    // The proof, sent to another URL of the same API.
    let elsewhere = send_raw(
        &world.url("/other"),
        &[("authorization", &auth), ("dpop", &proof)],
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);
    assert!(
        elsewhere
            .challenge("DPoP ")
            .starts_with(r#"DPoP error="invalid_dpop_proof""#)
    );
    // A fresh proof of the thief's own key.
    let thief = DpopKey::generate().expect("key");
    let theirs = thief
        .proof(&Method::GET, &data)
        .access_token(token)
        .sign()
        .expect("proof");
    let stolen = send_raw(&data, &[("authorization", &auth), ("dpop", &theirs)]).await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert!(
        stolen
            .challenge("DPoP ")
            .starts_with(r#"DPoP error="invalid_token""#)
    );
    // The client itself still gets through, with its own fresh proofs.
    let ok = call(&svc, &world.url("/other")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_api_that_requires_nonces_costs_one_retry_then_none() {
    let world = start(|_| {}).await;
    let key = DpopKey::generate().expect("key");
    let (svc, token_requests) = world.caller(&key);
    let url = world.url("/nonce/data");

    let first = call(&svc, &url).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "svc"));
    assert_eq!(
        world.seen.hits("/nonce/data"),
        2,
        "refused once for the nonce"
    );
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        1,
        "the token was kept"
    );
    let second = call(&svc, &url).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        world.seen.hits("/nonce/data"),
        3,
        "the nonce was remembered"
    );

    // Without the nonce, the API says so, with one to use.
    let (auth, _) = world.seen.last();
    let token = auth.strip_prefix("DPoP ").expect("DPoP");
    let proof = key
        .proof(&Method::GET, &url)
        .access_token(token)
        .sign()
        .expect("proof");
    let refused = send_raw(&url, &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .challenge("DPoP ")
            .starts_with(r#"DPoP error="use_dpop_nonce""#)
    );
    assert!(refused.headers.contains_key("dpop-nonce"));
}

#[tokio::test]
async fn an_issuer_that_requires_nonces_costs_one_retry_of_the_token_request() {
    let world = start(|config| config.dpop_nonces = true).await;
    let key = DpopKey::generate().expect("key");
    let (svc, token_requests) = world.caller(&key);
    let ok = call(&svc, &world.url("/data")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        2,
        "refused once for the nonce"
    );
    let (auth, _) = world.seen.last();
    let token = auth.strip_prefix("DPoP ").expect("DPoP");
    assert_eq!(claims(token)["cnf"]["jkt"], key.thumbprint());
}

#[tokio::test]
async fn logs_hold_no_token_and_no_proof() {
    let logs = bearer_guard::testkit::logs::capture();
    let world = start(|config| config.dpop_nonces = true).await;
    let key = DpopKey::generate().expect("key");
    let (svc, _) = world.caller(&key);
    assert_eq!(
        call(&svc, &world.url("/nonce/data")).await.status,
        StatusCode::OK
    );
    let (auth, proof) = world.seen.last();
    let token = auth.strip_prefix("DPoP ").expect("DPoP");
    let text = logs.text();
    assert!(text.contains("access token obtained"), "{text}");
    assert!(text.contains("use_dpop_nonce"), "{text}");
    for secret in [token, proof.as_str(), SVC_SECRET] {
        // Each proof and token is long and random: any 20 characters of it would do.
        assert!(!text.contains(&secret[secret.len() - 20..]), "{text}");
    }
    assert!(!format!("{svc:?}").contains(&proof[proof.len() - 20..]));
}
