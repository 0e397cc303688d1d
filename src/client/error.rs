//! [`TokenError`]: why no access token could be obtained.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

pub use crate::error::BoxError;

/// Why no access token could be obtained. The caller's request was not sent.
///
/// [`AddAccessToken`](super::AddAccessToken) returns it as its `Err`, boxed: find it with
/// `err.downcast_ref::<TokenError>()`. It never holds the client secret or a token; the
/// token endpoint's `error` code and description are kept (checked to be printable and
/// capped in length), its body otherwise is not.
///
/// ```
/// use bearer_guard::client::{BoxError, TokenError, TokenErrorKind};
///
/// fn explain(err: &BoxError) -> &'static str {
///     match err.downcast_ref::<TokenError>().map(TokenError::kind) {
///         Some(TokenErrorKind::Rejected) => "the token endpoint refused the client",
///         Some(_) => "no token",
///         None => "the call itself failed",
///     }
/// }
/// ```
#[derive(Clone)]
pub struct TokenError {
    kind: TokenErrorKind,
    status: Option<StatusCode>,
    oauth_error: Option<Box<str>>,
    description: Option<Box<str>>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// The reason behind a [`TokenError`].
///
/// New reasons may be added in minor releases; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// The token endpoint answered with an RFC 6749 §5.2 error: `invalid_client` (wrong id
    /// or secret), `invalid_scope`, `invalid_target`, `unauthorized_client` ...; see
    /// [`TokenError::oauth_error`].
    Rejected,
    /// The token endpoint answered with an unexpected HTTP status and no OAuth error.
    Status,
    /// The request could not be sent or the response not read (connection refused, reset,
    /// TLS ...); see [`source`](std::error::Error::source).
    Transport,
    /// The token endpoint did not answer in time.
    Timeout,
    /// The response body exceeds 64 KiB.
    ResponseTooLarge,
    /// The response is not a token response: not JSON, no `access_token`, or a token that
    /// cannot be sent in a header.
    InvalidResponse,
    /// The `token_type` is not `Bearer` (for example `DPoP`, which this layer does not
    /// speak).
    UnsupportedTokenType,
    /// No Tokio runtime to run the token request on, or the refresh was abandoned (the
    /// runtime shut down).
    Unavailable,
}

impl TokenErrorKind {
    /// A stable, short, lower-case name for logs and metrics (`"rejected"`, `"timeout"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TokenErrorKind::Rejected => "rejected",
            TokenErrorKind::Status => "http_status",
            TokenErrorKind::Transport => "transport",
            TokenErrorKind::Timeout => "timeout",
            TokenErrorKind::ResponseTooLarge => "too_large",
            TokenErrorKind::InvalidResponse => "invalid_response",
            TokenErrorKind::UnsupportedTokenType => "unsupported_token_type",
            TokenErrorKind::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for TokenErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenErrorKind::Rejected => "the token endpoint refused the request",
            TokenErrorKind::Status => "the token endpoint answered with an unexpected status",
            TokenErrorKind::Transport => "the token request failed",
            TokenErrorKind::Timeout => "the token request timed out",
            TokenErrorKind::ResponseTooLarge => "the token response is too large",
            TokenErrorKind::InvalidResponse => "the token response is invalid",
            TokenErrorKind::UnsupportedTokenType => "the token type is not Bearer",
            TokenErrorKind::Unavailable => "no token request could be run",
        })
    }
}

/// Longest kept `error_description`, in characters.
const MAX_DESCRIPTION: usize = 256;

impl TokenError {
    pub(crate) fn new(kind: TokenErrorKind) -> Self {
        TokenError {
            kind,
            status: None,
            oauth_error: None,
            description: None,
            source: None,
        }
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// An RFC 6749 §5.2 error; `error` and `description` are kept only when they are made
    /// of the characters §5.2 allows (printable ASCII but `"` and `\`).
    pub(crate) fn rejected(status: StatusCode, error: &str, description: Option<&str>) -> Self {
        let allowed = |s: &str| {
            s.bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        };
        let mut err = TokenError::new(TokenErrorKind::Rejected).with_status(status);
        if !error.is_empty() && error.len() <= 64 && allowed(error) {
            err.oauth_error = Some(error.into());
        }
        err.description = description
            .filter(|d| !d.is_empty() && allowed(d))
            .map(|d| d.chars().take(MAX_DESCRIPTION).collect::<String>().into());
        err
    }

    /// The reason.
    #[must_use]
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The token endpoint's HTTP status, if it answered.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The RFC 6749 §5.2 `error` code (`"invalid_client"`, `"invalid_scope"` ...), for
    /// [`TokenErrorKind::Rejected`].
    #[must_use]
    pub fn oauth_error(&self) -> Option<&str> {
        self.oauth_error.as_deref()
    }

    /// The token endpoint's `error_description`, if it sent a printable one.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenError");
        d.field("kind", &self.kind);
        if let Some(status) = self.status {
            d.field("status", &status.as_u16());
        }
        if let Some(error) = &self.oauth_error {
            d.field("oauth_error", error);
        }
        if let Some(description) = &self.description {
            d.field("description", description);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {})", status.as_u16())?;
        }
        if let Some(error) = &self.oauth_error {
            write!(f, ": {error}")?;
            if let Some(description) = &self.description {
                write!(f, " ({description})")?;
            }
        }
        Ok(())
    }
}

impl StdError for TokenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_oauth_error() {
        let err = TokenError::rejected(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            Some("client authentication failed"),
        );
        assert_eq!(err.kind(), TokenErrorKind::Rejected);
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        assert_eq!(
            err.to_string(),
            "the token endpoint refused the request (HTTP 401): invalid_client \
             (client authentication failed)"
        );
    }

    #[test]
    fn unprintable_or_long_server_text_is_dropped_or_capped() {
        let err = TokenError::rejected(StatusCode::BAD_REQUEST, "bad\"code", Some("a\nb"));
        assert_eq!((err.oauth_error(), err.description()), (None, None));
        let long = "x".repeat(1000);
        let err = TokenError::rejected(StatusCode::BAD_REQUEST, "invalid_scope", Some(&long));
        assert_eq!(err.description().map(str::len), Some(MAX_DESCRIPTION));
    }

    #[test]
    fn source_is_kept() {
        let err = TokenError::new(TokenErrorKind::Transport).with_source("connection refused");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("connection refused")
        );
        assert!(format!("{err:?}").contains("connection refused"));
    }
}
