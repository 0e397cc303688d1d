//! Whose bucket a request draws from: [`Caller`], and the [`RateLimitKey`]s that find it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use http::Request;

use crate::claims::Claims;
use crate::token::VerifiedToken;

/// Whose quota a request counts against. Client ids, subjects and custom keys are separate
/// key spaces: a token whose `sub` equals another client's id never drains that client's
/// quota.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Caller<'a> {
    /// An OAuth client, by `client_id`.
    Client(Cow<'a, str>),
    /// A subject (`sub`), for tokens that name no client.
    Subject(Cow<'a, str>),
    /// Any other key a custom [`RateLimitKey`] chose.
    Other(Cow<'a, str>),
}

impl Caller<'_> {
    /// An owned copy.
    #[must_use]
    pub fn into_owned(self) -> Caller<'static> {
        match self {
            Caller::Client(id) => Caller::Client(Cow::Owned(id.into_owned())),
            Caller::Subject(id) => Caller::Subject(Cow::Owned(id.into_owned())),
            Caller::Other(id) => Caller::Other(Cow::Owned(id.into_owned())),
        }
    }

    /// The caller as a shared-store key, typed so that two key spaces never share a bucket:
    /// `client:<id>`, `sub:<sub>`, `key:<custom key>`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn shared_key(&self) -> String {
        match self {
            Caller::Client(id) => format!("client:{id}"),
            Caller::Subject(sub) => format!("sub:{sub}"),
            Caller::Other(key) => format!("key:{key}"),
        }
    }

    /// The client id, for a [`Caller::Client`].
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Caller::Client(id) => Some(id),
            _ => None,
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

/// The default key: the client of the request's [`VerifiedToken`] (whatever the claims
/// type), else its subject. Requests without one (an optional route, a limit placed outside
/// `RequireScope`) are anonymous.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientOrSubject;

impl<B> RateLimitKey<B> for ClientOrSubject {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Caller<'r>> {
        let token: &'r VerifiedToken = req.extensions().get::<VerifiedToken>()?;
        match (token.client_id(), token.subject()) {
            (Some(client), _) => Some(Caller::Client(Cow::Borrowed(client))),
            (None, Some(subject)) => Some(Caller::Subject(Cow::Borrowed(subject))),
            (None, None) => None,
        }
    }
}

/// A key read from the request's [`Claims<T>`] by a function (a tenant, say). Built by
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
        let claims: &'r T = req.extensions().get::<Claims<T>>()?;
        (self.f)(claims).map(|k| Caller::Other(Cow::Borrowed(k)))
    }
}
