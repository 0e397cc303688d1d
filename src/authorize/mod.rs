//! The decision: whether a request (or a bare token) is admitted, in five stages.
//!
//! ```text
//! extract -> verify -> bind -> policy -> revocation
//! ```
//!
//! 1. **extract** the credentials from the `Authorization` header ([`extract`]);
//! 2. **verify** the token: from the verified-token cache, else its signature and claims
//!    ([`Validator::verify`]); may have to wait for the issuer's keys;
//! 3. **bind**: a sender-constrained token (`cnf`) needs its proof of possession
//!    ([`bind`]: a DPoP proof, or the connection's client certificate); may have to
//!    wait for the DPoP replay store;
//! 4. **policy**: the route's scopes, then what it asks of the user's authentication
//!    ([`authentication`]: `acr`, `auth_time`), then its claims requirements;
//! 5. **revocation**: the store's answer for the token's `jti`, memoised; may have to wait.
//!
//! Every way in decides through the same stages: the layer ([`Route::decide`], resumed by
//! [`Route::resume`] after a wait), and the [`Validator`]'s public `validate`/`authorize`
//! methods ([`bare`]), synchronous or not. A wait resumes where it stopped: the pending state
//! carries what was already verified.

mod authentication;
mod bare;
mod bind;
mod extract;

use std::fmt;
#[cfg(feature = "remote")]
use std::future::Future;
#[cfg(feature = "remote")]
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use serde::de::DeserializeOwned;

use self::authentication::UserAuthentication;
pub(crate) use self::bind::Binding;
use self::bind::Bound;
use self::extract::Scheme;
use crate::dpop::ProofFuture;
use crate::error::{AuthError, ErrorKind};
#[cfg(feature = "remote")]
use crate::introspection::Answer;
use crate::response::Refusal;
use crate::revocation::Known;
use crate::scope::RequiredScopes;
use crate::validator::{Validator, Verify};
use crate::verified::{Confirmation, Verified};

/// What to do with a request.
pub(crate) enum Decision<T> {
    /// Call the inner service.
    Admit(Admitted<T>),
    /// Answer with this refusal.
    Deny(Refusal),
    /// Wait for something, then [`Route::resume`].
    Wait(Pending<T>),
}

/// An admitted request: what was verified, and what its response must carry.
pub(crate) struct Admitted<T> {
    /// The token's claims (`None`: no credentials, on an optional route).
    pub(crate) verified: Option<Arc<Verified<T>>>,
    /// The response must carry the next DPoP server nonce: the proof's is past half its
    /// life.
    pub(crate) renew_nonce: bool,
    /// The token came from the verified-token cache, and its hit is counted with the
    /// admission (one visit of the metrics recorder for both).
    pub(crate) cache_hit: bool,
}

impl<T> Admitted<T> {
    fn token(verified: Arc<Verified<T>>, renew_nonce: bool) -> Self {
        Admitted {
            verified: Some(verified),
            renew_nonce,
            cache_hit: false,
        }
    }
}

/// What a decision waits for, with what it already knows.
pub(crate) enum Pending<T> {
    /// The issuer's keys (none yet, or the token names a `kid` not seen yet). The token is
    /// kept so that it can be verified once they are here.
    Keys {
        token: Box<str>,
        scheme: Scheme,
        start: usize,
        issuer: usize,
        generation: u64,
    },
    /// The introspection endpoint's answer for an opaque token.
    #[cfg(feature = "remote")]
    Introspection {
        scheme: Scheme,
        start: usize,
        answer: Pin<Box<dyn Future<Output = Answer> + Send>>,
    },
    /// The DPoP replay store's answer for the proof of a verified token.
    Proof {
        verified: Arc<Verified<T>>,
        proof: ProofFuture,
    },
    /// The revocation store's answer for a token that passed every other stage (and
    /// whether its response renews the DPoP nonce).
    Revocation(Arc<Verified<T>>, bool),
}

impl<T> Pending<T> {
    /// The scheme of the token waited on (refusals name it in their challenges).
    fn scheme(&self) -> Scheme {
        match self {
            Pending::Keys { scheme, .. } => *scheme,
            #[cfg(feature = "remote")]
            Pending::Introspection { scheme, .. } => *scheme,
            Pending::Proof { .. } => Scheme::Dpop,
            // Only a token bound to a DPoP key passes the binding stage under `DPoP`.
            Pending::Revocation(verified, _) => match verified.token.confirmation() {
                Some(Confirmation::Jkt(_)) => Scheme::Dpop,
                _ => Scheme::Bearer,
            },
        }
    }
}

/// What the binding stage reads of a request: borrowed from the whole request while it is
/// decided at once (it is not split into parts, which would move them twice), or from its
/// parts after a wait.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a http::Uri,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) extensions: &'a http::Extensions,
}

impl<'a> From<&'a Parts> for Head<'a> {
    fn from(parts: &'a Parts) -> Self {
        Head {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }
}

impl<'a, B> From<&'a http::Request<B>> for Head<'a> {
    fn from(req: &'a http::Request<B>) -> Self {
        Head {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
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
    /// What the route asks of the user's authentication (RFC 9470), if anything.
    pub(crate) authentication: Option<UserAuthentication>,
    pub(crate) requirements: Vec<Requirement<T>>,
    /// Requests without credentials pass, without claims.
    pub(crate) optional: bool,
}

impl<T> Clone for Policy<T> {
    fn clone(&self) -> Self {
        Policy {
            scopes: self.scopes.clone(),
            authentication: self.authentication.clone(),
            requirements: self.requirements.clone(),
            optional: self.optional,
        }
    }
}

impl<T> fmt::Debug for Policy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("scopes", &self.scopes)
            .field("authentication", &self.authentication)
            .field("requirements", &self.requirements.len())
            .field("optional", &self.optional)
            .finish()
    }
}

impl<T> Policy<T> {
    /// Stage 4: scopes, then the user's authentication, then claims requirements.
    #[inline(always)]
    fn check(&self, verified: &Arc<Verified<T>>) -> Result<(), Refusal>
    where
        T: Send + Sync + 'static,
    {
        let refuse = |err: AuthError| Refusal::new(err).with_token(Some(&verified.record()));
        self.scopes
            .check_granted(&verified.token.scopes)
            .map_err(refuse)?;
        if let Some(authentication) = &self.authentication {
            authentication
                .check(&verified.token, crate::checks::now)
                .map_err(|err| refuse(err).with_step_up(authentication.step_up()))?;
        }
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

/// A route: the validator, the route's binding rules and policy. The layer's state.
pub(crate) struct Route<T> {
    pub(crate) validator: Validator<T>,
    pub(crate) binding: Binding,
    pub(crate) policy: Policy<T>,
}

impl<T> Route<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Decides without waiting. Marks the `Authorization` header sensitive.
    pub(crate) fn decide<B>(&self, req: &mut http::Request<B>) -> Decision<T> {
        // 1. extract
        let max_len = self.validator.max_token_len();
        let accept_dpop = self.binding.accepts_dpop();
        let credentials = match extract::extract(req.headers_mut(), max_len, accept_dpop) {
            Ok(Some(credentials)) => credentials,
            Ok(None) if self.policy.optional => {
                return Decision::Admit(Admitted {
                    verified: None,
                    renew_nonce: false,
                    cache_hit: false,
                });
            }
            Ok(None) => return Decision::Deny(Refusal::new(ErrorKind::MissingToken)),
            Err(err) => return Decision::Deny(Refusal::new(err)),
        };
        let (scheme, start) = (credentials.scheme, credentials.start);
        // 2. verify: a token in the verified-token cache was verified before, byte for byte;
        // any other must first be a well-formed `b64token` (RFC 6750 §2.1), on optional
        // routes too.
        if let Some(hit) = self.validator.cached(credentials.bytes()) {
            return match self.after_verify(hit, scheme, start, Head::from(&*req)) {
                Decision::Admit(admitted) => Decision::Admit(Admitted {
                    cache_hit: true,
                    ..admitted
                }),
                other => {
                    crate::metrics::cache_hit();
                    with_scheme(other, scheme)
                }
            };
        }
        let Some(token) = credentials.checked() else {
            return Decision::Deny(Refusal::new(ErrorKind::InvalidRequest));
        };
        let decision = match self.validator.verify_miss(token, true) {
            Verify::Done(Ok(verified)) => {
                self.after_verify(verified, scheme, start, Head::from(&*req))
            }
            Verify::Done(Err(err)) => Decision::Deny(Refusal::new(err)),
            Verify::Fetch { issuer, generation } => Decision::Wait(Pending::Keys {
                token: token.into(),
                scheme,
                start,
                issuer,
                generation,
            }),
            #[cfg(feature = "remote")]
            Verify::Introspect => Decision::Wait(Pending::Introspection {
                scheme,
                start,
                answer: Box::pin(self.validator.introspect(token)),
            }),
        };
        with_scheme(decision, scheme)
    }

    /// Stages 3 to 5, on a verified token, as presented: with `scheme`, starting at `start`
    /// in the `Authorization` value (what the extract stage measured: the header is parsed
    /// once).
    #[inline(always)]
    fn after_verify(
        &self,
        verified: Arc<Verified<T>>,
        scheme: Scheme,
        start: usize,
        head: Head<'_>,
    ) -> Decision<T> {
        // 3. bind
        match self.binding.check(scheme, start, &verified, head) {
            Bound::Holds { renew_nonce } => self.after_bind(verified, renew_nonce),
            Bound::Refused(refusal) => Decision::Deny(refusal),
            Bound::Wait(proof) => Decision::Wait(Pending::Proof { verified, proof }),
        }
    }

    /// Stages 4 and 5, on a verified token whose binding holds.
    #[inline(always)]
    fn after_bind(&self, verified: Arc<Verified<T>>, renew_nonce: bool) -> Decision<T> {
        // 4. policy
        if let Err(refusal) = self.policy.check(&verified) {
            return Decision::Deny(refusal);
        }
        // 5. revocation
        revocation(&self.validator, verified, renew_nonce)
    }

    /// Waits for what [`decide`](Self::decide) asked for, and finishes the decision from
    /// there. Keys are fetched at most once per request.
    pub(crate) async fn resume(
        &self,
        pending: Pending<T>,
        parts: &Parts,
    ) -> Result<Admitted<T>, Refusal> {
        let scheme = pending.scheme();
        let mut pending = pending;
        // Each wait is met once; a decision can wait for keys, then a proof, then the
        // revocation store, in that order.
        loop {
            let decision = match pending {
                Pending::Keys {
                    token,
                    scheme,
                    start,
                    issuer,
                    generation,
                } => {
                    self.validator.fetch_keys(issuer, generation).await;
                    match self.validator.verify(&token, false) {
                        Verify::Done(Ok(verified)) => {
                            self.after_verify(verified, scheme, start, Head::from(parts))
                        }
                        Verify::Done(Err(err)) => Decision::Deny(Refusal::new(err)),
                        Verify::Fetch { .. } => {
                            Decision::Deny(Refusal::new(ErrorKind::KeysUnavailable))
                        }
                        // Keys were fetched for a JWT: it is still one.
                        #[cfg(feature = "remote")]
                        Verify::Introspect => {
                            Decision::Deny(Refusal::new(ErrorKind::KeysUnavailable))
                        }
                    }
                }
                #[cfg(feature = "remote")]
                Pending::Introspection {
                    scheme,
                    start,
                    answer,
                } => match self.validator.introspected(answer.await) {
                    Ok(verified) => self.after_verify(verified, scheme, start, Head::from(parts)),
                    Err(err) => Decision::Deny(Refusal::new(err)),
                },
                Pending::Proof { verified, proof } => {
                    match self.binding.proven(proof.await, &verified) {
                        Bound::Holds { renew_nonce } => self.after_bind(verified, renew_nonce),
                        Bound::Refused(refusal) => Decision::Deny(refusal),
                        Bound::Wait(_) => unreachable!("a proof's outcome is final"),
                    }
                }
                Pending::Revocation(verified, renew_nonce) => {
                    match ask_revocation(&self.validator, verified).await {
                        Ok(verified) => Decision::Admit(Admitted::token(verified, renew_nonce)),
                        Err(refusal) => Decision::Deny(refusal),
                    }
                }
            };
            match decision {
                Decision::Admit(admitted) => return Ok(admitted),
                Decision::Deny(refusal) => return Err(refusal.with_scheme(Some(scheme))),
                Decision::Wait(next) => pending = next,
            }
        }
    }
}

/// Records on a refusal the scheme its token came with, for the challenges.
fn with_scheme<T>(decision: Decision<T>, scheme: Scheme) -> Decision<T> {
    match decision {
        Decision::Deny(refusal) => Decision::Deny(refusal.with_scheme(Some(scheme))),
        other => other,
    }
}

/// Stage 3 for a bare token, presented as `Bearer` without a request: a token bound to a
/// key (`cnf`) has no proof here and is refused (RFC 9449 §7.2, RFC 8705 §3).
fn bind_bare<T: Send + Sync + 'static>(verified: &Arc<Verified<T>>) -> Result<(), Refusal> {
    match verified.token.confirmation() {
        None => Ok(()),
        Some(_) => {
            Err(Refusal::new(ErrorKind::SenderConstrained).with_token(Some(&verified.record())))
        }
    }
}

/// Stage 5 without waiting: the memo's answer, or a wait for the store.
#[inline(always)]
fn revocation<T: Send + Sync + 'static>(
    validator: &Validator<T>,
    verified: Arc<Verified<T>>,
    renew_nonce: bool,
) -> Decision<T> {
    let (Some(check), Some(jti)) = (validator.revocation(), verified.token.jti()) else {
        return Decision::Admit(Admitted::token(verified, renew_nonce));
    };
    match check.known(verified.issuer, jti) {
        Known::NotRevoked => Decision::Admit(Admitted::token(verified, renew_nonce)),
        Known::Revoked => Decision::Deny(revoked(&verified)),
        Known::Unknown | Known::StoreDown => {
            Decision::Wait(Pending::Revocation(verified, renew_nonce))
        }
    }
}

/// Stage 5, waiting for the store.
async fn ask_revocation<T: Send + Sync + 'static>(
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
            Err(Refusal::new(ErrorKind::RevocationUnavailable).with_token(Some(&verified.record())))
        }
    }
}

fn revoked<T: Send + Sync + 'static>(verified: &Arc<Verified<T>>) -> Refusal {
    Refusal::new(ErrorKind::Revoked).with_token(Some(&verified.record()))
}
