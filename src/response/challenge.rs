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
    /// offered beside it (RFC 9449 §7.1).
    pub(super) fn values(
        &self,
        kind: ErrorKind,
        scheme: Option<Scheme>,
    ) -> [Option<HeaderValue>; 2] {
        let Some(dpop) = &self.dpop else {
            return [self.get(kind).cloned(), None];
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
            Some(Scheme::Bearer) if !proof_error => self.get(kind).cloned(),
            None if dpop.bearer => self.get(kind).cloned(),
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
        let value = format!("DPoP {}", params.join(", "));
        let dpop = HeaderValue::try_from(value).ok();
        [bearer, dpop]
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
    fn header_injection_in_realm_is_refused() {
        assert_eq!(
            Challenges::new(Some("a\", error=\"x"), None).expect_err("quote"),
            ConfigError::InvalidHeaderValue("realm")
        );
        assert!(Challenges::new(Some("a\r\nb"), None).is_err());
    }
}
