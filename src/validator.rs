//! The [`Validator`]: one per issuer and audience, shared by every route layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::de::DeserializeOwned;

use crate::challenge::{self, Challenges};
use crate::claims::{AccessClaims, Claims};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::json::{self, Value};
use crate::jws::{self, Typ};
use crate::keys::{Key, KeySet};
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
    inner: Arc<Inner>,
    _claims: PhantomData<fn() -> T>,
}

struct Inner {
    issuer: Box<str>,
    audiences: Box<[Box<str>]>,
    keys: KeySet,
    leeway: i64,
    require_at_jwt: bool,
    max_token_len: usize,
    challenges: Challenges,
}

impl<T> Clone for Validator<T> {
    fn clone(&self) -> Self {
        Validator {
            inner: Arc::clone(&self.inner),
            _claims: PhantomData,
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
            .finish()
    }
}

/// A token that passed every check: its claims and what the layer needs to authorize.
pub(crate) struct Verified<T> {
    pub(crate) claims: Claims<T>,
    pub(crate) scopes: Granted,
    /// The key that verified the signature, kept so that caches can drop the entry when the
    /// key leaves the set.
    #[allow(dead_code)]
    pub(crate) key: Key,
    #[allow(dead_code)]
    pub(crate) exp: i64,
}

impl Validator<AccessClaims> {
    /// Starts a builder. Issuer, audience and keys are required.
    pub fn builder() -> ValidatorBuilder<AccessClaims> {
        ValidatorBuilder {
            issuer: None,
            audiences: Vec::new(),
            keys: None,
            leeway: DEFAULT_LEEWAY,
            require_at_jwt: true,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            realm: None,
            resource_metadata: None,
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
    /// # Errors
    /// An [`AuthError`] whose [`kind`](AuthError::kind) says what failed.
    pub fn validate(&self, token: &str) -> Result<Claims<T>, AuthError> {
        self.verify(token).map(|v| v.claims)
    }

    /// Validates a token as [`validate`](Self::validate) does, then checks that it grants
    /// `scopes`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), or [`ErrorKind::InsufficientScope`].
    pub fn authorize(&self, token: &str, scopes: &RequiredScopes) -> Result<Claims<T>, AuthError> {
        let verified = self.verify(token)?;
        scopes.check(verified.scopes.iter())?;
        Ok(verified.claims)
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Verified<T>, AuthError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Err(ErrorKind::TokenTooLarge.into());
        }
        let jws = jws::verify(&inner.keys, token, |typ| match typ {
            Typ::AccessToken => Ok(()),
            Typ::Absent | Typ::Jwt if !inner.require_at_jwt => Ok(()),
            _ => Err(ErrorKind::InvalidType.into()),
        })?;
        let [iss, aud, exp, nbf, iat, scope, scp] = json::read_object(
            &jws.payload,
            ["iss", "aud", "exp", "nbf", "iat", "scope", "scp"],
        )
        .map_err(jws::json_error)?;

        let now = now();
        let exp = numeric_date(exp.as_ref(), "exp", f64::floor)?
            .ok_or(AuthError::claim(ErrorKind::MissingClaim, "exp"))?;
        if now.saturating_sub(inner.leeway) >= exp {
            return Err(AuthError::claim(ErrorKind::Expired, "exp"));
        }
        let latest = now.saturating_add(inner.leeway);
        if numeric_date(nbf.as_ref(), "nbf", f64::ceil)?.is_some_and(|nbf| nbf > latest) {
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
        Ok(Verified {
            claims: Claims(Arc::new(claims)),
            scopes,
            key: jws.key.clone(),
            exp,
        })
    }
}

impl<T> Validator<T> {
    /// The configured issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The configured key set.
    #[must_use]
    pub fn keys(&self) -> &KeySet {
        &self.inner.keys
    }

    pub(crate) fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    pub(crate) fn challenges(&self) -> &Challenges {
        &self.inner.challenges
    }
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
#[must_use]
pub struct ValidatorBuilder<T = AccessClaims> {
    issuer: Option<String>,
    audiences: Vec<String>,
    keys: Option<KeySet>,
    leeway: Duration,
    require_at_jwt: bool,
    max_token_len: usize,
    realm: Option<String>,
    resource_metadata: Option<String>,
    _claims: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ValidatorBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<T> ValidatorBuilder<T> {
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

    /// The verification keys.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
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

    /// Chooses the type the claims are deserialized into (default [`AccessClaims`]).
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { sub: String, tenant: String }
    /// let builder = bearer_guard::Validator::builder().claims::<MyClaims>();
    /// ```
    pub fn claims<U>(self) -> ValidatorBuilder<U> {
        ValidatorBuilder {
            issuer: self.issuer,
            audiences: self.audiences,
            keys: self.keys,
            leeway: self.leeway,
            require_at_jwt: self.require_at_jwt,
            max_token_len: self.max_token_len,
            realm: self.realm,
            resource_metadata: self.resource_metadata,
            _claims: PhantomData,
        }
    }

    /// Builds the validator.
    ///
    /// # Errors
    /// [`ConfigError::MissingIssuer`], [`ConfigError::MissingAudience`],
    /// [`ConfigError::MissingKeys`] when a required setting is absent (or empty),
    /// [`ConfigError::LeewayTooLarge`], [`ConfigError::InvalidHeaderValue`] for a realm or
    /// metadata URL that cannot be sent in a header.
    pub fn build(self) -> Result<Validator<T>, ConfigError> {
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or(ConfigError::MissingIssuer)?;
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::MissingAudience);
        }
        let keys = self
            .keys
            .filter(|k| !k.is_empty())
            .ok_or(ConfigError::MissingKeys)?;
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge {
                requested: self.leeway.as_secs(),
                max: MAX_LEEWAY.as_secs(),
            });
        }
        let challenges = Challenges::new(self.realm.as_deref(), self.resource_metadata.as_deref())?;
        Ok(Validator {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                audiences: self.audiences.into_iter().map(Into::into).collect(),
                keys,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                require_at_jwt: self.require_at_jwt,
                max_token_len: self.max_token_len,
                challenges,
            }),
            _claims: PhantomData,
        })
    }
}

/// `WWW-Authenticate` for a route's `insufficient_scope` answers.
pub(crate) fn insufficient_scope_challenge<T>(
    validator: &Validator<T>,
    scopes: &RequiredScopes,
) -> HeaderValue {
    challenge::insufficient_scope(validator.challenges(), scopes)
}
