//! Tower middleware for OAuth 2.0 resource servers.
//!
//! `bearer-guard` checks the `Authorization: Bearer` token of each request: a JWT access
//! token (RFC 9068) whose signature, type, lifetime, issuer, audience and scopes it
//! verifies, before the request reaches your handler. The typed claims go into the request's
//! extensions. Failures are answered per RFC 6750 (`401`/`403` with `WWW-Authenticate`) or,
//! on gRPC requests, with `grpc-status` 16 / 7.
//!
//! It is a plain [`tower::Layer`](tower_layer::Layer): use it with axum, tonic, hyper or
//! anything else built on tower.
//!
//! # Example
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use bearer_guard::{AccessClaims, Claims, KeySet, RequireScope, Validator};
//! # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//! #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
//!
//! // One validator per issuer and audience, shared by every route.
//! let validator = Validator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("https://api.example")
//!     .keys(KeySet::from_jwks_json(jwks)?)
//!     .build()?;
//!
//! async fn list(Extension(claims): Extension<Claims<AccessClaims>>) -> String {
//!     claims.client_id().unwrap_or_default().to_owned()
//! }
//!
//! let app: Router = Router::new()
//!     .route("/transactions", get(list).layer(RequireScope::all(&validator, ["read:transactions"])))
//!     .route("/reports", get(list).layer(RequireScope::any(&validator, ["reports:read", "admin"])));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `axum` feature, `Claims<AccessClaims>` is itself an extractor, and
//! `Option<Claims<AccessClaims>>` one for [optional](RequireScope::optional) authentication.
//!
//! # What is checked
//!
//! - **Header**: `Authorization: Bearer <token68>` (scheme in any case, exactly one token),
//!   at most 8 KiB by default, checked before any parsing.
//! - **Signature**: the key is looked up by `kid` in the configured [`KeySet`]; every key pins
//!   one algorithm and the token's `alg` must equal it. `none` is never accepted, HMAC only
//!   with a secret added through [`Key::hmac`], and `jku`, `x5u`, `jwk`, `x5c` are ignored:
//!   a token never chooses its key. Any `crit` header is refused.
//! - **Type**: `typ` must be `at+jwt` (RFC 9068), unless
//!   [`allow_untyped_tokens`](ValidatorBuilder::allow_untyped_tokens) is set.
//! - **Claims**: `exp` required; `nbf`, `iat` checked when present, with one leeway (60 s by
//!   default, 300 s at most); `iss` exact; `aud` must contain the configured audience. A
//!   claim of the wrong JSON type is refused, and so is any repeated member name.
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

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod cache;
mod challenge;
mod claims;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod dpop;
mod error;
mod future;
mod json;
mod jws;
mod keys;
mod layer;
pub mod mtls;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "remote")]
mod remote;
pub mod revocation;
mod scope;
mod service;
#[cfg(any(feature = "remote", feature = "client"))]
mod url;
mod validator;

// The test helpers shared with the integration tests name the crate `bearer_guard`.
#[cfg(test)]
extern crate self as bearer_guard;
#[cfg(test)]
#[path = "../tests/common/mint.rs"]
mod mint;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "tonic")]
mod tonic;

#[cfg(feature = "axum")]
pub use crate::axum::ClaimsRejection;
pub use crate::cache::{DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES};
pub use crate::claims::{AccessClaims, Audience, Claims};
pub use crate::error::{AuthError, BoxError, ConfigError, ErrorKind};
pub use crate::future::ResponseFuture;
pub use crate::keys::{JwksOptions, Key, KeySet};
pub use crate::layer::RequireScope;
#[cfg(feature = "remote")]
pub use crate::remote::http::{HttpClient, ResponseFuture as HttpResponseFuture};
pub use crate::scope::RequiredScopes;
pub use crate::service::RequireScopeService;
#[cfg(feature = "tonic")]
pub use crate::tonic::RequestClaimsExt;
#[cfg(feature = "remote")]
pub use crate::validator::RemoteKeys;
pub use crate::validator::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, MAX_LEEWAY, StaticKeys, Validator, ValidatorBuilder,
};
pub use jsonwebtoken::Algorithm;
