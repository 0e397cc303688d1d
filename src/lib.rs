//! Tower middleware for OAuth 2.0 resource servers.
//!
//! `bearer-guard` checks the access token of each request before your handler runs: a JWT
//! access token (RFC 9068) whose signature, type, lifetime, issuer, audience and scopes it
//! verifies. The typed claims go into the request's extensions. Failures are answered per
//! RFC 6750 (`401`/`403` with `WWW-Authenticate`) or, on gRPC requests, with a
//! `grpc-status`. It is a plain [`tower::Layer`](tower_layer::Layer): axum, tonic and hyper
//! take it with `.layer(..)`.
//!
//! # Quick start
//!
//! ```sh
//! cargo add bearer-guard --features axum,remote
//! ```
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use bearer_guard::{AccessClaims, Claims, RemoteKeys, RequireScope, Validator};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One validator per API, shared by every route.
//! let validator = Validator::builder()
//!     .audience("https://api.example")                   // the RFC 8707 resource this API is
//!     .keys(RemoteKeys::discover("https://issuer.example")) // RFC 8414 metadata -> jwks_uri
//!     .build()?;
//! validator.ready().await?;                               // fetch the keys now, fail fast
//!
//! async fn list(claims: Claims<AccessClaims>) -> String {
//!     format!("hello, {}", claims.client_id().unwrap_or("?"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/transactions", get(list).layer(RequireScope::all(&validator, ["read:transactions"])?))
//!     .route("/reports", get(list).layer(RequireScope::any(&validator, ["reports:read", "admin"])?));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! With static keys, `.keys(KeySet::from_jwks_json(bytes)?)` and no `ready()`. The layer puts
//! one record into an admitted request, the [`VerifiedToken`]: who the client is, what it may
//! do, until when, whatever the claims type, and the typed claims
//! ([`VerifiedToken::claims`]). Without the `axum` feature, read
//! `req.extensions().get::<VerifiedToken>()` (there is no separate `Claims<T>` extension).
//! [`Validator::validate`] and [`Validator::validate_async`] work on their own, for GraphQL
//! resolvers, WebSocket handshakes or custom extractors.
//!
//! # Where to start
//!
//! Three types: a [`Validator`] (built by [`Validator::builder`]: the issuer, the audience,
//! the keys from [`RemoteKeys`] or a [`KeySet`]), a [`RequireScope`] layer per route (from
//! the validator, or from a [`Guard`] holding what an API's routes share), and the
//! [`Claims`] the handler reads (from the one [`VerifiedToken`] the layer records). A refusal is an
//! [`AuthError`] with an [`ErrorKind`]; a mistake in the configuration, a [`ConfigError`].
//! Everything else lives in the module named for what it is: [`keys`], [`remote`] and
//! [`introspection`] (where tokens are checked), [`metadata`] (RFC 9728), [`response`] (how
//! refusals are answered), [`dpop`] and [`mtls`] (sender-constrained tokens),
//! [`revocation`], [`rate_limit`], [`client`] (the outgoing side).
//!
//! # The request's way
//!
//! [`RequireScope`] decides in five stages (`extract -> verify -> bind -> policy ->
//! revocation`): the `Authorization` header is read, the token verified (from the
//! verified-token cache, else its signature and claims), a sender-constrained token's binding
//! checked, the route's scopes and requirements applied, then the revocation store asked.
//! Only a fetch of the issuer's keys or a revocation answer makes a request wait; a refusal
//! is built from one table ([`ErrorKind::status`], [`ErrorKind::oauth_error`],
//! [`ErrorKind::grpc_code`]) and can be answered your way with a [`Rejection`](response::Rejection). A [`Guard`]
//! holds what the routes of one API share on the HTTP side (`realm`, RFC 9728
//! `resource_metadata`, the rejection).
//!
//! # What is checked
//!
//! - **Header**: `Authorization: Bearer <token68>` (scheme in any case, exactly one token),
//!   at most 8 KiB by default, checked before any parsing.
//! - **Signature**: the key is looked up by `kid` in the configured [`KeySet`]; every key pins
//!   one algorithm and the token's `alg` must equal it. `none` is never accepted, HMAC only
//!   with a secret added through [`Key::hmac`](keys::Key::hmac), and `jku`, `x5u`, `jwk`, `x5c` are ignored:
//!   a token never chooses its key. Any `crit` header is refused.
//! - **Profile** ([`Profile`]): by default RFC 9068: `typ` must be `at+jwt`, and `iss`,
//!   `exp`, `aud`, `sub`, `client_id`, `iat`, `jti` are required; [`Profile::Jwt`] for
//!   issuers that do not follow it.
//! - **Claims**: `nbf`, `iat` checked when present, with one leeway (60 s by default, 300 s
//!   at most); dates must be plain numbers within `i64` seconds; `iss` exact; `aud` must
//!   contain a configured audience; an optional maximum lifetime. A claim of the wrong JSON
//!   type is refused, and so is any repeated member name.
//! - **Binding**: a token with a `cnf` claim (DPoP, mTLS) is bound to a key its presenter
//!   must prove; presented as a plain bearer token, it is refused.
//! - **Scopes**: `scope` (space-delimited) and `scp` (array or string) against the route's
//!   [`RequiredScopes`]; then any [claim requirement](RequireScope::require) of the route.
//! - **Revocation** (when configured): issuer and `jti` against a [`revocation`] store.
//!
//! Tokens that passed are kept in a bounded verified-token cache
//! ([`token_cache`](ValidatorBuilder::token_cache)): a repeated token skips the signature and
//! the parsing, never the time, key, scope and revocation checks.
//!
//! # Deployment
//!
//! - **Clock skew.** Keep clocks in sync (NTP). The leeway absorbs small skew; it also
//!   lengthens every token's life by as much, so keep it small.
//! - **`iss` and `aud`.** Give every API its own audience (its RFC 8707 resource URI) and
//!   have the issuer put it in `aud`: a token minted for one service is then useless at
//!   another, even when both trust the same issuer.
//! - **Key rotation.** Publish the next key in the JWKS before signing with it, and keep the
//!   old one until the last token it signed has expired. With the `remote` feature a new
//!   `kid` is picked up on its first token, and a removed key stops verifying (cached tokens
//!   included) at the next refresh. With static keys, build a new validator.
//!
//! # Cargo features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `aws_lc_rs` | yes | signatures with aws-lc-rs (the faster backend; used when both are on) |
//! | `rust_crypto` | no | signatures with the RustCrypto crates (pure Rust, slower) |
//! | `axum` | no | `Claims` and `Option<Claims>` extractors |
//! | `tonic` | no | claims from `tonic::Request`, `AuthError` into `tonic::Status` |
//! | `remote` | no | keys from a JWKS URL or issuer discovery, cached and rotated |
//! | `redis` | no | [`revocation`] shared through Redis |
//! | `client` | no | the outgoing side: fetch, cache and send client-credentials tokens |
//! | `rate-limit` | no | `rate_limit::RateLimitByClient`: per-client quotas (governor), 429 with `Retry-After` |
//! | `metrics` | no | counters and histograms through the `metrics` facade |
//! | `jsonrpc` | no | `jsonrpc::OperationScopes`: scopes per JSON-RPC method and MCP tool, the step-up challenge |

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorize;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod cache;
mod checks;
mod claims;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
#[cfg(any(feature = "remote", feature = "client"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "remote", feature = "client"))))]
pub mod client_auth;
pub mod dpop;
mod error;
#[cfg(any(feature = "remote", feature = "client"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "remote", feature = "client"))))]
pub mod fetch;
mod future;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod introspection;
mod json;
#[cfg(feature = "jsonrpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "jsonrpc")))]
pub mod jsonrpc;
mod jws;
mod keyring;
pub mod keys;
mod layer;
pub mod metadata;
mod metrics;
pub mod mtls;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis_conn;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
pub mod response;
pub mod revocation;
mod scope;
pub mod service;
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod testkit;
pub mod token;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;
mod url;
mod validator;
mod verified;

// Every Rust block of the README compiles, as a doctest: it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The crate root: what the quick start and a typical app use. Everything else lives in the
// module named for what it is, and is exported there only.
pub use crate::checks::Profile;
pub use crate::claims::{AccessClaims, Claims};
pub use crate::error::{AuthError, ConfigError, ErrorKind};
pub use crate::keyring::KeySet;
pub use crate::layer::{Guard, RequireScope};
#[cfg(feature = "remote")]
pub use crate::remote::source::RemoteKeys;
pub use crate::scope::RequiredScopes;
pub use crate::validator::{Issuer, Validator, ValidatorBuilder};
pub use crate::verified::VerifiedToken;
