//! `RedisReplay` (feature `redis`) against a real `redis-server` each test starts on a free
//! loopback port: two verifiers sharing one Redis refuse a proof replayed across them (also
//! when both see it at once), keys are hashes with the proof's window as TTL, and Redis going
//! away fails proofs closed (503) and recovers when it comes back.
//!
//! Without a `redis-server` binary the tests print a loud message and pass, except under CI
//! (env `CI` set), where they fail: CI never skips them.
#![cfg(feature = "redis")]

use bearer_guard::testkit::redis as redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bearer_guard::dpop::{
    Dpop, DpopError, DpopErrorKind, DpopKey, ProofCheck, ProofRequest, RedisReplay, VerifiedProof,
};
use http::{Method, Request, StatusCode};
use redis::AsyncCommands as _;
use redis_server::RedisServer;

const TOKEN: &str = "access-token";
const URL: &str = "https://api.test/accounts";
/// How long one verification may take while Redis is down (the store's timeouts are 500 ms).
const BOUNDED: Duration = Duration::from_secs(2);

macro_rules! redis_or_skip {
    () => {
        match RedisServer::start().await {
            Some(server) => server,
            None => return,
        }
    };
}

async fn verifier(server: &RedisServer) -> Dpop {
    let replay = RedisReplay::connect(&server.url())
        .await
        .expect("RedisReplay::connect");
    Dpop::builder()
        .external_origin("https://api.test")
        .replay(Arc::new(replay))
        .build()
        .expect("dpop")
}

fn request(proof: &str) -> Request<()> {
    Request::get("/accounts")
        .header("dpop", proof)
        .body(())
        .expect("request")
}

fn sign(key: &DpopKey) -> String {
    key.proof(&Method::GET, URL)
        .access_token(TOKEN)
        .sign()
        .expect("sign")
}

async fn verify(dpop: &Dpop, key: &DpopKey, proof: &str) -> Result<VerifiedProof, DpopError> {
    let req = request(proof);
    let check = dpop.verify_access(&ProofRequest::from(&req), TOKEN, key.thumbprint());
    assert!(
        matches!(check, ProofCheck::Pending(_) | ProofCheck::Ready(Err(_))),
        "a good proof waits for Redis"
    );
    tokio::time::timeout(BOUNDED, check)
        .await
        .unwrap_or_else(|_| panic!("no answer within {BOUNDED:?}"))
}

async fn inspect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_proof_replayed_to_another_replica_is_refused() {
    let redis = redis_or_skip!();
    let a = verifier(&redis).await;
    let b = verifier(&redis).await;
    let key = DpopKey::generate().expect("key");

    let proof = sign(&key);
    assert!(verify(&a, &key, &proof).await.is_ok());
    let replayed = verify(&b, &key, &proof).await.expect_err("replay at b");
    assert_eq!(replayed.kind(), DpopErrorKind::Replayed);
    assert_eq!(
        verify(&a, &key, &proof).await.map_err(|e| e.kind()).err(),
        Some(DpopErrorKind::Replayed)
    );
    // A fresh proof goes through at either.
    assert!(verify(&b, &key, &sign(&key)).await.is_ok());

    // Redis holds hashes, never the `jti` or the key, with the proof's window as TTL.
    let mut conn = inspect(&redis).await;
    let keys: Vec<String> = conn.keys("bearer-guard:dpop:*").await.expect("KEYS");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let jti = {
        use base64::Engine as _;
        let claims = proof.split('.').nth(1).expect("claims");
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("b64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        claims["jti"].as_str().expect("jti").to_owned()
    };
    for k in &keys {
        let hex = k.strip_prefix("bearer-guard:dpop:").expect("prefix");
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
        assert!(!k.contains(&jti) && !k.contains(key.thumbprint()), "{k}");
        let ttl: i64 = conn.pttl(k).await.expect("PTTL");
        assert!((1..=62_000).contains(&ttl), "{k}: {ttl} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_one_proof_sent_everywhere_at_once_exactly_one_is_accepted() {
    let redis = redis_or_skip!();
    let replicas = [verifier(&redis).await, verifier(&redis).await];
    let key = DpopKey::generate().expect("key");
    for _round in 0..5 {
        let proof = sign(&key);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let dpop = replicas[i % 2].clone();
            let (key, proof) = (key.clone(), proof.clone());
            tasks.push(tokio::spawn(async move {
                verify(&dpop, &key, &proof)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind())
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(()) => accepted += 1,
                Err(kind) => assert_eq!(kind, DpopErrorKind::Replayed),
            }
        }
        assert_eq!(accepted, 1);
    }
}

#[tokio::test]
async fn redis_down_fails_closed_and_recovers() {
    let mut redis = redis_or_skip!();
    let port = redis.port();
    let dpop = verifier(&redis).await;
    let key = DpopKey::generate().expect("key");
    assert!(verify(&dpop, &key, &sign(&key)).await.is_ok());

    redis.stop();
    let started = Instant::now();
    let err = verify(&dpop, &key, &sign(&key))
        .await
        .expect_err("redis down");
    assert!(started.elapsed() < BOUNDED);
    assert_eq!(err.kind(), DpopErrorKind::ReplayUnavailable);
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.kind().oauth_error(), None);
    // A proof that fails a check is refused as such without asking Redis.
    let other = DpopKey::generate().expect("key");
    let req = request(&sign(&other));
    let check = dpop.verify_access(&ProofRequest::from(&req), TOKEN, key.thumbprint());
    assert!(matches!(check, ProofCheck::Ready(Err(e)) if e.kind() == DpopErrorKind::KeyMismatch));

    // Back on the same port: the connection manager reconnects.
    let _redis = RedisServer::start_on(port).await.expect("restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match verify(&dpop, &key, &sign(&key)).await {
            Ok(_) => break,
            Err(e) if e.kind() == DpopErrorKind::ReplayUnavailable => {
                assert!(Instant::now() < deadline, "no recovery within 10 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}
