//! One token, verified: from the cache when it is there and still good, else from its
//! signature (with its issuer's keys only) and its claims.

#[cfg(feature = "remote")]
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::{IssuerKeys, Validator, now};
use crate::claims::Claims;
use crate::error::{AuthError, ErrorKind};
use crate::json::{self, Value};
use crate::jws::{self, Jws};
use crate::keyring::Key;
use crate::verified::Verified;

/// The outcome of verifying a token without waiting.
pub(crate) enum Verify<T> {
    Done(Result<Arc<Verified<T>>, AuthError>),
    /// The token's issuer has no usable key set yet, or does not know the token's `kid`:
    /// fetch its keys (`Validator::fetch_keys`), then verify again.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Fetch {
        issuer: usize,
        generation: u64,
    },
    /// The token is to be introspected and no answer is cached: ask the endpoint
    /// (`Validator::introspect`), then [`Validator::introspected`].
    #[cfg(feature = "remote")]
    Introspect,
}

impl<T> Validator<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Verifies `token` with what is at hand. With `may_fetch`, asks for a key fetch when
    /// it could help (remote keys: none yet, or an unknown `kid`).
    pub(crate) fn verify(&self, token: &str, may_fetch: bool) -> Verify<T> {
        match self.cached(token.as_bytes()) {
            Some(hit) => {
                crate::metrics::cache_hit();
                Verify::Done(Ok(hit))
            }
            None => self.verify_miss(token, may_fetch),
        }
    }

    /// The verified-token cache's entry for exactly these bytes, while it is still good (not
    /// expired, its key still in its issuer's set). Such a token was verified before, byte
    /// for byte: it is a well-formed JWS (ASCII). One clock read, compared with the entry's
    /// [`Window`](crate::checks::Window); expired entries are swept out on misses.
    #[inline(always)]
    pub(crate) fn cached(&self, token: &[u8]) -> Option<Arc<Verified<T>>> {
        let cache = self.inner.cache.as_ref()?;
        let hit = cache.get(token)?;
        let trusted = self.trusted(hit.issuer);
        let key_kept = hit
            .key
            .as_ref()
            .is_some_and(|key| trusted.keys.contains(key));
        if hit.window.contains(SystemTime::now()) && key_kept {
            // Counted by the caller: with the admission, when it admits.
            return Some(hit);
        }
        // Expired, or its key has left the set: check it in full (and fail) again.
        cache.remove(token);
        None
    }

    /// Verifies a token [`cached`](Self::cached) did not have, and caches it when it passes.
    pub(crate) fn verify_miss(&self, token: &str, may_fetch: bool) -> Verify<T> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Verify::Done(Err(ErrorKind::TokenTooLarge.into()));
        }
        let now = now();
        let Some(cache) = &inner.cache else {
            return self.verify_unseen(token, now, may_fetch);
        };
        crate::metrics::cache_miss();
        cache.sweep_expired(now, inner.max_leeway);
        let step = self.verify_unseen(token, now, may_fetch);
        // Introspected tokens have a cache of their own, with the introspection's ttl.
        if let Verify::Done(Ok(verified)) = &step
            && verified.key.is_some()
        {
            cache.insert(verified);
        }
        step
    }

    /// A token not in the verified-token cache: introspected (an opaque token, or a JWT of
    /// no issuer with keys), else verified here.
    fn verify_unseen(&self, token: &str, now: i64, may_fetch: bool) -> Verify<T> {
        #[cfg(feature = "remote")]
        if let Some(introspection) = &self.inner.introspection {
            let local = |iss: &str| {
                self.inner
                    .issuers
                    .iter()
                    .any(|t| *t.checks.issuer == *iss && !matches!(t.keys, IssuerKeys::None))
            };
            if !crate::introspection::is_local_jwt(token, local) {
                return match introspection.cached(token, now) {
                    Some(answer) => Verify::Done(self.introspected(answer)),
                    None => Verify::Introspect,
                };
            }
        }
        self.verify_uncached(token, now, may_fetch)
    }

    /// Asks the introspection endpoint about `token` (for a [`Verify::Introspect`]). The
    /// request runs on its own task from this call on, shared by every request with the
    /// same token; dropping the future does not cancel it.
    #[cfg(feature = "remote")]
    pub(crate) fn introspect(
        &self,
        token: &str,
    ) -> impl Future<Output = crate::introspection::Answer> + Send + 'static + use<T> {
        let introspection = self.inner.introspection.clone();
        let answer = introspection.as_ref().map(|i| i.introspect(token));
        async move {
            match answer {
                Some(answer) => answer.await,
                // Never asked for without an introspection.
                None => crate::introspection::Answer::Inactive,
            }
        }
    }

    /// What an introspection answer means for the request.
    #[cfg(feature = "remote")]
    pub(crate) fn introspected(
        &self,
        answer: crate::introspection::Answer,
    ) -> Result<Arc<Verified<T>>, AuthError> {
        use crate::introspection::Answer;
        match answer {
            Answer::Active(active) => {
                let claims = active.claims::<T>()?;
                let window = self
                    .trusted(active.issuer)
                    .checks
                    .window(active.token.facts());
                Ok(Arc::new(Verified {
                    token: active.token.shared_facts(),
                    claims,
                    key: None,
                    issuer: active.issuer,
                    window,
                    size: active.size,
                    raw: Box::default(),
                }))
            }
            Answer::Inactive => Err(ErrorKind::InactiveToken.into()),
            Answer::Refused(err) => Err(err),
            Answer::Unavailable(_) => Err(ErrorKind::IntrospectionUnavailable.into()),
        }
    }

    /// Waits for the fetch a [`Verify::Fetch`] asked for (at most one per cooldown, shared
    /// by every waiting request).
    pub(crate) async fn fetch_keys(&self, issuer: usize, generation: u64) {
        self.trusted(issuer).keys.fetch(generation).await;
    }

    fn verify_uncached(&self, token: &str, now: i64, may_fetch: bool) -> Verify<T> {
        let started = crate::metrics::Timer::start();
        let outcome = (|| {
            let jws = jws::parse(token)?;
            let (issuer, peeked) = self.select_issuer(&jws)?;
            let trusted = self.trusted(issuer);
            trusted.checks.check_typ(jws.typ())?;
            let key = match self.verify_signature(&jws, issuer, may_fetch)? {
                Ok(key) => key,
                Err(fetch) => return Ok(Err(fetch)),
            };
            let payload = match peeked {
                Some(payload) => payload,
                None => jws.payload()?,
            };
            let facts = trusted.checks.check(&payload, now)?;
            let window = trusted.checks.window(&facts);
            let claims: T = serde_json::from_slice(&payload)
                .map_err(|_| AuthError::new(ErrorKind::InvalidClaims))?;
            let size = payload.len() as u64 + facts.scopes.size() + 128;
            let claims = Claims(Arc::new(claims));
            Ok(Ok(Arc::new(Verified {
                token: Arc::new(facts),
                claims,
                key: Some(key),
                issuer,
                window,
                size,
                raw: token.as_bytes().into(),
            })))
        })();
        started.verified();
        match outcome {
            Ok(Ok(verified)) => Verify::Done(Ok(verified)),
            Ok(Err(fetch)) => fetch,
            Err(err) => Verify::Done(Err(err)),
        }
    }

    /// Which trusted issuer's keys and checks apply. With one issuer, that one (its `iss`
    /// is checked with the other claims, after the signature). With several, the token's
    /// unverified `iss` only *selects* among them: an unknown one is refused at once, with
    /// no fetch, and the token is then verified with that issuer's keys alone. The decoded
    /// payload is returned so it is not decoded twice.
    fn select_issuer(&self, jws: &Jws<'_>) -> Result<(usize, Option<Vec<u8>>), AuthError> {
        let issuers = &self.inner.issuers;
        if issuers.len() == 1 {
            return Ok((0, None));
        }
        let payload = jws.payload()?;
        let [iss] = json::read_object(&payload, ["iss"]).map_err(jws::json_error)?;
        let index = match &iss {
            Some(Value::Str(iss)) => issuers.iter().position(|t| *t.checks.issuer == **iss),
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "iss")),
            None => return Err(AuthError::claim(ErrorKind::MissingClaim, "iss")),
        };
        let index = index.ok_or(AuthError::claim(ErrorKind::InvalidIssuer, "iss"))?;
        Ok((index, Some(payload)))
    }

    /// The signature, checked with `issuer`'s keys; `Ok(Err(fetch))` when a key fetch could
    /// help and is allowed.
    fn verify_signature(
        &self,
        jws: &Jws<'_>,
        issuer: usize,
        may_fetch: bool,
    ) -> Result<Result<Key, Verify<T>>, AuthError> {
        let _ = may_fetch;
        match &self.trusted(issuer).keys {
            IssuerKeys::Static(keys) => jws.verify(keys).cloned().map(Ok),
            // Only introspection vouches for this issuer's tokens.
            #[cfg(feature = "remote")]
            IssuerKeys::None => Err(ErrorKind::UnknownKey.into()),
            #[cfg(feature = "remote")]
            IssuerKeys::Remote(cache) => {
                use crate::remote::KeyCache;
                let generation = cache.generation();
                let fetch = Verify::Fetch { issuer, generation };
                match KeyCache::keys(cache) {
                    crate::remote::Keys::Ready(snapshot) => {
                        let Some(snapshot) = snapshot.as_ref() else {
                            return Err(ErrorKind::KeysUnavailable.into());
                        };
                        match jws.verify(snapshot.keys()) {
                            Err(e)
                                if e.kind() == ErrorKind::UnknownKey
                                    && may_fetch
                                    && cache.may_fetch_on_demand() =>
                            {
                                Ok(Err(fetch))
                            }
                            result => result.cloned().map(Ok),
                        }
                    }
                    crate::remote::Keys::Fetch(generation) if may_fetch => {
                        Ok(Err(Verify::Fetch { issuer, generation }))
                    }
                    _ => Err(ErrorKind::KeysUnavailable.into()),
                }
            }
        }
    }
}
