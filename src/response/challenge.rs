//! The `WWW-Authenticate` challenges of a route (RFC 6750 §3, RFC 9449 §7.1), built once
//! where they can be.

use http::HeaderValue;

use super::Scheme;
use crate::error::{ConfigError, ErrorKind};

/// The `WWW-Authenticate` challenges of a route, built once (RFC 6750 §3).
#[derive(Clone, Debug)]
pub(crate) struct Challenges {
    /// `realm=".."` and `resource_metadata=".."` (or empty): the auth-params every
    /// challenge starts with.
    params: Box<str>,
    missing: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
    insufficient_scope: HeaderValue,
    /// `scope="..."` of the route (or empty).
    scope: Box<str>,
    /// The route accepts DPoP: the `DPoP` challenge goes beside (or, where only DPoP is
    /// accepted, instead of) the `Bearer` one.
    dpop: Option<DpopChallenge>,
}

/// What a route asks of the user's authentication, as the auth-params of its
/// `insufficient_user_authentication` challenge (RFC 9470 §3): `acr_values="a b"` and/or
/// `max_age="300"`, built once with the route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepUp {
    params: Box<str>,
}

impl StepUp {
    /// The auth-params for `acr_values` (any of them will do) and `max_age` (seconds). The
    /// values are checked when the route is built: printable ASCII without space, `"` or `\`.
    pub(crate) fn new<'a>(
        acr_values: impl IntoIterator<Item = &'a str>,
        max_age: Option<u64>,
    ) -> Self {
        let acr: Vec<&str> = acr_values.into_iter().collect();
        let mut params = Vec::new();
        if !acr.is_empty() {
            params.push(format!("acr_values=\"{}\"", acr.join(" ")));
        }
        if let Some(max_age) = max_age {
            // Quoted, as in RFC 9470's own examples (a token would do as well).
            params.push(format!("max_age=\"{max_age}\""));
        }
        StepUp {
            params: params.join(", ").into(),
        }
    }
}

/// The `DPoP` challenge of a route (RFC 9449 §7.1).
#[derive(Clone, Debug)]
struct DpopChallenge {
    /// `algs="ES256 .."`.
    algs: Box<str>,
    /// Plain bearer tokens are accepted too.
    bearer: bool,
}

impl Challenges {
    /// The challenges for `realm` and an RFC 9728 `resource_metadata` URL.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] for a value that cannot be a quoted string.
    pub(crate) fn new(
        realm: Option<&str>,
        resource_metadata: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut params = Vec::new();
        if let Some(realm) = realm {
            params.push(format!("realm={}", quoted(realm, "realm")?));
        }
        if let Some(url) = resource_metadata {
            params.push(format!(
                "resource_metadata={}",
                quoted(url, "resource_metadata")?
            ));
        }
        let params = params.join(", ");
        let with_error = |error: &str| header(&params, &[format!("error=\"{error}\"")]);
        Ok(Challenges {
            missing: header(&params, &[]),
            invalid_request: with_error("invalid_request"),
            invalid_token: with_error("invalid_token"),
            insufficient_scope: with_error("insufficient_scope"),
            params: params.into(),
            scope: "".into(),
            dpop: None,
        })
    }

    /// These challenges, with the `insufficient_scope` one naming `scopes` (RFC 6750 §3.1).
    /// Scope tokens never hold `"`, `\` or spaces.
    pub(crate) fn for_scopes<'a>(&self, scopes: impl Iterator<Item = &'a str>) -> Self {
        let scopes: Vec<&str> = scopes.collect();
        let scope = if scopes.is_empty() {
            String::new()
        } else {
            format!("scope=\"{}\"", scopes.join(" "))
        };
        let mut params = vec!["error=\"insufficient_scope\"".to_owned()];
        if !scope.is_empty() {
            params.push(scope.clone());
        }
        // The first 401 (no token) names the scopes too, so that a client asks for those
        // (RFC 6750 §3; MCP's authorization spec says servers should).
        let missing: &[String] = if scope.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&scope)
        };
        Challenges {
            missing: header(&self.params, missing),
            insufficient_scope: header(&self.params, &params),
            scope: scope.into(),
            ..self.clone()
        }
    }

    /// These challenges for a route that accepts DPoP proofs of `algs` (`algs=".."`), and
    /// plain bearer tokens unless `dpop_only`.
    pub(crate) fn with_dpop(&self, algs: &str, dpop_only: bool) -> Self {
        Challenges {
            dpop: Some(DpopChallenge {
                algs: algs.into(),
                bearer: !dpop_only,
            }),
            ..self.clone()
        }
    }

    /// The `WWW-Authenticate` values for a refusal of `kind` of a token that came with
    /// `scheme` (`None`: no credentials). Without DPoP, one prebuilt `Bearer` challenge.
    /// With DPoP, the challenge of the scheme used carries the error, and the other is
    /// offered beside it (RFC 9449 §7.1). The challenge carrying an
    /// `insufficient_user_authentication` error names what the route asks (`step_up`).
    pub(super) fn values(
        &self,
        kind: ErrorKind,
        scheme: Option<Scheme>,
        step_up: Option<&StepUp>,
    ) -> [Option<HeaderValue>; 2] {
        let step_up = step_up
            .filter(|_| kind == ErrorKind::InsufficientUserAuthentication)
            .map(|s| &*s.params)
            .filter(|p| !p.is_empty());
        let Some(dpop) = &self.dpop else {
            return [self.bearer(kind, step_up), None];
        };
        let Some(error) = kind
            .oauth_error()
            .or((kind == ErrorKind::MissingToken).then_some(""))
        else {
            return [None, None]; // 503, 429: no challenge
        };
        let proof_error = matches!(kind, ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce);
        let dpop_has_error = !error.is_empty() && (scheme == Some(Scheme::Dpop) || proof_error);
        // The challenge of the scheme the token came with carries the error; with no token,
        // both are offered.
        let bearer = match scheme {
            Some(Scheme::Bearer) if !proof_error => self.bearer(kind, step_up),
            None if dpop.bearer => self.bearer(kind, step_up),
            _ => None,
        };
        let mut params: Vec<&str> = Vec::new();
        if !self.params.is_empty() {
            params.push(&self.params);
        }
        let error_param = format!("error=\"{error}\"");
        if dpop_has_error {
            params.push(&error_param);
        }
        params.push(&dpop.algs);
        let names_scope = (dpop_has_error && kind.oauth_error() == Some("insufficient_scope"))
            || kind == ErrorKind::MissingToken;
        if names_scope && !self.scope.is_empty() {
            params.push(&self.scope);
        }
        if let (true, Some(step_up)) = (dpop_has_error, step_up) {
            params.push(step_up);
        }
        let value = format!("DPoP {}", params.join(", "));
        let dpop = HeaderValue::try_from(value).ok();
        [bearer, dpop]
    }

    /// The `Bearer` challenge for `kind`: prebuilt, or for an
    /// `insufficient_user_authentication` refusal, built with the route's `step_up`
    /// auth-params.
    fn bearer(&self, kind: ErrorKind, step_up: Option<&str>) -> Option<HeaderValue> {
        match (kind.oauth_error(), step_up) {
            (Some(error @ "insufficient_user_authentication"), step_up) => {
                let mut params = vec![format!("error=\"{error}\"")];
                params.extend(step_up.map(str::to_owned));
                Some(header(&self.params, &params))
            }
            _ => self.get(kind).cloned(),
        }
    }

    fn get(&self, kind: ErrorKind) -> Option<&HeaderValue> {
        match (kind, kind.oauth_error()) {
            (ErrorKind::MissingToken, _) => Some(&self.missing),
            (_, Some("invalid_request")) => Some(&self.invalid_request),
            (_, Some("insufficient_scope")) => Some(&self.insufficient_scope),
            (_, Some(_)) => Some(&self.invalid_token),
            (_, None) => None,
        }
    }
}

impl Default for Challenges {
    fn default() -> Self {
        Challenges::new(None, None).unwrap_or_else(|_| unreachable!("no value to refuse"))
    }
}

/// `Bearer` followed by comma-separated auth-params. The parts are built from validated
/// quoted strings and fixed text, so the value is always valid.
fn header(base: &str, more: &[String]) -> HeaderValue {
    let params: Vec<&str> = std::iter::once(base)
        .filter(|p| !p.is_empty())
        .chain(more.iter().map(String::as_str))
        .collect();
    let value = if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    };
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A quoted-string whose content needs no escaping: visible ASCII and space, without `"`
/// and `\`.
fn quoted(value: &str, what: &'static str) -> Result<String, ConfigError> {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        Ok(format!("\"{value}\""))
    } else {
        Err(ConfigError::InvalidHeaderValue(what))
    }
}

impl Challenges {
    /// The plain challenges, `Bearer` without parameters: for a refusal of no route.
    pub(crate) fn plain() -> &'static Challenges {
        static DEFAULT: std::sync::OnceLock<Challenges> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(Challenges::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_carry_realm_and_resource_metadata() {
        let c = Challenges::new(
            Some("api"),
            Some("https://api.example/.well-known/oauth-protected-resource"),
        )
        .expect("valid");
        assert_eq!(
            c.missing,
            "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\""
        );
        assert!(
            c.invalid_token
                .to_str()
                .expect("ascii")
                .ends_with(", error=\"invalid_token\"")
        );
        let plain = Challenges::new(None, None).expect("valid");
        assert_eq!(plain.missing, "Bearer");
        assert_eq!(plain.invalid_request, "Bearer error=\"invalid_request\"");
        assert_eq!(
            plain
                .for_scopes(["a", "b:c"].into_iter())
                .insufficient_scope,
            "Bearer error=\"insufficient_scope\", scope=\"a b:c\""
        );
        assert_eq!(
            c.for_scopes(["a"].into_iter()).insufficient_scope,
            "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\", error=\"insufficient_scope\", scope=\"a\""
        );
    }

    #[test]
    fn the_step_up_challenge_names_what_the_route_asks_on_the_scheme_used() {
        let step_up = StepUp::new(["urn:a", "urn:b"], Some(300));
        let kind = ErrorKind::InsufficientUserAuthentication;
        let text =
            |v: &Option<HeaderValue>| v.as_ref().map(|v| v.to_str().expect("ascii").to_owned());
        let c = Challenges::new(Some("api"), None)
            .expect("valid")
            .for_scopes(["read"].into_iter());
        let [bearer, none] = c.values(kind, Some(Scheme::Bearer), Some(&step_up));
        assert_eq!(
            text(&bearer).as_deref(),
            Some(
                r#"Bearer realm="api", error="insufficient_user_authentication", acr_values="urn:a urn:b", max_age="300""#
            )
        );
        assert_eq!(none, None);
        // Other refusals never carry it.
        let [scope, _] = c.values(
            ErrorKind::InsufficientScope,
            Some(Scheme::Bearer),
            Some(&step_up),
        );
        assert_eq!(
            text(&scope).as_deref(),
            Some(r#"Bearer realm="api", error="insufficient_scope", scope="read""#)
        );
        // With DPoP: the challenge of the scheme the token came with carries the error and
        // the parameters; the other is offered plain.
        let dpop = c.with_dpop("algs=\"ES256\"", false);
        let [bearer, offered] = dpop.values(kind, Some(Scheme::Bearer), Some(&step_up));
        assert!(
            text(&bearer)
                .is_some_and(|b| b.ends_with(r#"acr_values="urn:a urn:b", max_age="300""#))
        );
        assert_eq!(
            text(&offered).as_deref(),
            Some(r#"DPoP realm="api", algs="ES256""#)
        );
        let [none, bound] = dpop.values(kind, Some(Scheme::Dpop), Some(&step_up));
        assert_eq!(none, None);
        assert_eq!(
            text(&bound).as_deref(),
            Some(
                r#"DPoP realm="api", error="insufficient_user_authentication", algs="ES256", acr_values="urn:a urn:b", max_age="300""#
            )
        );
        // One demand alone.
        assert_eq!(&*StepUp::new(["x"], None).params, r#"acr_values="x""#);
        assert_eq!(&*StepUp::new([], Some(0)).params, r#"max_age="0""#);
    }

    #[test]
    fn header_injection_in_realm_is_refused() {
        assert_eq!(
            Challenges::new(Some("a\", error=\"x"), None).expect_err("quote"),
            ConfigError::InvalidHeaderValue("realm")
        );
        assert!(Challenges::new(Some("a\r\nb"), None).is_err());
    }
}
