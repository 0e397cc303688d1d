//! A small OAuth 2.0 authorization server for the client-credentials grant: issues RFC 9068
//! JWT access tokens to the clients of a file, revokes them (RFC 7009), and serves its JWKS
//! and RFC 8414 metadata.
//!
//! ```text
//! cargo run --example issuer
//! curl -s -u demo-client:demo-secret -d grant_type=client_credentials -d scope=read \
//!     -d resource=http://127.0.0.1:8001 http://127.0.0.1:8000/oauth/token
//! curl -s http://127.0.0.1:8000/.well-known/jwks.json > /tmp/jwks.json
//! # A client revokes one of its own tokens (always 200, see RFC 7009 §2.2):
//! curl -si -u demo-client:demo-secret -d token="$TOKEN" http://127.0.0.1:8000/oauth/revoke
//! ```
//!
//! Revoked tokens are refused by resource servers that check the same store: run both with
//! the same `REDIS_URL` (`examples/resource_server.rs`).
//!
//! Environment:
//! - `BIND` (default `127.0.0.1:8000`);
//! - `ISSUER` (default `http://<BIND>`): the tokens' `iss`;
//! - `CLIENTS_FILE` (default `examples/clients.toml`, whose secrets are public, demo only):
//!   TOML or JSON, see that file; hash new secrets with `cargo run --example hash_secret`;
//! - `SIGNING_KEY_FILE`: a PKCS#8 PEM private key (Ed25519, P-256 or P-384); without it an
//!   Ed25519 key is generated at start, and tokens die with the process;
//! - `SIGNING_KEY_ID`: the key's `kid` (default: its RFC 7638 thumbprint);
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379/`): `POST /oauth/revoke` writes to this Redis
//!   (`bearer_guard::revocation::RedisRevocations`), where resource servers look revoked
//!   tokens up; without it revocations stay in this process's memory, where no resource
//!   server sees them.
//!
//! Prints `listening on <addr>` once it accepts connections. See `examples/support/issuer.rs`
//! for the endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use bearer_guard::revocation::RedisRevocations;

mod support {
    pub mod issuer;
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Logs on stderr: stdout carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_target(true)
        .with_writer(std::io::stderr)
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:8000".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;

    let mut config = support::issuer::Config::from_env(addr);
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()) {
        // The URL may carry a password: it is not logged, and neither is a connection error's
        // (RedisRevocations leaves it out).
        let store = RedisRevocations::connect(&url)
            .await
            .map_err(|e| format!("REDIS_URL: {e}"))?;
        tracing::info!("revocations go to Redis (REDIS_URL)");
        config.revocations = Some(Arc::new(store));
    } else {
        tracing::info!("revocations stay in memory (set REDIS_URL to share them)");
    }
    let issuer = support::issuer::load(&config).await?;
    let app = support::issuer::app(issuer);

    println!("listening on {addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
