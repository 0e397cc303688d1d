//! Scopes (RFC 6749 §3.3), resources (RFC 8707) and redirect URIs (OAuth 2.1 §2.3).

use super::error::OAuthError;

/// `scope-token = 1*NQCHAR` (RFC 6749 §3.3).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// `scope = scope-token *( SP scope-token )`, duplicates dropped.
pub fn parse_scope(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ') {
        if !is_scope_token(token) {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// The requested scope if all of it is `allowed`, else `default` when nothing is requested.
pub fn grant_scope(
    allowed: &[String],
    default: &[String],
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(default.to_vec());
    };
    let scope =
        parse_scope(requested).ok_or_else(|| OAuthError::invalid_scope("malformed scope"))?;
    match scope.iter().find(|s| !allowed.contains(s)) {
        // A valid scope token: safe to quote.
        Some(denied) => Err(OAuthError::invalid_scope(format!(
            "scope {denied:?} is not allowed for this client"
        ))),
        None => Ok(scope),
    }
}

/// RFC 8707: an absolute URI without fragment (printable ASCII, a scheme, something after it).
pub fn is_resource_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.contains('#')
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The requested resources if all are `allowed`, else the first allowed one.
pub fn grant_audience(allowed: &[String], requested: &[String]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(allowed.iter().take(1).cloned().collect());
    }
    let mut audience: Vec<String> = Vec::new();
    for resource in requested {
        if !is_resource_uri(resource) {
            return Err(OAuthError::invalid_target(
                "resource must be an absolute URI without fragment",
            ));
        }
        if !allowed.contains(resource) {
            return Err(OAuthError::invalid_target(
                "resource is not allowed for this client",
            ));
        }
        if !audience.contains(resource) {
            audience.push(resource.clone());
        }
    }
    Ok(audience)
}

/// Longest accepted redirect URI, in bytes.
pub const MAX_REDIRECT_URI: usize = 2000;

/// A redirect URI a client may register: `https`, or `http` to a loopback host (OAuth 2.1
/// §2.3.1, RFC 8252 §7.3); no fragment, no user info. Returns why not.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_REDIRECT_URI || !is_resource_uri(uri) {
        return Err("not an absolute URI of printable ASCII without fragment");
    }
    let url = url::Url::parse(uri).map_err(|_| "not a URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("has user information");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("http is only allowed to a loopback host"),
        _ => Err("must be https, or http to a loopback host"),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn scopes_and_resources() {
        assert!(parse_scope("read write read").is_some_and(|s| s == ["read", "write"]));
        assert!(parse_scope("read  write").is_none());
        assert!(parse_scope("re\"ad").is_none());
        assert!(is_resource_uri("https://api.example/x"));
        assert!(is_resource_uri("urn:example:api"));
        assert!(!is_resource_uri("https://api.example/#frag"));
        assert!(!is_resource_uri("/relative"));
        assert!(!is_resource_uri("1http://x"));
    }

    #[test]
    fn redirect_uris() {
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1:9999/callback",
            "http://[::1]:1234/cb?x=1",
            "http://localhost:3000/cb",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "javascript:alert(1)",
            "custom.scheme:/cb",
            "/relative",
            "http://127.0.0.1.evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
