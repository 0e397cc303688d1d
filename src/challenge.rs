//! Rejection responses: RFC 6750 §3 `WWW-Authenticate` challenges for HTTP, and
//! trailers-only responses with `grpc-status` for gRPC.

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::scope::RequiredScopes;

/// The challenges a validator sends, built once.
#[derive(Clone, Debug)]
pub(crate) struct Challenges {
    /// `Bearer realm="..", resource_metadata=".."` (or empty): the auth-params every
    /// challenge starts with.
    params: String,
    missing: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
}

impl Challenges {
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
        let make = |error: Option<&str>| {
            let mut all: Vec<String> = Vec::new();
            if !params.is_empty() {
                all.push(params.clone());
            }
            if let Some(error) = error {
                all.push(format!("error=\"{error}\""));
            }
            header(&all)
        };
        Ok(Challenges {
            missing: make(None),
            invalid_request: make(Some("invalid_request")),
            invalid_token: make(Some("invalid_token")),
            params,
        })
    }
}

/// `Bearer` followed by comma-separated auth-params. The parts are built from validated
/// quoted strings and fixed text, so the value is always valid.
fn header(params: &[String]) -> HeaderValue {
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

/// The challenge for a route's `insufficient_scope` answer (RFC 6750 §3.1), naming the
/// scopes the route requires.
pub(crate) fn insufficient_scope(challenges: &Challenges, scopes: &RequiredScopes) -> HeaderValue {
    let mut all = Vec::new();
    if !challenges.params.is_empty() {
        all.push(challenges.params.clone());
    }
    all.push("error=\"insufficient_scope\"".to_owned());
    // Scope tokens never hold `"`, `\` or spaces; an invalid requirement names no scope.
    if scopes.is_valid() && !scopes.is_empty() {
        all.push(format!(
            "scope=\"{}\"",
            scopes.iter().collect::<Vec<_>>().join(" ")
        ));
    }
    header(&all)
}

/// Whether the request is gRPC (`content-type: application/grpc` or `application/grpc+..`).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.as_bytes();
        ct.len() >= 16
            && ct[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(ct.get(16), None | Some(b'+' | b';'))
    })
}

/// Builds the response for `err`: RFC 6750 for HTTP, a trailers-only gRPC status for gRPC.
/// The error goes into the response's extensions.
pub(crate) fn reject<B: Default>(
    err: AuthError,
    challenges: &Challenges,
    insufficient_scope: &HeaderValue,
    grpc: bool,
) -> Response<B> {
    let mut res = Response::new(B::default());
    let kind = err.kind();
    let challenge = match kind {
        ErrorKind::MissingToken => Some(&challenges.missing),
        ErrorKind::InvalidRequest => Some(&challenges.invalid_request),
        ErrorKind::InsufficientScope | ErrorKind::Forbidden => Some(insufficient_scope),
        ErrorKind::KeysUnavailable | ErrorKind::RevocationUnavailable => None,
        _ => Some(&challenges.invalid_token),
    };
    let headers = res.headers_mut();
    if let Some(challenge) = challenge {
        headers.insert(WWW_AUTHENTICATE, challenge.clone());
    }
    if kind.status() == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            "grpc-status",
            HeaderValue::from(u16::from(kind.grpc_code())),
        );
        // Descriptions are fixed ASCII without `%`: valid grpc-message values as they are.
        headers.insert("grpc-message", HeaderValue::from_static(kind_message(kind)));
        *res.status_mut() = StatusCode::OK;
    } else {
        *res.status_mut() = kind.status();
    }
    res.extensions_mut().insert(err);
    res
}

/// The `grpc-message`: as vague as the HTTP answer, which tells only `invalid_token`.
fn kind_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingToken => "no bearer token",
        ErrorKind::InvalidRequest => "malformed Authorization header",
        ErrorKind::InsufficientScope => "token lacks the required scope",
        ErrorKind::Forbidden => "token is not allowed here",
        ErrorKind::KeysUnavailable => "verification keys are unavailable",
        ErrorKind::RevocationUnavailable => "revocation status is unavailable",
        _ => "invalid token",
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
        let scopes = RequiredScopes::all(["a", "b:c"]);
        assert_eq!(
            insufficient_scope(&plain, &scopes),
            "Bearer error=\"insufficient_scope\", scope=\"a b:c\""
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

    #[test]
    fn grpc_content_types() {
        let mut h = HeaderMap::new();
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(&h), grpc, "{ct}");
        }
    }
}
