//! [`KeySet`]: the keys a validator verifies against, and how a token's key is found.

use std::fmt;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::Key;
use super::jwk::{JwksOptions, RawJwk};
use crate::error::ConfigError;
use crate::json;

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
