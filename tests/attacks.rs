//! Attack tokens: every known way of getting a forged JWT past a verifier, each asserting the
//! exact [`ErrorKind`] it must be refused with.

use bearer_guard::testkit as mint;

/// The validator's default cap on a token's length (`ValidatorBuilder::max_token_len`).
const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bearer_guard::{ErrorKind, KeySet, Validator, keys::Algorithm, keys::Key};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use mint::{
    AUDIENCE, EC256_PUBLIC, ED_PRIVATE, ED_PUBLIC, HMAC_SECRET, ISSUER, KEYS, RSA_PUBLIC,
    RSA_PUBLIC_PKCS1, RSA2_PRIVATE,
};

/// An attacker's own P-256 key (generated for this file; not trusted by any validator).
const ATTACKER_EC_PRIVATE: &[u8] = b"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV+yH3bHTAPI6j17N
4zi6iNqhaG2lC45AAHRfFXYEgXWhRANCAATUQ3YgVhDTMQxHsfn+f9xIOYDJ885M
UePWfna+WSCn2BWLHyXTT0n13pDO3eJDasfy1DOH5T/wUYhN3FD4ktF1
-----END PRIVATE KEY-----
";
const ATTACKER_EC_PUBLIC: &[u8] = b"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1EN2IFYQ0zEMR7H5/n/cSDmAyfPO
TFHj1n52vlkgp9gVix8l009J9d6Qzt3iQ2rH8tQzh+U/8FGITdxQ+JLRdQ==
-----END PUBLIC KEY-----
";
const ATTACKER_X: &str = "1EN2IFYQ0zEMR7H5_n_cSDmAyfPOTFHj1n52vlkgp9g";
const ATTACKER_Y: &str = "FYsfJdNPSfXekM7d4kNqx_LUM4flP_BRiE3cUPiS0XU";

/// The P-256 group order n.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The real test keys, public halves, each pinned to its algorithm and kid.
fn keys() -> KeySet {
    KEYS.iter()
        .map(|(kid, alg, _, public)| {
            Key::from_pem(public, *alg)
                .expect("test key")
                .with_kid(*kid)
        })
        .collect()
}

fn validator() -> Validator {
    validator_with(keys())
}

fn validator_with(keys: KeySet) -> Validator {
    Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(keys)
        .build()
        .expect("validator")
}

fn untyped_validator() -> Validator {
    Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(keys())
        .profile(bearer_guard::Profile::Jwt)
        .build()
        .expect("validator")
}

/// Asserts that `v` refuses `token` with `kind`.
#[track_caller]
fn refused(v: &Validator, token: &str, kind: ErrorKind, what: &str) {
    match v.validate(token) {
        Ok(claims) => panic!("ACCEPTED {what}: {claims:?}\n  token: {token}"),
        Err(err) => assert_eq!(err.kind(), kind, "{what}\n  token: {token}"),
    }
}

fn enc(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

fn parts(token: &str) -> (&str, &str, &str) {
    let mut it = token.split('.');
    let parts = (
        it.next().expect("header"),
        it.next().expect("payload"),
        it.next().expect("signature"),
    );
    assert!(it.next().is_none(), "three parts");
    parts
}

fn sig_bytes(token: &str) -> Vec<u8> {
    B64.decode(parts(token).2).expect("signature")
}

/// A token with the given header and claims and a signature we choose (no signing).
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        enc(header.to_string()),
        enc(claims.to_string())
    )
}

/// Signs arbitrary compact text `header_b64.payload_b64` (which need not be canonical base64url)
/// and returns the full token.
fn sign_text(alg: Algorithm, key: &EncodingKey, header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let signer = (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory)(&alg, key)
        .expect("signer");
    let sig = signer.try_sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", enc(sig))
}

/// Signs raw header and claims JSON text with `alg` and `key`.
fn sign_json(alg: Algorithm, key: &EncodingKey, header: &str, claims: &str) -> String {
    mint::sign_raw(alg, key, header, claims)
}

fn good_claims() -> Value {
    mint::claims(json!({}))
}

fn attacker_key() -> EncodingKey {
    EncodingKey::from_ec_pem(ATTACKER_EC_PRIVATE).expect("attacker key")
}

fn attacker_jwk(kid: Option<&str>) -> Value {
    let mut jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
        "x": ATTACKER_X, "y": ATTACKER_Y,
    });
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

/// A valid token signed by `kid`, for tests that start from a genuine one.
fn genuine(kid: &str) -> String {
    let t = mint::token(kid, json!({}));
    validator().validate(&t).expect("genuine token is valid");
    t
}

/// Replaces the signature of `token`.
fn with_sig(token: &str, sig: &[u8]) -> String {
    let (h, p, _) = parts(token);
    format!("{h}.{p}.{}", enc(sig))
}

// ---------------------------------------------------------------------------------------------
// Baseline
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_every_test_key_signs_a_valid_token() {
    for (kid, ..) in KEYS {
        genuine(kid);
    }
    // And the Wycheproof-style signature check agrees.
    for (kid, ..) in KEYS {
        keys()
            .verify_signature(&mint::token(kid, json!({})))
            .expect("signature");
    }
}

// ---------------------------------------------------------------------------------------------
// alg: none
// ---------------------------------------------------------------------------------------------

#[test]
fn alg_none_in_every_spelling_is_refused() {
    let v = validator();
    let spellings: Vec<Value> = [
        "none",
        "None",
        "NONE",
        "nOnE",
        "NoNe",
        "none ",
        " none",
        "none\0",
        "none\n",
        "n\u{043e}ne", // Cyrillic o
        "",
        "null",
        "HS256 ",
        "rs256",
        "ES512",
        "HS128",
    ]
    .iter()
    .map(|s| json!(s))
    .chain([
        Value::Null,
        json!(0),
        json!(false),
        json!(["none"]),
        json!(["ES256"]),
        json!({"alg": "ES256"}),
    ])
    .collect();
    let copied_ec = parts(&genuine("ec-1")).2.to_owned();
    let copied_rsa = parts(&genuine("rsa-1")).2.to_owned();
    let kids: Vec<Option<&str>> = std::iter::once(None)
        .chain(KEYS.iter().map(|k| Some(k.0)))
        .collect();
    let mut n = 0;
    for alg in &spellings {
        for kid in &kids {
            for sig in ["", &copied_ec, &copied_rsa] {
                let mut header = json!({ "alg": alg, "typ": "at+jwt" });
                if let Some(kid) = kid {
                    header["kid"] = json!(kid);
                }
                let t = forge(&header, &good_claims(), sig);
                refused(
                    &v,
                    &t,
                    ErrorKind::UnsupportedAlgorithm,
                    &format!("alg {alg} kid {kid:?}"),
                );
                assert_eq!(
                    keys().verify_signature(&t).expect_err("none").kind(),
                    ErrorKind::UnsupportedAlgorithm
                );
                n += 1;
            }
        }
    }
    assert!(n > 300, "{n}");

    // No `alg` at all.
    for kid in &kids {
        let mut header = json!({ "typ": "at+jwt" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let t = forge(&header, &good_claims(), &copied_ec);
        refused(&v, &t, ErrorKind::UnsupportedAlgorithm, "no alg");
    }
    // The unsecured JWS form without the trailing dot is not even three parts.
    let h = enc(json!({"alg":"none"}).to_string());
    let p = enc(good_claims().to_string());
    refused(&v, &format!("{h}.{p}"), ErrorKind::Malformed, "two parts");
}

// ---------------------------------------------------------------------------------------------
// Algorithm confusion: asymmetric public key used as an HMAC secret
// ---------------------------------------------------------------------------------------------

/// Every encoding of a public key an HMAC-confusion attacker might try.
fn public_key_encodings(kid: &str, public_pem: &[u8]) -> Vec<(String, Vec<u8>)> {
    let pem = public_pem.to_vec();
    let trimmed = std::str::from_utf8(public_pem)
        .expect("pem")
        .trim_end()
        .as_bytes()
        .to_vec();
    let der = mint::pem_body(public_pem);
    let jwk = mint::jwk(kid);
    let mut out = vec![
        ("PEM text".to_owned(), pem),
        ("PEM text without final newline".to_owned(), trimmed),
        ("DER SPKI".to_owned(), der.clone()),
        ("JWK JSON".to_owned(), jwk.to_string().into_bytes()),
        (
            "JWKS JSON".to_owned(),
            json!({ "keys": [jwk.clone()] }).to_string().into_bytes(),
        ),
    ];
    for member in ["n", "x"] {
        if let Some(b64) = jwk[member].as_str() {
            out.push((format!("base64url `{member}`"), b64.as_bytes().to_vec()));
            out.push((format!("raw `{member}`"), B64.decode(b64).expect("b64")));
        }
    }
    if jwk["kty"] == "EC" {
        // The uncompressed SEC1 point, the last 65 bytes of the SPKI.
        out.push(("SEC1 point".to_owned(), der[der.len() - 65..].to_vec()));
    }
    out
}

#[test]
fn rs256_to_hs256_key_confusion_is_refused() {
    let v = validator();
    let mut secrets = public_key_encodings("rsa-1", RSA_PUBLIC);
    secrets.push(("PEM PKCS#1 text".to_owned(), RSA_PUBLIC_PKCS1.to_vec()));
    secrets.push(("DER PKCS#1".to_owned(), mint::pem_body(RSA_PUBLIC_PKCS1)));
    let mut n = 0;
    for (what, secret) in &secrets {
        let key = EncodingKey::from_secret(secret);
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for kid in [Some("rsa-1"), Some("ps-1"), None] {
                let mut header = json!({ "alg": mint::alg_name(alg), "typ": "at+jwt" });
                if let Some(kid) = kid {
                    header["kid"] = json!(kid);
                }
                let t = sign_json(alg, &key, &header.to_string(), &good_claims().to_string());
                refused(
                    &v,
                    &t,
                    ErrorKind::AlgorithmMismatch,
                    &format!("{alg:?} with RSA {what} as secret, kid {kid:?}"),
                );
                n += 1;
            }
        }
    }
    assert!(n >= 60, "{n}");
}

#[test]
fn ec_and_ed_public_keys_as_hmac_secret_are_refused() {
    let v = validator();
    for (kid, public) in [("ec-1", EC256_PUBLIC), ("ed-1", ED_PUBLIC)] {
        for (what, secret) in public_key_encodings(kid, public) {
            let key = EncodingKey::from_secret(&secret);
            for with_kid in [true, false] {
                let mut header = json!({ "alg": "HS256", "typ": "at+jwt" });
                if with_kid {
                    header["kid"] = json!(kid);
                }
                let t = sign_json(
                    Algorithm::HS256,
                    &key,
                    &header.to_string(),
                    &good_claims().to_string(),
                );
                refused(
                    &v,
                    &t,
                    ErrorKind::AlgorithmMismatch,
                    &format!("HS256 with {kid} {what}, kid: {with_kid}"),
                );
            }
        }
    }
}

#[test]
fn key_confusion_with_a_real_hmac_key_in_the_set() {
    let rsa = Key::from_pem(RSA_PUBLIC, Algorithm::RS256)
        .expect("rsa")
        .with_kid("rsa-1");
    let hmac = Key::hmac(HMAC_SECRET, Algorithm::HS256).expect("hmac");
    let v = validator_with(KeySet::new([rsa.clone(), hmac.clone().with_kid("hs-1")]));
    let claims = good_claims().to_string();
    let rsa_pem = EncodingKey::from_secret(RSA_PUBLIC);
    let real_secret = EncodingKey::from_secret(HMAC_SECRET);
    let hs = |kid: Option<&str>, key: &EncodingKey| {
        let mut header = json!({ "alg": "HS256", "typ": "at+jwt" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        sign_json(Algorithm::HS256, key, &header.to_string(), &claims)
    };

    // Control: the genuine HMAC token passes.
    v.validate(&hs(Some("hs-1"), &real_secret))
        .expect("genuine HS256");
    // The RSA kid with HS256 never reaches the HMAC key, whatever the secret.
    refused(
        &v,
        &hs(Some("rsa-1"), &rsa_pem),
        ErrorKind::AlgorithmMismatch,
        "HS256 + RSA kid, RSA PEM as secret",
    );
    refused(
        &v,
        &hs(Some("rsa-1"), &real_secret),
        ErrorKind::AlgorithmMismatch,
        "HS256 + RSA kid, even with the real HMAC secret",
    );
    for (what, secret) in public_key_encodings("rsa-1", RSA_PUBLIC) {
        let key = EncodingKey::from_secret(&secret);
        refused(
            &v,
            &hs(Some("rsa-1"), &key),
            ErrorKind::AlgorithmMismatch,
            &what,
        );
        // Without a kid, or with the HMAC kid, the HMAC key is used, and the MAC is wrong.
        refused(&v, &hs(None, &key), ErrorKind::InvalidSignature, &what);
        refused(
            &v,
            &hs(Some("hs-1"), &key),
            ErrorKind::InvalidSignature,
            &what,
        );
    }
    // An RS256 token naming the HMAC key.
    let (_, rsa_private) = mint::encoding_key("rsa-1");
    let t = sign_json(
        Algorithm::RS256,
        &rsa_private,
        &json!({"alg":"RS256","typ":"at+jwt","kid":"hs-1"}).to_string(),
        &claims,
    );
    refused(
        &v,
        &t,
        ErrorKind::AlgorithmMismatch,
        "RS256 naming the HMAC kid",
    );

    // Same with an HMAC key that has no kid: a token naming the RSA kid still cannot fall
    // through to it; an unknown kid falls through to the kid-less HMAC key, fails its MAC, and
    // is reported as an unknown key (no key of its kid verified it).
    let v = validator_with(KeySet::new([rsa, hmac]));
    refused(
        &v,
        &hs(Some("rsa-1"), &rsa_pem),
        ErrorKind::AlgorithmMismatch,
        "kid-less HMAC key, RSA kid",
    );
    refused(
        &v,
        &hs(Some("nope"), &rsa_pem),
        ErrorKind::UnknownKey,
        "kid-less HMAC key, unknown kid",
    );
    refused(
        &v,
        &hs(None, &rsa_pem),
        ErrorKind::InvalidSignature,
        "kid-less HMAC key, no kid",
    );
}

#[test]
fn hmac_is_never_used_without_an_explicit_hmac_key() {
    // A JWKS that smuggles an `oct` key in: the loader drops it.
    let doc = json!({ "keys": [
        mint::jwk("ec-1"),
        { "kty": "oct", "kid": "hs", "alg": "HS256", "k": enc(HMAC_SECRET) },
    ]});
    let set = KeySet::from_jwks_json(doc.to_string().as_bytes()).expect("jwks");
    assert_eq!(set.len(), 1);
    let v = validator_with(set);
    let t = sign_json(
        Algorithm::HS256,
        &EncodingKey::from_secret(HMAC_SECRET),
        &json!({"alg":"HS256","typ":"at+jwt","kid":"hs"}).to_string(),
        &good_claims().to_string(),
    );
    refused(&v, &t, ErrorKind::UnknownKey, "oct key from a JWKS");
}

// ---------------------------------------------------------------------------------------------
// kid
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_and_injected_kids_are_refused() {
    let v = validator();
    let long = "k".repeat(4000);
    let kids = [
        "nope",
        "../../dev/null",
        "../../../../../../etc/passwd",
        "/dev/null",
        "file:///dev/null",
        "https://attacker.example/jwks.json",
        "' OR '1'='1",
        "ec-1' --",
        "ec-1\" OR \"\"=\"",
        "'; DROP TABLE keys; --",
        "$(id)",
        "{{7*7}}",
        "%00",
        "ec-1\0",
        "EC-1",
        " ec-1",
        "ec-1 ",
        "ec\u{2010}1", // Unicode hyphen
        "",
        long.as_str(),
    ];
    let (alg, key) = mint::encoding_key("ec-1");
    for kid in kids {
        let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
        // Genuinely signed by the ec-1 key: only the kid is wrong.
        let t = sign_json(alg, &key, &header.to_string(), &good_claims().to_string());
        refused(&v, &t, ErrorKind::UnknownKey, &format!("kid {kid:?}"));
    }
    // kid of the wrong JSON type.
    for kid in [
        json!(1),
        json!(0.5),
        json!(true),
        Value::Null,
        json!(["ec-1"]),
        json!({"kid": "ec-1"}),
    ] {
        let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
        let t = sign_json(alg, &key, &header.to_string(), &good_claims().to_string());
        refused(&v, &t, ErrorKind::Malformed, &format!("kid {kid}"));
    }
    // A repeated kid.
    let t = sign_json(
        alg,
        &key,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"nope","kid":"ec-1"}"#,
        &good_claims().to_string(),
    );
    refused(&v, &t, ErrorKind::DuplicateMember, "kid twice");
}

#[test]
fn kid_of_a_key_with_another_algorithm_is_refused() {
    let v = validator();
    let claims = good_claims().to_string();
    // (signing key, header alg, header kid)
    let cases = [
        ("ec-1", "ES256", "rsa-1"),
        ("ec-1", "ES256", "ec384-1"),
        ("ec-1", "ES256", "ed-1"),
        ("rsa-1", "RS256", "ec-1"),
        ("rsa-1", "RS256", "ps-1"),
        ("ps-1", "PS256", "rsa-1"),
        ("ec384-1", "ES384", "ec-1"),
        ("ed-1", "EdDSA", "ec-1"),
        ("ed-1", "Ed25519", "ec-1"),
    ];
    for (signer, alg_name, kid) in cases {
        let (alg, key) = mint::encoding_key(signer);
        let header = json!({ "alg": alg_name, "typ": "at+jwt", "kid": kid });
        let t = sign_json(alg, &key, &header.to_string(), &claims);
        refused(
            &v,
            &t,
            ErrorKind::AlgorithmMismatch,
            &format!("{alg_name} signed by {signer}, kid {kid}"),
        );
    }
    // Same RSA key material under two kids: an RS256 signature under PS256's name (with the
    // PS256 kid) is a plain bad signature.
    let (_, rsa) = mint::encoding_key("rsa-1");
    let t = sign_json(
        Algorithm::RS256,
        &rsa,
        &json!({"alg":"PS256","typ":"at+jwt","kid":"ps-1"}).to_string(),
        &claims,
    );
    refused(
        &v,
        &t,
        ErrorKind::InvalidSignature,
        "PS256 header, RS256 signature",
    );
    let t = sign_json(
        Algorithm::PS256,
        &rsa,
        &json!({"alg":"RS256","typ":"at+jwt","kid":"rsa-1"}).to_string(),
        &claims,
    );
    refused(
        &v,
        &t,
        ErrorKind::InvalidSignature,
        "RS256 header, PS256 signature",
    );
}

// ---------------------------------------------------------------------------------------------
// Keys named by the token: jwk, jku, x5u, x5c
// ---------------------------------------------------------------------------------------------

#[test]
fn embedded_jwk_with_the_attackers_key_is_refused() {
    let v = validator();
    let key = attacker_key();
    let claims = good_claims().to_string();
    let cases = [
        (None, None, ErrorKind::InvalidSignature),
        (Some("ec-1"), Some("ec-1"), ErrorKind::InvalidSignature),
        (Some("ec-1"), None, ErrorKind::InvalidSignature),
        (None, Some("attacker"), ErrorKind::InvalidSignature),
        (Some("attacker"), Some("attacker"), ErrorKind::UnknownKey),
    ];
    for (kid, jwk_kid, kind) in cases {
        let mut header = json!({
            "alg": "ES256", "typ": "at+jwt", "jwk": attacker_jwk(jwk_kid),
        });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let t = sign_json(Algorithm::ES256, &key, &header.to_string(), &claims);
        // The attacker's token is well-formed and correctly signed by the embedded key.
        let attacker_set = KeySet::new([
            Key::from_pem(ATTACKER_EC_PUBLIC, Algorithm::ES256).expect("attacker public key")
        ]);
        if kid.is_none() {
            attacker_set
                .verify_signature(&t)
                .expect("signed by the embedded key");
        }
        refused(
            &v,
            &t,
            kind,
            &format!("embedded jwk, kid {kid:?}, jwk kid {jwk_kid:?}"),
        );
    }
    // An embedded HMAC key with an HS256 token.
    let secret = b"attacker-chosen-secret-attacker-chosen";
    let header = json!({
        "alg": "HS256", "typ": "at+jwt",
        "jwk": { "kty": "oct", "k": enc(secret) },
    });
    let t = sign_json(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret),
        &header.to_string(),
        &claims,
    );
    refused(&v, &t, ErrorKind::AlgorithmMismatch, "embedded oct jwk");
}

#[test]
fn jku_x5u_and_x5c_are_ignored_without_any_network_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let local = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let v = validator();
    let key = attacker_key();
    let claims = good_claims().to_string();
    let chain = [
        STANDARD.encode(mint::pem_body(ATTACKER_EC_PUBLIC)),
        STANDARD.encode(b"not really a CA certificate"),
    ];
    for url in [
        "http://127.0.0.1:1/",
        "http://127.0.0.1:1/jwks.json",
        &local,
    ] {
        for member in ["jku", "x5u"] {
            for (kid, kind) in [
                (None, ErrorKind::InvalidSignature),
                (Some("ec-1"), ErrorKind::InvalidSignature),
                (Some("attacker"), ErrorKind::UnknownKey),
            ] {
                let mut header = json!({ "alg": "ES256", "typ": "at+jwt" });
                header[member] = json!(url);
                if let Some(kid) = kid {
                    header["kid"] = json!(kid);
                }
                let t = sign_json(Algorithm::ES256, &key, &header.to_string(), &claims);
                refused(&v, &t, kind, &format!("{member} {url} kid {kid:?}"));
            }
        }
    }
    for kid in [None, Some("ec-1")] {
        let mut header = json!({ "alg": "ES256", "typ": "at+jwt", "x5c": chain });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let t = sign_json(Algorithm::ES256, &key, &header.to_string(), &claims);
        refused(&v, &t, ErrorKind::InvalidSignature, "x5c");
    }
    // Everything at once.
    let header = json!({
        "alg": "ES256", "typ": "at+jwt", "kid": "ec-1",
        "jwk": attacker_jwk(Some("ec-1")), "jku": local, "x5u": local, "x5c": chain,
        "x5t": "AAAA", "x5t#S256": "AAAA",
    });
    let t = sign_json(Algorithm::ES256, &key, &header.to_string(), &claims);
    refused(
        &v,
        &t,
        ErrorKind::InvalidSignature,
        "all key-naming headers",
    );

    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the validator connected to the jku/x5u URL (from {peer})"),
        Err(e) => panic!("accept: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Signature bytes
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_and_foreign_signatures_are_refused() {
    let v = validator();
    for kid in ["ec-1", "ec384-1", "rsa-1", "ps-1", "ed-1"] {
        let t = genuine(kid);
        let sig = sig_bytes(&t);
        for (what, s) in [
            ("drop last byte", &sig[..sig.len() - 1]),
            ("drop first byte", &sig[1..]),
            ("drop half", &sig[..sig.len() / 2]),
            ("one byte", &sig[..1]),
            ("empty", &sig[..0]),
        ] {
            refused(
                &v,
                &with_sig(&t, s),
                ErrorKind::InvalidSignature,
                &format!("{kid}: {what}"),
            );
        }
        let mut longer = sig.clone();
        longer.push(0);
        refused(
            &v,
            &with_sig(&t, &longer),
            ErrorKind::InvalidSignature,
            "+0",
        );
        let mut flipped = sig.clone();
        flipped[sig.len() / 2] ^= 1;
        refused(
            &v,
            &with_sig(&t, &flipped),
            ErrorKind::InvalidSignature,
            "bit flip",
        );
        // Signature part missing entirely (two dots, nothing after).
        let (h, p, _) = parts(&t);
        refused(
            &v,
            &format!("{h}.{p}."),
            ErrorKind::InvalidSignature,
            "empty part",
        );
    }

    // Signed by the second RSA key, named as the first.
    let claims = good_claims().to_string();
    let rsa2 = EncodingKey::from_rsa_pem(RSA2_PRIVATE).expect("rsa2");
    for (alg, kid) in [(Algorithm::RS256, "rsa-1"), (Algorithm::PS256, "ps-1")] {
        let header = mint::header(alg, kid, json!({})).to_string();
        refused(
            &v,
            &sign_json(alg, &rsa2, &header, &claims),
            ErrorKind::InvalidSignature,
            &format!("{alg:?} by RSA2"),
        );
    }

    // A signature of another algorithm family over the same input, under the right header.
    let ed = EncodingKey::from_ed_pem(ED_PRIVATE).expect("ed");
    let (_, ec) = mint::encoding_key("ec-1");
    let (_, rsa) = mint::encoding_key("rsa-1");
    let (_, ec384) = mint::encoding_key("ec384-1");
    let foreign = [
        // (header of, signed with)
        ("ec-1", Algorithm::EdDSA, &ed), // 64 bytes, same length as ES256
        ("ed-1", Algorithm::ES256, &ec), // 64 bytes, same length as Ed25519
        ("rsa-1", Algorithm::ES256, &ec),
        ("ec-1", Algorithm::RS256, &rsa),
        ("ec-1", Algorithm::ES384, &ec384),
        ("ec384-1", Algorithm::ES256, &ec),
        (
            "ec-1",
            Algorithm::HS256,
            &EncodingKey::from_secret(HMAC_SECRET),
        ),
    ];
    for (kid, signer_alg, signer) in foreign {
        let (alg, _) = mint::encoding_key(kid);
        let header = enc(mint::header(alg, kid, json!({})).to_string());
        let payload = enc(&claims);
        let donor = sign_text(signer_alg, signer, &header, &payload);
        refused(
            &v,
            &donor,
            ErrorKind::InvalidSignature,
            &format!("{kid} header, {signer_alg:?} signature"),
        );
    }
}

/// Flips unused low bits of the last character of a base64url segment, if it has any.
fn set_trailing_bits(segment: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused = match segment.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => return None,
    };
    let last = *segment.as_bytes().last()?;
    let idx = ALPHABET.iter().position(|&c| c == last)?;
    assert_eq!(idx & unused, 0, "canonical encoding has zero unused bits");
    let mut s = segment[..segment.len() - 1].to_owned();
    s.push(ALPHABET[idx | 1] as char);
    Some(s)
}

#[test]
fn non_canonical_base64url_is_refused_even_when_signed() {
    let v = validator();
    let (alg, key) = mint::encoding_key("ec-1");
    let header = mint::header(alg, "ec-1", json!({})).to_string();

    // Claims padded so that the payload has unused trailing bits, and a header that has too.
    let mut claims = good_claims();
    let mut pad = String::new();
    loop {
        claims["pad"] = json!(pad);
        if claims.to_string().len() % 3 == 1 {
            break;
        }
        pad.push('x');
    }
    let claims = claims.to_string();
    let mut header_text = header.clone();
    while header_text.len() % 3 != 1 {
        header_text.insert(1, ' ');
    }
    let h = enc(&header_text);
    let p = enc(&claims);
    v.validate(&sign_text(alg, &key, &h, &p))
        .expect("canonical control token");

    // Signature: padding, standard alphabet, trailing bits. The signed text is unchanged.
    let t = sign_text(alg, &key, &h, &p);
    let (_, _, s) = parts(&t);
    for (what, sig) in [
        ("padding =", format!("{s}==")),
        ("single =", format!("{s}=")),
        ("trailing bits", set_trailing_bits(s).expect("64-byte sig")),
        ("trailing newline", format!("{s}\n")),
    ] {
        refused(
            &v,
            &format!("{h}.{p}.{sig}"),
            ErrorKind::Malformed,
            &format!("signature {what}"),
        );
    }
    // Standard alphabet in the signature: find a signature that has `-` or `_` in it.
    let rsa_token = (0..50)
        .map(|_| genuine("rsa-1"))
        .find(|t| parts(t).2.contains(['-', '_']))
        .expect("an RSA signature with - or _");
    let (rh, rp, rs) = parts(&rsa_token);
    let standard = rs.replace('-', "+").replace('_', "/");
    refused(
        &v,
        &format!("{rh}.{rp}.{standard}"),
        ErrorKind::Malformed,
        "signature in the standard alphabet",
    );

    // Header and payload: non-canonical text that decodes to the same bytes, *signed as is*,
    // so only a strict decoder stops it.
    let h_bits = set_trailing_bits(&h).expect("header has unused bits");
    let p_bits = set_trailing_bits(&p).expect("payload has unused bits");
    let cases = [
        ("header trailing bits", h_bits.clone(), p.clone()),
        ("payload trailing bits", h.clone(), p_bits),
        ("header padding", format!("{h}=="), p.clone()),
        ("payload padding", h.clone(), format!("{p}==")),
        (
            "header standard alphabet",
            STANDARD.encode(&header_text).replace('=', ""),
            p.clone(),
        ),
        (
            "payload standard alphabet",
            h.clone(),
            STANDARD.encode(&claims).replace('=', ""),
        ),
        (
            "payload with a space",
            h.clone(),
            format!("{} {}", &p[..10], &p[10..]),
        ),
        (
            "payload with a newline",
            h.clone(),
            format!("{}\n{}", &p[..10], &p[10..]),
        ),
        (
            "header with a space",
            format!("{} {}", &h[..10], &h[10..]),
            p.clone(),
        ),
    ];
    for (what, hh, pp) in cases {
        if hh == h && pp == p {
            continue; // the standard alphabet happened to coincide
        }
        let t = sign_text(alg, &key, &hh, &pp);
        refused(&v, &t, ErrorKind::Malformed, what);
        assert_eq!(
            keys().verify_signature(&t).expect_err(what).kind(),
            ErrorKind::Malformed,
            "{what}"
        );
    }
}

/// Big-endian `a - b` for 32-byte values (a >= b).
fn sub256(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = u8::try_from(d).expect("byte");
    }
    assert_eq!(borrow, 0);
    out
}

fn der_int(bytes: &[u8]) -> Vec<u8> {
    let trimmed = &bytes[bytes.iter().take_while(|&&b| b == 0).count()..];
    let mut v = Vec::new();
    if trimmed.first().is_some_and(|&b| b >= 0x80) {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    let mut out = vec![0x02, u8::try_from(v.len()).expect("len")];
    out.extend(v);
    out
}

#[test]
fn es256_special_signatures_are_refused() {
    let v = validator();
    let t = genuine("ec-1");
    let sig = sig_bytes(&t);
    assert_eq!(sig.len(), 64);
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let mut one = [0u8; 32];
    one[31] = 1;
    let n_minus_1 = sub256(&P256_N, &one);
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r=s=0", vec![0; 64]),
        ("r=0 s=1", cat(&zero, &one)),
        ("r=1 s=0", cat(&one, &zero)),
        ("r=1 s=1", cat(&one, &one)),
        ("r=n s=1", cat(&P256_N, &one)),
        ("r=n s=n", cat(&P256_N, &P256_N)),
        ("r=n-1 s=n-1", cat(&n_minus_1, &n_minus_1)),
        ("r=0 s=real", cat(&zero, s)),
        ("r=real s=0", cat(r, &zero)),
        ("r=real s=n", cat(r, &P256_N)),
        ("r=n s=real", cat(&P256_N, s)),
        ("all ff", vec![0xff; 64]),
        ("swapped r and s", cat(s, r)),
    ];
    for (what, bytes) in cases {
        refused(&v, &with_sig(&t, &bytes), ErrorKind::InvalidSignature, what);
    }
    // The DER (ASN.1) encoding of the same, valid signature.
    let body = [der_int(r), der_int(s)].concat();
    let mut der = vec![0x30, u8::try_from(body.len()).expect("len")];
    der.extend(body);
    refused(&v, &with_sig(&t, &der), ErrorKind::InvalidSignature, "DER");
    // 0-padded to 66 bytes per coordinate, as some P-521-minded encoders do.
    let padded = [&[0u8][..], r, &[0u8][..], s].concat();
    refused(
        &v,
        &with_sig(&t, &padded),
        ErrorKind::InvalidSignature,
        "zero-padded r, s",
    );
}

/// ECDSA malleability: (r, n - s) is a second valid signature of the same message. RFC 7518
/// does not require low-s, so accepting it is not a forgery (the claims are the ones the issuer
/// signed), but it means the same token has two spellings: a replay cache keyed on the raw
/// token text, not on `jti`, can be bypassed. This test records the behaviour.
#[test]
fn es256_high_s_twin_signature_is_recorded() {
    let v = validator();
    let t = genuine("ec-1");
    let sig = sig_bytes(&t);
    let (r, s) = sig.split_at(32);
    let twin = [r, &sub256(&P256_N, s)].concat();
    let twin_token = with_sig(&t, &twin);
    assert_ne!(twin_token, t);
    match v.validate(&twin_token) {
        Ok(claims) => {
            let original = v.validate(&t).expect("original");
            assert_eq!(claims.jti, original.jti, "same claims");
            println!("NOTE: ES256 (r, n-s) twin signature is accepted (no low-s rule)");
        }
        Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidSignature),
    }
}

// ---------------------------------------------------------------------------------------------
// typ, ID tokens
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_typ_is_refused_by_the_default_validator() {
    let v = validator();
    let untyped = untyped_validator();
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        Value::Null, // removes it: absent
    ] {
        let t = mint::token_with("ec-1", json!({ "typ": typ }), json!({}));
        refused(&v, &t, ErrorKind::InvalidType, &format!("typ {typ}"));
        untyped
            .validate(&t)
            .unwrap_or_else(|e| panic!("typ {typ} with Profile::Jwt: {e:?}"));
    }
    for typ in [
        json!("id_token+jwt"),
        json!("dpop+jwt"),
        json!("logout+jwt"),
        json!("secevent+jwt"),
        json!("at+jwt "),
        json!(" at+jwt"),
        json!("at+jwt\0"),
        json!("application/at+jwt; charset=utf-8"),
        json!("at-jwt"),
        json!("atjwt"),
        json!("application/"),
        json!("JOSE"),
        json!("JOSE+JSON"),
        json!(""),
        json!(1),
        json!(["at+jwt"]),
        json!({"typ": "at+jwt"}),
        json!(true),
    ] {
        let t = mint::token_with("ec-1", json!({ "typ": typ }), json!({}));
        refused(&v, &t, ErrorKind::InvalidType, &format!("typ {typ}"));
        refused(
            &untyped,
            &t,
            ErrorKind::InvalidType,
            &format!("typ {typ}, untyped"),
        );
    }
    // typ twice.
    let (alg, key) = mint::encoding_key("ec-1");
    let t = sign_json(
        alg,
        &key,
        r#"{"alg":"ES256","kid":"ec-1","typ":"JWT","typ":"at+jwt"}"#,
        &good_claims().to_string(),
    );
    refused(&v, &t, ErrorKind::DuplicateMember, "typ twice");
}

#[test]
fn id_token_shaped_tokens_are_refused() {
    let id_claims = json!({
        "aud": "client-a",
        "azp": "client-a",
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "auth_time": mint::now() - 10,
        "scope": null,
        "client_id": null,
    });
    for kid in ["ec-1", "rsa-1", "ed-1"] {
        for typ in [json!("JWT"), Value::Null] {
            let t = mint::token_with(kid, json!({ "typ": typ }), id_claims.clone());
            refused(
                &validator(),
                &t,
                ErrorKind::InvalidType,
                &format!("ID token by {kid}, typ {typ}"),
            );
            refused(
                &untyped_validator(),
                &t,
                ErrorKind::InvalidAudience,
                &format!("ID token by {kid}, typ {typ}, untyped"),
            );
        }
        let t = mint::token_with(kid, json!({ "typ": "id_token+jwt" }), id_claims.clone());
        refused(
            &untyped_validator(),
            &t,
            ErrorKind::InvalidType,
            "typ id_token+jwt",
        );
    }
    // aud as an array of client ids.
    let mut claims = id_claims;
    claims["aud"] = json!(["client-a", "client-b"]);
    let t = mint::token_with("ec-1", json!({ "typ": "JWT" }), claims);
    refused(
        &untyped_validator(),
        &t,
        ErrorKind::InvalidAudience,
        "aud array",
    );
}

// ---------------------------------------------------------------------------------------------
// Size and nesting
// ---------------------------------------------------------------------------------------------

/// A token signed by ec-1 of exactly `len` bytes (claims padded with a `pad` member, header
/// with spaces).
fn token_of_len(len: usize) -> String {
    let (alg, key) = mint::encoding_key("ec-1");
    let header = mint::header(alg, "ec-1", json!({})).to_string();
    let base = sign_json(alg, &key, &header, &good_claims().to_string()).len();
    for spaces in 0..4 {
        let mut h = header.clone();
        for _ in 0..spaces {
            h.insert(1, ' ');
        }
        let start = (len.saturating_sub(base) * 3 / 4).saturating_sub(20);
        for pad in start..start + 40 {
            let claims = mint::claims(json!({ "pad": "p".repeat(pad) })).to_string();
            let t = sign_json(alg, &key, &h, &claims);
            if t.len() == len {
                return t;
            }
        }
    }
    panic!("no token of {len} bytes");
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let v = validator();
    let cap = DEFAULT_MAX_TOKEN_LEN;
    assert_eq!(cap, 8 * 1024);

    // A genuine token of exactly the cap passes; one byte more is refused.
    let at_cap = token_of_len(cap);
    v.validate(&at_cap).expect("genuine token of exactly 8 KiB");
    let over = token_of_len(cap + 1);
    refused(&v, &over, ErrorKind::TokenTooLarge, "8 KiB + 1");
    refused(&v, &"a".repeat(1 << 20), ErrorKind::TokenTooLarge, "1 MiB");

    // Garbage of exactly the cap is refused for what it is.
    refused(&v, &"a".repeat(cap), ErrorKind::Malformed, "8 KiB of 'a'");
    let dots = format!("{}.{}.", "e".repeat(cap / 2), "e".repeat(cap / 2 - 2));
    assert_eq!(dots.len(), cap);
    refused(&v, &dots, ErrorKind::Malformed, "8 KiB, three parts");
    let mut at_cap_tampered = at_cap.clone().into_bytes();
    let mid = at_cap_tampered.len() / 2;
    at_cap_tampered[mid] = if at_cap_tampered[mid] == b'A' {
        b'B'
    } else {
        b'A'
    };
    refused(
        &v,
        std::str::from_utf8(&at_cap_tampered).expect("ascii"),
        ErrorKind::InvalidSignature,
        "8 KiB, payload tampered",
    );

    // A huge kid.
    let huge = mint::token_with("ec-1", json!({ "kid": "k".repeat(10_000) }), json!({}));
    refused(&v, &huge, ErrorKind::TokenTooLarge, "10 000-byte kid");
    let big = mint::token_with("ec-1", json!({ "kid": "k".repeat(5_000) }), json!({}));
    assert!(big.len() <= cap);
    refused(&v, &big, ErrorKind::UnknownKey, "5 000-byte kid");
}

fn nested(depth: usize, open: &str, close: &str, leaf: &str) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + leaf.len());
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(leaf);
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

#[test]
fn deeply_nested_json_is_refused_without_overflow() {
    let big = Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(keys())
        .max_token_len(4 << 20)
        .build()
        .expect("validator");
    let v = validator();
    let (alg, key) = mint::encoding_key("ec-1");
    let header = mint::header(alg, "ec-1", json!({})).to_string();
    let claims = good_claims().to_string();
    let claims_prefix = &claims[..claims.len() - 1];
    let header_prefix = &header[..header.len() - 1];

    for depth in [200, 2_500, 10_000, 100_000] {
        for (open, close, leaf) in [("[", "]", "1"), ("{\"a\":", "}", "1")] {
            let deep = nested(depth, open, close, leaf);
            // In a claim: parsed after the signature is verified.
            let c = format!(r#"{claims_prefix},"x":{deep}}}"#);
            let t = sign_json(alg, &key, &header, &c);
            let what = format!("{depth} x {open} in claims");
            refused(&big, &t, ErrorKind::Malformed, &what);
            if t.len() <= DEFAULT_MAX_TOKEN_LEN {
                refused(&v, &t, ErrorKind::Malformed, &what);
            } else {
                refused(&v, &t, ErrorKind::TokenTooLarge, &what);
            }
            // In place of the claims that are read into values (aud, scp, scope, exp).
            for member in ["aud", "scp", "scope", "exp"] {
                let mut obj = good_claims();
                obj.as_object_mut().expect("object").remove(member);
                let s = obj.to_string();
                let c = format!(r#"{},"{member}":{deep}}}"#, &s[..s.len() - 1]);
                let t = sign_json(alg, &key, &header, &c);
                refused(
                    &big,
                    &t,
                    ErrorKind::Malformed,
                    &format!("{what} as {member}"),
                );
            }
            // In the header: parsed before any signature work.
            let h = format!(r#"{header_prefix},"x":{deep}}}"#);
            let t = sign_json(alg, &key, &h, &claims);
            refused(
                &big,
                &t,
                ErrorKind::Malformed,
                &format!("{depth} x {open} in header"),
            );
            // The payload itself an array, not an object.
            let t = sign_json(alg, &key, &header, &deep);
            refused(
                &big,
                &t,
                ErrorKind::Malformed,
                &format!("{depth} x {open} as payload"),
            );
        }
    }
    // Through the signature-only API as well.
    let deep = nested(100_000, "[", "]", "");
    let h = format!(r#"{header_prefix},"x":{deep}}}"#);
    let t = sign_json(alg, &key, &h, &claims);
    assert_eq!(
        keys().verify_signature(&t).expect_err("deep header").kind(),
        ErrorKind::Malformed
    );
}

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_shapes_are_malformed() {
    let v = validator();
    let t = genuine("ec-1");
    let (h, p, s) = parts(&t);
    let jwe_header = enc(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa-1","typ":"at+jwt"}"#);
    let cases = [
        (
            "JWE 5 parts",
            format!(
                "{jwe_header}.{}.{}.{}.{}",
                enc([1u8; 256]),
                enc([2u8; 12]),
                p,
                enc([3u8; 16])
            ),
        ),
        ("JWS + 2 extra parts", format!("{t}.{s}.{s}")),
        ("4 parts", format!("{t}.")),
        ("2 parts", format!("{h}.{p}")),
        ("1 part", h.to_owned()),
        ("empty", String::new()),
        ("dots only", "..".to_owned()),
        ("empty header", format!(".{p}.{s}")),
        ("leading space", format!(" {t}")),
        ("trailing space", format!("{t} ")),
        ("trailing newline", format!("{t}\n")),
        ("CRLF inside", format!("{h}\r\n.{p}.{s}")),
        ("space in header", format!("{} {}", &h[..5], &h[5..])),
        (
            "tab in signature",
            format!("{h}.{p}.{}\t{}", &s[..5], &s[5..]),
        ),
        (
            "space in signature",
            format!("{h}.{p}.{} {}", &s[..5], &s[5..]),
        ),
        ("Bearer prefix", format!("Bearer {t}")),
        (
            "header JSON not base64",
            format!("{{\"alg\":\"ES256\"}}.{p}.{s}"),
        ),
        ("header is an array", format!("{}.{p}.{s}", enc("[]"))),
        (
            "header is a string",
            format!("{}.{p}.{s}", enc("\"ES256\"")),
        ),
        ("header not JSON", format!("{}.{p}.{s}", enc("alg=ES256"))),
        (
            "header with trailing data",
            format!(
                "{}.{p}.{s}",
                enc(r#"{"alg":"ES256","kid":"ec-1","typ":"at+jwt"} {}"#)
            ),
        ),
        (
            "header latin-1",
            format!(
                "{}.{p}.{s}",
                enc(b"{\"alg\":\"ES256\",\"kid\":\"ec-1\xff\"}")
            ),
        ),
    ];
    for (what, token) in cases {
        refused(&v, &token, ErrorKind::Malformed, what);
    }
    // Whitespace in the payload is only noticed after the (failing) signature check.
    refused(
        &v,
        &format!("{h}.{} {}.{s}", &p[..5], &p[5..]),
        ErrorKind::InvalidSignature,
        "space in payload",
    );
    refused(
        &v,
        &format!("{h}.{}\n{}.{s}", &p[..5], &p[5..]),
        ErrorKind::InvalidSignature,
        "newline in payload",
    );
}

#[test]
fn duplicate_alg_and_crit_headers_are_refused() {
    let v = validator();
    let (alg, key) = mint::encoding_key("ec-1");
    let claims = good_claims().to_string();
    for header in [
        r#"{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#,
        r#"{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"ec-1"}"#,
        r#"{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#,
        r#"{"alg":"HS256","alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#,
        r#"{"alg":"ES256","\u0061lg":"none","typ":"at+jwt","kid":"ec-1"}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1","x":{"a":1,"a":2}}"#,
    ] {
        let t = sign_json(alg, &key, header, &claims);
        refused(&v, &t, ErrorKind::DuplicateMember, header);
        assert_eq!(
            keys().verify_signature(&t).expect_err(header).kind(),
            ErrorKind::DuplicateMember
        );
    }
    // Unsigned variants (alg none first, empty signature) too.
    let t = format!(
        "{}.{}.",
        enc(r#"{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#),
        enc(&claims)
    );
    refused(&v, &t, ErrorKind::DuplicateMember, "unsigned duplicate alg");

    // Duplicate claims: refused after the signature.
    let c = claims.replacen('{', r#"{"aud":"https://evil.test","#, 1);
    let t = sign_json(
        alg,
        &key,
        &mint::header(alg, "ec-1", json!({})).to_string(),
        &c,
    );
    refused(&v, &t, ErrorKind::DuplicateMember, "aud twice");

    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!(["alg"]),
        json!("exp"),
        Value::Bool(false),
    ] {
        let mut extra = json!({ "crit": crit });
        if crit == json!(["b64"]) {
            extra["b64"] = json!(false); // RFC 7797 unencoded payload
        }
        if crit == json!(["exp"]) {
            extra["exp"] = json!(mint::now() + 3600);
        }
        let t = mint::token_with("ec-1", extra, json!({}));
        refused(
            &v,
            &t,
            ErrorKind::UnsupportedCritical,
            &format!("crit {crit}"),
        );
    }
    // An escaped member name is the same name.
    let t = sign_json(
        alg,
        &key,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1","\u0063rit":["exp"]}"#,
        &claims,
    );
    refused(&v, &t, ErrorKind::UnsupportedCritical, "escaped crit");
    let t = sign_json(
        alg,
        &key,
        r#"{"\u0061lg":"none","typ":"at+jwt","kid":"ec-1"}"#,
        &claims,
    );
    refused(&v, &t, ErrorKind::UnsupportedAlgorithm, "escaped alg none");
    // A null crit is still a crit member.
    let t = sign_json(
        alg,
        &key,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1","crit":null}"#,
        &claims,
    );
    refused(&v, &t, ErrorKind::UnsupportedCritical, "crit null");
}

// ---------------------------------------------------------------------------------------------
// No-panic smoke loop
// ---------------------------------------------------------------------------------------------

#[test]
fn mutations_of_a_valid_token_are_all_refused_without_panic() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = validator();
    let mut failures = Vec::new();
    let mut n = 0;
    for kid in ["ec-1", "ed-1"] {
        let t = genuine(kid);
        let bytes = t.as_bytes();
        let mut mutations: Vec<(String, String)> = Vec::new();
        for (i, &c) in bytes.iter().enumerate() {
            let replacement = match ALPHABET.iter().position(|&a| a == c) {
                Some(idx) => ALPHABET[(idx + 1) % 64],
                None => b'A', // a '.'
            };
            let mut m = bytes.to_vec();
            m[i] = replacement;
            mutations.push((
                format!("{kid} flip @{i}"),
                String::from_utf8(m).expect("ascii"),
            ));
        }
        let step = (t.len() / 200).max(1);
        for i in (0..t.len()).step_by(step).chain([t.len() - 1]) {
            mutations.push((format!("{kid} truncate @{i}"), t[..i].to_owned()));
        }
        for (what, m) in mutations {
            assert_ne!(m, t);
            n += 1;
            match catch_unwind(AssertUnwindSafe(|| v.validate(&m))) {
                Ok(Ok(_)) => failures.push(format!("ACCEPTED {what}: {m}")),
                Ok(Err(_)) => {}
                Err(_) => failures.push(format!("PANIC {what}: {m}")),
            }
        }
    }
    println!("mutation smoke loop: {n} mutations, all refused");
    assert!(n >= 500, "{n}");
    assert!(failures.is_empty(), "{failures:#?}");
}
