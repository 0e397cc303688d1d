//! The [`Validator`]: verifies access tokens for the issuers it trusts, shared by every route
//! layer. It knows tokens, not HTTP: challenges and status codes are the response side's.
//!
//! - [`builder`]: configuration ([`ValidatorBuilder`]).
//! - [`checks`]: the claim checks of one issuer ([`Profile`]).
//! - [`source`]: where the keys come from ([`KeySource`]).
//! - [`verify`]: one token, from the cache or from its signature and claims.
//!
//! The public `validate`/`authorize` methods are in `crate::authorize`, beside the layer's
//! decision, so that every way into a decision goes through the same stages.

mod builder;
mod issuer;
mod source;
mod verify;

use std::fmt;
use std::sync::Arc;

pub use self::builder::ValidatorBuilder;
pub use self::issuer::Issuer;
pub(crate) use self::source::IssuerKeys;
pub use self::source::KeySource;
pub(crate) use self::verify::Verify;
use crate::cache::TokenCache;
pub(crate) use crate::checks::{Checks, DEFAULT_LEEWAY, MAX_LEEWAY, now};
use crate::claims::AccessClaims;
use crate::error::ConfigError;
use crate::keyring::KeySet;
use crate::revocation::RevocationCheck;

/// Default cap on a token's length in bytes, checked before any parsing.
pub(crate) const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Validates JWT access tokens.
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
    pub(crate) inner: Arc<Inner<T>>,
}

pub(crate) struct Inner<T> {
    /// The trusted issuers; a token is checked by the one its `iss` names.
    pub(crate) issuers: Box<[Trusted]>,
    pub(crate) cache: Option<TokenCache<T>>,
    pub(crate) revocation: Option<RevocationCheck>,
    /// Opaque tokens (and JWTs of issuers without keys) are introspected.
    #[cfg(feature = "remote")]
    pub(crate) introspection: Option<crate::introspection::Introspection>,
    pub(crate) max_token_len: usize,
    /// The largest leeway of any issuer: how long past `exp` a cached token may matter.
    pub(crate) max_leeway: i64,
}

/// One trusted issuer: how its tokens are checked, and its keys.
pub(crate) struct Trusted {
    pub(crate) checks: Checks,
    pub(crate) keys: IssuerKeys,
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
        let mut d = f.debug_struct("Validator");
        for trusted in &*self.inner.issuers {
            d.field("issuer", &crate::url::Redacted(&trusted.checks.issuer))
                .field(
                    "audiences",
                    &crate::url::redacted_all(&*trusted.checks.audiences),
                )
                .field("profile", &trusted.checks.profile)
                .field("leeway", &trusted.checks.leeway)
                .field("keys", &trusted.keys);
        }
        d.field("max_token_len", &self.inner.max_token_len)
            .field(
                "cached_tokens",
                &self.inner.cache.as_ref().map(TokenCache::len),
            )
            .field("revocation", &self.inner.revocation);
        #[cfg(feature = "remote")]
        d.field("introspection", &self.inner.introspection);
        d.finish()
    }
}

impl<T> Validator<T> {
    /// The issuer (the first one, when several are trusted).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuers[0].checks.issuer
    }

    /// The keys in use (the first issuer's, when several are trusted): the configured set,
    /// or the last fetched one (empty before the first fetch).
    #[must_use]
    pub fn keys(&self) -> KeySet {
        self.inner.issuers[0].keys.current()
    }

    /// How full the verified-token cache is: `(entries, estimated bytes)`, or `None` when
    /// it is off.
    #[must_use]
    pub fn token_cache_usage(&self) -> Option<(usize, u64)> {
        self.inner.cache.as_ref().map(|c| (c.len(), c.weight()))
    }

    /// Fetches the keys of every remote source now (concurrently, one per trusted issuer),
    /// unless a fetch already succeeded, so that a service that starts is a service that can
    /// authenticate. Static keys are ready at once. Without this call, the first request
    /// that needs an issuer's keys fetches them. Needs a Tokio runtime for remote keys.
    ///
    /// Every issuer's fetch runs to its end: when one fails, the others' keys are still in
    /// place, and the validator serves their tokens (the failed issuer's get 503 until its
    /// keys arrive). Whether to start anyway is the caller's choice.
    ///
    /// With [`introspection`](ValidatorBuilder::introspection) by discovery, the issuer's
    /// metadata is read too.
    ///
    /// # Errors
    /// [`ConfigError::KeyFetch`] naming, for each issuer whose keys could not be had, the
    /// URL and what failed (connect, status, body too large, invalid JSON, issuer mismatch,
    /// no usable key ...); [`ConfigError::Discovery`] when the introspection endpoint could
    /// not be discovered.
    pub async fn ready(&self) -> Result<(), ConfigError> {
        let mut pending: Vec<_> = self
            .inner
            .issuers
            .iter()
            .map(|t| Some(Box::pin(t.keys.ready())))
            .collect();
        let mut failures = Vec::new();
        // Polled together: one slow issuer does not delay the others' fetches.
        std::future::poll_fn(|cx| {
            for slot in &mut pending {
                if let Some(fut) = slot
                    && let std::task::Poll::Ready(result) = fut.as_mut().poll(cx)
                {
                    *slot = None;
                    match result {
                        Ok(()) => {}
                        Err(ConfigError::KeyFetch(reason)) => failures.push(reason),
                        Err(other) => failures.push(other.to_string()),
                    }
                }
            }
            if pending.iter().all(Option::is_none) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        if !failures.is_empty() {
            return Err(ConfigError::KeyFetch(failures.join("; ")));
        }
        #[cfg(feature = "remote")]
        if let Some(introspection) = &self.inner.introspection {
            introspection.ready().await?;
        }
        Ok(())
    }

    pub(crate) fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    pub(crate) fn revocation(&self) -> Option<&RevocationCheck> {
        self.inner.revocation.as_ref()
    }

    pub(crate) fn trusted(&self, issuer: usize) -> &Trusted {
        &self.inner.issuers[issuer]
    }
}

#[cfg(test)]
mod tests;
