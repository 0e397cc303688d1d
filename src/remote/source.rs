//! [`RemoteKeys`]: where an issuer's keys are fetched from, and how they are kept.

use std::fmt;
use std::time::Duration;

use super::http::{Caller, SharedTransport};
use bytes::Bytes;
use http_body_util::Full;

use crate::fetch::HttpService;
use crate::keyring::JwksOptions;

/// Where the keys come from.
#[derive(Clone)]
pub(crate) enum Source {
    Jwks(String),
    Discover(String),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, url) = match self {
            Source::Jwks(url) => ("Jwks", url),
            Source::Discover(url) => ("Discover", url),
        };
        f.debug_tuple(kind)
            .field(&crate::url::Redacted(url))
            .finish()
    }
}

/// Settings of a remote key source, with their defaults.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) source: Source,
    pub(crate) allow_http: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) cooldown: Duration,
    pub(crate) refresh_min: Duration,
    pub(crate) refresh_max: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) jwks: JwksOptions,
}

/// Keys fetched from the issuer (feature `remote`), for
/// [`ValidatorBuilder::keys`](crate::ValidatorBuilder::keys).
///
/// A JWKS URL or an RFC 8414 / OpenID discovery document. `https` is required, except for
/// loopback hosts or with [`allow_insecure_http`](Self::allow_insecure_http). Nothing is
/// fetched when the validator is built: the first request that needs the keys fetches them
/// (503 until a fetch succeeds), or call [`Validator::ready`](crate::Validator::ready) to
/// fetch them now and fail fast.
///
/// # How the keys are kept
///
/// - The key set lives behind one `Arc`, swapped atomically: a request reads it without a
///   lock or an allocation.
/// - It is refreshed after `Cache-Control: max-age`, clamped to
///   [`refresh_interval`](Self::refresh_interval)'s bounds (5 minutes when the issuer sends
///   none). A background task refreshes on time; when it cannot run (the Tokio runtime that
///   started it is gone), the first request after the due time starts the refresh on its own
///   runtime, and a refresh that cannot run at all (no runtime) is logged.
/// - A token whose `kid` is unknown triggers one refetch, shared by every request waiting
///   on it; then, for the [`unknown_kid_cooldown`](Self::unknown_kid_cooldown) (30 s),
///   unknown kids are refused at once without fetching. A flood of forged kids causes at
///   most one fetch per cooldown.
/// - When fetching fails, the last good set keeps serving for up to
///   [`max_staleness`](Self::max_staleness) (1 hour) after its last successful fetch; after
///   that requests get 503 ([`ErrorKind::KeysUnavailable`](crate::ErrorKind)) until the
///   issuer answers again. Every failure is logged with a `reason` and the URL.
/// - Timeouts, a response size cap, a key count cap; redirects are never followed; invalid
///   JSON or a set without a usable key is an error, never an empty set.
///
/// ```no_run
/// use std::time::Duration;
/// use bearer_guard::{RemoteKeys, Validator};
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = Validator::builder()
///     .audience("https://api.example")
///     .keys(RemoteKeys::discover("https://issuer.example")
///         .unknown_kid_cooldown(Duration::from_secs(60)))
///     .build()?;
/// validator.ready().await?; // fails now if the issuer is unreachable
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteKeys {
    pub(crate) settings: Settings,
    pub(crate) client: Option<SharedTransport>,
    pub(crate) tls: Option<rustls::ClientConfig>,
}

impl RemoteKeys {
    fn new(source: Source) -> Self {
        RemoteKeys {
            settings: Settings {
                source,
                allow_http: false,
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(10),
                max_body: 1024 * 1024,
                cooldown: Duration::from_secs(30),
                refresh_min: Duration::from_secs(60),
                refresh_max: Duration::from_secs(24 * 3600),
                max_staleness: Duration::from_secs(3600),
                jwks: JwksOptions::default(),
            },
            client: None,
            tls: None,
        }
    }

    /// Keys from this JWKS URL.
    #[must_use]
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self::new(Source::Jwks(url.into()))
    }

    /// Keys found through the issuer's metadata: RFC 8414
    /// `/.well-known/oauth-authorization-server`, falling back to OpenID Connect
    /// `/.well-known/openid-configuration`. The document's `issuer` must equal the
    /// validator's issuer exactly, which is `issuer_url` unless
    /// [`issuer`](crate::ValidatorBuilder::issuer) says otherwise; its `jwks_uri` is used.
    /// An `https` issuer may not send an `http` `jwks_uri`, loopback or not, unless
    /// [`allow_insecure_http`](Self::allow_insecure_http) is given.
    #[must_use]
    pub fn discover(issuer_url: impl Into<String>) -> Self {
        Self::new(Source::Discover(issuer_url.into()))
    }

    /// The issuer URL of a discovery source.
    pub(crate) fn discovery_issuer(&self) -> Option<&str> {
        match &self.settings.source {
            Source::Discover(url) => Some(url),
            Source::Jwks(_) => None,
        }
    }

    /// Uses this HTTP client for discovery and key sets: any [`HttpService`] with a
    /// `Full<Bytes>` body (a proxy-aware client, a test double ...). Timeouts, the size cap
    /// and the no-redirect rule still apply around it.
    #[must_use]
    pub fn http_client<S: HttpService<Full<Bytes>>>(mut self, client: S) -> Self {
        self.client = Some(Caller::shared(client));
        self
    }

    /// TLS settings for the default client: a private CA, a client certificate for mTLS.
    /// Build it with an explicit crypto provider
    /// (`rustls::ClientConfig::builder_with_provider`).
    #[must_use]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Allows `http://` URLs to hosts that are not loopback, and an `http` `jwks_uri` in an
    /// `https` issuer's metadata. Only for networks where nothing can alter traffic: a forged
    /// key set means forged tokens are accepted.
    #[must_use]
    pub fn allow_insecure_http(mut self) -> Self {
        self.settings.allow_http = true;
        self
    }

    /// How long after a fetch triggered by an unknown `kid` no other such fetch happens;
    /// unknown kids are refused at once meanwhile. Default 30 s.
    #[must_use]
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.cooldown = cooldown;
        self
    }

    /// Bounds for the refresh interval, which follows the key set's `Cache-Control:
    /// max-age` (5 minutes without one). Default 1 minute to 24 hours.
    #[must_use]
    pub fn refresh_interval(mut self, min: Duration, max: Duration) -> Self {
        self.settings.refresh_min = min;
        self.settings.refresh_max = max.max(min);
        self
    }

    /// How long the last good key set keeps serving after its fetch while the issuer cannot
    /// be reached. After that, requests get 503. Default 1 hour.
    #[must_use]
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.settings.max_staleness = max;
        self
    }

    /// Connect and total timeouts of each fetch. Default 5 s and 10 s.
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.settings.connect_timeout = connect;
        self.settings.timeout = total;
        self
    }

    /// Largest response accepted from the issuer, in bytes. Default 1 MiB.
    #[must_use]
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.settings.max_body = bytes;
        self
    }

    /// How fetched key sets are read (default algorithm for RSA keys without `alg`, key
    /// count cap).
    #[must_use]
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.settings.jwks = options;
        self
    }
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
