//! `POST /oauth/token` (RFC 6749 §3.2): client authentication, then one of four grants:
//! `client_credentials` (§4.4), `authorization_code` and `refresh_token` (in `grants.rs`),
//! and the token exchange of RFC 8693 (in `exchange.rs`).
//! Each grant checks a `DPoP` proof, if any, once its own checks passed (`dpop.rs`).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::clients::Client;
use super::dpop::has_proof;
use super::error::{OAuthError, no_store_json};
use super::exchange::TOKEN_EXCHANGE;
use super::form::{Params, credentials};
use super::scope::{grant_audience, grant_scope};
use super::server::{Issuer, random_token};
use super::tokens::{Grant, token_response};

impl Issuer {
    pub(super) async fn token(
        &self,
        peer: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, OAuthError> {
        let mut params = Params::from_token_request(headers, body)?;
        let credentials = credentials(headers, &mut params)?;
        let grant_type = params.required("grant_type")?.to_owned();
        if !matches!(
            grant_type.as_str(),
            "client_credentials" | "authorization_code" | "refresh_token" | TOKEN_EXCHANGE
        ) {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token, client_credentials \
                 or urn:ietf:params:oauth:grant-type:token-exchange",
            ));
        }
        let method = credentials.method;
        let client = self.authenticate("token", peer, credentials).await?;
        let log_refusal = |e: &OAuthError| {
            tracing::info!(client_id = %client.id, grant_type, error = e.code, "token request refused");
        };

        let body = match grant_type.as_str() {
            "authorization_code" | "refresh_token" if !client.may_use_authorization_code() => {
                Err(OAuthError::unauthorized_client(
                    "this client may not use the authorization code flow",
                ))
            }
            "authorization_code" => self.redeem_code(&client, &mut params, headers).await,
            "refresh_token" => self.refresh(&client, &mut params, headers).await,
            TOKEN_EXCHANGE if !client.may_exchange() => Err(OAuthError::unauthorized_client(
                "this client may not exchange tokens",
            )),
            TOKEN_EXCHANGE => self.exchange(&client, &mut params, headers).await,
            _ if !client.may_use_client_credentials() => Err(OAuthError::unauthorized_client(
                "this client may not use client_credentials",
            )),
            _ => {
                self.client_credentials(&client, &params, headers, method.name())
                    .await
            }
        }
        .inspect_err(log_refusal)?;
        let mut response = no_store_json(StatusCode::OK, &body);
        // With nonces on, every DPoP answer carries the next one (RFC 9449 §8.2).
        if has_proof(headers)
            && let Some(nonce) = self.0.dpop.nonce_header()
        {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        Ok(response)
    }

    /// `grant_type=client_credentials`: the client is the subject.
    async fn client_credentials(
        &self,
        client: &Client,
        params: &Params,
        headers: &HeaderMap,
        auth: &'static str,
    ) -> Result<Value, OAuthError> {
        let grant = Grant {
            client_id: client.id.clone(),
            sub: client.id.clone(),
            scope: grant_scope(&client.scopes, &client.default_scope, params.one("scope")?)?,
            aud: grant_audience(&client.resources, &params.all("resource"))?,
            lifetime: client.lifetime,
            authentication: None,
        };
        let jkt = self.token_proof(client, headers, None).await?;
        let issued = self
            .issue(&grant, random_token(16)?, jkt.as_deref())
            .await?;
        tracing::info!(
            client_id = %client.id,
            scope = %grant.scope.join(" "),
            aud = ?grant.aud,
            jti = %issued.jti,
            expires_in = grant.lifetime,
            auth,
            dpop_jkt = issued.jkt.as_deref(),
            "access token issued"
        );
        Ok(token_response(&issued, &grant, None))
    }
}
