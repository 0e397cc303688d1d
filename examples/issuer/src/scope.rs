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

/// Whether an authorization request's `redirect_uri` matches the `registered` one: the same
/// string, or, for a registered `http://127.0.0.1` or `http://[::1]` URI, the same string with
/// any port (RFC 8252 §7.3: a native app listens on a port it gets at request time).
///
/// Compared as strings, not parsed URLs: only the port may differ, and the rest must be the
/// registered bytes (no `localhost`, no other spelling of the address, no normalization).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    ["http://127.0.0.1", "http://[::1]"].iter().any(|host| {
        matches!(
            (after_port(registered, host), after_port(requested, host)),
            (Some(registered), Some(requested)) if registered == requested
        )
    })
}

/// What follows `prefix` and its `:port` (if any; canonical decimal, 1 to 65535) in `uri`:
/// empty, or a path or query; `None` if `uri` is not shaped so.
fn after_port<'a>(uri: &'a str, prefix: &str) -> Option<&'a str> {
    let mut rest = uri.strip_prefix(prefix)?;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let digits = &after[..end];
        let port = digits.parse::<u16>().ok().filter(|&n| n != 0)?;
        if port.to_string() != digits {
            return None;
        }
        rest = &after[end..];
    }
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some(rest)
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
    fn loopback_redirect_uris_match_any_port() {
        let registered = "http://127.0.0.1:9999/callback";
        for good in [
            registered,
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:65535/callback",
            "http://127.0.0.1/callback",
        ] {
            assert!(redirect_uri_matches(registered, good), "{good}");
        }
        assert!(redirect_uri_matches(
            "http://[::1]/cb?x=1",
            "http://[::1]:5/cb?x=1"
        ));
        assert!(redirect_uri_matches(
            "http://127.0.0.1",
            "http://127.0.0.1:5"
        ));
        for bad in [
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:+80/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:80#/callback",
            "http://127.0.0.1:80:81/callback",
            "http://127.0.0.1:80/callback#x",
            "http://127.0.0.1.evil.example:80/callback",
        ] {
            assert!(!redirect_uri_matches(registered, bad), "{bad}");
        }
        // Not loopback, or loopback by name: exact only.
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:1/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://localhost:3000/cb",
            "http://localhost:3001/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.2:3000/cb",
            "http://127.0.0.2:3001/cb"
        ));
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
