//! Verification keys: one [`Key`] pins one [`Algorithm`]; a [`KeySet`] is what a validator
//! verifies against. (Public as `crate::keys` and, for `KeySet`, the crate root.)
//!
//! Keys come from PEM, a single JWK, a JWKS document, or (by explicit choice) an HMAC secret.
//! Every key carries exactly one [`Algorithm`], fixed when it is loaded: a token can never
//! choose another one, and an asymmetric key can never be used as an HMAC secret.

mod jwk;
mod set;

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};

pub use self::jwk::JwksOptions;
use self::jwk::{RawJwk, rsa_key};
pub use self::set::KeySet;
pub(crate) use self::set::Lookup;
use crate::error::ConfigError;
use crate::json;

/// The signature backend, chosen by cargo feature and used directly, never through
/// jsonwebtoken's process-wide default: that default panics when another crate in the
/// application enables the other backend too.
pub(crate) fn provider() -> &'static jsonwebtoken::crypto::CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

/// The public JWK (RFC 7517, members in RFC 7638 order) of the private key `der` for `alg`:
/// what a client registers (`private_key_jwt`) or puts in its DPoP proofs. RSA keys are
/// whatever size they are: callers judge that. The error says what the key is not.
#[cfg(any(feature = "dpop-client", feature = "remote", feature = "client"))]
pub(crate) fn public_jwk(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
) -> Result<(String, usize), &'static str> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;
    use jsonwebtoken::jwk::EllipticCurve;

    let utils = &provider().key_utils;
    let der = key.as_bytes();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    Ok(match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (curve, x, y) = (utils.ec_pub_components_from_private_key)(der, alg)
                .map_err(|_| "not an EC private key of the algorithm's curve")?;
            let crv = match curve {
                EllipticCurve::P256 => "P-256",
                EllipticCurve::P384 => "P-384",
                _ => return Err("unsupported curve"),
            };
            let jwk = format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(&x),
                b64(&y)
            );
            (jwk, 0)
        }
        Algorithm::EdDSA => {
            let x = (utils.ed_pub_components_from_private_key)(der, &EllipticCurve::Ed25519)
                .map_err(|_| "not an Ed25519 private key")?;
            (
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(&x)),
                0,
            )
        }
        _ => {
            let (n, e) = (utils.rsa_pub_components_from_private_key)(der)
                .map_err(|_| "not an RSA private key")?;
            (
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(&e), b64(&n)),
                n.len(),
            )
        }
    })
}

#[cfg(not(any(feature = "rust_crypto", feature = "aws_lc_rs")))]
compile_error!(
    "bearer-guard needs a signature backend: enable `aws_lc_rs` (default) or `rust_crypto`"
);

/// A verification key with its pinned algorithm and optional key id.
///
/// Cheap to clone. `Debug` shows the `kid` and algorithm, never the key.
#[derive(Clone)]
pub struct Key {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    kid: Option<Box<str>>,
    alg: Algorithm,
    key: DecodingKey,
}

impl Key {
    pub(crate) fn new(
        alg: Algorithm,
        key: DecodingKey,
        kid: Option<String>,
    ) -> Result<Key, ConfigError> {
        // Let the backend parse the key once now (EC points are checked for being on the
        // curve, Ed25519 points decompressed), so that a bad key fails at start-up.
        (provider().verifier_factory)(&alg, &key).map_err(|e| ConfigError::InvalidKey {
            kid: kid.clone(),
            reason: format!("rejected by the signature backend: {e}"),
        })?;
        Ok(Key {
            inner: Arc::new(KeyInner {
                kid: kid.map(Into::into),
                alg,
                key,
            }),
        })
    }

    /// Loads a public key from PEM (`PUBLIC KEY` SubjectPublicKeyInfo, or `RSA PUBLIC KEY`),
    /// pinned to `alg`.
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedAlgorithm`] for an HMAC algorithm (use [`Key::hmac`]),
    /// [`ConfigError::InvalidKey`] when the PEM does not hold a public key of `alg`'s type,
    /// [`ConfigError::RsaKeyTooSmall`] for RSA keys under 2048 bits.
    ///
    /// # Example
    /// ```
    /// use bearer_guard::{keys::Algorithm, keys::Key};
    /// let pem = b"-----BEGIN PUBLIC KEY-----
    /// MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
    /// -----END PUBLIC KEY-----";
    /// let key = Key::from_pem(pem, Algorithm::EdDSA)?.with_kid("2025-01");
    /// assert_eq!(key.kid(), Some("2025-01"));
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    pub fn from_pem(pem: &[u8], alg: Algorithm) -> Result<Key, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidKey { kid: None, reason };
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let der = DecodingKey::from_rsa_pem(pem).map_err(|e| invalid(e.to_string()))?;
                let der = der.try_get_as_bytes().map_err(|e| invalid(e.to_string()))?;
                let (n, e) = (provider().key_utils.rsa_pub_components_from_public_key)(der)
                    .map_err(|_| invalid("not an RSA public key".into()))?;
                rsa_key(&n, &e, None)?
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let key = DecodingKey::from_ec_pem(pem).map_err(|e| invalid(e.to_string()))?;
                let point_len = if alg == Algorithm::ES256 { 65 } else { 97 };
                match key.try_get_as_bytes() {
                    Ok(point) if point.len() == point_len => key,
                    _ => return Err(invalid(format!("not a public key for {alg:?}"))),
                }
            }
            Algorithm::EdDSA => {
                let key = DecodingKey::from_ed_pem(pem).map_err(|e| invalid(e.to_string()))?;
                match key.try_get_as_bytes() {
                    Ok(point) if point.len() == 32 => key,
                    _ => return Err(invalid("not an Ed25519 public key".into())),
                }
            }
            _ => return Err(ConfigError::UnsupportedAlgorithm(format!("{alg:?} (PEM)"))),
        };
        Key::new(alg, key, None)
    }

    /// Loads one public key from a JWK (RFC 7517). The algorithm is the JWK's `alg`, or,
    /// without one, the only algorithm its curve allows (`ES256` for P-256, `ES384` for
    /// P-384, `EdDSA` for Ed25519) or `RS256` for RSA.
    ///
    /// # Errors
    /// Any reason the key is unusable: private or symmetric members, `use` other than `sig`,
    /// `alg` that disagrees with `kty`, unknown curve, RSA under 2048 bits.
    pub fn from_jwk_json(jwk: &[u8]) -> Result<Key, ConfigError> {
        json::check_strict(jwk).map_err(|e| ConfigError::InvalidJson(e.to_string()))?;
        let raw: RawJwk =
            serde_json::from_slice(jwk).map_err(|e| ConfigError::InvalidJson(e.to_string()))?;
        raw.into_key(&JwksOptions::default())
    }

    /// An HMAC key. Only for issuers that share a secret with this service; asymmetric keys
    /// are the better choice. The secret must be at least as long as the hash output (32, 48
    /// or 64 bytes for HS256, HS384, HS512: RFC 7518 §3.2).
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedAlgorithm`] when `alg` is not an HMAC algorithm,
    /// [`ConfigError::HmacSecretTooShort`] when the secret is too short.
    pub fn hmac(secret: impl AsRef<[u8]>, alg: Algorithm) -> Result<Key, ConfigError> {
        let min = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => return Err(ConfigError::UnsupportedAlgorithm(format!("{alg:?} (HMAC)"))),
        };
        let secret = secret.as_ref();
        if secret.len() < min {
            return Err(ConfigError::HmacSecretTooShort {
                len: secret.len(),
                min,
            });
        }
        Key::new(alg, DecodingKey::from_secret(secret), None)
    }

    /// Sets the key id that tokens name in their `kid` header.
    #[must_use]
    pub fn with_kid(self, kid: impl Into<String>) -> Key {
        let inner = &self.inner;
        Key {
            inner: Arc::new(KeyInner {
                kid: Some(kid.into().into()),
                alg: inner.alg,
                key: inner.key.clone(),
            }),
        }
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.inner.key
    }

    /// Whether two handles refer to the same loaded key.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn same(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Key {
    /// Same `kid`, algorithm and key material.
    pub(crate) fn identical(&self, other: &Key) -> bool {
        use jsonwebtoken::DecodingKeyKind::{RsaModulusExponent, SecretOrDer};
        self.kid() == other.kid()
            && self.algorithm() == other.algorithm()
            && match (self.inner.key.kind(), other.inner.key.kind()) {
                (SecretOrDer(a), SecretOrDer(b)) => a == b,
                (RsaModulusExponent { n, e }, RsaModulusExponent { n: n2, e: e2 }) => {
                    n == n2 && e == e2
                }
                _ => false,
            }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid())
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ED_X: &str = "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE";

    fn ed_jwk(extra: &str) -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"{extra}}}"#)
    }

    #[test]
    fn jwk_alg_is_pinned_or_inferred_from_curve() {
        let key = Key::from_jwk_json(ed_jwk(r#","kid":"a""#).as_bytes()).expect("ed25519");
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
        assert_eq!(key.kid(), Some("a"));
        let err = Key::from_jwk_json(ed_jwk(r#","alg":"ES256""#).as_bytes()).expect_err("mismatch");
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err}");
    }

    #[test]
    fn encryption_private_and_symmetric_jwks_are_refused() {
        for extra in [
            r#","use":"enc""#,
            r#","key_ops":["encrypt"]"#,
            r#","d":"AAAA""#,
        ] {
            assert!(
                Key::from_jwk_json(ed_jwk(extra).as_bytes()).is_err(),
                "{extra}"
            );
        }
        let oct = br#"{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}"#;
        assert!(Key::from_jwk_json(oct).is_err());
    }

    #[test]
    fn short_hmac_secrets_and_non_hmac_algorithms_are_refused() {
        assert_eq!(
            Key::hmac([0u8; 31], Algorithm::HS256).expect_err("short"),
            ConfigError::HmacSecretTooShort { len: 31, min: 32 }
        );
        assert!(Key::hmac([0u8; 47], Algorithm::HS384).is_err());
        assert!(Key::hmac([0u8; 64], Algorithm::RS256).is_err());
        assert!(Key::hmac([7u8; 32], Algorithm::HS256).is_ok());
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let jwk = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB","kid":"small"}}"#);
        let err = Key::from_jwk_json(jwk.as_bytes()).expect_err("1024-bit");
        assert_eq!(
            err,
            ConfigError::RsaKeyTooSmall {
                kid: Some("small".into()),
                bits: 1024
            }
        );
    }

    #[test]
    fn jwks_skips_bad_keys_and_fails_when_none_is_left() {
        let good = ed_jwk(r#","kid":"ok""#);
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","alg":"RSA-OAEP","use":"enc","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}},{{"kty":5}},{good}]}}"#
        );
        let set = KeySet::from_jwks_json(doc.as_bytes()).expect("one usable key");
        assert_eq!(set.len(), 1);
        let none = br#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#;
        assert_eq!(
            KeySet::from_jwks_json(none).expect_err("none"),
            ConfigError::NoUsableKeys
        );
        assert!(matches!(
            KeySet::from_jwks_json(br#"{"keys":[],"keys":[]}"#),
            Err(ConfigError::InvalidJson(_))
        ));
    }

    #[test]
    fn repeated_kid_in_jwks_keeps_the_first_key() {
        let doc = format!(
            r#"{{"keys":[{},{}]}}"#,
            ed_jwk(r#","kid":"k""#),
            ed_jwk(r#","kid":"k""#)
        );
        assert_eq!(
            KeySet::from_jwks_json(doc.as_bytes())
                .expect("one key")
                .len(),
            1
        );
    }

    #[test]
    fn lookup_pins_algorithm_and_kid() {
        let a = Key::from_jwk_json(ed_jwk(r#","kid":"a""#).as_bytes()).expect("key");
        let b = Key::hmac([1u8; 32], Algorithm::HS256)
            .expect("key")
            .with_kid("b");
        let set = KeySet::new([a.clone(), b]);
        assert!(matches!(set.find(Some("a"), Algorithm::EdDSA), Lookup::Found(k) if k.same(&a)));
        assert!(matches!(
            set.find(Some("a"), Algorithm::HS256),
            Lookup::AlgorithmMismatch
        ));
        assert!(matches!(
            set.find(Some("zz"), Algorithm::EdDSA),
            Lookup::Unknown
        ));
        assert!(matches!(set.find(None, Algorithm::EdDSA), Lookup::Found(_)));
        assert!(matches!(
            set.find(None, Algorithm::RS256),
            Lookup::AlgorithmMismatch
        ));
        let twice = KeySet::new([a.clone(), a.clone().with_kid("c")]);
        assert!(matches!(
            twice.find(None, Algorithm::EdDSA),
            Lookup::Unknown
        ));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = Key::hmac([0x42u8; 32], Algorithm::HS256)
            .expect("key")
            .with_kid("k");
        let shown = format!("{:?}", KeySet::new([key]));
        assert!(
            shown.contains("\"k\"") && shown.contains("HS256"),
            "{shown}"
        );
        assert!(!shown.contains("66") && !shown.contains("42"), "{shown}");
    }
}
