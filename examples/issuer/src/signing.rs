//! The issuer's signing keys. A [`SigningKey`] is generated (Ed25519) or read from a PKCS#8
//! PEM file (Ed25519, P-256, P-384), with its public JWK, and signs access tokens (RFC 9068
//! `at+jwt`). [`SigningKeys`] holds every key the JWKS publishes and picks the one that
//! signs: one key for the process's life, or the keys of a directory, reloaded on demand
//! (`SIGHUP`) so that operators rotate keys without a restart.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::{AuthError, KeySet};
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
        // Fail at start, not on the first request (nor when a JWKS of it is made).
        key.sign(&json!({}))?;
        Ring::verifier(&[&key])?;
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

/// The default of [`Config::signing_key_publish_ahead`](crate::Config): how long a new key of
/// a [`SigningKeys`] directory is published before it signs. Resource servers refresh the
/// JWKS on its `max-age` (this issuer sends 60 s; `bearer_guard` then refreshes every
/// minute) or on their own schedule, commonly five minutes (`bearer_guard`'s when no
/// `max-age` is sent): five minutes covers both.
pub const DEFAULT_PUBLISH_AHEAD: Duration = Duration::from_secs(300);

/// The most keys a directory may hold: what resource servers read of a JWKS
/// (`bearer_guard`'s `JwksOptions::max_keys`); a larger set would lose keys there.
pub const MAX_KEYS: usize = 32;

/// Every key the issuer publishes, and the one that signs.
///
/// From one key ([`From<SigningKey>`]), or from a directory of PKCS#8 PEM files
/// ([`SigningKeys::from_dir`]): every `*.pem` file in it (names starting with `.` are skipped,
/// so a key can be written under a hidden name and renamed into place), in file-name order,
/// the last one the newest, each with its RFC 7638 thumbprint as `kid`. Every key is in the
/// JWKS. The newest signs once it has been published for the *publish-ahead* time (until
/// then the one before it), so that resource servers have fetched it before they see a token
/// of it. [`SigningKeys::reload`] reads the directory again: new files are published at
/// once, removed ones leave the JWKS, and a directory that cannot be read whole (a malformed
/// file, no key) changes nothing.
///
/// At start, the newest key of the directory counts as published from then (the process
/// cannot know since when it has been) and the others as published long ago: after a restart
/// the one before the newest signs for the publish-ahead time again, which is harmless as
/// both are published. Cheap to clone: clones share the keys.
#[derive(Clone)]
pub struct SigningKeys(Arc<Shared>);

struct Shared {
    /// The directory, if the keys come from one.
    dir: Option<PathBuf>,
    publish_ahead: Duration,
    ring: RwLock<Arc<Ring>>,
    /// The `kid` of the key that signed last, to log a change once.
    last_signer: Mutex<Option<String>>,
}

/// One loaded set: the keys in file-name order, their JWKS and its verifier.
struct Ring {
    keys: Vec<Published>,
    jwks: Arc<str>,
    verifier: KeySet,
}

struct Published {
    key: Arc<SigningKey>,
    /// Its file in the directory.
    file: Option<OsString>,
    /// Since when this process publishes it; `None`: long enough (published before).
    since: Option<Instant>,
}

/// What a [`SigningKeys::reload`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The `kid`s published from now on.
    pub added: Vec<String>,
    /// The `kid`s no longer published.
    pub removed: Vec<String>,
    /// The `kid` that signs now.
    pub signing: String,
    /// The `kid` of the newest key, when it does not sign yet, and how long until it does.
    pub next: Option<(String, Duration)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring();
        f.debug_struct("SigningKeys")
            .field("dir", &self.0.dir)
            .field("publish_ahead", &self.0.publish_ahead)
            .field(
                "kids",
                &ring.keys.iter().map(|p| p.key.kid()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl From<SigningKey> for SigningKeys {
    /// This key alone, for the process's life.
    fn from(key: SigningKey) -> Self {
        let keys = vec![Published {
            key: Arc::new(key),
            file: None,
            since: None,
        }];
        // A key's own JWKS always reads (`SigningKey` checks it when it is made).
        let ring = Ring::new(keys).expect("a single key's JWKS");
        SigningKeys::with_ring(None, Duration::ZERO, ring)
    }
}

impl SigningKeys {
    /// The keys of `dir` (see the type's documentation); a new key signs once it has been
    /// published for `publish_ahead`.
    ///
    /// # Errors
    /// The directory cannot be read, holds no `*.pem` file or more than [`MAX_KEYS`], a file
    /// is not a supported PKCS#8 PEM private key, or two files hold the same key.
    pub fn from_dir(dir: impl Into<PathBuf>, publish_ahead: Duration) -> Result<Self, Error> {
        let dir = dir.into();
        let now = Instant::now();
        let mut keys = read_dir(&dir)?;
        let newest = keys.len() - 1;
        for (i, key) in keys.iter_mut().enumerate() {
            key.since = (i == newest).then_some(now);
        }
        let ring = Ring::new(keys)?;
        let keys = SigningKeys::with_ring(Some(dir), publish_ahead, ring);
        let signer = keys.signer();
        tracing::info!(
            keys = keys.ring().keys.len(),
            signing = %signer.kid(),
            "signing keys loaded from {}",
            keys.0.dir.as_deref().map(Path::display).expect("a directory")
        );
        Ok(keys)
    }

    fn with_ring(dir: Option<PathBuf>, publish_ahead: Duration, ring: Ring) -> Self {
        SigningKeys(Arc::new(Shared {
            dir,
            publish_ahead,
            ring: RwLock::new(Arc::new(ring)),
            last_signer: Mutex::new(None),
        }))
    }

    fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.0.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key that signs now.
    pub fn signer(&self) -> Arc<SigningKey> {
        let ring = self.ring();
        let key = Arc::clone(&ring.signer(Instant::now(), self.0.publish_ahead).key);
        let mut last = self
            .0
            .last_signer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(key.kid()) {
            if last.is_some() {
                tracing::info!(kid = %key.kid(), "signing with another key from now on");
            }
            *last = Some(key.kid().to_owned());
        }
        key
    }

    /// A JWS of `claims` by the key that signs now (see [`SigningKey::sign`]).
    pub fn sign(&self, claims: &Value) -> Result<String, Error> {
        self.signer().sign(claims)
    }

    /// The JWKS: every published key's public JWK, in file-name order.
    pub fn jwks_json(&self) -> Arc<str> {
        Arc::clone(&self.ring().jwks)
    }

    /// The `kid`s published now, in file-name order.
    pub fn kids(&self) -> Vec<String> {
        self.ring()
            .keys
            .iter()
            .map(|p| p.key.kid().to_owned())
            .collect()
    }

    /// The payload of a JWS signed by one of the published keys (any claim, any time: the
    /// caller's to check).
    pub fn verify_signature(&self, jws: &str) -> Result<Vec<u8>, AuthError> {
        self.ring().verifier.verify_signature(jws)
    }

    /// A view for recognising this issuer's own tokens: the keys published now.
    pub(crate) fn own_keys(&self) -> OwnKeys {
        OwnKeys(self.clone())
    }

    /// The directory the keys come from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.0.dir.as_deref()
    }

    /// Reads the directory again: keys of new files are published now (and sign after the
    /// publish-ahead time, when newest), keys whose file is gone leave the JWKS, keys still
    /// there keep their publication time. Logs what changed. The same directory twice in a
    /// row changes nothing.
    ///
    /// # Errors
    /// Keys that do not come from a directory; anything [`SigningKeys::from_dir`] refuses.
    /// Then nothing changes: the keys published and the one signing stay (and the refusal is
    /// logged).
    pub fn reload(&self) -> Result<Reloaded, Error> {
        let Some(dir) = &self.0.dir else {
            return Err("the signing key does not come from a directory (SIGNING_KEYS_DIR)".into());
        };
        let result = self.reload_from(dir);
        if let Err(error) = &result {
            tracing::error!(
                error = %error,
                "signing keys not reloaded from {}; the previous keys stay",
                dir.display()
            );
        }
        result
    }

    fn reload_from(&self, dir: &Path) -> Result<Reloaded, Error> {
        let mut keys = read_dir(dir)?;
        // One reload at a time: the write lock is held from the comparison to the swap.
        let mut slot = self.0.ring.write().unwrap_or_else(PoisonError::into_inner);
        let old = Arc::clone(&slot);
        let now = Instant::now();
        let mut added = Vec::new();
        for key in &mut keys {
            match old.keys.iter().find(|p| p.key.kid() == key.key.kid()) {
                Some(previous) => {
                    key.since = previous.since;
                    key.key = Arc::clone(&previous.key);
                }
                None => {
                    key.since = Some(now);
                    added.push(key.key.kid().to_owned());
                }
            }
        }
        let removed: Vec<String> = old
            .keys
            .iter()
            .filter(|p| !keys.iter().any(|k| k.key.kid() == p.key.kid()))
            .map(|p| p.key.kid().to_owned())
            .collect();
        let ring = Ring::new(keys)?;
        let ahead = self.0.publish_ahead;
        let signing = ring.signer(now, ahead).key.kid().to_owned();
        let newest = ring.keys.last().expect("never empty");
        let next = (newest.key.kid() != signing).then(|| {
            let since = newest.since.unwrap_or(now);
            let left = ahead.saturating_sub(now.saturating_duration_since(since));
            (newest.key.kid().to_owned(), left)
        });
        *slot = Arc::new(ring);
        drop(slot);
        let reloaded = Reloaded {
            added,
            removed,
            signing,
            next,
        };
        tracing::info!(
            added = ?reloaded.added,
            removed = ?reloaded.removed,
            signing = %reloaded.signing,
            next = ?reloaded.next.as_ref().map(|(kid, _)| kid),
            next_in_s = reloaded.next.as_ref().map(|(_, left)| left.as_secs()),
            "signing keys reloaded from {}",
            dir.display()
        );
        Ok(reloaded)
    }
}

/// The keys published now, to recognise this issuer's own tokens.
#[derive(Clone)]
pub(crate) struct OwnKeys(SigningKeys);

impl OwnKeys {
    /// The payload of a JWS signed by one of the published keys.
    pub(crate) fn verify_signature(&self, jws: &str) -> Result<Vec<u8>, AuthError> {
        self.0.verify_signature(jws)
    }
}

impl Ring {
    fn new(keys: Vec<Published>) -> Result<Ring, Error> {
        let (jwks, verifier) = Ring::verifier(&keys.iter().map(|p| &*p.key).collect::<Vec<_>>())?;
        Ok(Ring {
            keys,
            jwks: jwks.into(),
            verifier,
        })
    }

    /// The JWKS of `keys`, and the key set that reads it.
    fn verifier(keys: &[&SigningKey]) -> Result<(String, KeySet), Error> {
        let jwks = json!({
            "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()
        })
        .to_string();
        let verifier = KeySet::from_jwks_json(jwks.as_bytes())
            .map_err(|e| format!("the issuer's own JWKS: {e}"))?;
        Ok((jwks, verifier))
    }

    /// The newest key published for `ahead` at `now`; if none is yet, the one published
    /// longest (the first in file-name order among equals).
    fn signer(&self, now: Instant, ahead: Duration) -> &Published {
        let ready = |p: &&Published| {
            p.since
                .is_none_or(|since| now.saturating_duration_since(since) >= ahead)
        };
        self.keys
            .iter()
            .rev()
            .find(ready)
            .or_else(|| self.keys.iter().min_by_key(|p| p.since))
            .expect("never empty")
    }
}

/// The keys of the `*.pem` files of `dir`, in file-name order, not yet dated.
fn read_dir(dir: &Path) -> Result<Vec<Published>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the key directory {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot read the key directory {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let path = entry.path();
        let hidden = name.as_encoded_bytes().starts_with(b".");
        // Symbolic links are followed (a mounted secret's files are links).
        if hidden || path.extension().is_none_or(|e| e != "pem") || !path.is_file() {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no key (*.pem file) in {}", dir.display()).into());
    }
    if files.len() > MAX_KEYS {
        return Err(format!(
            "{} keys in {}: at most {MAX_KEYS} (resource servers read no more of a JWKS)",
            files.len(),
            dir.display()
        )
        .into());
    }
    let mut keys: Vec<Published> = Vec::with_capacity(files.len());
    for (name, path) in files {
        let shown = path.display();
        let pem = std::fs::read(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let key = SigningKey::from_pem(&pem, None).map_err(|e| format!("{shown}: {e}"))?;
        if let Some(twin) = keys.iter().find(|p| p.key.kid() == key.kid()) {
            let twin = twin.file.as_deref().unwrap_or_default().to_string_lossy();
            return Err(format!("{shown} holds the same key as {twin}").into());
        }
        keys.push(Published {
            key: Arc::new(key),
            file: Some(name),
            since: None,
        });
    }
    Ok(keys)
}
