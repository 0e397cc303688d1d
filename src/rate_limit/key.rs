//! Whose bucket a request draws from: [`Caller`], and the [`RateLimitKey`]s that find it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use http::Request;

use crate::verified::VerifiedToken;

/// Whose quota a request counts against.
///
/// A client id is only unique within its authorization server (RFC 6749 §2.2), and so is a
/// subject: both are keyed together with the token's issuer, so that with several trusted
/// issuers, client `app` of one and client `app` of another never share a bucket. Client ids,
/// subjects and custom keys are separate key spaces too: a token whose `sub` equals another
/// client's id never drains that client's quota.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Caller<'a> {
    /// An OAuth client: its issuer and its `client_id`.
    Client {
        /// The token's issuer (`iss`).
        issuer: Cow<'a, str>,
        /// The token's `client_id`.
        id: Cow<'a, str>,
    },
    /// A subject, for tokens that name no client: its issuer and its `sub`.
    Subject {
        /// The token's issuer (`iss`).
        issuer: Cow<'a, str>,
        /// The token's `sub`.
        sub: Cow<'a, str>,
    },
    /// Any other key a custom [`RateLimitKey`] chose (its own key space, whatever it holds).
    Other(Cow<'a, str>),
}

impl Caller<'_> {
    /// An owned copy.
    #[must_use]
    pub fn into_owned(self) -> Caller<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Caller::Client { issuer, id } => Caller::Client {
                issuer: own(issuer),
                id: own(id),
            },
            Caller::Subject { issuer, sub } => Caller::Subject {
                issuer: own(issuer),
                sub: own(sub),
            },
            Caller::Other(key) => Caller::Other(own(key)),
        }
    }

    /// The caller as a shared-store key, typed so that two key spaces never share a bucket
    /// and the issuer's length delimits it: `client:<len>:<issuer>:<id>`,
    /// `sub:<len>:<issuer>:<sub>`, `key:<custom key>`.
    #[cfg(test)]
    pub(crate) fn shared_key(&self) -> String {
        let mut out = String::new();
        let _ = self.write_shared_key(&mut out);
        out
    }

    /// Writes [`shared_key`](Self::shared_key) into `out`, without a string of its own.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn write_shared_key(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Caller::Client { issuer, id } => write!(out, "client:{}:{issuer}:{id}", issuer.len()),
            Caller::Subject { issuer, sub } => write!(out, "sub:{}:{issuer}:{sub}", issuer.len()),
            Caller::Other(key) => write!(out, "key:{key}"),
        }
    }

    /// The client id, for a [`Caller::Client`].
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Caller::Client { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The issuer, for a [`Caller::Client`] or a [`Caller::Subject`].
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        match self {
            Caller::Client { issuer, .. } | Caller::Subject { issuer, .. } => Some(issuer),
            Caller::Other(_) => None,
        }
    }
}

/// Finds the rate-limit key (the caller) of a request.
///
/// `None` puts the request in the shared anonymous bucket (or lets it through, with
/// [`anonymous_unlimited`](super::RateLimitByClientBuilder::anonymous_unlimited)).
///
/// Implemented by [`ClientOrSubject`] (the default), [`ClaimsKey`] and every closure
/// `Fn(&Request<B>) -> Option<K>` where `K: Into<String>` (a [`Caller::Other`]).
pub trait RateLimitKey<B> {
    /// The caller of `req`, if it has one.
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Caller<'r>>;
}

impl<F, B, K> RateLimitKey<B> for F
where
    F: Fn(&Request<B>) -> Option<K>,
    K: Into<String>,
{
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Caller<'r>> {
        self(req).map(|k| Caller::Other(Cow::Owned(k.into())))
    }
}

/// The default key: the issuer and client of the request's [`VerifiedToken`] (whatever the
/// claims type), else its issuer and subject. Requests without one (an optional route, a limit placed outside
/// `RequireScope`) are anonymous.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientOrSubject;

impl<B> RateLimitKey<B> for ClientOrSubject {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Caller<'r>> {
        let token: &'r VerifiedToken = req.extensions().get::<VerifiedToken>()?;
        let issuer = Cow::Borrowed(token.issuer());
        match (token.client_id(), token.subject()) {
            (Some(id), _) => Some(Caller::Client {
                issuer,
                id: Cow::Borrowed(id),
            }),
            (None, Some(sub)) => Some(Caller::Subject {
                issuer,
                sub: Cow::Borrowed(sub),
            }),
            (None, None) => None,
        }
    }
}

/// A key read from the request's typed claims (a `T` the
/// [`VerifiedToken`](crate::VerifiedToken) holds) by a function (a tenant, say). Built by
/// [`RateLimitByClientBuilder::key_from_claims`](super::RateLimitByClientBuilder::key_from_claims).
pub struct ClaimsKey<T, F> {
    pub(crate) f: F,
    pub(crate) claims: PhantomData<fn(&T)>,
}

impl<T, F: Clone> Clone for ClaimsKey<T, F> {
    fn clone(&self) -> Self {
        ClaimsKey {
            f: self.f.clone(),
            claims: PhantomData,
        }
    }
}

impl<T, F> fmt::Debug for ClaimsKey<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsKey")
            .field("claims", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T, F, B> RateLimitKey<B> for ClaimsKey<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<&str>,
{
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Caller<'r>> {
        let claims: &'r T = req.extensions().get::<VerifiedToken>()?.claims_ref::<T>()?;
        (self.f)(claims).map(|k| Caller::Other(Cow::Borrowed(k)))
    }
}
