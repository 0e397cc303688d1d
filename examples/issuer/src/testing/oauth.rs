//! OAuth client-side helpers for the tests that talk to the issuer.

use argon2::password_hash::PasswordHasher;
use argon2::{Argon2, Params};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Argon2id with the smallest parameters: the tests run unoptimised.
pub fn cheap_hash(secret: &str) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).expect("params");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(secret.as_bytes())
        .expect("hash")
        .to_string()
}

/// `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-encoded first).
pub fn basic_header(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", urlencode(id), urlencode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
