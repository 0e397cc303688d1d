//! [`FetchError`]: why an HTTP fetch failed, for which URL, and what to check.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::error::BoxError;

/// Why an HTTP fetch (a token request, a key set) failed.
///
/// It names the URL, without userinfo, and says what failed and what to check; it never
/// holds a response body, a token or a secret. [`kind`](Self::kind) tells the failures
/// apart; [`source`](StdError::source) is the HTTP client's own error, when there is one.
///
/// ```
/// # #[cfg(feature = "client")] {
/// use bearer_guard::fetch::{FetchError, FetchErrorKind};
///
/// fn retry_later(err: &FetchError) -> bool {
///     matches!(err.kind(), FetchErrorKind::Connect | FetchErrorKind::Timeout)
///         || matches!(err.kind(), FetchErrorKind::Status(s) if s.is_server_error())
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct FetchError {
    url: Arc<str>,
    kind: FetchErrorKind,
    status: Option<StatusCode>,
    detail: Detail,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// What failed in a [`FetchError`].
///
/// New kinds may be added in minor releases; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// No connection: refused, unreachable, unknown host.
    Connect,
    /// The TLS handshake failed: certificate not trusted, wrong name, expired, or the
    /// server does not speak TLS.
    Tls,
    /// The request failed after connecting (connection reset or closed, protocol error).
    Transport,
    /// No complete answer within the time allowed.
    Timeout,
    /// An HTTP status the fetch does not accept; a redirect (3xx) always is one, redirects
    /// are never followed.
    Status(StatusCode),
    /// The body is larger than allowed (by `Content-Length`, or while reading).
    TooLarge,
    /// Reading the body failed.
    Body,
    /// The body is not the JSON expected.
    InvalidJson,
}

impl FetchErrorKind {
    /// A stable, short, lower-case name for logs and metrics (`"connect"`, `"timeout"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FetchErrorKind::Connect => "connect",
            FetchErrorKind::Tls => "tls",
            FetchErrorKind::Transport => "transport",
            FetchErrorKind::Timeout => "timeout",
            FetchErrorKind::Status(_) => "http_status",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::Body => "body",
            FetchErrorKind::InvalidJson => "invalid_json",
        }
    }
}

/// What the message adds to the kind.
#[derive(Clone)]
enum Detail {
    None,
    /// The deepest error of the source chain, printable and capped.
    Cause(Box<str>),
    Timeout(Duration),
    Limit(usize),
    /// A redirect's target, without userinfo, when it is printable.
    Location(Option<Box<str>>),
    Json {
        category: &'static str,
        line: usize,
        column: usize,
    },
}

/// Longest cause or location printed, in characters.
const MAX_PRINTED: usize = 200;

impl FetchError {
    fn new(url: Arc<str>, kind: FetchErrorKind, detail: Detail) -> Self {
        FetchError {
            url,
            kind,
            status: None,
            detail,
            source: None,
        }
    }

    /// `poll_ready` or `call` failed: connect, TLS or transport, told apart by the chain.
    pub(crate) fn send(url: Arc<str>, err: BoxError) -> Self {
        let kind = classify(&*err);
        let mut fetch = FetchError::new(url, kind, cause(&*err));
        fetch.source = Some(Arc::from(err));
        fetch
    }

    pub(crate) fn timeout(url: Arc<str>, after: Duration) -> Self {
        FetchError::new(url, FetchErrorKind::Timeout, Detail::Timeout(after))
    }

    pub(crate) fn redirect(url: Arc<str>, status: StatusCode, location: Option<&str>) -> Self {
        let location = location
            .filter(|l| l.bytes().all(|b| b.is_ascii_graphic()))
            .map(|l| printable(&crate::url::redact(l)));
        let mut fetch = FetchError::new(
            url,
            FetchErrorKind::Status(status),
            Detail::Location(location),
        );
        fetch.status = Some(status);
        fetch
    }

    pub(crate) fn unaccepted(url: Arc<str>, status: StatusCode) -> Self {
        let mut fetch = FetchError::new(url, FetchErrorKind::Status(status), Detail::None);
        fetch.status = Some(status);
        fetch
    }

    pub(crate) fn too_large(url: Arc<str>, status: StatusCode, max: usize) -> Self {
        let mut fetch = FetchError::new(url, FetchErrorKind::TooLarge, Detail::Limit(max));
        fetch.status = Some(status);
        fetch
    }

    pub(crate) fn body(url: Arc<str>, status: StatusCode, err: BoxError) -> Self {
        let mut fetch = FetchError::new(url, FetchErrorKind::Body, cause(&*err));
        fetch.status = Some(status);
        fetch.source = Some(Arc::from(err));
        fetch
    }

    /// serde_json's message can quote the document (and so a token): only its category and
    /// position are kept.
    pub(crate) fn invalid_json(url: Arc<str>, status: StatusCode, err: &serde_json::Error) -> Self {
        let category = match err.classify() {
            serde_json::error::Category::Io => "read",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "unexpected member or type",
            serde_json::error::Category::Eof => "truncated document",
        };
        let detail = Detail::Json {
            category,
            line: err.line(),
            column: err.column(),
        };
        let mut fetch = FetchError::new(url, FetchErrorKind::InvalidJson, detail);
        fetch.status = Some(status);
        fetch
    }

    /// What failed.
    #[must_use]
    pub fn kind(&self) -> FetchErrorKind {
        self.kind
    }

    /// The URL fetched, with any userinfo replaced by `***`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP status, when the server answered.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
}

impl fmt::Display for FetchError {
    /// One table: what failed, then what to check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.url;
        match self.kind {
            FetchErrorKind::Connect => write!(
                f,
                "could not connect to {url}{}; check that the server is running and that the \
                 URL's host and port are right",
                self.detail
            ),
            FetchErrorKind::Tls => write!(
                f,
                "TLS handshake with {url} failed{}; check that the server speaks https there \
                 and that its certificate (name, expiry, issuer) is trusted",
                self.detail
            ),
            FetchErrorKind::Transport => write!(
                f,
                "request to {url} failed after connecting{}; check the server and any proxy in \
                 between",
                self.detail
            ),
            FetchErrorKind::Timeout => write!(
                f,
                "no complete answer from {url}{}; check that the server is reachable and \
                 healthy, or allow more time",
                self.detail
            ),
            FetchErrorKind::Status(status) if status.is_redirection() => write!(
                f,
                "{url} answered HTTP {status}, a redirect{}, which is not followed; configure \
                 the final URL",
                self.detail
            ),
            FetchErrorKind::Status(status) => write!(
                f,
                "{url} answered HTTP {status}; check the URL's path and the server's logs"
            ),
            FetchErrorKind::TooLarge => write!(
                f,
                "the answer of {url} is larger than{}; check that the URL serves the expected \
                 document",
                self.detail
            ),
            FetchErrorKind::Body => write!(
                f,
                "reading the answer of {url} failed{}; check the server and any proxy in between",
                self.detail
            ),
            FetchErrorKind::InvalidJson => write!(
                f,
                "the answer of {url} is not the JSON expected{}; check that the URL serves the \
                 expected document",
                self.detail
            ),
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::None | Detail::Location(None) => Ok(()),
            Detail::Cause(cause) => write!(f, " ({cause})"),
            Detail::Timeout(after) => write!(f, " within {after:?}"),
            Detail::Limit(max) => write!(f, " {max} bytes"),
            Detail::Location(Some(to)) => write!(f, " to {to}"),
            Detail::Json {
                category,
                line,
                column,
            } => write!(f, " ({category} at line {line}, column {column})"),
        }
    }
}

impl fmt::Debug for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FetchError");
        d.field("kind", &self.kind).field("url", &self.url);
        if let Some(status) = self.status {
            d.field("status", &status.as_u16());
        }
        d.field("message", &format_args!("{self}")).finish()
    }
}

impl StdError for FetchError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The errors of the chain, the inner error of an `io::Error` included (its own `source`
/// skips it), at most 16 deep.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
        Some(current)
    })
    .take(16)
}

/// Connect, TLS or transport. hyper-util's client says `is_connect()` (with `remote`, where
/// it is a dependency; its connector's "tcp connect error" and "dns error" otherwise);
/// `io::Error` kinds say refused or unreachable; a `rustls::Error` (with `remote`), or
/// invalid data while connecting, is TLS.
fn classify(err: &(dyn StdError + 'static)) -> FetchErrorKind {
    use std::io::ErrorKind as Io;
    let (mut connect, mut tls, mut invalid_data) = (false, false, false);
    for e in chain(err) {
        connect |= is_hyper_connect(e);
        tls |= is_rustls(e);
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::ConnectionRefused
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::AddrNotAvailable => connect = true,
                Io::InvalidData => invalid_data = true,
                _ => {}
            }
        }
        let text = e.to_string();
        connect |= text == "tcp connect error" || text == "dns error";
    }
    if tls || (connect && invalid_data) {
        FetchErrorKind::Tls
    } else if connect {
        FetchErrorKind::Connect
    } else {
        FetchErrorKind::Transport
    }
}

#[cfg(feature = "remote")]
fn is_hyper_connect(e: &(dyn StdError + 'static)) -> bool {
    e.downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect)
}

#[cfg(feature = "remote")]
fn is_rustls(e: &(dyn StdError + 'static)) -> bool {
    e.is::<rustls::Error>()
}

// Without `remote`, hyper-util and rustls are not dependencies: their errors are known by
// their `io::Error` kinds and messages only.
#[cfg(not(feature = "remote"))]
fn is_hyper_connect(_: &(dyn StdError + 'static)) -> bool {
    false
}

#[cfg(not(feature = "remote"))]
fn is_rustls(_: &(dyn StdError + 'static)) -> bool {
    false
}

/// The deepest error of the chain: the telling one ("Connection refused"), where the outer
/// ones say "client error (Connect)".
fn cause(err: &(dyn StdError + 'static)) -> Detail {
    match chain(err).last() {
        Some(root) => Detail::Cause(printable(&root.to_string())),
        None => Detail::None,
    }
}

/// `text` with control characters replaced and cut at [`MAX_PRINTED`] characters.
fn printable(text: &str) -> Box<str> {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_PRINTED)
        .collect::<String>()
        .into()
}
