//! The Redis stores on a real Redis Cluster (three primaries with one replica each, started
//! by `testkit::redis::RedisCluster`) and behind a real Sentinel, through one
//! `RedisConnection` built from a `REDIS_URL`-style value: revocation, DPoP replay and quotas
//! work on it; a primary killed with SIGKILL is replaced by its replica, revocation stays
//! closed meanwhile (never a wrong "not revoked", from Redis or from a mirror), every
//! revocation answered `Ok` before the kill survives it (`WAIT`), all three stores recover by
//! themselves, and the outage is logged once per store. A revocation that no replica
//! acknowledges is reported as failed.
//!
//! Without a `redis-server` binary the tests print a loud message and pass, except under CI
//! (env `CI` set), where they fail: CI never skips them.
#![cfg(all(feature = "redis", feature = "rate-limit", feature = "dpop-client"))]

#[path = "common/logs.rs"]
mod logs;

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bearer_guard::dpop::{Dpop, DpopKey, ProofRequest, RedisReplay};
use bearer_guard::rate_limit::{Quota, RateLimitByClient, RedisQuotas};
use bearer_guard::redis_conn::{RedisConnection, RedisTopology};
use bearer_guard::revocation::{RedisRevocations, Revocations};
use bearer_guard::testkit::redis::{RedisCluster, RedisSentinel, RedisServer};
use bearer_guard::testkit::{self as mint, ISSUER};
use bearer_guard::{RequireScope, Validator};
use http::{Method, Request, Response, StatusCode};
use logs::LogBuffer;
use tower::{Layer as _, ServiceExt as _, service_fn};

/// Long enough for a failover (node timeout 1 s, Sentinel down-after 1 s) on a loaded machine.
const FAILOVER: Duration = Duration::from_secs(30);
/// The connections' timeouts, and how long a revocation waits for a replica: generous, so
/// that a loaded machine's slow acknowledgement is not taken for a missing replica (the
/// defaults, 500 ms and 300 ms, failed one run in a dozen here).
const PATIENT: Duration = Duration::from_secs(2);
const REPLICA_WAIT: Duration = Duration::from_secs(1);

fn n(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// How many of `count` requests of `client` the layer admits.
async fn admitted(limit: &RateLimitByClient, client: &str, count: usize) -> usize {
    let mut ok = 0;
    for _ in 0..count {
        let svc = limit.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(mint::verified_token(client, ()));
        let res = svc.oneshot(req).await.expect("infallible");
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    ok
}

/// Whether a fresh proof is accepted once and refused as a replay the second time.
async fn replay_refused(dpop: &Dpop) -> bool {
    let key = DpopKey::generate().expect("key");
    let url = "https://api.test/accounts";
    let proof = key
        .proof(&Method::GET, url)
        .access_token("token")
        .sign()
        .expect("sign");
    let req = Request::get("/accounts")
        .header("dpop", &proof)
        .body(())
        .expect("request");
    let first = dpop
        .verify_access(&ProofRequest::from(&req), "token", key.thumbprint())
        .await;
    let second = dpop
        .verify_access(&ProofRequest::from(&req), "token", key.thumbprint())
        .await;
    first.is_ok() && second.is_err()
}

/// The staleness bound of the mirrors here.
const STALENESS: Duration = Duration::from_millis(500);

/// A validator without memo on `store`.
fn validator(store: RedisRevocations) -> Validator {
    mint::builder()
        .revocation(Arc::new(store))
        .revocation_memo(Duration::ZERO)
        .build()
        .expect("validator")
}

/// The status of one request with `token`.
async fn status(v: &Validator, token: &str) -> StatusCode {
    let svc = RequireScope::authenticated(v).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let req = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    svc.oneshot(req).await.expect("infallible").status()
}

/// Waits until `store`'s mirror has been read (it answers without Redis), at most
/// [`FAILOVER`].
async fn until_mirrored(store: &RedisRevocations) {
    let deadline = Instant::now() + FAILOVER;
    // A lookup starts the background reads.
    let _ = store.is_revoked(ISSUER, "never-revoked").await;
    while !store.known_unrevoked("never-revoked") {
        assert!(Instant::now() < deadline, "the mirror was not read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `token` until `want` comes back, at most `within`.
async fn until(v: &Validator, token: &str, want: StatusCode, within: Duration) -> StatusCode {
    let deadline = Instant::now() + within;
    loop {
        let got = status(v, token).await;
        if got == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(logs: &LogBuffer, what: &str, prefix: &str) -> usize {
    logs.text()
        .lines()
        .filter(|l| l.contains(what) && l.contains(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_share_a_cluster_and_survive_the_sigkill_of_a_primary() {
    let logs = LogBuffer::global();
    let Some(mut cluster) = RedisCluster::start().await else {
        return;
    };
    // Patient: on a loaded machine, a replica's acknowledgement may take a while.
    let conn = RedisConnection::builder(&cluster.url())
        .timeout(PATIENT)
        .connect()
        .await
        .expect("connect to the cluster");
    assert_eq!(conn.topology(), RedisTopology::Cluster);

    // Revocations land on every primary (keys of 40 slots), each acknowledged by a replica.
    let revocations = RedisRevocations::new(conn.clone())
        .prefix("c1:revoked:")
        .wait_for_replicas(1, REPLICA_WAIT);
    let exp = mint::now() + 600;
    let jtis: Vec<String> = (0..40).map(|i| format!("jti-{i}")).collect();
    for jti in &jtis {
        revocations
            .revoke(ISSUER, jti, exp)
            .await
            .expect("revoked, acknowledged by a replica");
    }
    for jti in &jtis {
        assert!(revocations.is_revoked(ISSUER, jti).await.expect("answer"));
    }
    assert!(
        !revocations
            .is_revoked(ISSUER, "never")
            .await
            .expect("answer")
    );
    let primaries: std::collections::BTreeSet<u16> = jtis
        .iter()
        .filter_map(|jti| cluster.primary_of(&format!("c1:revoked:{ISSUER}#{jti}")))
        .collect();
    assert_eq!(primaries.len(), 3, "the keys spread over every primary");
    // Another replica (a connection of its own: `WAIT` holds up the writer's connection to
    // its node), with a mirror of them (the log: one slot), and no memo.
    let replica_conn = RedisConnection::builder(&cluster.url())
        .timeout(PATIENT)
        .connect()
        .await
        .expect("connect to the cluster");
    let mirror = RedisRevocations::new(replica_conn)
        .prefix("c1:revoked:")
        .mirror(STALENESS);
    let mirrored = validator(mirror.clone());
    until_mirrored(&mirror).await;
    let jti0 = mint::token("ec-1", serde_json::json!({ "jti": "jti-0" }));
    let fresh = mint::token("ec-1", serde_json::json!({}));
    assert_eq!(
        until(&mirrored, &jti0, StatusCode::UNAUTHORIZED, FAILOVER).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&mirrored, &fresh).await, StatusCode::OK);

    // DPoP replay and quotas through the same connection.
    let dpop = Dpop::builder()
        .external_origin("https://api.test")
        .replay(Arc::new(RedisReplay::new(conn.clone()).prefix("c1:dpop:")))
        .build()
        .expect("dpop");
    assert!(replay_refused(&dpop).await);
    let quotas = RedisQuotas::with_connection(conn.clone())
        .prefix("c1:quota:")
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("quotas");
    let hourly = Quota::per_hour(n(1)).allow_burst(n(5));
    let limit = RateLimitByClient::builder(hourly)
        .redis(quotas.clone())
        .build();
    assert_eq!(admitted(&limit, "alice", 8).await, 5);

    // SIGKILL the primary of jti-0's key.
    let key = format!("c1:revoked:{ISSUER}#jti-0");
    let old = cluster.primary_of(&key).expect("a primary");
    cluster.kill(old);
    // Until the replica takes over, jti-0 is never reported "not revoked": revoked, or an
    // error (the validator refuses the request then, 503).
    let deadline = Instant::now() + FAILOVER;
    let mut errors = 0;
    loop {
        let through_mirror = status(&mirrored, &jti0).await;
        assert_ne!(
            through_mirror,
            StatusCode::OK,
            "the mirror admitted a revoked token"
        );
        match revocations.is_revoked(ISSUER, "jti-0").await {
            Ok(true) if cluster.primary_of(&key).is_some_and(|p| p != old) => break,
            Ok(true) => {}
            Ok(false) => panic!("a revoked token reported valid during the failover"),
            Err(_) => errors += 1,
        }
        assert!(Instant::now() < deadline, "no recovery within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(errors > 0, "the outage was seen");
    cluster.wait_for_failover(&key, old, FAILOVER).await;

    // Every acknowledged revocation survived the loss of its primary.
    for jti in &jtis {
        assert!(
            revocations.is_revoked(ISSUER, jti).await.expect("answer"),
            "{jti} lost in the failover"
        );
    }
    // The stores work again by themselves: new revocations, replay, quotas through Redis.
    // The promoted primary has no replica (the old one is dead), and the log every
    // revocation is appended to lives there (its slot, 12122, and jti-0's, 16287, are the
    // third primary's): no replica can acknowledge a revocation, which is reported failed
    // rather than answered `Ok`; without the wait, it is written.
    let unacknowledged = revocations.revoke(ISSUER, "after", exp).await;
    if cluster.primary_of("{c1:revoked:log}:n") == cluster.primary_of(&key) {
        assert!(unacknowledged.is_err(), "acknowledged without a replica");
    }
    revocations
        .clone()
        .wait_for_replicas(0, Duration::ZERO)
        .revoke(ISSUER, "after", exp)
        .await
        .expect("revoke after the failover");
    assert!(
        revocations
            .is_revoked(ISSUER, "after")
            .await
            .expect("answer")
    );
    // The mirror serves again (from the promoted primary), and has the new revocation.
    until_mirrored(&mirror).await;
    let after = mint::token("ec-1", serde_json::json!({ "jti": "after" }));
    assert_eq!(
        until(&mirrored, &after, StatusCode::UNAUTHORIZED, FAILOVER).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        until(&mirrored, &fresh, StatusCode::OK, FAILOVER).await,
        StatusCode::OK
    );
    assert_eq!(status(&mirrored, &jti0).await, StatusCode::UNAUTHORIZED);
    assert!(replay_refused(&dpop).await);
    let before = quotas.stats().redis;
    let mut bob = 0;
    let deadline = Instant::now() + FAILOVER;
    // Clients on the promoted primary's slots too: Redis decides them again.
    for i in 0.. {
        bob += admitted(&limit, &format!("bob-{i}"), 7).await;
        if quotas.stats().redis >= before + 7 * 6 {
            break;
        }
        assert!(Instant::now() < deadline, "quotas did not recover");
    }
    assert!(bob > 0);
    // One line when the outage began, one when it ended: not one per request. Per store:
    // the mirrored one logs its own when its reads (of the log's slot) failed too.
    let began = lines(logs, "revocation_store_unavailable", "c1:revoked:");
    assert!((1..=2).contains(&began), "{}", logs.text());
    assert_eq!(
        lines(logs, "revocation_store_available", "c1:revoked:"),
        began,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_revocation_no_replica_acknowledges_is_reported_failed() {
    LogBuffer::global();
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let conn = RedisConnection::builder(&server.url())
        .connect()
        .await
        .expect("connect");
    // A single node has no replica to wait for: by default, no WAIT.
    let plain = RedisRevocations::new(conn.clone()).prefix("w1:");
    plain
        .revoke(ISSUER, "a", mint::now() + 600)
        .await
        .expect("no wait");
    let waiting = plain
        .clone()
        .wait_for_replicas(1, Duration::from_millis(100));
    let started = Instant::now();
    let err = waiting
        .revoke(ISSUER, "b", mint::now() + 600)
        .await
        .expect_err("no replica acknowledged it");
    assert!(err.to_string().contains("0 of 1 replicas"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "WAIT has a timeout"
    );
    // The primary has it: a retry is harmless, and this node refuses the token already.
    assert!(plain.is_revoked(ISSUER, "b").await.expect("answer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_an_acknowledged_revocation() {
    LogBuffer::global();
    let Some(mut deployment) = RedisSentinel::start().await else {
        return;
    };
    let conn = RedisConnection::builder(&deployment.url())
        .timeout(PATIENT)
        .connect()
        .await
        .expect("connect through the Sentinel");
    assert_eq!(conn.topology(), RedisTopology::Sentinel);
    let revocations = RedisRevocations::new(conn.clone())
        .prefix("s1:")
        .wait_for_replicas(1, REPLICA_WAIT);
    revocations
        .revoke(ISSUER, "jti", mint::now() + 600)
        .await
        .expect("revoked, acknowledged by the replica");
    let replica_conn = RedisConnection::builder(&deployment.url())
        .timeout(PATIENT)
        .connect()
        .await
        .expect("connect through the Sentinel");
    let mirror = RedisRevocations::new(replica_conn)
        .prefix("s1:")
        .mirror(STALENESS);
    let mirrored = validator(mirror.clone());
    until_mirrored(&mirror).await;
    let revoked = mint::token("ec-1", serde_json::json!({ "jti": "jti" }));
    assert_eq!(
        until(&mirrored, &revoked, StatusCode::UNAUTHORIZED, FAILOVER).await,
        StatusCode::UNAUTHORIZED
    );
    let replica = deployment.replica.port();
    deployment.primary.stop();
    let deadline = Instant::now() + FAILOVER;
    loop {
        assert_ne!(
            status(&mirrored, &revoked).await,
            StatusCode::OK,
            "the mirror admitted a revoked token"
        );
        match revocations.is_revoked(ISSUER, "jti").await {
            Ok(true) if deployment.primary_port() == Some(replica) => break,
            Ok(true) | Err(_) => {}
            Ok(false) => panic!("a revoked token reported valid during the failover"),
        }
        assert!(Instant::now() < deadline, "no failover within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes go to the new primary (no READONLY from a stale connection).
    let deadline = Instant::now() + FAILOVER;
    while revocations
        .clone()
        .wait_for_replicas(0, Duration::ZERO)
        .revoke(ISSUER, "after", mint::now() + 600)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no write after the failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        revocations
            .is_revoked(ISSUER, "after")
            .await
            .expect("answer")
    );
    assert_eq!(
        bearer_guard::testkit::redis::cli(replica, &["EXISTS", &format!("s1:{ISSUER}#after")])
            .expect("redis-cli")
            .trim(),
        "1",
        "written to the promoted replica"
    );
    // The mirror reads the promoted primary's log: both revocations.
    until_mirrored(&mirror).await;
    let after = mint::token("ec-1", serde_json::json!({ "jti": "after" }));
    assert_eq!(
        until(&mirrored, &after, StatusCode::UNAUTHORIZED, FAILOVER).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&mirrored, &revoked).await, StatusCode::UNAUTHORIZED);
}
