//! DPoP at the token endpoint (RFC 9449 §5, §8, §10): a token request with a `DPoP` header
//! gets tokens bound to the proof's key.
//!
//! - The proof is checked with `bearer_guard::dpop::Dpop::verify_token_request` once the
//!   client is authenticated and the grant checked, and before the grant is used up (a code
//!   or refresh token that a `use_dpop_nonce` answer consumed could not be retried). Its
//!   `htu` must be this issuer's public token endpoint URL, built from `ISSUER`.
//! - The access token gets `cnf: {"jkt": ..}` and the response `token_type: "DPoP"`. Refresh
//!   tokens of public clients are bound to the key too (a confidential client's refresh
//!   token is already bound to its authentication, §5); using a bound refresh token needs a
//!   proof of that key. A code asked for with `dpop_jkt` (§10) needs a proof of that key.
//! - A bad proof is a 400 `invalid_dpop_proof`. With `Config::dpop_nonces`, proofs must
//!   carry a nonce of this issuer (§8): a proof without a valid one is answered 400
//!   `use_dpop_nonce` with a `DPoP-Nonce` header, and each DPoP token response carries the
//!   next nonce. Nonces are sealed with a secret drawn at start: replicas do not share them.
//! - Proofs go to the replay store of `Config::dpop_replay` (Redis, shared by replicas), or
//!   one in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use bearer_guard::dpop::{Dpop, DpopErrorKind, DpopReplay, ProofRequest};

use super::clients::Client;
use super::error::OAuthError;
use super::server::Issuer;
use super::{Error, TOKEN_PATH};

/// How long a nonce of the token endpoint is good for.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The token endpoint's DPoP verifier.
pub struct TokenEndpointDpop {
    dpop: Dpop,
    /// The token endpoint's path under the issuer's origin: with the origin configured in
    /// `dpop`, the public token endpoint URL proofs name in `htu`.
    path: Uri,
}

impl std::fmt::Debug for TokenEndpointDpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpointDpop")
            .field("path", &self.path)
            .field("nonces", &self.dpop.requires_nonce())
            .finish_non_exhaustive()
    }
}

impl TokenEndpointDpop {
    /// The verifier of the issuer `issuer` (an `http(s)` URL): the token endpoint is
    /// `<issuer>/oauth/token`.
    pub fn new(
        issuer: &str,
        nonces: bool,
        replay: Option<Arc<dyn DpopReplay>>,
    ) -> Result<TokenEndpointDpop, Error> {
        let url = url::Url::parse(issuer).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("issuer {issuer:?} must be an http(s) URL").into());
        }
        let path = format!("{}{TOKEN_PATH}", url.path().trim_end_matches('/'));
        let mut builder = Dpop::builder().external_origin(url.origin().ascii_serialization());
        if nonces {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
            builder = builder.nonces(secret, NONCE_LIFETIME);
        }
        if let Some(replay) = replay {
            builder = builder.replay(replay);
        }
        Ok(TokenEndpointDpop {
            dpop: builder.build().map_err(|e| format!("DPoP verifier: {e}"))?,
            path: path
                .parse()
                .map_err(|e| format!("token endpoint path {path:?}: {e}"))?,
        })
    }

    /// The JWS algorithms proofs may be signed with, for the metadata's
    /// `dpop_signing_alg_values_supported`.
    pub fn algorithms(&self) -> Vec<String> {
        let names = self.dpop.algs_param();
        let names = names
            .strip_prefix("algs=\"")
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or("");
        names.split_ascii_whitespace().map(str::to_owned).collect()
    }

    /// The next nonce, when nonces are required.
    pub fn nonce_header(&self) -> Option<HeaderValue> {
        self.dpop.nonce_header()
    }
}

/// Whether a request carries a `DPoP` header (one or more: more is refused when checked).
pub fn has_proof(headers: &HeaderMap) -> bool {
    headers.contains_key("dpop")
}

impl Issuer {
    /// The DPoP proof of a token request by `client`, once it is authenticated and its grant
    /// checked: `Ok(None)` without a `DPoP` header, `Ok(Some(jkt))` for a valid proof. A
    /// grant bound to a key (`bound_to`: a `dpop_jkt` code, a bound refresh token) needs a
    /// proof of that key.
    pub(super) async fn token_proof(
        &self,
        client: &Client,
        headers: &HeaderMap,
        bound_to: Option<&str>,
    ) -> Result<Option<String>, OAuthError> {
        let endpoint = &self.0.dpop;
        if !has_proof(headers) {
            return match bound_to {
                None => Ok(None),
                Some(_) => Err(self.proof_refused(client, DpopErrorKind::MissingProof)),
            };
        }
        let request = ProofRequest::new(&Method::POST, &endpoint.path, headers);
        match endpoint.dpop.verify_token_request(&request, bound_to).await {
            Ok(proof) => Ok(Some(proof.jkt().to_owned())),
            Err(err) => Err(self.proof_refused(client, err.kind())),
        }
    }

    /// The answer to a proof that failed `kind` (RFC 9449 §5, §8): 400 `invalid_dpop_proof`,
    /// 400 `use_dpop_nonce` with a fresh nonce, or 503 when the replay store is down.
    fn proof_refused(&self, client: &Client, kind: DpopErrorKind) -> OAuthError {
        let reason = kind.as_str();
        if kind.nonce_due() {
            tracing::debug!(client_id = %client.id, reason, "token request: DPoP nonce required");
            return OAuthError {
                dpop_nonce: self.0.dpop.nonce_header(),
                ..OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    "the DPoP proof must carry this server's nonce: retry with the DPoP-Nonce \
                     of this answer",
                )
            };
        }
        if kind == DpopErrorKind::ReplayUnavailable {
            tracing::warn!(reason, "DPoP replay store unavailable");
            return OAuthError::unavailable("the DPoP replay store is unavailable; retry later");
        }
        tracing::info!(
            target: "issuer::security",
            event = "dpop_proof_refused",
            client_id = %client.id,
            reason,
            "token request with an invalid DPoP proof refused"
        );
        let description = match kind {
            DpopErrorKind::MissingProof => {
                "this grant is bound to a DPoP key: the request needs a DPoP proof of it".to_owned()
            }
            DpopErrorKind::KeyMismatch => {
                "the DPoP proof's key is not the key this grant is bound to".to_owned()
            }
            other => other.to_string(),
        };
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }
}

/// `dpop_jkt` (RFC 9449 §10): a base64url SHA-256 JWK thumbprint, 43 characters.
pub fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
