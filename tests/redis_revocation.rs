//! `RedisRevocations` (feature `redis`) against a real `redis-server` that each test starts on
//! a free loopback port: a revocation written by one replica is seen by another, key TTLs
//! follow the token's remaining life, Redis going away fails requests closed (503 with
//! `Retry-After`) or open as configured and recovers when it comes back, logged once per
//! outage; the memo, and the mirror (no round trip at all, a revoked token refused within its
//! staleness bound, closed once the copy is too old, a log rolled back by a failover read
//! again), keep Redis off the hot path.
//!
//! Without a `redis-server` binary the tests print a loud message and pass, except under CI
//! (env `CI` set), where they fail: CI never skips them.
#![cfg(feature = "redis")]

#[path = "common/logs.rs"]
mod logs;
use bearer_guard::testkit as mint;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bearer_guard::revocation::{RedisRevocations, RevocationFuture, Revocations};
use bearer_guard::{AuthError, ErrorKind, RequireScope, Validator};
use http::{Request, Response, StatusCode};
use logs::LogBuffer;
use mint::{ISSUER, claims_of, now, token};
use serde_json::json;
use tower::{Layer as _, ServiceExt as _, service_fn};

/// How long one request may take while Redis is down (the store's timeouts are 500 ms).
const BOUNDED: Duration = Duration::from_secs(2);

use bearer_guard::testkit::redis as redis_server;
use redis_server::{RedisServer, ping};

/// Starts a server for the test, or returns from it (skip) when no binary exists. Installs
/// the log capture first, before anything can log.
macro_rules! redis_or_skip {
    () => {
        match (LogBuffer::global(), RedisServer::start().await).1 {
            Some(server) => server,
            None => return,
        }
    };
}

/// The lines logged with `reason` that name `ours` (a prefix, a client id).
fn lines(reason: &str, ours: &str) -> Vec<String> {
    LogBuffer::global()
        .text()
        .lines()
        .filter(|l| l.contains(reason) && l.contains(ours))
        .map(str::to_owned)
        .collect()
}

/// How many commands named `name` (`exists`) the server ran so far.
async fn commands(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("count"))
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
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    // The token's key, and the log mirrors read (one hash tag), kept as long.
    let log = [
        "{bearer-guard:revoked:log}:exp",
        "{bearer-guard:revoked:log}:n",
        "{bearer-guard:revoked:log}:seq",
    ];
    let mut expected: Vec<String> = log.iter().map(|k| (*k).to_owned()).collect();
    expected.push(key_of(&t));
    expected.sort();
    assert_eq!(keys, expected);
    for key in log {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("TTL");
        assert!((898..=900).contains(&ttl), "{key}: TTL {ttl}");
    }
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

// ---------------------------------------------------------------------------------------------
// The mirror

/// The staleness bound of the mirrors in these tests.
const STALENESS: Duration = Duration::from_millis(400);

async fn mirrored(server: &RedisServer, prefix: &str) -> RedisRevocations {
    connect(server).await.prefix(prefix).mirror(STALENESS)
}

/// Sends `token` until `want` comes back, at most `within`; the last outcome.
async fn until(v: &Validator, token: &str, want: &Outcome, within: Duration) -> Outcome {
    let deadline = Instant::now() + within;
    loop {
        let outcome = send_bounded(v, token).await;
        if outcome == *want || Instant::now() >= deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `store`'s mirror has been read (it answers without Redis).
async fn until_mirrored(store: &RedisRevocations) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // The first lookup starts the background reads.
    let _ = store.is_revoked(ISSUER, "never-revoked").await;
    while !store.known_unrevoked("never-revoked") {
        assert!(Instant::now() < deadline, "the mirror was never read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_answers_without_a_round_trip_and_refuses_a_revocation_within_its_bound() {
    let redis = redis_or_skip!();
    let mut conn = inspect(&redis).await;
    let prefix = "m1:";
    let writer = connect(&redis).await.prefix(prefix);
    let early = token("ec-1", json!({}));
    revoke_with(&writer, &early).await;
    // Two replicas, each with its own copy, and no memo: whatever Redis does not answer,
    // the copies do. (A long staleness bound here, so that a loaded machine cannot make a
    // copy too old while the lookups are counted.)
    let (sa, sb) = (
        connect(&redis)
            .await
            .prefix(prefix)
            .mirror(Duration::from_secs(10)),
        connect(&redis)
            .await
            .prefix(prefix)
            .mirror(Duration::from_secs(10)),
    );
    for store in [&sa, &sb] {
        until_mirrored(store).await;
    }
    let (a, b) = (
        validator(Arc::new(sa), Duration::ZERO),
        validator(Arc::new(sb), Duration::ZERO),
    );
    let t = token("ec-1", json!({}));
    let unseen: Vec<String> = (0..50).map(|_| token("ec-1", json!({}))).collect();
    let lookups = commands(&mut conn, "exists").await;
    for unseen in &unseen {
        for v in [&a, &b] {
            assert_eq!(send(v, &t).await, ok());
            assert_eq!(send(v, &early).await, revoked());
            assert_eq!(send(v, unseen).await, ok(), "a token never seen");
        }
    }
    assert_eq!(
        commands(&mut conn, "exists").await,
        lookups,
        "no lookup in Redis"
    );

    // Revoked through the writer: once `revoke` has returned, replicas refuse the token after
    // the staleness bound at the latest, whenever their copies were read (or, were a copy
    // too old, from Redis).
    let (sc, sd) = (
        mirrored(&redis, prefix).await,
        mirrored(&redis, prefix).await,
    );
    for store in [&sc, &sd] {
        until_mirrored(store).await;
    }
    let (c, d) = (
        validator(Arc::new(sc.clone()), Duration::ZERO),
        validator(Arc::new(sd), Duration::ZERO),
    );
    for v in [&c, &d] {
        assert_eq!(send(v, &t).await, ok());
    }
    revoke_with(&writer, &t).await;
    let revoked_at = Instant::now();
    tokio::time::sleep(STALENESS).await;
    for v in [&c, &d] {
        assert_eq!(
            send(v, &t).await,
            revoked(),
            "{:?} after revoke",
            revoked_at.elapsed()
        );
    }
    // The same jti at another issuer is not revoked.
    assert!(
        !sc.is_revoked("https://other.test", &jti_of(&t))
            .await
            .expect("answer")
    );
    assert!(sc.is_revoked(ISSUER, &jti_of(&t)).await.expect("answer"));
}

#[tokio::test]
async fn a_log_rolled_back_by_a_failover_is_read_again_whole() {
    let redis = redis_or_skip!();
    let mut conn = inspect(&redis).await;
    let prefix = "m2:";
    let writer = connect(&redis).await.prefix(prefix);
    let v = validator(Arc::new(mirrored(&redis, prefix).await), Duration::ZERO);
    let (lost, after) = (token("ec-1", json!({})), token("ec-1", json!({})));
    revoke_with(&writer, &lost).await;
    assert_eq!(
        until(&v, &lost, &revoked(), Duration::from_secs(5)).await,
        revoked()
    );
    assert_eq!(send(&v, &after).await, ok());
    // A failover to a replica that had not received the last write, and a revocation on the
    // new primary, between two reads of the mirror (one transaction): the log and the key
    // are gone, the counter started again, and the new entry has the number the mirror read
    // last. Only its content differs.
    let keep = exp_of(&after) + 300;
    let entry = format!(
        "00000000000000ab {keep} {} {ISSUER}{}",
        ISSUER.len(),
        jti_of(&after)
    );
    let log = |k: &str| format!("{{{prefix}log}}:{k}");
    let () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(format!("{prefix}{ISSUER}#{}", jti_of(&lost)))
        .arg(log("n"))
        .arg(log("seq"))
        .arg(log("exp"))
        .ignore()
        .cmd("SET")
        .arg(log("n"))
        .arg(1)
        .ignore()
        .cmd("ZADD")
        .arg(log("seq"))
        .arg(1)
        .arg(&entry)
        .ignore()
        .cmd("ZADD")
        .arg(log("exp"))
        .arg(keep)
        .arg(&entry)
        .ignore()
        .cmd("SET")
        .arg(format!("{prefix}{ISSUER}#{}", jti_of(&after)))
        .arg(1)
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("MULTI");
    tokio::time::sleep(STALENESS).await;
    assert_eq!(send(&v, &after).await, revoked(), "the new entry was read");
    // And the log goes on from there: a revocation appended normally is read too.
    let next = token("ec-1", json!({}));
    revoke_with(&writer, &next).await;
    tokio::time::sleep(STALENESS).await;
    assert_eq!(send(&v, &next).await, revoked());
}

async fn revoke_with(store: &RedisRevocations, token: &str) {
    store
        .revoke(ISSUER, &jti_of(token), exp_of(token))
        .await
        .expect("revoke");
}

#[tokio::test]
async fn an_outage_fails_closed_once_the_copy_is_too_old_and_is_logged_once() {
    let mut redis = redis_or_skip!();
    let port = redis.port();
    let prefix = "m3:";
    let writer = connect(&redis).await.prefix(prefix);
    let v = validator(Arc::new(mirrored(&redis, prefix).await), Duration::ZERO);
    let plain = validator(
        Arc::new(connect(&redis).await.prefix(prefix)),
        Duration::ZERO,
    );
    // A client id of this test's own, to find the validator's lines (it names the client).
    let client = "outage-client-m3";
    let t = token("ec-1", json!({ "client_id": client }));
    let r = token("ec-1", json!({ "client_id": client }));
    revoke_with(&writer, &r).await;
    assert_eq!(
        until(&v, &r, &revoked(), Duration::from_secs(5)).await,
        revoked()
    );
    assert_eq!(until(&v, &t, &ok(), Duration::from_secs(5)).await, ok());

    redis.stop();
    assert!(!ping(port), "redis-server still answers");
    // The revoked token is never admitted; the copy still answers for its staleness bound,
    // then every request is refused with 503 (fail closed).
    let stopped = Instant::now();
    while stopped.elapsed() < STALENESS * 3 {
        let outcome = send_bounded(&v, &r).await;
        assert_ne!(
            outcome.status,
            StatusCode::OK,
            "a revoked token admitted: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The copy is too old now: 503. (The revoked token may get 401 instead: the validator
    // remembers a revoked answer until the token expires.)
    for _ in 0..20 {
        assert_fails_closed(&send_bounded(&v, &t).await);
        assert_ne!(send_bounded(&v, &r).await.status, StatusCode::OK);
    }
    assert_fails_closed(&send_bounded(&plain, &t).await);

    // Redis comes back (empty: this one keeps nothing on disk) on the same port.
    let _redis = RedisServer::start_on(port).await.expect("restart");
    assert_eq!(until(&v, &t, &ok(), Duration::from_secs(5)).await, ok());
    assert_eq!(until(&plain, &t, &ok(), Duration::from_secs(5)).await, ok());
    // For each of the two stores (the mirror's reads and lookups of one, the lookups of the
    // other), one line when the outage began and one when it ended, not one per request;
    // none from the validators, which leave it to the store. An outage ends once its store
    // has answered for a second with no failure: requests until both have said so.
    let settled = Instant::now();
    while lines("revocation_store_available", prefix).len() < 2
        && settled.elapsed() < Duration::from_secs(10)
    {
        assert_eq!(send_bounded(&v, &t).await.status, StatusCode::OK);
        assert_eq!(send_bounded(&plain, &t).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let began = lines("revocation_store_unavailable", prefix);
    assert_eq!(began.len(), 2, "one per store: {began:?}");
    assert!(began.iter().all(|l| l.contains("WARN")), "{began:?}");
    let ended = lines("revocation_store_available", prefix);
    assert_eq!(ended.len(), 2, "one per store: {ended:?}");
    assert!(
        ended
            .iter()
            .all(|l| l.contains("INFO") && l.contains("outage_ms=")),
        "{ended:?}"
    );
    assert!(lines("revocation_store_unavailable", client).is_empty());
    assert!(
        !LogBuffer::global().text().contains(&t),
        "no token in the logs"
    );
}
