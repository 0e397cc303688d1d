//! The issuer's https GETs of URLs that clients name: Client ID Metadata Documents
//! (`client_metadata.rs`) and the key sets of `jwks_uri` (`client_keys.rs`). One [`Fetcher`]
//! per issuer, with the same protections against server-side request forgery for both:
//!
//! - The URL: `https`, a host and a path, no user name or password, no fragment, no `.` or `..`
//!   segment, already in normal form (a client id URL is compared byte for byte, never
//!   normalized), at most [`MAX_URL`] bytes.
//! - The host is resolved here, and every address it resolves to must be a public one: no
//!   private, loopback (unless `CLIENT_METADATA_ALLOW_LOOPBACK=1`, for local tests),
//!   link-local, shared, unspecified, multicast, documentation or otherwise reserved address,
//!   IPv4 and IPv6 alike (IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address
//!   they carry). The connection goes to a vetted address (with the name for TLS and `Host`),
//!   so a DNS answer that changes between check and connect is never used.
//! - The fetch: TLS with the system's roots plus the certificates of `CLIENT_METADATA_CA_FILE`;
//!   [`FETCH_TIMEOUT`] for all of it; no redirect is followed (a 3xx is a refusal); the answer
//!   must be `200`, of a content type the caller expects, at most the caller's size (checked
//!   on `Content-Length` and again while reading); at most [`MAX_CONCURRENT_FETCHES`] at once
//!   (past that: [`FetchError::Busy`], at once).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use http::header::{ACCEPT, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, Semaphore};

use super::Error;
use super::config::Config;

/// Everything of one fetch: resolving, connecting, TLS, the answer and its body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an answer is fresh, whatever its `max-age`.
pub const MAX_FRESH: Duration = Duration::from_secs(86_400);
/// Most fetches at once, metadata documents and key sets together.
pub const MAX_CONCURRENT_FETCHES: usize = 16;
/// Longest URL fetched (the limit of every client id).
pub const MAX_URL: usize = 255;

/// Why a URL is not fetched, or its answer not taken. Carries nothing of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// Not `https://`.
    NotHttps,
    /// Not in normal form (upper-case scheme or host, default port, ...).
    NotNormal,
    /// Longer than [`MAX_URL`].
    TooLong,
    /// A user name or password.
    Userinfo,
    /// A fragment.
    Fragment,
    /// No path.
    NoPath,
    /// A `.` or `..` path segment.
    DotSegment,
    /// The host is (or resolves to) an address that is not a public one.
    PrivateAddress,
    /// The host does not resolve.
    NoAddress,
    /// No connection, or the connection failed.
    Unreachable,
    /// The server is not trusted, or TLS failed.
    Tls,
    /// Longer than [`FETCH_TIMEOUT`].
    Timeout,
    /// A 3xx answer (never followed).
    Redirect,
    /// Another status than 200.
    Status,
    /// Another content type than expected.
    ContentType,
    /// Larger than expected.
    TooLarge,
    /// [`MAX_CONCURRENT_FETCHES`] already running.
    Busy,
}

impl FetchError {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            FetchError::NotHttps => "not_https",
            FetchError::NotNormal => "not_normalized",
            FetchError::TooLong => "too_long",
            FetchError::Userinfo => "userinfo",
            FetchError::Fragment => "fragment",
            FetchError::NoPath => "no_path",
            FetchError::DotSegment => "dot_segment",
            FetchError::PrivateAddress => "private_address",
            FetchError::NoAddress => "unresolved",
            FetchError::Unreachable => "unreachable",
            FetchError::Tls => "tls",
            FetchError::Timeout => "timeout",
            FetchError::Redirect => "redirect",
            FetchError::Status => "status",
            FetchError::ContentType => "content_type",
            FetchError::TooLarge => "too_large",
            FetchError::Busy => "busy",
        }
    }

    /// A failure of the moment, that says nothing about what is at the URL.
    pub fn transient(self) -> bool {
        matches!(
            self,
            FetchError::NoAddress
                | FetchError::Unreachable
                | FetchError::Timeout
                | FetchError::Status
                | FetchError::Busy
        )
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FetchError::NotHttps => "not an https URL",
            FetchError::NotNormal => {
                "not in normal form (lower-case scheme and host, no default port, \
                 percent-encoding as needed)"
            }
            FetchError::TooLong => "longer than 255 bytes",
            FetchError::Userinfo => "carries a user name or password",
            FetchError::Fragment => "has a fragment",
            FetchError::NoPath => "has no path",
            FetchError::DotSegment => "has . or .. path segments",
            FetchError::PrivateAddress => {
                "its host is a private, loopback, link-local or reserved address"
            }
            FetchError::NoAddress => "its host cannot be resolved",
            FetchError::Unreachable => "cannot be fetched",
            FetchError::Tls => "its server is not trusted (TLS)",
            FetchError::Timeout => "took too long to fetch",
            FetchError::Redirect => "answered with a redirect (not followed)",
            FetchError::Status => "answered with an error status",
            FetchError::ContentType => "answered with an unexpected content type",
            FetchError::TooLarge => "answered with too large a body",
            FetchError::Busy => "too many fetches at once",
        })
    }
}

impl std::error::Error for FetchError {}

/// What the caller takes: at most `max_bytes` of one of `content_types`.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// The largest body taken.
    pub max_bytes: usize,
    /// The media types taken (parameters such as `charset` are ignored).
    pub content_types: &'static [&'static str],
}

/// A body, and how long it is fresh ([`freshness`]).
pub struct Fetched {
    pub body: Bytes,
    pub fresh_for: Duration,
}

/// The https fetcher of one issuer.
pub struct Fetcher {
    allow_loopback: bool,
    /// The certificates of `CLIENT_METADATA_CA_FILE`, added to the system's roots.
    extra_roots: Vec<CertificateDer<'static>>,
    /// Built at the first fetch (reading the system's roots takes a while).
    tls: OnceCell<Arc<rustls::ClientConfig>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow_loopback", &self.allow_loopback)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

/// A checked URL: where to connect and what to ask for.
struct Target {
    addrs: Vec<SocketAddr>,
    server_name: ServerName<'static>,
    /// `Host`: the host and the port if not 443.
    authority: String,
    path_and_query: String,
}

impl Fetcher {
    /// The fetcher of `config`: `client_metadata_allow_loopback`, `client_metadata_ca_file`.
    ///
    /// # Errors
    /// The CA file cannot be read, or holds no certificate.
    pub fn new(config: &Config) -> Result<Fetcher, Error> {
        let extra_roots = match &config.client_metadata_ca_file {
            None => Vec::new(),
            Some(path) => read_ca_file(path)?,
        };
        if config.client_metadata_allow_loopback {
            tracing::warn!(
                "CLIENT_METADATA_ALLOW_LOOPBACK: client metadata documents and jwks_uri key \
                 sets may be fetched from loopback addresses (local tests only)"
            );
        }
        Ok(Fetcher {
            allow_loopback: config.client_metadata_allow_loopback,
            extra_roots,
            tls: OnceCell::new(),
            permits: Semaphore::new(MAX_CONCURRENT_FETCHES),
        })
    }

    /// GET `url`: the URL checked, its addresses vetted, the answer checked against `want`.
    pub async fn get(&self, url: &str, want: Want) -> Result<Fetched, FetchError> {
        let url = check_url(url)?;
        let _permit = self.permits.try_acquire().map_err(|_| FetchError::Busy)?;
        tokio::time::timeout(FETCH_TIMEOUT, async {
            let target = self.target(&url).await?;
            self.download(&target, want).await
        })
        .await
        .map_err(|_| FetchError::Timeout)?
    }

    /// The host's addresses, vetted.
    async fn target(&self, url: &url::Url) -> Result<Target, FetchError> {
        let port = url.port_or_known_default().unwrap_or(443);
        let (addrs, server_name) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (
                vec![SocketAddr::from((ip, port))],
                ServerName::from(IpAddr::V4(ip)),
            ),
            Some(url::Host::Ipv6(ip)) => (
                vec![SocketAddr::from((ip, port))],
                ServerName::from(IpAddr::V6(ip)),
            ),
            Some(url::Host::Domain(name)) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|_| FetchError::NoAddress)?
                    .collect();
                if addrs.is_empty() {
                    return Err(FetchError::NoAddress);
                }
                let server_name =
                    ServerName::try_from(name.to_owned()).map_err(|_| FetchError::NotNormal)?;
                (addrs, server_name)
            }
            None => return Err(FetchError::NotHttps),
        };
        self.vet(&addrs)?;
        Ok(Target {
            addrs,
            server_name,
            authority: authority(url),
            path_and_query: path_and_query(url),
        })
    }

    /// Every address must be a public one (a name with one private address among public ones
    /// is refused too).
    fn vet(&self, addrs: &[SocketAddr]) -> Result<(), FetchError> {
        if addrs
            .iter()
            .all(|a| is_allowed_address(a.ip(), self.allow_loopback))
        {
            Ok(())
        } else {
            Err(FetchError::PrivateAddress)
        }
    }

    async fn tls(&self) -> Result<Arc<rustls::ClientConfig>, FetchError> {
        let extra = self.extra_roots.clone();
        self.tls
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || tls_config(extra))
                    .await
                    .map_err(|_| FetchError::Tls)
            })
            .await
            .cloned()
    }

    /// One GET to the first vetted address that answers; the answer checked.
    async fn download(&self, target: &Target, want: Want) -> Result<Fetched, FetchError> {
        let tls = self.tls().await?;
        let mut tcp = None;
        for addr in &target.addrs {
            if let Ok(stream) = TcpStream::connect(addr).await {
                tcp = Some(stream);
                break;
            }
        }
        let tcp = tcp.ok_or(FetchError::Unreachable)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|_| FetchError::Tls)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|_| FetchError::Unreachable)?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let request = http::Request::get(target.path_and_query.as_str())
            .header(HOST, target.authority.as_str())
            .header(ACCEPT, want.content_types.join(", "))
            .header(USER_AGENT, "bearer-guard-issuer")
            .body(Empty::new())
            .map_err(|_| FetchError::NotNormal)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| FetchError::Unreachable)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status);
        }
        let headers = response.headers();
        let media_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if !want
            .content_types
            .iter()
            .any(|t| media_type.eq_ignore_ascii_case(t))
        {
            return Err(FetchError::ContentType);
        }
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > want.max_bytes as u64) {
            return Err(FetchError::TooLarge);
        }
        let fresh_for = freshness(
            headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            headers.get(AGE).and_then(|v| v.to_str().ok()),
        );
        let body = Limited::new(response.into_body(), want.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    FetchError::TooLarge
                } else {
                    FetchError::Unreachable
                }
            })?
            .to_bytes();
        drop(driver);
        Ok(Fetched { body, fresh_for })
    }
}

/// The URL rules of the Client ID Metadata Document draft (§3), and normal form: for every
/// URL fetched.
pub fn check_url(raw: &str) -> Result<url::Url, FetchError> {
    if !raw.starts_with("https://") {
        return Err(
            if raw
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
            {
                FetchError::NotNormal
            } else {
                FetchError::NotHttps
            },
        );
    }
    if raw.len() > MAX_URL {
        return Err(FetchError::TooLong);
    }
    if raw.contains('#') {
        return Err(FetchError::Fragment);
    }
    let authority_end = raw[8..].find(['/', '?']).map_or(raw.len(), |i| i + 8);
    if raw[8..authority_end].contains('@') {
        return Err(FetchError::Userinfo);
    }
    if !raw[authority_end..].starts_with('/') {
        return Err(FetchError::NoPath);
    }
    let path = raw[authority_end..].split('?').next().unwrap_or("");
    let dot = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err(FetchError::DotSegment);
    }
    let url = url::Url::parse(raw).map_err(|_| FetchError::NotNormal)?;
    if url.as_str() != raw || url.host().is_none() {
        return Err(FetchError::NotNormal);
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

/// Whether a URL may be fetched from `ip`: public unicast only (loopback if allowed).
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
        tracing::warn!(
            "no root certificates: client metadata documents and key sets cannot be fetched"
        );
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
            ("http://app.example/c", FetchError::NotHttps),
            ("HTTPS://app.example/c", FetchError::NotNormal),
            ("https://App.example/c", FetchError::NotNormal),
            ("https://app.example:443/c", FetchError::NotNormal),
            ("https://user@app.example/c", FetchError::Userinfo),
            ("https://u:p@app.example/c", FetchError::Userinfo),
            ("https://app.example/c#x", FetchError::Fragment),
            ("https://app.example", FetchError::NoPath),
            ("https://app.example?x", FetchError::NoPath),
            ("https://app.example/a/../c", FetchError::DotSegment),
            ("https://app.example/./c", FetchError::DotSegment),
            ("https://app.example/%2E%2E/c", FetchError::DotSegment),
        ] {
            assert_eq!(check_url(bad).err(), Some(why), "{bad}");
        }
        let long = format!("https://app.example/{}", "a".repeat(250));
        assert_eq!(check_url(&long).err(), Some(FetchError::TooLong));
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
