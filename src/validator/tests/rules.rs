//! The validator's rules on tokens, each through the layer: the status, the challenge and
//! the refusal's kind a client sees when a token breaks one.

use serde_json::json;

use crate::testkit::layer;
use crate::testkit::{self as mint, AUDIENCE, ISSUER, now, token, token_with};
use crate::{ErrorKind, Validator};

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

/// `token` is refused as `expected`, both by the bare validator and through the layer (401,
/// `error="invalid_token"`, no body).
async fn assert_invalid_token(token: &str, expected: ErrorKind) {
    assert_eq!(
        validator()
            .validate(token)
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(expected)
    );
    layer::assert_invalid_token(&validator(), token, expected).await;
}

#[tokio::test]
async fn rejects_expired_token_with_invalid_token() {
    assert_invalid_token(
        &token("ec-1", json!({"exp": now() - 61})),
        ErrorKind::Expired,
    )
    .await;
}

#[tokio::test]
async fn rejects_not_yet_valid_and_future_iat() {
    assert_invalid_token(
        &token("ec-1", json!({"nbf": now() + 120})),
        ErrorKind::NotYetValid,
    )
    .await;
    assert_invalid_token(
        &token("ec-1", json!({"iat": now() + 120})),
        ErrorKind::IssuedInFuture,
    )
    .await;
}

#[tokio::test]
async fn rejects_missing_exp() {
    assert_invalid_token(
        &token("ec-1", json!({"exp": null})),
        ErrorKind::MissingClaim,
    )
    .await;
}

#[tokio::test]
async fn rejects_wrong_issuer_exactly() {
    for iss in [
        json!("https://issuer.test/"),
        json!("https://ISSUER.test"),
        json!("https://evil.test"),
    ] {
        assert_invalid_token(
            &token("ec-1", json!({"iss": iss})),
            ErrorKind::InvalidIssuer,
        )
        .await;
    }
    assert_invalid_token(
        &token("ec-1", json!({"iss": null})),
        ErrorKind::MissingClaim,
    )
    .await;
    assert_invalid_token(
        &token("ec-1", json!({"iss": [ISSUER]})),
        ErrorKind::InvalidClaimType,
    )
    .await;
}

#[tokio::test]
async fn audience_string_or_array_must_contain_ours() {
    let v = validator();
    assert!(
        v.validate(&token("ec-1", json!({"aud": ["other", AUDIENCE]})))
            .is_ok()
    );
    assert_invalid_token(
        &token("ec-1", json!({"aud": "https://other.test"})),
        ErrorKind::InvalidAudience,
    )
    .await;
    assert_invalid_token(
        &token("ec-1", json!({"aud": []})),
        ErrorKind::InvalidAudience,
    )
    .await;
    assert_invalid_token(
        &token("ec-1", json!({"aud": null})),
        ErrorKind::MissingClaim,
    )
    .await;
    assert_invalid_token(
        &token("ec-1", json!({"aud": [AUDIENCE, 1]})),
        ErrorKind::InvalidClaimType,
    )
    .await;
}

#[tokio::test]
async fn typ_must_be_at_jwt_unless_opted_out() {
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        assert!(
            validator()
                .validate(&token_with("ec-1", json!({"typ": typ}), json!({})))
                .is_ok(),
            "{typ}"
        );
    }
    for typ in [json!("JWT"), json!(null), json!("id_token+jwt"), json!(1)] {
        assert_invalid_token(
            &token_with("ec-1", json!({"typ": typ}), json!({})),
            ErrorKind::InvalidType,
        )
        .await;
    }
    let lenient = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(validator().keys().clone())
        .profile(crate::Profile::Jwt)
        .build()
        .expect("validator");
    assert!(
        lenient
            .validate(&token_with("ec-1", json!({"typ": "JWT"}), json!({})))
            .is_ok()
    );
    assert!(
        lenient
            .validate(&token_with("ec-1", json!({"typ": null}), json!({})))
            .is_ok()
    );
    let err = lenient
        .validate(&token_with("ec-1", json!({"typ": "dpop+jwt"}), json!({})))
        .expect_err("dpop");
    assert_eq!(err.kind(), ErrorKind::InvalidType);
}

#[tokio::test]
async fn rejects_duplicate_members_rather_than_picking_one() {
    let (alg, key) = mint::encoding_key("ec-1");
    let header = r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#;
    let good = mint::claims(json!({})).to_string();
    let dup_claims = format!(r#"{{"aud":"https://evil.test",{}"#, &good[1..]);
    let t = mint::sign_raw(alg, &key, header, &dup_claims);
    assert_invalid_token(&t, ErrorKind::DuplicateMember).await;
    let dup_header = r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1","kid":"ec-1"}"#;
    assert_invalid_token(
        &mint::sign_raw(alg, &key, dup_header, &good),
        ErrorKind::DuplicateMember,
    )
    .await;
}

#[tokio::test]
async fn rejects_critical_header_parameters() {
    let t = token_with("ec-1", json!({"crit": ["exp"], "exp": 1}), json!({}));
    assert_invalid_token(&t, ErrorKind::UnsupportedCritical).await;
    let t = token_with("ec-1", json!({"crit": ["b64"], "b64": false}), json!({}));
    assert_invalid_token(&t, ErrorKind::UnsupportedCritical).await;
}

#[tokio::test]
async fn kid_selects_the_key_and_alg_must_match_it() {
    // A token signed by the EC key but naming the Ed25519 key's kid.
    let (alg, key) = mint::encoding_key("ec-1");
    let header = mint::header(alg, "ed-1", json!({})).to_string();
    let t = mint::sign_raw(alg, &key, &header, &mint::claims(json!({})).to_string());
    assert_invalid_token(&t, ErrorKind::AlgorithmMismatch).await;
    let t = token_with("ec-1", json!({"kid": "unknown"}), json!({}));
    assert_invalid_token(&t, ErrorKind::UnknownKey).await;
}

#[tokio::test]
async fn rejects_tampered_payload_and_signature() {
    let t = token("rsa-1", json!({}));
    let (head, rest) = t.split_once('.').expect("jws");
    let (_, sig) = rest.split_once('.').expect("jws");
    let forged = mint::claims(json!({"scope": "admin"})).to_string();
    use base64::Engine as _;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
    assert_invalid_token(
        &format!("{head}.{forged}.{sig}"),
        ErrorKind::InvalidSignature,
    )
    .await;
    assert_invalid_token(
        &format!("{head}.{}.", rest.split_once('.').expect("jws").0),
        ErrorKind::InvalidSignature,
    )
    .await;
}
