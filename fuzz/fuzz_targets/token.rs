//! Arbitrary bytes as a bearer token and as an `Authorization` header: never a panic, never
//! an accept (nothing here is signed by the key).
#![no_main]

use std::sync::OnceLock;

use bearer_guard::{KeySet, Validator, keys::Algorithm, keys::Key};
use libfuzzer_sys::fuzz_target;

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let key = Key::from_pem(
            include_bytes!("../../tests/keys/ed25519_public.pem"),
            Algorithm::EdDSA,
        )
        .expect("key")
        .with_kid("ed-1");
        Validator::builder()
            .issuer("https://issuer.test")
            .audience("https://api.test")
            .keys(KeySet::new([key]))
            .build()
            .expect("validator")
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    assert!(validator().validate(&token).is_err());
    assert!(validator().keys().verify_signature(&token).is_err());
});
