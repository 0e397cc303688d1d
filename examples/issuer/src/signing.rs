//! The issuer's signing key: generated (Ed25519) or read from a PKCS#8 PEM file (Ed25519,
//! P-256, P-384), its public JWK, and JWS signing of access tokens (RFC 9068 `at+jwt`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::Error;

/// The issuer's private signing key and its public JWK.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 `PrivateKeyInfo` for Ed25519 up to the 32-byte seed (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SigningKey {
    /// A fresh Ed25519 key from the OS's random number generator.
    pub fn generate(kid: Option<String>) -> Result<SigningKey, Error> {
        let mut der = [0u8; 48];
        der[..16].copy_from_slice(&ED25519_PKCS8_PREFIX);
        getrandom::fill(&mut der[16..]).map_err(|e| format!("no randomness: {e}"))?;
        let key = EncodingKey::from_ed_der(&der);
        der.fill(0);
        SigningKey::ed25519(key, kid)
    }

    /// A PKCS#8 PEM private key: Ed25519 (EdDSA), P-256 (ES256) or P-384 (ES384).
    pub fn from_pem(pem: &[u8], kid: Option<String>) -> Result<SigningKey, Error> {
        if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            return SigningKey::ed25519(key, kid);
        }
        let key = EncodingKey::from_ec_pem(pem)
            .map_err(|_| "not a PKCS#8 PEM Ed25519, P-256 or P-384 private key")?;
        let ec = DEFAULT_PROVIDER
            .key_utils
            .ec_pub_components_from_private_key;
        let (alg, crv, x, y) = if let Ok((_, x, y)) = ec(key.as_bytes(), Algorithm::ES256) {
            (Algorithm::ES256, "P-256", x, y)
        } else if let Ok((_, x, y)) = ec(key.as_bytes(), Algorithm::ES384) {
            (Algorithm::ES384, "P-384", x, y)
        } else {
            return Err("unsupported EC key (P-256 or P-384 only)".into());
        };
        let public = json!({ "crv": crv, "kty": "EC", "x": B64.encode(x), "y": B64.encode(y) });
        SigningKey::finish(alg, key, public, kid)
    }

    fn ed25519(key: EncodingKey, kid: Option<String>) -> Result<SigningKey, Error> {
        let x = (DEFAULT_PROVIDER
            .key_utils
            .ed_pub_components_from_private_key)(
            key.as_bytes(), &EllipticCurve::Ed25519
        )
        .map_err(|_| "invalid Ed25519 key")?;
        let public = json!({ "crv": "Ed25519", "kty": "OKP", "x": B64.encode(x) });
        SigningKey::finish(Algorithm::EdDSA, key, public, kid)
    }

    fn finish(
        alg: Algorithm,
        key: EncodingKey,
        public: Value,
        kid: Option<String>,
    ) -> Result<SigningKey, Error> {
        let kid = match kid {
            Some(kid) => kid,
            // RFC 7638: serde_json orders object members, so `public` is already canonical.
            None => B64.encode(
                (DEFAULT_PROVIDER.key_utils.compute_digest)(
                    public.to_string().as_bytes(),
                    ThumbprintHash::SHA256,
                )
                .map_err(|e| format!("thumbprint: {e}"))?,
            ),
        };
        let mut jwk = public;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg_name(alg));
        jwk["use"] = json!("sig");
        let key = SigningKey { alg, kid, key, jwk };
        // Fail at start, not on the first request.
        key.sign(&json!({}))?;
        Ok(key)
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A JWS of `claims` with the header `{"alg","typ":"at+jwt","kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, Error> {
        let header = json!({ "alg": alg_name(self.alg), "typ": "at+jwt", "kid": self.kid });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        // The RustCrypto provider, called directly: jsonwebtoken's process-wide default panics
        // when both of its backends are enabled.
        let signer = (DEFAULT_PROVIDER.signer_factory)(&self.alg, &self.key)
            .map_err(|e| format!("signer: {e}"))?;
        let signature = signer
            .try_sign(input.as_bytes())
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        _ => "EdDSA",
    }
}
