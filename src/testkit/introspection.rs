//! The introspection's crate-internal interface (what the decision path calls), opened for
//! this crate's integration tests and benchmarks.

use std::time::Duration;

use crate::checks::{Checks, Profile, now};
use crate::introspection::{Answer, Introspection};
use crate::{AccessClaims, AuthError, Claims, VerifiedToken};

/// The crate-internal answer of an introspection, as a test sees it.
#[derive(Debug)]
pub enum Outcome {
    Active {
        token: VerifiedToken,
        /// The answer's JSON, as the claims type reads it.
        json: serde_json::Value,
        claims: Claims<AccessClaims>,
    },
    Inactive,
    Refused(AuthError),
    /// The stable reason.
    Unavailable(&'static str),
}

impl Outcome {
    fn of(answer: Answer) -> Outcome {
        match answer {
            Answer::Active(active) => Outcome::Active {
                token: active.token.clone(),
                json: serde_json::from_str(active.json.get()).expect("JSON"),
                claims: active.claims().expect("AccessClaims"),
            },
            Answer::Inactive => Outcome::Inactive,
            Answer::Refused(err) => Outcome::Refused(err),
            Answer::Unavailable(why) => Outcome::Unavailable(why.reason()),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self, Outcome::Active { .. })
    }
}

/// `introspection` checking answers as a validator for `issuer` and `audience` would: the
/// plain-JWT profile, a leeway of 60 s.
pub fn bind(introspection: &Introspection, issuer: &str, audience: &str) -> Introspection {
    introspection.bind(Box::new([rule(issuer, audience)]))
}

fn rule(issuer: &str, audience: &str) -> Checks {
    Checks::new(
        issuer.into(),
        Box::new([audience.into()]),
        Duration::from_secs(60),
        Profile::Jwt,
        None,
        false,
    )
}

/// The cached answer for `token`, if any.
pub fn cached(introspection: &Introspection, token: &str) -> Option<Outcome> {
    introspection.cached(token, now()).map(Outcome::of)
}

/// The answer for `token`: cached, shared with a request in flight, or asked for.
pub async fn introspect(introspection: &Introspection, token: &str) -> Outcome {
    Outcome::of(introspection.introspect(token).await)
}

/// What the decision path does with a cached active answer: the lookup and the claims
/// (deserialized once per answer). `None` on a miss or another answer.
pub fn cached_claims(introspection: &Introspection, token: &str) -> Option<Claims<AccessClaims>> {
    match introspection.cached(token, now())? {
        Answer::Active(active) => active.claims().ok(),
        _ => None,
    }
}

/// The cache key of `token` (its SHA-256 digest): its cost, measured alone.
pub fn digest(token: &str) -> [u8; 32] {
    crate::introspection::cache::digest(token)
}

/// Whether mixed mode verifies `token` locally for a validator trusting `issuer`.
pub fn is_local_jwt(token: &str, issuer: &str) -> bool {
    crate::introspection::is_local_jwt(token, |iss| iss == issuer)
}
