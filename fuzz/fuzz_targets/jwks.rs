//! Arbitrary bytes as a JWKS document and as a single JWK: never a panic.
#![no_main]

use bearer_guard::{KeySet, keys::Key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeySet::from_jwks_json(data);
    let _ = Key::from_jwk_json(data);
});
