//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): a service that
//! received a user's access token trades it for a token to one of its own downstream
//! resources, on the user's behalf.
//!
//! - The client is confidential and registered with `exchange_from` (the audiences of the
//!   subject tokens it may exchange) and `resources` (where the new token may go).
//! - The `subject_token` is an access token of this issuer (JWT or opaque), not expired, not
//!   revoked, whose `aud` names one of `exchange_from`. Anything else is `invalid_grant`,
//!   one answer for every reason (the log keeps it).
//! - The new token keeps `sub`; its `aud` is the requested `resource`/`audience` (one of the
//!   client's `resources`, else `invalid_target`); its `scope` is at most the subject
//!   token's and the client's (`invalid_scope`); it expires no later than the subject
//!   token; and its `act` (§4.1) names the client, nesting the subject token's own `act`.
//! - An `actor_token` (§2.1) must be a live token of this issuer issued to the client
//!   itself: its `sub` becomes the actor's `sub`. A subject token with `may_act` (§4.4)
//!   may only be exchanged by the party it names.
//! - Revocation cascades: each exchanged token is recorded under its subject token's `jti`,
//!   and revoking that token (`/oauth/revoke`, a refresh-token family, a replayed code)
//!   revokes every token exchanged from it, transitively (`tokens.rs`). After issuing, the
//!   subject token is checked again, so that a concurrent revocation is never missed.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::clients::Client;
use super::error::OAuthError;
use super::form::Params;
use super::scope::{grant_scope, is_resource_uri};
use super::server::{Issuer, random_token, unix_now};
use super::tokens::{Grant, token_response};

/// The grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The only token type this issuer takes and issues (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The deepest `act` chain an exchanged token may carry: as deep as resource servers of
/// `bearer-guard` accept.
pub const MAX_ACT_DEPTH: usize = 8;

impl Issuer {
    /// The token exchange of an authenticated `client`.
    pub(super) async fn exchange(
        &self,
        client: &Client,
        params: &mut Params,
        headers: &HeaderMap,
    ) -> Result<Value, OAuthError> {
        let subject = params.required_secret("subject_token")?;
        if params.required("subject_token_type")? != ACCESS_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(
                "subject_token_type must be urn:ietf:params:oauth:token-type:access_token",
            ));
        }
        if params
            .one("requested_token_type")?
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
        {
            return Err(OAuthError::invalid_request(
                "requested_token_type must be urn:ietf:params:oauth:token-type:access_token",
            ));
        }
        let actor = params.take_secret("actor_token")?;
        match (&actor, params.one("actor_token_type")?) {
            (None, None) => {}
            (Some(_), Some(ACCESS_TOKEN_TYPE)) => {}
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "actor_token_type must be urn:ietf:params:oauth:token-type:access_token",
                ));
            }
            // §2.1: both or neither.
            _ => {
                return Err(OAuthError::invalid_request(
                    "actor_token and actor_token_type go together",
                ));
            }
        }
        let audience = target(client, params)?;

        let refused = |reason: &'static str| {
            tracing::info!(target: "issuer::security", event = "exchange_refused", client_id = %client.id, reason, "token exchange refused");
            OAuthError::invalid_grant()
        };
        let now = unix_now();
        let Some(claims) = self.access_claims(&subject.0).await? else {
            return Err(refused("unknown_subject_token"));
        };
        if claims.exp <= now {
            return Err(refused("expired_subject_token"));
        }
        if self.is_revoked(&claims.jti).await? {
            return Err(refused("revoked_subject_token"));
        }
        if !client.may_exchange_from(|aud| claims.has_audience(aud)) {
            return Err(refused("subject_token_audience"));
        }

        // The actor: the client itself, or the subject of its own actor token.
        let actor_sub = match &actor {
            None => client.id.clone(),
            Some(actor) => {
                let Some(actor) = self.access_claims(&actor.0).await? else {
                    return Err(refused("unknown_actor_token"));
                };
                if actor.exp <= now || self.is_revoked(&actor.jti).await? {
                    return Err(refused("actor_token_expired_or_revoked"));
                }
                if actor.client_id != client.id {
                    return Err(refused("actor_token_of_another_client"));
                }
                actor.sub
            }
        };
        if let Some(may_act) = &claims.may_act
            && !may_act_allows(may_act, &actor_sub, &client.id)
        {
            return Err(refused("may_act"));
        }
        let act = act_claim(&actor_sub, &client.id, claims.act.as_ref())
            .ok_or_else(|| refused("act_chain_too_deep"))?;

        // At most the subject token's scope, and only what this client may ask for.
        let granted: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty() && client.scopes.iter().any(|c| c == s))
            .map(str::to_owned)
            .collect();
        let scope = grant_scope(&granted, &granted, params.one("scope")?)?;
        // Never longer than the subject token.
        let left = u64::try_from(claims.exp - now).unwrap_or(0);
        let grant = Grant {
            client_id: client.id.clone(),
            sub: claims.sub.clone(),
            scope,
            aud: audience,
            lifetime: client.lifetime.min(left),
            // The user's sign-in stays what it was: an exchange is no new authentication.
            authentication: claims.authentication(),
        };
        let jkt = self.token_proof(client, headers, None).await?;
        let jti = random_token(16)?;
        let exp = now.saturating_add(i64::try_from(grant.lifetime).unwrap_or(i64::MAX)) + 1;
        // Recorded before it exists: a revocation of the subject token from now on sees it.
        self.record_exchanged(&claims.jti, claims.exp, &jti, exp)
            .await?;
        let issued = self
            .issue_acted(&grant, jti, jkt.as_deref(), Some(act))
            .await?;
        // A revocation that listed the children before the record: caught here.
        if self.is_revoked(&claims.jti).await? {
            self.revoke_jti(&issued.jti, issued.exp).await?;
            return Err(refused("revoked_subject_token"));
        }
        tracing::info!(
            client_id = %client.id,
            sub = %grant.sub,
            scope = %grant.scope.join(" "),
            aud = ?grant.aud,
            jti = %issued.jti,
            subject_jti = %claims.jti,
            "access token issued by token exchange"
        );
        let mut body = token_response(&issued, &grant, None);
        body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
        Ok(body)
    }
}

/// The new token's audience: `resource` and `audience` (§2.1) together, each one of the
/// client's resources; the client's first resource when none is asked for.
fn target(client: &Client, params: &Params) -> Result<Vec<String>, OAuthError> {
    let mut wanted = params.all("resource");
    wanted.extend(params.all("audience"));
    if wanted.is_empty() {
        return Ok(client.resources.iter().take(1).cloned().collect());
    }
    let mut audience: Vec<String> = Vec::new();
    for target in wanted {
        if !is_resource_uri(&target) || !client.resources.contains(&target) {
            return Err(OAuthError::invalid_target(
                "the requested resource or audience is not one of this client's",
            ));
        }
        if !audience.contains(&target) {
            audience.push(target);
        }
    }
    Ok(audience)
}

/// `act` of the new token: the actor, with the subject token's chain nested below
/// (§4.1); `None` past [`MAX_ACT_DEPTH`].
pub fn act_claim(actor_sub: &str, client_id: &str, earlier: Option<&Value>) -> Option<Value> {
    if earlier.is_some_and(|e| depth(e) >= MAX_ACT_DEPTH) {
        return None;
    }
    let mut act = json!({ "sub": actor_sub, "client_id": client_id });
    if let Some(earlier) = earlier {
        act["act"] = earlier.clone();
    }
    Some(act)
}

/// Depth of an `act` chain (1 for an actor without earlier ones).
fn depth(act: &Value) -> usize {
    let mut depth = 0;
    let mut at = Some(act);
    while let Some(a) = at {
        depth += 1;
        at = a.get("act");
    }
    depth
}

/// §4.4: `may_act` names the party that may act, by `sub` and/or `client_id`; every member
/// it names must match, and it must name one.
pub fn may_act_allows(may_act: &Value, actor_sub: &str, client_id: &str) -> bool {
    let sub = may_act.get("sub");
    let client = may_act.get("client_id");
    if sub.is_none() && client.is_none() {
        return false;
    }
    sub.is_none_or(|s| s == actor_sub) && client.is_none_or(|c| c == client_id)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn act_nests_the_earlier_chain_and_stops_at_the_cap() {
        let first = act_claim("svc-a", "svc-a", None).expect("act");
        assert_eq!(first, json!({"sub": "svc-a", "client_id": "svc-a"}));
        let second = act_claim("svc-b", "svc-b", Some(&first)).expect("act");
        assert_eq!(second["act"], first);
        let mut chain = first;
        for _ in 1..MAX_ACT_DEPTH {
            chain = act_claim("x", "x", Some(&chain)).expect("within the cap");
        }
        assert_eq!(depth(&chain), MAX_ACT_DEPTH);
        assert!(act_claim("x", "x", Some(&chain)).is_none());
    }

    #[test]
    fn may_act_must_name_the_actor() {
        assert!(may_act_allows(&json!({"sub": "a"}), "a", "c"));
        assert!(may_act_allows(&json!({"client_id": "c"}), "a", "c"));
        assert!(!may_act_allows(&json!({"sub": "b"}), "a", "c"));
        assert!(!may_act_allows(
            &json!({"sub": "a", "client_id": "d"}),
            "a",
            "c"
        ));
        assert!(!may_act_allows(&json!({}), "a", "c"));
    }
}
