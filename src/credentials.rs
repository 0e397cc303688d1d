//! Reading the request's credentials: the `Authorization` header (RFC 6750 §2.1).
//!
//! ```text
//! credentials = ( "Bearer" / "DPoP" ) 1*SP b64token
//! b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! `DPoP` (RFC 9449 §7.1) only where the route accepts DPoP proofs.
//!
//! Only the `Authorization` header is read: form-body and URI-query tokens (§2.2, §2.3) are
//! not supported, as RFC 9700 advises.

use http::HeaderMap;
use http::header::AUTHORIZATION;

pub(crate) use crate::dpop::Scheme;
use crate::error::{AuthError, ErrorKind};

/// A token as the request presented it: the scheme, and the token's bytes in the
/// `Authorization` value (borrowed, not copied).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Credentials<'h> {
    pub(crate) scheme: Scheme,
    token: &'h [u8],
}

impl<'h> Credentials<'h> {
    /// The token's bytes as presented: its length and the separator after the scheme are
    /// checked, not its characters. Enough to look it up in the verified-token cache: a
    /// token found there was verified before, byte for byte, so it is a well-formed JWS.
    pub(crate) fn bytes(&self) -> &'h [u8] {
        self.token
    }

    /// The token, if it is a `b64token` (RFC 6750 §2.1): checked only for a token the
    /// verified-token cache does not hold, which saves a cache hit two passes over hundreds
    /// of bytes.
    pub(crate) fn checked(&self) -> Option<&'h str> {
        if is_b64token(self.token) {
            std::str::from_utf8(self.token).ok()
        } else {
            None
        }
    }
}

/// Marks the `Authorization` header sensitive: out of `Debug` output, and of HPACK tables
/// further in.
pub(crate) fn mark_sensitive(headers: &mut HeaderMap) {
    if let Some(value) = headers.get_mut(AUTHORIZATION) {
        value.set_sensitive(true);
    }
}

/// Extracts the credentials from `headers`.
///
/// `Ok(None)` when there is no `Authorization` header or it uses a scheme this crate does
/// not serve (the request carries no bearer credentials). Allocates nothing and copies
/// nothing (not even a reference count: the token is borrowed); the size cap is applied
/// before any byte of the token is looked at. The token's characters are checked later,
/// and only when it is not in the verified-token cache ([`Credentials::checked`]).
pub(crate) fn extract(
    headers: &HeaderMap,
    max_token_len: usize,
    accept_dpop: bool,
) -> Result<Option<Credentials<'_>>, AuthError> {
    // Several values are rare enough to look for only when some header has several.
    if headers.len() != headers.keys_len() && headers.get_all(AUTHORIZATION).iter().nth(1).is_some()
    {
        return Err(ErrorKind::InvalidRequest.into());
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.as_bytes();
    let Some((scheme, start)) = parse(value, max_token_len, accept_dpop)? else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        scheme,
        token: &value[start..],
    }))
}

/// The scheme and where the token starts, for a valid credential of a scheme served here.
fn parse(
    value: &[u8],
    max_token_len: usize,
    accept_dpop: bool,
) -> Result<Option<(Scheme, usize)>, AuthError> {
    let scheme_len = value.iter().take_while(|&&b| is_tchar(b)).count();
    let scheme = match &value[..scheme_len] {
        s if s.eq_ignore_ascii_case(b"bearer") => Scheme::Bearer,
        s if accept_dpop && s.eq_ignore_ascii_case(b"dpop") => Scheme::Dpop,
        // Another scheme (Basic, Digest ...) carries no token of ours.
        _ => return Ok(None),
    };
    // `1*SP`, then the token: nothing else, and no other whitespace (a tab, a line fold).
    let rest = &value[scheme_len..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[spaces..];
    if token.len() > max_token_len {
        return Err(ErrorKind::TokenTooLarge.into());
    }
    if spaces == 0 || token.is_empty() {
        return Err(ErrorKind::InvalidRequest.into());
    }
    Ok(Some((scheme, scheme_len + spaces)))
}

/// RFC 9110 `tchar`: what an auth-scheme is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `b64token`, checked 32 bytes at a time without an early exit inside a block, so that the
/// compiler turns each block into a few vector comparisons: a JWT is hundreds of bytes, and
/// this check runs on every request.
fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    if body == 0 {
        return false;
    }
    token[..body]
        .chunks(32)
        .all(|block| block.iter().fold(true, |ok, &b| ok & is_b64token_char(b)))
}

#[inline(always)]
fn is_b64token_char(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                AUTHORIZATION,
                HeaderValue::from_bytes(v).expect("valid header value"),
            );
        }
        h
    }

    /// The token extracted from `values` and checked as the decision checks a token the
    /// cache does not hold, or the error kind.
    fn token(values: &[&[u8]], max: usize) -> Result<Option<String>, ErrorKind> {
        let h = headers(values);
        let Some(c) = extract(&h, max, false).map_err(|e| e.kind())? else {
            return Ok(None);
        };
        c.checked()
            .map(|t| Some(t.to_owned()))
            .ok_or(ErrorKind::InvalidRequest)
    }

    #[test]
    fn accepts_any_scheme_case_and_extra_spaces() {
        for v in [
            &b"Bearer abc.def.ghi"[..],
            b"bearer abc.def.ghi",
            b"BEARER   abc.def.ghi",
        ] {
            assert_eq!(token(&[v], 8192), Ok(Some("abc.def.ghi".into())));
        }
        assert_eq!(
            token(&[b"Bearer a-_~+/=="], 8192),
            Ok(Some("a-_~+/==".into()))
        );
        // A long token crosses several 32-byte blocks.
        let long = format!("Bearer {}.{}==", "A".repeat(700), "z9".repeat(40));
        assert!(token(&[long.as_bytes()], 8192).expect("ok").is_some());
    }

    #[test]
    fn no_header_or_other_scheme_is_no_token() {
        assert_eq!(
            extract(&HeaderMap::new(), 8192, false).map(|c| c.is_none()),
            Ok(true)
        );
        assert_eq!(token(&[b"Basic dXNlcjpwYXNz"], 8192), Ok(None));
        assert_eq!(token(&[b"Bearerx abc"], 8192), Ok(None));
    }

    #[test]
    fn malformed_credentials_are_invalid_request() {
        for v in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\tb",
            b"Bearer\tabc",
            b"Bearer \tabc",
            b"bearer\t\tabc.def",
            b"Bearer \"abc\"",
            b"Bearer abc,def",
            b"Bearer =abc",
            b"Bearer ab=c",
            b"Bearer ===",
            b"Bearer \xc3\xa9",
        ] {
            assert_eq!(token(&[v], 8192), Err(ErrorKind::InvalidRequest), "{v:?}");
        }
        assert_eq!(
            token(&[b"Bearer a", b"Bearer a"], 8192),
            Err(ErrorKind::InvalidRequest)
        );
        // Every character outside the alphabet, wherever it sits in a long token.
        for bad in (0u8..=255).filter(|b| !is_b64token_char(*b) && *b != b'=') {
            for at in [0, 31, 32, 500] {
                let mut t = vec![b'a'; 600];
                t[at] = bad;
                assert!(!is_b64token(&t), "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn dpop_is_read_only_where_the_route_accepts_it() {
        let h = headers(&[b"DPoP abc.def.ghi"]);
        assert_eq!(extract(&h, 8192, false).map(|c| c.is_none()), Ok(true));
        let c = extract(&h, 8192, true).expect("ok").expect("credentials");
        assert_eq!((c.scheme, c.checked()), (Scheme::Dpop, Some("abc.def.ghi")));
        let h = headers(&[b"dpop\tabc"]);
        assert_eq!(
            extract(&h, 8192, true)
                .map(|c| c.is_some())
                .map_err(|e| e.kind()),
            Err(ErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn the_header_is_marked_sensitive() {
        let mut h = headers(&[b"Bearer abc"]);
        assert!(!h[AUTHORIZATION].is_sensitive());
        mark_sensitive(&mut h);
        assert!(h[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 65));
        assert_eq!(token(&[&v], 64), Err(ErrorKind::TokenTooLarge));
        // Even if the oversized part would be malformed.
        v.push(b' ');
        v.push(b'x');
        assert_eq!(token(&[&v], 64), Err(ErrorKind::TokenTooLarge));
        assert!(token(&[&v[..7 + 64]], 64).expect("ok").is_some());
    }
}
