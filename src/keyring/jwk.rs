//! Reading JWKs (RFC 7517): which keys are usable for verification, and how.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::Key;
use crate::error::ConfigError;

/// Smallest RSA modulus accepted (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: bigger keys only make verification slow.
const MAX_RSA_BITS: usize = 8192;

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

/// The members of a JWK that matter for verification.
#[derive(Deserialize)]
pub(crate) struct RawJwk {
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
    pub(crate) fn into_key(self, options: &JwksOptions) -> Result<Key, ConfigError> {
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
pub(crate) fn rsa_key(n: &[u8], e: &[u8], kid: Option<String>) -> Result<DecodingKey, ConfigError> {
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
