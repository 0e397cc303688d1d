//! The validator on bare tokens: every check of `verify` and `checks`, through the public
//! `validate`/`authorize` methods. The layer's answers are tested in `crate::service`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::revocation::{MemoryRevocations, RevocationError, RevocationFuture, Revocations};
use crate::testkit::{self as mint, AUDIENCE, ISSUER, now, token, token_with};
use crate::{ErrorKind, Key, KeySet, Profile, RequiredScopes, Validator};

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

/// A token signed by `ec-1` whose claims are exactly `claims` (raw JSON text).
fn raw_token(claims: &str) -> String {
    let (alg, key) = mint::encoding_key("ec-1");
    let header = mint::header(alg, "ec-1", json!({})).to_string();
    mint::sign_raw(alg, &key, &header, claims)
}

#[tokio::test]
async fn leeway_admits_small_skew_only() {
    let v = validator();
    assert!(
        v.validate(&token("ec-1", json!({"exp": now() - 30})))
            .is_ok()
    );
    assert!(
        v.validate(&token("ec-1", json!({"nbf": now() + 30})))
            .is_ok()
    );
    assert!(
        v.validate(&token("ec-1", json!({"iat": now() + 30})))
            .is_ok()
    );
    let strict = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(v.keys().clone())
        .leeway(std::time::Duration::ZERO)
        .build()
        .expect("validator");
    let err = strict
        .validate(&token("ec-1", json!({"exp": now() - 1})))
        .expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::Expired);
}

#[tokio::test]
async fn rejects_wrongly_typed_dates_instead_of_skipping_them() {
    // GHSA-h395-gr6q-cpjc: a string `nbf`/`exp` must not be treated as absent.
    let far = (now() + 3600).to_string();
    let past = (now() - 3600).to_string();
    for changes in [
        json!({"exp": far}),
        json!({"nbf": far}),
        json!({"iat": far}),
        json!({"exp": true}),
        json!({"exp": [now() + 60]}),
        json!({"nbf": past}),
    ] {
        let t = token("ec-1", changes.clone());
        let err = validator().validate(&t).expect_err("wrong type");
        assert_eq!(err.kind(), ErrorKind::InvalidClaimType, "{changes}");
    }
    let err = validator()
        .validate(&token("ec-1", json!({"nbf": {}})))
        .expect_err("object");
    assert_eq!(err.claim_name(), Some("nbf"));
}

#[tokio::test]
async fn fractional_dates_are_accepted_and_rounded_strictly() {
    let v = validator();
    assert!(
        v.validate(&token("ec-1", json!({"exp": now() as f64 + 600.5})))
            .is_ok()
    );
    let err = v
        .validate(&token("ec-1", json!({"exp": now() as f64 - 60.5})))
        .expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::Expired);
}

#[tokio::test]
async fn an_unknown_kid_may_fall_back_to_the_one_kid_less_key() {
    let kidless =
        KeySet::new([Key::from_pem(mint::RSA2_PUBLIC, crate::Algorithm::RS256).expect("key")]);
    let v = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(kidless)
        .build()
        .expect("v");
    // Signed by that key, naming a kid the set does not have: accepted.
    let (alg, key) = (
        crate::Algorithm::RS256,
        mint::encoding_key_for(crate::Algorithm::RS256, mint::RSA2_PRIVATE),
    );
    let header = mint::header(alg, "rotated-away", json!({})).to_string();
    let t = mint::sign_raw(alg, &key, &header, &mint::claims(json!({})).to_string());
    assert!(v.validate(&t).is_ok());
    // Signed by another key: its key is unknown here, not merely a bad signature.
    let err = v
        .validate(&token("rsa-1", json!({})))
        .expect_err("other key");
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
}

#[tokio::test]
async fn token_without_kid_needs_exactly_one_key_of_its_algorithm() {
    let t = token_with("ec-1", json!({"kid": null}), json!({}));
    assert!(validator().validate(&t).is_ok());
    let t = token_with("rsa-1", json!({"kid": null}), json!({}));
    assert!(validator().validate(&t).is_ok(), "only rsa-1 pins RS256");
    let two_ec = KeySet::new([
        Key::from_pem(mint::EC256_PUBLIC, crate::Algorithm::ES256)
            .expect("k")
            .with_kid("a"),
        Key::from_pem(mint::EC256_PUBLIC, crate::Algorithm::ES256)
            .expect("k")
            .with_kid("b"),
    ]);
    let v = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(two_ec)
        .build()
        .expect("v");
    let t = token_with("ec-1", json!({"kid": null}), json!({}));
    assert_eq!(
        v.validate(&t).expect_err("ambiguous").kind(),
        ErrorKind::UnknownKey
    );
}

#[tokio::test]
async fn rejects_structurally_broken_tokens_as_malformed() {
    for t in ["a.b", "a.b.c.d", "a.b.c.d.e", "!!!.b.c", "e30.e30.e30"] {
        let err = validator().validate(t).expect_err("broken");
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Malformed | ErrorKind::UnsupportedAlgorithm
            ),
            "{t}: {err:?}"
        );
    }
}

#[tokio::test]
async fn custom_claims_types_are_supported() {
    #[derive(Debug, serde::Deserialize)]
    struct Mine {
        sub: String,
        tenant: String,
    }
    let v = Validator::builder()
        .claims::<Mine>()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(validator().keys().clone())
        .build()
        .expect("validator");
    let c = v
        .validate(&token("ed-1", json!({"tenant": "t1"})))
        .expect("valid");
    assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("client-a", "t1"));
    let err = v
        .validate(&token("ed-1", json!({})))
        .expect_err("no tenant");
    assert_eq!(err.kind(), ErrorKind::InvalidClaims);
}

#[test]
fn builder_refuses_incomplete_or_unsafe_configuration() {
    use crate::ConfigError;
    let keys = validator().keys().clone();
    let b = || {
        Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(keys.clone())
    };
    assert_eq!(
        Validator::builder()
            .audience(AUDIENCE)
            .keys(keys.clone())
            .build()
            .unwrap_err(),
        ConfigError::MissingIssuer
    );
    assert_eq!(
        Validator::builder()
            .issuer(ISSUER)
            .keys(keys.clone())
            .build()
            .unwrap_err(),
        ConfigError::MissingAudience
    );
    assert_eq!(
        Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .build()
            .unwrap_err(),
        ConfigError::MissingKeys
    );
    assert_eq!(
        b().leeway(std::time::Duration::from_secs(301))
            .build()
            .unwrap_err(),
        ConfigError::LeewayTooLarge {
            requested: 301,
            max: 300
        }
    );
    assert_eq!(
        b().keys(KeySet::new([])).build().unwrap_err(),
        ConfigError::MissingKeys
    );
}

#[test]
fn rfc_9068_requires_each_of_its_claims_and_names_the_missing_one() {
    let v = validator();
    for claim in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
        let err = v
            .validate(&token("ec-1", json!({ claim: null })))
            .expect_err(claim);
        assert_eq!(
            (err.kind(), err.claim_name()),
            (ErrorKind::MissingClaim, Some(claim)),
            "{claim}"
        );
        assert!(err.to_string().contains(claim), "{err}");
    }
    // The plain-JWT profile needs only what is configured (iss, aud) and exp.
    let plain = mint::builder()
        .profile(Profile::Jwt)
        .build()
        .expect("validator");
    let minimal = json!({"sub": null, "client_id": null, "iat": null, "jti": null, "scope": null});
    assert!(plain.validate(&token("ec-1", minimal)).is_ok());
    for claim in ["iss", "exp", "aud"] {
        let err = plain
            .validate(&token("ec-1", json!({ claim: null })))
            .expect_err(claim);
        assert_eq!(
            (err.kind(), err.claim_name()),
            (ErrorKind::MissingClaim, Some(claim))
        );
    }
    // ... and takes `azp` for the client when there is no `client_id`.
    let c = plain
        .validate(&token("ec-1", json!({"client_id": null, "azp": "web"})))
        .expect("azp");
    assert_eq!(c.client_id(), Some("web"));
}

#[test]
fn numeric_dates_outside_i64_or_with_exponents_are_malformed_not_far_future() {
    let v = validator();
    let (later, now) = ((now() + 600).to_string(), now().to_string());
    // RFC 9068 claims with the given `exp`, `iat` and optional `nbf` JSON text.
    let claims = |exp: &str, iat: &str, nbf: Option<&str>| {
        let nbf = nbf.map(|n| format!(r#","nbf":{n}"#)).unwrap_or_default();
        format!(
            r#"{{"iss":"{ISSUER}","sub":"c","client_id":"c","aud":"{AUDIENCE}","jti":"j","exp":{exp},"iat":{iat}{nbf}}}"#
        )
    };
    for (claim, payload) in [
        ("exp", claims("1e300", &now, None)),
        ("exp", claims("9223372036854775808", &now, None)),
        ("exp", claims("18446744073709551615", &now, None)),
        ("exp", claims(&format!("{later}e0"), &now, None)),
        ("exp", claims("1.7976931348623157e308", &now, None)),
        ("nbf", claims(&later, &now, Some("-1e300"))),
        ("iat", claims(&later, "-9223372036854775809", None)),
    ] {
        let err = v.validate(&raw_token(&payload)).expect_err(&payload);
        assert_eq!(
            (err.kind(), err.claim_name()),
            (ErrorKind::Malformed, Some(claim)),
            "{payload}"
        );
    }
    // A plain number still works, fraction and all.
    assert!(
        v.validate(&raw_token(&claims(&format!("{later}.25"), &now, None)))
            .is_ok()
    );
}

#[test]
fn max_token_lifetime_refuses_long_lived_tokens() {
    let v = mint::builder()
        .max_token_lifetime(Duration::from_secs(600))
        .build()
        .expect("validator");
    assert!(
        v.validate(&token("ec-1", json!({"exp": now() + 600})))
            .is_ok()
    );
    for changes in [
        json!({"exp": now() + 3600}),
        json!({"exp": now() + 300, "iat": now() - 400}),
    ] {
        let err = v
            .validate(&token("ec-1", changes.clone()))
            .expect_err("too long");
        assert_eq!(err.kind(), ErrorKind::LifetimeTooLong, "{changes}");
    }
    // Without the setting, long-lived tokens pass.
    assert!(
        validator()
            .validate(&token("ec-1", json!({"exp": now() + 86_400})))
            .is_ok()
    );
}

#[test]
fn sender_constrained_tokens_are_refused_as_bearer_tokens() {
    let v = validator();
    for cnf in [
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jwk": {"kty": "OKP"}}),
        json!({}),
    ] {
        let t = token("ec-1", json!({ "cnf": cnf.clone() }));
        let err = v.validate(&t).expect_err("bound");
        assert_eq!(err.kind(), ErrorKind::SenderConstrained, "{cnf}");
        // The cache does not change the answer.
        assert_eq!(
            v.validate(&t).expect_err("bound").kind(),
            ErrorKind::SenderConstrained
        );
    }
    let err = v
        .validate(&token("ec-1", json!({"cnf": "jkt"})))
        .expect_err("not an object");
    assert_eq!(
        (err.kind(), err.claim_name()),
        (ErrorKind::InvalidClaimType, Some("cnf"))
    );
}

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

#[test]
fn authorize_checks_scopes_after_the_token() {
    let v = validator();
    let t = token("ec-1", json!({"scope": "read"}));
    assert!(
        v.authorize(&t, &RequiredScopes::all(["read"]).expect("scopes"))
            .is_ok()
    );
    let err = v
        .authorize(
            &t,
            &RequiredScopes::any(["admin", "write"]).expect("scopes"),
        )
        .expect_err("scope");
    assert_eq!(err.kind(), ErrorKind::InsufficientScope);
    let expired = token("ec-1", json!({"exp": now() - 3600, "scope": "admin"}));
    let err = v
        .authorize(&expired, &RequiredScopes::all(["admin"]).expect("scopes"))
        .expect_err("expired first");
    assert_eq!(err.kind(), ErrorKind::Expired);
}
