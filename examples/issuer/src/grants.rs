//! The two user grants of OAuth 2.1: `authorization_code` with PKCE (RFC 7636, S256 only) and
//! `refresh_token` with rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
//!
//! - A code is single-use, bound to client, redirect URI, PKCE challenge and resource, and
//!   lives [`Config::code_lifetime`](super::Config::code_lifetime). Its first redemption
//!   records what it issued; a second one is refused and revokes all of that.
//! - Refresh tokens of one grant form a family. Each use returns a new refresh token and
//!   retires the old one; presenting a retired one revokes the family: its refresh tokens
//!   stop working and its access tokens go to the revocation store.
//!
//! - A token request with a `DPoP` proof gets a DPoP-bound access token; a public client's
//!   refresh token is bound to the same key, and a code asked for with `dpop_jkt` needs a
//!   proof of that key (`dpop.rs`). The proof is checked before the code or refresh token is
//!   used up, so that a `use_dpop_nonce` answer can be retried.
//!
//! "First" is decided by the store's `put_new` (Redis `SET NX`), so two replicas sharing a
//! Redis agree on it. After a winner records an access token in its family, it checks the
//! family again: either it sees a concurrent revocation, or the revoker sees its token.

use std::time::Duration;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::clients::{Client, MAX_LIFETIME};
use super::error::OAuthError;
use super::form::Params;
use super::scope::{grant_scope, is_resource_uri};
use super::server::{Issuer, random_token, store_failed, unix_millis, unix_now};
use super::store::digest;
use super::tokens::{Grant, Issued, token_response};

/// An authorization code's binding (stored under the code's hash).
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    pub grant: Grant,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_ms: u64,
    /// `dpop_jkt` of the authorization request (RFC 9449 §10): the code needs a proof of
    /// this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// What the first redemption of a code issued.
#[derive(Serialize, Deserialize)]
struct Redeemed {
    jti: String,
    exp: i64,
    family: String,
}

/// A refresh token's grant (stored under the token's hash).
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub family: String,
    pub grant: Grant,
    /// The DPoP key (thumbprint) the refresh token is bound to: its use needs a proof of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// `code_verifier = 43*128unreserved` (RFC 7636 §4.1).
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `S256`: `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    is_verifier(verifier) && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

impl Issuer {
    /// Stores a new code for `record`; returns the code.
    pub(super) async fn create_code(&self, record: &CodeRecord) -> Result<String, OAuthError> {
        let code = random_token(32)?;
        let json = serde_json::to_string(record).map_err(|_| OAuthError::server_error())?;
        self.0
            .store
            .put(
                &self.key("code", &digest(&code)),
                &json,
                self.0.code_lifetime,
            )
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(code)
    }

    /// `grant_type=authorization_code` for an authenticated (or public) `client`.
    pub(super) async fn redeem_code(
        &self,
        client: &Client,
        params: &mut Params,
        headers: &HeaderMap,
    ) -> Result<Value, OAuthError> {
        let code = params.required_secret("code")?;
        let redirect_uri = params.required("redirect_uri")?.to_owned();
        let verifier = params
            .take_secret("code_verifier")?
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is missing (PKCE)"))?;
        let hashed = digest(&code.0);
        let refused = |reason: &'static str| {
            tracing::info!(target: "issuer::security", event = "code_refused", client_id = %client.id, reason, "authorization code refused");
            OAuthError::invalid_grant()
        };

        let store = &self.0.store;
        let Some(json) = store
            .get(&self.key("code", &hashed))
            .await
            .map_err(|e| store_failed(&e))?
        else {
            return Err(refused("unknown_code"));
        };
        let record: CodeRecord =
            serde_json::from_str(&json).map_err(|_| OAuthError::server_error())?;
        if record.grant.client_id != client.id {
            return Err(refused("another_client"));
        }
        let used_key = self.key("code-used", &hashed);
        if let Some(used) = store.get(&used_key).await.map_err(|e| store_failed(&e))? {
            return Err(self.code_replayed(client, &used).await);
        }
        if record.expires_ms <= unix_millis() {
            return Err(refused("expired_code"));
        }
        if record.redirect_uri != redirect_uri {
            return Err(refused("redirect_uri_mismatch"));
        }
        if !pkce_matches(&verifier.0, &record.code_challenge) {
            tracing::warn!(target: "issuer::security", event = "pkce_failure", client_id = %client.id, "PKCE verification failed");
            return Err(OAuthError::invalid_grant());
        }
        let mut grant = record.grant;
        let resources = params.all("resource");
        if !resources.is_empty() {
            // RFC 8707 §2.2: the token may be for fewer resources than were authorized.
            if resources
                .iter()
                .any(|r| !is_resource_uri(r) || !grant.aud.contains(r))
            {
                return Err(OAuthError::invalid_target(
                    "resource was not authorized with this code",
                ));
            }
            grant.aud.retain(|a| resources.contains(a));
        }
        let jkt = self
            .token_proof(client, headers, record.dpop_jkt.as_deref())
            .await?;

        let redeemed = Redeemed {
            jti: random_token(16)?,
            exp: unix_now().saturating_add(i64::try_from(grant.lifetime).unwrap_or(i64::MAX)) + 1,
            family: random_token(16)?,
        };
        let keep = self
            .0
            .code_lifetime
            .max(Duration::from_secs(grant.lifetime));
        let json = serde_json::to_string(&redeemed).map_err(|_| OAuthError::server_error())?;
        if !store
            .put_new(&used_key, &json, keep)
            .await
            .map_err(|e| store_failed(&e))?
        {
            let used = store.get(&used_key).await.map_err(|e| store_failed(&e))?;
            return Err(self
                .code_replayed(client, used.as_deref().unwrap_or(""))
                .await);
        }
        let issued = self.issue(&grant, redeemed.jti, jkt.as_deref()).await?;
        let refresh_jkt = refresh_binding(client, jkt.as_deref());
        let refresh = self
            .grow_family(&redeemed.family, &grant, &issued, refresh_jkt)
            .await?;
        tracing::info!(
            client_id = %client.id,
            sub = %grant.sub,
            scope = %grant.scope.join(" "),
            aud = ?grant.aud,
            jti = %issued.jti,
            dpop_jkt = issued.jkt.as_deref(),
            "access and refresh tokens issued for an authorization code"
        );
        Ok(token_response(&issued, &grant, Some(&refresh)))
    }

    /// A second redemption: revoke what the first one issued.
    async fn code_replayed(&self, client: &Client, used: &str) -> OAuthError {
        tracing::warn!(target: "issuer::security", event = "code_replay", client_id = %client.id, "authorization code used twice: revoking what it issued");
        if let Ok(first) = serde_json::from_str::<Redeemed>(used) {
            if let Err(e) = self.revoke_jti(&first.jti, first.exp).await {
                return e;
            }
            if let Err(e) = self.revoke_family(&first.family).await {
                return e;
            }
        }
        OAuthError::invalid_grant()
    }

    /// `grant_type=refresh_token`: rotation, and reuse detection.
    pub(super) async fn refresh(
        &self,
        client: &Client,
        params: &mut Params,
        headers: &HeaderMap,
    ) -> Result<Value, OAuthError> {
        let token = params.required_secret("refresh_token")?;
        let hashed = digest(&token.0);
        let refused = |reason: &'static str| {
            tracing::info!(target: "issuer::security", event = "refresh_refused", client_id = %client.id, reason, "refresh token refused");
            OAuthError::invalid_grant()
        };
        let Some(record) = self.refresh_record(&token.0).await? else {
            return Err(refused("unknown_refresh_token"));
        };
        if record.grant.client_id != client.id {
            return Err(refused("another_client"));
        }
        if self.family_revoked(&record.family).await? {
            return Err(refused("family_revoked"));
        }
        // RFC 6749 §6: the access token may have less scope than the refresh token, never
        // more; the new refresh token keeps the scope of the one presented.
        let grant = record.grant;
        let mut access = grant.clone();
        if let Some(scope) = params.one("scope")? {
            access.scope = grant_scope(&grant.scope, &grant.scope, Some(scope))?;
        }
        // A bound refresh token needs a proof of its key (RFC 9449 §5).
        let jkt = self
            .token_proof(client, headers, record.jkt.as_deref())
            .await?;
        let used_key = self.key("refresh-used", &hashed);
        let first = self
            .0
            .store
            .put_new(&used_key, "1", self.0.refresh_lifetime)
            .await
            .map_err(|e| store_failed(&e))?;
        if !first {
            tracing::warn!(target: "issuer::security", event = "refresh_reuse", client_id = %client.id, "a used refresh token was presented again: revoking its family");
            self.revoke_family(&record.family).await?;
            return Err(OAuthError::invalid_grant());
        }
        let issued = self
            .issue(&access, random_token(16)?, jkt.as_deref())
            .await?;
        let refresh_jkt = refresh_binding(client, jkt.as_deref());
        let refresh = self
            .grow_family(&record.family, &grant, &issued, refresh_jkt)
            .await?;
        tracing::info!(client_id = %client.id, sub = %grant.sub, scope = %access.scope.join(" "), jti = %issued.jti, dpop_jkt = issued.jkt.as_deref(), "refresh token rotated");
        Ok(token_response(&issued, &access, Some(&refresh)))
    }

    /// The record of a live refresh token.
    pub(super) async fn refresh_record(
        &self,
        token: &str,
    ) -> Result<Option<RefreshRecord>, OAuthError> {
        let json = self
            .0
            .store
            .get(&self.key("refresh", &digest(token)))
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Records the access token `issued` in `family` and makes the family's next refresh
    /// token, bound to the DPoP key `jkt` if given; refuses (and revokes `issued`) if the
    /// family was revoked meanwhile.
    async fn grow_family(
        &self,
        family: &str,
        grant: &Grant,
        issued: &Issued,
        jkt: Option<&str>,
    ) -> Result<String, OAuthError> {
        let (jti, exp) = (issued.jti.as_str(), issued.exp);
        let store = &self.0.store;
        store
            .push(
                &self.key("family", family),
                &format!("{jti} {exp}"),
                self.family_ttl(),
            )
            .await
            .map_err(|e| store_failed(&e))?;
        let refresh = random_token(32)?;
        let record = RefreshRecord {
            family: family.to_owned(),
            grant: grant.clone(),
            jkt: jkt.map(str::to_owned),
        };
        let json = serde_json::to_string(&record).map_err(|_| OAuthError::server_error())?;
        store
            .put(
                &self.key("refresh", &digest(&refresh)),
                &json,
                self.0.refresh_lifetime,
            )
            .await
            .map_err(|e| store_failed(&e))?;
        if self.family_revoked(family).await? {
            self.revoke_jti(jti, exp).await?;
            return Err(OAuthError::invalid_grant());
        }
        Ok(refresh)
    }

    async fn family_revoked(&self, family: &str) -> Result<bool, OAuthError> {
        let revoked = self.0.store.get(&self.key("family-revoked", family)).await;
        Ok(revoked.map_err(|e| store_failed(&e))?.is_some())
    }

    /// Revokes a family: its refresh tokens stop working, its access tokens are revoked.
    pub(super) async fn revoke_family(&self, family: &str) -> Result<(), OAuthError> {
        let store = &self.0.store;
        store
            .put(&self.key("family-revoked", family), "1", self.family_ttl())
            .await
            .map_err(|e| store_failed(&e))?;
        let issued = store
            .list(&self.key("family", family))
            .await
            .map_err(|e| store_failed(&e))?;
        for entry in &issued {
            if let Some((jti, exp)) = entry.split_once(' ')
                && let Ok(exp) = exp.parse::<i64>()
            {
                self.revoke_jti(jti, exp).await?;
            }
        }
        tracing::info!(
            revoked_access_tokens = issued.len(),
            "refresh token family revoked"
        );
        Ok(())
    }

    /// Family records outlive its last refresh token and that token's access token.
    fn family_ttl(&self) -> Duration {
        self.0.refresh_lifetime + Duration::from_secs(MAX_LIFETIME)
    }
}

/// The key a new refresh token is bound to: a public client's proof key (RFC 9449 §5); a
/// confidential client's refresh tokens are bound to its authentication instead.
fn refresh_binding<'k>(client: &Client, proof_jkt: Option<&'k str>) -> Option<&'k str> {
    proof_jkt.filter(|_| client.is_public())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cX"
        ));
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(verifier, verifier));
    }
}
