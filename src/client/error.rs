//! [`TokenError`]: why no access token could be obtained.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// A boxed error: what the client's service fails with (a [`TokenError`] or the inner client's error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
use crate::fetch::{FetchError, FetchErrorKind};

/// Why no access token could be obtained, or sent. The caller's request was not sent.
///
/// [`AddAccessToken`](super::AddAccessToken) returns it as its `Err`, boxed: find it with
/// `err.downcast_ref::<TokenError>()`. Its `Display` names the token endpoint's URL and says
/// what failed and what to check. It never holds the client secret or a token; the token
/// endpoint's `error` code and description are kept (checked to be printable and capped in
/// length), its body otherwise is not. When the HTTP exchange itself failed,
/// [`fetch_error`](Self::fetch_error) (also the [`source`](StdError::source)) says how.
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
    /// The token endpoint, without userinfo.
    endpoint: Option<Arc<str>>,
    /// What is wrong, in words of this crate (never of the response body).
    detail: Option<Box<str>>,
    fetch: Option<Arc<FetchError>>,
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
    /// The token endpoint answered with an unexpected HTTP status (a redirect included:
    /// redirects are not followed) and no OAuth error.
    Status,
    /// The request could not be sent or the response not read (connection refused, TLS,
    /// reset ...); [`TokenError::fetch_error`] says which.
    Transport,
    /// The token endpoint did not answer in time.
    Timeout,
    /// The response body exceeds 64 KiB.
    ResponseTooLarge,
    /// The response is not a token response: not JSON, no `access_token`, or a token that
    /// cannot be sent in a header.
    InvalidResponse,
    /// The `token_type` is neither `Bearer` nor, when the layer has a DPoP key, `DPoP`.
    UnsupportedTokenType,
    /// No Tokio runtime to run the token request on, or the refresh was abandoned (the
    /// runtime shut down).
    Unavailable,
    /// The request's [`TokenTarget`](super::TokenTarget) names a resource on another origin
    /// than the request's: its token must not go there, so none was fetched or sent.
    ResourceMismatch,
    /// The DPoP proof for the request could not be made (no randomness for its `jti`, a key
    /// the backend cannot sign with, or a request URI that is not absolute).
    Proof,
    /// A request to an [`ExchangeTokenLayer`](super::ExchangeTokenLayer)'s API carries no
    /// [`SubjectToken`](super::SubjectToken) to exchange, or one carries it to an origin the
    /// layer does not serve: nothing was exchanged or sent.
    NoSubjectToken,
    /// The `private_key_jwt` client assertion (RFC 7523) could not be signed.
    Assertion,
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
            TokenErrorKind::ResourceMismatch => "resource_mismatch",
            TokenErrorKind::Proof => "dpop_proof",
            TokenErrorKind::NoSubjectToken => "no_subject_token",
            TokenErrorKind::Assertion => "client_assertion",
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
            TokenErrorKind::ResourceMismatch => "the token's resource is on another origin",
            TokenErrorKind::Proof => "the DPoP proof could not be made",
            TokenErrorKind::NoSubjectToken => "no subject token to exchange",
            TokenErrorKind::Assertion => "the client assertion could not be signed",
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
            endpoint: None,
            detail: None,
            fetch: None,
            source: None,
        }
    }

    /// The HTTP exchange failed.
    pub(crate) fn fetch(err: FetchError) -> Self {
        let kind = match err.kind() {
            FetchErrorKind::Timeout => TokenErrorKind::Timeout,
            FetchErrorKind::Status(_) => TokenErrorKind::Status,
            FetchErrorKind::TooLarge => TokenErrorKind::ResponseTooLarge,
            FetchErrorKind::InvalidJson => TokenErrorKind::InvalidResponse,
            _ => TokenErrorKind::Transport,
        };
        let mut token_error = TokenError::new(kind);
        token_error.status = err.status();
        token_error.endpoint = Some(err.url().into());
        token_error.fetch = Some(Arc::new(err));
        token_error
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<Box<str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The token endpoint's URL (printed without userinfo).
    pub(crate) fn at(mut self, endpoint: &Arc<str>) -> Self {
        self.endpoint = Some(Arc::clone(endpoint));
        self
    }

    /// The `token_type` the endpoint issued, kept when it is a short token of printable
    /// characters.
    pub(crate) fn with_token_type(self, token_type: &str) -> Self {
        let printable = token_type.len() <= 32 && token_type.bytes().all(|b| b.is_ascii_graphic());
        let shown = if printable { token_type } else { "?" };
        self.with_detail(format!("`{shown}`"))
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

    /// The token endpoint's URL (userinfo replaced by `***`), when a request was made.
    #[must_use]
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// How the HTTP exchange with the token endpoint failed (connect, TLS, timeout, status,
    /// size, JSON), when that is what failed.
    #[must_use]
    pub fn fetch_error(&self) -> Option<&FetchError> {
        self.fetch.as_deref()
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
        if let Some(endpoint) = &self.endpoint {
            d.field("endpoint", endpoint);
        }
        if let Some(detail) = &self.detail {
            d.field("detail", detail);
        }
        if let Some(fetch) = &self.fetch {
            d.field("fetch", fetch);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for TokenError {
    /// One table: what failed (naming the token endpoint), then what to check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = At(self.endpoint.as_deref());
        let detail = self.detail.as_deref().unwrap_or("");
        if let Some(fetch) = &self.fetch {
            return match self.kind {
                TokenErrorKind::InvalidResponse => {
                    write!(f, "the token response is invalid: {fetch}")
                }
                _ => write!(f, "the token request failed: {fetch}"),
            };
        }
        match self.kind {
            TokenErrorKind::Rejected => {
                write!(f, "the token endpoint{at} refused the request")?;
                if let Some(status) = self.status {
                    write!(f, " (HTTP {})", status.as_u16())?;
                }
                if let Some(error) = &self.oauth_error {
                    write!(f, ": {error}")?;
                    if let Some(description) = &self.description {
                        write!(f, " ({description})")?;
                    }
                    if let Some(hint) = rejection_hint(error) {
                        write!(f, "; {hint}")?;
                    }
                }
                Ok(())
            }
            TokenErrorKind::Status => {
                write!(f, "the token endpoint{at} answered")?;
                if let Some(status) = self.status {
                    write!(f, " HTTP {status}")?;
                }
                f.write_str(" without an OAuth error; check the token endpoint's URL and its logs")
            }
            TokenErrorKind::InvalidResponse => write!(
                f,
                "the token response of{at} is invalid: {detail}; check that the URL is the token \
                 endpoint"
            ),
            TokenErrorKind::UnsupportedTokenType => write!(
                f,
                "the token endpoint{at} issued a {detail} token, not a Bearer one; this layer \
                 sends Bearer tokens, and DPoP ones when it has a DPoP key \
                 (AddAccessTokenLayerBuilder::dpop)"
            ),
            TokenErrorKind::Unavailable
            | TokenErrorKind::ResourceMismatch
            | TokenErrorKind::Proof
            | TokenErrorKind::NoSubjectToken
            | TokenErrorKind::Assertion
                if !detail.is_empty() =>
            {
                write!(f, "{}: {detail}", self.kind)
            }
            _ => write!(f, "{}", self.kind),
        }
    }
}

/// `" <url>"`, or nothing.
struct At<'a>(Option<&'a str>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(url) => write!(f, " {url}"),
            None => Ok(()),
        }
    }
}

/// What to check after an RFC 6749 §5.2 error.
fn rejection_hint(error: &str) -> Option<&'static str> {
    Some(match error {
        "invalid_client" => "check the client id, the secret and the authentication method",
        "invalid_scope" => "check the scope: the client may not be allowed it",
        "invalid_target" => "check the resource: the client may not ask for tokens for it",
        "unauthorized_client" => "check that the client may use the client-credentials grant",
        "unsupported_grant_type" => "the endpoint does not offer the client-credentials grant",
        "invalid_dpop_proof" => {
            "the token endpoint refused the DPoP proof: check this host's clock and that the \
             endpoint accepts the key's algorithm"
        }
        "use_dpop_nonce" => "the token endpoint wants a DPoP nonce but sent none to retry with",
        _ => return None,
    })
}

impl StdError for TokenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self.fetch.as_deref() {
            Some(fetch) => Some(fetch),
            None => self
                .source
                .as_deref()
                .map(|s| s as &(dyn StdError + 'static)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_oauth_error_and_what_to_check() {
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
             (client authentication failed); check the client id, the secret and the \
             authentication method"
        );
        let err = err.at(&Arc::from("https://issuer.example/token"));
        assert!(
            err.to_string()
                .starts_with("the token endpoint https://issuer.example/token refused"),
            "{err}"
        );
        assert_eq!(err.endpoint(), Some("https://issuer.example/token"));
    }

    #[test]
    fn unprintable_or_long_server_text_is_dropped_or_capped() {
        let err = TokenError::rejected(StatusCode::BAD_REQUEST, "bad\"code", Some("a\nb"));
        assert_eq!((err.oauth_error(), err.description()), (None, None));
        let long = "x".repeat(1000);
        let err = TokenError::rejected(StatusCode::BAD_REQUEST, "invalid_scope", Some(&long));
        assert_eq!(err.description().map(str::len), Some(MAX_DESCRIPTION));
        let err = TokenError::new(TokenErrorKind::UnsupportedTokenType).with_token_type("a\nb");
        assert!(err.to_string().contains("issued a `?` token"), "{err}");
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

    #[test]
    fn a_fetch_error_becomes_the_source_and_the_message() {
        let url: Arc<str> = Arc::from("https://issuer.example/token");
        let fetch = FetchError::unaccepted(Arc::clone(&url), StatusCode::BAD_GATEWAY);
        let err = TokenError::fetch(fetch);
        assert_eq!(err.kind(), TokenErrorKind::Status);
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
        assert_eq!(err.endpoint(), Some(&*url));
        assert_eq!(
            err.to_string(),
            "the token request failed: https://issuer.example/token answered HTTP 502 Bad \
             Gateway; check the URL's path and the server's logs"
        );
        let source = err.source().and_then(|s| s.downcast_ref::<FetchError>());
        assert_eq!(
            source.map(FetchError::kind),
            Some(FetchErrorKind::Status(StatusCode::BAD_GATEWAY))
        );
    }
}
