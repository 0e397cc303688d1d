//! Revocation, whatever the calling context: sync or async, with or without a runtime, a
//! store that answers at once, late, or never.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::revocation::{MemoryRevocations, RevocationError, RevocationFuture, Revocations};
use crate::testkit::{self as mint, ISSUER, now, token};
use crate::{ErrorKind, Validator};

/// A store that never answers: a Redis that is slow, or one only a runtime could ask.
struct Silent(AtomicUsize);

impl Revocations for Silent {
    fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
    fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
        Box::pin(async { Err(RevocationError::new("read-only")) })
    }
}

fn with_store(store: Arc<dyn Revocations>, fail_open: bool) -> Validator {
    let b = mint::builder()
        .revocation(store)
        .revocation_memo(Duration::from_secs(60));
    let b = if fail_open {
        b.revocation_fail_open()
    } else {
        b
    };
    b.build().expect("validator")
}

#[test]
fn sync_validate_outside_a_runtime_never_accepts_what_the_store_has_revoked() {
    // No Tokio runtime here. A store that answers at once is asked at once.
    let store = Arc::new(MemoryRevocations::new());
    let t = token("ec-1", json!({}));
    let jti = mint::claims_of(&t)["jti"].as_str().expect("jti").to_owned();
    futures_ready(store.revoke(ISSUER, &jti, now() + 600)).expect("revoke");
    for fail_open in [false, true] {
        let v = with_store(store.clone(), fail_open);
        for _ in 0..3 {
            let err = v.validate(&t).expect_err("revoked");
            assert_eq!(err.kind(), ErrorKind::Revoked, "fail_open={fail_open}");
        }
        assert!(
            v.validate(&token("ec-1", json!({}))).is_ok(),
            "another token"
        );
    }
    // A store that cannot be asked without a runtime: unavailable, never accepted.
    for fail_open in [false, true] {
        let v = with_store(Arc::new(Silent(AtomicUsize::new(0))), fail_open);
        for _ in 0..3 {
            let err = v.validate(&t).expect_err("not asked");
            assert_eq!(
                err.kind(),
                ErrorKind::RevocationUnavailable,
                "fail_open={fail_open}"
            );
        }
    }
}

#[tokio::test]
async fn sync_validate_with_a_cold_memo_answers_unavailable_then_the_stores_answer() {
    /// A store that answers after a moment: `revoked` for every token.
    struct Slow;
    impl Revocations for Slow {
        fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(true)
            })
        }
        fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
    }
    let v = with_store(Arc::new(Slow), true);
    let t = token("ec-1", json!({}));
    // Not answered yet: said so, not accepted (fail open is for a store that fails).
    assert_eq!(
        v.validate(&t).expect_err("cold").kind(),
        ErrorKind::RevocationUnavailable
    );
    // The background question gets its answer; from then on the memo refuses.
    let mut kind = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        kind = v.validate(&t).err().map(|e| e.kind());
        if kind == Some(ErrorKind::Revoked) {
            break;
        }
    }
    assert_eq!(kind, Some(ErrorKind::Revoked));
}

#[tokio::test]
async fn fail_open_accepts_only_when_the_store_failed() {
    /// A store that fails at once.
    struct Down;
    impl Revocations for Down {
        fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
            Box::pin(async { Err(RevocationError::new("connection refused")) })
        }
        fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
            Box::pin(async { Err(RevocationError::new("connection refused")) })
        }
    }
    let open = with_store(Arc::new(Down), true);
    let closed = with_store(Arc::new(Down), false);
    let t = token("ec-1", json!({}));
    assert!(
        open.validate(&t).is_ok(),
        "the store could not be asked: open"
    );
    assert!(open.validate_async(&t).await.is_ok());
    assert_eq!(
        closed.validate(&t).expect_err("closed").kind(),
        ErrorKind::RevocationUnavailable
    );
    assert_eq!(
        closed.validate_async(&t).await.expect_err("closed").kind(),
        ErrorKind::RevocationUnavailable
    );
}

#[test]
fn the_same_jti_from_two_issuers_never_shares_a_revocation_answer() {
    // Revoked at one issuer only; the memo is keyed by issuer and jti.
    let store = Arc::new(MemoryRevocations::new());
    futures_ready(store.revoke("https://other.test", "shared-jti", now() + 600)).expect("revoke");
    let v = with_store(store.clone(), false);
    let t = token("ec-1", json!({"jti": "shared-jti"}));
    assert!(v.validate(&t).is_ok());
    futures_ready(store.revoke(ISSUER, "shared-jti", now() + 600)).expect("revoke");
    let v = with_store(store, false);
    assert_eq!(
        v.validate(&t).expect_err("revoked").kind(),
        ErrorKind::Revoked
    );
}

/// Runs a future that is ready at once (the in-memory store's).
fn futures_ready<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    match fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the in-memory store answers at once"),
    }
}
