//! A small OAuth 2.1 authorization server: the authorization code flow with PKCE for the
//! users of a file, refresh tokens rotated on every use, client credentials, RFC 9068 JWT (or
//! opaque) access tokens, revocation (RFC 7009), introspection (RFC 7662), dynamic client
//! registration (RFC 7591), its JWKS and RFC 8414 metadata.
//!
//! ```text
//! cargo run -p bearer-guard-issuer
//! # Client credentials:
//! curl -s -u demo-client:demo-secret -d grant_type=client_credentials -d scope=read \
//!     -d resource=http://127.0.0.1:8001 http://127.0.0.1:8000/oauth/token
//! # Authorization code + PKCE: open this in a browser, sign in as alice / alice-password,
//! # and read `code` from the address the browser is sent to (nothing listens there):
//! #   http://127.0.0.1:8000/oauth/authorize?response_type=code&client_id=demo-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcallback&scope=read&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256
//! curl -s -d grant_type=authorization_code -d client_id=demo-app -d code="$CODE" \
//!     -d redirect_uri=http://127.0.0.1:9999/callback \
//!     -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk http://127.0.0.1:8000/oauth/token
//! # A resource server asks about a token:
//! curl -s -u demo-resource:demo-resource-secret -d token="$TOKEN" \
//!     http://127.0.0.1:8000/oauth/introspect
//! ```
//!
//! Revoked tokens are refused by resource servers that check the same store: run both with
//! the same `REDIS_URL` (`examples/resource_server.rs`).
//!
//! Environment:
//! - `BIND` (default `127.0.0.1:8000`);
//! - `ISSUER` (default `http://<BIND>`): the tokens' `iss`;
//! - `CLIENTS_FILE` (default `examples/clients.toml`) and `USERS_FILE` (default
//!   `examples/users.toml`), whose secrets and passwords are public, demo only; hash new ones
//!   with `cargo run -p bearer-guard-issuer --bin hash_secret`;
//! - `SIGNING_KEY_FILE`: a PKCS#8 PEM private key (Ed25519, P-256 or P-384); without it (or
//!   `SIGNING_KEYS_DIR`) an Ed25519 key is generated at start, and tokens die with the
//!   process;
//! - `SIGNING_KEY_ID`: the key's `kid` (default: its RFC 7638 thumbprint);
//! - `SIGNING_KEYS_DIR`, instead of `SIGNING_KEY_FILE`: a directory of such keys, for
//!   rotating keys without a restart. Every `*.pem` file in it is a key (names starting with
//!   `.` are skipped), its `kid` its RFC 7638 thumbprint; the file names sort them, the last
//!   is the newest. Every key is published in the JWKS; the newest signs once it has been
//!   published for `SIGNING_KEY_PUBLISH_AHEAD` seconds (default 300: longer than resource
//!   servers take to refresh the JWKS), the one before it until then. `SIGHUP` reads the
//!   directory again: a new file is published at once, a removed one leaves the JWKS (and its
//!   tokens are refused from the resource servers' next refresh), and a directory that
//!   cannot be read whole (a malformed file, no key) is refused with a log line, the
//!   previous keys kept. To rotate:
//!
//!   ```text
//!   openssl genpkey -algorithm ed25519 -out "$SIGNING_KEYS_DIR/.new"
//!   mv "$SIGNING_KEYS_DIR/.new" "$SIGNING_KEYS_DIR/$(date -u +%Y%m%dT%H%M%S).pem"
//!   kill -HUP "$ISSUER_PID"   # published now, signing in SIGNING_KEY_PUBLISH_AHEAD seconds
//!   # once the last token of the old key has expired (its lifetime after the switch):
//!   rm "$SIGNING_KEYS_DIR/<old>.pem" && kill -HUP "$ISSUER_PID"
//!   ```
//!
//!   At start, the newest key counts as published from then, so after a restart the one
//!   before it signs for `SIGNING_KEY_PUBLISH_AHEAD` again;
//! - `TOKEN_FORMAT`: `jwt` (default) or `opaque` (resource servers then introspect);
//! - `DPOP_NONCES`: `off` (default) or `on`: DPoP proofs at the token endpoint must carry a
//!   nonce of this issuer (RFC 9449 §8). A token request with a `DPoP` proof always gets a
//!   DPoP-bound token;
//! - `REDIS_URL`: one URL (`redis://127.0.0.1:6379/`) for a single node, two or more
//!   comma-separated URLs for a Redis Cluster's seed nodes
//!   (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`), or
//!   `redis+sentinel://[user:password@]host:26379,host:26379/<master>[/db]` for the primary
//!   Redis Sentinel names (`bearer_guard::redis_conn::RedisConnection`); revocations go to
//!   this Redis
//!   (`bearer_guard::revocation::RedisRevocations`), where resource servers look them up, and
//!   so do codes, refresh tokens, opaque tokens, registered clients and the DPoP proofs seen
//!   (`bearer_guard::dpop::RedisReplay`), so that replicas with the same `ISSUER`, key and
//!   Redis share them; without it all of that stays in memory;
//! - `CLIENT_METADATA_ALLOW_LOOPBACK`: `0` (default) or `1`: Client ID Metadata Documents (a
//!   `client_id` that is an `https` URL; accepted when the clients file has a `[registration]`
//!   table) and the key sets at clients' `jwks_uri`s may be fetched from loopback addresses,
//!   for local tests; private, link-local and other non-public addresses are always refused;
//! - `CLIENT_METADATA_CA_FILE`: a PEM file of CA certificates trusted for those fetches (metadata
//!   documents and `jwks_uri` key sets), besides the system's roots;
//! - `RUST_LOG` (default `info`): the log filter, e.g. `issuer::security=warn`.
//!
//! Prints `listening on <addr>` once it accepts connections; logs go to stderr. See
//! `examples/issuer/src/lib.rs` for the endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use bearer_guard::dpop::RedisReplay;
use bearer_guard::redis_conn::RedisConnection;
use bearer_guard::revocation::RedisRevocations;
use tracing_subscriber::EnvFilter;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Logs on stderr: stdout carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(true)
        .with_writer(std::io::stderr)
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:8000".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;

    let mut config = bearer_guard_issuer::Config::from_env(addr)?;
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()) {
        // The URL may carry a password: it is not logged, and neither is a connection error's
        // (the connection leaves it out). One connection, shared by the three stores.
        let conn = RedisConnection::builder(&url)
            .connect()
            .await
            .map_err(|e| format!("REDIS_URL: {e}"))?;
        let topology = conn.topology();
        // On a Cluster or behind Sentinel, a revocation is answered once a replica has it.
        let revocations = RedisRevocations::new(conn.clone());
        let store = bearer_guard_issuer::Store::redis_with(conn.clone());
        let replay =
            RedisReplay::new(conn).prefix(format!("bearer-guard:issuer:{}:dpop:", config.issuer));
        tracing::info!(
            ?topology,
            "revocations, codes and refresh tokens go to Redis (REDIS_URL)"
        );
        config.revocations = Some(Arc::new(revocations));
        config.store = Some(store);
        config.dpop_replay = Some(Arc::new(replay));
    } else {
        tracing::info!(
            "revocations, codes and refresh tokens stay in memory (set REDIS_URL to share them)"
        );
    }
    let issuer = bearer_guard_issuer::load(&config).await?;
    // Before `listening on`: from then on, SIGHUP never has its default action (the end of
    // the process).
    #[cfg(unix)]
    reload_on_sighup(&issuer)?;

    println!("listening on {addr}");
    // Connection info: attempt budgets are per peer address.
    let app = bearer_guard_issuer::app(issuer).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// On every `SIGHUP`, reads `SIGNING_KEYS_DIR` again (the outcome is logged either way).
#[cfg(unix)]
fn reload_on_sighup(issuer: &bearer_guard_issuer::Issuer) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let issuer = issuer.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if issuer.signing_keys().dir().is_none() {
                tracing::warn!("SIGHUP ignored: no SIGNING_KEYS_DIR to reload");
                continue;
            }
            // Success and refusal are both logged by the reload.
            let _ = issuer.reload_signing_keys().await;
        }
    });
    Ok(())
}
