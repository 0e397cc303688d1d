//! The issuer's configuration: files, key, stores, lifetimes and limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bearer_guard::dpop::DpopReplay;
use bearer_guard::revocation::Revocations;

use super::Error;
use super::limits::Limits;
use super::signing::{DEFAULT_PUBLISH_AHEAD, SigningKey, SigningKeys};
use super::store::Store;

/// What the token endpoint issues as access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// RFC 9068 JWTs, checked by resource servers with the JWKS.
    #[default]
    Jwt,
    /// 256 random bits; resource servers ask `POST /oauth/introspect` (RFC 7662).
    Opaque,
}

/// Where the issuer's configuration comes from.
#[derive(Clone)]
pub struct Config {
    /// The `iss` of every token and the metadata's `issuer`, e.g. `http://127.0.0.1:8000`.
    pub issuer: String,
    /// The clients file, TOML (`.toml`) or JSON (`.json`).
    pub clients_file: PathBuf,
    /// The users file (TOML); `None`: nobody can log in.
    pub users_file: Option<PathBuf>,
    /// A PKCS#8 PEM private key (Ed25519, P-256 or P-384); `None` (and no
    /// [`signing_keys_dir`](Config::signing_keys_dir)): generate an Ed25519 key.
    pub signing_key_file: Option<PathBuf>,
    /// The `kid` of the key of `signing_key_file` or the generated one; `None`: its RFC 7638
    /// thumbprint.
    pub signing_key_id: Option<String>,
    /// A directory of PKCS#8 PEM private keys, rotated without a restart: every key
    /// published, the newest signing once published for
    /// [`signing_key_publish_ahead`](Config::signing_key_publish_ahead) (see
    /// [`SigningKeys`]). Excludes `signing_key_file` and `signing_key_id`.
    pub signing_keys_dir: Option<PathBuf>,
    /// How long a new key of `signing_keys_dir` is published before it signs (default
    /// [`DEFAULT_PUBLISH_AHEAD`], 5 minutes): at least how often resource servers refresh the
    /// JWKS.
    pub signing_key_publish_ahead: Duration,
    /// Where revoked tokens go; `None`: an in-memory store of this issuer's own.
    pub revocations: Option<Arc<dyn Revocations>>,
    /// Codes, refresh tokens, opaque tokens, registered clients; `None`: in memory.
    pub store: Option<Store>,
    /// JWT or opaque access tokens.
    pub token_format: TokenFormat,
    /// How long an authorization code may be redeemed (default 60 s).
    pub code_lifetime: Duration,
    /// How long a refresh token may be used (default one day); each use makes a new one.
    pub refresh_lifetime: Duration,
    /// Verification slots, queue and attempt budgets.
    pub limits: Limits,
    /// DPoP proofs at the token endpoint must carry a nonce of this issuer (RFC 9449 §8);
    /// off by default.
    pub dpop_nonces: bool,
    /// Where the token endpoint remembers the DPoP proofs it accepted (replays are refused);
    /// `None`: in memory. Replicas share a Redis one (`bearer_guard::dpop::RedisReplay`).
    pub dpop_replay: Option<Arc<dyn DpopReplay>>,
    /// Client ID Metadata Documents and the key sets of `jwks_uri` (`private_key_jwt`
    /// clients of the clients file or of a metadata document) may be fetched from loopback
    /// addresses (`CLIENT_METADATA_ALLOW_LOOPBACK=1`; local tests only). Off by default.
    pub client_metadata_allow_loopback: bool,
    /// A PEM file of CA certificates trusted for those fetches (documents and `jwks_uri`)
    /// besides the system's roots (`CLIENT_METADATA_CA_FILE`).
    pub client_metadata_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("clients_file", &self.clients_file)
            .field("users_file", &self.users_file)
            .field("signing_key_file", &self.signing_key_file)
            .field("signing_key_id", &self.signing_key_id)
            .field("signing_keys_dir", &self.signing_keys_dir)
            .field("signing_key_publish_ahead", &self.signing_key_publish_ahead)
            .field("store", &self.store)
            .field("token_format", &self.token_format)
            .field("code_lifetime", &self.code_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("limits", &self.limits)
            .field("dpop_nonces", &self.dpop_nonces)
            .field(
                "client_metadata_allow_loopback",
                &self.client_metadata_allow_loopback,
            )
            .field("client_metadata_ca_file", &self.client_metadata_ca_file)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The shipped demo clients and users (`examples/clients.toml`, `examples/users.toml`),
    /// a generated key, everything in memory.
    pub fn new(issuer: impl Into<String>) -> Config {
        Config {
            issuer: issuer.into(),
            clients_file: example_file("clients.toml"),
            users_file: Some(example_file("users.toml")),
            signing_key_file: None,
            signing_key_id: None,
            signing_keys_dir: None,
            signing_key_publish_ahead: DEFAULT_PUBLISH_AHEAD,
            revocations: None,
            store: None,
            token_format: TokenFormat::Jwt,
            code_lifetime: Duration::from_secs(60),
            refresh_lifetime: Duration::from_secs(86_400),
            limits: Limits::default(),
            dpop_nonces: false,
            dpop_replay: None,
            client_metadata_allow_loopback: false,
            client_metadata_ca_file: None,
        }
    }

    /// From the environment: `ISSUER` (default `http://<local_addr>`), `CLIENTS_FILE`,
    /// `USERS_FILE` (defaults: the files in `examples/`), `SIGNING_KEY_FILE`,
    /// `SIGNING_KEY_ID`, `SIGNING_KEYS_DIR`, `SIGNING_KEY_PUBLISH_AHEAD` (seconds),
    /// `TOKEN_FORMAT` (`jwt` or `opaque`), `DPOP_NONCES` (`on` or `off`),
    /// `CLIENT_METADATA_ALLOW_LOOPBACK` (`1` or `0`), `CLIENT_METADATA_CA_FILE`.
    /// Redis (`REDIS_URL`) is left to the caller: connecting is async.
    pub fn from_env(local_addr: SocketAddr) -> Result<Config, String> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let mut config =
            Config::new(var("ISSUER").unwrap_or_else(|| format!("http://{local_addr}")));
        if let Some(path) = var("CLIENTS_FILE") {
            config.clients_file = PathBuf::from(path);
        }
        if let Some(path) = var("USERS_FILE") {
            config.users_file = Some(PathBuf::from(path));
        }
        config.signing_key_file = var("SIGNING_KEY_FILE").map(PathBuf::from);
        config.signing_key_id = var("SIGNING_KEY_ID");
        config.signing_keys_dir = var("SIGNING_KEYS_DIR").map(PathBuf::from);
        if let Some(seconds) = var("SIGNING_KEY_PUBLISH_AHEAD") {
            let seconds: u64 = seconds
                .parse()
                .map_err(|_| "SIGNING_KEY_PUBLISH_AHEAD must be a number of seconds")?;
            config.signing_key_publish_ahead = Duration::from_secs(seconds);
        }
        config.token_format = match var("TOKEN_FORMAT").as_deref() {
            None | Some("jwt") => TokenFormat::Jwt,
            Some("opaque") => TokenFormat::Opaque,
            Some(_) => return Err("TOKEN_FORMAT must be jwt or opaque".into()),
        };
        config.dpop_nonces = match var("DPOP_NONCES").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(_) => return Err("DPOP_NONCES must be on or off".into()),
        };
        config.client_metadata_allow_loopback =
            match var("CLIENT_METADATA_ALLOW_LOOPBACK").as_deref() {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => return Err("CLIENT_METADATA_ALLOW_LOOPBACK must be 1 or 0".into()),
            };
        config.client_metadata_ca_file = var("CLIENT_METADATA_CA_FILE").map(PathBuf::from);
        Ok(config)
    }
}

impl Config {
    /// The signing keys: the directory's, the file's, or a generated key. Reads files:
    /// call it from a blocking context.
    ///
    /// # Errors
    /// A directory together with a key file or a key id; a key that cannot be read.
    pub fn signing_keys(&self) -> Result<SigningKeys, Error> {
        match (&self.signing_keys_dir, &self.signing_key_file) {
            (Some(_), Some(_)) => {
                Err("SIGNING_KEYS_DIR and SIGNING_KEY_FILE exclude each other".into())
            }
            (Some(_), None) if self.signing_key_id.is_some() => Err(
                "SIGNING_KEY_ID does not apply to SIGNING_KEYS_DIR (each key's kid is its \
                 RFC 7638 thumbprint)"
                    .into(),
            ),
            (Some(dir), None) => SigningKeys::from_dir(dir, self.signing_key_publish_ahead),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read signing key {}: {e}", path.display()))?;
                let key = SigningKey::from_pem(&pem, self.signing_key_id.clone())
                    .map_err(|e| format!("signing key {}: {e}", path.display()))?;
                Ok(key.into())
            }
            (None, None) => {
                let key = SigningKey::generate(self.signing_key_id.clone())?;
                tracing::info!(kid = %key.kid(), "generated an ephemeral Ed25519 signing key");
                Ok(key.into())
            }
        }
    }
}

/// `examples/<name>` of the repository: this crate is `examples/issuer/`.
fn example_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}
