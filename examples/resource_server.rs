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
//! - `BIND` (default `127.0.0.1:8001`).
//!
//! Prints `listening on <addr>` once it accepts connections.

use std::net::SocketAddr;

use bearer_guard::{KeySet, Validator};

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

    let keys = match std::env::var("JWKS_FILE") {
        Ok(path) => KeySet::from_jwks_json(&std::fs::read(&path)?)?,
        Err(_) => return Err("set JWKS_FILE to the issuer's JWKS".into()),
    };
    let validator = Validator::builder()
        .issuer(issuer)
        .audience(audience)
        .keys(keys)
        .build()?;

    let app = support::resource_server::app(&validator, &scope);

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is required").into())
}
