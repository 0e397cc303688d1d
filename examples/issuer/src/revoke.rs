//! `POST /oauth/revoke` (RFC 7009): a client revokes one of its own tokens.
//!
//! - An access token (JWT or opaque): its `jti` goes to the revocation store until its `exp`,
//!   where resource servers sharing the store see it.
//! - A refresh token: its whole family (§2.1: the grant's refresh and access tokens).
//!
//! `token_type_hint` only orders the look-ups. Unknown, invalid, expired and other clients'
//! tokens get the same empty 200 as a revoked one (§2.2: nothing is revealed), but nothing
//! is written; the log keeps the reason. A store failure is a 503 with `Retry-After`.

use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::OAuthError;
use super::form::token_request;
use super::server::{Issuer, unix_now};

impl Issuer {
    pub(super) async fn revoke(
        &self,
        peer: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, OAuthError> {
        let (params, credentials, token) = token_request(headers, body)?;
        let refresh_first = params.one("token_type_hint")? == Some("refresh_token");
        let method = credentials.method;
        let client = self.authenticate("revocation", peer, credentials).await?;
        let ignored = |reason: &'static str, message: &'static str| {
            tracing::info!(client_id = %client.id, reason, "{message}");
            Ok(revoked_response())
        };
        const FOREIGN: &str = "revocation refused: the token belongs to another client";

        for refresh in [refresh_first, !refresh_first] {
            if refresh {
                let Some(record) = self.refresh_record(&token.0).await? else {
                    continue;
                };
                if record.grant.client_id != client.id {
                    return ignored("revoke_refused_foreign", FOREIGN);
                }
                self.revoke_family(&record.family).await?;
                tracing::info!(client_id = %client.id, reason = "revoked", auth = method.name(), "refresh token revoked with its family");
                return Ok(revoked_response());
            }
            let Some(claims) = self.access_claims(&token.0).await? else {
                continue;
            };
            if claims.exp <= unix_now() {
                return ignored(
                    "revoke_expired_token",
                    "revocation ignored: the token has expired",
                );
            }
            if claims.client_id != client.id {
                return ignored("revoke_refused_foreign", FOREIGN);
            }
            self.revoke_jti(&claims.jti, claims.exp).await?;
            tracing::info!(
                client_id = %client.id,
                reason = "revoked",
                jti = %claims.jti,
                auth = method.name(),
                "access token revoked"
            );
            return Ok(revoked_response());
        }
        ignored(
            "revoke_invalid_token",
            "revocation ignored: not a token of this issuer",
        )
    }
}

/// The answer to every revocation request that got past authentication (§2.2).
fn revoked_response() -> Response {
    (
        StatusCode::OK,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
    )
        .into_response()
}
