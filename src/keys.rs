//! Verification keys: one [`Key`] pins one algorithm; a [`KeySet`] is what a validator
//! verifies against.
//!
//! Keys come from PEM, a single JWK, a JWKS document, or (by explicit choice) an HMAC secret.
//! Every key carries exactly one [`Algorithm`], fixed when it is loaded: a token can never
//! choose another one, and an asymmetric key can never be used as an HMAC secret.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

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

#[cfg(not(any(feature = "rust_crypto", feature = "aws_lc_rs")))]
compile_error!(
    "bearer-guard needs a signature backend: enable `aws_lc_rs` (default) or `rust_crypto`"
);

/// Smallest RSA modulus accepted (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: bigger keys only make verification slow.
const MAX_RSA_BITS: usize = 8192;

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
    fn new(alg: Algorithm, key: DecodingKey, kid: Option<String>) -> Result<Key, ConfigError> {
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
    /// use bearer_guard::{Algorithm, Key};
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
    fn identical(&self, other: &Key) -> bool {
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

/// Options for reading a JWKS document.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksOptions {
    /// The algorithm pinned to RSA keys that have no `alg` (many issuers omit it).
    /// Default `RS256`, the algorithm RFC 9068 requires issuers to support.
    pub rsa_default_alg: Algorithm,
    /// At most this many keys are read; the rest are ignored with a warning. Default 32.
    pub max_keys: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            rsa_default_alg: Algorithm::RS256,
            max_keys: 32,
        }
    }
}

/// The keys a validator accepts signatures from.
///
/// # Example
/// ```
/// use bearer_guard::KeySet;
/// let jwks = br#"{"keys":[
///   {"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA",
///    "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"},
///   {"kty":"RSA","use":"enc","alg":"RSA-OAEP","kid":"enc1","n":"AQAB","e":"AQAB"}
/// ]}"#;
/// let keys = KeySet::from_jwks_json(jwks)?;
/// assert_eq!(keys.len(), 1); // the encryption key is skipped, with a warning
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

/// The outcome of looking up a token's key.
pub(crate) enum Lookup<'a> {
    Found(&'a Key),
    /// A key has the token's `kid` but pins another algorithm.
    AlgorithmMismatch,
    /// No key fits.
    Unknown,
}

impl KeySet {
    /// A set of the given keys.
    pub fn new(keys: impl IntoIterator<Item = Key>) -> KeySet {
        KeySet {
            keys: keys.into_iter().collect(),
        }
    }

    /// Adds a key.
    #[must_use]
    pub fn with(mut self, key: Key) -> KeySet {
        self.keys.push(key);
        self
    }

    /// Reads a JWKS document (RFC 7517 §5) with default [`JwksOptions`].
    ///
    /// Keys that cannot verify signatures are skipped with a `tracing` warning, so that one
    /// odd key (an `RSA-OAEP` encryption key, an unknown curve) never breaks the whole set:
    /// `use` other than `sig`, `key_ops` without `verify`, symmetric (`oct`) keys, `alg` that
    /// disagrees with `kty`, unknown curves, RSA below 2048 bits.
    ///
    /// # Errors
    /// [`ConfigError::InvalidJson`] when the document is not a JWKS (including duplicate
    /// member names), [`ConfigError::NoUsableKeys`] when no key survives.
    pub fn from_jwks_json(jwks: &[u8]) -> Result<KeySet, ConfigError> {
        KeySet::from_jwks_json_with(jwks, &JwksOptions::default())
    }

    /// Reads a JWKS document with the given options. See [`KeySet::from_jwks_json`].
    ///
    /// # Errors
    /// As [`KeySet::from_jwks_json`].
    pub fn from_jwks_json_with(jwks: &[u8], options: &JwksOptions) -> Result<KeySet, ConfigError> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(borrow)]
            keys: Vec<&'a serde_json::value::RawValue>,
        }
        let invalid = |e: serde_json::Error| ConfigError::InvalidJson(e.to_string());
        json::check_strict(jwks).map_err(invalid)?;
        let doc: Document<'_> = serde_json::from_slice(jwks).map_err(invalid)?;
        if doc.keys.len() > options.max_keys {
            tracing::warn!(
                target: "bearer_guard::keys",
                count = doc.keys.len(),
                max = options.max_keys,
                "JWKS holds more keys than allowed; reading only the first ones"
            );
        }
        let mut keys = Vec::new();
        for (index, raw) in doc.keys.iter().take(options.max_keys).enumerate() {
            let key = serde_json::from_str::<RawJwk>(raw.get())
                .map_err(|e| ConfigError::InvalidJson(e.to_string()))
                .and_then(|jwk| jwk.into_key(options));
            match key {
                Ok(key)
                    if key.kid().is_some()
                        && keys.iter().any(|k: &Key| {
                            k.kid() == key.kid() && k.algorithm() == key.algorithm()
                        }) =>
                {
                    // A second key under the same id could never be chosen: say so.
                    tracing::warn!(
                        target: "bearer_guard::keys",
                        index,
                        kid = key.kid(),
                        "skipping key whose kid and alg repeat an earlier key in the JWKS"
                    );
                }
                Ok(key) => keys.push(key),
                Err(err) => tracing::warn!(
                    target: "bearer_guard::keys",
                    index,
                    reason = %err,
                    "skipping unusable key in JWKS"
                ),
            }
        }
        if keys.is_empty() {
            return Err(ConfigError::NoUsableKeys);
        }
        Ok(KeySet { keys })
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// Verifies the signature of a compact JWS and returns its decoded payload. Only the
    /// JOSE layer is checked (header, pinned algorithm, key, signature); the payload may be
    /// anything, and no claim, `typ` or time is looked at. Use a [`Validator`](crate::Validator)
    /// for access tokens.
    ///
    /// # Errors
    /// An [`AuthError`](crate::AuthError) saying why the JWS is refused.
    pub fn verify_signature(&self, jws: &str) -> Result<Vec<u8>, crate::AuthError> {
        crate::jws::verify(self, jws, |_| Ok(())).map(|v| v.payload)
    }

    /// Replaces each key that equals one in `old` (same `kid`, algorithm and key material)
    /// by the old handle.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn reuse_identical(&mut self, old: &KeySet) {
        for key in &mut self.keys {
            if let Some(same) = old.keys.iter().find(|o| o.identical(key)) {
                *key = same.clone();
            }
        }
    }

    /// Finds the key for a token's `kid` and `alg`.
    ///
    /// With a `kid`: the key with that id and algorithm; failing any key with that id, the
    /// single key without an id that pins `alg` (a signature that key does not verify is
    /// then reported as an unknown key). Without a `kid`: the single key that pins `alg`.
    /// Never a key of another algorithm.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        if let Some(kid) = kid {
            let mut named = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
            if named.peek().is_some() {
                return match named.find(|k| k.algorithm() == alg) {
                    Some(key) => Lookup::Found(key),
                    None => Lookup::AlgorithmMismatch,
                };
            }
        }
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm() == alg && (kid.is_none() || k.kid().is_none()));
        match (candidates.next(), candidates.next()) {
            (Some(key), None) => Lookup::Found(key),
            (None, _) if kid.is_none() && !self.keys.is_empty() => Lookup::AlgorithmMismatch,
            _ => Lookup::Unknown,
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl FromIterator<Key> for KeySet {
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Self {
        KeySet::new(iter)
    }
}

/// The members of a JWK that matter for verification.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<serde::de::IgnoredAny>,
    k: Option<serde::de::IgnoredAny>,
}

impl RawJwk {
    fn into_key(self, options: &JwksOptions) -> Result<Key, ConfigError> {
        let kid = self.kid.clone();
        let invalid = |reason: &str| ConfigError::InvalidKey {
            kid: kid.clone(),
            reason: reason.into(),
        };
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(invalid("`use` is not `sig`"));
        }
        if self
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
        {
            return Err(invalid("`key_ops` lacks `verify`"));
        }
        if self.d.is_some() || self.k.is_some() {
            return Err(invalid("holds private or symmetric key material"));
        }
        let alg = self.alg.as_deref();
        let b64 = |member: &Option<String>, name: &str| -> Result<Vec<u8>, ConfigError> {
            let value = member
                .as_deref()
                .ok_or_else(|| invalid(&format!("missing `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| invalid(&format!("`{name}` is not base64url")))
        };
        let (alg, key) = match self.kty.as_str() {
            "RSA" => {
                let alg = match alg {
                    None => options.rsa_default_alg,
                    Some("RS256") => Algorithm::RS256,
                    Some("RS384") => Algorithm::RS384,
                    Some("RS512") => Algorithm::RS512,
                    Some("PS256") => Algorithm::PS256,
                    Some("PS384") => Algorithm::PS384,
                    Some("PS512") => Algorithm::PS512,
                    Some(_) => return Err(invalid("`alg` is not an RSA signature algorithm")),
                };
                (
                    alg,
                    rsa_key(&b64(&self.n, "n")?, &b64(&self.e, "e")?, self.kid.clone())?,
                )
            }
            "EC" => {
                let (alg, len) = match (self.crv.as_deref(), alg) {
                    (Some("P-256"), None | Some("ES256")) => (Algorithm::ES256, 32),
                    (Some("P-384"), None | Some("ES384")) => (Algorithm::ES384, 48),
                    (Some("P-256" | "P-384"), Some(_)) => {
                        return Err(invalid("`alg` disagrees with `crv`"));
                    }
                    _ => return Err(invalid("unsupported curve")),
                };
                let (x, y) = (b64(&self.x, "x")?, b64(&self.y, "y")?);
                if x.len() != len || y.len() != len {
                    return Err(invalid("coordinates have the wrong length for the curve"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (alg, DecodingKey::from_ec_der(&point))
            }
            "OKP" => {
                match (self.crv.as_deref(), alg) {
                    (Some("Ed25519"), None | Some("EdDSA" | "Ed25519")) => {}
                    (Some("Ed25519"), Some(_)) => {
                        return Err(invalid("`alg` disagrees with `crv`"));
                    }
                    _ => return Err(invalid("unsupported curve")),
                }
                let x = b64(&self.x, "x")?;
                if x.len() != 32 {
                    return Err(invalid("Ed25519 key is not 32 bytes"));
                }
                (Algorithm::EdDSA, DecodingKey::from_ed_der(&x))
            }
            "oct" => {
                return Err(invalid(
                    "symmetric keys are only accepted through `Key::hmac`",
                ));
            }
            _ => return Err(invalid("unsupported `kty`")),
        };
        Key::new(alg, key, self.kid)
    }
}

/// An RSA key from its big-endian modulus and exponent, with size and exponent checks.
fn rsa_key(n: &[u8], e: &[u8], kid: Option<String>) -> Result<DecodingKey, ConfigError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = n
        .first()
        .map_or(0, |b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
    if bits < MIN_RSA_BITS {
        return Err(ConfigError::RsaKeyTooSmall { kid, bits });
    }
    if bits > MAX_RSA_BITS {
        return Err(ConfigError::InvalidKey {
            kid,
            reason: format!("RSA modulus of {bits} bits"),
        });
    }
    // A public exponent must be odd and at least 3; more than 64 bits is never legitimate.
    let exponent_ok = !e.is_empty()
        && e.len() <= 8
        && e[e.len() - 1] & 1 == 1
        && (e.len() > 1 || e[0] >= 3)
        && n[n.len() - 1] & 1 == 1;
    if !exponent_ok {
        return Err(ConfigError::InvalidKey {
            kid,
            reason: "bad RSA public exponent or modulus".into(),
        });
    }
    Ok(DecodingKey::from_rsa_raw_components(n, e))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    &bytes[bytes.iter().take_while(|&&b| b == 0).count()..]
}

#[cfg(test)]
mod tests {
    use super::*;

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
