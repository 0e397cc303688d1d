//! Issuer discovery (RFC 8414, then OpenID Connect): the metadata document, whose `issuer`
//! must equal the configured one exactly, and the endpoints it names (`jwks_uri` for key
//! sets, `introspection_endpoint` for token introspection). And [`Failure`]: why a document
//! fetched from the issuer could not be used.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::http::Uri;
use serde::Deserialize;

use super::http::{self, Transport};
use crate::error::ConfigError;
use crate::fetch::{FetchError, Limits};
use crate::url::redact;

/// The members of the issuer's metadata this crate reads.
#[derive(Deserialize)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<String>,
    /// Any JSON: a member of the wrong type must not fail key discovery.
    #[serde(default)]
    introspection_endpoint: Option<serde_json::Value>,
}

impl Metadata {
    /// `introspection_endpoint` (RFC 8414 §2), when it is a string.
    pub(crate) fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_ref()?.as_str()
    }
}

/// A metadata document, and the URL it was read from.
pub(crate) struct Discovered {
    pub(crate) metadata: Metadata,
    document: Uri,
    url: Arc<str>,
}

impl Discovered {
    /// The endpoint the document names `name` (its value `value`): present, allowed by the
    /// URL rule, and not plain `http` when the document came over `https` (unless
    /// `allow_http`).
    pub(crate) fn endpoint(
        &self,
        name: &str,
        value: Option<&str>,
        allow_http: bool,
    ) -> Result<Uri, Failure> {
        let invalid = |msg: String| Failure::document(&self.url, msg);
        let value = value.ok_or_else(|| invalid(format!("the document has no `{name}`")))?;
        let uri = crate::url::checked_uri(value, allow_http)?;
        let downgrade = self.document.scheme_str() == Some("https")
            && uri.scheme_str() != Some("https")
            && !allow_http;
        if downgrade {
            return Err(invalid(format!(
                "an https issuer names the plain-http `{name}` `{}`; refused (see \
                 `allow_insecure_http`)",
                redact(value)
            )));
        }
        Ok(uri)
    }
}

/// The metadata of the issuer at `issuer_url` (RFC 8414, falling back to OpenID Connect
/// discovery), fetched through `client` within `limits`. The document's `issuer` must equal
/// `expected` exactly (RFC 8414 §3.3).
pub(crate) async fn discover(
    client: &dyn Transport,
    limits: &Limits,
    allow_http: bool,
    issuer_url: &str,
    expected: &str,
) -> Result<Discovered, Failure> {
    let mut last_err = None;
    for url in discovery_urls(issuer_url) {
        let uri = crate::url::checked_uri(&url, allow_http)?;
        let fetched = match http::get(client, &uri, limits).await {
            Ok((fetched, _)) => fetched,
            Err(e) => {
                // Keep the first failure: the RFC 8414 one is the more telling.
                last_err.get_or_insert(Failure::from(e));
                continue;
            }
        };
        // A catch-all web app may answer the first URL with HTML: try the next one.
        let parsed = crate::json::check_strict(&fetched.body)
            .map_err(|e| FetchError::invalid_json(Arc::clone(fetched.url()), fetched.status, &e))
            .and_then(|()| {
                crate::fetch::json::<Metadata>(fetched.url(), fetched.status, &fetched.body)
            });
        let metadata = match parsed {
            Ok(metadata) => metadata,
            Err(e) => {
                last_err.get_or_insert(Failure::from(e));
                continue;
            }
        };
        if metadata.issuer != expected {
            return Err(Failure::document(
                fetched.url(),
                format!(
                    "the document names issuer `{}`, expected `{}`",
                    redact(&metadata.issuer),
                    redact(expected)
                ),
            ));
        }
        return Ok(Discovered {
            metadata,
            document: uri,
            url: Arc::clone(fetched.url()),
        });
    }
    Err(last_err.unwrap_or_else(|| Failure::document(issuer_url, "no discovery URL".into())))
}

/// Why a document of the issuer (metadata, key set) could not be had: the fetch failed (its
/// error names the URL and what failed), or what came back is not what was expected.
#[derive(Debug)]
pub(crate) enum Failure {
    Fetch(FetchError),
    /// A configured or discovered URL that the URL rule refuses.
    Config(ConfigError),
    /// The document at `url` is not usable.
    Document {
        url: String,
        reason: String,
    },
    /// Not tried: the last attempt failed with `error`, the next may start `after` this.
    Retry {
        error: String,
        after: Duration,
    },
}

impl Failure {
    pub(crate) fn document(url: &str, reason: String) -> Self {
        Failure::Document {
            url: redact(url).into_owned(),
            reason,
        }
    }

    /// The stable `reason` logged.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Failure::Fetch(e) => e.kind().as_str(),
            Failure::Config(_) => "invalid_url",
            Failure::Document { .. } => "invalid_document",
            Failure::Retry { .. } => "retry_later",
        }
    }
}

impl From<FetchError> for Failure {
    fn from(error: FetchError) -> Self {
        Failure::Fetch(error)
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Config(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Fetch(e) => e.fmt(f),
            Failure::Config(e) => e.fmt(f),
            Failure::Document { url, reason } => write!(
                f,
                "{url}: {reason}; check that the URL serves the issuer's metadata or key set"
            ),
            Failure::Retry { error, after } => write!(
                f,
                "{error} (not tried again for another {} ms)",
                after.as_millis()
            ),
        }
    }
}

/// RFC 8414 §3.1 inserts the well-known segment between host and path; OpenID Connect
/// Discovery appends it to the issuer.
fn discovery_urls(issuer: &str) -> [String; 2] {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = match trimmed.find("://").map(|i| i + 3) {
        Some(start) => match trimmed[start..].find('/') {
            Some(slash) => trimmed.split_at(start + slash),
            None => (trimmed, ""),
        },
        None => (trimmed, ""),
    };
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_rfc_8414_and_oidc() {
        assert_eq!(
            discovery_urls("https://issuer.example"),
            [
                "https://issuer.example/.well-known/oauth-authorization-server",
                "https://issuer.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            discovery_urls("https://issuer.example/tenant/1/"),
            [
                "https://issuer.example/.well-known/oauth-authorization-server/tenant/1",
                "https://issuer.example/tenant/1/.well-known/openid-configuration"
            ]
        );
    }
}
