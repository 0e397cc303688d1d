//! Signature, profile, dates, issuer, audience, lifetime, binding: one token at a time.

use std::time::Duration;

use serde_json::json;

use super::validator;
use crate::testkit::{self as mint, AUDIENCE, ISSUER, now, token, token_with};
use crate::validator::Verify;
use crate::{ErrorKind, KeySet, Profile, RequiredScopes, Validator, keys::Key};

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
    let kidless = KeySet::new([
        Key::from_pem(mint::RSA2_PUBLIC, crate::keys::Algorithm::RS256).expect("key"),
    ]);
    let v = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(kidless)
        .build()
        .expect("v");
    // Signed by that key, naming a kid the set does not have: accepted.
    let (alg, key) = (
        crate::keys::Algorithm::RS256,
        mint::encoding_key_for(crate::keys::Algorithm::RS256, mint::RSA2_PRIVATE),
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
        Key::from_pem(mint::EC256_PUBLIC, crate::keys::Algorithm::ES256)
            .expect("k")
            .with_kid("a"),
        Key::from_pem(mint::EC256_PUBLIC, crate::keys::Algorithm::ES256)
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

#[test]
fn acr_and_auth_time_are_verified_facts_of_their_json_type() {
    let v = validator();
    let at = now() - 120;
    // A string and a NumericDate (a fraction rounded towards the past: never younger).
    let c = v
        .validate(&token(
            "ec-1",
            json!({"acr": "urn:bearer-guard:acr:mfa", "auth_time": at as f64 + 0.9}),
        ))
        .expect("valid");
    assert_eq!(c.acr.as_deref(), Some("urn:bearer-guard:acr:mfa"));
    assert_eq!(c.auth_time, Some(at));
    for auth_time in [json!(at), json!(at as f64 + 0.9)] {
        let jwt = token("ec-1", json!({"acr": "phr", "auth_time": auth_time}));
        let Verify::Done(Ok(verified)) = v.verify(&jwt, false) else {
            panic!("valid");
        };
        assert_eq!(verified.token.acr(), Some("phr"));
        assert_eq!(verified.token.auth_time(), Some(at), "{auth_time}");
    }
    // Absent, both are `None`: a client-credentials token has neither.
    let Verify::Done(Ok(plain)) = v.verify(&token("ec-1", json!({})), false) else {
        panic!("valid");
    };
    assert_eq!((plain.token.acr(), plain.token.auth_time()), (None, None));
    // Wrongly typed: refused, the claim named, never read as absent.
    for (changes, kind, claim) in [
        (json!({"acr": 1}), ErrorKind::InvalidClaimType, "acr"),
        (json!({"acr": ["mfa"]}), ErrorKind::InvalidClaimType, "acr"),
        (json!({"acr": {}}), ErrorKind::InvalidClaimType, "acr"),
        (
            json!({"auth_time": at.to_string()}),
            ErrorKind::InvalidClaimType,
            "auth_time",
        ),
        (
            json!({"auth_time": true}),
            ErrorKind::InvalidClaimType,
            "auth_time",
        ),
        (
            json!({"auth_time": [at]}),
            ErrorKind::InvalidClaimType,
            "auth_time",
        ),
    ] {
        let err = v
            .validate(&token("ec-1", changes.clone()))
            .expect_err("wrong type");
        assert_eq!(
            (err.kind(), err.claim_name()),
            (kind, Some(claim)),
            "{changes}"
        );
    }
    // An exponent or a number past i64 is malformed, as for the other dates.
    for text in ["1e9", "9223372036854775808"] {
        let payload = format!(
            r#"{{"iss":"{ISSUER}","sub":"c","client_id":"c","aud":"{AUDIENCE}","jti":"j","exp":{},"iat":{},"auth_time":{text}}}"#,
            now() + 600,
            now()
        );
        let err = v.validate(&raw_token(&payload)).expect_err(text);
        assert_eq!(
            (err.kind(), err.claim_name()),
            (ErrorKind::Malformed, Some("auth_time")),
            "{text}"
        );
    }
}
