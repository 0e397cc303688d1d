//! What a verified token is: [`VerifiedToken`], the record the layer puts into every admitted
//! request whatever the claims type, and the validator's internal record of a verification.

use std::fmt;
use std::sync::Arc;

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

/// What was verified about the request's token, independent of the claims type: who the
/// client is, what it may do, and until when.
///
/// The layer inserts it into the request's extensions beside [`Claims<T>`]; rate limits,
/// logs and handlers read it whatever `T` the validator deserializes into. Cheap to clone.
///
/// ```
/// use bearer_guard::VerifiedToken;
/// fn caller(req: &http::Request<()>) -> Option<&str> {
///     req.extensions().get::<VerifiedToken>()?.client_id()
/// }
/// ```
#[derive(Clone)]
pub struct VerifiedToken(Arc<Facts>);

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
}

impl VerifiedToken {
    pub(crate) fn new(facts: Facts) -> Self {
        VerifiedToken(Arc::new(facts))
    }

    pub(crate) fn facts(&self) -> &Facts {
        &self.0
    }

    /// The issuer (`iss`), one of those the validator trusts.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The OAuth client the token was issued to: `client_id`, else `azp` (the same rule as
    /// [`AccessClaims::client_id`](crate::AccessClaims::client_id)).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The subject (`sub`): the user, or for client-credentials tokens the client itself.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// The granted scopes: the words of `scope`, then those of `scp`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.scopes.iter()
    }

    /// Whether `scope` is granted.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The token's id (`jti`).
    #[must_use]
    pub fn jti(&self) -> Option<&str> {
        self.0.jti.as_deref()
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.0.exp
    }

    /// Issue time (`iat`), seconds since the Unix epoch.
    #[must_use]
    pub fn issued_at(&self) -> Option<i64> {
        self.0.iat
    }

    /// The key the token is bound to (`cnf`), for sender-constrained tokens.
    #[must_use]
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.0.cnf.as_ref()
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("issuer", &self.issuer())
            .field("client_id", &self.client_id())
            .field("subject", &self.subject())
            .field("scopes", &self.0.scopes)
            .field("expires_at", &self.0.exp)
            .field("confirmation", &self.0.cnf)
            .finish_non_exhaustive()
    }
}

/// A token that passed the validator's checks: what the cache holds and the decision path
/// carries.
pub(crate) struct Verified<T> {
    pub(crate) claims: Claims<T>,
    pub(crate) token: VerifiedToken,
    /// The key that verified the signature: a cached entry is served only while it is
    /// still in its issuer's key set. `None` for a token vouched for by introspection.
    pub(crate) key: Option<Key>,
    /// Which of the validator's issuers vouched for it.
    pub(crate) issuer: usize,
    /// Estimated bytes held, for the cache's memory bound.
    pub(crate) size: u64,
}

impl<T> Verified<T> {
    pub(crate) fn facts(&self) -> &Facts {
        self.token.facts()
    }
}
