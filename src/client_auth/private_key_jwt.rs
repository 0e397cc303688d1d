//! [`PrivateKeyJwt`]: a client's private key, and the fresh assertion it signs for each
//! request (RFC 7523 §2.2, `aud` = the issuer identifier per draft-ietf-oauth-rfc7523bis).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use crate::dpop::algorithm_name;
use crate::error::ConfigError;
use crate::keyring::provider;

/// Lifetime of an assertion: each one is used once, at once.
const ASSERTION_LIFETIME: i64 = 60;

/// A client's private key for `private_key_jwt` client authentication (RFC 7523 §2.2): each
/// token or introspection request carries a fresh assertion signed with it, instead of a
/// shared secret. The authorization server holds only the public key ([`public_jwk`](
/// Self::public_jwk)), so nothing it stores can be replayed as the client.
///
/// The algorithm follows from the key: ES256 (P-256), ES384 (P-384), EdDSA (Ed25519), RS256
/// for RSA (PS256 with [`with_algorithm`](Self::with_algorithm)). Each assertion has
/// `iss` = `sub` = the client id, `aud` = the authorization server's **issuer identifier**
/// (as draft-ietf-oauth-rfc7523bis requires, never the endpoint's URL), a random `jti`,
/// `iat` now and `exp` 60 s later.
///
/// Cheap to clone; `Debug` shows the algorithm and the `kid`, never the private key, whose
/// memory is zeroed on drop.
///
/// ```
/// use bearer_guard::client_auth::PrivateKeyJwt;
///
/// let key = PrivateKeyJwt::from_jwk(
///     r#"{"kty":"OKP","crv":"Ed25519","kid":"svc-2025",
///         "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
/// )?;
/// assert_eq!(key.algorithm(), jsonwebtoken::Algorithm::EdDSA);
/// assert_eq!(key.key_id(), Some("svc-2025"));
/// assert!(!format!("{key:?}").contains("nWGxne"));
/// // What the authorization server registers: the public half.
/// assert!(key.public_jwk().contains(r#""x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#));
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PrivateKeyJwt {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    /// The public key's members (no `kid`, no `alg`), JSON object text.
    public: String,
}

/// A client assertion could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum AssertionError {
    /// The operating system's random source failed (for the `jti`).
    Random,
    /// The signature backend refused to sign.
    Signature,
}

impl fmt::Display for AssertionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssertionError::Random => "no randomness for the client assertion's jti",
            AssertionError::Signature => {
                "the signature backend could not sign the client assertion"
            }
        })
    }
}

impl std::error::Error for AssertionError {}

impl PrivateKeyJwt {
    /// A key from a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) for EC P-256, P-384,
    /// Ed25519 and RSA; PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the PEM holds no private key of these types (the
    /// message never quotes it), or the backend cannot sign with it.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let utils = &provider().key_utils;
        if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            for alg in [Algorithm::ES256, Algorithm::ES384] {
                if (utils.ec_pub_components_from_private_key)(key.as_bytes(), alg).is_ok() {
                    return Self::new(alg, key, None);
                }
            }
            return Err(invalid("an EC key on a curve other than P-256 and P-384"));
        }
        if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            return Self::new(Algorithm::EdDSA, key, None);
        }
        if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            return Self::new(Algorithm::RS256, key, None);
        }
        Err(invalid(
            "not a PEM private key (PKCS#8 EC P-256/P-384, Ed25519 or RSA; PKCS#1 RSA)",
        ))
    }

    /// A key from a private JWK (RFC 7517; JSON text): `kty` `EC` (`crv` `P-256` or
    /// `P-384`, with `d`, `x`, `y`), `OKP` (`Ed25519`, with `d`, `x`) or `RSA` (with `n`,
    /// `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`). Its `kid` is kept; its `alg`, when present,
    /// must suit the key (`RS256` or `PS256` for RSA).
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the JWK is not such a private key, or its public
    /// members do not match its private ones; [`ConfigError::UnsupportedAlgorithm`] for an
    /// `alg` that does not suit it.
    pub fn from_jwk(jwk: &str) -> Result<Self, ConfigError> {
        let jwk: PrivateJwk = serde_json::from_str(jwk).map_err(|_| invalid("not a JWK"))?;
        let b64 = |member: &Option<Member>, name: &str| {
            let value = member
                .as_ref()
                .ok_or_else(|| invalid(&format!("the JWK has no `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(value.0.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| invalid(&format!("the JWK's `{name}` is not base64url")))
        };
        let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let (alg, size) = if crv == "P-256" {
                    (Algorithm::ES256, 32)
                } else {
                    (Algorithm::ES384, 48)
                };
                let (d, x, y) = (b64(&jwk.d, "d")?, b64(&jwk.x, "x")?, b64(&jwk.y, "y")?);
                if d.len() != size || x.len() != size || y.len() != size {
                    return Err(invalid("the JWK's coordinates do not fit its curve"));
                }
                (
                    alg,
                    EncodingKey::from_ec_der(&der::ec_pkcs8(alg, &d, &x, &y)),
                )
            }
            ("OKP", Some("Ed25519")) => {
                let d = b64(&jwk.d, "d")?;
                if d.len() != 32 {
                    return Err(invalid("the JWK's `d` is not an Ed25519 seed"));
                }
                (
                    Algorithm::EdDSA,
                    EncodingKey::from_ed_der(&der::ed25519_pkcs8(&d)),
                )
            }
            ("RSA", _) => {
                let parts = [
                    b64(&jwk.n, "n")?,
                    b64(&jwk.e, "e")?,
                    b64(&jwk.d, "d")?,
                    b64(&jwk.p, "p")?,
                    b64(&jwk.q, "q")?,
                    b64(&jwk.dp, "dp")?,
                    b64(&jwk.dq, "dq")?,
                    b64(&jwk.qi, "qi")?,
                ];
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_der(&der::rsa_pkcs1(&parts)),
                )
            }
            _ => {
                return Err(invalid(
                    "the JWK is not an EC P-256/P-384, OKP Ed25519 or RSA key",
                ));
            }
        };
        let mut key = Self::new(alg, key, jwk.kid)?;
        // The public members given must be those of the private key.
        let given: serde_json::Value = serde_json::from_str(&key.inner.public).unwrap_or_default();
        let matches = |name: &str, member: &Option<Member>| {
            member.as_ref().is_none_or(|v| given[name] == v.0.as_str())
        };
        if !(matches("x", &jwk.x) && matches("y", &jwk.y) && matches("n", &jwk.n)) {
            return Err(invalid(
                "the JWK's public members are not its private key's",
            ));
        }
        if let Some(named) = jwk.alg.as_deref() {
            key = key.with_algorithm(parse_algorithm(named)?)?;
        }
        Ok(key)
    }

    fn new(alg: Algorithm, key: EncodingKey, kid: Option<String>) -> Result<Self, ConfigError> {
        let (public, rsa_modulus) = crate::keyring::public_jwk(alg, &key).map_err(invalid)?;
        if rsa_modulus != 0 && rsa_modulus < 256 {
            return Err(invalid("an RSA key shorter than 2048 bits"));
        }
        let key = PrivateKeyJwt {
            inner: Arc::new(KeyInner {
                alg,
                key,
                kid,
                public,
            }),
        };
        // Sign once now, so that a key the backend cannot use fails here.
        key.sign(b"probe")
            .map_err(|_| invalid("refused by the signature backend"))?;
        Ok(key)
    }

    /// The same key with `kid`: sent in each assertion's header, so that a server holding
    /// several keys of the client picks the right one.
    #[must_use]
    pub fn with_key_id(self, kid: impl Into<String>) -> Self {
        self.rebuilt(self.inner.alg, Some(kid.into()))
    }

    /// The same key signing with `alg`: for an RSA key, `RS256` (the default) or `PS256`;
    /// for the others, only their own algorithm.
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedAlgorithm`] for an algorithm that does not suit the key
    /// (HMAC and `none` never do).
    pub fn with_algorithm(self, alg: Algorithm) -> Result<Self, ConfigError> {
        let fits = match self.inner.alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                matches!(alg, Algorithm::RS256 | Algorithm::PS256)
            }
            own => own == alg,
        };
        if !fits {
            return Err(ConfigError::UnsupportedAlgorithm(format!(
                "{} for a {} private key",
                algorithm_name(alg),
                algorithm_name(self.inner.alg)
            )));
        }
        let kid = self.inner.kid.clone();
        Ok(self.rebuilt(alg, kid))
    }

    fn rebuilt(&self, alg: Algorithm, kid: Option<String>) -> Self {
        PrivateKeyJwt {
            inner: Arc::new(KeyInner {
                alg,
                key: self.inner.key.clone(),
                kid,
                public: self.inner.public.clone(),
            }),
        }
    }

    /// The algorithm assertions are signed with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The `kid` of the assertions' header, if any.
    #[must_use]
    pub fn key_id(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The public key as a JWK (JSON text, with `kid` when set, and `alg`): what the
    /// authorization server registers for the client.
    #[must_use]
    pub fn public_jwk(&self) -> String {
        let mut jwk: serde_json::Value =
            serde_json::from_str(&self.inner.public).unwrap_or_default();
        jwk["alg"] = algorithm_name(self.inner.alg).into();
        if let Some(kid) = &self.inner.kid {
            jwk["kid"] = kid.as_str().into();
        }
        jwk.to_string()
    }

    /// A fresh client assertion for `client_id` at the authorization server whose issuer
    /// identifier is `issuer`: `iss` = `sub` = `client_id`, `aud` = `issuer`, a random
    /// `jti`, `iat` now, `exp` 60 s later.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        issuer: &str,
    ) -> Result<String, AssertionError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| AssertionError::Random)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut header = serde_json::json!({"alg": algorithm_name(self.inner.alg), "typ": "JWT"});
        if let Some(kid) = &self.inner.kid {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": issuer,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, AssertionError> {
        let signer = (provider().signer_factory)(&self.inner.alg, &self.inner.key)
            .map_err(|_| AssertionError::Signature)?;
        signer
            .try_sign(input)
            .map_err(|_| AssertionError::Signature)
    }
}

impl fmt::Debug for PrivateKeyJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyJwt")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

/// The members of a private JWK; the private ones are zeroed on drop.
#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    x: Option<Member>,
    #[serde(default)]
    y: Option<Member>,
    #[serde(default)]
    n: Option<Member>,
    #[serde(default)]
    e: Option<Member>,
    #[serde(default)]
    d: Option<Member>,
    #[serde(default)]
    p: Option<Member>,
    #[serde(default)]
    q: Option<Member>,
    #[serde(default)]
    dp: Option<Member>,
    #[serde(default)]
    dq: Option<Member>,
    #[serde(default)]
    qi: Option<Member>,
}

/// A JWK member, zeroed on drop.
#[derive(Deserialize)]
#[serde(transparent)]
struct Member(String);

impl Drop for Member {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn invalid(reason: &str) -> ConfigError {
    ConfigError::InvalidKey {
        kid: None,
        reason: reason.to_owned(),
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, ConfigError> {
    Ok(match name {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        other => {
            return Err(ConfigError::UnsupportedAlgorithm(format!(
                "{other} for a client assertion key"
            )));
        }
    })
}

/// The DER the backends load private keys from, built from a JWK's members.
mod der {
    use jsonwebtoken::Algorithm;
    use zeroize::Zeroizing;

    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.push(tag);
        push_len(out, content.len());
        out.extend_from_slice(content);
    }

    /// A DER INTEGER of an unsigned big-endian number.
    fn uint(out: &mut Vec<u8>, value: &[u8]) {
        let value = &value[value.iter().take_while(|&&b| b == 0).count()..];
        let mut content = Zeroizing::new(Vec::with_capacity(value.len() + 1));
        if value.first().is_none_or(|&b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(value);
        tlv(out, 0x02, &content);
    }

    fn sequence(content: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 4));
        tlv(&mut out, 0x30, content);
        out
    }

    /// PKCS#8 of an EC private key, with its public key (RFC 5915, RFC 5208).
    pub(super) fn ec_pkcs8(alg: Algorithm, d: &[u8], x: &[u8], y: &[u8]) -> Zeroizing<Vec<u8>> {
        const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        let curve = if alg == Algorithm::ES256 { P256 } else { P384 };
        let mut point = Zeroizing::new(vec![0x00, 0x04]);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let mut public = Zeroizing::new(Vec::new());
        tlv(&mut public, 0x03, &point);
        let mut ec = Zeroizing::new(vec![0x02, 0x01, 0x01]);
        tlv(&mut ec, 0x04, d);
        tlv(&mut ec, 0xa1, &public);
        let ec = sequence(&ec);
        let mut algorithm = EC_PUBLIC_KEY.to_vec();
        algorithm.extend_from_slice(curve);
        let mut body = Zeroizing::new(vec![0x02, 0x01, 0x00]);
        tlv(&mut body, 0x30, &algorithm);
        tlv(&mut body, 0x04, &ec);
        sequence(&body)
    }

    /// PKCS#8 (v1) of an Ed25519 private key (RFC 8410).
    pub(super) fn ed25519_pkcs8(seed: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ]);
        out.extend_from_slice(seed);
        out
    }

    /// PKCS#1 `RSAPrivateKey` of (n, e, d, p, q, dp, dq, qi).
    pub(super) fn rsa_pkcs1(parts: &[Zeroizing<Vec<u8>>; 8]) -> Zeroizing<Vec<u8>> {
        let mut body = Zeroizing::new(vec![0x02, 0x01, 0x00]);
        for part in parts {
            uint(&mut body, part);
        }
        sequence(&body)
    }
}
