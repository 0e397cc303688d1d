//! Test support, not part of the API: token minting with hand-written header and claims JSON,
//! signed with the crate's own signature backend, the test-only keys of `tests/keys/`, and
//! a log capture that works while tests run in parallel ([`logs`]).
//!
//! Compiled for the unit tests, and for the integration tests, benchmarks and fuzz targets
//! through the hidden `test-util` feature (the dev-dependency on the crate itself enables
//! it). Never enable it in an application.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::unwrap_used
)]

#[cfg(feature = "remote")]
pub mod introspection;
#[cfg(test)]
pub(crate) mod layer;
pub mod logs;
#[cfg(feature = "redis")]
pub mod redis;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "https://api.test";

pub const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/keys/rsa_private_pkcs1.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_public.pem");
pub const RSA_PUBLIC_PKCS1: &[u8] = include_bytes!("../../tests/keys/rsa_public_pkcs1.pem");
pub const RSA2_PRIVATE: &[u8] = include_bytes!("../../tests/keys/rsa2_private_pkcs1.pem");
pub const RSA2_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa2_public.pem");
pub const RSA1024_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa1024_public.pem");
pub const EC256_PRIVATE: &[u8] = include_bytes!("../../tests/keys/ec256_private.pem");
pub const EC256_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ec256_public.pem");
pub const EC384_PRIVATE: &[u8] = include_bytes!("../../tests/keys/ec384_private.pem");
pub const EC384_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ec384_public.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../../tests/keys/ed25519_private.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ed25519_public.pem");
pub const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The test keys: (kid, alg, private PEM or HMAC secret, public PEM).
pub const KEYS: &[(&str, Algorithm, &[u8], &[u8])] = &[
    ("rsa-1", Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC),
    ("ps-1", Algorithm::PS256, RSA_PRIVATE, RSA_PUBLIC),
    ("ec-1", Algorithm::ES256, EC256_PRIVATE, EC256_PUBLIC),
    ("ec384-1", Algorithm::ES384, EC384_PRIVATE, EC384_PUBLIC),
    ("ed-1", Algorithm::EdDSA, ED_PRIVATE, ED_PUBLIC),
];

/// The test keys' public halves, each pinned to its algorithm and kid.
pub fn key_set() -> crate::KeySet {
    crate::KeySet::new(KEYS.iter().map(|(kid, alg, _, public)| {
        crate::keyring::Key::from_pem(public, *alg)
            .expect("test key")
            .with_kid(*kid)
    }))
}

/// The record the layer puts into an admitted request, for a token of [`ISSUER`] naming
/// `client_id` (as client and subject) whose typed claims are `claims`: for tests and
/// benchmarks of layers placed inside `RequireScope`.
pub fn verified_token<T: Send + Sync + 'static>(
    client_id: &str,
    claims: T,
) -> crate::VerifiedToken {
    record(Some(client_id), &crate::Claims(std::sync::Arc::new(claims)))
}

/// The record the layer would put into a request for these typed claims (a token of
/// [`ISSUER`], no client): the same `Arc`, so a reader's claims are these, not a copy.
pub fn record_of<T: Send + Sync + 'static>(claims: &crate::Claims<T>) -> crate::VerifiedToken {
    record(None, claims)
}

fn record<T: Send + Sync + 'static>(
    client_id: Option<&str>,
    claims: &crate::Claims<T>,
) -> crate::VerifiedToken {
    crate::VerifiedToken::new(crate::verified::Facts {
        issuer: ISSUER.into(),
        client_id: client_id.map(Into::into),
        subject: client_id.map(Into::into),
        scopes: crate::scope::Granted::default(),
        jti: None,
        exp: now() + 3600,
        nbf: None,
        iat: None,
        cnf: None,
        act: None,
        acr: None,
        auth_time: None,
    })
    .with_claims(claims)
}

/// A validator builder for [`ISSUER`] and [`AUDIENCE`] with the test keys.
pub fn builder() -> crate::ValidatorBuilder {
    crate::Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(key_set())
}

/// [`builder`], built.
pub fn validator() -> crate::Validator {
    builder().build().expect("validator")
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The private key for a test kid.
pub fn encoding_key(kid: &str) -> (Algorithm, EncodingKey) {
    let (_, alg, private, _) = KEYS.iter().find(|k| k.0 == kid).expect("known test kid");
    (*alg, encoding_key_for(*alg, private))
}

pub fn encoding_key_for(alg: Algorithm, private: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(private).expect("rsa pem"),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private).expect("ec pem"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private).expect("ed pem"),
        _ => EncodingKey::from_secret(private),
    }
}

/// Signs `header` and `claims` (raw JSON text) with `alg` and `key`.
pub fn sign_raw(alg: Algorithm, key: &EncodingKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signer = (crate::keyring::provider().signer_factory)(&alg, key).expect("signer");
    let sig = signer.try_sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", B64.encode(sig))
}

/// Good RFC 9068 claims, with `changes` merged in (a `null` value removes the member).
pub fn claims(changes: Value) -> Value {
    let now = now();
    let mut c = json!({
        "iss": ISSUER,
        "sub": "client-a",
        "client_id": "client-a",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "jti": format!("jti-{now}-{}", rand_suffix()),
        "scope": "read write",
    });
    merge(&mut c, changes);
    c
}

/// The header `{"alg":..,"typ":"at+jwt","kid":..}` with `changes` merged in.
pub fn header(alg: Algorithm, kid: &str, changes: Value) -> Value {
    let mut h = json!({ "alg": alg_name(alg), "typ": "at+jwt", "kid": kid });
    merge(&mut h, changes);
    h
}

/// A valid token signed by the test key `kid`, with claim changes.
pub fn token(kid: &str, claim_changes: Value) -> String {
    token_with(kid, json!({}), claim_changes)
}

/// A token signed by the test key `kid`, with header and claim changes.
pub fn token_with(kid: &str, header_changes: Value, claim_changes: Value) -> String {
    let (alg, key) = encoding_key(kid);
    sign_raw(
        alg,
        &key,
        &header(alg, kid, header_changes).to_string(),
        &claims(claim_changes).to_string(),
    )
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    crate::dpop::algorithm_name(alg)
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

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The claims of a compact JWS, unverified (tests only).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("jws");
    serde_json::from_slice(&B64.decode(payload).expect("b64")).expect("json")
}

/// JWKS JSON (public keys) for the given test kids, built from the keys' public PEMs.
pub fn jwks(kids: &[&str]) -> String {
    let keys: Vec<Value> = kids.iter().map(|kid| jwk(kid)).collect();
    json!({ "keys": keys }).to_string()
}

/// The public JWK of a test kid.
pub fn jwk(kid: &str) -> Value {
    let (_, alg, _, public) = KEYS.iter().find(|k| k.0 == kid).expect("known test kid");
    let der = pem_body(public);
    let mut m = Map::new();
    m.insert("kid".into(), json!(kid));
    m.insert("alg".into(), json!(alg_name(*alg)));
    m.insert("use".into(), json!("sig"));
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let len = if *alg == Algorithm::ES256 { 32 } else { 48 };
            let point = &der[der.len() - (1 + 2 * len)..];
            m.insert("kty".into(), json!("EC"));
            m.insert(
                "crv".into(),
                json!(if len == 32 { "P-256" } else { "P-384" }),
            );
            m.insert("x".into(), json!(B64.encode(&point[1..1 + len])));
            m.insert("y".into(), json!(B64.encode(&point[1 + len..])));
        }
        Algorithm::EdDSA => {
            m.insert("kty".into(), json!("OKP"));
            m.insert("crv".into(), json!("Ed25519"));
            m.insert("x".into(), json!(B64.encode(&der[der.len() - 32..])));
        }
        _ => {
            let (n, e) = rsa_components(&der);
            m.insert("kty".into(), json!("RSA"));
            m.insert("n".into(), json!(B64.encode(n)));
            m.insert("e".into(), json!(B64.encode(e)));
        }
    }
    Value::Object(m)
}

/// The DER inside a PEM.
pub fn pem_body(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).expect("pem is text");
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem base64")
}

/// (n, e) from an RSA SubjectPublicKeyInfo DER, by walking the DER.
fn rsa_components(spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, hdr) = if der[1] < 0x80 {
            (der[1] as usize, 2)
        } else {
            let n = (der[1] & 0x7f) as usize;
            (
                der[2..2 + n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize),
                2 + n,
            )
        };
        (tag, &der[hdr..hdr + len], &der[hdr + len..])
    }
    let (_, spki, _) = read(spki);
    let (_, _alg_id, rest) = read(spki);
    let (_, bitstring, _) = read(rest);
    let (_, rsa, _) = read(&bitstring[1..]);
    let (_, n, rest) = read(rsa);
    let (_, e, _) = read(rest);
    let strip = |v: &[u8]| v[v.iter().take_while(|b| **b == 0).count()..].to_vec();
    (strip(n), strip(e))
}
