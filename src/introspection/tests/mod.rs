//! The introspection against a stub HTTP client: the request it sends, single flight,
//! bounded concurrency and pending tokens, failures (503, never cached, logged once per
//! outage) and what never prints; discovery in `discovery.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use tokio::sync::Semaphore;

use super::answer::Unavailable;
use super::*;
use crate::checks::Profile;
use crate::error::BoxError;
use crate::fetch::FetchErrorKind;
use crate::testkit::logs;

mod discovery;

const ENDPOINT: &str = "https://issuer.example/oauth/introspect";
const ISS: &str = "https://issuer.example";
const SECRET: &str = "hunter2-secret";
const TOKEN: &str = "opaque-SECRET-token";

type Answerer = dyn Fn(&str, &str) -> Result<(u16, String), BoxError> + Send + Sync;

/// A stub issuer: answers with `answer(path, form body)`, counts calls and the most in
/// flight at once, and (when gated) holds every call until the gate lets it through.
struct Stub {
    answer: Box<Answerer>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    gate: Option<Arc<Semaphore>>,
    requests: std::sync::Mutex<Vec<Request<Bytes>>>,
}

impl Stub {
    fn new(
        answer: impl Fn(&str, &str) -> Result<(u16, String), BoxError> + Send + Sync + 'static,
    ) -> Arc<Stub> {
        Arc::new(Stub {
            answer: Box::new(answer),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            gate: None,
            requests: std::sync::Mutex::default(),
        })
    }

    fn gated(
        answer: impl Fn(&str, &str) -> Result<(u16, String), BoxError> + Send + Sync + 'static,
    ) -> (Arc<Stub>, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let mut stub = Arc::into_inner(Stub::new(answer)).expect("fresh");
        stub.gate = Some(Arc::clone(&gate));
        (Arc::new(stub), gate)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn respond(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = body.collect().await.expect("infallible").to_bytes();
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("open").forget();
        }
        let form = String::from_utf8(body.to_vec()).expect("utf-8");
        let answer = (self.answer)(parts.uri.path(), &form);
        self.requests
            .lock()
            .expect("lock")
            .push(Request::from_parts(parts, body));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let (status, body) = answer?;
        let mut response = Response::new(Full::from(body).map_err(|e| match e {}).boxed());
        *response.status_mut() = StatusCode::from_u16(status).expect("status");
        Ok(response)
    }
}

/// The stub behind an `Arc`, as a tower service (an [`HttpService`](crate::fetch::HttpService)).
#[derive(Clone)]
struct Client(Arc<Stub>);

impl tower_service::Service<Request<Full<Bytes>>> for Client {
    type Response = Response<BoxBody<Bytes, BoxError>>;
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
        let stub = Arc::clone(&self.0);
        Box::pin(async move { stub.respond(request).await })
    }
}

fn active_body() -> String {
    let exp = crate::checks::now() + 3600;
    format!(
        r#"{{"active":true,"iss":"{ISS}","aud":"https://api.example","client_id":"svc","scope":"read","exp":{exp}}}"#
    )
}

fn always_active() -> Arc<Stub> {
    Stub::new(|_, _| Ok((200, active_body())))
}

fn rules() -> Box<[Checks]> {
    Box::new([Checks::new(
        ISS.into(),
        Box::new(["https://api.example".into()]),
        Duration::from_secs(60),
        Profile::Jwt,
        None,
        false,
    )])
}

fn introspection(
    stub: &Arc<Stub>,
    adjust: impl FnOnce(IntrospectionBuilder) -> IntrospectionBuilder,
) -> Introspection {
    let builder =
        Introspection::builder(ENDPOINT, "api", SECRET).http_client(Client(Arc::clone(stub)));
    adjust(builder).build().expect("valid").bind(rules())
}

fn token(n: usize) -> String {
    format!("token-{n}")
}

#[tokio::test]
async fn sends_the_token_in_a_form_with_basic_authentication_and_maps_the_answer() {
    let stub = always_active();
    let introspection = introspection(&stub, |b| b);
    let Answer::Active(active) = introspection.introspect(TOKEN).await else {
        panic!("not active");
    };
    assert_eq!(active.token.client_id(), Some("svc"));
    assert!(active.token.has_scope("read"));
    let requests = stub.requests.lock().expect("lock");
    let request = &requests[0];
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), ENDPOINT);
    assert_eq!(
        request.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(request.headers()["accept"], "application/json");
    let auth = &request.headers()["authorization"];
    assert!(auth.is_sensitive());
    let pair = base64::engine::general_purpose::STANDARD
        .decode(&auth.as_bytes()["Basic ".len()..])
        .expect("base64");
    assert_eq!(pair, format!("api:{SECRET}").as_bytes());
    assert_eq!(
        &request.body()[..],
        format!("token={TOKEN}&token_type_hint=access_token").as_bytes()
    );
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_one_new_token_make_one_request() {
    let (stub, gate) = Stub::gated(|_, _| Ok((200, active_body())));
    let introspection = introspection(&stub, |b| b);
    assert!(introspection.cached(TOKEN, crate::checks::now()).is_none());
    // The flight is joined when `introspect` is called, before the futures are polled.
    let waiting: Vec<_> = (0..100)
        .map(|_| tokio::spawn(introspection.introspect(TOKEN)))
        .collect();
    gate.add_permits(1000);
    for answer in waiting {
        assert!(matches!(answer.await.expect("task"), Answer::Active(_)));
    }
    assert_eq!(stub.calls(), 1);
    // And then it is cached.
    assert!(matches!(
        introspection.cached(TOKEN, crate::checks::now()),
        Some(Answer::Active(_))
    ));
    assert!(matches!(
        introspection.introspect(TOKEN).await,
        Answer::Active(_)
    ));
    assert_eq!(stub.calls(), 1);
    assert_eq!(introspection.cache_usage().0, 1);
}

#[tokio::test]
async fn at_most_max_concurrent_requests_are_in_flight() {
    let (stub, gate) = Stub::gated(|_, _| Ok((200, active_body())));
    let introspection = introspection(&stub, |b| b.max_concurrent(3));
    let waiting: Vec<_> = (0..20)
        .map(|n| tokio::spawn(introspection.introspect(&token(n))))
        .collect();
    // Three reach the endpoint; the others wait for a slot, however long we wait.
    while stub.in_flight.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stub.calls(), 3);
    gate.add_permits(1000);
    for answer in waiting {
        assert!(matches!(answer.await.expect("task"), Answer::Active(_)));
    }
    assert_eq!(stub.calls(), 20);
    assert_eq!(stub.most.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn tokens_beyond_max_pending_get_overloaded_at_once() {
    let (stub, gate) = Stub::gated(|_, _| Ok((200, active_body())));
    let introspection = introspection(&stub, |b| b.max_pending(2));
    let first = tokio::spawn(introspection.introspect(&token(1)));
    let second = tokio::spawn(introspection.introspect(&token(2)));
    // A third token waits for nothing; the same tokens still join their flights.
    let third = introspection.introspect(&token(3)).await;
    assert!(
        matches!(third, Answer::Unavailable(Unavailable::Overloaded)),
        "{third:?}"
    );
    let again = tokio::spawn(introspection.introspect(&token(1)));
    gate.add_permits(10);
    for answer in [first, second, again] {
        assert!(matches!(answer.await.expect("task"), Answer::Active(_)));
    }
    assert_eq!(stub.calls(), 2);
}

#[tokio::test]
async fn inactive_answers_are_cached_briefly_failures_not_at_all() {
    let stub = Stub::new(|_, form| {
        if form.contains("inactive") {
            Ok((200, r#"{"active":false}"#.into()))
        } else {
            Err(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))
        }
    });
    let negative_ttl = Duration::from_secs(1);
    let introspection = introspection(&stub, |b| b.negative_ttl(negative_ttl));
    assert!(matches!(
        introspection.introspect("inactive").await,
        Answer::Inactive
    ));
    assert!(matches!(
        introspection.introspect("inactive").await,
        Answer::Inactive
    ));
    assert_eq!(stub.calls(), 1);
    tokio::time::sleep(negative_ttl + Duration::from_millis(50)).await;
    assert!(
        introspection
            .cached("inactive", crate::checks::now())
            .is_none()
    );
    assert!(matches!(
        introspection.introspect("inactive").await,
        Answer::Inactive
    ));
    assert_eq!(stub.calls(), 2);

    for expected_calls in [3, 4] {
        let answer = introspection.introspect("down").await;
        assert!(
            matches!(
                answer,
                Answer::Unavailable(Unavailable::Fetch(FetchErrorKind::Connect))
            ),
            "{answer:?}"
        );
        assert_eq!(stub.calls(), expected_calls, "failures are never cached");
    }
}

#[tokio::test]
async fn failures_are_logged_once_per_outage_without_token_secret_or_body() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let state = Arc::clone(&up);
    let stub = Stub::new(move |_, _| {
        if state.load(Ordering::SeqCst) {
            Ok((200, r#"{"active":false,"note":"BODY-SECRET"}"#.into()))
        } else {
            Ok((500, "BODY-SECRET".into()))
        }
    });
    let introspection = introspection(&stub, |b| b);
    let logs = logs::capture();
    for n in 0..3 {
        let answer = introspection.introspect(&format!("{TOKEN}-{n}")).await;
        assert!(matches!(
            answer,
            Answer::Unavailable(Unavailable::Fetch(FetchErrorKind::Status(_)))
        ));
    }
    up.store(true, Ordering::SeqCst);
    assert!(matches!(
        introspection.introspect(TOKEN).await,
        Answer::Inactive
    ));
    let text = logs.text();
    assert_eq!(text.matches("WARN").count(), 1, "{text}");
    assert!(text.contains("reason=\"http_status\""), "{text}");
    assert!(text.contains(ENDPOINT), "{text}");
    assert!(text.contains("reason=\"recovered\""), "{text}");
    for secret in ["SECRET", "hunter2"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!format!("{introspection:?}").contains("hunter2"));
}

#[tokio::test]
async fn what_the_endpoint_failures_say() {
    let cases: [(u16, &str, &str); 3] = [
        (401, r#"{"error":"invalid_client"}"#, "client_refused"),
        (200, "<html>SECRET</html>", "invalid_response"),
        (200, r#"{"active":"yes"}"#, "invalid_response"),
    ];
    for (status, body, reason) in cases {
        let stub = Stub::new(move |_, _| Ok((status, body.into())));
        let introspection = introspection(&stub, |b| b);
        let logs = logs::capture();
        let Answer::Unavailable(why) = introspection.introspect(TOKEN).await else {
            panic!("{body}");
        };
        assert_eq!(why.reason(), reason);
        let text = logs.text();
        assert!(text.contains(&format!("reason=\"{reason}\"")), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_endpoint_times_out() {
    let (stub, _closed) = Stub::gated(|_, _| Ok((200, active_body())));
    let introspection = introspection(&stub, |b| {
        b.timeouts(Duration::from_secs(1), Duration::from_secs(3))
    });
    let answer = introspection.introspect(TOKEN).await;
    assert!(
        matches!(
            answer,
            Answer::Unavailable(Unavailable::Fetch(FetchErrorKind::Timeout))
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_client_that_fails_is_unavailable_and_says_why() {
    let failing = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, BoxError>("the proxy refused the connection".into())
    });
    let introspection = Introspection::builder(ENDPOINT, "api", SECRET)
        .http_client(failing)
        .build()
        .expect("valid")
        .bind(rules());
    let logs = logs::capture();
    let answer = introspection.introspect(TOKEN).await;
    assert!(
        matches!(answer, Answer::Unavailable(Unavailable::Fetch(_))),
        "{answer:?}"
    );
    assert!(
        logs.text().contains("the proxy refused the connection"),
        "{}",
        logs.text()
    );
}

#[test]
fn without_a_runtime_the_answer_is_unavailable() {
    let stub = always_active();
    let introspection = introspection(&stub, |b| b);
    let future = introspection.introspect(TOKEN);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let answer = runtime.block_on(future);
    assert!(
        matches!(answer, Answer::Unavailable(Unavailable::NoRuntime)),
        "{answer:?}"
    );
    assert_eq!(stub.calls(), 0);
}
