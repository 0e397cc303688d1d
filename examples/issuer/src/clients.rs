//! The clients file (`examples/clients.toml`): confidential clients (argon2id secret hashes,
//! or `private_key_jwt` with a public `jwk` or a `jwks_uri`), public clients with redirect
//! URIs, resource servers that may introspect, and the policy for clients that register
//! themselves (RFC 7591).

use argon2::Params;
use argon2::password_hash::phc::PasswordHash;
use serde::{Deserialize, Serialize};

use super::Error;
use super::client_keys::{AssertionKeys, jwk_key_set};
use super::fetch::check_url;
use super::scope::{check_redirect_uri, is_resource_uri, is_scope_token, parse_scope};

/// Token lifetime of a client without `token_lifetime`, in seconds.
pub const DEFAULT_LIFETIME: u64 = 3600;
/// Longest configurable token lifetime, in seconds.
pub const MAX_LIFETIME: u64 = 86_400;
/// Argon2 parameter bounds accepted from a file (a typo must not make every request allocate
/// gigabytes).
const MAX_M_COST: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;
/// The prefix of the ids of self-registered clients; clients of the file may not use it.
pub const REGISTERED_PREFIX: &str = "dyn-";
/// Most redirect URIs one client may have.
pub const MAX_REDIRECT_URIS: usize = 10;

/// Format of a clients file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML: `[[clients]]` tables.
    Toml,
    /// JSON: `{"clients": [...]}`.
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    clients: Vec<ClientEntry>,
    registration: Option<RegistrationEntry>,
}

/// One `[[clients]]` table, and what a registered client is stored as.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_scope: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspect_for: Vec<String>,
    /// Token exchange (RFC 8693): the audiences of the subject tokens this client may
    /// exchange for tokens to its own `resources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange_from: Vec<String>,
    /// `private_key_jwt` (RFC 7523): the client's public key, a JWK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    /// `private_key_jwt` (RFC 7523): where the client publishes its public keys, a JWK Set
    /// (`client_keys.rs`); instead of `jwk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationEntry {
    scopes: Vec<String>,
    default_scope: Option<String>,
    resources: Vec<String>,
    token_lifetime: Option<u64>,
}

/// What a self-registered client gets: these scopes and resources, and nothing else.
#[derive(Debug, Clone)]
pub struct Registration {
    pub scopes: Vec<String>,
    pub default_scope: Option<String>,
    pub resources: Vec<String>,
    pub token_lifetime: Option<u64>,
}

/// The clients of a file, and its registration policy (`None`: registration is closed).
#[derive(Debug, Clone)]
pub struct Clients {
    pub list: Vec<Client>,
    pub registration: Option<Registration>,
}

/// A registered client.
#[derive(Clone)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    /// `None`: a public client (`token_endpoint_auth_method = "none"`).
    pub secret_hash: Option<PasswordHash>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub default_scope: Vec<String>,
    pub resources: Vec<String>,
    pub lifetime: u64,
    /// The audiences whose tokens this client (a resource server) may introspect.
    pub introspect_for: Vec<String>,
    /// Token exchange (RFC 8693): the audiences of the subject tokens it may exchange.
    pub exchange_from: Vec<String>,
    /// `private_key_jwt` (RFC 7523): the client's public keys, each algorithm pinned, or
    /// where to fetch them.
    pub assertion_key: Option<AssertionKeys>,
    /// A client of a Client ID Metadata Document: only the grants of a user
    /// (`authorization_code`, `refresh_token`), whatever its keys.
    pub metadata_document: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("public", &self.is_public())
            .field("redirect_uris", &self.redirect_uris)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("lifetime", &self.lifetime)
            .field("introspect_for", &self.introspect_for)
            .field("exchange_from", &self.exchange_from)
            .field("assertion_key", &self.assertion_key)
            .field("metadata_document", &self.metadata_document)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The scopes the client may request.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The resources (audiences) the client may request; the first is the default.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// Token lifetime in seconds.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    /// A public client has no secret and no key.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none() && self.assertion_key.is_none()
    }

    /// `client_credentials`: confidential clients with an audience, not of a metadata
    /// document (whoever publishes one must not get tokens without a user).
    pub fn may_use_client_credentials(&self) -> bool {
        !self.is_public() && !self.resources.is_empty() && !self.metadata_document
    }

    /// `authorization_code` and `refresh_token`: clients with redirect URIs and an audience.
    pub fn may_use_authorization_code(&self) -> bool {
        !self.redirect_uris.is_empty() && !self.resources.is_empty()
    }

    /// Token exchange (RFC 8693): a confidential client with its own resources and audiences
    /// it may exchange from.
    pub fn may_exchange(&self) -> bool {
        !self.is_public()
            && !self.metadata_document
            && !self.resources.is_empty()
            && !self.exchange_from.is_empty()
    }

    /// Whether a subject token for `aud` may be exchanged by this client.
    pub fn may_exchange_from(&self, has_audience: impl Fn(&str) -> bool) -> bool {
        self.exchange_from.iter().any(|a| has_audience(a))
    }

    /// The display name of the consent page.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Parses and checks a clients file.
pub fn parse_clients(text: &str, format: Format) -> Result<Clients, Error> {
    let file: ClientsFile = match format {
        Format::Toml => toml::from_str(text)?,
        Format::Json => serde_json::from_str(text)?,
    };
    if file.clients.is_empty() {
        return Err("no clients".into());
    }
    let mut list: Vec<Client> = Vec::with_capacity(file.clients.len());
    for entry in file.clients {
        let id = entry.client_id.clone();
        if list.iter().any(|c| c.id == id) {
            return Err(format!("client {id:?} appears twice").into());
        }
        if id.starts_with(REGISTERED_PREFIX) {
            return Err(
                format!("client {id:?}: {REGISTERED_PREFIX} is for registered clients").into(),
            );
        }
        list.push(client_from_entry(entry).map_err(|e| format!("client {id:?}: {e}"))?);
    }
    let registration = match file.registration {
        None => None,
        Some(r) => {
            let policy = Registration {
                scopes: r.scopes,
                default_scope: r.default_scope,
                resources: r.resources,
                token_lifetime: r.token_lifetime,
            };
            // The policy must make valid clients.
            client_from_entry(policy.entry(
                "check".into(),
                None,
                vec!["https://app.example/cb".into()],
            ))
            .map_err(|e| format!("registration: {e}"))?;
            Some(policy)
        }
    };
    Ok(Clients { list, registration })
}

impl Registration {
    /// The entry of a client registered under this policy.
    pub fn entry(
        &self,
        client_id: String,
        client_name: Option<String>,
        redirect_uris: Vec<String>,
    ) -> ClientEntry {
        ClientEntry {
            client_id,
            client_name,
            secret_hash: None,
            token_endpoint_auth_method: Some("none".into()),
            redirect_uris,
            scopes: self.scopes.clone(),
            default_scope: self.default_scope.clone(),
            resources: self.resources.clone(),
            token_lifetime: self.token_lifetime,
            introspect_for: Vec::new(),
            exchange_from: Vec::new(),
            jwk: None,
            jwks_uri: None,
        }
    }
}

/// Checks one client.
pub fn client_from_entry(entry: ClientEntry) -> Result<Client, Error> {
    let id = entry.client_id;
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err("client_id is empty, too long or has control characters".into());
    }
    if let Some(name) = &entry.client_name
        && (name.is_empty() || name.len() > 100 || name.chars().any(char::is_control))
    {
        return Err("client_name is empty, too long or has control characters".into());
    }
    let private_key_jwt = entry.token_endpoint_auth_method.as_deref() == Some("private_key_jwt");
    let assertion_key = match (entry.jwk, entry.jwks_uri) {
        _ if private_key_jwt && entry.secret_hash.is_some() => {
            return Err("private_key_jwt takes no secret_hash".into());
        }
        (Some(_), Some(_)) => {
            return Err("private_key_jwt takes a `jwk` or a `jwks_uri`, not both".into());
        }
        (None, None) if private_key_jwt => {
            return Err("private_key_jwt needs a public `jwk` or a `jwks_uri`".into());
        }
        (Some(_), None) | (None, Some(_)) if !private_key_jwt => {
            return Err(
                "a `jwk` or `jwks_uri` is for token_endpoint_auth_method = \"private_key_jwt\""
                    .into(),
            );
        }
        (Some(jwk), None) => Some(AssertionKeys::Inline(
            jwk_key_set(jwk).map_err(|e| format!("`jwk` {e}"))?,
        )),
        (None, Some(uri)) => {
            // The same rules as for every URL the issuer fetches (`fetch.rs`).
            check_url(&uri).map_err(|e| format!("`jwks_uri` {uri:?}: {e}"))?;
            Some(AssertionKeys::JwksUri(uri))
        }
        (None, None) => None,
    };
    let secret_hash = match (
        entry.token_endpoint_auth_method.as_deref(),
        entry.secret_hash,
    ) {
        (Some("private_key_jwt"), None) => None,
        (Some("none"), None) => None,
        (Some("none"), Some(_)) => return Err("a public client (none) has no secret_hash".into()),
        (None | Some("client_secret_basic" | "client_secret_post"), Some(hash)) => {
            // The parse error could quote the hash; it is not a secret, but keep it out.
            let hash = PasswordHash::new(&hash).map_err(|_| "secret_hash is not a PHC string")?;
            check_hash(&hash)?;
            Some(hash)
        }
        (None | Some("client_secret_basic" | "client_secret_post"), None) => {
            return Err(
                "secret_hash is missing (or set token_endpoint_auth_method = \"none\")".into(),
            );
        }
        (Some(other), _) => {
            return Err(format!("unknown token_endpoint_auth_method {other:?}").into());
        }
    };

    if entry.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(format!("more than {MAX_REDIRECT_URIS} redirect_uris").into());
    }
    for uri in &entry.redirect_uris {
        check_redirect_uri(uri).map_err(|why| format!("redirect URI {uri:?}: {why}"))?;
    }

    let mut scopes: Vec<String> = Vec::new();
    for scope in entry.scopes {
        if !is_scope_token(&scope) {
            return Err(format!("scope {scope:?} is not a valid scope token").into());
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let default_scope = match entry.default_scope {
        None => scopes.clone(),
        Some(s) => {
            let scope = parse_scope(&s).ok_or("default_scope is not a valid scope")?;
            if let Some(extra) = scope.iter().find(|s| !scopes.contains(s)) {
                return Err(format!("default_scope {extra:?} is not in scopes").into());
            }
            scope
        }
    };
    let resources = uris(entry.resources, "resource")?;
    let introspect_for = uris(entry.introspect_for, "introspect_for")?;
    let exchange_from = uris(entry.exchange_from, "exchange_from")?;

    let lifetime = entry.token_lifetime.unwrap_or(DEFAULT_LIFETIME);
    if !(1..=MAX_LIFETIME).contains(&lifetime) {
        return Err(format!("token_lifetime must be 1..={MAX_LIFETIME} seconds").into());
    }
    let client = Client {
        id,
        name: entry.client_name,
        secret_hash,
        redirect_uris: entry.redirect_uris,
        scopes,
        default_scope,
        resources,
        lifetime,
        introspect_for,
        exchange_from,
        assertion_key,
        metadata_document: false,
    };
    if !client.exchange_from.is_empty() && (client.is_public() || client.resources.is_empty()) {
        return Err("exchange_from needs a confidential client with resources".into());
    }
    if client.is_public() && client.redirect_uris.is_empty() {
        return Err("a public client needs redirect_uris".into());
    }
    if !client.may_use_client_credentials()
        && !client.may_use_authorization_code()
        && client.introspect_for.is_empty()
    {
        return Err(
            "the client can do nothing: it needs resources (a token needs an audience), \
                    or introspect_for"
                .into(),
        );
    }
    Ok(client)
}

fn uris(list: Vec<String>, what: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for r in list {
        if !is_resource_uri(&r) {
            return Err(format!("{what} {r:?} is not an absolute URI without fragment").into());
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Only argon2id, with salt and output, and bounded parameters.
pub fn check_hash(hash: &PasswordHash) -> Result<Params, Error> {
    if hash.algorithm.as_str() != "argon2id" {
        return Err("the hash must be an argon2id hash".into());
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("the hash has no salt or no output".into());
    }
    let params = Params::try_from(hash).map_err(|_| "the hash has invalid parameters")?;
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST
    {
        return Err(format!(
            "hash parameters too large (at most m={MAX_M_COST}, t={MAX_T_COST}, p={MAX_P_COST})"
        )
        .into());
    }
    Ok(params)
}
