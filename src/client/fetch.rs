//! The token request (RFC 6749 §4.4.2) and its response (§5.1, §5.2).

use std::fmt::Write as _;
use std::future::poll_fn;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tokio::time::Instant;
use tower_service::Service;
use zeroize::Zeroize;

use super::cache::TokenKey;
use super::credentials::{AuthMethod, ClientCredentials};
use super::error::{BoxError, TokenError, TokenErrorKind};

/// Largest token endpoint response read.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024;
/// Lifetime assumed when the response has no `expires_in` (it is only RECOMMENDED).
pub(crate) const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(300);
/// Longest `expires_in` taken at its word.
const MAX_EXPIRES_IN: u64 = 365 * 86_400;

/// A token as the endpoint gave it.
pub(crate) struct Fetched {
    /// `Bearer <token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    pub(crate) expires_in: Duration,
    /// When the request went out: the lifetime counts from here.
    pub(crate) sent_at: Instant,
}

/// `POST` to the token endpoint: `grant_type=client_credentials` with the key's scope and
/// resource, and the client's authentication.
pub(crate) fn request<B: From<Bytes>>(
    credentials: &ClientCredentials,
    key: &TokenKey,
) -> Result<Request<B>, TokenError> {
    let mut form = String::from("grant_type=client_credentials");
    let mut param = |name: &str, value: &str| {
        form.push('&');
        form.push_str(name);
        form.push('=');
        form_encode(&mut form, value);
    };
    if let Some(scope) = &key.scope {
        param("scope", scope);
    }
    if let Some(resource) = &key.resource {
        param("resource", resource);
    }
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(credentials.token_endpoint.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    match credentials.auth_method {
        AuthMethod::ClientSecretBasic => {
            builder = builder.header(AUTHORIZATION, basic(credentials)?);
        }
        AuthMethod::ClientSecretPost => {
            param("client_id", &credentials.client_id);
            param("client_secret", credentials.client_secret.expose());
        }
    }
    builder
        .body(B::from(Bytes::from(form.into_bytes())))
        .map_err(|e| TokenError::new(TokenErrorKind::Transport).with_source(e))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1), sensitive; the
/// intermediate copies of the secret are zeroed.
fn basic(credentials: &ClientCredentials) -> Result<HeaderValue, TokenError> {
    let mut pair = String::new();
    form_encode(&mut pair, &credentials.client_id);
    pair.push(':');
    form_encode(&mut pair, credentials.client_secret.expose());
    let mut value = String::with_capacity(6 + pair.len() * 4 / 3 + 4);
    value.push_str("Basic ");
    STANDARD.encode_string(pair.as_bytes(), &mut value);
    pair.zeroize();
    let header = HeaderValue::from_str(&value);
    value.zeroize();
    let mut header =
        header.map_err(|e| TokenError::new(TokenErrorKind::Transport).with_source(e))?;
    header.set_sensitive(true);
    Ok(header)
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(out: &mut String, value: &str) {
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// Sends `request` through `service` (after `poll_ready`) and reads the answer, all within
/// `timeout`; the body is capped at [`MAX_RESPONSE`].
pub(crate) async fn send<S, B, R>(
    mut service: S,
    request: Request<B>,
    timeout: Duration,
) -> Result<Fetched, TokenError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: Body,
    R::Error: Into<BoxError>,
{
    let sent_at = Instant::now();
    let exchange = async {
        let transport = |e: BoxError| TokenError::new(TokenErrorKind::Transport).with_source(e);
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| transport(e.into()))?;
        let response = service
            .call(request)
            .await
            .map_err(|e| transport(e.into()))?;
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_RESPONSE as u64) {
            return Err(too_large(parts.status));
        }
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    too_large(parts.status)
                } else {
                    transport(e).with_status(parts.status)
                }
            })?
            .to_bytes();
        Ok((parts.status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| TokenError::new(TokenErrorKind::Timeout))??;
    parse(status, &body, sent_at)
}

fn too_large(status: StatusCode) -> TokenError {
    TokenError::new(TokenErrorKind::ResponseTooLarge).with_status(status)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<ExpiresIn>,
}

/// A number, or (from some servers) a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A successful token response (§5.1), or the error (§5.2) the endpoint answered with.
pub(crate) fn parse(
    status: StatusCode,
    body: &[u8],
    sent_at: Instant,
) -> Result<Fetched, TokenError> {
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(e) => TokenError::rejected(status, &e.error, e.error_description.as_deref()),
            Err(_) => TokenError::new(TokenErrorKind::Status).with_status(status),
        });
    }
    let invalid = || TokenError::new(TokenErrorKind::InvalidResponse).with_status(status);
    // The parse error could quote the body, and so the token: keep it out.
    let mut response: TokenResponse = serde_json::from_slice(body).map_err(|_| invalid())?;
    let result = (|| {
        if !response.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::new(TokenErrorKind::UnsupportedTokenType).with_status(status));
        }
        let expires_in = match &response.expires_in {
            None => DEFAULT_EXPIRES_IN,
            Some(ExpiresIn::Number(n)) => Duration::from_secs((*n).min(MAX_EXPIRES_IN)),
            Some(ExpiresIn::Text(s)) => Duration::from_secs(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| invalid())?
                    .min(MAX_EXPIRES_IN),
            ),
        };
        let token = &response.access_token;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        let mut value = String::with_capacity(7 + token.len());
        value.push_str("Bearer ");
        value.push_str(token);
        let header = HeaderValue::from_str(&value);
        value.zeroize();
        let mut header = header.map_err(|_| invalid())?;
        header.set_sensitive(true);
        Ok(Fetched {
            header,
            expires_in,
            sent_at,
        })
    })();
    response.access_token.zeroize();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientCredentials;
    use http_body_util::Full;

    fn credentials(method: AuthMethod) -> ClientCredentials {
        ClientCredentials::builder("https://issuer.example/token", "svc:2 é", "p@ss word:+%&=")
            .auth_method(method)
            .build()
            .expect("valid")
    }

    fn key(scope: Option<&str>, resource: Option<&str>) -> TokenKey {
        TokenKey {
            scope: scope.map(Into::into),
            resource: resource.map(Into::into),
        }
    }

    async fn body(req: Request<Full<Bytes>>) -> String {
        let bytes = req.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn basic_authentication_form_encodes_id_and_secret() {
        let req: Request<Full<Bytes>> = request(
            &credentials(AuthMethod::ClientSecretBasic),
            &key(Some("read write"), Some("https://api.example/v1?x=1")),
        )
        .expect("request");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "https://issuer.example/token");
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let auth = &req.headers()[AUTHORIZATION];
        assert!(auth.is_sensitive());
        let decoded = STANDARD
            .decode(&auth.as_bytes()["Basic ".len()..])
            .expect("base64");
        assert_eq!(decoded, b"svc%3A2+%C3%A9:p%40ss+word%3A%2B%25%26%3D");
        assert_eq!(
            body(req).await,
            "grant_type=client_credentials&scope=read+write\
             &resource=https%3A%2F%2Fapi.example%2Fv1%3Fx%3D1"
        );
    }

    #[tokio::test]
    async fn post_authentication_puts_the_credentials_in_the_body() {
        let req: Request<Full<Bytes>> =
            request(&credentials(AuthMethod::ClientSecretPost), &key(None, None)).expect("request");
        assert!(req.headers().get(AUTHORIZATION).is_none());
        assert_eq!(
            body(req).await,
            "grant_type=client_credentials&client_id=svc%3A2+%C3%A9\
             &client_secret=p%40ss+word%3A%2B%25%26%3D"
        );
    }

    fn ok(json: &str) -> Result<Fetched, TokenError> {
        parse(StatusCode::OK, json.as_bytes(), Instant::now())
    }

    fn kind(result: Result<Fetched, TokenError>) -> Option<TokenErrorKind> {
        result.err().map(|e| e.kind())
    }

    #[test]
    fn parses_a_token_response() {
        let f = ok(r#"{"access_token":"abc.def","token_type":"bearer","expires_in":60}"#)
            .expect("valid");
        assert_eq!(f.header, "Bearer abc.def");
        assert!(f.header.is_sensitive());
        assert_eq!(f.expires_in, Duration::from_secs(60));
        let f = ok(r#"{"access_token":"a","token_type":"Bearer","expires_in":"120"}"#)
            .expect("string expires_in");
        assert_eq!(f.expires_in, Duration::from_secs(120));
        let f = ok(r#"{"access_token":"a","token_type":"Bearer"}"#).expect("no expires_in");
        assert_eq!(f.expires_in, DEFAULT_EXPIRES_IN);
        let f = ok(r#"{"access_token":"a","token_type":"Bearer","expires_in":1e999}"#);
        assert_eq!(kind(f), Some(TokenErrorKind::InvalidResponse));
        let f =
            ok(r#"{"access_token":"a","token_type":"Bearer","expires_in":18446744073709551615}"#)
                .expect("huge expires_in");
        assert_eq!(f.expires_in, Duration::from_secs(MAX_EXPIRES_IN));
    }

    #[test]
    fn refuses_bad_token_responses() {
        for body in [
            "not json",
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":"","token_type":"Bearer"}"#,
            r#"{"access_token":"a b","token_type":"Bearer"}"#,
            "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"token_type\":\"Bearer\"}",
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"soon"}"#,
        ] {
            assert_eq!(
                kind(ok(body)),
                Some(TokenErrorKind::InvalidResponse),
                "{body}"
            );
        }
        assert_eq!(
            kind(ok(r#"{"access_token":"a","token_type":"DPoP"}"#)),
            Some(TokenErrorKind::UnsupportedTokenType)
        );
    }

    #[test]
    fn error_responses_become_rejections_and_never_echo_the_body() {
        let err = parse(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            Instant::now(),
        )
        .err()
        .expect("error");
        assert_eq!(err.kind(), TokenErrorKind::Rejected);
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        let err = parse(
            StatusCode::BAD_GATEWAY,
            b"<html>secret-ish</html>",
            Instant::now(),
        )
        .err()
        .expect("error");
        assert_eq!(err.kind(), TokenErrorKind::Status);
        assert!(!format!("{err:?} {err}").contains("secret-ish"));
    }
}
