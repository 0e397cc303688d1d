//! Typed claims: the [`Claims`] wrapper the layer puts into request extensions, and the
//! default [`AccessClaims`] with the RFC 9068 members.

use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

/// The validated claims of the request's token, typed.
///
/// The layer puts one record into an admitted request, the
/// [`VerifiedToken`](crate::VerifiedToken); the claims are read from it, as `Claims<T>` when
/// `T` is the validator's claims type. Cheap to clone (one `Arc`). With the `axum` feature it
/// is an extractor, and `Option<Claims<T>>` is one for routes where authentication is
/// optional; with `tonic`, `RequestClaimsExt::claims` reads it.
///
/// ```
/// use bearer_guard::{AccessClaims, Claims, VerifiedToken};
/// fn handler(req: &http::Request<()>) -> Option<String> {
///     let claims: Claims<AccessClaims> = req.extensions().get::<VerifiedToken>()?.claims()?;
///     claims.client_id().map(str::to_owned)
/// }
/// ```
#[derive(Debug)]
pub struct Claims<T = AccessClaims>(pub Arc<T>);

impl<T> Clone for Claims<T> {
    fn clone(&self) -> Self {
        Claims(Arc::clone(&self.0))
    }
}

impl<T> Deref for Claims<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The claims of an RFC 9068 JWT access token.
///
/// Registered members are typed fields; everything else is in [`extra`](Self::extra).
/// Applications with their own claims bring any `Deserialize` type instead, through
/// [`ValidatorBuilder::claims`](crate::ValidatorBuilder::claims).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// `iss`: the issuer, already checked against the configured one.
    pub iss: String,
    /// `sub`: the subject; for client-credentials tokens, the client itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `aud`: the audiences; one of them is this resource server.
    pub aud: Audience,
    /// `exp`: expiry, seconds since the Unix epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// `iat`: issue time, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// `nbf`: not-before time, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// `jti`: the token's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `client_id`: the OAuth client the token was issued to (RFC 9068 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `scope`: the granted scopes, space-delimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `acr`: how the user behind the token authenticated (RFC 9470 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// `auth_time`: when the user behind the token authenticated, seconds since the Unix
    /// epoch (RFC 9470 §6.1).
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_time: Option<i64>,
    /// Every other member (`scp`, `azp`, custom claims ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AccessClaims {
    /// The client the token was issued to: `client_id`, else `azp` (OpenID Connect issuers).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .or_else(|| self.extra.get("azp").and_then(serde_json::Value::as_str))
    }

    /// The subject (`sub`).
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// The granted scopes: the words of `scope`, then those of `scp` (array or string).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let scope = self.scope.as_deref().unwrap_or("").split(' ');
        let scp: Box<dyn Iterator<Item = &str>> = match self.extra.get("scp") {
            Some(serde_json::Value::String(s)) => Box::new(s.split(' ')),
            Some(serde_json::Value::Array(items)) => Box::new(
                items
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .flat_map(|s| s.split(' ')),
            ),
            _ => Box::new(std::iter::empty()),
        };
        scope.chain(scp).filter(|s| !s.is_empty())
    }

    /// Whether `scope` is granted.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// The `aud` claim: one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `audience`.
    #[must_use]
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, fractional parts allowed. Strings,
/// booleans and `null` are refused.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match crate::json::Value::deserialize(d)? {
        crate::json::Value::Int(i) => Ok(i),
        crate::json::Value::Float(f) if f.is_finite() => Ok(f.floor() as i64),
        _ => Err(serde::de::Error::custom("NumericDate must be a number")),
    }
}

fn opt_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc_9068_members_and_keeps_the_rest() {
        let c: AccessClaims = serde_json::from_str(
            r#"{"iss":"i","aud":["a","b"],"exp":10.9,"sub":"s","client_id":"c",
                "scope":"x y","scp":["z"],"tenant":"t"}"#,
        )
        .expect("claims");
        assert_eq!(c.exp, 10);
        assert!(c.aud.contains("b") && !c.aud.contains("c"));
        assert_eq!(c.client_id(), Some("c"));
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["x", "y", "z"]);
        assert!(c.has_scope("z") && !c.has_scope("x y"));
        assert_eq!(c.extra["tenant"], "t");
        assert_eq!((c.acr, c.auth_time), (None, None));
    }

    #[test]
    fn reads_the_user_authentication_members() {
        let c: AccessClaims = serde_json::from_str(
            r#"{"iss":"i","aud":"a","exp":1,"acr":"urn:x:mfa","auth_time":1700000000.7}"#,
        )
        .expect("claims");
        assert_eq!(c.acr.as_deref(), Some("urn:x:mfa"));
        assert_eq!(c.auth_time, Some(1_700_000_000));
        assert!(!c.extra.contains_key("acr") && !c.extra.contains_key("auth_time"));
        for wrong in [r#""acr":1"#, r#""auth_time":"1""#] {
            let json = format!(r#"{{"iss":"i","aud":"a","exp":1,{wrong}}}"#);
            assert!(
                serde_json::from_str::<AccessClaims>(&json).is_err(),
                "{wrong}"
            );
        }
    }

    #[test]
    fn azp_stands_in_for_client_id() {
        let c: AccessClaims =
            serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1,"azp":"web"}"#).expect("claims");
        assert_eq!(c.client_id(), Some("web"));
    }

    #[test]
    fn string_dates_are_refused() {
        assert!(
            serde_json::from_str::<AccessClaims>(r#"{"iss":"i","aud":"a","exp":"1"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<AccessClaims>(r#"{"iss":"i","aud":"a","exp":1,"iat":null}"#)
                .is_err()
        );
    }
}
