//! A protected resource server: `GET /protected-resource` needs a bearer token with the
//! configured scope.
//!
//! ```text
//! ISSUER=http://127.0.0.1:8000 AUDIENCE=http://127.0.0.1:8001 JWKS_FILE=jwks.json \
//!     cargo run --example resource_server
//! ```
//!
//! Environment:
//! - `ISSUER`, `AUDIENCE` (required): the token's `iss` and one of its `aud`;
//! - `JWKS_FILE`: path to the issuer's JWKS, or
//! - `JWKS_URL`: the issuer's JWKS URL (fetched, cached and refreshed);
//! - neither: the keys are found through the issuer's discovery document (RFC 8414, then
//!   OpenID Connect) at `ISSUER`;
//! - `REQUIRED_SCOPE` (default `read`): the scope `/protected-resource` requires;
//! - `BIND` (default `127.0.0.1:8001`);
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379/`): refuse tokens revoked in this Redis, the
//!   one the issuer's `POST /oauth/revoke` writes to (run `examples/issuer.rs` with the same
//!   `REDIS_URL`). Tokens without `jti` are then refused; a revocation is seen within the
//!   validator's memo (500 ms); if Redis cannot be reached, requests get 503 with
//!   `Retry-After` (fail closed). Unset: no revocation checks.
//!
//! Prints `listening on <addr>` once it accepts connections.

use std::net::SocketAddr;
use std::sync::Arc;

use bearer_guard::revocation::RedisRevocations;
use bearer_guard::{KeySet, RemoteKeys, Validator};

mod support {
    pub mod resource_server;
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().with_target(true).init();

    let issuer = required("ISSUER")?;
    let audience = required("AUDIENCE")?;
    let scope = std::env::var("REQUIRED_SCOPE").unwrap_or_else(|_| "read".to_owned());
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:8001".to_owned())
        .parse()?;

    // Settings common to every key source first, then the keys.
    let mut builder = Validator::builder()
        .issuer(issuer.as_str())
        .audience(audience);
    if let Some(url) = optional("REDIS_URL") {
        // The URL may carry a password: never logged (RedisRevocations' errors leave it out).
        let store = RedisRevocations::connect(&url)
            .await
            .map_err(|e| format!("REDIS_URL: {e}"))?;
        builder = builder.revocation(Arc::new(store));
        tracing::info!("revoked tokens are looked up in Redis (REDIS_URL)");
    }
    let validator = match (optional("JWKS_FILE"), optional("JWKS_URL")) {
        (Some(path), _) => builder.keys(KeySet::from_jwks_json(&std::fs::read(&path)?)?),
        (None, Some(url)) => builder.keys(RemoteKeys::jwks_url(url)),
        (None, None) => builder.keys(RemoteKeys::discover(issuer)),
    }
    .build()?;
    // Fetch remote keys now: a service that starts is a service that can authenticate.
    validator.ready().await?;

    let app = support::resource_server::app(&validator, &scope)?;

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn required(name: &str) -> Result<String, Error> {
    optional(name).ok_or_else(|| format!("environment variable {name} is required").into())
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
