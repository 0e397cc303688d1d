//! The public ways to decide on a bare token ([`Validator::validate`] and co.): the stages
//! of [`super`] after extraction, with the token presented as `Bearer` and no route but the
//! given scopes.

use std::future::Future as _;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{Decision, Pending, ask_revocation, bind_bare, revocation};
use crate::claims::Claims;
use crate::error::{AuthError, ErrorKind};
use crate::revocation::Known;
use crate::scope::RequiredScopes;
use crate::validator::{Validator, Verify};
use crate::verified::Verified;

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

    /// Stages 2 to 5 on a bare token, as far as they go without waiting.
    fn decide_token(&self, token: &str, scopes: &RequiredScopes, may_fetch: bool) -> Bare<T> {
        match self.verify(token, may_fetch) {
            Verify::Done(Ok(verified)) => self.decide_verified(verified, scopes),
            Verify::Done(Err(err)) => Bare::Done(Err(err)),
            Verify::Fetch { issuer, generation } => Bare::Keys { issuer, generation },
            #[cfg(feature = "remote")]
            Verify::Introspect => Bare::Introspection,
        }
    }

    /// Stages 3 to 5 on a bare token, verified.
    fn decide_verified(&self, verified: Arc<Verified<T>>, scopes: &RequiredScopes) -> Bare<T> {
        if let Err(refusal) = bind_bare(&verified) {
            return Bare::Done(Err(*refusal.error()));
        }
        if let Err(err) = scopes.check_granted(&verified.token.scopes) {
            return Bare::Done(Err(err));
        }
        // No request, no proof, no nonce.
        match revocation(self, verified, false) {
            Decision::Admit(admitted) => Bare::Done(self::admitted(admitted.verified)),
            Decision::Deny(refusal) => Bare::Done(Err(*refusal.error())),
            Decision::Wait(Pending::Revocation(verified, _)) => Bare::Revocation(verified),
            // Stage 5 waits for nothing else.
            Decision::Wait(_) => Bare::Done(Err(ErrorKind::RevocationUnavailable.into())),
        }
    }

    async fn decide_async(
        &self,
        token: &str,
        scopes: &RequiredScopes,
    ) -> Result<Claims<T>, AuthError> {
        let mut step = self.decide_token(token, scopes, true);
        if let Bare::Keys { issuer, generation } = step {
            self.fetch_keys(issuer, generation).await;
            step = self.decide_token(token, scopes, false);
        }
        #[cfg(feature = "remote")]
        if let Bare::Introspection = step {
            step = match self.introspected(self.introspect(token).await) {
                Ok(verified) => self.decide_verified(verified, scopes),
                Err(err) => Bare::Done(Err(err)),
            };
        }
        match step {
            Bare::Done(result) => result,
            Bare::Keys { .. } => Err(ErrorKind::KeysUnavailable.into()),
            #[cfg(feature = "remote")]
            Bare::Introspection => Err(ErrorKind::IntrospectionUnavailable.into()),
            Bare::Revocation(verified) => match ask_revocation(self, verified).await {
                Ok(verified) => Ok(verified.claims.clone()),
                Err(refusal) => Err(*refusal.error()),
            },
        }
    }

    /// Decides with what is at hand; what is missing (a key fetch, a revocation answer) is
    /// started in the background instead of waited for.
    fn decide_now(&self, token: &str, scopes: &RequiredScopes) -> Result<Claims<T>, AuthError> {
        let mut step = self.decide_token(token, scopes, true);
        if let Bare::Keys { issuer, generation } = step {
            let this = self.clone();
            spawn(async move { this.fetch_keys(issuer, generation).await });
            step = self.decide_token(token, scopes, false);
        }
        let verified = match step {
            Bare::Done(result) => return result,
            Bare::Keys { .. } => return Err(ErrorKind::KeysUnavailable.into()),
            // Started now (it runs on its own task); a later call finds the answer cached.
            #[cfg(feature = "remote")]
            Bare::Introspection => {
                drop(self.introspect(token));
                return Err(ErrorKind::IntrospectionUnavailable.into());
            }
            Bare::Revocation(verified) => verified,
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

/// How far a bare token's decision went without waiting.
enum Bare<T> {
    Done(Result<Claims<T>, AuthError>),
    /// Its issuer's keys must be fetched first.
    Keys {
        issuer: usize,
        generation: u64,
    },
    /// The revocation store must be asked.
    Revocation(Arc<Verified<T>>),
    /// The introspection endpoint must be asked.
    #[cfg(feature = "remote")]
    Introspection,
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
