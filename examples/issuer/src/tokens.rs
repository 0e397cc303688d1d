//! Access tokens: what a grant becomes (claims), how it is encoded (an RFC 9068 JWT, or an
//! opaque handle whose claims stay in the store), and how a presented token is looked up
//! again (introspection, revocation).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::TokenFormat;
use super::error::OAuthError;
use super::server::{Issuer, random_token, store_failed, unix_now};
use super::store::digest;

/// What one access token grants: to whom, for what, where, how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// The user for authorization-code grants; the client itself for client credentials.
    pub sub: String,
    pub scope: Vec<String>,
    pub aud: Vec<String>,
    /// Seconds.
    pub lifetime: u64,
    /// How and when the user signed in, for a user's grant (`acr`, `auth_time`); kept by
    /// the codes and refresh tokens of the grant, so that every access token of one sign-in
    /// tells the same. `None` for client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// A user's sign-in, as access tokens state it (RFC 9470 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// How: one of `acr_values_supported` (`urn:bearer-guard:acr:pwd`, `..:mfa`).
    pub acr: String,
    /// When the sign-in completed, seconds since the epoch.
    pub auth_time: i64,
}

/// An access token just issued.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub exp: i64,
    /// Bound to this DPoP key (its RFC 7638 thumbprint): a `DPoP` token.
    pub jkt: Option<String>,
}

/// The `cnf` (confirmation) claim of a key-bound token (RFC 7800; `jkt`: RFC 9449 §6).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// The claims of an access token, as issued (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: Value,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The actor chain of an exchanged token (RFC 8693 §4.1): who acts for `sub`, nested
    /// for the earlier actors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Value>,
    /// Who may act for `sub` (RFC 8693 §4.4): honoured by the token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<Value>,
    /// How the user signed in (RFC 9470 §6.1): user grants only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// When the user signed in (RFC 9470 §6.1): user grants only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl AccessClaims {
    /// Whether `aud` is or contains `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Value::String(one) => one == audience,
            Value::Array(many) => many.iter().any(|a| a == audience),
            _ => false,
        }
    }

    /// The user's sign-in behind the token, when it states one (both `acr` and `auth_time`).
    pub fn authentication(&self) -> Option<Authentication> {
        Some(Authentication {
            acr: self.acr.clone()?,
            auth_time: self.auth_time?,
        })
    }
}

impl Issuer {
    /// Issues an access token for `grant`, with this `jti` (callers that must revoke it later
    /// choose it first), bound to the DPoP key of thumbprint `jkt` if given.
    pub(super) async fn issue(
        &self,
        grant: &Grant,
        jti: String,
        jkt: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        self.issue_acted(grant, jti, jkt, None).await
    }

    /// [`issue`](Self::issue), with the `act` claim of an exchanged token.
    pub(super) async fn issue_acted(
        &self,
        grant: &Grant,
        jti: String,
        jkt: Option<&str>,
        act: Option<Value>,
    ) -> Result<Issued, OAuthError> {
        let now = unix_now();
        let lifetime = i64::try_from(grant.lifetime).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: self.0.issuer.clone(),
            sub: grant.sub.clone(),
            client_id: grant.client_id.clone(),
            aud: match grant.aud.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
            iat: now,
            exp: now.saturating_add(lifetime),
            jti,
            scope: (!grant.scope.is_empty()).then(|| grant.scope.join(" ")),
            // A DPoP-bound token (RFC 9449 §6.1): opaque ones keep it in the store, for
            // introspection (§6.2).
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
            act,
            may_act: None,
            acr: grant.authentication.as_ref().map(|a| a.acr.clone()),
            auth_time: grant.authentication.as_ref().map(|a| a.auth_time),
        };
        let token = match self.0.token_format {
            TokenFormat::Jwt => {
                let claims =
                    serde_json::to_value(&claims).map_err(|_| OAuthError::server_error())?;
                self.0.key.sign(&claims).map_err(|e| {
                    tracing::error!(error = %e, "cannot sign a token");
                    OAuthError::server_error()
                })?
            }
            TokenFormat::Opaque => {
                let token = random_token(32)?;
                let json =
                    serde_json::to_string(&claims).map_err(|_| OAuthError::server_error())?;
                self.0
                    .store
                    .put(
                        &self.key("opaque", &digest(&token)),
                        &json,
                        Duration::from_secs(grant.lifetime),
                    )
                    .await
                    .map_err(|e| store_failed(&e))?;
                token
            }
        };
        Ok(Issued {
            token,
            jti: claims.jti,
            exp: claims.exp,
            jkt: claims.cnf.map(|c| c.jkt),
        })
    }

    /// The claims of an access token of this issuer, JWT (its own key and `iss`) or opaque
    /// (in the store); `None` for anything else. Expiry and revocation are the caller's.
    pub(super) async fn access_claims(
        &self,
        token: &str,
    ) -> Result<Option<AccessClaims>, OAuthError> {
        if token.len() > 8192 {
            return Ok(None);
        }
        if token.bytes().filter(|&b| b == b'.').count() == 2 {
            let Ok(payload) = self.0.own_keys.verify_signature(token) else {
                return Ok(None);
            };
            let claims = serde_json::from_slice::<AccessClaims>(&payload).ok();
            return Ok(claims.filter(|c| c.iss == self.0.issuer));
        }
        let json = self
            .0
            .store
            .get(&self.key("opaque", &digest(token)))
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Whether the token `jti` is revoked; a store failure is a 503.
    pub(super) async fn is_revoked(&self, jti: &str) -> Result<bool, OAuthError> {
        self.0
            .revocations
            .is_revoked(&self.0.issuer, jti)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "revocation store unavailable");
                OAuthError::unavailable("the revocation store is unavailable; retry later")
            })
    }

    /// Revokes the access token `jti` until `exp` (resource servers sharing the store refuse
    /// it from then on), and with it every token exchanged from it (RFC 8693), transitively:
    /// a revoked subject token leaves no exchanged token alive.
    pub(super) async fn revoke_jti(&self, jti: &str, exp: i64) -> Result<(), OAuthError> {
        let mut pending = vec![(jti.to_owned(), exp)];
        // Each exchange adds one level, and chains are at most `MAX_ACT_DEPTH` deep; the
        // bound only guards against a store that lies.
        let mut budget = 10_000usize;
        while let Some((jti, exp)) = pending.pop() {
            self.revoke_one(&jti, exp).await?;
            let children = self
                .0
                .store
                .list(&self.key("exchanged", &jti))
                .await
                .map_err(|e| store_failed(&e))?;
            for entry in children {
                if let Some((child, exp)) = entry.split_once(' ')
                    && let Ok(exp) = exp.parse::<i64>()
                    && budget > 0
                {
                    budget -= 1;
                    pending.push((child.to_owned(), exp));
                }
            }
        }
        Ok(())
    }

    /// Records that `child` (expiring at `exp`) was exchanged from the token `parent`
    /// (expiring at `parent_exp`): revoking the parent revokes it.
    pub(super) async fn record_exchanged(
        &self,
        parent: &str,
        parent_exp: i64,
        child: &str,
        exp: i64,
    ) -> Result<(), OAuthError> {
        let left = u64::try_from(parent_exp.saturating_sub(unix_now())).unwrap_or(0);
        self.0
            .store
            .push(
                &self.key("exchanged", parent),
                &format!("{child} {exp}"),
                Duration::from_secs(left.saturating_add(60)),
            )
            .await
            .map_err(|e| store_failed(&e))
    }

    async fn revoke_one(&self, jti: &str, exp: i64) -> Result<(), OAuthError> {
        self.0
            .revocations
            .revoke(&self.0.issuer, jti, exp)
            .await
            .map_err(|e| {
                tracing::warn!(
                    reason = "revocation_unavailable",
                    error = %e,
                    "cannot revoke: the revocation store is unavailable"
                );
                OAuthError::unavailable("the token cannot be revoked now; retry later")
            })
    }
}

/// The token endpoint's success answer (RFC 6749 §5.1): `token_type` `DPoP` for a token bound
/// to a DPoP key (RFC 9449 §5).
pub fn token_response(issued: &Issued, grant: &Grant, refresh_token: Option<&str>) -> Value {
    let token_type = if issued.jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    let mut body = json!({
        "access_token": issued.token,
        "token_type": token_type,
        "expires_in": grant.lifetime,
    });
    if !grant.scope.is_empty() {
        body["scope"] = json!(grant.scope.join(" "));
    }
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    body
}
