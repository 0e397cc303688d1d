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

use http::header::{AUTHORIZATION, Entry};
use http::{HeaderMap, HeaderValue};

use crate::error::{AuthError, ErrorKind};
pub(crate) use crate::response::Scheme;

/// A token as the request presented it: the scheme, and the token's bytes in the
/// `Authorization` value (borrowed, not copied).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Credentials<'h> {
    pub(crate) scheme: Scheme,
    /// Where the token starts in the `Authorization` value (it runs to the end): the bind
    /// stage slices the value there instead of parsing it again.
    pub(crate) start: usize,
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

/// Extracts the credentials from `headers`, and marks the `Authorization` header sensitive
/// (out of `Debug` output, and of HPACK tables further in): one lookup does both.
///
/// `Ok(None)` when there is no `Authorization` header or it uses a scheme this crate does
/// not serve (the request carries no bearer credentials). Allocates nothing and copies
/// nothing (not even a reference count: the token is borrowed); the size cap is applied
/// before any byte of the token is looked at. The token's characters are checked later,
/// and only when it is not in the verified-token cache ([`Credentials::checked`]).
#[inline(always)]
pub(crate) fn extract(
    headers: &mut HeaderMap,
    max_token_len: usize,
    accept_dpop: bool,
) -> Result<Option<Credentials<'_>>, AuthError> {
    // Several values are rare enough to look for only when some header has several.
    if headers.len() != headers.keys_len() {
        match headers.try_entry(AUTHORIZATION) {
            Ok(Entry::Occupied(mut several)) => {
                several
                    .iter_mut()
                    .for_each(|value| value.set_sensitive(true));
                if several.iter().nth(1).is_some() {
                    return Err(ErrorKind::InvalidRequest.into());
                }
            }
            Ok(Entry::Vacant(_)) => {}
            // A map at http's size limit: refused rather than read half-way.
            Err(_) => return Err(ErrorKind::InvalidRequest.into()),
        }
    }
    let Some(value) = headers.get_mut(AUTHORIZATION) else {
        return Ok(None);
    };
    value.set_sensitive(true);
    let value: &HeaderValue = value;
    read(value.as_bytes(), max_token_len, accept_dpop)
}

#[inline(always)]
fn read(
    value: &[u8],
    max_token_len: usize,
    accept_dpop: bool,
) -> Result<Option<Credentials<'_>>, AuthError> {
    let Some((scheme, start)) = parse(value, max_token_len, accept_dpop)? else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        scheme,
        start,
        token: &value[start..],
    }))
}

/// The scheme and where the token starts, for a valid credential of a scheme served here.
#[inline(always)]
fn parse(
    value: &[u8],
    max_token_len: usize,
    accept_dpop: bool,
) -> Result<Option<(Scheme, usize)>, AuthError> {
    // `Bearer ` in any case, the common case, in one comparison; else the scheme's `tchar`s.
    let (scheme, scheme_len) = if starts_with_bearer(value) {
        (Scheme::Bearer, 6)
    } else {
        let scheme_len = value.iter().take_while(|&&b| is_tchar(b)).count();
        match &value[..scheme_len] {
            s if s.eq_ignore_ascii_case(b"bearer") => (Scheme::Bearer, scheme_len),
            s if accept_dpop && s.eq_ignore_ascii_case(b"dpop") => (Scheme::Dpop, scheme_len),
            // Another scheme (Basic, Digest ...) carries no token of ours.
            _ => return Ok(None),
        }
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

/// Whether `value` starts with `Bearer ` (the scheme in any case, one space) and one more
/// byte: eight bytes read as one word, the six letters lowered by setting their 0x20 bit
/// (which maps only `B` and `b` to `b`, and so on), the space compared as it is, the eighth
/// byte masked out.
fn starts_with_bearer(value: &[u8]) -> bool {
    const BEARER: u64 = u64::from_le_bytes(*b"bearer \0");
    const LOWER: u64 = u64::from_le_bytes([0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0, 0]);
    const SEVEN: u64 = u64::from_le_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    value
        .first_chunk::<8>()
        .is_some_and(|head| (u64::from_le_bytes(*head) | LOWER) & SEVEN == BEARER)
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
        let mut h = headers(values);
        let Some(c) = extract(&mut h, max, false).map_err(|e| e.kind())? else {
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
            extract(&mut HeaderMap::new(), 8192, false).map(|c| c.is_none()),
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
        let mut h = headers(&[b"DPoP abc.def.ghi"]);
        assert_eq!(extract(&mut h, 8192, false).map(|c| c.is_none()), Ok(true));
        let c = extract(&mut h, 8192, true)
            .expect("ok")
            .expect("credentials");
        assert_eq!((c.scheme, c.checked()), (Scheme::Dpop, Some("abc.def.ghi")));
        let mut h = headers(&[b"dpop\tabc"]);
        assert_eq!(
            extract(&mut h, 8192, true)
                .map(|c| c.is_some())
                .map_err(|e| e.kind()),
            Err(ErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn the_header_is_marked_sensitive() {
        for (values, accept_dpop) in [
            (&[&b"Bearer abc"[..]][..], false),
            (&[b"DPoP abc"], true),
            (&[b"Basic dXNlcjpwYXNz"], false),
            (&[b"Bearer\tabc"], false),
            (&[b"Bearer a", b"Bearer b"], false),
        ] {
            let mut h = headers(values);
            assert!(!h[AUTHORIZATION].is_sensitive());
            let _ = extract(&mut h, 8192, accept_dpop);
            assert!(
                h.get_all(AUTHORIZATION)
                    .iter()
                    .all(HeaderValue::is_sensitive),
                "{values:?}"
            );
        }
    }

    #[test]
    fn the_bearer_word_test_is_the_case_insensitive_comparison() {
        // Every byte at every place of the eight: the word test agrees with the slow one.
        let base = *b"Bearer x";
        for at in 0..8 {
            for b in 0..=255u8 {
                let mut v = base;
                v[at] = b;
                let slow = v[..7].eq_ignore_ascii_case(b"bearer ");
                assert_eq!(starts_with_bearer(&v), slow, "{v:?}");
            }
        }
        assert!(!starts_with_bearer(b"Bearer "));
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
