//! The URL rule shared by everything that fetches over HTTP (key sets, discovery, token and
//! introspection endpoints): `https`, or plain `http` to a loopback host, unless explicitly
//! allowed; never credentials in the URL itself.

use std::borrow::Cow;

use http::Uri;

use crate::error::ConfigError;

/// Parses `url` and refuses anything but `https`, or `http` to a loopback host, unless
/// `allow_http` is set. A URL carrying credentials (`https://user:pass@host/..`) is refused:
/// they would end up in logs and `Debug` output; give credentials through the setting made
/// for them.
pub(crate) fn checked_uri(url: &str, allow_http: bool) -> Result<Uri, ConfigError> {
    let invalid = || ConfigError::InvalidUrl(redact(url).into_owned());
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(ConfigError::CredentialsInUrl(redact(url).into_owned()));
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(invalid)?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(ConfigError::InsecureUrl(url.to_owned())),
        _ => Err(invalid()),
    }
}

/// `url` without the userinfo of its authority (`https://user:pass@host/p` becomes
/// `https://***@host/p`), for printing. Anything that does not look like a URL is returned
/// as it is, but cut at the first `@` of what would be its authority.
pub(crate) fn redact(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let rest = &url[scheme_end..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &url[..scheme_end], &rest[at..])),
        None => Cow::Borrowed(url),
    }
}

/// A URL (or what may be one: an issuer, an audience) as `Debug` prints it: quoted, with any
/// userinfo replaced by `***`. Every type that holds a URL prints it through this, before and
/// after it is checked.
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*redact(self.0), f)
    }
}

/// [`Redacted`] for each URL of a list.
pub(crate) fn redacted_all<'a, S: AsRef<str> + 'a>(
    urls: impl IntoIterator<Item = &'a S>,
) -> Vec<Redacted<'a>> {
    urls.into_iter().map(|u| Redacted(u.as_ref())).collect()
}

/// [`Redacted`] for an optional URL.
pub(crate) fn redacted_opt(url: Option<&str>) -> Option<Redacted<'_>> {
    url.map(Redacted)
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

    #[test]
    fn urls_with_credentials_are_refused_and_never_printed() {
        for url in [
            "https://user:hunter2@issuer.example/jwks",
            "https://hunter2@issuer.example/jwks",
            "http://user:hunter2@127.0.0.1:8000/jwks",
        ] {
            let err = checked_uri(url, true).expect_err("credentials");
            assert!(matches!(err, ConfigError::CredentialsInUrl(_)), "{err:?}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
        // Unparseable URLs are printed redacted too.
        let err = checked_uri("https://u:hunter2@exa mple/", false).expect_err("invalid");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn redact_removes_userinfo_only() {
        assert_eq!(
            redact("https://u:p@host:8/a@b?c@d"),
            "https://***@host:8/a@b?c@d"
        );
        assert_eq!(redact("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact("no scheme"), "no scheme");
    }

    #[test]
    fn every_type_holding_a_url_redacts_it_when_printed() {
        let secret_url = "https://user:hunter2@issuer.example/p";
        let mut shown: Vec<String> = Vec::new();
        let builder = crate::Validator::builder()
            .issuer(secret_url)
            .audience("https://aud:hunter2@api.example")
            .keys(crate::testkit::key_set());
        shown.push(format!("{builder:?}"));
        // Built: the issuer (any string) is kept, and printed without its userinfo.
        let validator = builder.build().expect("static keys, any issuer string");
        shown.push(format!("{validator:?}"));
        let resource = crate::metadata::ProtectedResource::builder("https://api.example/r")
            .authorization_server(secret_url)
            .build()
            .expect("resource");
        shown.push(format!("{resource:?}"));
        shown.push(format!(
            "{:?}",
            crate::metadata::ProtectedResource::builder(secret_url)
        ));
        #[cfg(feature = "remote")]
        {
            shown.push(format!("{:?}", crate::RemoteKeys::jwks_url(secret_url)));
            shown.push(format!("{:?}", crate::RemoteKeys::discover(secret_url)));
            shown.push(format!("{:?}", crate::Issuer::discover(secret_url)));
            let builder = crate::Validator::builder()
                .audience("https://api.example")
                .keys(crate::RemoteKeys::discover(secret_url));
            shown.push(format!("{builder:?}"));
            // Refused when built, and the error does not print it either.
            let err = builder.build().expect_err("credentials in the URL");
            shown.push(format!("{err:?} {err}"));
            let builder = crate::Validator::builder()
                .audience("https://api.example")
                .trust(crate::Issuer::discover(secret_url));
            shown.push(format!("{builder:?}"));
        }
        for text in &shown {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(
            shown[0].contains("https://***@issuer.example/p"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].contains("https://***@issuer.example/p"),
            "{}",
            shown[1]
        );
        assert!(
            shown[2].contains("https://***@issuer.example/p"),
            "{}",
            shown[2]
        );
    }
}
