//! Mixed mode: on a route that accepts both, a JWT of a trusted issuer is verified locally
//! and any other token is introspected.

use crate::json::{self, Value};
use crate::jws;

/// Whether `token` is a JWT to verify locally: three segments, and a payload whose `iss`
/// `local` says is verified here (an issuer with keys). Anything else (an opaque token, a JWT of another issuer, something
/// that does not decode) goes to introspection, whose endpoint decides; nothing is accepted
/// here. Decodes the payload: call it on a miss of the verified-token cache, not before.
pub(crate) fn is_local_jwt(token: &str, local: impl Fn(&str) -> bool) -> bool {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(payload) = jws::b64(payload) else {
        return false;
    };
    match json::read_object(&payload, ["iss"]) {
        Ok([Some(Value::Str(iss))]) => local(&iss),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::checks::Checks;
    use crate::testkit::{self, token};

    fn is_local(token: &str, issuers: &[Checks]) -> bool {
        is_local_jwt(token, |iss| issuers.iter().any(|c| *c.issuer == *iss))
    }
    use crate::checks::Profile;

    fn issuers() -> [Checks; 2] {
        let checks = |iss: &str| {
            Checks::new(
                iss.into(),
                Box::new(["https://api.example".into()]),
                Duration::ZERO,
                Profile::Jwt,
                None,
                false,
            )
        };
        [
            checks(testkit::builder().build().expect("v").issuer()),
            checks("https://other.example"),
        ]
    }

    #[test]
    fn jwts_of_trusted_issuers_are_local_the_rest_is_introspected() {
        let issuers = issuers();
        assert!(is_local(&token("ed-1", json!({})), &issuers));
        let other = token("ed-1", json!({"iss": "https://other.example"}));
        assert!(is_local(&other, &issuers));
        assert!(!is_local(&other, &issuers[..1]));
        let unknown = token("ed-1", json!({"iss": "https://evil.example"}));
        assert!(!is_local(&unknown, &issuers));
        for opaque in [
            "2YotnFZFEjr1zCsicMWpAA",
            "a.b",
            "a.b.c.d",
            "a.%%%.c",
            "a.e30.c",          // `{}`: no iss
            "a.eyJpc3MiOjF9.c", // `{"iss":1}`
            "",
        ] {
            assert!(!is_local(opaque, &issuers), "{opaque}");
        }
    }
}
