//! The companion OAuth 2.1 authorization server (`cargo run -p bearer-guard-issuer`), shared with
//! `examples/demo.rs`, its own tests (`examples/issuer/tests/`) and the tests of `bearer-guard` that need a real issuer (`testing`).
//!
//! - `GET|POST /oauth/authorize`: the authorization code flow with PKCE (S256 only) for the
//!   users of `examples/users.toml`: a login-and-consent page, then a redirect with `code`,
//!   `state` and `iss` (`authorize.rs`, `page.rs`). A `client_id` that is an `https` URL
//!   names a Client ID Metadata Document, fetched and checked (`client_metadata.rs`).
//! - `POST /oauth/token`: `authorization_code`, `refresh_token` (rotated on every use; reuse
//!   revokes the family) and `client_credentials` (`token.rs`, `grants.rs`). RFC 8707
//!   `resource` becomes `aud`. Token exchange (RFC 8693, `exchange.rs`). Client
//!   authentication: `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC
//!   7523: a registered `jwk`, or keys at a `jwks_uri`, `client_keys.rs`), or `none` for
//!   public clients. A request with a `DPoP` proof
//!   (RFC 9449) gets a DPoP-bound token (`cnf.jkt`, `token_type: "DPoP"`; `dpop.rs`).
//! - `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662), `POST
//!   /oauth/register` (RFC 7591, public clients only).
//! - `GET /.well-known/jwks.json` (every published signing key) and the RFC 8414 metadata at
//!   `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
//!
//! Access tokens are RFC 9068 JWTs signed with EdDSA (a key generated at start), the key of
//! `SIGNING_KEY_FILE`, or the keys of `SIGNING_KEYS_DIR`, rotated without a restart
//! ([`SigningKeys`], `signing.rs`; the binary reloads them on `SIGHUP`), or opaque
//! (`TOKEN_FORMAT=opaque`, `tokens.rs`). Codes, refresh tokens, opaque tokens and registered
//! clients live in a [`Store`]: memory, or Redis shared by replicas (`store.rs`); revoked
//! access tokens go to a `bearer_guard` revocation store.
//!
//! Secrets and passwords exist only as argon2id hashes, verified on the blocking pool behind
//! a bounded queue and per-peer and per-name attempt budgets (`limits.rs`). Nothing secret is
//! ever logged: no secret, password, code, verifier or token. Security events (login
//! failures, PKCE failures, code replays, refresh-token reuse, attempt limits) are `tracing`
//! events with the target `issuer::security`.
#![forbid(unsafe_code)]

mod authorize;
mod client_keys;
mod client_metadata;
mod clients;
mod config;
mod dpop;
mod error;
mod exchange;
mod fetch;
mod form;
mod grants;
mod introspect;
mod limits;
mod page;
mod register;
mod revoke;
mod scope;
mod server;
mod signing;
mod store;
pub mod testing;
mod token;
mod tokens;
mod users;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};

pub use self::clients::{Client, Clients, Format, parse_clients};
pub use self::config::{Config, TokenFormat};
pub use self::grants::pkce_matches;
pub use self::limits::Limits;
pub use self::page::html_escape;
pub use self::server::Issuer;
pub use self::signing::{DEFAULT_PUBLISH_AHEAD, MAX_KEYS, Reloaded, SigningKey, SigningKeys};
pub use self::store::Store;
pub use self::users::{User, parse_users};

use self::error::{OAuthError, cacheable_json};
use self::limits::peer_key;

/// Boxed error of this module.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Path of the authorization endpoint.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Path of the RFC 7009 revocation endpoint.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// Path of the RFC 7662 introspection endpoint.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// Path of the RFC 7591 registration endpoint.
pub const REGISTER_PATH: &str = "/oauth/register";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the RFC 8414 metadata document.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect discovery path, an alias of [`METADATA_PATH`].
pub const OIDC_METADATA_PATH: &str = "/.well-known/openid-configuration";
/// Largest accepted request body.
pub const MAX_BODY: usize = 16 * 1024;

/// Reads the clients and users files and the signing keys (a directory, a file, or a key it
/// generates) and builds the issuer.
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
    let users = match &config.users_file {
        None => Default::default(),
        Some(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
            parse_users(&text).map_err(|e| format!("users file {}: {e}", path.display()))?
        }
    };
    let config = config.clone();
    // Reading the keys and hashing the dummy secrets (argon2 runs): off the async threads.
    tokio::task::spawn_blocking(move || {
        let keys = config.signing_keys()?;
        Issuer::build(&config, clients, users, keys)
    })
    .await?
}

/// The router; bodies capped at [`MAX_BODY`]. Serve it with connection info (see [`serve`])
/// so that attempt budgets are per peer; without it every peer shares one budget.
pub fn app(issuer: Issuer) -> Router {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize_page).post(authorize_submit))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(INTROSPECT_PATH, post(introspect))
        .route(REGISTER_PATH, post(register))
        .route(JWKS_PATH, get(jwks))
        .route(METADATA_PATH, get(metadata))
        .route(OIDC_METADATA_PATH, get(metadata))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(issuer)
}

/// Serves the issuer on `listener` with each connection's peer address.
pub async fn serve(listener: tokio::net::TcpListener, issuer: Issuer) -> std::io::Result<()> {
    let app = app(issuer).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await
}

/// The peer's budget key (see `limits::peer_key`).
fn peer(parts: &Parts) -> String {
    let addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    peer_key(addr)
}

/// A form POST to one of the endpoints: the peer's budget key, the headers, the body (capped
/// at [`MAX_BODY`]; too large or unreadable is an OAuth `invalid_request`).
struct Post {
    peer: String,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Post {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
        let (mut parts, body) = req.into_parts();
        let peer = peer(&parts);
        let headers = std::mem::take(&mut parts.headers);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    let status = StatusCode::PAYLOAD_TOO_LARGE;
                    OAuthError::new(status, "invalid_request", "request body too large")
                } else {
                    OAuthError::invalid_request("unreadable request body")
                }
            })?;
        Ok(Post {
            peer,
            headers,
            body,
        })
    }
}

async fn authorize_page(State(issuer): State<Issuer>, RawQuery(query): RawQuery) -> Response {
    issuer.authorize_page(query.as_deref().unwrap_or("")).await
}

/// The login form's answer; errors are pages, not OAuth JSON.
async fn authorize_submit(
    State(issuer): State<Issuer>,
    post: Result<Post, OAuthError>,
) -> Response {
    match post {
        Ok(post) => {
            issuer
                .authorize_submit(&post.peer, &post.headers, &post.body)
                .await
        }
        Err(error) => page::error_page(error.status, &error.description),
    }
}

async fn token(State(issuer): State<Issuer>, post: Post) -> Result<Response, OAuthError> {
    issuer.token(&post.peer, &post.headers, &post.body).await
}

async fn revoke(State(issuer): State<Issuer>, post: Post) -> Result<Response, OAuthError> {
    issuer.revoke(&post.peer, &post.headers, &post.body).await
}

async fn introspect(State(issuer): State<Issuer>, post: Post) -> Result<Response, OAuthError> {
    issuer
        .introspect(&post.peer, &post.headers, &post.body)
        .await
}

async fn register(State(issuer): State<Issuer>, post: Post) -> Result<Response, OAuthError> {
    issuer.register(&post.peer, &post.headers, &post.body).await
}

async fn jwks(State(issuer): State<Issuer>) -> Response {
    cacheable_json(&issuer.jwks_json(), "application/jwk-set+json")
}

async fn metadata(State(issuer): State<Issuer>) -> Response {
    cacheable_json(issuer.metadata_json(), "application/json")
}
