//! Proof creation (feature `dpop-client`): a client's [`DpopKey`] signs one proof per request.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use zeroize::Zeroizing;

use super::jwk::{algorithm_name, jwk_thumbprint, sha256};
use crate::error::ConfigError;
use crate::keyring::provider;

/// A client's DPoP key pair: signs proofs, with its public JWK in each proof's header.
///
/// Generated at start ([`generate`](Self::generate): ES256, or
/// [`generate_with`](Self::generate_with) ES384 or EdDSA) by the active signature backend,
/// or loaded from a PEM private key. Cheap to clone; `Debug` shows the algorithm and the
/// thumbprint, never the private key.
///
/// ```
/// use bearer_guard::dpop::DpopKey;
/// let key = DpopKey::generate()?;
/// let proof = key
///     .proof(&http::Method::GET, "https://api.example/accounts?page=2")
///     .access_token("the-access-token")
///     .sign()?;
/// assert_eq!(proof.split('.').count(), 3);
/// assert_eq!(key.thumbprint().len(), 43); // the `cnf.jkt` of tokens bound to it
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: Algorithm,
    key: EncodingKey,
    jwk: String,
    thumbprint: String,
    /// base64url of the proof header, the same for every proof.
    header_b64: String,
}

/// A proof could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The operating system's random source failed (for the `jti`).
    Random,
    /// The signature backend refused to sign.
    Signature,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProofError::Random => "no randomness for the DPoP proof's jti",
            ProofError::Signature => "the signature backend could not sign the DPoP proof",
        })
    }
}

impl std::error::Error for ProofError {}

impl DpopKey {
    /// A new ES256 (P-256) key.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the backend cannot generate a key.
    pub fn generate() -> Result<DpopKey, ConfigError> {
        Self::generate_with(Algorithm::ES256)
    }

    /// A new key for `alg`: `ES256`, `ES384` or `EdDSA` (Ed25519).
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedAlgorithm`] for other algorithms (load RSA keys with
    /// [`from_pem`](Self::from_pem)), [`ConfigError::InvalidKey`] when generation fails.
    pub fn generate_with(alg: Algorithm) -> Result<DpopKey, ConfigError> {
        let pkcs8 = generate_pkcs8(alg)?;
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&pkcs8),
            _ => EncodingKey::from_ec_der(&pkcs8),
        };
        DpopKey::new(alg, key)
    }

    /// A key from a PEM private key: PKCS#8 for `ES256`, `ES384`, `EdDSA`; PKCS#1 or PKCS#8
    /// for the RSA algorithms.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKey`] when the PEM does not hold a private key for `alg`,
    /// [`ConfigError::UnsupportedAlgorithm`] for HMAC.
    pub fn from_pem(pem: &[u8], alg: Algorithm) -> Result<DpopKey, ConfigError> {
        let invalid = |e: jsonwebtoken::errors::Error| ConfigError::InvalidKey {
            kid: None,
            reason: format!("not a private key for {}: {e}", algorithm_name(alg)),
        };
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(unsupported(alg));
            }
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .map_err(invalid)?;
        DpopKey::new(alg, key)
    }

    fn new(alg: Algorithm, key: EncodingKey) -> Result<DpopKey, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidKey {
            kid: None,
            reason: reason.to_owned(),
        };
        let (jwk, _) = crate::keyring::public_jwk(alg, &key).map_err(invalid)?;
        // The verifier's own rules (curve, sizes) decide whether the key is usable.
        let thumbprint =
            jwk_thumbprint(&jwk, alg).map_err(|e| invalid(&format!("public key: {e}")))?;
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{jwk}}}"#,
            algorithm_name(alg)
        );
        let dpop = DpopKey {
            inner: Arc::new(KeyInner {
                alg,
                key,
                jwk,
                thumbprint,
                header_b64: URL_SAFE_NO_PAD.encode(header),
            }),
        };
        // Sign once now, so that a key the backend cannot use fails here.
        dpop.sign_input(b"probe")
            .map_err(|_| invalid("refused by the signature backend"))?;
        Ok(dpop)
    }

    /// The algorithm proofs are signed with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: the `cnf.jkt` of tokens bound to
    /// this key, and the `dpop_jkt` authorization request parameter.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK (JSON text, RFC 7638 members only).
    #[must_use]
    pub fn public_jwk(&self) -> &str {
        &self.inner.jwk
    }

    /// Starts a proof for a request: `htm` is `method`, `htu` is `url` without its query and
    /// fragment.
    pub fn proof(&self, method: &http::Method, url: &str) -> ProofBuilder<'_> {
        let end = url.find(['?', '#']).unwrap_or(url.len());
        ProofBuilder {
            key: self,
            htm: method.as_str().to_owned(),
            htu: url[..end].to_owned(),
            ath: None,
            nonce: None,
            iat: None,
            jti: None,
        }
    }

    fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, ProofError> {
        let signer = (provider().signer_factory)(&self.inner.alg, &self.inner.key)
            .map_err(|_| ProofError::Signature)?;
        signer.try_sign(input).map_err(|_| ProofError::Signature)
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.alg)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

/// One proof being made; see [`DpopKey::proof`].
#[must_use]
#[derive(Debug)]
pub struct ProofBuilder<'k> {
    key: &'k DpopKey,
    htm: String,
    htu: String,
    ath: Option<String>,
    nonce: Option<String>,
    iat: Option<i64>,
    jti: Option<String>,
}

impl ProofBuilder<'_> {
    /// Binds the proof to the access token it goes with (`ath`, RFC 9449 §4.2): required at
    /// protected resources.
    pub fn access_token(mut self, token: &str) -> Self {
        self.ath = sha256(token.as_bytes()).map(|h| URL_SAFE_NO_PAD.encode(h));
        self
    }

    /// The server's latest `DPoP-Nonce`.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Sets `iat` (default: now). For tests of a server's window.
    pub fn issued_at(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }

    /// Sets `jti` (default: 128 random bits). A `jti` must never repeat: for tests only.
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// Signs the proof: the value of the `DPoP` header.
    ///
    /// # Errors
    /// [`ProofError`] when no random `jti` can be drawn or the backend cannot sign.
    pub fn sign(self) -> Result<String, ProofError> {
        let jti = match self.jti {
            Some(jti) => jti,
            None => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).map_err(|_| ProofError::Random)?;
                URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        let iat = self.iat.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
        let mut claims = serde_json::json!({
            "jti": jti,
            "htm": self.htm,
            "htu": self.htu,
            "iat": iat,
        });
        if let Some(ath) = self.ath {
            claims["ath"] = ath.into();
        }
        if let Some(nonce) = self.nonce {
            claims["nonce"] = nonce.into();
        }
        let input = format!(
            "{}.{}",
            self.key.inner.header_b64,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign_input(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

fn unsupported(alg: Algorithm) -> ConfigError {
    ConfigError::UnsupportedAlgorithm(format!("{} for a DPoP key", algorithm_name(alg)))
}

fn generation_failed() -> ConfigError {
    ConfigError::InvalidKey {
        kid: None,
        reason: "the backend could not generate a key".into(),
    }
}

/// A new private key for `alg` in PKCS#8 DER, by aws-lc-rs.
#[cfg(feature = "aws_lc_rs")]
fn generate_pkcs8(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair,
    };
    let document =
        match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1()),
            Algorithm::ES384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1()),
            Algorithm::EdDSA => Ed25519KeyPair::generate().and_then(|k| k.to_pkcs8v1()),
            _ => return Err(unsupported(alg)),
        };
    document
        .map(|d| Zeroizing::new(d.as_ref().to_vec()))
        .map_err(|_| generation_failed())
}

/// A new private key for `alg` in PKCS#8 DER, by the RustCrypto crates, from `getrandom`.
#[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
fn generate_pkcs8(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, ConfigError> {
        let mut bytes = Zeroizing::new([0u8; N]);
        getrandom::fill(bytes.as_mut()).map_err(|_| generation_failed())?;
        Ok(bytes)
    }
    // A scalar out of range (zero, or above the group order) is drawn again; for P-256 and
    // P-384 that happens with probability below 2^-32.
    macro_rules! ec {
        ($curve:ident, $len:literal) => {{
            use $curve::pkcs8::EncodePrivateKey as _;
            loop {
                if let Ok(secret) = $curve::SecretKey::from_slice(random::<$len>()?.as_ref()) {
                    break secret
                        .to_pkcs8_der()
                        .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
                        .map_err(|_| generation_failed());
                }
            }
        }};
    }
    match alg {
        Algorithm::ES256 => ec!(p256, 32),
        Algorithm::ES384 => ec!(p384, 48),
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            ed25519_dalek::SigningKey::from_bytes(&*random::<32>()?)
                .to_pkcs8_der()
                .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
                .map_err(|_| generation_failed())
        }
        _ => Err(unsupported(alg)),
    }
}
