//! `POST /oauth/register` (RFC 7591): open dynamic registration of public clients, as MCP
//! clients do it. Only `token_endpoint_auth_method = "none"` and the authorization-code flow;
//! redirect URIs must be `https`, or `http` to a loopback host; scopes and resources come
//! from the clients file's `[registration]` policy: a registered client may ask for any of
//! its scopes at each authorization, and the `scope` it registered with (if any) is what it
//! gets when it asks for none. Registered clients live in the store (so
//! replicas share them) for [`REGISTRATION_LIFETIME`]; registrations per peer are limited.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::clients::{MAX_REDIRECT_URIS, REGISTERED_PREFIX, client_from_entry};
use super::error::{OAuthError, no_store_json};
use super::scope::{check_redirect_uri, grant_scope};
use super::server::{Issuer, random_token, store_failed, unix_now};

/// How long a registered client exists.
pub const REGISTRATION_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The client metadata this server reads; other members are ignored (§2).
#[derive(Deserialize)]
struct Metadata {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    scope: Option<String>,
}

fn invalid(code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, code, description)
}

impl Issuer {
    pub(super) async fn register(
        &self,
        peer: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, OAuthError> {
        let Some(policy) = &self.0.registration else {
            return Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "registration is closed",
            ));
        };
        let is_json = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/json",
            ));
        }
        let metadata: Metadata = serde_json::from_slice(body).map_err(|_| {
            invalid(
                "invalid_client_metadata",
                "the body must be a JSON object of client metadata",
            )
        })?;

        let redirect_uris = metadata.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(invalid(
                "invalid_redirect_uri",
                format!("give 1 to {MAX_REDIRECT_URIS} redirect_uris"),
            ));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri)
                .map_err(|why| invalid("invalid_redirect_uri", format!("a redirect URI {why}")))?;
        }
        if metadata
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(invalid(
                "invalid_client_metadata",
                "only public clients may register: token_endpoint_auth_method must be none",
            ));
        }
        let grants_ok = metadata.grant_types.as_ref().is_none_or(|g| {
            g.iter()
                .all(|g| g == "authorization_code" || g == "refresh_token")
        });
        let responses_ok = metadata
            .response_types
            .as_ref()
            .is_none_or(|r| r.iter().all(|r| r == "code"));
        if !grants_ok || !responses_ok {
            return Err(invalid(
                "invalid_client_metadata",
                "only authorization_code and refresh_token, response type code",
            ));
        }
        // RFC 7591 §2: the server decides a registered client's scopes. A client may ask for
        // any scope of the policy at each authorization (and get consent for what it asks):
        // a 403 `insufficient_scope` names scopes beyond those of the first 401, and the
        // client steps up by asking for them. What it registered with is its default.
        let all = &policy.scopes;
        let asked = grant_scope(all, all, metadata.scope.as_deref())
            .map_err(|e| invalid("invalid_client_metadata", e.description))?;

        self.0
            .gate
            .register_attempt(peer)
            .map_err(|r| self.refused(r, "registration", peer))?;
        let client_id = format!("{REGISTERED_PREFIX}{}", random_token(16)?);
        let mut entry = policy.entry(client_id.clone(), metadata.client_name, redirect_uris);
        if metadata.scope.is_some() {
            entry.default_scope = Some(asked.join(" "));
        }
        let json = serde_json::to_string(&entry).map_err(|_| OAuthError::server_error())?;
        let client = client_from_entry(entry)
            .map_err(|e| invalid("invalid_client_metadata", e.to_string()))?;
        self.0
            .store
            .put(
                &self.key("client", &client_id),
                &json,
                REGISTRATION_LIFETIME,
            )
            .await
            .map_err(|e| store_failed(&e))?;
        tracing::info!(client_id = %client.id, redirect_uris = ?client.redirect_uris, peer, "client registered");

        let mut body = json!({
            "client_id": client.id,
            "client_id_issued_at": unix_now(),
            "redirect_uris": client.redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": client.scopes.join(" "),
        });
        if let Some(name) = &client.name {
            body["client_name"] = json!(name);
        }
        Ok(no_store_json(StatusCode::CREATED, &body))
    }
}
