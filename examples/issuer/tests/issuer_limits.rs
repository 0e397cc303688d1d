//! The example issuer under hostile load, over real sockets: a flood of bogus credentials
//! costs a bounded number of argon2 runs and does not hold up a legitimate client, a full
//! verification queue answers 503 at once, and failed attempts are budgeted per client id,
//! per username and per peer address (429 with `Retry-After`).
//!
//! Peers are told apart by their source address: the tests connect from different loopback
//! addresses (127.0.0.2, 127.0.0.3 ...), all routed to `lo` on Linux. Nothing here measures
//! time: the assertions count answers and hashes, and a full queue is made on purpose by
//! holding the verification slots.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use issuer_server::{
    ALICE_PASSWORD, APP, FORM, READER_SECRET, REDIRECT, Reply, SVC_SECRET, Server, authorize_query,
    challenge, client_from, new_verifier, send_with,
};
use oauth::{basic_header, urlencode};

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::{StatusCode, header};
use issuer::Limits;

/// Loopback address 127.0.0.`n`.
fn peer(n: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

/// A client-credentials request with `client_secret_basic`, from 127.0.0.`from`.
async fn token_from(server: &Server, from: u8, id: &str, secret: &str) -> Reply {
    let auth = basic_header(id, secret);
    let req = server.request(
        "/oauth/token",
        FORM,
        "grant_type=client_credentials",
        &[("authorization", &auth)],
    );
    send_with(&client_from(peer(from)), req).await
}

fn assert_too_many(reply: &Reply) {
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable");
    let retry: u64 = reply
        .header(header::RETRY_AFTER)
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=601).contains(&retry), "Retry-After {retry}");
}

async fn start(limits: Limits) -> Server {
    Server::start_with(|config| config.limits = limits).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bogus_credentials_costs_a_few_hashes_and_a_client_still_gets_its_token() {
    let server = start(Limits {
        verify_slots: 1,
        verify_queue: 4,
        verify_wait: Duration::from_secs(30),
        max_attempts: 4,
        window: Duration::from_secs(600),
    })
    .await;
    const FLOOD: usize = 60;

    // 60 concurrent requests with made-up client ids and secrets, all from 127.0.0.1; the
    // legitimate client asks from 127.0.0.2 in the middle of it.
    let http = client_from(None);
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let req = server.request(
                "/oauth/token",
                FORM,
                "grant_type=client_credentials",
                &[(
                    "authorization",
                    &basic_header(&format!("bogus-{i}"), "guess"),
                )],
            );
            let http = http.clone();
            tokio::spawn(async move { send_with(&http, req).await })
        })
        .collect();
    let legitimate = token_from(&server, 2, "svc", SVC_SECRET).await;
    let mut refused = 0;
    let mut too_many = 0;
    for reply in flood {
        let reply = reply.await.expect("flood request");
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
                refused += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_too_many(&reply);
                too_many += 1;
            }
            other => panic!("flood answered {other}: {}", reply.text()),
        }
    }

    legitimate.assert_token();
    // The peer's budget (4 attempts in flight or failed) admitted at most 4 of the flood to
    // argon2; the rest were refused before hashing.
    assert!(refused <= 4, "{refused} bogus requests were verified");
    assert_eq!(refused + too_many, FLOOD);
    assert!(
        server.issuer.secret_checks() <= 5,
        "{} argon2 runs for a flood of {FLOOD} and one real client",
        server.issuer.secret_checks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_verification_queue_answers_503_at_once_and_the_queued_request_completes() {
    let server = start(Limits {
        verify_slots: 1,
        verify_queue: 1,
        verify_wait: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let hold = server.issuer.hold_verification_slots().expect("slots");

    // One request waits in the queue (the only slot is held) ...
    let waiting = {
        let req = server.request(
            "/oauth/token",
            FORM,
            "grant_type=client_credentials",
            &[("authorization", &basic_header("svc", SVC_SECRET))],
        );
        let http = client_from(peer(2));
        tokio::spawn(async move { send_with(&http, req).await })
    };
    let mut polls = 0;
    while server.issuer.queued_verifications() < 1 {
        polls += 1;
        assert!(polls < 1000, "the request never reached the queue");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... so the next one, from another peer, is answered 503 without waiting.
    let busy = token_from(&server, 3, "reader", READER_SECRET).await;
    busy.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(busy.header(header::RETRY_AFTER), Some("1"));
    assert_eq!(server.issuer.secret_checks(), 0);

    // Freed, the queued request gets its token.
    drop(hold);
    waiting.await.expect("queued request").assert_token();
    // A 503 is not a failed attempt: reader may ask again from the same peer.
    token_from(&server, 3, "reader", READER_SECRET)
        .await
        .assert_token();
}

#[tokio::test]
async fn a_wait_longer_than_verify_wait_answers_503() {
    let server = start(Limits {
        verify_slots: 1,
        verify_queue: 8,
        verify_wait: Duration::from_millis(100),
        ..Limits::default()
    })
    .await;
    let _hold = server.issuer.hold_verification_slots().expect("slots");
    let reply = token_from(&server, 2, "svc", SVC_SECRET).await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(server.issuer.queued_verifications(), 0);
}

#[tokio::test]
async fn failed_attempts_are_limited_per_client_id_known_or_not() {
    let server = start(Limits {
        max_attempts: 3,
        ..Limits::default()
    })
    .await;
    // Three wrong secrets for svc, from three peers: svc is locked, even with its secret.
    for from in 2..5 {
        token_from(&server, from, "svc", "wrong")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let checks = server.issuer.secret_checks();
    assert_too_many(&token_from(&server, 5, "svc", SVC_SECRET).await);
    assert_eq!(
        server.issuer.secret_checks(),
        checks,
        "a locked id is not hashed"
    );
    // Other clients are not.
    token_from(&server, 5, "reader", READER_SECRET)
        .await
        .assert_token();

    // An unknown id is budgeted the same way: its answers tell nothing about existence.
    for from in 6..9 {
        token_from(&server, from, "nobody", "wrong")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    assert_too_many(&token_from(&server, 9, "nobody", "wrong").await);
}

#[tokio::test]
async fn failed_attempts_are_limited_per_peer() {
    // One global subscriber, capturing this thread (the runtime's only one).
    let logs = bearer_guard::testkit::logs::capture();
    let server = start(Limits {
        max_attempts: 3,
        ..Limits::default()
    })
    .await;
    for id in ["a", "b", "c"] {
        token_from(&server, 2, id, "wrong")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // 127.0.0.2 has used its budget, on any client id; 127.0.0.3 has not.
    for _ in 0..5 {
        assert_too_many(&token_from(&server, 2, "reader", READER_SECRET).await);
    }
    // One security event for the peer, not one per refused request.
    let text = logs.text();
    assert_eq!(
        text.matches("event=\"too_many_attempts\" peer=\"127.0.0.2\"")
            .count(),
        1,
        "{text}"
    );
    token_from(&server, 3, "reader", READER_SECRET)
        .await
        .assert_token();
    // Successes do not use the budget up.
    for _ in 0..5 {
        token_from(&server, 4, "reader", READER_SECRET)
            .await
            .assert_token();
    }
}

#[tokio::test]
async fn failed_logins_count_per_user_and_per_peer() {
    let server = start(Limits {
        max_attempts: 3,
        ..Limits::default()
    })
    .await;
    let login = |from: u8, user: &'static str, password: &'static str| {
        let verifier = new_verifier();
        let form = format!(
            "{}&username={user}&password={}&approve=yes",
            authorize_query(APP, REDIRECT, &challenge(&verifier), "s"),
            urlencode(password)
        );
        let req = server.request("/oauth/authorize", FORM, form, &[]);
        async move { send_with(&client_from(peer(from)), req).await }
    };
    // Three wrong passwords for alice: the page again, no redirect.
    for from in 2..5 {
        let reply = login(from, "alice", "wrong").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.header(header::LOCATION).is_none());
        assert!(
            reply.text().contains("Wrong username or password"),
            "{}",
            reply.text()
        );
    }
    // alice is locked, even with her password: 429, the page, Retry-After, no code.
    let locked = login(5, "alice", ALICE_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.header(header::RETRY_AFTER).is_some());
    assert!(locked.header(header::LOCATION).is_none());
    assert!(
        locked.text().contains("Too many attempts"),
        "{}",
        locked.text()
    );
    // Peer 127.0.0.6 fails three times on other names, then cannot log in as bob.
    for user in ["x", "y", "z"] {
        assert_eq!(login(6, user, "wrong").await.status, StatusCode::OK);
    }
    let reply = login(6, "bob", issuer_server::BOB_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    // bob from elsewhere logs in.
    let reply = login(7, "bob", issuer_server::BOB_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
}
