//! [`SubjectToken`]: the token of the request being served, carried to the outgoing call that
//! is made on its behalf, for [`ExchangeToken`](super::ExchangeToken) to exchange.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The access token of the request this service is serving, to be exchanged (RFC 8693) for
/// a token of the downstream API: put it into the extensions of the outgoing request, and
/// [`ExchangeTokenLayer`](super::ExchangeTokenLayer) sends that request with the exchanged
/// token, never with this one.
///
/// It holds the raw token: it never prints (`Debug` shows `SubjectToken([redacted])`), has
/// no accessor, no `PartialEq`, and its memory is zeroed when the last clone drops. Cloning
/// is a reference-count bump.
///
/// ```
/// use bearer_guard::client::SubjectToken;
///
/// // In a handler: `incoming` is the request being served.
/// let incoming = http::Request::get("https://me.example/orders")
///     .header("authorization", "Bearer the-users-token")
///     .body(())?;
/// let subject = SubjectToken::from_request(&incoming).expect("a bearer token");
/// assert_eq!(format!("{subject:?}"), "SubjectToken([redacted])");
///
/// let mut outgoing = http::Request::get("https://downstream.example/stock").body(())?;
/// outgoing.extensions_mut().insert(subject);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone)]
pub struct SubjectToken(Arc<Inner>);

struct Inner {
    token: Zeroizing<String>,
    /// SHA-256 of the token: the cache key, so that the token itself is never one.
    digest: [u8; 32],
}

impl SubjectToken {
    /// Wraps `token`, an access token as a request carried it (without the scheme). `None`
    /// when it is empty or holds characters other than visible ASCII (no access token
    /// does; a header could not carry it).
    #[must_use]
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = Zeroizing::new(token.into());
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let digest = Sha256::digest(token.as_bytes()).into();
        Some(SubjectToken(Arc::new(Inner { token, digest })))
    }

    /// The token of `incoming`'s `Authorization` header (`Bearer` or `DPoP` scheme, in any
    /// case): the request being served. `None` without exactly one such header.
    ///
    /// The resource server's layer has already verified this token (its
    /// [`VerifiedToken`](crate::VerifiedToken) is in the request's extensions); this takes
    /// the raw value the issuer must see.
    #[must_use]
    pub fn from_request<B>(incoming: &http::Request<B>) -> Option<Self> {
        Self::from_headers(incoming.headers())
    }

    /// As [`from_request`](Self::from_request), from the headers alone (a tonic request's
    /// metadata turned into a `HeaderMap`, a WebSocket handshake).
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")) {
            return None;
        }
        Self::new(token.trim_start_matches(' '))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0.token
    }

    pub(crate) fn digest(&self) -> [u8; 32] {
        self.0.digest
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, v.parse().expect("value"));
        }
        headers
    }

    #[test]
    fn takes_the_token_of_one_bearer_or_dpop_header() {
        for value in ["Bearer abc.def", "bearer  abc.def", "DPoP abc.def"] {
            let subject = SubjectToken::from_headers(&headers(&[value])).expect(value);
            assert_eq!(subject.expose(), "abc.def");
        }
        for bad in [
            &[][..],
            &["Basic YTpi"][..],
            &["Bearer"][..],
            &["Bearer "][..],
            &["Bearer a", "Bearer b"][..],
        ] {
            assert!(
                SubjectToken::from_headers(&headers(bad)).is_none(),
                "{bad:?}"
            );
        }
        assert!(SubjectToken::new("a b").is_none());
    }

    #[test]
    fn never_prints_and_keys_by_digest() {
        let a = SubjectToken::new("secret-subject-token").expect("token");
        assert!(!format!("{a:?} {a:#?}").contains("secret"));
        let b = SubjectToken::new("another-token").expect("token");
        assert_ne!(a.digest(), b.digest());
        assert_eq!(
            a.digest(),
            SubjectToken::new("secret-subject-token")
                .expect("token")
                .digest()
        );
    }
}
