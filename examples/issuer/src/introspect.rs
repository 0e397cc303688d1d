//! `POST /oauth/introspect` (RFC 7662): an authenticated client asks whether an access token
//! is active, and what it grants.
//!
//! The answer is `{"active": false}` (and nothing else, §2.2) for a token that is unknown,
//! invalid, expired or revoked, and for one the caller may not see: a resource server (a
//! client with `introspect_for`) sees tokens whose `aud` names one of its resources; any other
//! client sees only its own tokens. Refresh tokens are not introspected here. A DPoP-bound
//! token's answer carries its `cnf.jkt` and `token_type` `DPoP` (RFC 9449 §6.2).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::clients::Client;
use super::error::{OAuthError, no_store_json};
use super::form::{AuthMethod, token_request};
use super::server::{Issuer, unix_now};
use super::tokens::AccessClaims;

impl Issuer {
    pub(super) async fn introspect(
        &self,
        peer: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, OAuthError> {
        let (_, credentials, token) = token_request(headers, body)?;
        // Public clients cannot authenticate: they may not introspect (§2.1).
        if credentials.method == AuthMethod::None {
            return Err(OAuthError::invalid_client());
        }
        let client = self
            .authenticate("introspection", peer, credentials)
            .await?;

        let claims = match self.access_claims(&token.0).await? {
            Some(claims) if claims.exp > unix_now() => claims,
            _ => return Ok(inactive(&client, "unknown_or_expired")),
        };
        if self.is_revoked(&claims.jti).await? {
            return Ok(inactive(&client, "revoked"));
        }
        let visible = claims.client_id == client.id
            || client
                .introspect_for
                .iter()
                .any(|aud| claims.has_audience(aud));
        if !visible {
            return Ok(inactive(&client, "another_audience"));
        }
        tracing::info!(client_id = %client.id, jti = %claims.jti, "token introspected: active");
        Ok(no_store_json(StatusCode::OK, &active(&claims)))
    }
}

fn active(claims: &AccessClaims) -> serde_json::Value {
    let mut body = json!({
        "active": true,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
        "token_type": "Bearer",
    });
    if let Some(scope) = &claims.scope {
        body["scope"] = json!(scope);
    }
    // The user's sign-in (RFC 9470 §6.1), for resource servers that require one.
    if let Some(acr) = &claims.acr {
        body["acr"] = json!(acr);
    }
    if let Some(auth_time) = claims.auth_time {
        body["auth_time"] = json!(auth_time);
    }
    // An exchanged token's actor chain (RFC 8693 §2.2.1, §4.1).
    if let Some(act) = &claims.act {
        body["act"] = act.clone();
    }
    // A DPoP-bound token (RFC 9449 §6.2): its key, for the resource server to check proofs.
    if let Some(cnf) = &claims.cnf {
        body["cnf"] = json!({ "jkt": cnf.jkt });
        body["token_type"] = json!("DPoP");
    }
    body
}

fn inactive(client: &Client, reason: &'static str) -> Response {
    tracing::info!(client_id = %client.id, reason, "token introspected: inactive");
    no_store_json(StatusCode::OK, &json!({ "active": false }))
}
