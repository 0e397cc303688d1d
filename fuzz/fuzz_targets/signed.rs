//! Arbitrary header and claims JSON, correctly signed: explores everything after the
//! signature (strict JSON, typ, crit, dates, iss, aud, scopes) without a panic, and accepts
//! only what a careful reading of the rules accepts.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::{KeySet, Validator, keys::Algorithm, keys::Key};
use jsonwebtoken::EncodingKey;
use libfuzzer_sys::fuzz_target;

struct World {
    validator: Validator,
    key: EncodingKey,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let key = Key::from_pem(
            include_bytes!("../../tests/keys/ed25519_public.pem"),
            Algorithm::EdDSA,
        )
        .expect("key")
        .with_kid("ed-1");
        World {
            validator: Validator::builder()
                .issuer("https://issuer.test")
                .audience("https://api.test")
                .keys(KeySet::new([key]))
                .without_token_cache()
                .build()
                .expect("validator"),
            key: EncodingKey::from_ed_pem(include_bytes!("../../tests/keys/ed25519_private.pem"))
                .expect("private key"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // header JSON, a 0xff separator, claims JSON
    let Some(split) = data.iter().position(|&b| b == 0xff) else {
        return;
    };
    let (header, claims) = (&data[..split], &data[split + 1..]);
    let w = world();
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signer = (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory)(
        &jsonwebtoken::Algorithm::EdDSA,
        &w.key,
    )
    .expect("signer");
    let signature = signer.try_sign(input.as_bytes()).expect("sign");
    let token = format!("{input}.{}", B64.encode(signature));
    if let Ok(claims) = w.validator.validate(&token) {
        // Whatever was accepted really says what the rules demand.
        let header: serde_json::Value =
            serde_json::from_slice(header).expect("accepted header is JSON");
        assert_eq!(header["alg"], "EdDSA");
        assert!(header.get("crit").is_none());
        let typ = header["typ"].as_str().expect("typ").to_ascii_lowercase();
        assert!(typ == "at+jwt" || typ == "application/at+jwt", "{typ}");
        assert_eq!(claims.iss, "https://issuer.test");
        assert!(claims.aud.contains("https://api.test"));
    }
});
