//! Scopes per JSON-RPC operation (feature `jsonrpc`): what each method, and for MCP's
//! `tools/call` each tool, needs beyond the route's own scopes, decided before the request
//! reaches the server. MCP calls this step-up: a client refused with the scopes an
//! operation needs asks its user for them, and calls again.
//!
//! [`OperationScopes`] is a layer placed inside [`RequireScope`](crate::RequireScope) (which
//! admits the token and leaves its [`VerifiedToken`](crate::VerifiedToken)). For each
//! request it:
//!
//! 1. reads the body, up to a bound ([`max_body`](OperationScopesBuilder::max_body), 4 MiB by
//!    default): a `Content-Length` over it is answered `413` before any byte is read, a
//!    chunked body as soon as it grows past it (never buffered beyond it); a body that fails
//!    while read gets `400`, an encoded one (`Content-Encoding`) `415`;
//! 2. parses it once, as one JSON-RPC message or a batch of them, requests and
//!    notifications alike: every message's `method`, and for `tools/call` its
//!    `params.name`, against the rules;
//! 3. calls the inner service with the very bytes it read, as a [`Body`]; or refuses.
//!
//! A body that is not JSON is handed on unchanged: no server runs anything from it, and the
//! server answers it with its own JSON-RPC parse error. A message with no rule, or a
//! response a client sends back, passes.
//!
//! # Refusals
//!
//! A token that lacks the scopes of an operation gets `403` with the challenge RFC 6750
//! §3.1 and MCP's step-up describe:
//!
//! ```text
//! WWW-Authenticate: Bearer resource_metadata="<the RFC 9728 URL>", error="insufficient_scope", scope="<what the operation needs>"
//! ```
//!
//! `scope` names the scopes of the refused operation (its method's and its tool's), not
//! those already granted: the client asks for the union of what it has and what it is told.
//! In a batch, every call must be allowed; the challenge names the union of what the
//! refused calls need. Without a verified token (a route with
//! [`optional`](crate::RequireScope::optional) authentication, or the layer placed outside
//! `RequireScope`), an operation that needs a scope gets `401` naming it. Refusals are the
//! crate's own: an [`AuthError`](crate::AuthError) of kind
//! [`InsufficientScope`](crate::ErrorKind::InsufficientScope) (or
//! [`MissingToken`](crate::ErrorKind::MissingToken)) in the response's extensions, one
//! `tracing` event and the `bearer_guard_requests_total{outcome="refused"}` counter with its
//! `reason`, and an answer built by a [`Rejection`](crate::response::Rejection) (the
//! standard one unless [`rejection`](OperationScopesBuilder::rejection) gives the guard's).
//! The challenge is a `Bearer` one, also for DPoP-bound tokens.
//!
//! # Example
//!
//! An MCP endpoint where every call needs `mcp:tools` (the route's scope) and the tool
//! `admin_stats` also `mcp:admin`:
//!
//! ```
//! use bearer_guard::jsonrpc::{Body, OperationScopes};
//! use bearer_guard::metadata::ProtectedResource;
//! use bearer_guard::{Guard, KeySet, RequireScope, Validator};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
//! # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//! #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
//!
//! let validator = Validator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("https://mcp.example/mcp")
//!     .keys(KeySet::from_jwks_json(jwks)?)
//!     .build()?;
//! let resource = ProtectedResource::builder("https://mcp.example/mcp")
//!     .authorization_server("https://issuer.example")
//!     .build()?;
//! let guard = Guard::new(&validator).protected_resource(&resource)?;
//! let operations = OperationScopes::builder()
//!     .tool("admin_stats", ["mcp:admin"])
//!     .max_body(64 * 1024) // the server's own limit
//!     .protected_resource(&resource) // resource_metadata, and scopes_supported
//!     .build()?;
//! // rmcp's StreamableHttpService, in an MCP server.
//! let server = service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//! });
//!
//! let mcp = ServiceBuilder::new()
//!     .layer(RequireScope::all(&guard, ["mcp:tools"])?)
//!     .layer(operations.clone())
//!     .service(server.clone());
//! assert!(resource.document().contains(r#""scopes_supported":["mcp:admin","mcp:tools"]"#));
//!
//! // With a token of `mcp:tools` only, calling admin_stats is refused with 403
//! // `Bearer resource_metadata="..", error="insufficient_scope", scope="mcp:admin"`. A call
//! // that reaches the layer with no verified token at all (here, sent to it directly) is
//! // refused with 401, naming the scope to ask for; other calls pass.
//! let post = |json: &'static str| Request::post("/mcp").body(Full::<Bytes>::from(json)).unwrap();
//! let admin_stats = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_stats"}}"#;
//! let tools_list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
//! # tokio_test_block_on(async {
//! let res = operations.layer(server.clone()).oneshot(post(admin_stats)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:admin""#
//! );
//! let res = operations.layer(server).oneshot(post(tools_list)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # let _ = mcp;
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The body
//!
//! The layer changes the request's body type: whatever it is given (axum's, hyper's
//! `Incoming`, any [`http_body::Body`]), the inner service gets `Request<`[`Body`]`>`, the
//! bytes read, whole. rmcp's `StreamableHttpService` takes it as it is. Give the layer the
//! same limit as the server behind it: rmcp's is `max_request_body_bytes`.

mod body;
mod decide;
mod layer;
mod message;
mod rules;
mod service;

pub use self::body::Body;
pub use self::layer::{OperationScopes, OperationScopesBuilder};
pub use self::service::{OperationScopesFuture, OperationScopesService};

#[cfg(test)]
mod tests;
