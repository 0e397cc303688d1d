//! `RedisRevocations` (feature `redis`) against a real `redis-server` that each test starts on
//! a free loopback port: a revocation written by one replica is seen by another, key TTLs
//! follow the token's remaining life, Redis going away fails requests closed (503 with
//! `Retry-After`) or open as configured and recovers when it comes back, and the memo keeps
//! Redis off the hot path.
//!
//! Without a `redis-server` binary the tests print a loud message and pass, except under CI
//! (env `CI` set), where they fail: CI never skips them.
#![cfg(feature = "redis")]

use bearer_guard::testkit as mint;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bearer_guard::revocation::{RedisRevocations, RevocationFuture, Revocations};
use bearer_guard::{AuthError, ErrorKind, RequireScope, Validator};
use http::{Request, Response, StatusCode};
use mint::{ISSUER, claims_of, now, token};
use serde_json::json;
use tower::{Layer as _, ServiceExt as _, service_fn};

/// How long one request may take while Redis is down (the store's timeouts are 500 ms).
const BOUNDED: Duration = Duration::from_secs(2);

use bearer_guard::testkit::redis as redis_server;
use redis_server::{RedisServer, ping};

/// Starts a server for the test, or returns from it (skip) when no binary exists.
macro_rules! redis_or_skip {
    () => {
        match RedisServer::start().await {
            Some(server) => server,
            None => return,
        }
    };
}

/// A plain connection, to look at what the store wrote.
async fn inspect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn connect(server: &RedisServer) -> RedisRevocations {
    RedisRevocations::connect(&server.url())
        .await
        .expect("RedisRevocations::connect")
}

// ---------------------------------------------------------------------------------------------
// Validators and requests

fn builder(store: Arc<dyn Revocations>, memo: Duration) -> bearer_guard::ValidatorBuilder {
    mint::builder().revocation(store).revocation_memo(memo)
}

fn validator(store: Arc<dyn Revocations>, memo: Duration) -> Validator {
    builder(store, memo).build().expect("validator")
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: StatusCode,
    kind: Option<ErrorKind>,
    retry_after: Option<String>,
}

/// One request through `RequireScope::authenticated(v)`.
async fn send(v: &Validator, token: &str) -> Outcome {
    let svc = RequireScope::authenticated(v).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let req = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    let res = svc.oneshot(req).await.expect("infallible");
    Outcome {
        status: res.status(),
        kind: res.extensions().get::<AuthError>().map(AuthError::kind),
        retry_after: res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_owned()),
    }
}

/// As [`send`], failing when the answer takes longer than [`BOUNDED`].
async fn send_bounded(v: &Validator, token: &str) -> Outcome {
    let started = Instant::now();
    let outcome = tokio::time::timeout(BOUNDED, send(v, token))
        .await
        .unwrap_or_else(|_| panic!("no answer within {BOUNDED:?}"));
    assert!(started.elapsed() < BOUNDED);
    outcome
}

fn ok() -> Outcome {
    Outcome {
        status: StatusCode::OK,
        kind: None,
        retry_after: None,
    }
}

fn revoked() -> Outcome {
    Outcome {
        status: StatusCode::UNAUTHORIZED,
        kind: Some(ErrorKind::Revoked),
        retry_after: None,
    }
}

#[track_caller]
fn assert_fails_closed(outcome: &Outcome) {
    assert_eq!(
        outcome.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.kind,
        Some(ErrorKind::RevocationUnavailable),
        "{outcome:?}"
    );
    let retry: u64 = outcome
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{outcome:?}");
}

fn jti_of(token: &str) -> String {
    claims_of(token)["jti"].as_str().expect("jti").to_owned()
}

fn exp_of(token: &str) -> i64 {
    claims_of(token)["exp"].as_i64().expect("exp")
}

/// The key `RedisRevocations` writes for a token (default prefix).
fn key_of(token: &str) -> String {
    format!("bearer-guard:revoked:{ISSUER}#{}", jti_of(token))
}

async fn revoke(store: &dyn Revocations, token: &str) {
    store
        .revoke(ISSUER, &jti_of(token), exp_of(token))
        .await
        .expect("revoke");
}

/// A store that counts the questions it passes on to Redis.
struct Counting {
    inner: RedisRevocations,
    lookups: AtomicUsize,
}

impl Revocations for Counting {
    fn is_revoked<'a>(&'a self, issuer: &'a str, jti: &'a str) -> RevocationFuture<'a, bool> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.is_revoked(issuer, jti)
    }

    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: i64,
    ) -> RevocationFuture<'a, ()> {
        self.inner.revoke(issuer, jti, expires_at)
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn revoked_through_one_replica_is_refused_by_another() {
    let redis = redis_or_skip!();
    // Two replicas, each with its own connection to the shared Redis.
    let store_a = Arc::new(connect(&redis).await);
    let store_b = Arc::new(connect(&redis).await);
    let a = validator(store_a.clone(), Duration::ZERO);
    let memo = Duration::from_millis(200);
    let b = validator(store_b.clone(), memo);

    let t = token("ec-1", json!({}));
    let other = token("ec-1", json!({}));
    assert_eq!(send(&a, &t).await, ok());
    assert_eq!(send(&b, &t).await, ok());
    assert_eq!(send(&b, &other).await, ok());

    revoke(&*store_a, &t).await;
    assert!(
        store_b
            .is_revoked(ISSUER, &jti_of(&t))
            .await
            .expect("ask B")
    );
    // A asks on every request; B once its memo of the earlier "not revoked" runs out.
    assert_eq!(send(&a, &t).await, revoked());
    tokio::time::sleep(memo + Duration::from_millis(50)).await;
    assert_eq!(send(&b, &t).await, revoked());
    assert_eq!(
        b.validate_async(&t).await.expect_err("revoked").kind(),
        ErrorKind::Revoked
    );
    // The same client's other token, and the same jti at another issuer, are unaffected.
    assert_eq!(send(&a, &other).await, ok());
    assert_eq!(send(&b, &other).await, ok());
    assert!(
        !store_b
            .is_revoked("https://other-issuer.test", &jti_of(&t))
            .await
            .expect("ask")
    );
    // A replica started after the revocation refuses the token from its first request.
    let c = validator(Arc::new(connect(&redis).await), Duration::from_secs(60));
    assert_eq!(send(&c, &t).await, revoked());
}

#[tokio::test]
async fn the_key_lives_as_long_as_the_token() {
    let redis = redis_or_skip!();
    let store = connect(&redis).await;
    let mut conn = inspect(&redis).await;

    let t = token("ec-1", json!({ "exp": now() + 600 }));
    revoke(&store, &t).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(key_of(&t))
        .query_async(&mut conn)
        .await
        .expect("TTL");
    // The token's remaining life plus the largest leeway a validator may grant (300 s).
    assert!((898..=900).contains(&ttl), "TTL {ttl}, expected ~600 + 300");

    // A token past `exp` and past any leeway: nothing to remember, nothing written.
    for exp in [now() - 3600, now() - 301] {
        let expired = token("ec-1", json!({ "exp": exp }));
        store
            .revoke(ISSUER, &jti_of(&expired), exp)
            .await
            .expect("revoke expired");
        let exists: bool = redis::cmd("EXISTS")
            .arg(key_of(&expired))
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(!exists, "a key was written for exp = now {:+}", exp - now());
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(keys, [key_of(&t)]);
}

#[tokio::test]
async fn a_revocation_disappears_with_its_key() {
    let redis = redis_or_skip!();
    let store = connect(&redis).await;
    let mut conn = inspect(&redis).await;

    // Expired 298 s ago: still inside the largest leeway (300 s) for 2 more seconds.
    let t = token("ec-1", json!({ "exp": now() - 298 }));
    revoke(&store, &t).await;
    let jti = jti_of(&t);
    assert!(store.is_revoked(ISSUER, &jti).await.expect("ask"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(key_of(&t))
        .query_async(&mut conn)
        .await
        .expect("TTL");
    assert!((1..=2).contains(&ttl), "TTL {ttl}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!store.is_revoked(ISSUER, &jti).await.expect("ask"));
    let exists: bool = redis::cmd("EXISTS")
        .arg(key_of(&t))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists, "Redis still holds the expired revocation");
}

/// The validator accepts a token until `exp + leeway` (60 s by default), but the key lives
/// only until `exp`: in the leeway window after `exp`, a revoked token is accepted again.
#[tokio::test]
async fn a_revoked_token_stays_refused_through_the_leeway() {
    let redis = redis_or_skip!();
    let store = Arc::new(connect(&redis).await);
    let v = validator(store.clone(), Duration::ZERO);
    // Two seconds ahead, so that it is not past `exp` at the first request however slow.
    let exp = now() + 2;
    let t = token("ec-1", json!({ "exp": exp }));
    revoke(&*store, &t).await;
    assert_eq!(send(&v, &t).await, revoked());
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past `exp`, within the leeway: still a valid signature and date for the validator.
    assert_eq!(send(&v, &t).await, revoked());
}

#[tokio::test]
async fn redis_going_away_fails_closed_or_open_and_recovers_when_it_returns() {
    let mut redis = redis_or_skip!();
    let port = redis.port();
    let closed = validator(Arc::new(connect(&redis).await), Duration::ZERO);
    let open = builder(Arc::new(connect(&redis).await), Duration::ZERO)
        .revocation_fail_open()
        .build()
        .expect("validator");
    let t = token("ec-1", json!({}));
    assert_eq!(send(&closed, &t).await, ok());
    assert_eq!(send(&open, &t).await, ok());

    redis.stop();
    assert!(!ping(port), "redis-server still answers");

    // Fail closed, each request answered quickly; a token never seen before as well.
    for _ in 0..3 {
        assert_fails_closed(&send_bounded(&closed, &t).await);
    }
    assert_fails_closed(&send_bounded(&closed, &token("ed-1", json!({}))).await);
    // Concurrent requests do not queue behind each other.
    let started = Instant::now();
    let answers = futures_join_all(
        (0..20)
            .map(|_| {
                let (v, t) = (closed.clone(), t.clone());
                tokio::spawn(async move { send_bounded(&v, &t).await })
            })
            .collect(),
    )
    .await;
    for outcome in &answers {
        assert_fails_closed(outcome);
    }
    assert!(started.elapsed() < BOUNDED, "took {:?}", started.elapsed());
    // Fail open: accepted.
    for _ in 0..3 {
        assert_eq!(send_bounded(&open, &t).await, ok());
    }

    // Redis comes back on the same port: the connection manager reconnects.
    let _redis = RedisServer::start_on(port)
        .await
        .expect("restart redis-server");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = send_bounded(&closed, &t).await;
    while last != ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = send_bounded(&closed, &t).await;
    }
    assert_eq!(last, ok(), "no recovery within 3 s of Redis' return");
    // And it works in full again: the restarted (empty) Redis takes a new revocation.
    let store = connect(&_redis).await;
    revoke(&store, &t).await;
    assert_eq!(send_bounded(&closed, &t).await, revoked());
    assert_eq!(send_bounded(&open, &t).await, revoked());
}

#[tokio::test]
async fn a_hung_redis_times_out_into_503_and_recovers() {
    let redis = redis_or_skip!();
    let v = validator(Arc::new(connect(&redis).await), Duration::ZERO);
    let t = token("ec-1", json!({}));
    assert_eq!(send(&v, &t).await, ok());

    // Frozen: connections stay open, nothing answers; the response timeout (500 ms) answers.
    redis.signal("STOP");
    for _ in 0..2 {
        assert_fails_closed(&send_bounded(&v, &t).await);
    }
    redis.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = send_bounded(&v, &t).await;
    while last != ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = send_bounded(&v, &t).await;
    }
    assert_eq!(last, ok(), "no recovery within 3 s of Redis thawing");
}

/// Joins spawned tasks in order (no `futures` dependency here).
async fn futures_join_all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn the_memo_keeps_redis_off_the_hot_path() {
    let redis = redis_or_skip!();
    let counting = Arc::new(Counting {
        inner: connect(&redis).await,
        lookups: AtomicUsize::new(0),
    });
    let v = validator(counting.clone(), Duration::from_secs(60));
    let t = token("ec-1", json!({}));
    for _ in 0..100 {
        assert_eq!(send(&v, &t).await, ok());
    }
    assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);

    // A revoked answer is remembered too: one lookup for a hundred refusals.
    let r = token("ec-1", json!({}));
    revoke(&*counting, &r).await;
    let v = validator(counting.clone(), Duration::from_secs(60));
    for _ in 0..100 {
        assert_eq!(send(&v, &r).await, revoked());
    }
    assert_eq!(counting.lookups.load(Ordering::SeqCst), 2);

    // Memo zero: Redis is asked on every request.
    let v = validator(counting.clone(), Duration::ZERO);
    for _ in 0..10 {
        assert_eq!(send(&v, &t).await, ok());
    }
    assert_eq!(counting.lookups.load(Ordering::SeqCst), 12);
}
