//! The OAuth 2.0 client-credentials token service of `examples/issuer.rs`, shared with
//! `examples/demo.rs` and `tests/issuer.rs`.
//!
//! - `POST /oauth/token`: `grant_type=client_credentials` (RFC 6749 §4.4), form-encoded, with
//!   `client_secret_basic` or `client_secret_post` (§2.3.1); also the JSON body
//!   `{"client_id","client_secret","scope","resource"}`. RFC 8707 `resource` (repeatable)
//!   becomes `aud`. Errors per §5.2 as JSON; every answer carries `Cache-Control: no-store`.
//! - `POST /oauth/revoke`: RFC 7009 token revocation, form-encoded `token` (and an optional
//!   `token_type_hint`, ignored: only access tokens exist here), with the same client
//!   authentication as the token endpoint. A client may revoke only its own tokens; the token
//!   must be one this issuer signed and not yet expired. Unknown, invalid, expired and other
//!   clients' tokens get the same empty 200 as a revoked one (§2.2: nothing is revealed), but
//!   nothing is written. The `jti` goes to the [`Revocations`] store until the token's `exp`;
//!   a store failure is a 503 `temporarily_unavailable` with `Retry-After`.
//! - `GET /.well-known/jwks.json`, and the RFC 8414 metadata at
//!   `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
//!
//! Tokens are RFC 9068 JWT access tokens (`typ: at+jwt`) signed with EdDSA (a key generated at
//! start), or with the Ed25519 / P-256 / P-384 PKCS#8 key of `SIGNING_KEY_FILE`.
//!
//! Client secrets exist only as argon2id hashes; verification runs on the blocking pool, a few
//! at a time, and an unknown client is checked against a dummy hash so that it costs the same
//! as a wrong secret and gets the same answer. Neither secrets nor tokens are ever logged.
//!
//! Revocations go to an `Arc<dyn Revocations>`: a [`MemoryRevocations`] of its own by default,
//! or a store given in [`Config::revocations`] / [`Issuer::with_revocations`] (a
//! `RedisRevocations` shared with the resource servers, or one in-process store shared with
//! the validator of a demo or test).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, Params};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bearer_guard::KeySet;
use bearer_guard::revocation::{MemoryRevocations, Revocations};
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use serde_json::{Value, json};

/// Boxed error of this module.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Path of the RFC 7009 revocation endpoint.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the RFC 8414 metadata document.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect discovery path, an alias of [`METADATA_PATH`].
pub const OIDC_METADATA_PATH: &str = "/.well-known/openid-configuration";
/// Largest accepted request body.
pub const MAX_BODY: usize = 16 * 1024;
/// Token lifetime of a client without `token_lifetime`, in seconds.
pub const DEFAULT_LIFETIME: u64 = 3600;
/// Longest configurable token lifetime, in seconds.
pub const MAX_LIFETIME: u64 = 86_400;

/// The challenge of a 401 `invalid_client` when Basic was used or no credentials were given.
const BASIC_CHALLENGE: &str = "Basic realm=\"token endpoint\", charset=\"UTF-8\"";
/// Argon2 parameter bounds accepted from a clients file (a typo must not make every request
/// allocate gigabytes).
const MAX_M_COST: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;
/// At most this many secret verifications (each `m_cost` KiB of memory) run at once.
const MAX_CONCURRENT_VERIFICATIONS: usize = 4;
/// Longest accepted client secret, in bytes.
const MAX_SECRET_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Configuration

/// Where the issuer's configuration comes from.
#[derive(Clone)]
pub struct Config {
    /// The `iss` of every token and the metadata's `issuer`, e.g. `http://127.0.0.1:8000`.
    pub issuer: String,
    /// The clients file, TOML (`.toml`) or JSON (`.json`).
    pub clients_file: PathBuf,
    /// A PKCS#8 PEM private key (Ed25519, P-256 or P-384); `None`: generate an Ed25519 key.
    pub signing_key_file: Option<PathBuf>,
    /// The `kid` of the signing key; `None`: its RFC 7638 thumbprint.
    pub signing_key_id: Option<String>,
    /// Where revoked tokens go; `None`: an in-memory store of this issuer's own.
    pub revocations: Option<Arc<dyn Revocations>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("clients_file", &self.clients_file)
            .field("signing_key_file", &self.signing_key_file)
            .field("signing_key_id", &self.signing_key_id)
            .field("revocations", &self.revocations.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Config {
    /// The shipped demo clients (`examples/clients.toml`) and a generated key.
    pub fn new(issuer: impl Into<String>) -> Config {
        Config {
            issuer: issuer.into(),
            clients_file: default_clients_file(),
            signing_key_file: None,
            signing_key_id: None,
            revocations: None,
        }
    }

    /// From the environment: `ISSUER` (default `http://<local_addr>`), `CLIENTS_FILE` (default
    /// `examples/clients.toml`), `SIGNING_KEY_FILE`, `SIGNING_KEY_ID`. The revocation store
    /// is left to the caller (connecting to Redis is async).
    pub fn from_env(local_addr: SocketAddr) -> Config {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Config {
            issuer: var("ISSUER").unwrap_or_else(|| format!("http://{local_addr}")),
            clients_file: var("CLIENTS_FILE").map_or_else(default_clients_file, PathBuf::from),
            signing_key_file: var("SIGNING_KEY_FILE").map(PathBuf::from),
            signing_key_id: var("SIGNING_KEY_ID"),
            revocations: None,
        }
    }
}

fn default_clients_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clients.toml")
}

/// Reads the clients file and the signing key (or generates one) and builds the issuer.
pub async fn load(config: &Config) -> Result<Issuer, Error> {
    let path = &config.clients_file;
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read clients file {}: {e}", path.display()))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("toml") => Format::Toml,
        Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
        _ => return Err(format!("{}: expected a .toml or .json file", path.display()).into()),
    };
    let clients = parse_clients(&text, format)
        .map_err(|e| format!("clients file {}: {e}", path.display()))?;

    let key = match &config.signing_key_file {
        Some(path) => {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read signing key {}: {e}", path.display()))?;
            SigningKey::from_pem(&pem, config.signing_key_id.clone())
                .map_err(|e| format!("signing key {}: {e}", path.display()))?
        }
        None => {
            let key = SigningKey::generate(config.signing_key_id.clone())?;
            tracing::info!(kid = %key.kid(), "generated an ephemeral Ed25519 signing key");
            key
        }
    };

    let issuer = config.issuer.clone();
    let revocations = config
        .revocations
        .clone()
        .unwrap_or_else(|| Arc::new(MemoryRevocations::new()));
    // Hashing the dummy secret takes one argon2 run: keep it off the async threads.
    tokio::task::spawn_blocking(move || Issuer::with_revocations(issuer, clients, key, revocations))
        .await?
}

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    client_id: String,
    secret_hash: String,
    #[serde(default)]
    scopes: Vec<String>,
    default_scope: Option<String>,
    resources: Vec<String>,
    token_lifetime: Option<u64>,
}

/// A registered client.
#[derive(Clone)]
pub struct Client {
    id: String,
    secret_hash: PasswordHash,
    scopes: Vec<String>,
    default_scope: Vec<String>,
    resources: Vec<String>,
    lifetime: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("default_scope", &self.default_scope)
            .field("resources", &self.resources)
            .field("lifetime", &self.lifetime)
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
}

/// Parses and checks a clients file.
pub fn parse_clients(text: &str, format: Format) -> Result<Vec<Client>, Error> {
    let file: ClientsFile = match format {
        Format::Toml => toml::from_str(text)?,
        Format::Json => serde_json::from_str(text)?,
    };
    if file.clients.is_empty() {
        return Err("no clients".into());
    }
    let mut clients: Vec<Client> = Vec::with_capacity(file.clients.len());
    for entry in file.clients {
        let id = entry.client_id;
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err("a client_id is empty or has control characters".into());
        }
        if clients.iter().any(|c| c.id == id) {
            return Err(format!("client {id:?} appears twice").into());
        }
        let client = client_from_entry(
            id.clone(),
            &entry.secret_hash,
            entry.scopes,
            entry.default_scope,
            entry.resources,
            entry.token_lifetime,
        )
        .map_err(|e| format!("client {id:?}: {e}"))?;
        clients.push(client);
    }
    Ok(clients)
}

fn client_from_entry(
    id: String,
    secret_hash: &str,
    scopes: Vec<String>,
    default_scope: Option<String>,
    resources: Vec<String>,
    lifetime: Option<u64>,
) -> Result<Client, Error> {
    // The parse error could quote the hash; it is not a secret, but keep it out anyway.
    let secret_hash =
        PasswordHash::new(secret_hash).map_err(|_| "secret_hash is not a PHC string")?;
    check_hash(&secret_hash)?;

    let mut allowed: Vec<String> = Vec::new();
    for scope in scopes {
        if !is_scope_token(&scope) {
            return Err(format!("scope {scope:?} is not a valid scope token").into());
        }
        if !allowed.contains(&scope) {
            allowed.push(scope);
        }
    }
    let default_scope = match default_scope {
        None => allowed.clone(),
        Some(s) => {
            let scope = parse_scope(&s).ok_or("default_scope is not a valid scope")?;
            if let Some(extra) = scope.iter().find(|s| !allowed.contains(s)) {
                return Err(format!("default_scope {extra:?} is not in scopes").into());
            }
            scope
        }
    };

    if resources.is_empty() {
        return Err("resources is empty (a token needs an audience)".into());
    }
    let mut allowed_resources: Vec<String> = Vec::new();
    for r in resources {
        if !is_resource_uri(&r) {
            return Err(format!("resource {r:?} is not an absolute URI without fragment").into());
        }
        if !allowed_resources.contains(&r) {
            allowed_resources.push(r);
        }
    }

    let lifetime = lifetime.unwrap_or(DEFAULT_LIFETIME);
    if !(1..=MAX_LIFETIME).contains(&lifetime) {
        return Err(format!("token_lifetime must be 1..={MAX_LIFETIME} seconds").into());
    }

    Ok(Client {
        id,
        secret_hash,
        scopes: allowed,
        default_scope,
        resources: allowed_resources,
        lifetime,
    })
}

/// Only argon2id, with salt and output, and bounded parameters.
fn check_hash(hash: &PasswordHash) -> Result<Params, Error> {
    if hash.algorithm.as_str() != "argon2id" {
        return Err("secret_hash must be an argon2id hash".into());
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("secret_hash has no salt or no hash".into());
    }
    let params = Params::try_from(hash).map_err(|_| "secret_hash has invalid parameters")?;
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST
    {
        return Err(format!(
            "secret_hash parameters too large (at most m={MAX_M_COST}, t={MAX_T_COST}, p={MAX_P_COST})"
        )
        .into());
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// Signing key

/// The issuer's private signing key and its public JWK.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 `PrivateKeyInfo` for Ed25519 up to the 32-byte seed (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SigningKey {
    /// A fresh Ed25519 key from the OS's random number generator.
    pub fn generate(kid: Option<String>) -> Result<SigningKey, Error> {
        let mut der = [0u8; 48];
        der[..16].copy_from_slice(&ED25519_PKCS8_PREFIX);
        getrandom::fill(&mut der[16..]).map_err(|e| format!("no randomness: {e}"))?;
        let key = EncodingKey::from_ed_der(&der);
        der.fill(0);
        SigningKey::ed25519(key, kid)
    }

    /// A PKCS#8 PEM private key: Ed25519 (EdDSA), P-256 (ES256) or P-384 (ES384).
    pub fn from_pem(pem: &[u8], kid: Option<String>) -> Result<SigningKey, Error> {
        if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            return SigningKey::ed25519(key, kid);
        }
        let key = EncodingKey::from_ec_pem(pem)
            .map_err(|_| "not a PKCS#8 PEM Ed25519, P-256 or P-384 private key")?;
        let ec = DEFAULT_PROVIDER
            .key_utils
            .ec_pub_components_from_private_key;
        let (alg, crv, x, y) = if let Ok((_, x, y)) = ec(key.as_bytes(), Algorithm::ES256) {
            (Algorithm::ES256, "P-256", x, y)
        } else if let Ok((_, x, y)) = ec(key.as_bytes(), Algorithm::ES384) {
            (Algorithm::ES384, "P-384", x, y)
        } else {
            return Err("unsupported EC key (P-256 or P-384 only)".into());
        };
        let public = json!({ "crv": crv, "kty": "EC", "x": B64.encode(x), "y": B64.encode(y) });
        SigningKey::finish(alg, key, public, kid)
    }

    fn ed25519(key: EncodingKey, kid: Option<String>) -> Result<SigningKey, Error> {
        let x = (DEFAULT_PROVIDER
            .key_utils
            .ed_pub_components_from_private_key)(
            key.as_bytes(), &EllipticCurve::Ed25519
        )
        .map_err(|_| "invalid Ed25519 key")?;
        let public = json!({ "crv": "Ed25519", "kty": "OKP", "x": B64.encode(x) });
        SigningKey::finish(Algorithm::EdDSA, key, public, kid)
    }

    fn finish(
        alg: Algorithm,
        key: EncodingKey,
        public: Value,
        kid: Option<String>,
    ) -> Result<SigningKey, Error> {
        let kid = match kid {
            Some(kid) => kid,
            // RFC 7638: serde_json orders object members, so `public` is already canonical.
            None => B64.encode(
                (DEFAULT_PROVIDER.key_utils.compute_digest)(
                    public.to_string().as_bytes(),
                    ThumbprintHash::SHA256,
                )
                .map_err(|e| format!("thumbprint: {e}"))?,
            ),
        };
        let mut jwk = public;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg_name(alg));
        jwk["use"] = json!("sig");
        let key = SigningKey { alg, kid, key, jwk };
        // Fail at start, not on the first request.
        key.sign(&json!({}))?;
        Ok(key)
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A JWS of `claims` with the header `{"alg","typ":"at+jwt","kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, Error> {
        let header = json!({ "alg": alg_name(self.alg), "typ": "at+jwt", "kid": self.kid });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        // The RustCrypto provider, called directly: jsonwebtoken's process-wide default panics
        // when both of its backends are enabled.
        let signer = (DEFAULT_PROVIDER.signer_factory)(&self.alg, &self.key)
            .map_err(|e| format!("signer: {e}"))?;
        let signature = signer
            .try_sign(input.as_bytes())
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        _ => "EdDSA",
    }
}

// ---------------------------------------------------------------------------------------------
// The issuer

/// The token service: clients, signing key, revocation store, and the documents it serves.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Issuer(Arc<Inner>);

struct Inner {
    issuer: String,
    clients: HashMap<String, Client>,
    dummy_hash: PasswordHash,
    key: SigningKey,
    /// The public part of `key`, to recognise this issuer's own tokens at revocation.
    own_keys: KeySet,
    revocations: Arc<dyn Revocations>,
    jwks: String,
    metadata: String,
    verify_slots: Arc<tokio::sync::Semaphore>,
    secret_checks: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("clients", &self.clients.values().collect::<Vec<_>>())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Builds the issuer with an in-memory revocation store of its own. Runs one argon2 hash
    /// (the dummy for unknown clients): call it from a blocking context when the parameters
    /// are expensive.
    pub fn new(
        issuer: impl Into<String>,
        clients: Vec<Client>,
        key: SigningKey,
    ) -> Result<Issuer, Error> {
        Issuer::with_revocations(issuer, clients, key, Arc::new(MemoryRevocations::new()))
    }

    /// Builds the issuer; `POST /oauth/revoke` writes to `revocations`. As [`Issuer::new`].
    pub fn with_revocations(
        issuer: impl Into<String>,
        clients: Vec<Client>,
        key: SigningKey,
        revocations: Arc<dyn Revocations>,
    ) -> Result<Issuer, Error> {
        let issuer = issuer.into();
        if !is_resource_uri(&issuer) || issuer.contains('?') {
            return Err(
                format!("issuer {issuer:?} must be a URL without query or fragment").into(),
            );
        }
        if !issuer.starts_with("https://") {
            tracing::warn!(%issuer, "issuer is not https: for local demos only");
        }
        let first = clients.first().ok_or("no clients")?;

        // An unknown client is verified against this hash, made with the first client's
        // parameters, so that it costs what a wrong secret costs.
        let params = check_hash(&first.secret_hash)?;
        if clients
            .iter()
            .any(|c| c.secret_hash.params != first.secret_hash.params)
        {
            tracing::warn!(
                "clients use different argon2 parameters: response times may tell unknown \
                 clients from known ones; rehash with the same parameters"
            );
        }
        let mut dummy = [0u8; 32];
        getrandom::fill(&mut dummy).map_err(|e| format!("no randomness: {e}"))?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
        let dummy_hash = {
            use argon2::password_hash::PasswordHasher as _;
            Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_with_salt(&dummy, &salt)
                .map_err(|e| format!("dummy hash: {e}"))?
        };

        let base = issuer.trim_end_matches('/');
        let mut scopes: Vec<&str> = clients
            .iter()
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": format!("{base}{TOKEN_PATH}"),
            "jwks_uri": format!("{base}{JWKS_PATH}"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "scopes_supported": scopes,
            "response_types_supported": [],
        })
        .to_string();
        let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
        let own_keys = KeySet::from_jwks_json(jwks.as_bytes())
            .map_err(|e| format!("the issuer's own JWKS: {e}"))?;

        let clients = clients.into_iter().map(|c| (c.id.clone(), c)).collect();
        Ok(Issuer(Arc::new(Inner {
            issuer,
            clients,
            dummy_hash,
            key,
            own_keys,
            revocations,
            jwks,
            metadata,
            verify_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
            secret_checks: AtomicU64::new(0),
        })))
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The JWKS document served at [`JWKS_PATH`].
    pub fn jwks_json(&self) -> &str {
        &self.0.jwks
    }

    /// The RFC 8414 metadata document.
    pub fn metadata_json(&self) -> &str {
        &self.0.metadata
    }

    /// The signing key, e.g. to mint deliberately bad tokens in a demo.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0.key
    }

    /// The store `POST /oauth/revoke` writes to.
    pub fn revocations(&self) -> &Arc<dyn Revocations> {
        &self.0.revocations
    }

    /// How many argon2 secret verifications have run (known and unknown clients alike).
    pub fn secret_checks(&self) -> u64 {
        self.0.secret_checks.load(Ordering::Relaxed)
    }

    /// Verifies the secret on the blocking pool; an unknown client is verified against the
    /// dummy hash and fails the same way.
    async fn authenticate(&self, client_id: &str, secret: Secret) -> Option<&Client> {
        let client = self.0.clients.get(client_id);
        let hash = client
            .map_or(&self.0.dummy_hash, |c| &c.secret_hash)
            .clone();
        let ok = match Arc::clone(&self.0.verify_slots).acquire_owned().await {
            Ok(permit) => {
                self.0.secret_checks.fetch_add(1, Ordering::Relaxed);
                // The permit moves into the blocking task: a client that hangs up does not
                // free its slot before the verification ends.
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    secret.0.len() <= MAX_SECRET_LEN
                        && Argon2::default()
                            .verify_password(secret.0.as_bytes(), &hash)
                            .is_ok()
                })
                .await
                .unwrap_or(false)
            }
            Err(_) => false,
        };
        client.filter(|_| ok)
    }

    /// Client authentication, shared by the token and revocation endpoints: the secret is
    /// verified, and a failure is logged (with the client id only when it is a known one) and
    /// answered 401 `invalid_client`, with a Basic challenge when Basic was used.
    async fn authenticate_client(
        &self,
        endpoint: Endpoint,
        method: AuthMethod,
        client_id: &str,
        secret: Secret,
    ) -> Result<&Client, OAuthError> {
        if let Some(client) = self.authenticate(client_id, secret).await {
            return Ok(client);
        }
        let known = self.0.clients.contains_key(client_id);
        tracing::info!(
            error = "invalid_client",
            client_id = known.then_some(client_id),
            reason = if known {
                "wrong_secret"
            } else {
                "unknown_client"
            },
            auth = method.name(),
            "{} request refused",
            endpoint.name()
        );
        Err(OAuthError::invalid_client(method == AuthMethod::Basic))
    }

    async fn token(&self, headers: &HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
        let mut request = TokenRequest::parse(headers, &body)?;
        let (method, client_id, secret) = credentials(headers, &mut request)?;

        match request.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only grant_type=client_credentials is supported",
                ));
            }
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
        }

        let client = self
            .authenticate_client(Endpoint::Token, method, &client_id, secret)
            .await?;

        let scope = grant_scope(client, request.scope.as_deref()).inspect_err(|e| {
            tracing::info!(client_id = %client.id, error = e.code, "token request refused");
        })?;
        let audience = grant_audience(client, &request.resources).inspect_err(|e| {
            tracing::info!(client_id = %client.id, error = e.code, "token request refused");
        })?;

        let issued = self.mint(client, &scope, &audience).map_err(|e| {
            tracing::error!(client_id = %client.id, error = %e, "cannot mint a token");
            OAuthError::server_error()
        })?;
        tracing::info!(
            client_id = %client.id,
            scope = %scope.join(" "),
            aud = ?audience,
            jti = %issued.jti,
            expires_in = client.lifetime,
            auth = method.name(),
            "access token issued"
        );
        let mut body = json!({
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": client.lifetime,
        });
        if !scope.is_empty() {
            body["scope"] = json!(scope.join(" "));
        }
        Ok(no_store_json(StatusCode::OK, &body))
    }

    fn mint(&self, client: &Client, scope: &[String], aud: &[String]) -> Result<Issued, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| format!("no randomness: {e}"))?;
        let jti = B64.encode(jti);
        let aud = match aud {
            [one] => json!(one),
            many => json!(many),
        };
        let mut claims = json!({
            "iss": self.0.issuer,
            "sub": client.id,
            "client_id": client.id,
            "aud": aud,
            "iat": now,
            "exp": now + client.lifetime,
            "jti": jti,
        });
        if !scope.is_empty() {
            claims["scope"] = json!(scope.join(" "));
        }
        let token = self.0.key.sign(&claims)?;
        Ok(Issued { token, jti })
    }
}

struct Issued {
    token: String,
    jti: String,
}

/// What revocation needs of a token this issuer signed.
#[derive(Deserialize)]
struct OwnToken {
    iss: String,
    client_id: String,
    jti: String,
    exp: i64,
}

impl Issuer {
    /// RFC 7009 §2.1: revokes the token if it is the authenticated client's own.
    async fn revoke(&self, headers: &HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
        let mut request = TokenRequest::parse_revocation(headers, &body)?;
        let (method, client_id, secret) = credentials(headers, &mut request)?;
        let token = request
            .token
            .take()
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let client = self
            .authenticate_client(Endpoint::Revoke, method, &client_id, secret)
            .await?;

        // §2.2: an invalid, expired or foreign token gets the same 200 as a revoked one, and
        // no reason; the log keeps it (with the authenticated client, never the token).
        let ignored = |reason: &'static str, message: &'static str| {
            tracing::info!(client_id = %client.id, reason, "{message}");
            Ok(revoked_response())
        };
        let Some(own) = self.own_token(&token.0) else {
            return ignored(
                "revoke_invalid_token",
                "revocation ignored: not a token of this issuer",
            );
        };
        if own.exp <= unix_now() {
            return ignored(
                "revoke_expired_token",
                "revocation ignored: the token has expired",
            );
        }
        if own.client_id != client.id {
            return ignored(
                "revoke_refused_foreign",
                "revocation refused: the token belongs to another client",
            );
        }
        match self
            .0
            .revocations
            .revoke(&self.0.issuer, &own.jti, own.exp)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    client_id = %client.id,
                    reason = "revoked",
                    jti = %own.jti,
                    auth = method.name(),
                    "access token revoked"
                );
                Ok(revoked_response())
            }
            Err(error) => {
                tracing::warn!(
                    client_id = %client.id,
                    reason = "revocation_unavailable",
                    %error,
                    "cannot revoke: the revocation store is unavailable"
                );
                Err(OAuthError::temporarily_unavailable())
            }
        }
    }

    /// The claims of a token this issuer signed (its own key and `iss`), else `None`.
    fn own_token(&self, token: &str) -> Option<OwnToken> {
        let payload = self.0.own_keys.verify_signature(token).ok()?;
        let own: OwnToken = serde_json::from_slice(&payload).ok()?;
        (own.iss == self.0.issuer).then_some(own)
    }
}

/// The answer to every revocation request that got past authentication (RFC 7009 §2.2).
fn revoked_response() -> Response {
    (
        StatusCode::OK,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
    )
        .into_response()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The client-authenticated endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token,
    Revoke,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Revoke => "revocation",
        }
    }
}

/// The client authentication methods of both endpoints.
const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

/// The router: token and revocation endpoints, JWKS, metadata; bodies capped at
/// [`MAX_BODY`].
pub fn app(issuer: Issuer) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(JWKS_PATH, get(jwks))
        .route(METADATA_PATH, get(metadata))
        .route(OIDC_METADATA_PATH, get(metadata))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(issuer)
}

async fn token(
    State(issuer): State<Issuer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match read_body(body) {
        Ok(body) => issuer.token(&headers, body).await,
        Err(error) => Err(error),
    }
    .unwrap_or_else(IntoResponse::into_response)
}

async fn revoke(
    State(issuer): State<Issuer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match read_body(body) {
        Ok(body) => issuer.revoke(&headers, body).await,
        Err(error) => Err(error),
    }
    .unwrap_or_else(IntoResponse::into_response)
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, OAuthError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            )
        } else {
            OAuthError::invalid_request("unreadable request body")
        }
    })
}

async fn jwks(State(issuer): State<Issuer>) -> Response {
    cacheable_json(issuer.jwks_json(), "application/jwk-set+json")
}

async fn metadata(State(issuer): State<Issuer>) -> Response {
    cacheable_json(issuer.metadata_json(), "application/json")
}

fn cacheable_json(body: &str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=60"),
        ],
        body.to_owned(),
    )
        .into_response()
}

fn no_store_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
            (PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Errors (RFC 6749 §5.2, RFC 8707 §2)

#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    challenge: bool,
    retry_after: Option<&'static str>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            challenge: false,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// One answer for every authentication failure: unknown client, wrong secret, missing or
    /// malformed credentials.
    fn invalid_client(challenge: bool) -> Self {
        OAuthError {
            challenge,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }

    fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// RFC 7009 §2.2.1 / RFC 6749 §4.1.2.1: the revocation store cannot be written now.
    fn temporarily_unavailable() -> Self {
        OAuthError {
            retry_after: Some("1"),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the token cannot be revoked now; retry later",
            )
        }
    }

    fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token could not be issued",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = no_store_json(self.status, &body);
        if self.challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

// ---------------------------------------------------------------------------------------------
// The request

/// A client secret: never printed.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A request to the token endpoint or (`token`, `token_type_hint`) the revocation endpoint.
#[derive(Debug, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    scope: Option<String>,
    resources: Vec<String>,
    /// RFC 7009 `token`: never printed, like a secret.
    token: Option<Secret>,
    token_type_hint: Option<String>,
}

#[derive(Deserialize)]
struct JsonTokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    resource: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl TokenRequest {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
        let mut content_types = headers.get_all(CONTENT_TYPE).iter();
        let content_type = match (content_types.next(), content_types.next()) {
            (Some(v), None) => v.to_str().unwrap_or(""),
            _ => return Err(OAuthError::invalid_request("one Content-Type is required")),
        };
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            TokenRequest::from_form(body, Endpoint::Token)
        } else if media_type.eq_ignore_ascii_case("application/json") {
            TokenRequest::from_json(body)
        } else {
            Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded or application/json",
            ))
        }
    }

    /// RFC 7009 §2.1: form-encoded only.
    fn parse_revocation(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
        let mut content_types = headers.get_all(CONTENT_TYPE).iter();
        let is_form = match (content_types.next(), content_types.next()) {
            (Some(v), None) => v
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded"),
            _ => false,
        };
        if !is_form {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        TokenRequest::from_form(body, Endpoint::Revoke)
    }

    fn from_form(body: &[u8], endpoint: Endpoint) -> Result<TokenRequest, OAuthError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
        let mut request = TokenRequest::default();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(name), Some(value)) = (form_decode(name), form_decode(value)) else {
                return Err(OAuthError::invalid_request("malformed form encoding"));
            };
            // RFC 6749 §3.1: a parameter without a value is as if omitted.
            if value.is_empty() {
                continue;
            }
            let slot = match name.as_str() {
                "grant_type" => &mut request.grant_type,
                "client_id" => &mut request.client_id,
                "scope" => &mut request.scope,
                "resource" => {
                    request.resources.push(value);
                    continue;
                }
                "client_secret" => {
                    if request.client_secret.replace(Secret(value)).is_some() {
                        return Err(repeated("client_secret"));
                    }
                    continue;
                }
                "token" if endpoint == Endpoint::Revoke => {
                    if request.token.replace(Secret(value)).is_some() {
                        return Err(repeated("token"));
                    }
                    continue;
                }
                "token_type_hint" if endpoint == Endpoint::Revoke => &mut request.token_type_hint,
                // RFC 6749 §3.2: unrecognised parameters are ignored.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(repeated(&name));
            }
        }
        Ok(request)
    }

    fn from_json(body: &[u8]) -> Result<TokenRequest, OAuthError> {
        // serde_json refuses duplicate members of the struct, and wrong types.
        let json: JsonTokenRequest = serde_json::from_slice(body).map_err(|_| {
            OAuthError::invalid_request("the body must be a JSON object of string members")
        })?;
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(TokenRequest {
            // The JSON form is used by simple clients that leave the grant type out.
            grant_type: Some(
                present(json.grant_type).unwrap_or_else(|| "client_credentials".to_owned()),
            ),
            client_id: present(json.client_id),
            client_secret: present(json.client_secret).map(Secret),
            scope: present(json.scope),
            token: None,
            token_type_hint: None,
            resources: match json.resource {
                None => Vec::new(),
                Some(OneOrMany::One(r)) => vec![r],
                Some(OneOrMany::Many(r)) => r,
            }
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect(),
        })
    }
}

fn repeated(name: &str) -> OAuthError {
    let name = if name.len() <= 32 {
        name
    } else {
        "a parameter"
    };
    OAuthError::invalid_request(format!("{name} is repeated"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMethod {
    Basic,
    Post,
}

impl AuthMethod {
    fn name(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
        }
    }
}

/// The client's credentials, from exactly one authentication method. Takes the secret out of
/// the request.
fn credentials(
    headers: &HeaderMap,
    request: &mut TokenRequest,
) -> Result<(AuthMethod, String, Secret), OAuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let header = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value),
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
    };
    let body_secret = request.client_secret.take();

    let Some(header) = header else {
        return match (request.client_id.clone(), body_secret) {
            (Some(id), Some(secret)) => Ok((AuthMethod::Post, id, secret)),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
            // No client authentication at all (or a public client): say how to authenticate.
            (_, None) => Err(OAuthError::invalid_client(true)),
        };
    };

    // RFC 6749 §2.3.1: one method per request.
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: Authorization header or client_secret",
        ));
    }
    let (id, secret) = parse_basic(header).ok_or(OAuthError::invalid_client(true))?;
    if request
        .client_id
        .as_ref()
        .is_some_and(|body_id| *body_id != id)
    {
        return Err(OAuthError::invalid_request(
            "client_id differs from the Authorization header's",
        ));
    }
    Ok((AuthMethod::Basic, id, secret))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 7617, RFC 6749 §2.3.1).
fn parse_basic(header: &HeaderValue) -> Option<(String, Secret)> {
    let header = header.to_str().ok()?;
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim_matches(' ')).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, Secret(secret)))
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, `%XX` a
/// byte; the result must be UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Scope and resource

/// `scope-token = 1*NQCHAR` (RFC 6749 §3.3).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// `scope = scope-token *( SP scope-token )`, duplicates dropped.
fn parse_scope(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ') {
        if !is_scope_token(token) {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// The requested scope if the client may have all of it, else the client's default.
fn grant_scope(client: &Client, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.default_scope.clone());
    };
    let scope =
        parse_scope(requested).ok_or_else(|| OAuthError::invalid_scope("malformed scope"))?;
    match scope.iter().find(|s| !client.scopes.contains(s)) {
        // A valid scope token: safe to quote, and the client is authenticated.
        Some(denied) => Err(OAuthError::invalid_scope(format!(
            "scope {denied:?} is not allowed for this client"
        ))),
        None => Ok(scope),
    }
}

/// RFC 8707: an absolute URI without fragment (printable ASCII, a scheme, something after it).
fn is_resource_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.contains('#')
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The requested resources if the client may have all of them, else the default (first).
fn grant_audience(client: &Client, requested: &[String]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        // `resources` is never empty (checked when the clients file is read).
        return Ok(client.resources.iter().take(1).cloned().collect());
    }
    let mut audience: Vec<String> = Vec::new();
    for resource in requested {
        if !is_resource_uri(resource) {
            return Err(OAuthError::invalid_target(
                "resource must be an absolute URI without fragment",
            ));
        }
        if !client.resources.contains(resource) {
            return Err(OAuthError::invalid_target(
                "resource is not allowed for this client",
            ));
        }
        if !audience.contains(resource) {
            audience.push(resource.clone());
        }
    }
    Ok(audience)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%3A%2b").as_deref(), Some("a b c:+"));
        assert_eq!(form_decode("%"), None);
        assert_eq!(form_decode("%+1"), None);
        assert_eq!(form_decode("%ff"), None);
        assert_eq!(form_decode("caf%C3%A9").as_deref(), Some("café"));
    }

    #[test]
    fn scopes_and_resources() {
        assert!(parse_scope("read write read").is_some_and(|s| s == ["read", "write"]));
        assert!(parse_scope("read  write").is_none());
        assert!(parse_scope("re\"ad").is_none());
        assert!(is_resource_uri("https://api.example/x"));
        assert!(is_resource_uri("urn:example:api"));
        assert!(!is_resource_uri("https://api.example/#frag"));
        assert!(!is_resource_uri("/relative"));
        assert!(!is_resource_uri("1http://x"));
    }
}
