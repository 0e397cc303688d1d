//! The [`Validator`]: one per issuer and audience, shared by every route layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::de::DeserializeOwned;

use crate::cache::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, TokenCache};
use crate::challenge::{self, Challenges};
use crate::claims::{AccessClaims, Claims};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::json::{self, Value};
use crate::jws::{self, Typ};
#[cfg(feature = "remote")]
use crate::keys::JwksOptions;
use crate::keys::{Key, KeySet};
#[cfg(feature = "remote")]
use crate::remote::http::HttpClient;
#[cfg(feature = "remote")]
use crate::remote::{KeyCache, Keys, Settings, Source};
use crate::revocation::{DEFAULT_REVOCATION_MEMO, Known, RevocationCheck, Revocations};
use crate::scope::{Granted, RequiredScopes};

/// Default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Largest leeway [`ValidatorBuilder::leeway`] accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Default cap on a token's length in bytes, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Validates JWT access tokens for one issuer and audience.
///
/// Cheap to clone (one `Arc`), `Send` and `Sync`: build it once and share it between route
/// layers, extractors, GraphQL resolvers or anything else that holds a token.
///
/// `T` is the claims type the payload is deserialized into: [`AccessClaims`] unless chosen
/// with [`ValidatorBuilder::claims`].
///
/// # Example
/// ```
/// use bearer_guard::{KeySet, Validator};
/// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
/// let validator = Validator::builder()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .keys(KeySet::from_jwks_json(jwks)?)
///     .build()?;
///
/// let err = validator.validate("not-a-jwt").unwrap_err();
/// assert_eq!(err.kind(), bearer_guard::ErrorKind::Malformed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Validator<T = AccessClaims> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    cache: Option<TokenCache<T>>,
    revocation: Option<RevocationCheck>,
    issuer: Box<str>,
    audiences: Box<[Box<str>]>,
    keys: KeySource,
    leeway: i64,
    require_at_jwt: bool,
    max_token_len: usize,
    challenges: Challenges,
}

impl<T> Clone for Validator<T> {
    fn clone(&self) -> Self {
        Validator {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for Validator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("keys", &self.inner.keys)
            .field("leeway", &self.inner.leeway)
            .field("require_at_jwt", &self.inner.require_at_jwt)
            .field("max_token_len", &self.inner.max_token_len)
            .field(
                "cached_tokens",
                &self.inner.cache.as_ref().map(TokenCache::len),
            )
            .finish()
    }
}

/// Where a validator's keys come from.
enum KeySource {
    Static(KeySet),
    #[cfg(feature = "remote")]
    Remote(Arc<KeyCache>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Static(keys) => keys.fmt(f),
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => cache.fmt(f),
        }
    }
}

/// A refusal, with the client when the token itself was valid (revoked, revocation store
/// down), for the security event.
pub(crate) struct Refused {
    pub(crate) error: AuthError,
    pub(crate) client_id: Option<Box<str>>,
}

impl From<AuthError> for Refused {
    fn from(error: AuthError) -> Self {
        Refused {
            error,
            client_id: None,
        }
    }
}

impl From<ErrorKind> for Refused {
    fn from(kind: ErrorKind) -> Self {
        AuthError::from(kind).into()
    }
}

impl Refused {
    fn of<T>(kind: ErrorKind, verified: &Verified<T>) -> Self {
        Refused {
            error: kind.into(),
            client_id: verified.client_id.clone(),
        }
    }
}

/// The outcome of checking a token without waiting.
pub(crate) enum Step<T> {
    Done(Result<Arc<Verified<T>>, Refused>),
    /// Something must be awaited first.
    Wait(Pending<T>),
}

/// What a check must wait for.
pub(crate) enum Pending<T> {
    /// A key-set fetch (remote keys only); carries the key-set generation the check saw.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Keys(u64),
    /// The revocation store's answer for this otherwise valid token.
    Revocation(Arc<Verified<T>>),
}

/// A token that passed every check: its claims and what the layer needs to authorize.
pub(crate) struct Verified<T> {
    pub(crate) claims: Claims<T>,
    pub(crate) scopes: Granted,
    /// The key that verified the signature: a cached entry is served only while it is
    /// still in the key set.
    pub(crate) key: Key,
    pub(crate) exp: i64,
    pub(crate) nbf: Option<i64>,
    pub(crate) jti: Option<Box<str>>,
    /// `client_id` (else `azp`), for security events.
    pub(crate) client_id: Option<Box<str>>,
    /// Estimated bytes held by the claims and scopes, for the cache's memory bound.
    pub(crate) size: u64,
}

impl Validator<AccessClaims> {
    /// Starts a builder. Issuer, audience and keys are required.
    pub fn builder() -> ValidatorBuilder<AccessClaims> {
        ValidatorBuilder {
            issuer: None,
            audiences: Vec::new(),
            keys: StaticKeys { keys: None },
            leeway: DEFAULT_LEEWAY,
            require_at_jwt: true,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            realm: None,
            resource_metadata: None,
            cache: Some((DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES)),
            revocation: RevocationSettings {
                store: None,
                memo: DEFAULT_REVOCATION_MEMO,
                fail_open: false,
            },
            _claims: PhantomData,
        }
    }
}

impl<T> Validator<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Validates a token: signature with the pinned key, `typ`, `exp`/`nbf`/`iat`, `iss`,
    /// `aud`; then deserializes the claims into `T`. No scope is required.
    ///
    /// Never waits: with remote keys it uses the key set fetched so far, so a token signed
    /// with a key published since is refused with [`ErrorKind::UnknownKey`]; with a
    /// revocation store, a token whose answer is not memoised yet is refused with
    /// [`ErrorKind::RevocationUnavailable`] (accepted when failing open). Either way the
    /// missing piece is fetched in the background when a Tokio runtime is running. In async
    /// code use [`validate_async`](Self::validate_async), which waits for them.
    ///
    /// # Errors
    /// An [`AuthError`] whose [`kind`](AuthError::kind) says what failed.
    pub fn validate(&self, token: &str) -> Result<Claims<T>, AuthError> {
        self.verify_now(token)
            .map(|v| v.claims.clone())
            .map_err(|r| r.error)
    }

    /// Validates a token as [`validate`](Self::validate) does, waiting for a key-set fetch
    /// when the token names a key not seen yet (remote keys only; at most one fetch per
    /// cooldown, shared by all waiting requests) and for the revocation store's answer.
    ///
    /// # Errors
    /// As [`validate`](Self::validate); [`ErrorKind::KeysUnavailable`] when no keys could
    /// be fetched, [`ErrorKind::RevocationUnavailable`] when the store could not answer.
    pub async fn validate_async(&self, token: &str) -> Result<Claims<T>, AuthError> {
        self.verify_async(token)
            .await
            .map(|v| v.claims.clone())
            .map_err(|r| r.error)
    }

    /// Validates a token as [`validate`](Self::validate) does, then checks that it grants
    /// `scopes`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), or [`ErrorKind::InsufficientScope`].
    pub fn authorize(&self, token: &str, scopes: &RequiredScopes) -> Result<Claims<T>, AuthError> {
        let verified = self.verify_now(token).map_err(|r| r.error)?;
        scopes.check(verified.scopes.iter())?;
        Ok(verified.claims.clone())
    }

    /// As [`validate_async`](Self::validate_async), then checks that the token grants
    /// `scopes`.
    ///
    /// # Errors
    /// As [`validate_async`](Self::validate_async), or [`ErrorKind::InsufficientScope`].
    pub async fn authorize_async(
        &self,
        token: &str,
        scopes: &RequiredScopes,
    ) -> Result<Claims<T>, AuthError> {
        let verified = self.verify_async(token).await.map_err(|r| r.error)?;
        scopes.check(verified.scopes.iter())?;
        Ok(verified.claims.clone())
    }

    /// Verifies with what is at hand; when a key fetch or a revocation answer is missing,
    /// starts getting it in the background (if a Tokio runtime is running) instead of
    /// waiting.
    fn verify_now(&self, token: &str) -> Result<Arc<Verified<T>>, Refused> {
        let pending = match self.verify(token, true) {
            Step::Done(result) => return result,
            Step::Wait(pending) => pending,
        };
        let pending = match pending {
            Pending::Keys(_generation) => {
                #[cfg(feature = "remote")]
                if let (KeySource::Remote(cache), Ok(runtime)) =
                    (&self.inner.keys, tokio::runtime::Handle::try_current())
                {
                    let cache = Arc::clone(cache);
                    runtime.spawn(async move { cache.refresh_on_demand(_generation).await });
                }
                match self.verify(token, false) {
                    Step::Done(result) => return result,
                    Step::Wait(Pending::Keys(_)) => return Err(ErrorKind::KeysUnavailable.into()),
                    Step::Wait(pending) => pending,
                }
            }
            pending => pending,
        };
        match pending {
            Pending::Revocation(verified) => {
                let this = self.clone();
                let pending = Arc::clone(&verified);
                spawn(async move { drop(this.resolve_revocation(pending).await) });
                match &self.inner.revocation {
                    Some(check) if check.fail_open() => Ok(verified),
                    _ => Err(Refused::of(ErrorKind::RevocationUnavailable, &verified)),
                }
            }
            Pending::Keys(_) => Err(ErrorKind::KeysUnavailable.into()),
        }
    }

    pub(crate) async fn verify_async(&self, token: &str) -> Result<Arc<Verified<T>>, Refused> {
        let mut may_fetch = true;
        loop {
            match self.verify(token, may_fetch) {
                Step::Done(result) => return result,
                Step::Wait(Pending::Keys(_generation)) => {
                    #[cfg(feature = "remote")]
                    if let KeySource::Remote(cache) = &self.inner.keys {
                        cache.refresh_on_demand(_generation).await;
                    }
                    // One fetch per request at most: the next round never asks for keys.
                    may_fetch = false;
                }
                Step::Wait(Pending::Revocation(verified)) => {
                    return self.resolve_revocation(verified).await;
                }
            }
        }
    }

    /// Asks the revocation store about an otherwise valid token.
    async fn resolve_revocation(
        &self,
        verified: Arc<Verified<T>>,
    ) -> Result<Arc<Verified<T>>, Refused> {
        let (Some(check), Some(jti)) = (&self.inner.revocation, verified.jti.as_deref()) else {
            return Ok(verified);
        };
        match check
            .ask(
                &self.inner.issuer,
                jti,
                verified.exp,
                verified.client_id.as_deref(),
            )
            .await
        {
            Ok(false) => Ok(verified),
            Ok(true) => Err(Refused::of(ErrorKind::Revoked, &verified)),
            Err(_) => Err(Refused::of(ErrorKind::RevocationUnavailable, &verified)),
        }
    }

    /// Checks `token` with what is at hand. With `may_fetch`, asks for a key fetch when it
    /// could help (remote keys: none yet, or an unknown `kid`).
    pub(crate) fn verify(&self, token: &str, may_fetch: bool) -> Step<T> {
        match self.verify_signed(token, may_fetch) {
            Step::Done(Ok(verified)) => self.check_revocation(verified),
            step => step,
        }
    }

    /// The revocation memo's answer, or a request to ask the store.
    fn check_revocation(&self, verified: Arc<Verified<T>>) -> Step<T> {
        let (Some(check), Some(jti)) = (&self.inner.revocation, verified.jti.as_deref()) else {
            return Step::Done(Ok(verified));
        };
        match check.known(jti) {
            Known::NotRevoked => Step::Done(Ok(verified)),
            Known::Revoked => {
                tracing::info!(
                    target: "bearer_guard::revocation",
                    reason = "revoked",
                    client_id = verified.client_id.as_deref(),
                    "revoked token refused"
                );
                Step::Done(Err(Refused::of(ErrorKind::Revoked, &verified)))
            }
            Known::Unknown => Step::Wait(Pending::Revocation(verified)),
        }
    }

    /// Signature and claims, from the verified-token cache when the token is there.
    fn verify_signed(&self, token: &str, may_fetch: bool) -> Step<T> {
        let Some(cache) = &self.inner.cache else {
            return self.verify_uncached(token, may_fetch);
        };
        let now = now();
        cache.sweep_expired(now, self.inner.leeway);
        if let Some(hit) = cache.get(token) {
            if now.saturating_sub(self.inner.leeway) < hit.exp
                && hit
                    .nbf
                    .is_none_or(|nbf| nbf <= now.saturating_add(self.inner.leeway))
                && self.key_in_use(&hit.key)
            {
                return Step::Done(Ok(hit));
            }
            // Expired, or its key has left the set: check it in full (and fail) again.
            cache.remove(token);
        }
        let step = self.verify_uncached(token, may_fetch);
        if let Step::Done(Ok(verified)) = &step {
            cache.insert(token, Arc::clone(verified));
        }
        step
    }

    /// Whether `key` is still in the key set (always, for static keys).
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    fn key_in_use(&self, key: &Key) -> bool {
        match &self.inner.keys {
            KeySource::Static(_) => true,
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => cache.contains(key),
        }
    }

    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    fn verify_uncached(&self, token: &str, may_fetch: bool) -> Step<T> {
        match &self.inner.keys {
            KeySource::Static(keys) => {
                Step::Done(self.verify_with(keys, token).map_err(Refused::from))
            }
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => {
                let generation = cache.generation();
                match cache.keys() {
                    Keys::Ready(snapshot) => {
                        let Some(snapshot) = snapshot.as_ref() else {
                            return Step::Done(Err(crate::remote::unavailable().into()));
                        };
                        match self.verify_with(snapshot.keys(), token) {
                            Err(e)
                                if e.kind() == ErrorKind::UnknownKey
                                    && may_fetch
                                    && cache.may_fetch_on_demand() =>
                            {
                                Step::Wait(Pending::Keys(generation))
                            }
                            result => Step::Done(result.map_err(Refused::from)),
                        }
                    }
                    Keys::Fetch(generation) if may_fetch => Step::Wait(Pending::Keys(generation)),
                    Keys::Fetch(_) | Keys::Unavailable => {
                        Step::Done(Err(crate::remote::unavailable().into()))
                    }
                }
            }
        }
    }

    fn verify_with(&self, keys: &KeySet, token: &str) -> Result<Arc<Verified<T>>, AuthError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Err(ErrorKind::TokenTooLarge.into());
        }
        let jws = jws::verify(keys, token, |typ| match typ {
            Typ::AccessToken => Ok(()),
            Typ::Absent | Typ::Jwt if !inner.require_at_jwt => Ok(()),
            _ => Err(ErrorKind::InvalidType.into()),
        })?;
        let [iss, aud, exp, nbf, iat, scope, scp, jti, client_id, azp] = json::read_object(
            &jws.payload,
            [
                "iss",
                "aud",
                "exp",
                "nbf",
                "iat",
                "scope",
                "scp",
                "jti",
                "client_id",
                "azp",
            ],
        )
        .map_err(jws::json_error)?;

        let now = now();
        let exp = numeric_date(exp.as_ref(), "exp", f64::floor)?
            .ok_or(AuthError::claim(ErrorKind::MissingClaim, "exp"))?;
        if now.saturating_sub(inner.leeway) >= exp {
            return Err(AuthError::claim(ErrorKind::Expired, "exp"));
        }
        let latest = now.saturating_add(inner.leeway);
        let nbf = numeric_date(nbf.as_ref(), "nbf", f64::ceil)?;
        if nbf.is_some_and(|nbf| nbf > latest) {
            return Err(AuthError::claim(ErrorKind::NotYetValid, "nbf"));
        }
        if numeric_date(iat.as_ref(), "iat", f64::ceil)?.is_some_and(|iat| iat > latest) {
            return Err(AuthError::claim(ErrorKind::IssuedInFuture, "iat"));
        }
        match &iss {
            Some(Value::Str(iss)) if **iss == *inner.issuer => {}
            Some(Value::Str(_)) => return Err(AuthError::claim(ErrorKind::InvalidIssuer, "iss")),
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "iss")),
            None => return Err(AuthError::claim(ErrorKind::MissingClaim, "iss")),
        }
        check_audience(aud.as_ref(), &inner.audiences)?;
        let scopes = Granted::from_claims(scope.as_ref(), scp.as_ref())?;

        let claims: T = serde_json::from_slice(&jws.payload)
            .map_err(|_| AuthError::new(ErrorKind::InvalidClaims))?;
        let jti = match jti {
            None if inner.revocation.is_some() => {
                return Err(AuthError::claim(ErrorKind::MissingClaim, "jti"));
            }
            None => None,
            Some(Value::Str(jti)) => Some(Box::<str>::from(jti.as_ref())),
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "jti")),
        };
        let client_id = client_id
            .or(azp)
            .and_then(|v| v.as_str().map(Box::<str>::from));
        let size = jws.payload.len() as u64 + scopes.size();
        Ok(Arc::new(Verified {
            claims: Claims(Arc::new(claims)),
            scopes,
            key: jws.key.clone(),
            exp,
            nbf,
            jti,
            client_id,
            size,
        }))
    }
}

impl<T> Validator<T> {
    /// The configured issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The keys in use: the configured set, or the last fetched one (empty before the
    /// first fetch).
    #[must_use]
    pub fn keys(&self) -> KeySet {
        match &self.inner.keys {
            KeySource::Static(keys) => keys.clone(),
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => cache.current().unwrap_or_default(),
        }
    }

    /// How full the verified-token cache is: `(entries, estimated bytes)`, or `None` when
    /// it is off.
    #[must_use]
    pub fn token_cache_usage(&self) -> Option<(usize, u64)> {
        self.inner.cache.as_ref().map(|c| (c.len(), c.weight()))
    }

    pub(crate) fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    pub(crate) fn challenges(&self) -> &Challenges {
        &self.inner.challenges
    }
}

/// Runs `fut` on the current Tokio runtime, if there is one (else drops it).
fn spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    #[cfg(any(feature = "remote", feature = "redis"))]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(fut);
    }
    #[cfg(not(any(feature = "remote", feature = "redis")))]
    drop(fut);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Reads a NumericDate claim. Fractions are rounded with `round`, in the direction that
/// makes the check stricter.
fn numeric_date(
    value: Option<&Value<'_>>,
    claim: &'static str,
    round: fn(f64) -> f64,
) -> Result<Option<i64>, AuthError> {
    match value {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        // `as` saturates; JSON cannot express NaN or infinity.
        Some(Value::Float(f)) => Ok(Some(round(*f) as i64)),
        Some(_) => Err(AuthError::claim(ErrorKind::InvalidClaimType, claim)),
    }
}

fn check_audience(aud: Option<&Value<'_>>, ours: &[Box<str>]) -> Result<(), AuthError> {
    let is_ours = |a: &str| ours.iter().any(|o| **o == *a);
    let found = match aud {
        None => return Err(AuthError::claim(ErrorKind::MissingClaim, "aud")),
        Some(Value::Str(a)) => is_ours(a),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                match item {
                    Value::Str(a) => found |= is_ours(a),
                    _ => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "aud")),
                }
            }
            found
        }
        Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "aud")),
    };
    if found {
        Ok(())
    } else {
        Err(AuthError::claim(ErrorKind::InvalidAudience, "aud"))
    }
}

/// Builds a [`Validator`]. Obtained from [`Validator::builder`].
///
/// `K` says where the keys come from: [`StaticKeys`] (given with [`keys`](Self::keys),
/// built with a plain `build()`) or, with the
/// `remote` feature, [`RemoteKeys`] (from [`jwks_url`](Self::jwks_url) or
/// [`discover`](Self::discover), built with an async `build().await` or `build_lazy()`).
#[must_use]
pub struct ValidatorBuilder<T = AccessClaims, K = StaticKeys> {
    issuer: Option<String>,
    audiences: Vec<String>,
    keys: K,
    leeway: Duration,
    require_at_jwt: bool,
    max_token_len: usize,
    realm: Option<String>,
    resource_metadata: Option<String>,
    cache: Option<(usize, u64)>,
    revocation: RevocationSettings,
    _claims: PhantomData<fn() -> T>,
}

/// The builder's revocation settings, independent of the order they are given in.
struct RevocationSettings {
    store: Option<Arc<dyn Revocations>>,
    memo: Duration,
    fail_open: bool,
}

/// [`ValidatorBuilder`] state: keys given in code ([`KeySet`]).
#[derive(Debug, Default)]
pub struct StaticKeys {
    keys: Option<KeySet>,
}

/// [`ValidatorBuilder`] state: keys fetched from the issuer (feature `remote`).
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub struct RemoteKeys {
    settings: Settings,
    client: Option<Arc<dyn HttpClient>>,
    tls: Option<rustls::ClientConfig>,
}

#[cfg(feature = "remote")]
impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<T, K: fmt::Debug> fmt::Debug for ValidatorBuilder<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<T, K> ValidatorBuilder<T, K> {
    /// The issuer: a token's `iss` must equal it exactly (no normalisation, no trailing-slash
    /// games).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An audience this API answers to, usually its RFC 8707 resource URI. A token's `aud`
    /// (string or array) must contain one. Call again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat`. Default 60 s, at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts tokens whose header has no `typ` or `typ: JWT`, for issuers that do not set
    /// RFC 9068's `at+jwt`. Other types (`id_token+jwt`, `dpop+jwt` ...) stay refused.
    ///
    /// Without the `typ` check, an ID token or another JWT from the same issuer could pass
    /// for an access token when its `aud` matches; keep audiences distinct.
    pub fn allow_untyped_tokens(mut self) -> Self {
        self.require_at_jwt = false;
        self
    }

    /// Caps a token's length in bytes; longer ones are refused before parsing. Default 8 KiB.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// A `realm` for the `WWW-Authenticate` challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The URL of this resource's OAuth 2.0 Protected Resource Metadata (RFC 9728), sent as
    /// `resource_metadata` in every `WWW-Authenticate` challenge so clients (MCP clients,
    /// agents) can discover the authorization server.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Bounds the verified-token cache (default 4096 tokens and 8 MiB, estimated).
    ///
    /// A token seen before is served from the cache without checking its signature or
    /// parsing it again; its `exp`/`nbf`, its key and the route's scopes are still checked
    /// on every request. Only tokens that passed every check are cached.
    pub fn token_cache(mut self, max_entries: usize, max_bytes: u64) -> Self {
        self.cache = Some((max_entries, max_bytes));
        self
    }

    /// Checks every token against a revocation store, keyed by issuer and `jti`; tokens
    /// without `jti` are refused. See [`revocation`](crate::revocation) for the memo and
    /// failure behaviour.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bearer_guard::{Validator, revocation::MemoryRevocations};
    /// let store = Arc::new(MemoryRevocations::new());
    /// let builder = Validator::builder().revocation(store.clone());
    /// ```
    pub fn revocation(mut self, store: Arc<dyn Revocations>) -> Self {
        self.revocation.store = Some(store);
        self
    }

    /// How long a revocation answer is trusted without asking the store again (default
    /// 500 ms, at most an hour): the longest a revoked token can still be accepted after the
    /// store has it. Zero asks on every request. Used with [`revocation`](Self::revocation).
    pub fn revocation_memo(mut self, memo: Duration) -> Self {
        self.revocation.memo = memo;
        self
    }

    /// When the revocation store cannot be reached, accept tokens (logging a warning)
    /// instead of answering 503. Used with [`revocation`](Self::revocation).
    pub fn revocation_fail_open(mut self) -> Self {
        self.revocation.fail_open = true;
        self
    }

    /// Turns the verified-token cache off: every request verifies the signature.
    pub fn without_token_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Chooses the type the claims are deserialized into (default [`AccessClaims`]).
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { sub: String, tenant: String }
    /// let builder = bearer_guard::Validator::builder().claims::<MyClaims>();
    /// ```
    pub fn claims<U>(self) -> ValidatorBuilder<U, K> {
        self.with_keys(|keys| keys)
    }

    fn with_keys<U, L>(self, f: impl FnOnce(K) -> L) -> ValidatorBuilder<U, L> {
        ValidatorBuilder {
            issuer: self.issuer,
            audiences: self.audiences,
            keys: f(self.keys),
            leeway: self.leeway,
            require_at_jwt: self.require_at_jwt,
            max_token_len: self.max_token_len,
            realm: self.realm,
            resource_metadata: self.resource_metadata,
            cache: self.cache,
            revocation: self.revocation,
            _claims: PhantomData,
        }
    }

    /// Checks the settings common to every key source, then builds with `keys`.
    fn finish(
        self,
        keys: impl FnOnce(&str) -> Result<KeySource, ConfigError>,
    ) -> Result<Validator<T>, ConfigError> {
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or(ConfigError::MissingIssuer)?;
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::MissingAudience);
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge {
                requested: self.leeway.as_secs(),
                max: MAX_LEEWAY.as_secs(),
            });
        }
        let challenges = Challenges::new(self.realm.as_deref(), self.resource_metadata.as_deref())?;
        let keys = keys(&issuer)?;
        Ok(Validator {
            inner: Arc::new(Inner {
                cache: self
                    .cache
                    .map(|(entries, bytes)| TokenCache::new(entries, bytes)),
                revocation: self.revocation.store.map(|store| {
                    RevocationCheck::new(store, self.revocation.memo, self.revocation.fail_open)
                }),
                issuer: issuer.into(),
                audiences: self.audiences.into_iter().map(Into::into).collect(),
                keys,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                require_at_jwt: self.require_at_jwt,
                max_token_len: self.max_token_len,
                challenges,
            }),
        })
    }
}

impl<T> ValidatorBuilder<T, StaticKeys> {
    /// The verification keys.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys.keys = Some(keys);
        self
    }

    /// Builds the validator.
    ///
    /// # Errors
    /// [`ConfigError::MissingIssuer`], [`ConfigError::MissingAudience`],
    /// [`ConfigError::MissingKeys`] when a required setting is absent (or empty),
    /// [`ConfigError::LeewayTooLarge`], [`ConfigError::InvalidHeaderValue`] for a realm or
    /// metadata URL that cannot be sent in a header.
    pub fn build(self) -> Result<Validator<T>, ConfigError> {
        let keys = self.keys.keys.clone();
        self.finish(|_| {
            keys.filter(|k| !k.is_empty())
                .map(KeySource::Static)
                .ok_or(ConfigError::MissingKeys)
        })
    }

    /// Fetches keys from this JWKS URL (feature `remote`). `https` is required, except for
    /// loopback hosts or with [`allow_insecure_http`](ValidatorBuilder::allow_insecure_http).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn jwks_url(self, url: impl Into<String>) -> ValidatorBuilder<T, RemoteKeys> {
        let source = Source::Jwks(url.into());
        self.with_keys(|_| RemoteKeys {
            settings: Settings::new(source),
            client: None,
            tls: None,
        })
    }

    /// Finds the keys through the issuer's metadata (feature `remote`): RFC 8414
    /// `/.well-known/oauth-authorization-server`, falling back to OpenID Connect
    /// `/.well-known/openid-configuration`. The document's `issuer` must equal the
    /// configured issuer exactly; its `jwks_uri` is used. Sets the issuer to `issuer_url`
    /// unless [`issuer`](ValidatorBuilder::issuer) was called.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn discover(mut self, issuer_url: impl Into<String>) -> ValidatorBuilder<T, RemoteKeys> {
        let url = issuer_url.into();
        self.issuer.get_or_insert_with(|| url.clone());
        let source = Source::Discover(url);
        self.with_keys(|_| RemoteKeys {
            settings: Settings::new(source),
            client: None,
            tls: None,
        })
    }
}

#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
impl<T> ValidatorBuilder<T, RemoteKeys> {
    /// Fetches the keys now, and fails if the issuer cannot be reached or serves no usable
    /// key: a service that starts is a service that can authenticate. Starts the background
    /// refresh. Needs a Tokio runtime.
    ///
    /// # Errors
    /// As `build()` with static keys, and
    /// [`ConfigError::InsecureUrl`], [`ConfigError::InvalidUrl`],
    /// [`ConfigError::KeyFetch`] (issuer down, issuer mismatch, no usable key ...).
    pub async fn build(self) -> Result<Validator<T>, ConfigError> {
        let mut cache = None;
        let validator = self.build_inner(&mut cache)?;
        if let Some(cache) = cache {
            cache.initial_fetch().await?;
        }
        Ok(validator)
    }

    /// Builds without fetching: the service starts at once and fetches the keys on first
    /// use. Until a fetch succeeds, requests get 503 ([`ErrorKind::KeysUnavailable`]).
    ///
    /// # Errors
    /// As [`build`](Self::build), except [`ConfigError::KeyFetch`].
    pub fn build_lazy(self) -> Result<Validator<T>, ConfigError> {
        self.build_inner(&mut None)
    }

    fn build_inner(self, out: &mut Option<Arc<KeyCache>>) -> Result<Validator<T>, ConfigError> {
        let RemoteKeys {
            settings,
            client,
            tls,
        } = ValidatorBuilder::<T, RemoteKeys>::take(&self);
        self.finish(|issuer| {
            let cache = Arc::new(KeyCache::new(settings, issuer.to_owned(), client, tls)?);
            *out = Some(Arc::clone(&cache));
            Ok(KeySource::Remote(cache))
        })
    }

    fn take(&self) -> RemoteKeys {
        RemoteKeys {
            settings: self.keys.settings.clone(),
            client: self.keys.client.clone(),
            tls: self.keys.tls.clone(),
        }
    }

    /// Uses this HTTP client for discovery and key sets (a proxy-aware client, a test
    /// double ...). Timeouts, the size cap and the no-redirect rule still apply around it.
    pub fn http_client(mut self, client: impl HttpClient) -> Self {
        self.keys.client = Some(Arc::new(client));
        self
    }

    /// TLS settings for the default client: a private CA, a client certificate for mTLS.
    /// Build it with an explicit crypto provider
    /// (`rustls::ClientConfig::builder_with_provider`).
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.keys.tls = Some(config);
        self
    }

    /// Allows `http://` URLs to hosts that are not loopback. Only for networks where
    /// nothing can alter traffic: a forged key set means forged tokens are accepted.
    pub fn allow_insecure_http(mut self) -> Self {
        self.keys.settings.allow_http = true;
        self
    }

    /// How long after a fetch triggered by an unknown `kid` no other such fetch happens;
    /// unknown kids are refused at once meanwhile. Default 30 s.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.keys.settings.cooldown = cooldown;
        self
    }

    /// Bounds for the background refresh interval, which follows the key set's
    /// `Cache-Control: max-age` (5 minutes without one). Default 1 minute to 24 hours.
    pub fn refresh_interval(mut self, min: Duration, max: Duration) -> Self {
        self.keys.settings.refresh_min = min;
        self.keys.settings.refresh_max = max.max(min);
        self
    }

    /// How long the last good key set keeps serving after its fetch while the issuer cannot
    /// be reached. After that, requests get 503. Default 1 hour.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.keys.settings.max_staleness = max;
        self
    }

    /// Connect and total timeouts of each fetch. Default 5 s and 10 s.
    pub fn fetch_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.keys.settings.connect_timeout = connect;
        self.keys.settings.timeout = total;
        self
    }

    /// Largest response accepted from the issuer, in bytes. Default 1 MiB.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.keys.settings.max_body = bytes;
        self
    }

    /// How fetched key sets are read (default algorithm for RSA keys without `alg`, key
    /// count cap).
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.keys.settings.jwks = options;
        self
    }
}

/// `WWW-Authenticate` for a route's `insufficient_scope` answers.
pub(crate) fn insufficient_scope_challenge<T>(
    validator: &Validator<T>,
    scopes: &RequiredScopes,
) -> HeaderValue {
    challenge::insufficient_scope(validator.challenges(), scopes)
}
