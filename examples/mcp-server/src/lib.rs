//! An MCP server (rmcp, streamable HTTP transport) that is an OAuth 2.1 resource server:
//! `bearer-guard` checks the access token of every request, the RFC 9728 metadata served
//! beside it sends MCP clients without a token to the authorization server.
//!
//! - `POST /mcp`: the MCP endpoint (rmcp's streamable HTTP service), behind
//!   `RequireScope::all(.., ["mcp:tools"])`, whatever the method. A request without a valid
//!   token gets `401` with
//!   `WWW-Authenticate: Bearer resource_metadata="<metadata URL>", scope="mcp:tools"`
//!   (RFC 9728 §5.1, and the scopes to ask for); a token without `mcp:tools` gets `403` `insufficient_scope`.
//!   Then `jsonrpc::OperationScopes` reads the JSON-RPC body (at most [`MAX_REQUEST_BODY`]
//!   bytes): a `tools/call` of `admin_stats` with a token without `mcp:admin` gets `403` with
//!   `WWW-Authenticate: Bearer resource_metadata="..", error="insufficient_scope", scope="mcp:admin"`
//!   before rmcp sees it (MCP step-up: the client asks its user for `mcp:tools mcp:admin`,
//!   then calls again).
//! - `GET /.well-known/oauth-protected-resource/mcp`: the metadata (RFC 9728 §3.1): the
//!   resource (`<PUBLIC_URL>/mcp`, the audience its tokens must carry), the issuer, the
//!   scopes `mcp:tools` (the route's) and `mcp:admin` (`admin_stats`').
//!
//! The tools ([`Tools`]): `echo`, `whoami` (what the token says about the caller) and
//! `admin_stats`, which also needs `mcp:admin`: checked by the layer, on the request's body,
//! before the tool can run.
//!
//! The server keeps no MCP sessions (rmcp's stateless mode): every request carries its own
//! token and is authorized on its own, and there is no session id to steal. The
//! `Authorization` header is removed once verified: tools see the [`VerifiedToken`], never
//! the token, so none can pass it on (MCP forbids token passthrough).
//!
//! `src/main.rs` runs it (its doc comment gives the commands); the tests (`tests/mcp.rs`)
//! start it beside the companion issuer.
//!
//! [`VerifiedToken`]: bearer_guard::VerifiedToken

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod settings;
mod tools;

use std::sync::Arc;

use axum::Router;
use bearer_guard::jsonrpc::{self, OperationScopes};
use bearer_guard::{Guard, Issuer, RequireScope, Validator, metadata::ProtectedResource};
use http::Request;
use http::header::AUTHORIZATION;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

pub use settings::Settings;
pub use tools::{ADMIN_SCOPE, Caller, EchoArgs, MAX_ECHO, Stats, StatsReport, TOOLS_SCOPE, Tools};

/// Where the MCP endpoint is mounted.
pub const MCP_PATH: &str = "/mcp";
/// The largest MCP request body, in bytes (rmcp's default is 4 MiB; these tools take a few
/// short arguments).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Boxed error of this example.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server, ready to be served.
#[derive(Debug)]
pub struct Server {
    /// The routes: the MCP endpoint and the metadata document.
    pub router: Router,
    /// The RFC 9728 metadata (its URL is in every challenge).
    pub resource: ProtectedResource,
    /// Cancel it to close rmcp's open streams (for a graceful shutdown).
    pub shutdown: CancellationToken,
}

/// Builds the server for `settings`: the issuer's keys are fetched through its discovery
/// document first (RFC 8414), so a server that starts is a server that can authenticate.
///
/// # Errors
/// A public URL that cannot be a resource identifier (RFC 9728 wants `https`, or `http` to
/// a loopback host), or an issuer whose keys cannot be had.
pub async fn build(settings: &Settings) -> Result<Server, Error> {
    let resource_url = settings.resource_url();
    let validator = Validator::builder()
        .audience(resource_url.as_str())
        .trust(Issuer::discover(settings.issuer.as_str()))
        .build()?;
    validator.ready().await?;
    let resource = ProtectedResource::builder(resource_url.as_str())
        .authorization_server(settings.issuer.as_str())
        .resource_name("bearer-guard MCP example")
        .build()
        .map_err(|e| format!("PUBLIC_URL {}: {e}", settings.public_url))?;
    let shutdown = CancellationToken::new();
    let router = router(&validator, &resource, settings, shutdown.clone())?;
    Ok(Server {
        router,
        resource,
        shutdown,
    })
}

/// The routes, for a validator of tokens for `resource`. The route and the operations
/// register their scopes in `resource`'s `scopes_supported`.
///
/// # Errors
/// A metadata URL that cannot be sent in a challenge.
pub fn router(
    validator: &Validator,
    resource: &ProtectedResource,
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<Router, Error> {
    let guard = Guard::new(validator).protected_resource(resource)?;
    let config = StreamableHttpServerConfig::default()
        // Stateless: no session to hijack, every request authorized on its own token.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_REQUEST_BODY)
        // DNS-rebinding protection: loopback names and the public host only.
        .with_allowed_hosts(settings.allowed_hosts())
        .with_cancellation_token(shutdown);
    let stats = Arc::new(Stats::default());
    let mcp = StreamableHttpService::new(
        move || Ok(Tools::new(Arc::clone(&stats))),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    // What each operation needs beyond the route's scope, decided on the JSON-RPC body
    // before rmcp: the step-up challenge names it.
    let operations = OperationScopes::builder()
        .tool("admin_stats", [ADMIN_SCOPE])
        .max_body(MAX_REQUEST_BODY)
        .protected_resource(resource)
        .build()?;
    let endpoint = ServiceBuilder::new()
        .layer(RequireScope::all(&guard, [TOOLS_SCOPE])?)
        .layer(operations)
        .map_request(strip_credentials)
        .service(mcp);
    Ok(Router::new()
        .route_service(MCP_PATH, endpoint)
        .route_service(resource.well_known_path(), resource.service()))
}

/// Removes the verified token from the request: what rmcp and the tools see is the
/// `VerifiedToken` the layer put in the extensions.
fn strip_credentials(mut req: Request<jsonrpc::Body>) -> Request<jsonrpc::Body> {
    req.headers_mut().remove(AUTHORIZATION);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verified_token_does_not_reach_the_tools() {
        let req = Request::post(MCP_PATH)
            .header(AUTHORIZATION, "Bearer abc.def.ghi")
            .header("mcp-protocol-version", "2025-06-18")
            .body(jsonrpc::Body::default())
            .expect("request");
        let req = strip_credentials(req);
        assert!(req.headers().get(AUTHORIZATION).is_none());
        assert_eq!(req.headers()["mcp-protocol-version"], "2025-06-18");
    }
}
