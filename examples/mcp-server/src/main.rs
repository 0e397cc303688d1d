//! An MCP server protected by bearer-guard: rmcp's streamable HTTP transport at `/mcp`
//! behind `RequireScope`, and the RFC 9728 metadata that sends MCP clients to the issuer.
//!
//! ```text
//! # the companion issuer, with an MCP client and the MCP scopes (from the repository root)
//! CLIENTS_FILE=examples/mcp-server/clients.toml cargo run -p bearer-guard-issuer
//! # the MCP server
//! ISSUER=http://127.0.0.1:8000 cargo run -p bearer-guard-mcp-server
//! # a token, then an MCP request with it
//! TOKEN=$(curl -s -u mcp-client:mcp-demo-secret -d grant_type=client_credentials \
//!     http://127.0.0.1:8000/oauth/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -s http://127.0.0.1:8003/mcp -H "Authorization: Bearer $TOKEN" \
//!     -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!     -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'
//! ```
//!
//! Environment:
//! - `ISSUER` (required): the authorization server's issuer identifier; its keys are found
//!   through its discovery document (RFC 8414, then OpenID Connect);
//! - `PUBLIC_URL` (default `http://<BIND>`): how clients reach this server; the resource (and
//!   the audience its tokens must carry) is `<PUBLIC_URL>/mcp`; `https`, or `http` to a
//!   loopback address;
//! - `BIND` (default `127.0.0.1:8003`);
//! - `RUST_LOG` (default `info`): the log filter; logs go to standard error.
//!
//! Prints `listening on <addr>` on standard output once it accepts connections.

use bearer_guard_mcp_server::{Error, Settings, build};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let settings = Settings::from_env()?;
    let server = build(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.bind).await?;
    tracing::info!(
        resource = server.resource.resource(),
        metadata = server.resource.metadata_url(),
        issuer = %settings.issuer,
        "MCP server ready"
    );
    println!("listening on {}", listener.local_addr()?);
    let shutdown = server.shutdown.clone();
    axum::serve(listener, server.router)
        .with_graceful_shutdown(async move {
            // Ctrl-C: close rmcp's streams, then stop accepting.
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        })
        .await?;
    Ok(())
}
