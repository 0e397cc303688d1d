//! Reading the bearer token out of a request (RFC 6750 §2.1).
//!
//! ```text
//! credentials = "Bearer" 1*SP b64token
//! b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! Only the `Authorization` header is read: form-body and URI-query tokens (§2.2, §2.3) are
//! not supported, as RFC 9700 advises.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::{AuthError, ErrorKind};

const SCHEME: &[u8] = b"bearer";

/// Extracts the bearer token from `headers`.
///
/// `Ok(None)` when there is no `Authorization` header or it uses another scheme (the request
/// carries no bearer credentials). Allocates nothing; the size cap is applied before any
/// byte of the token is looked at.
pub(crate) fn extract(
    headers: &HeaderMap,
    max_token_len: usize,
) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ErrorKind::InvalidRequest.into());
    }
    parse(value.as_bytes(), max_token_len)
}

fn parse(value: &[u8], max_token_len: usize) -> Result<Option<&str>, AuthError> {
    let scheme_len = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case(SCHEME) {
        // Another scheme (Basic, DPoP ...) carries no bearer token.
        return Ok(None);
    }
    // 1*SP, then the token: nothing else.
    let rest = &value[scheme_len..];
    let token = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
    if token.len() > max_token_len {
        return Err(ErrorKind::TokenTooLarge.into());
    }
    if rest.is_empty() || token.is_empty() || !is_b64token(token) {
        return Err(ErrorKind::InvalidRequest.into());
    }
    // `is_b64token` admits ASCII only, so this cannot fail.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| ErrorKind::InvalidRequest.into())
}

fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && token[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
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

    fn kind(r: Result<Option<&str>, AuthError>) -> ErrorKind {
        r.expect_err("must fail").kind()
    }

    #[test]
    fn accepts_any_scheme_case_and_extra_spaces() {
        for v in [
            &b"Bearer abc.def.ghi"[..],
            b"bearer abc.def.ghi",
            b"BEARER   abc.def.ghi",
        ] {
            assert_eq!(
                extract(&headers(&[v]), 8192).expect("ok"),
                Some("abc.def.ghi")
            );
        }
        assert_eq!(
            extract(&headers(&[b"Bearer a-_~+/=="]), 8192).expect("ok"),
            Some("a-_~+/==")
        );
    }

    #[test]
    fn no_header_or_other_scheme_is_no_token() {
        assert_eq!(extract(&HeaderMap::new(), 8192).expect("ok"), None);
        assert_eq!(
            extract(&headers(&[b"Basic dXNlcjpwYXNz"]), 8192).expect("ok"),
            None
        );
        assert_eq!(
            extract(&headers(&[b"Bearerx abc"]), 8192).expect("ok"),
            None
        );
    }

    #[test]
    fn malformed_credentials_are_invalid_request() {
        for v in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\tb",
            b"Bearer \"abc\"",
            b"Bearer abc,def",
            b"Bearer =abc",
            b"Bearer ab=c",
            b"Bearer ===",
            b"Bearer \xc3\xa9",
        ] {
            assert_eq!(
                kind(extract(&headers(&[v]), 8192)),
                ErrorKind::InvalidRequest,
                "{v:?}"
            );
        }
        assert_eq!(
            kind(extract(&headers(&[b"Bearer a", b"Bearer a"]), 8192)),
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 65));
        assert_eq!(kind(extract(&headers(&[&v]), 64)), ErrorKind::TokenTooLarge);
        // Even if the oversized part would be malformed.
        v.push(b' ');
        v.push(b'x');
        assert_eq!(kind(extract(&headers(&[&v]), 64)), ErrorKind::TokenTooLarge);
        assert!(
            extract(&headers(&[&v[..7 + 64]]), 64)
                .expect("ok")
                .is_some()
        );
    }
}
