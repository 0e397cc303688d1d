//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a `client_id`
//! that is an `https` URL names a JSON document of client metadata, which this server fetches
//! at the authorization endpoint: the way MCP clients identify themselves without registering.
//!
//! - The URL and the fetch: the rules of `fetch.rs` (https, a path, no user name, password,
//!   fragment or dot segment, normal form (the document's `client_id` is compared byte for
//!   byte, never normalized), at most 255 bytes; only public addresses (loopback with
//!   `CLIENT_METADATA_ALLOW_LOOPBACK=1`, for local tests); TLS with the system's roots and
//!   `CLIENT_METADATA_CA_FILE`; [`FETCH_TIMEOUT`](super::fetch::FETCH_TIMEOUT); no redirect followed; at most
//!   [`MAX_CONCURRENT_FETCHES`](super::fetch::MAX_CONCURRENT_FETCHES) fetches at once), and the answer `200`, `application/json`, at
//!   most [`MAX_DOCUMENT`] bytes.
//! - The document: a JSON object whose `client_id` is the URL exactly, with 1 to 10
//!   `redirect_uris` (`https`, or `http` to a loopback host), matched exactly (no loopback port
//!   leeway) at the authorization endpoint. No `client_secret`. Without `jwks_uri` or `jwks`,
//!   the client is public (`token_endpoint_auth_method` `none`, if given). With one of them
//!   (not both), it is a confidential client authenticating with `private_key_jwt` (RFC 7523)
//!   with those keys (`token_endpoint_auth_method` `private_key_jwt`, if given;
//!   `client_keys.rs`): the key set must be usable at the authorization endpoint already, and
//!   every token request needs an assertion signed by one of its keys. Either way the code
//!   flow needs PKCE, and such a client never gets `client_credentials` or token exchange.
//!   `grant_types` and `response_types`, if any, only `authorization_code`, `refresh_token`
//!   and `code`.
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Deserialize;

use super::client_keys::{AssertionKeys, KeysError, jwks_key_set};
use super::clients::{Client, MAX_REDIRECT_URIS, Registration, client_from_entry};
use super::config::Config;
use super::fetch::{FetchError, Fetcher, MAX_FRESH, Want, check_url};
use super::scope::{check_redirect_uri, parse_scope};
use super::server::Issuer;

/// Largest accepted document, in bytes (the draft suggests 5 kilobytes).
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// Most clients remembered.
pub const MAX_CACHED: usize = 1000;

const WANT: Want = Want {
    max_bytes: MAX_DOCUMENT,
    content_types: &["application/json"],
};

/// Why a client identifier URL or its document is refused. The messages are shown on the
/// error page: they never quote the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The URL, or its fetch (`fetch.rs`, shared with key sets).
    Fetch(FetchError),
    Malformed,
    Mismatch,
    Secret,
    AuthMethod,
    KeysAuthMethod,
    NoKeys,
    BothKeySets,
    JwksUri,
    Keys(KeysError),
    Grants,
    RedirectUris,
}

impl From<FetchError> for Refused {
    fn from(e: FetchError) -> Refused {
        Refused::Fetch(e)
    }
}

/// What the error page says of a client_id URL that is not fetched, or of its fetch.
fn fetch_message(e: FetchError) -> &'static str {
    match e {
        FetchError::NotHttps => {
            "The client_id is a URL but not an https one: client metadata documents are \
             fetched over https only."
        }
        FetchError::NotNormal => {
            "The client_id URL is not in normal form (lower-case scheme and host, no default \
             port, percent-encoding as needed)."
        }
        FetchError::TooLong => "The client_id URL is longer than 255 bytes.",
        FetchError::Userinfo => "The client_id URL must not carry a user name or password.",
        FetchError::Fragment => "The client_id URL must not have a fragment.",
        FetchError::NoPath => "The client_id URL must have a path.",
        FetchError::DotSegment => "The client_id URL must not have . or .. path segments.",
        FetchError::PrivateAddress => {
            "The host of the client_id URL is a private, loopback, link-local or reserved \
             address: its metadata document is not fetched."
        }
        FetchError::NoAddress => "The host of the client_id URL cannot be resolved.",
        FetchError::Unreachable => "The client metadata document cannot be fetched.",
        FetchError::Tls => {
            "The client metadata document cannot be fetched: its server is not trusted (TLS)."
        }
        FetchError::Timeout => "The client metadata document took too long to fetch.",
        FetchError::Redirect => {
            "The client_id URL answered with a redirect: redirects are not followed."
        }
        FetchError::Status => "The client_id URL answered with an error status.",
        FetchError::ContentType => {
            "The client metadata document is not served as application/json."
        }
        FetchError::TooLarge => "The client metadata document is larger than 5 KiB.",
        FetchError::Busy => "Too many client metadata documents are being fetched: try again.",
    }
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Refused::Fetch(e) => fetch_message(e),
            Refused::Malformed => {
                "The client metadata document is not a JSON object of client metadata."
            }
            Refused::Mismatch => {
                "The client metadata document names another client_id than its own URL."
            }
            Refused::Secret => "A client metadata document must not hold a client_secret.",
            Refused::AuthMethod => {
                "The client metadata document asks for a token_endpoint_auth_method other than \
                 none (a public client) or private_key_jwt (with a jwks_uri or jwks)."
            }
            Refused::KeysAuthMethod => {
                "The client metadata document names a jwks_uri or jwks, and a \
                 token_endpoint_auth_method other than private_key_jwt."
            }
            Refused::NoKeys => {
                "The client metadata document asks for private_key_jwt without a jwks_uri or \
                 jwks."
            }
            Refused::BothKeySets => {
                "The client metadata document names both a jwks_uri and a jwks: one of them \
                 only."
            }
            Refused::JwksUri => {
                "The client metadata document's jwks_uri must be an https URL in normal form, \
                 with a path, without user name, password, fragment or dot segments, at most \
                 255 bytes."
            }
            Refused::Keys(e) => e.message(),
            Refused::Grants => {
                "The client metadata document asks for grant or response types other than \
                 authorization_code, refresh_token and code."
            }
            Refused::RedirectUris => {
                "The client metadata document must list 1 to 10 redirect_uris, each https or \
                 http to a loopback host, without fragment."
            }
        }
    }

    /// For the log.
    fn reason(self) -> &'static str {
        match self {
            Refused::Fetch(e) => e.reason(),
            Refused::Malformed => "malformed",
            Refused::Mismatch => "client_id_mismatch",
            Refused::Secret => "client_secret",
            Refused::AuthMethod => "auth_method",
            Refused::KeysAuthMethod => "keys_auth_method",
            Refused::NoKeys => "private_key_jwt_without_keys",
            Refused::BothKeySets => "jwks_and_jwks_uri",
            Refused::JwksUri => "jwks_uri",
            Refused::Keys(_) => "client_keys",
            Refused::Grants => "grant_types",
            Refused::RedirectUris => "redirect_uris",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refused::Fetch(FetchError::Busy)
            | Refused::Keys(KeysError::Fetch(FetchError::Busy)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A failure that says nothing about the document (a cached client is kept).
    fn transient(self) -> bool {
        match self {
            Refused::Fetch(e) => e.transient(),
            Refused::Keys(e) => e.transient(),
            _ => false,
        }
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

/// The documents of one issuer: fetched by its [`Fetcher`], cached here.
pub struct ClientMetadata {
    policy: Registration,
    fetcher: Arc<Fetcher>,
    /// How long a client stays known to the token endpoint after its last use.
    keep: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for ClientMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadata")
            .field("fetcher", &self.fetcher)
            .finish_non_exhaustive()
    }
}

struct Cached {
    client: Arc<Client>,
    fresh_until: Instant,
    keep_until: Instant,
    used: Instant,
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
    /// Metadata documents for the issuer of `config`, fetched by `fetcher`, whose clients get
    /// what `registration` gives; `None` without a `[registration]` table.
    pub fn new(
        config: &Config,
        registration: Option<&Registration>,
        fetcher: Arc<Fetcher>,
    ) -> Option<ClientMetadata> {
        Some(ClientMetadata {
            policy: registration?.clone(),
            fetcher,
            keep: config.refresh_lifetime.max(config.code_lifetime),
            cache: Mutex::new(HashMap::new()),
        })
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
            let fetched = self.fetcher.get(url, WANT).await?;
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

    /// The client a document describes, under the registration policy.
    fn client_of(&self, url: &str, body: &[u8]) -> Result<Client, Refused> {
        let doc: Document = serde_json::from_slice(body).map_err(|_| Refused::Malformed)?;
        if doc.client_id.as_deref() != Some(url) {
            return Err(Refused::Mismatch);
        }
        if doc.client_secret.is_some() || doc.client_secret_expires_at.is_some() {
            return Err(Refused::Secret);
        }
        // The keys of a confidential (private_key_jwt) client, if any.
        let keys = match (doc.jwks_uri, doc.jwks) {
            (Some(_), Some(_)) => return Err(Refused::BothKeySets),
            (Some(uri), None) => {
                let uri = uri.as_str().ok_or(Refused::JwksUri)?;
                check_url(uri).map_err(|_| Refused::JwksUri)?;
                Some(AssertionKeys::JwksUri(uri.to_owned()))
            }
            (None, Some(jwks)) => Some(AssertionKeys::Inline(
                jwks_key_set(&jwks).map_err(Refused::Keys)?,
            )),
            (None, None) => None,
        };
        match (&keys, doc.token_endpoint_auth_method.as_deref()) {
            (Some(_), None | Some("private_key_jwt")) | (None, None | Some("none")) => {}
            (Some(_), Some(_)) => return Err(Refused::KeysAuthMethod),
            (None, Some("private_key_jwt")) => return Err(Refused::NoKeys),
            (None, Some(_)) => return Err(Refused::AuthMethod),
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
        // The policy makes a public client; the document's keys, if any, make it a
        // confidential one.
        let mut client = client_from_entry(entry)
            .ok()
            .filter(Client::is_public)
            .ok_or(Refused::Malformed)?;
        client.assertion_key = keys;
        client.metadata_document = true;
        Ok(client)
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
        // A confidential client's keys must be usable before it gets a code: fetched (or
        // cached) now, by the rules of the token endpoint.
        if let Some(AssertionKeys::JwksUri(uri)) = &client.assertion_key
            && let Err(e) = self.0.client_keys.get(uri, None).await
        {
            let refused = Refused::Keys(e);
            tracing::warn!(
                target: "issuer::security",
                event = "client_metadata_refused",
                client_id,
                reason = refused.reason(),
                keys = e.reason(),
                "client metadata document refused: its jwks_uri"
            );
            if !refused.transient() {
                metadata.forget(client_id);
            }
            return Err((refused.status(), refused.message()));
        }
        Ok(())
    }
}

/// `now + d`, or as late as can be (a configured lifetime may be absurdly long).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_FRESH))
        .unwrap_or(now)
}
