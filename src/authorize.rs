//! The decision: whether a request (or a bare token) is admitted, in five stages.
//!
//! ```text
//! extract -> verify -> bind -> policy -> revocation
//! ```
//!
//! 1. **extract** the credentials from the `Authorization` header ([`crate::credentials`]);
//! 2. **verify** the token: from the verified-token cache, else its signature and claims
//!    ([`Validator::verify`]); may have to wait for the issuer's keys;
//! 3. **bind**: a sender-constrained token (`cnf`) needs its proof of possession;
//! 4. **policy**: the route's scopes, then its claims requirements;
//! 5. **revocation**: the store's answer for the token's `jti`, memoised; may have to wait.
//!
//! Every way in decides through the same stages: the layer ([`Route::decide`], resumed by
//! [`Route::resume`] after a wait), and the [`Validator`]'s public `validate`/`authorize`
//! methods below, synchronous or not. A wait resumes where it stopped: the pending state
//! carries what was already verified.

use std::fmt;
use std::future::Future as _;
use std::sync::Arc;

use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::claims::Claims;
use crate::credentials::{self, Scheme};
use crate::error::{AuthError, ErrorKind};
use crate::response::Refusal;
use crate::revocation::Known;
use crate::scope::RequiredScopes;
use crate::token::Verified;
use crate::validator::{Validator, Verify};

/// What to do with a request.
pub(crate) enum Decision<T> {
    /// Call the inner service, with these claims (`None`: no credentials, on an optional
    /// route).
    Admit(Option<Arc<Verified<T>>>),
    /// Answer with this refusal.
    Deny(Refusal),
    /// Wait for something, then [`Route::resume`].
    Wait(Pending<T>),
}

/// What a decision waits for, with what it already knows.
pub(crate) enum Pending<T> {
    /// The issuer's keys (none yet, or the token names a `kid` not seen yet). The token is
    /// kept so that it can be verified once they are here.
    Keys {
        token: Box<str>,
        scheme: Scheme,
        issuer: usize,
        generation: u64,
    },
    /// The revocation store's answer for a token that passed every other stage.
    Revocation(Arc<Verified<T>>),
}

/// A claims requirement of a route: a predicate, and a name for the refusal.
pub(crate) struct Requirement<T> {
    pub(crate) name: Option<&'static str>,
    pub(crate) predicate: Arc<dyn Fn(&T) -> bool + Send + Sync>,
}

impl<T> Clone for Requirement<T> {
    fn clone(&self) -> Self {
        Requirement {
            name: self.name,
            predicate: Arc::clone(&self.predicate),
        }
    }
}

/// What a route asks of a request beyond a valid token.
pub(crate) struct Policy<T> {
    pub(crate) scopes: RequiredScopes,
    pub(crate) requirements: Vec<Requirement<T>>,
    /// Requests without credentials pass, without claims.
    pub(crate) optional: bool,
}

impl<T> Clone for Policy<T> {
    fn clone(&self) -> Self {
        Policy {
            scopes: self.scopes.clone(),
            requirements: self.requirements.clone(),
            optional: self.optional,
        }
    }
}

impl<T> fmt::Debug for Policy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("scopes", &self.scopes)
            .field("requirements", &self.requirements.len())
            .field("optional", &self.optional)
            .finish()
    }
}

impl<T> Policy<T> {
    /// Stage 4: scopes, then claims requirements.
    fn check(&self, verified: &Verified<T>) -> Result<(), Refusal> {
        let refuse = |err: AuthError| Refusal::new(err).with_token(Some(&verified.token));
        self.scopes.check(verified.token.scopes()).map_err(refuse)?;
        if let Some(failed) = self
            .requirements
            .iter()
            .find(|r| !(r.predicate)(&verified.claims))
        {
            return Err(refuse(ErrorKind::Forbidden.into()).with_requirement(failed.name));
        }
        Ok(())
    }
}

/// A route: the validator and the route's policy. The layer's state.
pub(crate) struct Route<T> {
    pub(crate) validator: Validator<T>,
    pub(crate) policy: Policy<T>,
}

impl<T> Route<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Decides without waiting. Marks the `Authorization` header sensitive.
    pub(crate) fn decide(&self, parts: &mut Parts) -> Decision<T> {
        // 1. extract
        let credentials =
            match credentials::extract(&mut parts.headers, self.validator.max_token_len()) {
                Ok(Some(credentials)) => credentials,
                Ok(None) if self.policy.optional => return Decision::Admit(None),
                Ok(None) => return Decision::Deny(Refusal::new(ErrorKind::MissingToken)),
                Err(err) => return Decision::Deny(Refusal::new(err)),
            };
        // 2. verify
        match self.validator.verify(credentials.token, true) {
            Verify::Done(Ok(verified)) => self.after_verify(verified, credentials.scheme),
            Verify::Done(Err(err)) => Decision::Deny(Refusal::new(err)),
            Verify::Fetch { issuer, generation } => Decision::Wait(Pending::Keys {
                token: credentials.token.into(),
                scheme: credentials.scheme,
                issuer,
                generation,
            }),
        }
    }

    /// Stages 3 to 5, on a verified token.
    fn after_verify(&self, verified: Arc<Verified<T>>, scheme: Scheme) -> Decision<T> {
        if let Err(refusal) = bind(scheme, &verified) {
            return Decision::Deny(refusal);
        }
        if let Err(refusal) = self.policy.check(&verified) {
            return Decision::Deny(refusal);
        }
        revocation(&self.validator, verified)
    }

    /// Waits for what [`decide`](Self::decide) asked for, and finishes the decision from
    /// there. Keys are fetched at most once per request.
    pub(crate) async fn resume(
        &self,
        pending: Pending<T>,
        _parts: &Parts,
    ) -> Result<Option<Arc<Verified<T>>>, Refusal> {
        let verified = match pending {
            Pending::Keys {
                token,
                scheme,
                issuer,
                generation,
            } => {
                self.validator.fetch_keys(issuer, generation).await;
                let verified = match self.validator.verify(&token, false) {
                    Verify::Done(result) => result.map_err(Refusal::new)?,
                    Verify::Fetch { .. } => return Err(Refusal::new(ErrorKind::KeysUnavailable)),
                };
                match self.after_verify(verified, scheme) {
                    Decision::Admit(verified) => return Ok(verified),
                    Decision::Deny(refusal) => return Err(refusal),
                    Decision::Wait(Pending::Revocation(verified)) => verified,
                    Decision::Wait(Pending::Keys { .. }) => {
                        return Err(Refusal::new(ErrorKind::KeysUnavailable));
                    }
                }
            }
            Pending::Revocation(verified) => verified,
        };
        ask_revocation(&self.validator, verified).await.map(Some)
    }
}

/// Stage 3: a token bound to a key (`cnf`) is accepted only with proof of that key. Until a
/// proof is checked here, a bound token presented as `Bearer` is refused (RFC 9449 §7.2,
/// RFC 8705 §3).
fn bind<T>(scheme: Scheme, verified: &Verified<T>) -> Result<(), Refusal> {
    match (scheme, verified.token.confirmation()) {
        (Scheme::Bearer, None) => Ok(()),
        (Scheme::Bearer, Some(_)) => {
            Err(Refusal::new(ErrorKind::SenderConstrained).with_token(Some(&verified.token)))
        }
    }
}

/// Stage 5 without waiting: the memo's answer, or a wait for the store.
fn revocation<T>(validator: &Validator<T>, verified: Arc<Verified<T>>) -> Decision<T> {
    let (Some(check), Some(jti)) = (validator.revocation(), verified.token.jti()) else {
        return Decision::Admit(Some(verified));
    };
    match check.known(verified.issuer, jti) {
        Known::NotRevoked => Decision::Admit(Some(verified)),
        Known::Revoked => Decision::Deny(revoked(&verified)),
        Known::Unknown | Known::StoreDown => Decision::Wait(Pending::Revocation(verified)),
    }
}

/// Stage 5, waiting for the store.
async fn ask_revocation<T>(
    validator: &Validator<T>,
    verified: Arc<Verified<T>>,
) -> Result<Arc<Verified<T>>, Refusal> {
    let (Some(check), Some(jti)) = (validator.revocation(), verified.token.jti()) else {
        return Ok(verified);
    };
    let issuer = (verified.issuer, verified.token.issuer());
    match check
        .ask(
            issuer,
            jti,
            verified.token.expires_at(),
            verified.token.client_id(),
        )
        .await
    {
        Ok(false) => Ok(verified),
        Ok(true) => Err(revoked(&verified)),
        Err(_) => {
            Err(Refusal::new(ErrorKind::RevocationUnavailable).with_token(Some(&verified.token)))
        }
    }
}

fn revoked<T>(verified: &Verified<T>) -> Refusal {
    Refusal::new(ErrorKind::Revoked).with_token(Some(&verified.token))
}

/// The public ways to decide on a bare token: the same stages, with the token presented as
/// `Bearer` and no route but the given scopes.
impl<T> Validator<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Validates a token: signature with the pinned key, `typ`, `exp`/`nbf`/`iat`, `iss`,
    /// `aud`, the profile's required claims; a sender-constrained token (`cnf`) is refused,
    /// as it would be if presented as `Bearer`; then revocation. Deserializes the claims
    /// into `T`. No scope is required.
    ///
    /// Never waits: with remote keys it uses the key set fetched so far, so a token signed
    /// with a key published since is refused with [`ErrorKind::UnknownKey`]; with a
    /// revocation store, a token whose answer is not memoised yet is refused with
    /// [`ErrorKind::RevocationUnavailable`] (also when failing open: the store was not
    /// asked, it did not fail), unless the store failed moments ago and failing open is
    /// configured. Either way the missing piece is fetched in the background when a Tokio
    /// runtime is running, so a later call can decide. In async code use
    /// [`validate_async`](Self::validate_async), which waits for them.
    ///
    /// # Errors
    /// An [`AuthError`] whose [`kind`](AuthError::kind) says what failed.
    pub fn validate(&self, token: &str) -> Result<Claims<T>, AuthError> {
        self.decide_now(token, &RequiredScopes::none())
    }

    /// Validates a token as [`validate`](Self::validate) does, waiting for a key-set fetch
    /// when the token names a key not seen yet (remote keys only; at most one fetch per
    /// cooldown, shared by all waiting requests) and for the revocation store's answer.
    ///
    /// # Errors
    /// As [`validate`](Self::validate); [`ErrorKind::KeysUnavailable`] when no keys could
    /// be fetched, [`ErrorKind::RevocationUnavailable`] when the store could not answer.
    pub async fn validate_async(&self, token: &str) -> Result<Claims<T>, AuthError> {
        self.decide_async(token, &RequiredScopes::none()).await
    }

    /// Validates a token as [`validate`](Self::validate) does, and checks that it grants
    /// `scopes`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), or [`ErrorKind::InsufficientScope`].
    pub fn authorize(&self, token: &str, scopes: &RequiredScopes) -> Result<Claims<T>, AuthError> {
        self.decide_now(token, scopes)
    }

    /// As [`validate_async`](Self::validate_async), and checks that the token grants
    /// `scopes`.
    ///
    /// # Errors
    /// As [`validate_async`](Self::validate_async), or [`ErrorKind::InsufficientScope`].
    pub async fn authorize_async(
        &self,
        token: &str,
        scopes: &RequiredScopes,
    ) -> Result<Claims<T>, AuthError> {
        self.decide_async(token, scopes).await
    }

    /// Stages 2 to 5 on a bare token.
    fn decide_token(&self, token: &str, scopes: &RequiredScopes, may_fetch: bool) -> Decision<T> {
        match self.verify(token, may_fetch) {
            Verify::Done(Ok(verified)) => self.after_verify_token(verified, scopes),
            Verify::Done(Err(err)) => Decision::Deny(Refusal::new(err)),
            Verify::Fetch { issuer, generation } => Decision::Wait(Pending::Keys {
                token: token.into(),
                scheme: Scheme::Bearer,
                issuer,
                generation,
            }),
        }
    }

    fn after_verify_token(
        &self,
        verified: Arc<Verified<T>>,
        scopes: &RequiredScopes,
    ) -> Decision<T> {
        if let Err(refusal) = bind(Scheme::Bearer, &verified) {
            return Decision::Deny(refusal);
        }
        if let Err(err) = scopes.check(verified.token.scopes()) {
            return Decision::Deny(Refusal::new(err));
        }
        revocation(self, verified)
    }

    async fn decide_async(
        &self,
        token: &str,
        scopes: &RequiredScopes,
    ) -> Result<Claims<T>, AuthError> {
        let verified = match self.decide_token(token, scopes, true) {
            Decision::Admit(verified) => return admitted(verified),
            Decision::Deny(refusal) => return Err(*refusal.error()),
            Decision::Wait(Pending::Keys {
                issuer, generation, ..
            }) => {
                self.fetch_keys(issuer, generation).await;
                match self.decide_token(token, scopes, false) {
                    Decision::Admit(verified) => return admitted(verified),
                    Decision::Deny(refusal) => return Err(*refusal.error()),
                    Decision::Wait(Pending::Revocation(verified)) => verified,
                    Decision::Wait(Pending::Keys { .. }) => {
                        return Err(ErrorKind::KeysUnavailable.into());
                    }
                }
            }
            Decision::Wait(Pending::Revocation(verified)) => verified,
        };
        match ask_revocation(self, verified).await {
            Ok(verified) => Ok(verified.claims.clone()),
            Err(refusal) => Err(*refusal.error()),
        }
    }

    /// Decides with what is at hand; what is missing (a key fetch, a revocation answer) is
    /// started in the background instead of waited for.
    fn decide_now(&self, token: &str, scopes: &RequiredScopes) -> Result<Claims<T>, AuthError> {
        let pending = match self.decide_token(token, scopes, true) {
            Decision::Admit(verified) => return admitted(verified),
            Decision::Deny(refusal) => return Err(*refusal.error()),
            Decision::Wait(pending) => pending,
        };
        let verified = match pending {
            Pending::Keys {
                issuer, generation, ..
            } => {
                let this = self.clone();
                spawn(async move { this.fetch_keys(issuer, generation).await });
                match self.decide_token(token, scopes, false) {
                    Decision::Admit(verified) => return admitted(verified),
                    Decision::Deny(refusal) => return Err(*refusal.error()),
                    Decision::Wait(Pending::Revocation(verified)) => verified,
                    Decision::Wait(Pending::Keys { .. }) => {
                        return Err(ErrorKind::KeysUnavailable.into());
                    }
                }
            }
            Pending::Revocation(verified) => verified,
        };
        // The store must be asked and the caller cannot wait. A store that answers at once
        // (in memory) is asked right here; any other is asked in the background, so that a
        // later call finds the answer memoised, and the status is said to be unavailable.
        // Only a store that failed moments ago lets a fail-open validator accept.
        let store_down = match (self.revocation(), verified.token.jti()) {
            (Some(check), Some(jti)) => {
                matches!(check.known(verified.issuer, jti), Known::StoreDown) && check.fail_open()
            }
            _ => false,
        };
        let this = self.clone();
        let claims = verified.claims.clone();
        let mut ask = Box::pin(async move { ask_revocation(&this, verified).await.map(drop) });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match ask.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Ok(())) => Ok(claims),
            std::task::Poll::Ready(Err(refusal)) => Err(*refusal.error()),
            std::task::Poll::Pending => {
                spawn(async move { drop(ask.await) });
                if store_down {
                    Ok(claims)
                } else {
                    Err(ErrorKind::RevocationUnavailable.into())
                }
            }
        }
    }
}

fn admitted<T>(verified: Option<Arc<Verified<T>>>) -> Result<Claims<T>, AuthError> {
    // A bare token always has credentials: `Admit(None)` is only for optional routes.
    verified
        .map(|v| v.claims.clone())
        .ok_or(AuthError::new(ErrorKind::MissingToken))
}

/// Runs `fut` on the current Tokio runtime, if there is one (else drops it: the caller has
/// answered "unavailable" and the next caller on a runtime will try again).
fn spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    #[cfg(any(feature = "remote", feature = "redis", feature = "client"))]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(fut);
        return;
    }
    drop(fut);
}
