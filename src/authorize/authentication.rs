//! What a route asks of the user's authentication behind a token (RFC 9470): an `acr` among
//! a set, an `auth_time` no older than a maximum age. Checked in the policy stage, after the
//! scopes; a token that falls short is refused with
//! [`ErrorKind::InsufficientUserAuthentication`], whose challenge names what is asked.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::response::StepUp;
use crate::verified::Facts;

/// A route's demand on the user's authentication, and the challenge that states it.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserAuthentication {
    /// The accepted `acr` values (any one of them); `None`: `acr` is not looked at.
    acr: Option<Box<[Box<str>]>>,
    /// The oldest accepted `auth_time`, as an age in seconds; `None`: not looked at.
    max_age: Option<u64>,
    /// `acr_values` and `max_age` for the challenge (RFC 9470 §3), built from the two.
    step_up: Arc<StepUp>,
}

impl UserAuthentication {
    /// Accepts only tokens whose `acr` is one of `values` (replacing any earlier set).
    ///
    /// # Errors
    /// [`ConfigError::InvalidAcrValue`] for no value, or one no challenge can carry.
    pub(crate) fn with_acr<I, S>(mut self, values: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut acr: Vec<Box<str>> = Vec::new();
        for value in values {
            let value: String = value.into();
            if !is_acr_value(&value) {
                return Err(ConfigError::InvalidAcrValue(value));
            }
            if !acr.iter().any(|a| **a == *value) {
                acr.push(value.into());
            }
        }
        if acr.is_empty() {
            return Err(ConfigError::InvalidAcrValue(String::new()));
        }
        self.acr = Some(acr.into());
        Ok(self.rebuilt())
    }

    /// Accepts only tokens whose `auth_time` is at most `age` ago, in whole seconds
    /// (replacing any earlier age).
    pub(crate) fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age.as_secs());
        self.rebuilt()
    }

    fn rebuilt(mut self) -> Self {
        let acr = self.acr.iter().flatten().map(|a| &**a);
        self.step_up = Arc::new(StepUp::new(acr, self.max_age));
        self
    }

    /// The challenge's auth-params.
    pub(crate) fn step_up(&self) -> &Arc<StepUp> {
        &self.step_up
    }

    /// Whether `token`'s authentication meets the demand; `now` (seconds since the epoch)
    /// is read only when an age is asked. An absent claim never meets it: a token without
    /// `auth_time` cannot show its age. The error names the claim that falls short.
    pub(crate) fn check(&self, token: &Facts, now: impl FnOnce() -> i64) -> Result<(), AuthError> {
        let short = |claim| AuthError::claim(ErrorKind::InsufficientUserAuthentication, claim);
        if let Some(accepted) = &self.acr
            && !token
                .acr()
                .is_some_and(|acr| accepted.iter().any(|a| **a == *acr))
        {
            return Err(short("acr"));
        }
        if let Some(max_age) = self.max_age {
            let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
            let now = now();
            if token
                .auth_time()
                .is_none_or(|at| now.saturating_sub(at) > max_age)
            {
                return Err(short("auth_time"));
            }
        }
        Ok(())
    }
}

/// An `acr` value that fits `acr_values="..."`: printable ASCII without space, `"` or `\`
/// (space separates the values).
fn is_acr_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testkit;
    use crate::validator::Verify;

    const MFA: &str = "urn:bearer-guard:acr:mfa";
    const PWD: &str = "urn:bearer-guard:acr:pwd";

    /// The verified record of a token with these claims (absent when `None`).
    fn token(acr: Option<&str>, auth_time: Option<i64>) -> Arc<Facts> {
        let jwt = testkit::token("ec-1", json!({ "acr": acr, "auth_time": auth_time }));
        match testkit::validator().verify(&jwt, false) {
            Verify::Done(Ok(verified)) => Arc::clone(&verified.token),
            _ => panic!("a valid token"),
        }
    }

    fn refused(result: Result<(), AuthError>) -> Option<&'static str> {
        result.err().map(|e| {
            assert_eq!(e.kind(), ErrorKind::InsufficientUserAuthentication);
            e.claim_name().expect("names the claim")
        })
    }

    #[test]
    fn an_acr_must_be_one_of_the_set() {
        let demand = UserAuthentication::default()
            .with_acr([MFA, "phr"])
            .expect("valid");
        let never = || -> i64 { unreachable!("no age asked: no clock read") };
        assert_eq!(refused(demand.check(&token(Some(MFA), None), never)), None);
        assert_eq!(
            refused(demand.check(&token(Some("phr"), None), never)),
            None
        );
        for weaker in [Some(PWD), Some(""), Some("urn:bearer-guard:acr:MFA"), None] {
            assert_eq!(
                refused(demand.check(&token(weaker, None), never)),
                Some("acr"),
                "{weaker:?}"
            );
        }
    }

    #[test]
    fn auth_time_must_be_at_most_the_age_ago_and_present() {
        let demand = UserAuthentication::default().with_max_age(Duration::from_millis(300_900));
        let now = 1_700_000_000;
        let at = |auth_time| refused(demand.check(&token(None, auth_time), || now));
        assert_eq!(at(Some(now)), None);
        assert_eq!(
            at(Some(now - 300)),
            None,
            "the age is whole seconds, inclusive"
        );
        assert_eq!(at(Some(now - 301)), Some("auth_time"));
        assert_eq!(at(Some(now + 30)), None);
        assert_eq!(at(Some(i64::MIN + 1)), Some("auth_time"));
        assert_eq!(at(None), Some("auth_time"), "no auth_time: no proof of age");
    }

    #[test]
    fn both_demands_hold_together_and_the_acr_is_named_first() {
        let demand = UserAuthentication::default()
            .with_max_age(Duration::from_secs(60))
            .with_acr([MFA])
            .expect("valid");
        let now = 1_700_000_000;
        let check = |acr, at| refused(demand.check(&token(acr, at), || now));
        assert_eq!(check(Some(MFA), Some(now - 10)), None);
        assert_eq!(check(Some(PWD), Some(now - 10)), Some("acr"));
        assert_eq!(check(Some(MFA), Some(now - 61)), Some("auth_time"));
        assert_eq!(check(None, None), Some("acr"));
        assert_eq!(
            *demand.step_up().as_ref(),
            StepUp::new([MFA], Some(60)),
            "the challenge names both"
        );
    }

    #[test]
    fn acr_values_that_no_challenge_can_carry_are_refused() {
        let set = |values: &[&str]| {
            UserAuthentication::default()
                .with_acr(values.iter().copied())
                .map(|_| ())
        };
        assert_eq!(set(&[]), Err(ConfigError::InvalidAcrValue(String::new())));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", "a\nb"] {
            assert_eq!(
                set(&[MFA, bad]),
                Err(ConfigError::InvalidAcrValue(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(set(&[MFA, "0", "urn:mace:incommon:iap:silver"]), Ok(()));
    }
}
