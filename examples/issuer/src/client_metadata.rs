//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a `client_id`
//! that is an `https` URL names a JSON document of client metadata, which this server fetches
//! at the authorization endpoint: the way MCP clients identify themselves without registering.
//!
//! - The URL: `https`, a host and a path, no user name or password, no fragment, no `.` or `..`
//!   segment, already in normal form (the document's `client_id` is compared byte for byte,
//!   never normalized), at most 255 bytes.
//! - Server-side request forgery: the host is resolved here, and every address it resolves to
//!   must be a public one: no private, loopback (unless `CLIENT_METADATA_ALLOW_LOOPBACK=1`, for
//!   local tests), link-local, shared, unspecified, multicast, documentation or otherwise
//!   reserved address, IPv4 and IPv6 alike (IPv4-mapped, NAT64 and 6to4 addresses are judged
//!   by the IPv4 address they carry). The connection goes to a vetted address (with the name
//!   for TLS and `Host`), so a DNS answer that changes between check and connect is never used.
//! - The fetch: TLS with the system's roots plus the certificates of `CLIENT_METADATA_CA_FILE`;
//!   [`FETCH_TIMEOUT`] for all of it; no redirect is followed (a 3xx is a refusal); the answer
//!   must be `200`, `application/json`, at most [`MAX_DOCUMENT`] bytes; at most
//!   [`MAX_CONCURRENT_FETCHES`] at once.
//! - The document: a JSON object whose `client_id` is the URL exactly, with 1 to 10
//!   `redirect_uris` (`https`, or `http` to a loopback host), matched exactly (no loopback port
//!   leeway) at the authorization endpoint. No `client_secret`: such a client is public
//!   (`token_endpoint_auth_method` `none`, PKCE). A document with `jwks_uri` or `jwks`
//!   (`private_key_jwt`) is refused for now, clearly. `grant_types` and `response_types`, if
//!   any, only `authorization_code`, `refresh_token` and `code`.
//! - What the client may do comes from the clients file's `[registration]` table (scopes,
//!   resources, token lifetime), as for a registered client; without that table, metadata
//!   documents are not accepted. The document's `scope`, if any, narrows the default scope.
//!   The consent page names the client `<client_name> (<host>)`, or by its URL.
//! - Caching: a validated document is fresh for its `Cache-Control: max-age` (less `Age`),
//!   at most [`MAX_FRESH`]; `no-store`, `no-cache` or no `max-age`: refetched at the next
//!   authorization request. A refusal is never cached, and a document refused on a refetch is
//!   forgotten. The client stays known to the token endpoint (code redemption, refresh) for
//!   the refresh-token lifetime after its last use; a URL never seen at the authorization
//!   endpoint of this process is an unknown client there (`invalid_client`). At most
//!   [`MAX_CACHED`] clients; past that the least recently used goes.
//!
//! Every bad document or URL is an error page at the authorization endpoint: nothing is ever
//! redirected to a URI the document did not vouch for.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use http::header::{ACCEPT, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, Semaphore};

use super::Error;
use super::clients::{Client, MAX_REDIRECT_URIS, Registration, client_from_entry};
use super::config::Config;
use super::scope::{check_redirect_uri, parse_scope};
use super::server::Issuer;

/// Largest accepted document, in bytes (the draft suggests 5 kilobytes).
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// Everything of one fetch: resolving, connecting, TLS, the answer and its body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a document is fresh, whatever its `max-age`.
pub const MAX_FRESH: Duration = Duration::from_secs(86_400);
/// Most clients remembered.
pub const MAX_CACHED: usize = 1000;
/// Most fetches at once; past that the authorization request is answered 503.
pub const MAX_CONCURRENT_FETCHES: usize = 16;
/// Longest client identifier URL (the limit of every client id).
const MAX_URL: usize = 255;

/// Why a client identifier URL or its document is refused. The messages are shown on the
/// error page: they never quote the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    NotHttps,
    NotNormal,
    TooLong,
    Userinfo,
    Fragment,
    NoPath,
    DotSegment,
    PrivateAddress,
    NoAddress,
    Unreachable,
    Tls,
    Timeout,
    Redirect,
    Status,
    NotJson,
    TooLarge,
    Malformed,
    Mismatch,
    Secret,
    PrivateKeyJwt,
    AuthMethod,
    Grants,
    RedirectUris,
    Busy,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Refused::NotHttps => {
                "The client_id is a URL but not an https one: client metadata documents are \
                 fetched over https only."
            }
            Refused::NotNormal => {
                "The client_id URL is not in normal form (lower-case scheme and host, no \
                 default port, percent-encoding as needed)."
            }
            Refused::TooLong => "The client_id URL is longer than 255 bytes.",
            Refused::Userinfo => "The client_id URL must not carry a user name or password.",
            Refused::Fragment => "The client_id URL must not have a fragment.",
            Refused::NoPath => "The client_id URL must have a path.",
            Refused::DotSegment => "The client_id URL must not have . or .. path segments.",
            Refused::PrivateAddress => {
                "The host of the client_id URL is a private, loopback, link-local or reserved \
                 address: its metadata document is not fetched."
            }
            Refused::NoAddress => "The host of the client_id URL cannot be resolved.",
            Refused::Unreachable => "The client metadata document cannot be fetched.",
            Refused::Tls => {
                "The client metadata document cannot be fetched: its server is not trusted \
                 (TLS)."
            }
            Refused::Timeout => "The client metadata document took too long to fetch.",
            Refused::Redirect => {
                "The client_id URL answered with a redirect: redirects are not followed."
            }
            Refused::Status => "The client_id URL answered with an error status.",
            Refused::NotJson => "The client metadata document is not served as application/json.",
            Refused::TooLarge => "The client metadata document is larger than 5 KiB.",
            Refused::Malformed => {
                "The client metadata document is not a JSON object of client metadata."
            }
            Refused::Mismatch => {
                "The client metadata document names another client_id than its own URL."
            }
            Refused::Secret => "A client metadata document must not hold a client_secret.",
            Refused::PrivateKeyJwt => {
                "The client metadata document names a jwks_uri or jwks (private_key_jwt): this \
                 server accepts only public clients (token_endpoint_auth_method none, PKCE) \
                 from metadata documents."
            }
            Refused::AuthMethod => {
                "The client metadata document asks for a token_endpoint_auth_method other than \
                 none."
            }
            Refused::Grants => {
                "The client metadata document asks for grant or response types other than \
                 authorization_code, refresh_token and code."
            }
            Refused::RedirectUris => {
                "The client metadata document must list 1 to 10 redirect_uris, each https or \
                 http to a loopback host, without fragment."
            }
            Refused::Busy => "Too many client metadata documents are being fetched: try again.",
        }
    }

    /// For the log.
    fn reason(self) -> &'static str {
        match self {
            Refused::NotHttps => "not_https",
            Refused::NotNormal => "not_normalized",
            Refused::TooLong => "too_long",
            Refused::Userinfo => "userinfo",
            Refused::Fragment => "fragment",
            Refused::NoPath => "no_path",
            Refused::DotSegment => "dot_segment",
            Refused::PrivateAddress => "private_address",
            Refused::NoAddress => "unresolved",
            Refused::Unreachable => "unreachable",
            Refused::Tls => "tls",
            Refused::Timeout => "timeout",
            Refused::Redirect => "redirect",
            Refused::Status => "status",
            Refused::NotJson => "content_type",
            Refused::TooLarge => "too_large",
            Refused::Malformed => "malformed",
            Refused::Mismatch => "client_id_mismatch",
            Refused::Secret => "client_secret",
            Refused::PrivateKeyJwt => "private_key_jwt",
            Refused::AuthMethod => "auth_method",
            Refused::Grants => "grant_types",
            Refused::RedirectUris => "redirect_uris",
            Refused::Busy => "busy",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A failure that says nothing about the document (a cached client is kept).
    fn transient(self) -> bool {
        matches!(
            self,
            Refused::NoAddress
                | Refused::Unreachable
                | Refused::Timeout
                | Refused::Status
                | Refused::Busy
        )
    }
}

/// Whether `id` is meant as a URL: it starts with `https://` or `http://`, in any case.
pub fn is_url_client_id(id: &str) -> bool {
    let starts = |prefix: &str| {
        id.as_bytes()
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    starts("https://") || starts("http://")
}

/// The fetcher and the cache of one issuer.
pub struct ClientMetadata {
    policy: Registration,
    allow_loopback: bool,
    /// The certificates of `CLIENT_METADATA_CA_FILE`, added to the system's roots.
    extra_roots: Vec<CertificateDer<'static>>,
    /// Built at the first fetch (reading the system's roots takes a while).
    tls: OnceCell<Arc<rustls::ClientConfig>>,
    fetches: Semaphore,
    /// How long a client stays known to the token endpoint after its last use.
    keep: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for ClientMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadata")
            .field("allow_loopback", &self.allow_loopback)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

struct Cached {
    client: Arc<Client>,
    fresh_until: Instant,
    keep_until: Instant,
    used: Instant,
}

/// A checked URL: where to connect and what to ask for.
struct Target {
    addrs: Vec<SocketAddr>,
    server_name: ServerName<'static>,
    /// `Host`: the host and the port if not 443.
    authority: String,
    path_and_query: String,
}

struct Downloaded {
    body: Bytes,
    fresh_for: Duration,
}

/// The members of a client metadata document read here; others are ignored.
#[derive(Deserialize)]
struct Document {
    client_id: Option<String>,
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    client_secret: Option<serde_json::Value>,
    client_secret_expires_at: Option<serde_json::Value>,
    jwks_uri: Option<serde_json::Value>,
    jwks: Option<serde_json::Value>,
}

impl ClientMetadata {
    /// Metadata documents for the issuer of `config`, whose clients get what `registration`
    /// gives; `None` without a `[registration]` table. Reads `client_metadata_ca_file`.
    ///
    /// # Errors
    /// The CA file cannot be read, or holds no certificate.
    pub fn new(
        config: &Config,
        registration: Option<&Registration>,
    ) -> Result<Option<ClientMetadata>, Error> {
        // Read even when unused: a bad file is a configuration error either way.
        let extra_roots = match &config.client_metadata_ca_file {
            None => Vec::new(),
            Some(path) => read_ca_file(path)?,
        };
        let Some(policy) = registration else {
            return Ok(None);
        };
        if config.client_metadata_allow_loopback {
            tracing::warn!(
                "CLIENT_METADATA_ALLOW_LOOPBACK: client metadata documents may be fetched from \
                 loopback addresses (local tests only)"
            );
        }
        Ok(Some(ClientMetadata {
            policy: policy.clone(),
            allow_loopback: config.client_metadata_allow_loopback,
            extra_roots,
            tls: OnceCell::new(),
            fetches: Semaphore::new(MAX_CONCURRENT_FETCHES),
            keep: config.refresh_lifetime.max(config.code_lifetime),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// A client seen at the authorization endpoint and not forgotten yet (fresh or not): what
    /// the token endpoint knows. Each look-up keeps it for longer.
    pub fn known(&self, id: &str) -> Option<Arc<Client>> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get_mut(id)?;
        if entry.keep_until <= now {
            cache.remove(id);
            return None;
        }
        entry.used = now;
        entry.keep_until = entry.keep_until.max(later(now, self.keep));
        Some(Arc::clone(&entry.client))
    }

    fn fresh(&self, id: &str) -> Option<Arc<Client>> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get_mut(id).filter(|e| e.fresh_until > now)?;
        entry.used = now;
        entry.keep_until = entry.keep_until.max(later(now, self.keep));
        Some(Arc::clone(&entry.client))
    }

    fn remember(&self, id: &str, client: Arc<Client>, fresh_for: Duration) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.contains_key(id) && cache.len() >= MAX_CACHED {
            cache.retain(|_, e| e.keep_until > now);
            if cache.len() >= MAX_CACHED
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            id.to_owned(),
            Cached {
                client,
                fresh_until: later(now, fresh_for),
                keep_until: later(now, self.keep.max(fresh_for)),
                used: now,
            },
        );
    }

    fn forget(&self, id: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(id);
    }

    /// The client of the document at `url`: cached while fresh, else fetched and checked.
    async fn resolve(&self, url: &str) -> Result<Arc<Client>, Refused> {
        if let Some(client) = self.fresh(url) {
            return Ok(client);
        }
        let outcome: Result<(Arc<Client>, Duration), Refused> = async {
            let _permit = self.fetches.try_acquire().map_err(|_| Refused::Busy)?;
            let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
                let target = self.target(url).await?;
                self.download(&target).await
            })
            .await
            .map_err(|_| Refused::Timeout)??;
            let client = Arc::new(self.client_of(url, &fetched.body)?);
            Ok((client, fetched.fresh_for))
        }
        .await;
        match outcome {
            Ok((client, fresh_for)) => {
                self.remember(url, Arc::clone(&client), fresh_for);
                Ok(client)
            }
            Err(refused) => {
                if !refused.transient() {
                    self.forget(url);
                }
                Err(refused)
            }
        }
    }

    /// Checks the URL and its host's addresses.
    async fn target(&self, raw: &str) -> Result<Target, Refused> {
        let url = check_url(raw)?;
        let port = url.port_or_known_default().unwrap_or(443);
        let (addrs, server_name) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (vec![SocketAddr::from((ip, port))], IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => (vec![SocketAddr::from((ip, port))], IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|_| Refused::NoAddress)?
                    .collect();
                if addrs.is_empty() {
                    return Err(Refused::NoAddress);
                }
                let server_name =
                    ServerName::try_from(name.to_owned()).map_err(|_| Refused::NotNormal)?;
                self.vet(&addrs)?;
                return Ok(Target {
                    addrs,
                    server_name,
                    authority: authority(&url),
                    path_and_query: path_and_query(&url),
                });
            }
            None => return Err(Refused::NotHttps),
        };
        self.vet(&addrs)?;
        Ok(Target {
            addrs,
            server_name: ServerName::from(server_name),
            authority: authority(&url),
            path_and_query: path_and_query(&url),
        })
    }

    /// Every address must be a public one (a name with one private address among public ones
    /// is refused too).
    fn vet(&self, addrs: &[SocketAddr]) -> Result<(), Refused> {
        if addrs
            .iter()
            .all(|a| is_allowed_address(a.ip(), self.allow_loopback))
        {
            Ok(())
        } else {
            Err(Refused::PrivateAddress)
        }
    }

    async fn tls(&self) -> Result<Arc<rustls::ClientConfig>, Refused> {
        let extra = self.extra_roots.clone();
        self.tls
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || tls_config(extra))
                    .await
                    .map_err(|_| Refused::Tls)
            })
            .await
            .cloned()
    }

    /// One GET to the first vetted address that answers; the answer checked.
    async fn download(&self, target: &Target) -> Result<Downloaded, Refused> {
        let tls = self.tls().await?;
        let mut tcp = None;
        for addr in &target.addrs {
            if let Ok(stream) = TcpStream::connect(addr).await {
                tcp = Some(stream);
                break;
            }
        }
        let tcp = tcp.ok_or(Refused::Unreachable)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|_| Refused::Tls)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|_| Refused::Unreachable)?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let request = http::Request::get(target.path_and_query.as_str())
            .header(HOST, target.authority.as_str())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, "bearer-guard-issuer")
            .body(Empty::new())
            .map_err(|_| Refused::NotNormal)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| Refused::Unreachable)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(Refused::Redirect);
        }
        if status != StatusCode::OK {
            return Err(Refused::Status);
        }
        let headers = response.headers();
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Refused::NotJson);
        }
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_DOCUMENT as u64) {
            return Err(Refused::TooLarge);
        }
        let fresh_for = freshness(
            headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            headers.get(AGE).and_then(|v| v.to_str().ok()),
        );
        let body = Limited::new(response.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    Refused::TooLarge
                } else {
                    Refused::Unreachable
                }
            })?
            .to_bytes();
        drop(driver);
        Ok(Downloaded { body, fresh_for })
    }

    /// The client a document describes, under the registration policy.
    fn client_of(&self, url: &str, body: &[u8]) -> Result<Client, Refused> {
        let doc: Document = serde_json::from_slice(body).map_err(|_| Refused::Malformed)?;
        if doc.client_id.as_deref() != Some(url) {
            return Err(Refused::Mismatch);
        }
        if doc.client_secret.is_some() || doc.client_secret_expires_at.is_some() {
            return Err(Refused::Secret);
        }
        if doc.jwks_uri.is_some()
            || doc.jwks.is_some()
            || doc.token_endpoint_auth_method.as_deref() == Some("private_key_jwt")
        {
            return Err(Refused::PrivateKeyJwt);
        }
        if doc
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(Refused::AuthMethod);
        }
        let grants_ok = doc.grant_types.as_ref().is_none_or(|g| {
            g.iter()
                .all(|g| g == "authorization_code" || g == "refresh_token")
        });
        let responses_ok = doc
            .response_types
            .as_ref()
            .is_none_or(|r| r.iter().all(|r| r == "code"));
        if !grants_ok || !responses_ok {
            return Err(Refused::Grants);
        }
        let redirect_uris = doc.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty()
            || redirect_uris.len() > MAX_REDIRECT_URIS
            || redirect_uris.iter().any(|u| check_redirect_uri(u).is_err())
        {
            return Err(Refused::RedirectUris);
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        // The name is the client's say; the host is what vouches for it.
        let name = doc
            .client_name
            .map(|n| format!("{} ({host})", n.trim()))
            .filter(|n| n.len() <= 100 && !n.starts_with(" (") && !n.chars().any(char::is_control));
        let mut entry = self.policy.entry(url.to_owned(), name, redirect_uris);
        // The document's scope narrows the default to what the policy allows, if anything.
        let asked: Vec<String> = doc
            .scope
            .as_deref()
            .and_then(parse_scope)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| self.policy.scopes.contains(s))
            .collect();
        if !asked.is_empty() {
            entry.default_scope = Some(asked.join(" "));
        }
        client_from_entry(entry)
            .ok()
            .filter(Client::is_public)
            .ok_or(Refused::Malformed)
    }
}

impl Issuer {
    /// The authorization endpoint's check of a `client_id` that is a URL (a client of the
    /// file with that id comes first; any other id passes untouched): its document fetched (or
    /// cached) and checked, and `redirect_uri` one of its `redirect_uris` exactly. `Err`: the
    /// error page's status and message.
    pub(super) async fn client_metadata_check(
        &self,
        client_id: &str,
        redirect_uri: Option<&str>,
    ) -> Result<(), (StatusCode, &'static str)> {
        if self.0.clients.contains_key(client_id) || !is_url_client_id(client_id) {
            return Ok(());
        }
        let Some(metadata) = &self.0.client_metadata else {
            return Err((
                StatusCode::BAD_REQUEST,
                "This server does not accept client metadata documents: a client_id that is a \
                 URL is unknown here.",
            ));
        };
        let client = metadata.resolve(client_id).await.map_err(|refused| {
            tracing::warn!(
                target: "issuer::security",
                event = "client_metadata_refused",
                client_id,
                reason = refused.reason(),
                "client metadata document refused"
            );
            (refused.status(), refused.message())
        })?;
        if let Some(uri) = redirect_uri
            && !client.redirect_uris.iter().any(|r| r == uri)
        {
            tracing::warn!(target: "issuer::security", event = "redirect_uri_mismatch", client_id, "authorization request with a redirect_uri its client metadata document does not list");
            return Err((
                StatusCode::BAD_REQUEST,
                "redirect_uri is not listed in the client metadata document (the comparison is \
                 exact).",
            ));
        }
        Ok(())
    }
}

/// The URL rules of the draft (§3), and normal form.
fn check_url(raw: &str) -> Result<url::Url, Refused> {
    if !raw.starts_with("https://") {
        return Err(
            if raw
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
            {
                Refused::NotNormal
            } else {
                Refused::NotHttps
            },
        );
    }
    if raw.len() > MAX_URL {
        return Err(Refused::TooLong);
    }
    if raw.contains('#') {
        return Err(Refused::Fragment);
    }
    let authority_end = raw[8..].find(['/', '?']).map_or(raw.len(), |i| i + 8);
    if raw[8..authority_end].contains('@') {
        return Err(Refused::Userinfo);
    }
    if !raw[authority_end..].starts_with('/') {
        return Err(Refused::NoPath);
    }
    let path = raw[authority_end..].split('?').next().unwrap_or("");
    let dot = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err(Refused::DotSegment);
    }
    let url = url::Url::parse(raw).map_err(|_| Refused::NotNormal)?;
    if url.as_str() != raw || url.host().is_none() {
        return Err(Refused::NotNormal);
    }
    Ok(url)
}

fn authority(url: &url::Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// How long an answer is fresh: `max-age` less `Age`, at most [`MAX_FRESH`]; zero with
/// `no-store` or `no-cache`, or without `max-age`.
fn freshness(cache_control: Option<&str>, age: Option<&str>) -> Duration {
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "no-store" | "no-cache" => return Duration::ZERO,
            "max-age" => max_age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    Duration::from_secs(max_age.unwrap_or(0).saturating_sub(age)).min(MAX_FRESH)
}

/// `now + d`, or as late as can be (a configured lifetime may be absurdly long).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_FRESH))
        .unwrap_or(now)
}

/// Whether a document may be fetched from `ip`: public unicast only (loopback if allowed).
pub fn is_allowed_address(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => is_allowed_v4(v4, allow_loopback),
        IpAddr::V6(v6) => is_allowed_v6(v6, allow_loopback),
    }
}

fn is_allowed_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0
        || a == 10
        || a >= 224 // multicast, reserved, broadcast
        || (a == 100 && (64..128).contains(&b)) // shared (carrier-grade NAT)
        || (a == 169 && b == 254) // link-local (cloud metadata services)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF protocol assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113); // TEST-NET-3
    !refused
}

fn is_allowed_v6(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return is_allowed_v4(mapped, allow_loopback);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_allowed_v4(v4(s[6], s[7]), allow_loopback); // NAT64
    }
    if s[0] == 0x2002 {
        return is_allowed_v4(v4(s[1], s[2]), allow_loopback); // 6to4
    }
    // Global unicast (2000::/3) only: no unspecified, IPv4-compatible, unique local,
    // link-local, site-local or multicast address.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let refused = match s[0] {
        // Teredo (any IPv4 inside), benchmarking, ORCHID, documentation.
        0x2001 => {
            s[1] == 0 || (s[1] == 2 && s[2] == 0) || (0x10..0x30).contains(&s[1]) || s[1] == 0xdb8
        }
        // Documentation (3fff::/20).
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !refused
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "CLIENT_METADATA_CA_FILE: cannot read {}: {e}",
            path.display()
        )
    })?;
    let mut certs = Vec::new();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| format!("CLIENT_METADATA_CA_FILE {}: not PEM: {e}", path.display()))?;
        roots.add(cert.clone()).map_err(|e| {
            format!(
                "CLIENT_METADATA_CA_FILE {}: a bad certificate: {e}",
                path.display()
            )
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(format!(
            "CLIENT_METADATA_CA_FILE {}: no CERTIFICATE block",
            path.display()
        )
        .into());
    }
    Ok(certs)
}

/// rustls with aws-lc-rs, the system's roots and `extra`.
fn tls_config(extra: Vec<CertificateDer<'static>>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::warn!(
            errors = native.errors.len(),
            "some system root certificates could not be read"
        );
    }
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra);
    if roots.is_empty() {
        tracing::warn!("no root certificates: client metadata documents cannot be fetched");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("aws-lc-rs supports TLS 1.3")
        });
    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Ends the connection task when the fetch ends (or times out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn addresses() {
        for bad in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = bad.parse().expect(bad);
            assert!(!is_allowed_address(ip, false), "{bad}");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            let ip: IpAddr = good.parse().expect(good);
            assert!(is_allowed_address(ip, false), "{good}");
        }
        // The flag allows loopback, and nothing else.
        for ok in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_allowed_address(ok.parse().expect(ok), true), "{ok}");
        }
        for bad in ["10.0.0.1", "169.254.169.254", "fe80::1", "::"] {
            assert!(!is_allowed_address(bad.parse().expect(bad), true), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://app.example/client.json").is_ok());
        assert!(check_url("https://app.example:8443/c?x=1").is_ok());
        assert!(check_url("https://app.example/").is_ok());
        for (bad, why) in [
            ("http://app.example/c", Refused::NotHttps),
            ("HTTPS://app.example/c", Refused::NotNormal),
            ("https://App.example/c", Refused::NotNormal),
            ("https://app.example:443/c", Refused::NotNormal),
            ("https://user@app.example/c", Refused::Userinfo),
            ("https://u:p@app.example/c", Refused::Userinfo),
            ("https://app.example/c#x", Refused::Fragment),
            ("https://app.example", Refused::NoPath),
            ("https://app.example?x", Refused::NoPath),
            ("https://app.example/a/../c", Refused::DotSegment),
            ("https://app.example/./c", Refused::DotSegment),
            ("https://app.example/%2E%2E/c", Refused::DotSegment),
        ] {
            assert_eq!(check_url(bad).err(), Some(why), "{bad}");
        }
        let long = format!("https://app.example/{}", "a".repeat(250));
        assert_eq!(check_url(&long).err(), Some(Refused::TooLong));
    }

    #[test]
    fn cache_headers() {
        let s = Duration::from_secs;
        assert_eq!(freshness(Some("max-age=300"), None), s(300));
        assert_eq!(freshness(Some("public, max-age=300"), Some("100")), s(200));
        assert_eq!(freshness(Some("max-age=300, no-store"), None), s(0));
        assert_eq!(freshness(Some("no-cache"), None), s(0));
        assert_eq!(freshness(None, None), s(0));
        assert_eq!(freshness(Some("max-age=99999999"), None), MAX_FRESH);
        assert_eq!(freshness(Some("max-age=abc"), None), s(0));
    }
}
