//! The issuer: its clients and users, signing keys, stores and limits, client authentication,
//! and the documents it serves (JWKS, RFC 8414 metadata).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, Params};
use bearer_guard::revocation::{MemoryRevocations, Revocations};
use bearer_guard::{Profile, Validator};
use serde_json::json;

use super::client_keys::{AssertionKeys, ClientKeys};
use super::client_metadata::ClientMetadata;
use super::clients::{
    Client, Clients, REGISTERED_PREFIX, Registration, check_hash, client_from_entry,
};
use super::config::{Config, TokenFormat};
use super::dpop::TokenEndpointDpop;
use super::error::OAuthError;
use super::fetch::Fetcher;
use super::form::{AuthMethod, Credentials, Secret};
use super::limits::{Gate, Refused};
use super::signing::{OwnKeys, Reloaded, SigningKey, SigningKeys};
use super::store::{Store, StoreError};
use super::users::User;
use super::{
    AUTHORIZE_PATH, Error, INTROSPECT_PATH, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH,
};

/// The authorization server: cheap to clone.
#[derive(Clone, Debug)]
pub struct Issuer(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub issuer: String,
    pub clients: HashMap<String, Arc<Client>>,
    pub registration: Option<Registration>,
    pub users: HashMap<String, User>,
    /// Unknown clients and users are verified against these, so that they cost what a wrong
    /// secret or password costs.
    pub client_dummy: PasswordHash,
    pub user_dummy: PasswordHash,
    /// Every published key and the one that signs (`key.sign(..)`); the JWKS.
    pub key: SigningKeys,
    /// The published keys, to recognise this issuer's own tokens.
    pub own_keys: OwnKeys,
    pub revocations: Arc<dyn Revocations>,
    pub store: Store,
    /// Prefix of every store key: the issuer, so that issuers may share one Redis.
    pub prefix: String,
    pub gate: Gate,
    pub token_format: TokenFormat,
    pub code_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// DPoP proofs of token requests.
    pub dpop: TokenEndpointDpop,
    pub metadata: String,
    /// Clients identified by a metadata document (`client_metadata.rs`); `None`: not accepted.
    pub client_metadata: Option<ClientMetadata>,
    /// The key sets of `private_key_jwt` clients with a `jwks_uri` (`client_keys.rs`).
    pub client_keys: ClientKeys,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("clients", &self.clients.values().collect::<Vec<_>>())
            .field("users", &self.users.len())
            .field("key", &self.key)
            .field("store", &self.store)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer of `clients` without users, everything in memory. Runs argon2 (the dummy
    /// hashes): call it from a blocking context when the parameters are expensive.
    pub fn new(
        issuer: impl Into<String>,
        clients: Clients,
        key: SigningKey,
    ) -> Result<Issuer, Error> {
        Issuer::build(&Config::new(issuer), clients, HashMap::new(), key)
    }

    /// As [`Issuer::new`], revoking into `revocations`.
    pub fn with_revocations(
        issuer: impl Into<String>,
        clients: Clients,
        key: SigningKey,
        revocations: Arc<dyn Revocations>,
    ) -> Result<Issuer, Error> {
        let mut config = Config::new(issuer);
        config.revocations = Some(revocations);
        Issuer::build(&config, clients, HashMap::new(), key)
    }

    /// The issuer of `config` (its files already read: `clients`, `users`, `keys`: a
    /// [`SigningKey`] or [`SigningKeys`]).
    pub fn build(
        config: &Config,
        clients: Clients,
        users: HashMap<String, User>,
        keys: impl Into<SigningKeys>,
    ) -> Result<Issuer, Error> {
        let key: SigningKeys = keys.into();
        let issuer = config.issuer.clone();
        if !super::scope::is_resource_uri(&issuer) || issuer.contains('?') {
            return Err(
                format!("issuer {issuer:?} must be a URL without query or fragment").into(),
            );
        }
        if !issuer.starts_with("https://") {
            tracing::warn!(%issuer, "issuer is not https: for local demos only");
        }
        // The dummies use the parameters of a real hash (clients' for clients, users' for
        // users; one kind's for the other when a file has none).
        let client_params = clients.list.iter().find_map(|c| c.secret_hash.as_ref());
        let user_params = users.values().next().map(|u| &u.password_hash);
        let params =
            |hash: Option<&PasswordHash>| hash.map_or_else(|| Ok(Params::default()), check_hash);
        let client_params = params(client_params.or(user_params))?;
        let user_params = params(user_params)
            .ok()
            .filter(|_| !users.is_empty())
            .unwrap_or_else(|| client_params.clone());
        if clients
            .list
            .iter()
            .filter_map(|c| c.secret_hash.as_ref())
            .any(|h| Params::try_from(h).ok().as_ref() != Some(&client_params))
        {
            tracing::warn!(
                "clients use different argon2 parameters: response times may tell unknown \
                 clients from known ones; rehash with the same parameters"
            );
        }

        let dpop = TokenEndpointDpop::new(&issuer, config.dpop_nonces, config.dpop_replay.clone())?;
        let base = issuer.trim_end_matches('/');
        let mut scopes: Vec<&str> = clients
            .list
            .iter()
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .chain(
                clients
                    .registration
                    .iter()
                    .flat_map(|r| r.scopes.iter().map(String::as_str)),
            )
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut metadata = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
            "token_endpoint": format!("{base}{TOKEN_PATH}"),
            "jwks_uri": format!("{base}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "client_credentials",
                "refresh_token",
                super::exchange::TOKEN_EXCHANGE,
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
            "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": scopes,
            "dpop_signing_alg_values_supported": dpop.algorithms(),
            "acr_values_supported": super::authorize::ACR_VALUES_SUPPORTED,
        });
        // One fetcher (`fetch.rs`) for metadata documents and key sets.
        let fetcher = Arc::new(Fetcher::new(config)?);
        let client_metadata =
            ClientMetadata::new(config, clients.registration.as_ref(), Arc::clone(&fetcher));
        let client_keys = ClientKeys::new(fetcher);
        if client_metadata.is_some() {
            metadata["client_id_metadata_document_supported"] = json!(true);
        }
        if clients.registration.is_some() {
            metadata["registration_endpoint"] = json!(format!("{base}{REGISTER_PATH}"));
        }
        let own_keys = key.own_keys();

        Ok(Issuer(Arc::new(Inner {
            prefix: format!("bearer-guard:issuer:{issuer}:"),
            issuer,
            clients: clients
                .list
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
            registration: clients.registration,
            users,
            client_dummy: dummy_hash(client_params)?,
            user_dummy: dummy_hash(user_params)?,
            key,
            own_keys,
            revocations: config
                .revocations
                .clone()
                .unwrap_or_else(|| Arc::new(MemoryRevocations::new())),
            store: config.store.clone().unwrap_or_else(Store::memory),
            gate: Gate::new(config.limits.clone()),
            token_format: config.token_format,
            code_lifetime: config.code_lifetime,
            refresh_lifetime: config.refresh_lifetime,
            dpop,
            metadata: metadata.to_string(),
            client_metadata,
            client_keys,
        })))
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The JWKS document served at [`JWKS_PATH`]: every published key.
    pub fn jwks_json(&self) -> Arc<str> {
        self.0.key.jwks_json()
    }

    /// The RFC 8414 metadata document.
    pub fn metadata_json(&self) -> &str {
        &self.0.metadata
    }

    /// The key that signs now, e.g. to mint deliberately bad tokens in a demo.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.0.key.signer()
    }

    /// Every published key and the one that signs.
    pub fn signing_keys(&self) -> &SigningKeys {
        &self.0.key
    }

    /// Reads the signing-key directory again ([`SigningKeys::reload`]; what `SIGHUP` does to
    /// the `issuer` binary): new keys are published at once and the newest signs after the
    /// publish-ahead time; keys whose file is gone leave the JWKS. On a refusal (a malformed
    /// file, an empty directory) nothing changes, and the refusal is logged.
    ///
    /// # Errors
    /// The keys do not come from a directory, or the directory was refused.
    pub async fn reload_signing_keys(&self) -> Result<Reloaded, Error> {
        let keys = self.0.key.clone();
        tokio::task::spawn_blocking(move || keys.reload()).await?
    }

    /// The store revocations go to.
    pub fn revocations(&self) -> &Arc<dyn Revocations> {
        &self.0.revocations
    }

    /// How many argon2 verifications have run (clients and users, known or not).
    pub fn secret_checks(&self) -> u64 {
        self.0.gate.checks()
    }

    /// How many verifications wait for a slot now.
    pub fn queued_verifications(&self) -> usize {
        self.0.gate.queued()
    }

    /// Holds every verification slot until the guard drops (tests: a full queue on demand).
    pub fn hold_verification_slots(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.gate.hold_all_slots()
    }

    /// A store key: `<prefix><kind>:<id>`.
    pub(super) fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.0.prefix)
    }

    /// A client of the file, or one that registered itself.
    pub(super) async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.0.clients.get(id) {
            return Ok(Some(Arc::clone(client)));
        }
        // A client of a metadata document, seen at the authorization endpoint.
        if let Some(client) = self.0.client_metadata.as_ref().and_then(|m| m.known(id)) {
            return Ok(Some(client));
        }
        // Only ids of the registered form reach the store: the answer for any other unknown
        // id never depends on the store (whose failure would tell them apart).
        if self.0.registration.is_none() || !id.starts_with(REGISTERED_PREFIX) {
            return Ok(None);
        }
        let Some(json) = self.0.store.get(&self.key("client", id)).await? else {
            return Ok(None);
        };
        let client = serde_json::from_str(&json)
            .ok()
            .and_then(|entry| client_from_entry(entry).ok())
            .filter(|c: &Client| c.is_public() && c.id == id);
        Ok(client.map(Arc::new))
    }

    /// Client authentication, shared by every client-facing endpoint. A secret is verified
    /// (an unknown client against the dummy hash: same cost, same answer); no secret is only
    /// good for a public client. A failure is logged with the client id only when it is a
    /// known one, and answered 401 `invalid_client` with a challenge.
    pub(super) async fn authenticate(
        &self,
        endpoint: &'static str,
        peer: &str,
        credentials: Credentials,
    ) -> Result<Arc<Client>, OAuthError> {
        let Credentials {
            method,
            client_id,
            secret,
        } = credentials;
        if method == AuthMethod::PrivateKeyJwt {
            return self
                .authenticate_assertion(endpoint, client_id, secret)
                .await;
        }
        let client = self.client(&client_id).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot look a client up");
            OAuthError::unavailable("the client store is unavailable")
        })?;
        let reason = match (secret, &client) {
            (None, Some(c)) if c.is_public() => return Ok(Arc::clone(c)),
            (None, _) => "no_secret",
            (Some(secret), _) => {
                let hash = client
                    .as_ref()
                    .and_then(|c| c.secret_hash.clone())
                    .unwrap_or_else(|| self.0.client_dummy.clone());
                // Budget keys stay small: no valid id is longer than 255 bytes.
                let name = if client_id.len() <= 255 {
                    format!("client:{client_id}")
                } else {
                    "client:(too long)".to_owned()
                };
                match self.0.gate.verify(peer, &name, hash, secret).await {
                    Ok(true) => match client.clone().filter(|c| !c.is_public()) {
                        Some(client) => return Ok(client),
                        None => "unknown_client",
                    },
                    Ok(false) if client.is_some() => "wrong_secret",
                    Ok(false) => "unknown_client",
                    Err(refused) => return Err(self.refused(refused, endpoint, peer)),
                }
            }
        };
        let known = client.is_some();
        tracing::info!(
            target: "issuer::security",
            event = "client_auth_failure",
            error = "invalid_client",
            client_id = known.then_some(client_id.as_str()),
            reason,
            auth = method.name(),
            "{endpoint} request refused"
        );
        Err(OAuthError::invalid_client())
    }

    /// `private_key_jwt` (RFC 7523 §2.2, §3; draft-ietf-oauth-rfc7523bis): the assertion
    /// must be signed by a key the client registered (its `jwk`, its metadata document's
    /// `jwks`, or the set at its registered `jwks_uri`, fetched and cached by
    /// `client_keys.rs`: a `kid` the set lacks refetches it at most once per 10 s), with the
    /// algorithm pinned to that key (never `none`, HMAC, or a key or URL named by the
    /// assertion itself); `iss` and `sub` the client id; `aud` the issuer identifier, one
    /// string, exactly (the bis draft's rule: an assertion for the token endpoint's URL, or
    /// for another server, is refused); `exp` in the future and at most 5 minutes away (60 s
    /// leeway); a `jti` never seen before for this client until the assertion expires (in
    /// the issuer's store, Redis included). The client is the `client_id` parameter, or else
    /// the assertion's `sub`. Every failure is 401 `invalid_client`, a key set that cannot be
    /// fetched included.
    async fn authenticate_assertion(
        &self,
        endpoint: &'static str,
        client_id: String,
        assertion: Option<Secret>,
    ) -> Result<Arc<Client>, OAuthError> {
        let fail = |reason: &'static str, known: Option<&str>| {
            tracing::info!(
                target: "issuer::security",
                event = "client_auth_failure",
                error = "invalid_client",
                client_id = known,
                reason,
                auth = AuthMethod::PrivateKeyJwt.name(),
                "{endpoint} request refused"
            );
            OAuthError::invalid_client()
        };
        let Some(assertion) = assertion else {
            return Err(fail("no_assertion", None));
        };
        let id = if client_id.is_empty() {
            unverified(&assertion.0, 1)
                .and_then(|c| c["sub"].as_str().map(str::to_owned))
                .unwrap_or_default()
        } else {
            client_id
        };
        let client = self.client(&id).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot look a client up");
            OAuthError::unavailable("the client store is unavailable")
        })?;
        let Some(client) = client else {
            return Err(fail("unknown_client", None));
        };
        let Some(keys) = client.assertion_key.clone() else {
            return Err(fail("no_registered_key", Some(&id)));
        };
        let header = unverified(&assertion.0, 0);
        // An access token is no client assertion, whoever signed it (explicit typing).
        if header.as_ref().is_some_and(|h| h["typ"] == "at+jwt") {
            return Err(fail("assertion_typ", Some(&id)));
        }
        let keys = match keys {
            AssertionKeys::Inline(keys) => keys,
            AssertionKeys::JwksUri(uri) => {
                // The header's `kid` only picks among the client's keys (an unknown one may
                // refetch the set, rate-limited); its `jku`, `x5u` or `jwk` are never used.
                let kid = header.as_ref().and_then(|h| h["kid"].as_str());
                match self.0.client_keys.get(&uri, kid).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::warn!(
                            target: "issuer::security",
                            event = "client_keys_unavailable",
                            client_id = %id,
                            jwks_uri = %uri,
                            reason = e.reason(),
                            "the client's key set cannot be used"
                        );
                        return Err(fail("jwks_uri_unavailable", Some(&id)));
                    }
                }
            }
        };
        let validator = Validator::builder()
            .claims::<serde_json::Value>()
            .issuer(id.clone())
            .audience(self.issuer())
            .keys(keys)
            .profile(Profile::Jwt)
            .max_token_lifetime(MAX_ASSERTION_LIFETIME)
            .without_token_cache()
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot check client assertions");
                OAuthError::server_error()
            })?;
        let Ok(verified) = validator.validate(&assertion.0) else {
            return Err(fail("invalid_assertion", Some(&id)));
        };
        let claims: &serde_json::Value = &verified;
        if claims["sub"].as_str() != Some(id.as_str()) {
            return Err(fail("assertion_sub", Some(&id)));
        }
        if claims["aud"].as_str() != Some(self.issuer()) {
            return Err(fail("assertion_aud_not_issuer", Some(&id)));
        }
        let jti = claims["jti"].as_str().unwrap_or("");
        if jti.is_empty() || jti.len() > 255 {
            return Err(fail("assertion_jti", Some(&id)));
        }
        // Remembered until the assertion could no longer pass (its `exp`, plus the leeway).
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let left = u64::try_from(exp - unix_now()).unwrap_or(0);
        let ttl = Duration::from_secs(left + 60);
        let key = self.key("assertion", &format!("{}:{id}:{jti}", id.len()));
        match self.0.store.put_new(&key, "1", ttl).await {
            Ok(true) => Ok(client),
            Ok(false) => Err(fail("assertion_replayed", Some(&id))),
            Err(e) => Err(store_failed(&e)),
        }
    }

    /// The answer to a verification that did not run.
    pub(super) fn refused(&self, refused: Refused, endpoint: &str, peer: &str) -> OAuthError {
        match refused {
            Refused::TooManyAttempts { retry, first } => {
                // Once per key and window: a flood must not flood the log too.
                if first {
                    tracing::warn!(
                        target: "issuer::security",
                        event = "too_many_attempts",
                        peer,
                        "{endpoint} requests refused: too many attempts"
                    );
                }
                OAuthError::too_many_attempts(retry)
            }
            Refused::Busy => {
                tracing::warn!(
                    event = "verification_busy",
                    "{endpoint} request refused: verification queue full"
                );
                OAuthError::unavailable("the server is busy; retry later")
            }
        }
    }
}

/// Longest `exp - now` of a client assertion.
const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Part `index` of a JWS (0: header, 1: claims), unverified: which client's key to verify
/// an assertion with when the request names no `client_id`, and its `typ`.
fn unverified(jws: &str, index: usize) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let part = jws.split('.').nth(index)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The client authentication methods of the token, revocation and introspection endpoints.
const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];
/// How a confidential client authenticates: every method but `none`.
const CONFIDENTIAL_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
/// The algorithms of `private_key_jwt` assertions: one per registrable key type (PS256 too
/// for an RSA key registered with it).
const ASSERTION_ALGS: [&str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];

/// A hash of 32 random bytes with `params`, for unknown names.
fn dummy_hash(params: Params) -> Result<PasswordHash, Error> {
    use argon2::password_hash::PasswordHasher as _;
    let mut dummy = [0u8; 32];
    getrandom::fill(&mut dummy).map_err(|e| format!("no randomness: {e}"))?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    Ok(
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_with_salt(&dummy, &salt)
            .map_err(|e| format!("dummy hash: {e}"))?,
    )
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch (code expiry: lifetimes shorter than a second in tests).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `n` random bytes, base64url: codes, refresh and opaque tokens (32 bytes: 256 bits), ids.
pub fn random_token(n: usize) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness");
        OAuthError::server_error()
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A log line for a store failure, and the 503 that answers it.
pub fn store_failed(error: &StoreError) -> OAuthError {
    tracing::warn!(error = %error, "store unavailable");
    OAuthError::unavailable("a store is unavailable; retry later")
}
