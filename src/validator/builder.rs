//! [`ValidatorBuilder`]: a validator's configuration, checked when it is built.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::issuer::Issuer;
use super::source::KeySource;
use super::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, Inner, MAX_LEEWAY, Trusted, Validator};
use crate::cache::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES, TokenCache};
use crate::checks::{Checks, Profile};
use crate::claims::AccessClaims;
use crate::error::ConfigError;
use crate::revocation::{DEFAULT_REVOCATION_MEMO, RevocationCheck, Revocations};

impl Validator<AccessClaims> {
    /// Starts a builder. An audience and keys are required, and an issuer (which
    /// [`RemoteKeys::discover`](crate::RemoteKeys::discover) provides).
    pub fn builder() -> ValidatorBuilder<AccessClaims> {
        ValidatorBuilder {
            issuer: None,
            audiences: Vec::new(),
            keys: None,
            trusted: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            profile: Profile::Rfc9068,
            max_lifetime: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache: Some((DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES)),
            revocation: RevocationSettings {
                store: None,
                memo: DEFAULT_REVOCATION_MEMO,
                fail_open: false,
            },
            #[cfg(feature = "remote")]
            introspection: None,
            _claims: PhantomData,
        }
    }
}

/// Builds a [`Validator`]. Obtained from [`Validator::builder`].
///
/// ```
/// use std::time::Duration;
/// use bearer_guard::{KeySet, Profile, Validator};
/// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
/// let validator = Validator::builder()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .keys(KeySet::from_jwks_json(jwks)?)
///     .profile(Profile::Rfc9068)                       // the default
///     .leeway(Duration::from_secs(30))
///     .max_token_lifetime(Duration::from_secs(3600))   // optional
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct ValidatorBuilder<T = AccessClaims> {
    issuer: Option<String>,
    audiences: Vec<String>,
    keys: Option<KeySource>,
    trusted: Vec<Issuer>,
    leeway: Duration,
    profile: Profile,
    max_lifetime: Option<Duration>,
    max_token_len: usize,
    cache: Option<(usize, u64)>,
    revocation: RevocationSettings,
    #[cfg(feature = "remote")]
    introspection: Option<crate::introspection::Introspection>,
    _claims: PhantomData<fn() -> T>,
}

/// The builder's revocation settings, independent of the order they are given in.
struct RevocationSettings {
    store: Option<Arc<dyn Revocations>>,
    memo: Duration,
    fail_open: bool,
}

impl<T> fmt::Debug for ValidatorBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuer", &crate::url::redacted_opt(self.issuer.as_deref()))
            .field("audiences", &crate::url::redacted_all(&self.audiences))
            .field("keys", &self.keys)
            .field("profile", &self.profile)
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
    /// (string or array) must contain one of them. Call again to accept several (an API
    /// known under more than one name).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Where the verification keys come from: a [`KeySet`](crate::KeySet) given in code, or
    /// (feature `remote`) [`RemoteKeys`](crate::RemoteKeys) fetched from the issuer. A
    /// discovery source also sets the issuer, unless [`issuer`](Self::issuer) is given.
    pub fn keys(mut self, keys: impl Into<KeySource>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// Trusts another issuer too: a platform moving between identity providers, one issuer
    /// per tenant, internal services and partners on the same routes. See [`Issuer`]. The
    /// issuer set with [`issuer`](Self::issuer) and [`keys`](Self::keys), if any, is one of
    /// them; the builder's audiences, profile, leeway and lifetime cap are every issuer's
    /// defaults.
    pub fn trust(mut self, issuer: Issuer) -> Self {
        self.trusted.push(issuer);
        self
    }

    /// Which `typ` and claims a token must have: [`Profile::Rfc9068`] (the default) or
    /// [`Profile::Jwt`] for issuers that do not follow RFC 9068. See [`Profile`] for the
    /// checks each makes.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat`. Default 60 s, at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuses tokens meant to live longer than `max` ([`ErrorKind::LifetimeTooLong`]):
    /// `exp - iat` and `exp - now` must both be at most `max`. Off by default. Short-lived
    /// tokens are what make a stolen token worth little; this holds an issuer to it.
    ///
    /// [`ErrorKind::LifetimeTooLong`]: crate::ErrorKind::LifetimeTooLong
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// Caps a token's length in bytes; longer ones are refused before parsing. Default 8 KiB.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Bounds the verified-token cache (default 4096 tokens and 8 MiB, estimated).
    ///
    /// A token seen before is served from the cache without checking its signature or
    /// parsing it again; its `exp`/`nbf`, its key, its binding and the route's scopes are
    /// still checked on every request. Only tokens that passed every check are cached.
    pub fn token_cache(mut self, max_entries: usize, max_bytes: u64) -> Self {
        self.cache = Some((max_entries, max_bytes));
        self
    }

    /// Turns the verified-token cache off: every request verifies the signature.
    pub fn without_token_cache(mut self) -> Self {
        self.cache = None;
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
    /// instead of answering 503. Only "could not be asked" fails open: a token the store
    /// has answered for is never accepted on that account. Used with
    /// [`revocation`](Self::revocation).
    pub fn revocation_fail_open(mut self) -> Self {
        self.revocation.fail_open = true;
        self
    }

    /// Verifies opaque tokens by asking the issuer (RFC 7662, feature `remote`).
    ///
    /// Tokens that are JWTs of a trusted issuer with keys are still verified here (mixed
    /// mode); every other token is introspected, and the answer is checked by the same
    /// rules (issuer, audience, times, lifetime cap, `cnf`) before scopes, binding and
    /// revocation, as for a JWT. An issuer needs no keys then: all of its tokens are
    /// introspected. The introspection's issuer
    /// ([`IntrospectionBuilder::issuer`](crate::introspection::IntrospectionBuilder::issuer), or the URL
    /// given to [`Introspection::discover`](crate::introspection::Introspection::discover)) is trusted
    /// without being named again.
    ///
    /// ```
    /// use bearer_guard::{Validator, introspection::Introspection};
    /// let validator = Validator::builder()
    ///     .audience("https://api.example")
    ///     .introspection(
    ///         Introspection::discover("https://issuer.example", "api", "s3cr3t").build()?,
    ///     )
    ///     .build()?;
    /// assert_eq!(validator.issuer(), "https://issuer.example");
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn introspection(mut self, introspection: crate::introspection::Introspection) -> Self {
        self.introspection = Some(introspection);
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
            trusted: self.trusted,
            leeway: self.leeway,
            profile: self.profile,
            max_lifetime: self.max_lifetime,
            max_token_len: self.max_token_len,
            cache: self.cache,
            revocation: self.revocation,
            #[cfg(feature = "remote")]
            introspection: self.introspection,
            _claims: PhantomData,
        }
    }

    /// Builds the validator. Remote keys are not fetched here: call
    /// [`Validator::ready`] to fetch them now, or the first request will.
    ///
    /// # Errors
    /// [`ConfigError::MissingIssuer`], [`ConfigError::MissingAudience`],
    /// [`ConfigError::MissingKeys`] when a required setting is absent (or empty),
    /// [`ConfigError::LeewayTooLarge`]; for remote keys [`ConfigError::InvalidUrl`],
    /// [`ConfigError::InsecureUrl`], [`ConfigError::CredentialsInUrl`].
    pub fn build(self) -> Result<Validator<T>, ConfigError> {
        let revocation = self.revocation.store.map(|store| {
            RevocationCheck::new(store, self.revocation.memo, self.revocation.fail_open)
        });
        #[cfg(feature = "remote")]
        let introspected = self.introspection.is_some();
        #[cfg(not(feature = "remote"))]
        let introspected = false;
        let primary = (self.issuer.is_some() || self.keys.is_some()).then(|| Issuer {
            issuer: self.issuer,
            keys: self.keys,
            audiences: Vec::new(),
            profile: None,
            leeway: None,
            max_lifetime: None,
        });
        let defaults = Defaults {
            audiences: &self.audiences,
            profile: self.profile,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            require_jti: revocation.is_some(),
            introspected,
        };
        // The introspection's issuer is trusted, for its tokens, if it is not already.
        #[cfg(feature = "remote")]
        let introspected_issuer = self
            .introspection
            .as_ref()
            .and_then(|i| i.issuer())
            .filter(|name| {
                let named = |i: &Issuer| i.issuer.as_deref() == Some(*name);
                !primary.iter().any(named) && !self.trusted.iter().any(named)
            })
            .map(Issuer::new);
        #[cfg(not(feature = "remote"))]
        let introspected_issuer = None;
        let mut issuers: Vec<Trusted> = Vec::new();
        let all = primary.into_iter().chain(self.trusted);
        for issuer in all.chain(introspected_issuer) {
            let trusted = defaults.trusted(issuer)?;
            if issuers
                .iter()
                .any(|t| t.checks.issuer == trusted.checks.issuer)
            {
                let issuer = crate::url::redact(&trusted.checks.issuer).into_owned();
                return Err(ConfigError::DuplicateIssuer(issuer));
            }
            issuers.push(trusted);
        }
        if issuers.is_empty() {
            return Err(ConfigError::MissingIssuer);
        }
        let max_leeway = issuers.iter().map(|t| t.checks.leeway).max().unwrap_or(0);
        #[cfg(feature = "remote")]
        let introspection = self.introspection.map(|i| {
            let rules = issuers.iter().map(|t| t.checks.clone()).collect();
            i.bind(rules)
        });
        Ok(Validator {
            inner: Arc::new(Inner {
                issuers: issuers.into_boxed_slice(),
                cache: self
                    .cache
                    .map(|(entries, bytes)| TokenCache::new(entries, bytes)),
                revocation,
                #[cfg(feature = "remote")]
                introspection,
                max_token_len: self.max_token_len,
                max_leeway,
            }),
        })
    }
}

/// The builder's settings every trusted issuer inherits unless it sets its own.
struct Defaults<'a> {
    audiences: &'a [String],
    profile: Profile,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    require_jti: bool,
    /// Tokens may be introspected: an issuer needs no keys.
    introspected: bool,
}

impl Defaults<'_> {
    /// `issuer`, checked and with its keys started.
    fn trusted(&self, issuer: Issuer) -> Result<Trusted, ConfigError> {
        if issuer.keys.is_none() && !self.introspected {
            return Err(ConfigError::MissingKeys);
        }
        let name = issuer
            .issuer
            .or_else(|| issuer.keys.as_ref()?.discovery_issuer().map(str::to_owned))
            .filter(|i| !i.is_empty())
            .ok_or(ConfigError::MissingIssuer)?;
        let audiences = if issuer.audiences.is_empty() {
            self.audiences.to_vec()
        } else {
            issuer.audiences
        };
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(ConfigError::MissingAudience);
        }
        let leeway = issuer.leeway.unwrap_or(self.leeway);
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge {
                requested: leeway.as_secs(),
                max: MAX_LEEWAY.as_secs(),
            });
        }
        let keys = match issuer.keys {
            Some(keys) => keys.start(&name)?,
            #[cfg(feature = "remote")]
            None => super::IssuerKeys::None,
            #[cfg(not(feature = "remote"))]
            None => return Err(ConfigError::MissingKeys),
        };
        let checks = Checks::new(
            name.into(),
            audiences.into_iter().map(Into::into).collect(),
            leeway,
            issuer.profile.unwrap_or(self.profile),
            issuer.max_lifetime.or(self.max_lifetime),
            self.require_jti,
        );
        Ok(Trusted { checks, keys })
    }
}
