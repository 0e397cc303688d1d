//! `htu` comparison: both the proof's `htu` and the request's URI are reduced to one form by
//! RFC 3986 §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalisation, then compared.
//!
//! - scheme and host in lower case; only `http` and `https`;
//! - the default port (80, 443) and an empty port removed, other ports as plain numbers;
//! - percent-encodings of unreserved characters decoded, the others in upper-case hex;
//! - dot-segments removed from the path, an empty path made `/`;
//! - query and fragment dropped (RFC 9449 §4.2: `htu` has none);
//! - userinfo, characters outside RFC 3986 and broken percent-encodings refused.

/// Where the scheme and authority of the request's URI come from.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A configured external origin, in normal form without the path (`https://api.example`).
    External(String),
    /// The request's authority (absolute-form URI or `Host` header), with this scheme.
    FromRequest { scheme: &'static str },
}

impl Origin {
    /// A configured origin: an `http(s)` URI without userinfo, path (other than `/`), query
    /// or fragment.
    pub(crate) fn external(origin: &str) -> Option<Origin> {
        let (_, rest) = origin.split_once("://")?;
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        if !matches!(path, "" | "/") || origin.contains(['?', '#']) {
            return None;
        }
        let normal = normalize(origin)?;
        Some(Origin::External(normal.strip_suffix('/')?.to_owned()))
    }

    /// The request's target URI in normal form, or `None` when it has no usable authority
    /// (no `Host`, several, or one with more than `host[:port]` in it).
    pub(crate) fn request_uri(&self, uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
        let path = uri.path();
        match self {
            Origin::External(origin) => normalize(&format!("{origin}{path}")),
            Origin::FromRequest { scheme } => {
                let authority = match uri.authority() {
                    Some(authority) => authority.as_str(),
                    None => {
                        let mut hosts = headers.get_all(http::header::HOST).iter();
                        match (hosts.next(), hosts.next()) {
                            (Some(host), None) => host.to_str().ok()?,
                            _ => return None,
                        }
                    }
                };
                if !is_plain_authority(authority) {
                    return None;
                }
                normalize(&format!("{scheme}://{authority}{path}"))
            }
        }
    }
}

/// `scheme://host[:port]/path` in normal form, or `None` when `uri` is not an absolute
/// `http(s)` URI this module accepts.
pub(crate) fn normalize(uri: &str) -> Option<String> {
    if !uri.bytes().all(is_uri_char) {
        return None;
    }
    let uri = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = split_authority(authority)?;
    let host = percent_normalize(host, true)?;
    if host.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(port) = port.filter(|&p| p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let path = percent_normalize(path, false)?;
    let path = remove_dot_segments(&path);
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&path);
    }
    Some(out)
}

/// Whether `authority` is a plain `host[:port]` (no userinfo, path, query or fragment), as a
/// `Host` header must be before it is trusted to build the request's URI.
pub(crate) fn is_plain_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.bytes().all(is_uri_char)
        && !authority.contains(['/', '?', '#', '@'])
        && split_authority(authority).is_some()
}

/// Splits `host[:port]` (host may be an IP literal in brackets). `None` for userinfo or a
/// port that is not a number below 65536. An empty port is no port.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, ""),
            _ => (host, rest.strip_prefix(':')?),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    if host.contains([':', '[', ']']) && !host.starts_with('[') {
        return None;
    }
    let port = if port.is_empty() {
        None
    } else if port.bytes().all(|b| b.is_ascii_digit()) && port.len() <= 5 {
        Some(port.parse::<u16>().ok()?)
    } else {
        return None;
    };
    Some((host, port))
}

/// RFC 3986 §2: unreserved, reserved and `%`.
fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex of the others;
/// `lower` also lower-cases letters (for the host). `None` for a broken `%`.
fn percent_normalize(s: &str, lower: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let value = (hex_value(hex[0]) << 4) | hex_value(hex[1]);
            if is_unreserved(value) {
                out.push(char::from(if lower {
                    value.to_ascii_lowercase()
                } else {
                    value
                }));
            } else {
                out.push('%');
                out.push_str(&format!("{value:02X}"));
            }
            i += 3;
        } else {
            out.push(char::from(if lower { b.to_ascii_lowercase() } else { b }));
            i += 1;
        }
    }
    Some(out)
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            // The first segment, with its leading `/`, up to the next `/`.
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(uri: &str) -> Option<String> {
        normalize(uri)
    }

    #[test]
    fn case_ports_empty_path_query_and_fragment() {
        let want = Some("https://server.example.com/token".to_owned());
        for uri in [
            "https://server.example.com/token",
            "HTTPS://Server.Example.COM/token",
            "https://server.example.com:443/token",
            "https://server.example.com:/token",
            "https://server.example.com/token?x=1#frag",
            "https://server.example.com/token#f?x",
        ] {
            assert_eq!(n(uri), want, "{uri}");
        }
        assert_eq!(
            n("http://a.example:80").as_deref(),
            Some("http://a.example/")
        );
        assert_eq!(
            n("http://a.example:443/").as_deref(),
            Some("http://a.example:443/")
        );
        assert_eq!(
            n("https://a.example:00443/").as_deref(),
            Some("https://a.example/")
        );
        assert_eq!(
            n("https://a.example:8443").as_deref(),
            Some("https://a.example:8443/")
        );
        assert_eq!(
            n("https://[::1]:8443/x").as_deref(),
            Some("https://[::1]:8443/x")
        );
        assert_eq!(n("https://[::1]/x").as_deref(), Some("https://[::1]/x"));
    }

    #[test]
    fn percent_encoding_and_dot_segments() {
        assert_eq!(
            n("https://a.example/%7euser/%41b%2fc%2F").as_deref(),
            Some("https://a.example/~user/Ab%2Fc%2F")
        );
        assert_eq!(
            n("https://%41.example/").as_deref(),
            Some("https://a.example/")
        );
        assert_eq!(
            n("https://a.example/a/b/c/./../../g").as_deref(),
            Some("https://a.example/a/g")
        );
        assert_eq!(
            n("https://a.example/%2e%2E/x/%2E/y").as_deref(),
            Some("https://a.example/x/y")
        );
        assert_eq!(
            n("https://a.example/..").as_deref(),
            Some("https://a.example/")
        );
        assert_eq!(
            n("https://a.example/a/..").as_deref(),
            Some("https://a.example/")
        );
        // Reserved characters keep their encoding: `%2F` is not a path separator.
        assert_ne!(n("https://a.example/a%2Fb"), n("https://a.example/a/b"));
        assert_ne!(n("https://a.example/Path"), n("https://a.example/path"));
    }

    #[test]
    fn refuses_what_is_not_an_absolute_http_uri() {
        for uri in [
            "",
            "/token",
            "server.example.com/token",
            "ftp://a.example/",
            "https://",
            "https:///x",
            "https://user@a.example/",
            "https://user:pw@a.example/",
            "https://a.example:99999/",
            "https://a.example:12a/",
            "https://a.example/%zz",
            "https://a.example/%4",
            "https://a.example/a b",
            "https://a.example/\u{e9}",
            "https://a.example/\"",
            "https://::1/",
            "https://[::1]x/",
        ] {
            assert_eq!(n(uri), None, "{uri}");
        }
    }

    #[test]
    fn plain_authorities() {
        for ok in ["a.example", "a.example:8443", "[::1]:80", "127.0.0.1"] {
            assert!(is_plain_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "a.example/x",
            "u@a.example",
            "a.example?x",
            "a b",
            "a:b:c",
        ] {
            assert!(!is_plain_authority(bad), "{bad}");
        }
    }
}
