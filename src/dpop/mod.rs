//! DPoP: sender-constrained access tokens (RFC 9449).
//!
//! A DPoP-bound access token carries the SHA-256 thumbprint of the client's public key in
//! `cnf.jkt`, and comes as `Authorization: DPoP <token>` with a `DPoP` header: a short JWT
//! the client signs for each request with the matching private key. A stolen token is useless
//! without that key.
//!
//! [`Dpop`] verifies such a proof once the access token itself has verified:
//!
//! - exactly one `DPoP` header, at most [`max_proof_len`](DpopBuilder::max_proof_len) bytes,
//!   checked before any parsing;
//! - header and claims read strictly (a repeated member name is refused at any depth);
//!   `typ` is `dpop+jwt`; no `crit`; `alg` asymmetric and in the allowed list;
//! - `jwk` a public key only (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k` refused), pinned to
//!   `alg`, and the signature verifies with it;
//! - `htm` is the request's method, `htu` its URI without query and fragment (both
//!   normalised per RFC 3986 §6.2.2 and §6.2.3; the origin configurable for servers behind a
//!   TLS-terminating proxy);
//! - `iat` within the window (60 s back, 5 s ahead by default), and the proof's own `exp`
//!   and `nbf` when present (RFC 7519, with the same leeway); with
//!   [`nonces`](DpopBuilder::nonces), a valid server nonce (stateless: HMAC-sealed issue
//!   time, so replicas sharing the secret need no shared state);
//! - `ath` is the SHA-256 of the access token, and the key's RFC 7638 thumbprint is the
//!   token's `cnf.jkt`;
//! - the proof was not seen before: its `jti` (per key) goes into a replay store,
//!   [`MemoryReplay`] or, with the `redis` feature, `RedisReplay` shared by every replica.
//!   A store that cannot answer fails the request closed (503).
//!
//! Each failed check has its own [`DpopErrorKind`], which says how to answer: 401 with
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (or `use_dpop_nonce` and a fresh
//! `DPoP-Nonce` header, or `invalid_token` for a key that does not match the token), 503
//! when the replay store is down. A DPoP-bound token sent as `Bearer` is always refused
//! (RFC 9449 §7.2), whatever the route.
//!
//! An authorization server (feature `token-endpoint`) checks the proof of a token request
//! with `Dpop::verify_token_request` and binds the token it issues to [`VerifiedProof::jkt`].
//! With the `dpop-client` feature, `DpopKey` creates proofs.

// The kinds of refusal live with the crate's one error table (`crate::error`), which an
// `AuthError` carries them in; this module is where they are exported.
use crate::error::dpop as error;
mod htu;

/// The `DPoP-Nonce` header (RFC 9449 §8): the server's nonce, in a refusal or with a
/// response.
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");
mod jwk;
pub(crate) use self::jwk::algorithm_name;
#[cfg(feature = "dpop-client")]
mod key;
mod nonce;
mod outcome;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod verifier;

pub use self::error::{DpopError, DpopErrorKind};
pub use self::jwk::jwk_thumbprint;
#[cfg(feature = "dpop-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop-client")))]
pub use self::key::{DpopKey, ProofBuilder, ProofError};
pub use self::outcome::{ProofCheck, ProofFuture, VerifiedProof};
pub use self::proof::ProofRequest;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisReplay;
pub use self::replay::{
    DEFAULT_REPLAY_CAPACITY, DpopReplay, MemoryReplay, ReplayError, ReplayFuture, ReplayKey,
};
pub use self::verifier::{
    DEFAULT_MAX_PROOF_LEN, DEFAULT_PROOF_ALGORITHMS, DEFAULT_PROOF_FUTURE_LEEWAY,
    DEFAULT_PROOF_MAX_AGE, Dpop, DpopBuilder, MAX_PROOF_FUTURE_LEEWAY, MAX_PROOF_MAX_AGE,
};
