//! The public keys of `private_key_jwt` clients (RFC 7523 §2.2): a `jwk` of the clients file,
//! the `jwks` of a client metadata document, or the JWK Set at the client's `jwks_uri`.
//!
//! - Every key: EC P-256 or P-384, OKP Ed25519 or RSA (2048 bits at least), its algorithm
//!   pinned by its type and curve (`ES256`, `ES384`, `EdDSA`, `RS256`; `PS256` for an RSA key
//!   that says so), whatever an assertion's header asks for. A set with a private member or a
//!   symmetric key is refused whole: whoever published it leaked a secret. In a set, keys for
//!   something else (`use` other than `sig`, an `alg` that does not suit the key, an unknown
//!   type or curve) are skipped; at most [`MAX_KEYS`] keys. A single `jwk` must fit.
//! - A `jwks_uri` is only ever the one the clients file or the client's metadata document
//!   names, never a URL of an assertion. It is fetched by the issuer's [`Fetcher`] (the rules
//!   of Client ID Metadata Documents: https, vetted public addresses, no redirects,
//!   `CLIENT_METADATA_ALLOW_LOOPBACK` and `CLIENT_METADATA_CA_FILE`), at most [`MAX_KEY_SET`]
//!   bytes of `application/json` or `application/jwk-set+json`, when a client first needs it.
//! - Caching: a set is fresh for its `Cache-Control: max-age` (less `Age`), kept between
//!   [`MIN_FRESH`] and [`MAX_FRESH`] (`no-store`, `no-cache` or no `max-age`: the minimum).
//!   An assertion whose `kid` a fresh set lacks (the client rotated its keys) fetches the set
//!   again, at most once per [`REFETCH_AFTER`] for one URL. A failed fetch is retried no
//!   sooner: in between, an assertion that needs the set is refused without a fetch, for the
//!   same reason. One fetch
//!   per URL at a time; requests that need it wait for it. Stale keys are never used. At most
//!   [`MAX_CACHED`] URLs; past that the least recently used goes.
//! - A set that cannot be fetched or used refuses the assertion (401 `invalid_client`) with a
//!   log line of the URL and the reason; no key is ever logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bearer_guard::KeySet;
use serde_json::{Map, Value, json};

use super::fetch::{FetchError, Fetcher, MAX_FRESH, Want};

/// Largest key set fetched, in bytes.
pub const MAX_KEY_SET: usize = 16 * 1024;
/// Most keys in one set.
pub const MAX_KEYS: usize = 20;
/// Shortest time a fetched set is fresh, whatever its `Cache-Control`.
pub const MIN_FRESH: Duration = Duration::from_secs(60);
/// Shortest time between two fetches of one URL: an unknown `kid`, a failed fetch.
pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// Most `jwks_uri` remembered.
pub const MAX_CACHED: usize = 1000;

const WANT: Want = Want {
    max_bytes: MAX_KEY_SET,
    content_types: &["application/json", "application/jwk-set+json"],
};

/// Members only a private or symmetric key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Where the keys of a `private_key_jwt` client are.
#[derive(Clone)]
pub enum AssertionKeys {
    /// Given with the client: the clients file's `jwk`, a metadata document's `jwks`.
    Inline(KeySet),
    /// At this URL (checked by `fetch::check_url`), fetched and cached by [`ClientKeys`].
    JwksUri(String),
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssertionKeys::Inline(keys) => f.debug_tuple("Inline").field(&keys.len()).finish(),
            AssertionKeys::JwksUri(url) => f.debug_tuple("JwksUri").field(url).finish(),
        }
    }
}

/// Why a client's keys cannot be used. Carries nothing of the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysError {
    /// The `jwks_uri` was not fetched, or its answer not taken.
    Fetch(FetchError),
    /// Not a JWK (a JSON object), or not a JWK Set (an object with a `keys` array of them).
    Malformed,
    /// A key with a private member.
    PrivateKey,
    /// A symmetric (`oct`) key.
    Symmetric,
    /// More than [`MAX_KEYS`] keys.
    TooMany,
    /// Not an EC P-256/P-384, OKP Ed25519 or RSA key.
    Unsupported,
    /// `use` other than `sig`.
    NotForSigning,
    /// An `alg` that does not suit the key.
    AlgorithmMismatch,
    /// No key left to verify with (a set of keys for other uses, an RSA key under 2048 bits,
    /// a point not on its curve).
    NoUsableKey,
    /// The last fetch of the URL failed less than [`REFETCH_AFTER`] ago: not fetched again yet.
    RecentlyFailed,
}

impl KeysError {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            KeysError::Fetch(e) => e.reason(),
            KeysError::Malformed => "malformed_jwks",
            KeysError::PrivateKey => "private_key",
            KeysError::Symmetric => "symmetric_key",
            KeysError::TooMany => "too_many_keys",
            KeysError::Unsupported => "unsupported_key",
            KeysError::NotForSigning => "not_for_signing",
            KeysError::AlgorithmMismatch => "alg_mismatch",
            KeysError::NoUsableKey => "no_usable_key",
            KeysError::RecentlyFailed => "recently_failed",
        }
    }

    /// A failure of the moment, that says nothing about the keys.
    pub fn transient(self) -> bool {
        match self {
            KeysError::Fetch(e) => e.transient(),
            KeysError::RecentlyFailed => true,
            _ => false,
        }
    }

    /// For the error page of a metadata document whose keys are refused.
    pub fn message(self) -> &'static str {
        match self {
            KeysError::Fetch(FetchError::PrivateAddress) => {
                "The host of the client's jwks_uri is a private, loopback, link-local or \
                 reserved address: its keys are not fetched."
            }
            KeysError::Fetch(FetchError::Tls) => {
                "The client's jwks_uri cannot be fetched: its server is not trusted (TLS)."
            }
            KeysError::Fetch(FetchError::Redirect) => {
                "The client's jwks_uri answered with a redirect: redirects are not followed."
            }
            KeysError::Fetch(FetchError::ContentType) => {
                "The client's jwks_uri does not serve application/json or \
                 application/jwk-set+json."
            }
            KeysError::Fetch(FetchError::TooLarge) => {
                "The client's key set at its jwks_uri is larger than 16 KiB."
            }
            KeysError::Fetch(FetchError::Busy) => {
                "Too many client documents are being fetched: try again."
            }
            KeysError::Fetch(
                FetchError::NotHttps
                | FetchError::NotNormal
                | FetchError::TooLong
                | FetchError::Userinfo
                | FetchError::Fragment
                | FetchError::NoPath
                | FetchError::DotSegment,
            ) => {
                "The client's jwks_uri must be an https URL in normal form, with a path, without \
                 user name, password, fragment or dot segments, at most 255 bytes."
            }
            KeysError::Fetch(_) | KeysError::RecentlyFailed => {
                "The client's key set cannot be fetched from its jwks_uri."
            }
            KeysError::Malformed => "The client's key set is not a JWK Set.",
            KeysError::PrivateKey => {
                "The client's key set holds a private key: only public keys are accepted."
            }
            KeysError::Symmetric => {
                "The client's key set holds a symmetric key: only public keys are accepted."
            }
            KeysError::TooMany => "The client's key set holds more than 20 keys.",
            KeysError::Unsupported | KeysError::NotForSigning | KeysError::AlgorithmMismatch => {
                "The client's key is not an EC P-256/P-384, OKP Ed25519 or RSA signing key."
            }
            KeysError::NoUsableKey => {
                "The client's key set holds no usable public signing key (EC P-256/P-384, OKP \
                 Ed25519 or RSA of 2048 bits or more)."
            }
        }
    }
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeysError::Fetch(e) => write!(f, "the jwks_uri {e}"),
            KeysError::Malformed => f.write_str("not a JWK (Set)"),
            KeysError::PrivateKey => f.write_str("must be a public key: it has private members"),
            KeysError::Symmetric => f.write_str("must be a public key, not a symmetric one"),
            KeysError::TooMany => write!(f, "more than {MAX_KEYS} keys"),
            KeysError::Unsupported => {
                f.write_str("must be an EC P-256/P-384, OKP Ed25519 or RSA public key")
            }
            KeysError::NotForSigning => f.write_str("its use is not sig"),
            KeysError::AlgorithmMismatch => f.write_str("its alg does not suit its key"),
            KeysError::NoUsableKey => f.write_str("not a usable public key"),
            KeysError::RecentlyFailed => f.write_str("its last fetch failed a moment ago"),
        }
    }
}

impl std::error::Error for KeysError {}

/// One public key (the clients file's `jwk`), its algorithm pinned.
///
/// # Errors
/// Not a supported public signing key.
pub fn jwk_key_set(mut jwk: Value) -> Result<KeySet, KeysError> {
    let members = jwk.as_object_mut().ok_or(KeysError::Malformed)?;
    pin(members)?;
    key_set(vec![jwk])
}

/// A JWK Set (a metadata document's `jwks`, a `jwks_uri`'s answer), each key's algorithm
/// pinned; keys for something else skipped.
///
/// # Errors
/// Not a JWK Set; a private or symmetric key; too many keys; no usable key.
pub fn jwks_key_set(jwks: &Value) -> Result<KeySet, KeysError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(KeysError::Malformed)?;
    if keys.len() > MAX_KEYS {
        return Err(KeysError::TooMany);
    }
    let mut usable = Vec::with_capacity(keys.len());
    for key in keys {
        let mut key = key.clone();
        let members = key.as_object_mut().ok_or(KeysError::Malformed)?;
        match pin(members) {
            Ok(()) => usable.push(key),
            Err(e @ (KeysError::PrivateKey | KeysError::Symmetric)) => return Err(e),
            Err(_) => {}
        }
    }
    if usable.is_empty() {
        return Err(KeysError::NoUsableKey);
    }
    key_set(usable)
}

/// Pins a key's `alg` by its type and curve, and its `use` to `sig`.
fn pin(members: &mut Map<String, Value>) -> Result<(), KeysError> {
    let kty = members.get("kty").and_then(Value::as_str).unwrap_or("");
    if kty == "oct" {
        return Err(KeysError::Symmetric);
    }
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(KeysError::PrivateKey);
    }
    let crv = members.get("crv").and_then(Value::as_str).unwrap_or("");
    let alg = match (kty, crv) {
        ("EC", "P-256") => "ES256",
        ("EC", "P-384") => "ES384",
        ("OKP", "Ed25519") => "EdDSA",
        ("RSA", _) => "RS256",
        _ => return Err(KeysError::Unsupported),
    };
    if members.get("use").is_some_and(|u| u != "sig") {
        return Err(KeysError::NotForSigning);
    }
    let fits = match members.get("alg") {
        None => true,
        Some(given) => given == alg || (alg == "RS256" && given == "PS256"),
    };
    if !fits {
        return Err(KeysError::AlgorithmMismatch);
    }
    members.entry("alg").or_insert_with(|| alg.into());
    members.insert("use".into(), "sig".into());
    Ok(())
}

fn key_set(keys: Vec<Value>) -> Result<KeySet, KeysError> {
    let jwks = json!({ "keys": keys }).to_string();
    KeySet::from_jwks_json(jwks.as_bytes()).map_err(|e| match e {
        bearer_guard::ConfigError::NoUsableKeys => KeysError::NoUsableKey,
        _ => KeysError::Malformed,
    })
}

/// The key sets of `jwks_uri`, fetched and cached, of one issuer.
pub struct ClientKeys {
    fetcher: Arc<Fetcher>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("cached", &lock(&self.slots).len())
            .finish_non_exhaustive()
    }
}

/// One URL.
struct Slot {
    /// Held while fetching: one fetch per URL at a time.
    fetching: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

struct State {
    keys: Option<KeySet>,
    fresh_until: Instant,
    /// When the last fetch (good or bad) started.
    last_fetch: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failed: Option<KeysError>,
    used: Instant,
}

/// What a request does with a slot.
enum Next {
    Use(KeySet),
    Fetch,
    /// The last fetch failed too recently; why.
    Refuse(KeysError),
}

impl State {
    fn new(now: Instant) -> State {
        State {
            keys: None,
            fresh_until: now,
            last_fetch: None,
            failed: None,
            used: now,
        }
    }

    /// A fresh set is used, unless it lacks `kid` and may be fetched again; a stale or missing
    /// one is fetched, unless the last fetch was too recent.
    fn next(&self, kid: Option<&str>, now: Instant) -> Next {
        let may_fetch = self
            .last_fetch
            .is_none_or(|t| now.saturating_duration_since(t) >= REFETCH_AFTER);
        match &self.keys {
            Some(keys) if self.fresh_until > now => {
                let known = kid.is_none_or(|kid| keys.iter().any(|k| k.kid() == Some(kid)));
                if known || !may_fetch {
                    Next::Use(keys.clone())
                } else {
                    Next::Fetch
                }
            }
            _ if may_fetch => Next::Fetch,
            _ => Next::Refuse(self.failed.unwrap_or(KeysError::RecentlyFailed)),
        }
    }
}

impl ClientKeys {
    /// The key sets fetched by `fetcher`.
    pub fn new(fetcher: Arc<Fetcher>) -> ClientKeys {
        ClientKeys {
            fetcher,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The keys at `url` (a client's registered `jwks_uri`) for an assertion that names
    /// `kid`, if any: the cached set, or a fetch by the rules above.
    ///
    /// # Errors
    /// The set cannot be fetched or used, or its last fetch failed too recently.
    pub async fn get(&self, url: &str, kid: Option<&str>) -> Result<KeySet, KeysError> {
        let slot = self.slot(url);
        let decide = || match lock(&slot.state).next(kid, Instant::now()) {
            Next::Use(keys) => Some(Ok(keys)),
            Next::Refuse(e) => Some(Err(e)),
            Next::Fetch => None,
        };
        if let Some(outcome) = decide() {
            return outcome;
        }
        let _one = slot.fetching.lock().await;
        // Another request may have fetched it meanwhile.
        if let Some(outcome) = decide() {
            return outcome;
        }
        let started = Instant::now();
        let outcome = self.fetch(url).await;
        let mut state = lock(&slot.state);
        // Too many fetches elsewhere says nothing about this URL: no waiting for it.
        if outcome.as_ref().err() != Some(&KeysError::Fetch(FetchError::Busy)) {
            state.last_fetch = Some(started);
        }
        match outcome {
            Ok((keys, fresh_for)) => {
                tracing::info!(
                    jwks_uri = url,
                    keys = keys.len(),
                    fresh_for = fresh_for.as_secs(),
                    "client key set fetched"
                );
                state.keys = Some(keys.clone());
                state.failed = None;
                state.fresh_until = started.checked_add(fresh_for).unwrap_or(started);
                Ok(keys)
            }
            Err(e) => {
                if e != KeysError::Fetch(FetchError::Busy) {
                    state.failed = Some(e);
                }
                tracing::warn!(
                    target: "issuer::security",
                    event = "client_keys_refused",
                    jwks_uri = url,
                    reason = e.reason(),
                    "client key set refused: {e}"
                );
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<(KeySet, Duration), KeysError> {
        let fetched = self
            .fetcher
            .get(url, WANT)
            .await
            .map_err(KeysError::Fetch)?;
        let jwks: Value =
            serde_json::from_slice(&fetched.body).map_err(|_| KeysError::Malformed)?;
        let keys = jwks_key_set(&jwks)?;
        Ok((keys, fetched.fresh_for.clamp(MIN_FRESH, MAX_FRESH)))
    }

    /// The slot of `url`, made if new (the least recently used one goes past the cap).
    fn slot(&self, url: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(url) {
            lock(&slot.state).used = now;
            return Arc::clone(slot);
        }
        if slots.len() >= MAX_CACHED
            && let Some(oldest) = slots
                .iter()
                .min_by_key(|(_, s)| lock(&s.state).used)
                .map(|(k, _)| k.clone())
        {
            slots.remove(&oldest);
        }
        let slot = Arc::new(Slot {
            fetching: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::new(now)),
        });
        slots.insert(url.to_owned(), Arc::clone(&slot));
        slot
    }
}

/// A lock, poisoned or not (nothing here is left half-done by a panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn ed(kid: &str) -> Value {
        bearer_guard::testkit::jwk("ed-1")
            .as_object()
            .map(|m| {
                let mut m = m.clone();
                m.insert("kid".into(), kid.into());
                m.remove("alg");
                m.remove("use");
                Value::Object(m)
            })
            .expect("object")
    }

    #[test]
    fn keys_are_pinned_to_their_type() {
        let keys = jwks_key_set(&json!({ "keys": [
            ed("a"),
            bearer_guard::testkit::jwk("ec-1"),
            bearer_guard::testkit::jwk("ps-1"),
        ]}))
        .expect("set");
        let algs: Vec<_> = keys.iter().map(|k| (k.kid(), k.algorithm())).collect();
        use bearer_guard::keys::Algorithm;
        assert_eq!(
            algs,
            [
                (Some("a"), Algorithm::EdDSA),
                (Some("ec-1"), Algorithm::ES256),
                (Some("ps-1"), Algorithm::PS256),
            ]
        );
        // An alg that does not suit the key: refused alone, skipped in a set.
        let mut hs = ed("hs");
        hs["alg"] = json!("HS256");
        assert_eq!(
            jwk_key_set(hs.clone()).err(),
            Some(KeysError::AlgorithmMismatch)
        );
        let keys = jwks_key_set(&json!({ "keys": [hs, ed("b")] })).expect("set");
        assert_eq!(keys.len(), 1);
        // Encryption keys and unknown curves are skipped; nothing left is an error.
        let mut enc = ed("enc");
        enc["use"] = json!("enc");
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": "AAAA"});
        assert_eq!(
            jwk_key_set(enc.clone()).err(),
            Some(KeysError::NotForSigning)
        );
        assert_eq!(
            jwks_key_set(&json!({ "keys": [enc, x25519] })).err(),
            Some(KeysError::NoUsableKey)
        );
    }

    #[test]
    fn private_and_symmetric_keys_refuse_the_whole_set() {
        let mut private = ed("p");
        private["d"] = private["x"].clone();
        let oct = json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"});
        for (bad, why) in [
            (private, KeysError::PrivateKey),
            (oct, KeysError::Symmetric),
        ] {
            assert_eq!(jwk_key_set(bad.clone()).err(), Some(why));
            assert_eq!(
                jwks_key_set(&json!({ "keys": [ed("good"), bad] })).err(),
                Some(why)
            );
        }
    }

    #[test]
    fn malformed_and_oversized_sets_are_refused() {
        for bad in [
            json!([]),
            json!({}),
            json!({"keys": {}}),
            json!({"keys": ["x"]}),
        ] {
            assert_eq!(
                jwks_key_set(&bad).err(),
                Some(KeysError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            jwks_key_set(&json!({"keys": []})).err(),
            Some(KeysError::NoUsableKey)
        );
        let many: Vec<Value> = (0..=MAX_KEYS).map(|i| ed(&format!("k{i}"))).collect();
        assert_eq!(
            jwks_key_set(&json!({ "keys": many })).err(),
            Some(KeysError::TooMany)
        );
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut state = State::new(t0);
        assert!(matches!(state.next(None, t0), Next::Fetch));
        // Fetched at t0, fresh for a minute.
        state.last_fetch = Some(t0);
        state.keys = Some(jwk_key_set(ed("a")).expect("key"));
        state.fresh_until = t0 + MIN_FRESH;
        let soon = t0 + Duration::from_secs(1);
        let later = t0 + REFETCH_AFTER;
        assert!(matches!(state.next(Some("a"), soon), Next::Use(_)));
        assert!(matches!(state.next(None, soon), Next::Use(_)));
        // An unknown kid: the cached set (which will not verify) until the interval passed.
        assert!(matches!(state.next(Some("b"), soon), Next::Use(_)));
        assert!(matches!(state.next(Some("b"), later), Next::Fetch));
        // Stale: fetched again; stale keys are never used.
        let stale = t0 + MIN_FRESH;
        assert!(matches!(state.next(Some("a"), stale), Next::Fetch));
        // A failed fetch at `stale`: refused for the same reason, without a fetch, until the
        // interval passed.
        state.last_fetch = Some(stale);
        state.failed = Some(KeysError::Fetch(FetchError::Status));
        assert!(matches!(
            state.next(Some("a"), stale + Duration::from_secs(1)),
            Next::Refuse(KeysError::Fetch(FetchError::Status))
        ));
        assert!(matches!(
            state.next(Some("a"), stale + REFETCH_AFTER),
            Next::Fetch
        ));
    }
}
