//! Origins (scheme, host, port: RFC 6454): where the layer may send its tokens.

use std::fmt;

use http::Uri;
use http::uri::Scheme;

use crate::error::ConfigError;

/// The origin of an `http(s)` URL: scheme, lower-case host, port (explicit or the scheme's
/// default). A host is compared as written: `api.example` and `api.example.` differ.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http(s)` URI; `None` for a relative URI or another scheme.
    pub(crate) fn of(uri: &Uri) -> Option<Origin> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return None,
        };
        let host = uri.host().filter(|h| !h.is_empty())?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Origin {
            https,
            host: host.to_ascii_lowercase().into(),
            port,
        })
    }

    /// The origin of `url` if it is an absolute `http(s)` URL.
    pub(crate) fn of_str(url: &str) -> Option<Origin> {
        Origin::of(&url.parse().ok()?)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The origins a layer sends tokens to.
#[derive(Clone, Default)]
pub(crate) struct Origins(Vec<Origin>);

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl Origins {
    /// Adds the origin of `url`, which must follow the crate's URL rule (`https`, or `http`
    /// to loopback unless `allow_http`; no credentials) and have no path, query or fragment.
    pub(crate) fn allow(&mut self, url: &str, allow_http: bool) -> Result<(), ConfigError> {
        let uri = crate::url::checked_uri(url, allow_http)?;
        let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        match Origin::of(&uri) {
            Some(origin) if bare && !url.contains('#') => {
                self.insert(origin);
                Ok(())
            }
            _ => Err(ConfigError::InvalidUrl(
                crate::url::redact(url).into_owned(),
            )),
        }
    }

    pub(crate) fn insert(&mut self, origin: Origin) {
        if !self.0.contains(&origin) {
            self.0.push(origin);
        }
    }

    pub(crate) fn contains(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Option<String> {
        Origin::of_str(url).map(|o| o.to_string())
    }

    #[test]
    fn origin_is_scheme_host_and_port_with_defaults() {
        assert_eq!(
            origin("https://API.example/x?y").as_deref(),
            Some("https://api.example:443")
        );
        assert_eq!(
            origin("https://api.example:443"),
            origin("https://api.example/")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/a").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("http://[::1]/").as_deref(), Some("http://[::1]:80"));
        assert_ne!(origin("http://api.example"), origin("https://api.example"));
        assert_ne!(
            origin("https://api.example:8443"),
            origin("https://api.example")
        );
        // Userinfo is not part of the origin; the host is where the bytes go.
        assert_eq!(
            origin("https://u:p@api.example/"),
            origin("https://api.example")
        );
        for none in [
            "/relative",
            "urn:example:api",
            "ftp://api.example/",
            "https:///x",
        ] {
            assert_eq!(origin(none), None, "{none}");
        }
    }

    #[test]
    fn allowed_origins_follow_the_url_rule_and_carry_no_path() {
        let mut origins = Origins::default();
        origins.allow("https://api.example", false).expect("https");
        origins
            .allow("https://api.example/", false)
            .expect("same, slash");
        origins
            .allow("http://127.0.0.1:9", false)
            .expect("loopback http");
        assert!(origins.contains(&Origin::of_str("https://api.example/any/path").expect("o")));
        assert_eq!(origins.0.len(), 2);
        assert!(matches!(
            origins.allow("http://api.example", false),
            Err(ConfigError::InsecureUrl(_))
        ));
        origins.allow("http://api.example", true).expect("opted in");
        for bad in [
            "https://api.example/v1",
            "https://api.example/?a",
            "urn:x:y",
            "api.example",
        ] {
            assert!(
                matches!(origins.allow(bad, false), Err(ConfigError::InvalidUrl(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            origins.allow("https://u:hunter2@api.example", false),
            Err(ConfigError::CredentialsInUrl(u)) if !u.contains("hunter2")
        ));
    }
}
