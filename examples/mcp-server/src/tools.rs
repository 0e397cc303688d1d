//! The MCP tools: `echo`, `whoami` and `admin_stats`, the last one for tokens with
//! [`ADMIN_SCOPE`] only.
//!
//! Every request reaching these handlers passed `RequireScope` (a valid token granting
//! [`TOOLS_SCOPE`]); the layer left the [`VerifiedToken`] in the HTTP request's extensions,
//! and rmcp hands the request's [`Parts`] to the tools through the request context. The
//! extra scope of `admin_stats` is the `jsonrpc::OperationScopes` layer's: a call without it
//! is answered `403` before rmcp reads it. The tool still fails closed on a token without it
//! (a server wired without the layer).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bearer_guard::VerifiedToken;
use http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

/// The scope every MCP request needs.
pub const TOOLS_SCOPE: &str = "mcp:tools";
/// The extra scope `admin_stats` needs.
pub const ADMIN_SCOPE: &str = "mcp:admin";
/// The longest text `echo` accepts, in bytes.
pub const MAX_ECHO: usize = 4096;

/// Counters shared by every request the server answers.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    echo: AtomicU64,
    whoami: AtomicU64,
    admin_stats: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            echo: AtomicU64::new(0),
            whoami: AtomicU64::new(0),
            admin_stats: AtomicU64::new(0),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What `admin_stats` answers.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatsReport {
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// Successful calls of `echo`.
    pub echo_calls: u64,
    /// Successful calls of `whoami`.
    pub whoami_calls: u64,
    /// Successful calls of `admin_stats`, this one included.
    pub admin_stats_calls: u64,
}

/// What `whoami` answers: what the token says about its holder (never the token).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Caller {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The OAuth client (`client_id`).
    pub client_id: Option<String>,
    /// The user, or for client-credentials tokens the client (`sub`).
    pub subject: Option<String>,
    /// The granted scopes.
    pub scopes: Vec<String>,
}

/// The arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to send back (at most 4096 bytes).
    pub text: String,
}

/// The MCP server: its tools and the shared counters. rmcp builds one per request (the
/// server is stateless); the counters are shared.
#[derive(Debug, Clone)]
pub struct Tools {
    stats: Arc<Stats>,
    tool_router: ToolRouter<Self>,
}

/// The verified token of the HTTP request behind `context`. Refuses (fails closed) when
/// there is none: only a server wired without `RequireScope` in front would get there.
fn token(context: &RequestContext<RoleServer>) -> Result<&VerifiedToken, ErrorData> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<VerifiedToken>())
        .ok_or_else(|| {
            tracing::error!("a tool call without a verified token: is RequireScope in front?");
            ErrorData::internal_error("no verified access token", None)
        })
}

#[tool_router]
impl Tools {
    /// The tools, counting into `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        Tools {
            stats,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Sends the text back unchanged.")]
    fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, ErrorData> {
        if args.text.len() > MAX_ECHO {
            return Err(ErrorData::invalid_params(
                format!("text is longer than {MAX_ECHO} bytes"),
                None,
            ));
        }
        bump(&self.stats.echo);
        Ok(args.text)
    }

    #[tool(
        description = "Who the access token says the caller is: issuer, client, subject \
                          and scopes."
    )]
    fn whoami(&self, context: RequestContext<RoleServer>) -> Result<Json<Caller>, ErrorData> {
        let token = token(&context)?;
        bump(&self.stats.whoami);
        Ok(Json(Caller {
            issuer: token.issuer().to_owned(),
            client_id: token.client_id().map(str::to_owned),
            subject: token.subject().map(str::to_owned),
            scopes: token.scopes().map(str::to_owned).collect(),
        }))
    }

    #[tool(description = "The server's counters. Needs the scope mcp:admin.")]
    fn admin_stats(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<StatsReport>, ErrorData> {
        if !token(&context)?.has_scope(ADMIN_SCOPE) {
            tracing::error!(
                "admin_stats called without {ADMIN_SCOPE}: is OperationScopes in front?"
            );
            return Err(ErrorData::internal_error("not authorized", None));
        }
        bump(&self.stats.admin_stats);
        let stats = &self.stats;
        Ok(Json(StatsReport {
            uptime_seconds: stats.started.elapsed().as_secs(),
            echo_calls: stats.echo.load(Ordering::Relaxed),
            whoami_calls: stats.whoami.load(Ordering::Relaxed),
            admin_stats_calls: stats.admin_stats.load(Ordering::Relaxed),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Example tools behind OAuth: echo and whoami need mcp:tools, admin_stats also \
                 mcp:admin.",
            )
    }
}
