//! Token introspection (RFC 7662) against the companion issuer, started in-process, over real
//! sockets: opaque tokens accepted with their claims, a revoked token refused after at most
//! the ttl, one introspection for a hundred concurrent requests with one new token, the
//! endpoint down (503, never 401), and mixed mode.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use issuer_server::{API, OTHER_API, RS_SECRET, SVC_SECRET, Server};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bearer_guard::introspection::Introspection;
use bearer_guard::testkit::introspection::{self as probe, Outcome};
use bearer_guard::testkit::logs;
use http::Request;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::TokenFormat;
use tokio::sync::Semaphore;
use tower::BoxError;

async fn opaque() -> Server {
    Server::start_with(|config| config.token_format = TokenFormat::Opaque).await
}

fn endpoint(server: &Server) -> String {
    format!("{}/oauth/introspect", server.base)
}

/// The resource server `rs` introspecting at `server`, checking answers as a validator for
/// the issuer and `audience` would.
fn introspection(
    server: &Server,
    audience: &str,
    adjust: impl FnOnce(
        bearer_guard::introspection::IntrospectionBuilder,
    ) -> bearer_guard::introspection::IntrospectionBuilder,
) -> Introspection {
    let built = adjust(Introspection::builder(endpoint(server), "rs", RS_SECRET))
        .build()
        .expect("valid");
    probe::bind(&built, server.iss(), audience)
}

/// A plain hyper client over real sockets that counts the introspection requests it sends,
/// and holds them until its gate opens.
#[derive(Clone)]
struct Counting {
    http: Client<HttpConnector, Full<Bytes>>,
    forms: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            http: Client::builder(TokioExecutor::new()).build_http(),
            forms: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl tower::Service<Request<Full<Bytes>>> for Counting {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        if request.method() == http::Method::POST {
            self.forms.fetch_add(1, Ordering::SeqCst);
        }
        let http = self.http.clone();
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            gate.acquire().await.map_err(Box::new)?.forget();
            Ok(http.request(request).await?)
        })
    }
}

#[tokio::test]
async fn an_opaque_token_is_active_with_its_claims() {
    let server = opaque().await;
    let token = server
        .basic(
            "svc",
            SVC_SECRET,
            "grant_type=client_credentials&scope=read+write",
        )
        .await
        .assert_token();
    let introspection = introspection(&server, API, |b| b);
    let Outcome::Active {
        token: verified,
        json,
        claims,
    } = probe::introspect(&introspection, &token).await
    else {
        panic!("not active");
    };
    assert_eq!(verified.issuer(), server.iss());
    assert_eq!(verified.client_id(), Some("svc"));
    assert_eq!(verified.subject(), Some("svc"));
    assert_eq!(verified.scopes().collect::<Vec<_>>(), ["read", "write"]);
    assert!(verified.jti().is_some_and(|j| !j.is_empty()));
    let iat = verified.issued_at().expect("iat");
    assert_eq!(verified.expires_at() - iat, 3600);
    // The same claims a JWT of this issuer would give.
    assert_eq!(claims.0.iss, server.iss());
    assert!(claims.0.aud.contains(API));
    assert_eq!(claims.0.scope.as_deref(), Some("read write"));
    assert_eq!(json["active"], true);
    // Cached now: no second request.
    assert!(probe::cached(&introspection, &token).is_some_and(|o| o.is_active()));
}

#[tokio::test]
async fn the_endpoint_is_found_by_discovery() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    let discovered = Introspection::discover(&server.base, "rs", RS_SECRET)
        .build()
        .expect("valid");
    discovered.ready().await.expect("metadata");
    assert!(format!("{discovered:?}").contains("/oauth/introspect"));
    let bound = probe::bind(&discovered, server.iss(), API);
    assert!(probe::introspect(&bound, &token).await.is_active());
}

#[tokio::test]
async fn answers_for_another_audience_or_unknown_tokens_are_refused() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    // `rs` may see the token, but this API is another audience.
    let elsewhere = introspection(&server, OTHER_API, |b| b);
    let outcome = probe::introspect(&elsewhere, &token).await;
    assert!(
        matches!(&outcome, Outcome::Refused(e) if e.kind() == bearer_guard::ErrorKind::InvalidAudience),
        "{outcome:?}"
    );
    let introspection = introspection(&server, API, |b| b);
    for unknown in ["nope", &"x".repeat(43)] {
        let outcome = probe::introspect(&introspection, unknown).await;
        assert!(matches!(outcome, Outcome::Inactive), "{outcome:?}");
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_after_at_most_the_ttl() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    let ttl = Duration::from_secs(2);
    let introspection = introspection(&server, API, |b| b.ttl(ttl));
    assert!(probe::introspect(&introspection, &token).await.is_active());
    server
        .basic_to(
            "/oauth/revoke",
            "svc",
            SVC_SECRET,
            &format!("token={token}"),
        )
        .await
        .assert_revoke_ok();
    // The documented staleness: the cached answer still stands, for at most the ttl.
    assert!(probe::cached(&introspection, &token).is_some_and(|o| o.is_active()));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(probe::cached(&introspection, &token).is_none());
    let outcome = probe::introspect(&introspection, &token).await;
    assert!(matches!(outcome, Outcome::Inactive), "{outcome:?}");
    // And that answer is cached in turn.
    assert!(matches!(
        probe::cached(&introspection, &token),
        Some(Outcome::Inactive)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_with_one_new_token_make_one_introspection() {
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    let client = Counting::new();
    let introspection = introspection(&server, API, |b| b.http_client(client.clone()));
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let introspection = introspection.clone();
            let token = token.clone();
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                // Counted in the same poll that joins (or starts) the flight.
                started.fetch_add(1, Ordering::SeqCst);
                probe::introspect(&introspection, &token).await
            })
        })
        .collect();
    // Every request waits for the endpoint's answer before any arrives.
    while started.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.gate.add_permits(1000);
    for task in tasks {
        assert!(task.await.expect("task").is_active());
    }
    assert_eq!(client.forms.load(Ordering::SeqCst), 1);
    // Another new token is another request.
    let other = server.token("svc", SVC_SECRET).await;
    assert!(probe::introspect(&introspection, &other).await.is_active());
    assert_eq!(client.forms.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_endpoint_that_is_down_or_refuses_us_is_unavailable_never_inactive() {
    let logs = logs::capture();
    // Nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let down = Introspection::builder(
        format!("http://127.0.0.1:{port}/oauth/introspect"),
        "rs",
        RS_SECRET,
    )
    .build()
    .expect("valid");
    let down = probe::bind(&down, "http://127.0.0.1", API);
    let outcome = probe::introspect(&down, "some-token-SECRET").await;
    assert!(
        matches!(outcome, Outcome::Unavailable("connect")),
        "{outcome:?}"
    );
    assert!(probe::cached(&down, "some-token-SECRET").is_none());

    // It accepts connections but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/oauth/introspect",
        silent.local_addr().expect("addr")
    );
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let slow = Introspection::builder(url, "rs", RS_SECRET)
        .timeouts(Duration::from_secs(1), Duration::from_millis(300))
        .build()
        .expect("valid");
    let slow = probe::bind(&slow, "http://127.0.0.1", API);
    let outcome = probe::introspect(&slow, "some-token-SECRET").await;
    assert!(
        matches!(outcome, Outcome::Unavailable("timeout")),
        "{outcome:?}"
    );
    held.abort();

    // A wrong client secret: the endpoint answers 401, which is ours, not the token's.
    let server = opaque().await;
    let token = server.token("svc", SVC_SECRET).await;
    let refused = Introspection::builder(endpoint(&server), "rs", "wrong-SECRET")
        .build()
        .expect("valid");
    let refused = probe::bind(&refused, server.iss(), API);
    let outcome = probe::introspect(&refused, &token).await;
    assert!(
        matches!(outcome, Outcome::Unavailable("client_refused")),
        "{outcome:?}"
    );

    let text = logs.text();
    for reason in ["connect", "timeout", "client_refused"] {
        assert!(text.contains(&format!("reason=\"{reason}\"")), "{text}");
    }
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains(&token), "{text}");
}

#[tokio::test]
async fn mixed_mode_verifies_jwts_of_the_issuer_locally_and_introspects_the_rest() {
    let jwt_server = Server::start().await;
    let jwt = jwt_server.token("svc", SVC_SECRET).await;
    assert!(probe::is_local_jwt(&jwt, jwt_server.iss()));
    assert!(!probe::is_local_jwt(&jwt, "https://another.issuer"));
    let server = opaque().await;
    let opaque = server.token("svc", SVC_SECRET).await;
    assert!(!probe::is_local_jwt(&opaque, server.iss()));
    // A JWT of the issuer can be introspected too (the issuer knows it), when it must.
    let introspection = introspection(&jwt_server, API, |b| b);
    assert!(probe::introspect(&introspection, &jwt).await.is_active());
}
