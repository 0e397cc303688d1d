//! The URL rule shared by everything that fetches over HTTP (key sets, discovery, token
//! endpoints): `https`, or plain `http` to a loopback host, unless explicitly allowed.

use http::Uri;

use crate::error::ConfigError;

/// Parses `url` and refuses anything but `https`, or `http` to a loopback host, unless
/// `allow_http` is set.
pub(crate) fn checked_uri(url: &str, allow_http: bool) -> Result<Uri, ConfigError> {
    let invalid = || ConfigError::InvalidUrl(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(invalid)?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(ConfigError::InsecureUrl(url.to_owned())),
        _ => Err(invalid()),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(checked_uri("https://issuer.example/jwks", false).is_ok());
        assert!(checked_uri("http://127.0.0.1:8000/jwks", false).is_ok());
        assert!(checked_uri("http://127.9.9.9/jwks", false).is_ok());
        assert!(checked_uri("http://localhost:1/jwks", false).is_ok());
        assert!(checked_uri("http://[::1]:1/jwks", false).is_ok());
        assert_eq!(
            checked_uri("http://issuer.example/jwks", false).unwrap_err(),
            ConfigError::InsecureUrl("http://issuer.example/jwks".into())
        );
        assert!(checked_uri("http://10.0.0.1/jwks", false).is_err());
        assert!(checked_uri("http://issuer.example/jwks", true).is_ok());
        assert!(checked_uri("ftp://issuer.example/jwks", true).is_err());
        assert!(checked_uri("/relative", false).is_err());
    }
}
