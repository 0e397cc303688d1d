//! What a verified token is: [`VerifiedToken`], the one record the layer puts into every
//! admitted request (the facts, whatever the claims type, and the typed claims), and the
//! validator's internal record of a verification.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::Claims;
use crate::keyring::Key;
use crate::scope::Granted;

/// How a token is bound to the key its presenter must prove (the `cnf` claim, RFC 7800).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// `jkt`: the RFC 7638 thumbprint of a DPoP key (RFC 9449 §6.1).
    Jkt(Box<str>),
    /// `x5t#S256`: the SHA-256 thumbprint of a client certificate (RFC 8705 §3.1).
    X5tS256(Box<str>),
    /// A confirmation method this crate cannot check: such a token is always refused.
    Other,
}

impl fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Confirmation::Jkt(t) => f.debug_tuple("Jkt").field(t).finish(),
            Confirmation::X5tS256(t) => f.debug_tuple("X5tS256").field(t).finish(),
            Confirmation::Other => f.write_str("Other"),
        }
    }
}

/// One party of a delegated token's actor chain: the `act` claim of RFC 8693 §4.1, as the
/// token exchange writes it ("`client_id` acts for the token's `sub`").
///
/// [`VerifiedToken::actor`] is the **current** actor, the party that presented the token;
/// its [`actor`](Self::actor) is the one before it, and so on. RFC 8693 §4.1: only the
/// current actor counts for access decisions, the earlier ones are informational (for logs
/// and audit). The chain is at most [`MAX_DEPTH`](Self::MAX_DEPTH) actors deep: a deeper one,
/// an `act` that is not an object, or a member of the wrong type makes the token invalid
/// ([`ErrorKind::InvalidClaimType`](crate::ErrorKind::InvalidClaimType), claim `act`).
/// Routes can require or forbid actors with
/// [`RequireScope::require_actor`](crate::RequireScope::require_actor),
/// [`allow_actors`](crate::RequireScope::allow_actors) and
/// [`forbid_actors`](crate::RequireScope::forbid_actors).
///
/// ```
/// use bearer_guard::VerifiedToken;
/// fn on_behalf_of(token: &VerifiedToken) -> Option<String> {
///     let actor = token.actor()?;
///     Some(format!("{} for {}", actor.id()?, token.subject()?))
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Actor {
    pub(crate) subject: Option<Box<str>>,
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) issuer: Option<Box<str>>,
    pub(crate) earlier: Option<Box<Actor>>,
}

impl Actor {
    /// The deepest actor chain accepted: 8.
    pub const MAX_DEPTH: usize = 8;

    /// The actor's `sub`.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The actor's `client_id` (RFC 8693 §4.3): the OAuth client that acted.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The actor's `iss`, when the issuer named the namespace of its `sub`.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Who the route requirements match: `client_id`, else `sub`.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.client_id().or_else(|| self.subject())
    }

    /// The earlier actor (the nested `act`): the party this one was delegated from.
    #[must_use]
    pub fn actor(&self) -> Option<&Actor> {
        self.earlier.as_deref()
    }

    /// This actor, then each earlier one, most recent first.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> + Clone {
        std::iter::successors(Some(self), |a| a.actor())
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identifiers only, like the token's `sub` and `client_id`: nothing secret.
        f.debug_struct("Actor")
            .field("subject", &self.subject)
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("actor", &self.earlier)
            .finish()
    }
}

/// What was verified about the request's token: who the client is, what it may do, until
/// when, and the typed claims.
///
/// It is the **one** record the layer puts into an admitted request's extensions. Rate
/// limits, logs and handlers read the facts whatever `T` the validator deserializes into;
/// the typed claims come from [`claims`](Self::claims) (what the [`Claims<T>`] extractor of
/// axum and tonic's `RequestClaimsExt` read). There is no separate `Claims<T>` extension:
/// `extensions().get::<Claims<T>>()` finds nothing. It is the verified-token cache's own
/// entry, moved into the request as it is (no copy, no extra reference count); cloning it
/// is one reference-count increment.
///
/// ```
/// use bearer_guard::{AccessClaims, Claims, VerifiedToken};
/// fn caller(req: &http::Request<()>) -> Option<&str> {
///     req.extensions().get::<VerifiedToken>()?.client_id()
/// }
/// fn claims(req: &http::Request<()>) -> Option<Claims<AccessClaims>> {
///     req.extensions().get::<VerifiedToken>()?.claims::<AccessClaims>()
/// }
/// ```
#[derive(Clone)]
pub struct VerifiedToken(Arc<Record<dyn Any + Send + Sync>>);

/// The facts behind a [`VerifiedToken`].
pub(crate) struct Facts {
    pub(crate) issuer: Box<str>,
    /// `client_id`, else `azp`.
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) subject: Option<Box<str>>,
    pub(crate) scopes: Granted,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) exp: i64,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) cnf: Option<Confirmation>,
    /// The actor chain (`act`, RFC 8693 §4.1) of a delegated token.
    pub(crate) act: Option<Actor>,
    /// The authentication context class of the user's authentication (`acr`, RFC 9470 §6.1).
    pub(crate) acr: Option<Box<str>>,
    /// When the user authenticated (`auth_time`), seconds since the Unix epoch.
    pub(crate) auth_time: Option<i64>,
}

/// What the decision reads of a verified token; [`VerifiedToken`]'s accessors are these.
impl Facts {
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    pub(crate) fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.scopes.iter()
    }

    pub(crate) fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    pub(crate) fn expires_at(&self) -> i64 {
        self.exp
    }

    pub(crate) fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }

    pub(crate) fn auth_time(&self) -> Option<i64> {
        self.auth_time
    }

    pub(crate) fn confirmation(&self) -> Option<&Confirmation> {
        self.cnf.as_ref()
    }
}

impl VerifiedToken {
    /// A record of `facts` alone, without typed claims (an introspection answer, tests).
    #[cfg_attr(
        not(any(test, feature = "test-util", feature = "remote")),
        allow(dead_code)
    )]
    pub(crate) fn new(facts: Facts) -> Self {
        VerifiedToken(Arc::new(Record {
            token: Arc::new(facts),
            key: None,
            issuer: 0,
            window: Window::NEVER,
            size: 0,
            raw: Box::default(),
            claims: (),
        }))
    }

    /// The same facts, with typed claims: the record a test puts into a request.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn with_claims<T: Send + Sync + 'static>(&self, claims: &Claims<T>) -> Self {
        let record = &self.0;
        VerifiedToken(Arc::new(Record {
            token: Arc::clone(&record.token),
            key: record.key.clone(),
            issuer: record.issuer,
            window: record.window,
            size: record.size,
            raw: record.raw.clone(),
            claims: claims.clone(),
        }))
    }

    pub(crate) fn facts(&self) -> &Facts {
        &self.0.token
    }

    /// The facts, shared (one reference-count increment).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn shared_facts(&self) -> Arc<Facts> {
        Arc::clone(&self.0.token)
    }

    /// The typed claims, when `T` is the validator's claims type (`AccessClaims` unless
    /// [`ValidatorBuilder::claims`](crate::ValidatorBuilder::claims) chose another); `None`
    /// for any other type. One reference-count increment, no copy.
    #[must_use]
    pub fn claims<T: Send + Sync + 'static>(&self) -> Option<Claims<T>> {
        self.0.claims.downcast_ref::<Claims<T>>().cloned()
    }

    /// The typed claims, borrowed: as [`claims`](Self::claims), without the increment.
    #[must_use]
    pub fn claims_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.claims.downcast_ref::<Claims<T>>().map(|c| &*c.0)
    }

    /// The issuer (`iss`), one of those the validator trusts.
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.facts().issuer()
    }

    /// The OAuth client the token was issued to: `client_id`, else `azp` (the same rule as
    /// [`AccessClaims::client_id`](crate::AccessClaims::client_id)).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.facts().client_id()
    }

    /// The subject (`sub`): the user, or for client-credentials tokens the client itself.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.facts().subject.as_deref()
    }

    /// The granted scopes: the words of `scope`, then those of `scp`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.facts().scopes()
    }

    /// Whether `scope` is granted.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The token's id (`jti`).
    #[must_use]
    pub fn jti(&self) -> Option<&str> {
        self.facts().jti()
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.facts().expires_at()
    }

    /// Issue time (`iat`), seconds since the Unix epoch.
    #[must_use]
    pub fn issued_at(&self) -> Option<i64> {
        self.facts().iat
    }

    /// The authentication context class reference (`acr`, RFC 9470 §6.1): how strongly the
    /// user behind the token authenticated, in the issuer's words (for example
    /// `urn:bearer-guard:acr:mfa`). `None` for a token without one (client credentials).
    /// Routes require values with [`RequireScope::require_acr`](crate::RequireScope::require_acr).
    #[must_use]
    pub fn acr(&self) -> Option<&str> {
        self.facts().acr()
    }

    /// When the user behind the token authenticated (`auth_time`, RFC 9470 §6.1), seconds
    /// since the Unix epoch. Routes bound its age with
    /// [`RequireScope::max_auth_age`](crate::RequireScope::max_auth_age).
    #[must_use]
    pub fn auth_time(&self) -> Option<i64> {
        self.facts().auth_time()
    }

    /// The key the token is bound to (`cnf`), for sender-constrained tokens.
    #[must_use]
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.facts().confirmation()
    }

    /// The current actor of a delegated token (`act`, RFC 8693 §4.1): the party acting for
    /// the [`subject`](Self::subject), with the earlier actors in its
    /// [`chain`](Actor::chain). `None` for a token used by its own subject's client.
    #[must_use]
    pub fn actor(&self) -> Option<&Actor> {
        self.facts().act.as_ref()
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("issuer", &self.issuer())
            .field("client_id", &self.client_id())
            .field("subject", &self.subject())
            .field("scopes", &self.facts().scopes)
            .field("expires_at", &self.facts().exp)
            .field("confirmation", &self.facts().cnf)
            .field("actor", &self.facts().act)
            .finish_non_exhaustive()
    }
}

/// A token that passed the validator's checks, with its typed claims (`C` = [`Claims<T>`]):
/// what the cache holds and the decision path carries, and, unsized to
/// `Record<dyn Any + Send + Sync>`, the [`VerifiedToken`] an admitted request carries (the
/// same allocation: a cache hit moves its entry into the request, nothing is copied).
pub(crate) struct Record<C: ?Sized> {
    /// What the token says (named `token`: `verified.token.jti()` reads as it means).
    pub(crate) token: Arc<Facts>,
    /// The key that verified the signature: a cached entry is served only while it is
    /// still in its issuer's key set. `None` for a token vouched for by introspection.
    pub(crate) key: Option<Key>,
    /// Which of the validator's issuers vouched for it.
    pub(crate) issuer: usize,
    /// When it may be served from the cache (`nbf`, `exp`, that issuer's leeway), on the
    /// clock's own type: a hit reads the clock and compares, nothing more.
    pub(crate) window: Window,
    /// Estimated bytes held, for the cache's memory bound.
    pub(crate) size: u64,
    /// The token's exact bytes, for a record of the verified-token cache (its key, and what
    /// each lookup compares byte for byte); empty for any other. Never shown.
    pub(crate) raw: Box<[u8]>,
    /// The typed claims; last, so that the record unsizes to `dyn Any`.
    pub(crate) claims: C,
}

/// A verification with typed claims `T`.
pub(crate) type Verified<T> = Record<Claims<T>>;

impl<T: Send + Sync + 'static> Verified<T> {
    /// The request's record of this verification: the same allocation, one more reference.
    pub(crate) fn record(self: &Arc<Self>) -> VerifiedToken {
        VerifiedToken::of(Arc::clone(self))
    }
}

impl<C: ?Sized> Record<C> {
    pub(crate) fn facts(&self) -> &Facts {
        &self.token
    }
}

impl VerifiedToken {
    /// The request's record of a verification, taking its reference: no count changes.
    pub(crate) fn of<T: Send + Sync + 'static>(verified: Arc<Verified<T>>) -> Self {
        VerifiedToken(verified)
    }
}

/// The wall-clock times a cached token is good for, made by
/// [`Checks::window`](crate::checks::Checks::window).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// `None`: since the epoch (no `nbf`, or one at or before it once the leeway is taken).
    from: Option<SystemTime>,
    /// Exclusive.
    until: SystemTime,
}

impl Window {
    pub(crate) const fn new(from: Option<SystemTime>, until: SystemTime) -> Self {
        Window { from, until }
    }

    pub(crate) const NEVER: Window = Window {
        from: None,
        until: UNIX_EPOCH,
    };

    /// Whether `now` is within the window.
    #[inline]
    pub(crate) fn contains(&self, now: SystemTime) -> bool {
        now < self.until && self.from.is_none_or(|from| from <= now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::AccessClaims;
    use crate::testkit;
    use crate::validator::Verify;

    /// The request's record is the verification itself (the cache's entry): one more
    /// reference to the same allocation, whose typed claims are the entry's, not a copy.
    #[test]
    fn the_record_is_the_verification() {
        let jwt = testkit::token("ec-1", json!({}));
        let validator = testkit::validator();
        let Verify::Done(Ok(verified)) = validator.verify(&jwt, false) else {
            panic!("a valid token");
        };
        let held = Arc::strong_count(&verified);
        let record = verified.record();
        assert_eq!(Arc::strong_count(&verified), held + 1);
        let claims = record.claims_ref::<AccessClaims>().expect("typed claims");
        assert!(std::ptr::eq(claims, &*verified.claims.0));
        assert!(Arc::ptr_eq(
            &record.claims::<AccessClaims>().expect("claims").0,
            &verified.claims.0
        ));
        assert!(record.claims_ref::<serde_json::Value>().is_none());
        assert_eq!(record.client_id(), verified.token.client_id());
        drop(record);
        assert_eq!(Arc::strong_count(&verified), held);
        // A cache hit is the same verification again.
        let Verify::Done(Ok(again)) = validator.verify(&jwt, false) else {
            panic!("a valid token");
        };
        assert!(Arc::ptr_eq(&again, &verified));
    }
}
