//! What DPoP verification logs, and that no token, proof or signature is in it (nor in
//! errors and `Debug` output). One test in its own binary: `tracing`'s per-thread subscriber
//! can miss events when other tests of the same process hit the same callsites first.

use std::sync::Arc;
use std::time::Duration;

use bearer_guard::dpop::{
    Dpop, DpopErrorKind, DpopKey, DpopReplay, ProofCheck, ProofRequest, ReplayError, ReplayFuture,
    ReplayKey,
};
use http::{Method, Request};

const TOKEN: &str = "the-access-token-never-logged";

/// A replay store that cannot answer.
struct Down;

impl DpopReplay for Down {
    fn first_use(&self, _key: &ReplayKey, _ttl: Duration) -> ReplayFuture {
        ReplayFuture::ready(Err(ReplayError::new("connection refused")))
    }
}

fn kind(check: ProofCheck) -> Option<DpopErrorKind> {
    match check {
        ProofCheck::Ready(outcome) => outcome.err().map(|e| e.kind()),
        ProofCheck::Pending(_) => panic!("both stores answer at once"),
    }
}

#[test]
fn logs_say_why_and_hold_no_token_or_proof() {
    // One global subscriber, capturing this thread (the runtime's only one).
    let logs = bearer_guard::testkit::logs::capture();
    let key = DpopKey::generate().expect("key");
    let proof = key
        .proof(&Method::GET, "https://api.test/a")
        .access_token(TOKEN)
        .sign()
        .expect("sign");
    let req = Request::get("/a")
        .header("dpop", &proof)
        .body(())
        .expect("request");
    let req = ProofRequest::from(&req);

    let dpop = Dpop::builder()
        .external_origin("https://api.test")
        .build()
        .expect("dpop");
    assert_eq!(
        kind(dpop.verify_access(&req, TOKEN, key.thumbprint())),
        None
    );
    let replayed = dpop.verify_access(&req, TOKEN, key.thumbprint());
    let down = Dpop::builder()
        .external_origin("https://api.test")
        .replay(Arc::new(Down))
        .build()
        .expect("dpop");
    let unavailable = down.verify_access(&req, TOKEN, key.thumbprint());
    let shown = format!("{replayed:?} {unavailable:?} {dpop:?} {key:?}");
    assert_eq!(kind(replayed), Some(DpopErrorKind::Replayed));
    assert_eq!(kind(unavailable), Some(DpopErrorKind::ReplayUnavailable));

    let text = logs.text();
    assert!(text.contains("DPoP proof replayed"), "{text}");
    assert!(text.contains(key.thumbprint()), "the key is named: {text}");
    assert!(
        text.contains("connection refused") && text.contains("fail closed"),
        "{text}"
    );
    let (input, signature) = proof.rsplit_once('.').expect("jws");
    let claims = input.split('.').nth(1).expect("claims");
    for secret in [TOKEN, claims, signature] {
        assert!(
            !text.contains(secret) && !shown.contains(secret),
            "{secret}"
        );
    }
}
