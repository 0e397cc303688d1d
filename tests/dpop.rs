//! DPoP proof verification through the public API: a good proof passes, and each check of
//! RFC 9449 §4.3 fails alone (one thing changed from the good proof, one error kind out).
//! Proofs are signed here with the test keys (`tests/keys`), raw JSON and all, or made with
//! `DpopKey`. RFC 9449's own example proofs are unit tests in `src/dpop/verifier.rs` (they
//! need a clock set to 2019); what is logged is `tests/dpop_logs.rs`.

use bearer_guard::testkit as mint;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::dpop::{
    Dpop, DpopError, DpopErrorKind as K, DpopKey, MemoryReplay, ProofCheck, ProofRequest,
    VerifiedProof, jwk_thumbprint,
};
use bearer_guard::keys::Algorithm;
use http::Request;
use serde_json::{Value, json};

const ORIGIN: &str = "https://api.test";
const URL: &str = "https://api.test/accounts";
/// The proof is checked after the token verified; any string stands for it here.
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJjbmYiOnt9fQ.c2lnbmF0dXJl";

fn dpop() -> Dpop {
    Dpop::builder()
        .external_origin(ORIGIN)
        .build()
        .expect("dpop")
}

/// The test key `ec-1` as a bare public JWK.
fn ec_jwk() -> Value {
    let mut jwk = mint::jwk("ec-1");
    for member in ["kid", "alg", "use"] {
        jwk.as_object_mut().expect("object").remove(member);
    }
    jwk
}

fn jkt() -> String {
    jwk_thumbprint(&ec_jwk().to_string(), Algorithm::ES256).expect("thumbprint")
}

fn ath(token: &str) -> String {
    use sha2::Digest as _;
    B64.encode(sha2::Sha256::digest(token.as_bytes()))
}

fn merge(target: &mut Value, changes: Value) {
    let (Value::Object(t), Value::Object(c)) = (target, changes) else {
        panic!("merge takes objects");
    };
    for (k, v) in c {
        if v.is_null() {
            t.remove(&k);
        } else {
            t.insert(k, v);
        }
    }
}

fn header(changes: Value) -> String {
    let mut h = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk() });
    merge(&mut h, changes);
    h.to_string()
}

fn claims(changes: Value) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut c = json!({
        "jti": format!("jti-{}-{}", mint::now(), N.fetch_add(1, Ordering::Relaxed)),
        "htm": "GET",
        "htu": URL,
        "iat": mint::now(),
        "ath": ath(TOKEN),
    });
    merge(&mut c, changes);
    c.to_string()
}

/// A proof signed by `ec-1` from raw header and claims JSON.
fn raw(header: &str, claims: &str) -> String {
    let (_, key) = mint::encoding_key("ec-1");
    mint::sign_raw(Algorithm::ES256, &key, header, claims)
}

/// The good proof with changes (`null` removes a member).
fn proof(header_changes: Value, claim_changes: Value) -> String {
    raw(&header(header_changes), &claims(claim_changes))
}

fn get(proofs: &[&str]) -> Request<()> {
    let mut req = Request::get("/accounts");
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.body(()).expect("request")
}

/// The outcome, which the memory store gives at once.
fn now(check: ProofCheck) -> Result<VerifiedProof, DpopError> {
    match check {
        ProofCheck::Ready(outcome) => outcome,
        ProofCheck::Pending(_) => panic!("the memory replay store answers at once"),
    }
}

fn access(dpop: &Dpop, req: &Request<()>) -> Result<VerifiedProof, DpopError> {
    now(dpop.verify_access(&ProofRequest::from(req), TOKEN, &jkt()))
}

fn kind_of(req: &Request<()>) -> Option<K> {
    access(&dpop(), req).err().map(|e| e.kind())
}

#[test]
fn the_good_proof_passes_and_says_who_signed_it() {
    let p = proof(json!({}), json!({ "jti": "the-jti" }));
    let verified = access(&dpop(), &get(&[&p])).expect("good proof");
    assert_eq!(verified.jkt(), jkt());
    assert_eq!(verified.jti(), "the-jti");
    assert!((verified.iat() - mint::now()).abs() <= 1);
    assert!(!verified.nonce_refresh_due());
}

#[test]
fn each_check_fails_alone() {
    let other_key = DpopKey::generate().expect("key");
    let other_jwk: Value = serde_json::from_str(other_key.public_jwk()).expect("jwk");
    let long = "x".repeat(9 * 1024);
    let t = mint::now();
    let cases: Vec<(&str, String, K, Option<&str>)> = vec![
        (
            "too large",
            proof(json!({}), json!({ "pad": long })),
            K::ProofTooLarge,
            None,
        ),
        ("not a JWS", "abc.def".into(), K::Malformed, None),
        (
            "four parts",
            format!("{}.x", proof(json!({}), json!({}))),
            K::Malformed,
            None,
        ),
        (
            "not token68",
            format!("{} ", proof(json!({}), json!({}))),
            K::Malformed,
            None,
        ),
        (
            "bad base64",
            format!("!{}", proof(json!({}), json!({}))),
            K::Malformed,
            None,
        ),
        (
            "header not JSON",
            raw("not json", &claims(json!({}))),
            K::Malformed,
            None,
        ),
        (
            "header an array",
            raw("[1]", &claims(json!({}))),
            K::Malformed,
            None,
        ),
        (
            "claims not JSON",
            raw(&header(json!({})), "{"),
            K::Malformed,
            None,
        ),
        (
            "repeated typ",
            raw(
                &header(json!({})).replacen('{', r#"{"typ":"jwt","#, 1),
                &claims(json!({})),
            ),
            K::DuplicateMember,
            None,
        ),
        (
            "repeated jwk member",
            raw(
                &header(json!({})).replacen(r#""kty":"EC""#, r#""kty":"EC","kty":"EC""#, 1),
                &claims(json!({})),
            ),
            K::DuplicateMember,
            None,
        ),
        (
            "repeated claim",
            raw(
                &header(json!({})),
                &claims(json!({})).replacen('{', r#"{"htu":"https://evil.test/","#, 1),
            ),
            K::DuplicateMember,
            None,
        ),
        (
            "no typ",
            proof(json!({ "typ": null }), json!({})),
            K::InvalidType,
            None,
        ),
        (
            "typ jwt",
            proof(json!({ "typ": "JWT" }), json!({})),
            K::InvalidType,
            None,
        ),
        (
            "typ at+jwt",
            proof(json!({ "typ": "at+jwt" }), json!({})),
            K::InvalidType,
            None,
        ),
        (
            "crit",
            proof(json!({ "crit": ["exp"] }), json!({})),
            K::UnsupportedCritical,
            None,
        ),
        (
            "no alg",
            proof(json!({ "alg": null }), json!({})),
            K::UnsupportedAlgorithm,
            None,
        ),
        (
            "alg none",
            proof(json!({ "alg": "none" }), json!({})),
            K::UnsupportedAlgorithm,
            None,
        ),
        (
            "alg HS256",
            proof(json!({ "alg": "HS256" }), json!({})),
            K::UnsupportedAlgorithm,
            None,
        ),
        (
            "alg es256",
            proof(json!({ "alg": "es256" }), json!({})),
            K::UnsupportedAlgorithm,
            None,
        ),
        (
            "no jwk",
            proof(json!({ "jwk": null }), json!({})),
            K::MissingKey,
            None,
        ),
        (
            "private jwk",
            proof(
                json!({ "jwk": merged(ec_jwk(), json!({ "d": "AAAA" })) }),
                json!({}),
            ),
            K::PrivateKey,
            None,
        ),
        (
            "jwk for ES384",
            proof(json!({ "alg": "ES384" }), json!({})),
            K::InvalidKey,
            None,
        ),
        (
            "jwk oct",
            proof(json!({ "jwk": { "kty": "oct" } }), json!({})),
            K::InvalidKey,
            None,
        ),
        (
            "jwk without kty",
            proof(
                json!({ "jwk": merged(ec_jwk(), json!({ "kty": null })) }),
                json!({}),
            ),
            K::InvalidKey,
            None,
        ),
        (
            "jwk short x",
            proof(
                json!({ "jwk": merged(ec_jwk(), json!({ "x": "AAAA" })) }),
                json!({}),
            ),
            K::InvalidKey,
            None,
        ),
        (
            "jwk not an object",
            proof(json!({ "jwk": "key" }), json!({})),
            K::InvalidKey,
            None,
        ),
        (
            "another key's jwk",
            proof(json!({ "jwk": other_jwk }), json!({})),
            K::InvalidSignature,
            None,
        ),
        (
            "flipped signature",
            flip_last(&proof(json!({}), json!({}))),
            K::InvalidSignature,
            None,
        ),
        (
            "no signature",
            strip_signature(&proof(json!({}), json!({}))),
            K::InvalidSignature,
            None,
        ),
        (
            "no jti",
            proof(json!({}), json!({ "jti": null })),
            K::MissingClaim,
            Some("jti"),
        ),
        (
            "empty jti",
            proof(json!({}), json!({ "jti": "" })),
            K::InvalidClaim,
            Some("jti"),
        ),
        (
            "numeric jti",
            proof(json!({}), json!({ "jti": 7 })),
            K::InvalidClaim,
            Some("jti"),
        ),
        (
            "no htm",
            proof(json!({}), json!({ "htm": null })),
            K::MissingClaim,
            Some("htm"),
        ),
        (
            "no htu",
            proof(json!({}), json!({ "htu": null })),
            K::MissingClaim,
            Some("htu"),
        ),
        (
            "no iat",
            proof(json!({}), json!({ "iat": null })),
            K::MissingClaim,
            Some("iat"),
        ),
        (
            "string iat",
            proof(json!({}), json!({ "iat": t.to_string() })),
            K::InvalidClaim,
            Some("iat"),
        ),
        (
            "htm POST",
            proof(json!({}), json!({ "htm": "POST" })),
            K::MethodMismatch,
            None,
        ),
        (
            "htm get",
            proof(json!({}), json!({ "htm": "get" })),
            K::MethodMismatch,
            None,
        ),
        (
            "htu path",
            proof(json!({}), json!({ "htu": "https://api.test/account" })),
            K::UriMismatch,
            None,
        ),
        (
            "htu host",
            proof(json!({}), json!({ "htu": "https://evil.test/accounts" })),
            K::UriMismatch,
            None,
        ),
        (
            "htu http",
            proof(json!({}), json!({ "htu": "http://api.test/accounts" })),
            K::UriMismatch,
            None,
        ),
        (
            "htu port",
            proof(
                json!({}),
                json!({ "htu": "https://api.test:8443/accounts" }),
            ),
            K::UriMismatch,
            None,
        ),
        (
            "htu relative",
            proof(json!({}), json!({ "htu": "/accounts" })),
            K::UriMismatch,
            None,
        ),
        (
            "iat 2 min ago",
            proof(json!({}), json!({ "iat": t - 120 })),
            K::TooOld,
            None,
        ),
        (
            "iat in 1 min",
            proof(json!({}), json!({ "iat": t + 60 })),
            K::IssuedInFuture,
            None,
        ),
        (
            "no ath",
            proof(json!({}), json!({ "ath": null })),
            K::MissingClaim,
            Some("ath"),
        ),
        (
            "numeric ath",
            proof(json!({}), json!({ "ath": 1 })),
            K::InvalidClaim,
            Some("ath"),
        ),
        (
            "ath of another token",
            proof(json!({}), json!({ "ath": ath("other") })),
            K::AccessTokenHashMismatch,
            None,
        ),
        (
            "ath unencoded",
            proof(json!({}), json!({ "ath": TOKEN })),
            K::AccessTokenHashMismatch,
            None,
        ),
    ];
    for (name, p, kind, claim) in cases {
        let err = access(&dpop(), &get(&[&p])).expect_err(name);
        assert_eq!((err.kind(), err.claim_name()), (kind, claim), "{name}");
    }
    // A point off the curve: RustCrypto refuses it as a key, aws-lc-rs when it verifies.
    let off_curve = merged(ec_jwk(), json!({ "y": B64.encode([1u8; 32]) }));
    let err = access(
        &dpop(),
        &get(&[&proof(json!({ "jwk": off_curve }), json!({}))]),
    );
    assert!(matches!(
        err.map_err(|e| e.kind()),
        Err(K::InvalidKey | K::InvalidSignature)
    ));
}

/// RFC 9449 defines no `exp` or `nbf` for a proof, but a proof is a JWT: one past its `exp`
/// or before its `nbf` is not accepted (RFC 7519 §4.1.4-4.1.5), with the leeway of `iat`.
/// Both must be numbers.
#[test]
fn a_proofs_own_exp_and_nbf_are_honoured() {
    let t = mint::now();
    let verdict = |dpop: &Dpop, changes: Value| {
        access(dpop, &get(&[&proof(json!({}), changes)])).map_err(|e| (e.kind(), e.claim_name()))
    };
    let default = dpop();
    for (name, changes, expected) in [
        (
            "exp passed",
            json!({ "exp": t - 30 }),
            Err((K::Expired, Some("exp"))),
        ),
        (
            "nbf to come",
            json!({ "nbf": t + 30 }),
            Err((K::NotYetValid, Some("nbf"))),
        ),
        (
            "exp to come, nbf passed",
            json!({ "exp": t + 30, "nbf": t - 30 }),
            Ok(()),
        ),
        ("exp a fraction", json!({ "exp": t as f64 + 30.5 }), Ok(())),
        // Within the leeway (5 s by default), either side.
        ("exp just passed", json!({ "exp": t - 2 }), Ok(())),
        ("nbf just to come", json!({ "nbf": t + 2 }), Ok(())),
        (
            "exp a string",
            json!({ "exp": (t + 30).to_string() }),
            Err((K::InvalidClaim, Some("exp"))),
        ),
        (
            "exp a boolean",
            json!({ "exp": true }),
            Err((K::InvalidClaim, Some("exp"))),
        ),
        (
            "nbf a string",
            json!({ "nbf": "now" }),
            Err((K::InvalidClaim, Some("nbf"))),
        ),
        (
            "nbf an array",
            json!({ "nbf": [t] }),
            Err((K::InvalidClaim, Some("nbf"))),
        ),
    ] {
        assert_eq!(verdict(&default, changes).map(drop), expected, "{name}");
    }
    // `null` is not a number either.
    let null_exp = raw(
        &header(json!({})),
        &claims(json!({})).replacen('{', r#"{"exp":null,"#, 1),
    );
    let err = access(&default, &get(&[&null_exp])).expect_err("exp null");
    assert_eq!(
        (err.kind(), err.claim_name()),
        (K::InvalidClaim, Some("exp"))
    );
    // The leeway is the verifier's: none, or a minute.
    let strict = Dpop::builder()
        .external_origin(ORIGIN)
        .future_leeway(Duration::ZERO)
        .build()
        .expect("dpop");
    assert_eq!(
        verdict(&strict, json!({ "exp": t - 2 })).map(drop),
        Err((K::Expired, Some("exp")))
    );
    assert_eq!(
        verdict(&strict, json!({ "nbf": t + 2 })).map(drop),
        Err((K::NotYetValid, Some("nbf")))
    );
    let lenient = Dpop::builder()
        .external_origin(ORIGIN)
        .future_leeway(Duration::from_secs(60))
        .build()
        .expect("dpop");
    assert!(verdict(&lenient, json!({ "exp": t - 30, "nbf": t + 30 })).is_ok());
    // Refused as an invalid proof.
    assert_eq!(K::Expired.oauth_error(), Some("invalid_dpop_proof"));
    assert_eq!(K::NotYetValid.oauth_error(), Some("invalid_dpop_proof"));
    assert_eq!(K::Expired.as_str(), "expired");
    assert_eq!(K::NotYetValid.as_str(), "not_yet_valid");
}

fn merged(mut base: Value, changes: Value) -> Value {
    merge(&mut base, changes);
    base
}

fn flip_last(jws: &str) -> String {
    let (input, sig) = jws.rsplit_once('.').expect("jws");
    let mut raw = B64.decode(sig).expect("signature");
    raw[10] ^= 1;
    format!("{input}.{}", B64.encode(raw))
}

fn strip_signature(jws: &str) -> String {
    let (input, _) = jws.rsplit_once('.').expect("jws");
    format!("{input}.")
}

#[test]
fn the_request_must_carry_exactly_one_proof() {
    let p = proof(json!({}), json!({}));
    assert_eq!(kind_of(&get(&[])), Some(K::MissingProof));
    assert_eq!(kind_of(&get(&[&p, &p])), Some(K::MultipleProofs));
    // Two proofs folded into one field value are not one proof either.
    assert_eq!(kind_of(&get(&[&format!("{p}, {p}")])), Some(K::Malformed));
}

#[test]
fn the_key_must_be_the_tokens() {
    let p = proof(json!({}), json!({}));
    let other = DpopKey::generate().expect("key");
    let err =
        now(dpop().verify_access(&ProofRequest::from(&get(&[&p])), TOKEN, other.thumbprint()))
            .expect_err("other key");
    assert_eq!(err.kind(), K::KeyMismatch);
    assert_eq!(err.kind().oauth_error(), Some("invalid_token"));
}

#[test]
fn a_proof_is_good_for_one_request_even_across_verifiers_sharing_a_store() {
    let store = Arc::new(MemoryReplay::new());
    let a = Dpop::builder()
        .external_origin(ORIGIN)
        .replay(store.clone())
        .build()
        .expect("dpop");
    let b = Dpop::builder()
        .external_origin(ORIGIN)
        .replay(store.clone())
        .build()
        .expect("dpop");
    let p = proof(json!({}), json!({}));
    assert!(access(&a, &get(&[&p])).is_ok());
    assert_eq!(
        access(&a, &get(&[&p])).map_err(|e| e.kind()),
        Err(K::Replayed)
    );
    assert_eq!(
        access(&b, &get(&[&p])).map_err(|e| e.kind()),
        Err(K::Replayed)
    );
    // Another `jti` is another proof; the same `jti` from another key is too.
    assert!(access(&b, &get(&[&proof(json!({}), json!({}))])).is_ok());
    let key = DpopKey::generate().expect("key");
    let theirs = key
        .proof(&http::Method::GET, URL)
        .access_token(TOKEN)
        .jti("shared")
        .sign()
        .expect("sign");
    let ours = proof(json!({}), json!({ "jti": "shared" }));
    assert!(
        now(a.verify_access(
            &ProofRequest::from(&get(&[&theirs])),
            TOKEN,
            key.thumbprint()
        ))
        .is_ok()
    );
    assert!(access(&a, &get(&[&ours])).is_ok());
    assert_eq!(store.len(), 4);
    // A refused proof is not remembered: fixed, it goes through.
    let refused = proof(json!({}), json!({ "jti": "later", "htm": "POST" }));
    assert!(access(&a, &get(&[&refused])).is_err());
    assert!(access(&a, &get(&[&proof(json!({}), json!({ "jti": "later" }))])).is_ok());
}

#[test]
fn htu_is_compared_after_normalisation() {
    for htu in [
        "https://api.test/accounts",
        "HTTPS://API.TEST/accounts",
        "https://api.test:443/accounts",
        "https://api.test/accounts?page=2#top",
        "https://api.test/%61ccounts",
        "https://api.test/x/../accounts",
    ] {
        let p = proof(json!({}), json!({ "htu": htu }));
        assert!(access(&dpop(), &get(&[&p])).is_ok(), "{htu}");
    }
    // The request side is normalised too.
    let p = proof(json!({}), json!({}));
    let req = Request::get("/./%61ccounts?x=1")
        .header("dpop", &p)
        .body(())
        .expect("request");
    assert!(access(&dpop(), &req).is_ok());
}

#[test]
fn the_origin_can_come_from_the_request() {
    let from_host = Dpop::builder().build().expect("dpop");
    let with_host = |hosts: &[&str], p: &str| {
        let mut req = Request::get("/accounts").header("dpop", p);
        for h in hosts {
            req = req.header("host", *h);
        }
        req.body(()).expect("request")
    };
    let ok = |req: &Request<()>| access(&from_host, req).map(|_| ()).map_err(|e| e.kind());
    assert_eq!(
        ok(&with_host(&["api.test"], &proof(json!({}), json!({})))),
        Ok(())
    );
    assert_eq!(
        ok(&with_host(&["API.test:443"], &proof(json!({}), json!({})))),
        Ok(())
    );
    let p = proof(json!({}), json!({}));
    for hosts in [
        &[][..],
        &["api.test", "api.test"],
        &["api.test/accounts"],
        &["u@api.test"],
    ] {
        assert_eq!(ok(&with_host(hosts, &p)), Err(K::UriMismatch), "{hosts:?}");
    }
    // An absolute-form URI (HTTP/2 `:authority`) names the host itself.
    let req = Request::get("https://api.test/accounts")
        .header("dpop", proof(json!({}), json!({})))
        .body(())
        .expect("request");
    assert_eq!(ok(&req), Ok(()));
    // With `http`, the same proof names the wrong scheme.
    let http = Dpop::builder()
        .origin_from_host("http")
        .build()
        .expect("dpop");
    let req = with_host(&["api.test"], &proof(json!({}), json!({})));
    assert_eq!(
        access(&http, &req).map_err(|e| e.kind()).err(),
        Some(K::UriMismatch)
    );
}

#[test]
fn allowed_algorithms_and_key_types() {
    let keys = [
        DpopKey::generate().expect("ES256"),
        DpopKey::generate_with(Algorithm::ES384).expect("ES384"),
        DpopKey::generate_with(Algorithm::EdDSA).expect("EdDSA"),
        DpopKey::from_pem(mint::EC256_PRIVATE, Algorithm::ES256).expect("ES256 PEM"),
        DpopKey::from_pem(mint::EC384_PRIVATE, Algorithm::ES384).expect("ES384 PEM"),
        DpopKey::from_pem(mint::ED_PRIVATE, Algorithm::EdDSA).expect("EdDSA PEM"),
        DpopKey::from_pem(mint::RSA_PRIVATE, Algorithm::RS256).expect("RS256 PEM"),
        DpopKey::from_pem(mint::RSA_PRIVATE, Algorithm::PS256).expect("PS256 PEM"),
        DpopKey::from_pem(mint::RSA_PRIVATE, Algorithm::PS512).expect("PS512 PEM"),
    ];
    let sign = |key: &DpopKey| {
        key.proof(&http::Method::GET, URL)
            .access_token(TOKEN)
            .sign()
            .expect("sign")
    };
    for key in &keys {
        let req = get(&[&sign(key)]);
        let verified =
            now(dpop().verify_access(&ProofRequest::from(&req), TOKEN, key.thumbprint()))
                .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(verified.jkt(), key.thumbprint());
    }
    // The PEM key and `ec-1`'s public JWK have one thumbprint.
    assert_eq!(keys[3].thumbprint(), jkt());
    // Restricted to ES256, everything else is refused before its signature is checked.
    let es256 = Dpop::builder()
        .external_origin(ORIGIN)
        .algorithms([Algorithm::ES256])
        .build()
        .expect("dpop");
    for key in &keys[1..3] {
        let req = get(&[&sign(key)]);
        let err = now(es256.verify_access(&ProofRequest::from(&req), TOKEN, key.thumbprint()));
        assert_eq!(
            err.map_err(|e| e.kind()).err(),
            Some(K::UnsupportedAlgorithm)
        );
    }
    // HMAC algorithms cannot be keys or settings.
    assert!(DpopKey::generate_with(Algorithm::HS256).is_err());
    assert!(DpopKey::from_pem(mint::HMAC_SECRET, Algorithm::HS256).is_err());
    assert!(DpopKey::from_pem(mint::EC256_PRIVATE, Algorithm::ES384).is_err());
}

#[test]
fn proof_creation_fills_every_claim() {
    let key = DpopKey::generate().expect("key");
    let p = key
        .proof(&http::Method::POST, "https://api.test/x?q=1#f")
        .access_token(TOKEN)
        .nonce("n-1")
        .sign()
        .expect("sign");
    let [h, c]: [Value; 2] = [0, 1].map(|i| {
        serde_json::from_slice(&B64.decode(p.split('.').nth(i).expect("part")).expect("b64"))
            .expect("json")
    });
    assert_eq!(h["typ"], "dpop+jwt");
    assert_eq!(h["alg"], "ES256");
    assert!(h["jwk"].get("d").is_none() && h["jwk"]["kty"] == "EC");
    assert_eq!(c["htm"], "POST");
    assert_eq!(c["htu"], "https://api.test/x");
    assert_eq!(c["ath"], ath(TOKEN));
    assert_eq!(c["nonce"], "n-1");
    assert!((c["iat"].as_i64().expect("iat") - mint::now()).abs() <= 1);
    let jti = c["jti"].as_str().expect("jti");
    assert_eq!(B64.decode(jti).expect("base64url").len(), 16);
    let again = key
        .proof(&http::Method::POST, "https://api.test/x")
        .sign()
        .expect("sign");
    assert_ne!(p.split('.').nth(1), again.split('.').nth(1));
    let shown = format!("{key:?}");
    assert!(
        shown.contains(key.thumbprint()) && !shown.contains("key:"),
        "{shown}"
    );
}

#[test]
fn nonces_are_required_issued_and_checked() {
    const SECRET: &[u8] = b"nonce secret shared by replicas!";
    let with_nonces = |secret: &[u8], lifetime: u64| {
        Dpop::builder()
            .external_origin(ORIGIN)
            .nonces(secret, Duration::from_secs(lifetime))
            .build()
            .expect("dpop")
    };
    let a = with_nonces(SECRET, 60);
    let b = with_nonces(SECRET, 60);
    assert!(a.requires_nonce());
    let kind = |d: &Dpop, p: &str| access(d, &get(&[p])).map(|_| ()).map_err(|e| e.kind());
    let err = kind(&a, &proof(json!({}), json!({}))).expect_err("no nonce");
    assert_eq!(err, K::NonceMissing);
    assert!(err.nonce_due() && err.oauth_error() == Some("use_dpop_nonce"));
    // A nonce from one replica works at the other.
    let nonce = a.nonce_header().expect("nonces on");
    let nonce = nonce.to_str().expect("ascii");
    assert_eq!(
        kind(&b, &proof(json!({}), json!({ "nonce": nonce }))),
        Ok(())
    );
    // Another secret's, a tampered one, a wrongly typed one.
    let foreign = with_nonces(b"another secret, another server!!", 60)
        .nonce_header()
        .expect("nonce");
    let foreign = foreign.to_str().expect("ascii");
    assert_eq!(
        kind(&a, &proof(json!({}), json!({ "nonce": foreign }))),
        Err(K::NonceInvalid)
    );
    let tampered = format!("{}A", &nonce[..nonce.len() - 1]);
    let tampered = if tampered == nonce {
        format!("{}B", &nonce[..nonce.len() - 1])
    } else {
        tampered
    };
    assert_eq!(
        kind(&a, &proof(json!({}), json!({ "nonce": tampered }))),
        Err(K::NonceInvalid)
    );
    assert_eq!(
        kind(&a, &proof(json!({}), json!({ "nonce": 5 }))),
        Err(K::NonceInvalid)
    );
    // Expired: a one-second nonce, two seconds later.
    let short = with_nonces(SECRET, 1);
    let old = short.nonce_header().expect("nonce");
    std::thread::sleep(Duration::from_millis(2_100));
    let p = proof(json!({}), json!({ "nonce": old.to_str().expect("ascii") }));
    assert_eq!(kind(&short, &p), Err(K::NonceExpired));
    // A fresh nonce is not due for renewal (the half-life rule is a unit test with a clock).
    let p = proof(
        json!({}),
        json!({ "nonce": a.nonce_header().expect("nonce").to_str().expect("ascii") }),
    );
    assert!(
        !access(&a, &get(&[&p]))
            .expect("fresh nonce")
            .nonce_refresh_due()
    );
}

#[test]
fn token_endpoint_proofs_need_no_access_token() {
    let key = DpopKey::generate().expect("key");
    let token_endpoint = Dpop::builder()
        .external_origin("https://issuer.test")
        .build()
        .expect("dpop");
    let sign = || {
        key.proof(&http::Method::POST, "https://issuer.test/token")
            .sign()
            .expect("sign")
    };
    let post = |p: &str| {
        Request::post("/token")
            .header("dpop", p)
            .body(())
            .expect("request")
    };
    let check = |p: &str, jkt: Option<&str>| {
        now(token_endpoint.verify_token_request(&ProofRequest::from(&post(p)), jkt))
    };
    assert_eq!(
        check(&sign(), None).expect("unbound grant").jkt(),
        key.thumbprint()
    );
    assert!(check(&sign(), Some(key.thumbprint())).is_ok());
    let other = DpopKey::generate().expect("key");
    assert_eq!(
        check(&sign(), Some(other.thumbprint()))
            .map_err(|e| e.kind())
            .err(),
        Some(K::KeyMismatch)
    );
}

#[tokio::test]
async fn checks_can_be_awaited() {
    let p = proof(json!({}), json!({}));
    let req = get(&[&p]);
    let verified = dpop()
        .verify_access(&ProofRequest::from(&req), TOKEN, &jkt())
        .await;
    assert_eq!(verified.expect("good proof").jkt(), jkt());
}
