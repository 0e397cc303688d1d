//! The token endpoint: the client-credentials request (RFC 6749 §4.4.2) and its response
//! (§5.1, §5.2), sent and read through the crate's bounded fetch. With a DPoP key, the
//! request carries a proof, and a `use_dpop_nonce` answer is retried once with the nonce the
//! endpoint sent (RFC 9449 §5, §8).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;
use zeroize::Zeroize;

use super::credentials::{AuthMethod, ClientCredentials};
use super::dpop::{DPOP, DpopState};
use super::error::{TokenError, TokenErrorKind};
use super::origin::Origin;
use super::subject::SubjectToken;
use crate::client_auth::{ClientSecret, JWT_BEARER, basic_authorization, form_encode};
use crate::fetch::HttpService;
use crate::fetch::{self, FetchError, Limits};

/// Largest token endpoint response read.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024;
/// Lifetime assumed when the response has no `expires_in` (it is only RECOMMENDED).
pub(crate) const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(300);
/// Longest `expires_in` taken at its word.
const MAX_EXPIRES_IN: u64 = 365 * 86_400;

/// What a token is asked for: the normalised scope and the RFC 8707 resource, and for a
/// token exchange the SHA-256 digest of the subject token (never the token itself). The
/// cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) subject: Option<[u8; 32]>,
}

/// The grant type of RFC 8693.
pub(crate) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of the subject token and of the token asked for (RFC 8693 §3).
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token exchange (RFC 8693 §2.1) instead of the client-credentials grant: the subject
/// token, and the `audience` asked for beside the key's `resource`.
#[derive(Clone, Copy)]
pub(crate) struct TokenExchange<'a> {
    pub(crate) subject: &'a SubjectToken,
    pub(crate) audience: Option<&'a str>,
}

/// A token as the endpoint issued it.
pub(crate) struct Issued {
    /// `Bearer <token>` or `DPoP <token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// A DPoP-bound token (`token_type: DPoP`): each call needs a proof.
    pub(crate) dpop: bool,
    /// The lifetime used: `expires_in`, within the layer's floor and a year.
    pub(crate) expires_in: Duration,
    /// `expires_in` as the endpoint sent it, when it was below the floor.
    pub(crate) raised_from: Option<u64>,
    /// When the request went out: the lifetime counts from here.
    pub(crate) sent_at: Instant,
}

/// How a token request goes: its limits, and the DPoP key its proofs are signed with.
pub(crate) struct Exchange<'a> {
    pub(crate) timeout: Duration,
    /// The shortest lifetime a token is kept for.
    pub(crate) floor: Duration,
    pub(crate) dpop: Option<&'a DpopState>,
    /// A token exchange, not the client-credentials grant.
    pub(crate) token_exchange: Option<TokenExchange<'a>>,
}

/// Asks the token endpoint for a token for `key`, through `service`, within
/// `exchange.timeout` (a retry with a DPoP nonce included); a lifetime below
/// `exchange.floor` is raised to it.
pub(crate) async fn fetch_token<S, B>(
    service: S,
    credentials: &ClientCredentials,
    key: &TokenKey,
    exchange: &Exchange<'_>,
) -> Result<Issued, TokenError>
where
    S: HttpService<B>,
    B: From<Bytes>,
{
    let attempts = attempts(service, credentials, key, exchange);
    let issued = match tokio::time::timeout(exchange.timeout, attempts).await {
        Ok(issued) => issued,
        Err(_) => {
            let url = crate::url::redact(&credentials.token_endpoint.to_string()).into();
            Err(TokenError::fetch(FetchError::timeout(
                url,
                exchange.timeout,
            )))
        }
    };
    crate::metrics::client_token_request(match &issued {
        Ok(_) => "ok",
        Err(err) => err.kind().as_str(),
    });
    issued
}

/// The token request, and its one retry after a `use_dpop_nonce` answer that carried a
/// nonce (RFC 9449 §8).
async fn attempts<S, B>(
    service: S,
    credentials: &ClientCredentials,
    key: &TokenKey,
    exchange: &Exchange<'_>,
) -> Result<Issued, TokenError>
where
    S: HttpService<B>,
    B: From<Bytes>,
{
    // Each attempt has the whole time; `fetch_token` bounds both together.
    let limits = Limits {
        timeout: exchange.timeout,
        max_body: MAX_RESPONSE,
        accept: readable,
    };
    let origin = Origin::of(&credentials.token_endpoint);
    let mut nonce_retry = exchange.dpop.is_some();
    loop {
        let sent_at = Instant::now();
        let mut request = request::<B>(credentials, key, exchange.token_exchange)?;
        if let Some(dpop) = exchange.dpop {
            let proof = dpop.proof(&Method::POST, &credentials.token_endpoint, None)?;
            request.headers_mut().insert(DPOP, proof);
        }
        let fetched = fetch::send(service.clone(), request, &limits)
            .await
            .map_err(TokenError::fetch)?;
        let new_nonce = match (exchange.dpop, &origin) {
            (Some(dpop), Some(origin)) => dpop.remember(origin, &fetched.headers),
            _ => false,
        };
        if nonce_retry && new_nonce && asks_for_nonce(fetched.status, &fetched.body) {
            tracing::debug!(
                target: "bearer_guard::client",
                reason = "use_dpop_nonce",
                "the token endpoint asks for a DPoP nonce; retrying once with it"
            );
            nonce_retry = false;
            continue;
        }
        return parse(
            fetched.status,
            &fetched.body,
            fetched.url(),
            sent_at,
            exchange.floor,
            exchange.dpop.is_some(),
        );
    }
}

/// A `400 use_dpop_nonce` error response (RFC 9449 §8).
fn asks_for_nonce(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::BAD_REQUEST
        && serde_json::from_slice::<ErrorResponse>(body).is_ok_and(|e| e.error == "use_dpop_nonce")
}

/// Success, and the statuses RFC 6749 §5.2 errors come with (400; 401 for a client that
/// failed to authenticate; 403 from some servers). Any other is an error without reading.
fn readable(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
}

/// `POST` to the token endpoint: `grant_type=client_credentials` (or, with `exchange`, the
/// RFC 8693 token exchange of its subject token) with the key's scope and resource, and the
/// client's authentication. The body is zeroed once copied into the request (it may hold
/// the subject token or the secret).
pub(crate) fn request<B: From<Bytes>>(
    credentials: &ClientCredentials,
    key: &TokenKey,
    exchange: Option<TokenExchange<'_>>,
) -> Result<Request<B>, TokenError> {
    let mut form = zeroize::Zeroizing::new(String::new());
    let mut param = |name: &str, value: &str| {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(name);
        form.push('=');
        form_encode(&mut form, value);
    };
    match exchange {
        None => param("grant_type", "client_credentials"),
        Some(exchange) => {
            param("grant_type", TOKEN_EXCHANGE);
            param("subject_token", exchange.subject.expose());
            param("subject_token_type", ACCESS_TOKEN_TYPE);
            param("requested_token_type", ACCESS_TOKEN_TYPE);
            if let Some(audience) = exchange.audience {
                param("audience", audience);
            }
        }
    }
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
            param("client_secret", secret(credentials)?.expose());
        }
        AuthMethod::PrivateKeyJwt => {
            let Some((key, issuer)) = &credentials.private_key else {
                return Err(no_credentials());
            };
            let assertion = key
                .assertion(&credentials.client_id, issuer)
                .map_err(|e| TokenError::new(TokenErrorKind::Assertion).with_source(e))?;
            param("client_id", &credentials.client_id);
            param("client_assertion_type", JWT_BEARER);
            param("client_assertion", &assertion);
        }
    }
    builder
        .body(B::from(Bytes::copy_from_slice(form.as_bytes())))
        .map_err(|e| TokenError::new(TokenErrorKind::Transport).with_source(e))
}

/// `client_secret_basic` for these credentials.
fn basic(credentials: &ClientCredentials) -> Result<HeaderValue, TokenError> {
    basic_authorization(&credentials.client_id, secret(credentials)?)
        .map_err(|e| TokenError::new(TokenErrorKind::Transport).with_source(e))
}

/// The secret of credentials whose method needs one (`build` made sure they have it).
fn secret(credentials: &ClientCredentials) -> Result<&ClientSecret, TokenError> {
    credentials
        .client_secret
        .as_ref()
        .ok_or_else(no_credentials)
}

fn no_credentials() -> TokenError {
    TokenError::new(TokenErrorKind::Assertion)
        .with_detail("the credentials lack what their authentication method needs")
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
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
/// Nothing of the body is kept in an error but the §5.2 `error` and its description. A
/// lifetime below `floor` is raised to it: an endpoint answering `expires_in: 0` would
/// otherwise cost one token request per call. A `DPoP` token is accepted only when the
/// request carried a proof (`dpop_sent`); a `Bearer` one always (RFC 9449 §5: an endpoint
/// may choose not to bind).
pub(crate) fn parse(
    status: StatusCode,
    body: &[u8],
    url: &Arc<str>,
    sent_at: Instant,
    floor: Duration,
    dpop_sent: bool,
) -> Result<Issued, TokenError> {
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(e) => TokenError::rejected(status, &e.error, e.error_description.as_deref()),
            Err(_) => TokenError::new(TokenErrorKind::Status).with_status(status),
        }
        .at(url));
    }
    let invalid = |what: &'static str| {
        TokenError::new(TokenErrorKind::InvalidResponse)
            .with_status(status)
            .with_detail(what)
            .at(url)
    };
    let mut response: TokenResponse = fetch::json(url, status, body).map_err(TokenError::fetch)?;
    let result = (|| {
        let token_type = response
            .token_type
            .as_deref()
            .ok_or_else(|| invalid("no `token_type` member"))?;
        let scheme = if token_type.eq_ignore_ascii_case("bearer") {
            "Bearer "
        } else if dpop_sent && token_type.eq_ignore_ascii_case("dpop") {
            "DPoP "
        } else {
            return Err(TokenError::new(TokenErrorKind::UnsupportedTokenType)
                .with_status(status)
                .with_token_type(token_type)
                .at(url));
        };
        let expires_in = match &response.expires_in {
            None => None,
            Some(ExpiresIn::Number(n)) => Some(*n),
            Some(ExpiresIn::Text(s)) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| invalid("`expires_in` is not a number of seconds"))?,
            ),
        };
        let lifetime = expires_in
            .map_or(DEFAULT_EXPIRES_IN, |n| {
                Duration::from_secs(n.min(MAX_EXPIRES_IN))
            })
            .max(floor);
        let token = response
            .access_token
            .as_deref()
            .ok_or_else(|| invalid("no `access_token` member"))?;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "the `access_token` is empty or holds characters a header cannot carry",
            ));
        }
        let mut value = String::with_capacity(scheme.len() + token.len());
        value.push_str(scheme);
        value.push_str(token);
        let header = HeaderValue::from_str(&value);
        value.zeroize();
        let mut header = header.map_err(|_| invalid("the `access_token` cannot be sent"))?;
        header.set_sensitive(true);
        Ok(Issued {
            header,
            dpop: scheme == "DPoP ",
            expires_in: lifetime,
            raised_from: expires_in.filter(|n| Duration::from_secs(*n) < floor),
            sent_at,
        })
    })();
    if let Some(token) = &mut response.access_token {
        token.zeroize();
    }
    result
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::client::ClientCredentials;
    use http_body_util::{BodyExt as _, Full};

    const FLOOR: Duration = Duration::from_secs(10);

    fn url() -> Arc<str> {
        Arc::from("https://issuer.example/token")
    }

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
            subject: None,
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
            None,
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
        let req: Request<Full<Bytes>> = request(
            &credentials(AuthMethod::ClientSecretPost),
            &key(None, None),
            None,
        )
        .expect("request");
        assert!(req.headers().get(AUTHORIZATION).is_none());
        assert_eq!(
            body(req).await,
            "grant_type=client_credentials&client_id=svc%3A2+%C3%A9\
             &client_secret=p%40ss+word%3A%2B%25%26%3D"
        );
    }

    #[tokio::test]
    async fn a_token_exchange_sends_the_subject_token_and_the_targets() {
        let subject = SubjectToken::new("the.subject-token").expect("token");
        let exchange = TokenExchange {
            subject: &subject,
            audience: Some("stock"),
        };
        let req: Request<Full<Bytes>> = request(
            &credentials(AuthMethod::ClientSecretBasic),
            &key(Some("read"), Some("https://stock.example")),
            Some(exchange),
        )
        .expect("request");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(
            body(req).await,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=the.subject-token\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &audience=stock&scope=read&resource=https%3A%2F%2Fstock.example"
        );
    }

    #[tokio::test]
    async fn private_key_jwt_sends_a_fresh_assertion_and_no_secret() {
        let signing_key = crate::client_auth::PrivateKeyJwt::from_jwk(
            r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
        )
        .expect("key");
        let credentials = ClientCredentials::private_key_jwt(
            "https://issuer.example/token",
            "svc",
            signing_key,
            "https://issuer.example",
        )
        .build()
        .expect("credentials");
        let req: Request<Full<Bytes>> =
            request(&credentials, &key(None, None), None).expect("request");
        assert!(req.headers().get(AUTHORIZATION).is_none());
        let form = body(req).await;
        let prefix = "grant_type=client_credentials&client_id=svc\
                      &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                      &client_assertion=";
        assert!(form.starts_with(prefix), "{form}");
        assert_eq!(form[prefix.len()..].split('.').count(), 3, "{form}");
        assert!(
            ClientCredentials::private_key_jwt(
                "https://i.example/t",
                "svc",
                credentials.private_key.clone().expect("key").0,
                "https://i.example"
            )
            .auth_method(AuthMethod::ClientSecretBasic)
            .build()
            .is_err(),
            "a secret method without a secret"
        );
    }

    fn ok(json: &str) -> Result<Issued, TokenError> {
        parse(
            StatusCode::OK,
            json.as_bytes(),
            &url(),
            Instant::now(),
            FLOOR,
            false,
        )
    }

    /// As [`ok`], for a request that carried a DPoP proof.
    fn ok_after_proof(json: &str) -> Result<Issued, TokenError> {
        parse(
            StatusCode::OK,
            json.as_bytes(),
            &url(),
            Instant::now(),
            FLOOR,
            true,
        )
    }

    fn kind(result: Result<Issued, TokenError>) -> Option<TokenErrorKind> {
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
    fn a_dpop_token_is_taken_only_after_a_proof_and_a_bearer_one_always() {
        let f = ok_after_proof(r#"{"access_token":"a.b","token_type":"DPoP","expires_in":60}"#)
            .expect("DPoP after a proof");
        assert_eq!(f.header, "DPoP a.b");
        assert!(f.dpop && f.header.is_sensitive());
        let f = ok_after_proof(r#"{"access_token":"a.b","token_type":"dpop"}"#).expect("any case");
        assert!(f.dpop);
        // An endpoint that did not bind the token: it goes out as Bearer.
        let f = ok_after_proof(r#"{"access_token":"a.b","token_type":"Bearer"}"#)
            .expect("Bearer after a proof");
        assert_eq!(f.header, "Bearer a.b");
        assert!(!f.dpop);
        for other in ["N_A", "mac", "DPoP "] {
            let json = format!(r#"{{"access_token":"a","token_type":"{other}"}}"#);
            assert_eq!(
                kind(ok_after_proof(&json)),
                Some(TokenErrorKind::UnsupportedTokenType),
                "{other}"
            );
        }
    }

    #[test]
    fn only_a_400_use_dpop_nonce_asks_for_a_nonce() {
        let nonce = br#"{"error":"use_dpop_nonce","error_description":"x"}"#;
        assert!(asks_for_nonce(StatusCode::BAD_REQUEST, nonce));
        assert!(!asks_for_nonce(StatusCode::UNAUTHORIZED, nonce));
        assert!(!asks_for_nonce(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_dpop_proof"}"#
        ));
        assert!(!asks_for_nonce(StatusCode::BAD_REQUEST, b"use_dpop_nonce"));
    }

    #[test]
    fn error_responses_become_rejections_and_never_echo_the_body() {
        let err = parse(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            &url(),
            Instant::now(),
            FLOOR,
            false,
        )
        .err()
        .expect("error");
        assert_eq!(err.kind(), TokenErrorKind::Rejected);
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        let err = parse(
            StatusCode::BAD_GATEWAY,
            b"<html>secret-ish</html>",
            &url(),
            Instant::now(),
            FLOOR,
            false,
        )
        .err()
        .expect("error");
        assert_eq!(err.kind(), TokenErrorKind::Status);
        assert!(!format!("{err:?} {err}").contains("secret-ish"));
    }

    #[test]
    fn a_lifetime_below_the_floor_is_raised_and_reported() {
        for (expires_in, raised) in [
            ("0", Some(0)),
            ("\"3\"", Some(3)),
            ("10", None),
            ("60", None),
        ] {
            let json = format!(
                r#"{{"access_token":"a","token_type":"Bearer","expires_in":{expires_in}}}"#
            );
            let f = ok(&json).expect("valid");
            assert!(f.expires_in >= FLOOR, "{json}");
            assert_eq!(f.raised_from, raised, "{json}");
        }
    }

    #[test]
    fn invalid_responses_say_what_is_wrong_and_never_quote_the_token() {
        let secret = "tok-SECRET-123";
        for (body, says) in [
            (
                format!(r#"{{"token_type":"Bearer","x":"{secret}"}}"#),
                "no `access_token` member",
            ),
            (
                format!(r#"{{"access_token":"{secret}"}}"#),
                "no `token_type` member",
            ),
            (
                format!(
                    r#"{{"access_token":"{secret}","token_type":"Bearer","expires_in":"{secret}"}}"#
                ),
                "`expires_in` is not a number",
            ),
            (
                format!(r#"{{"access_token":["{secret}"],"token_type":"Bearer"}}"#),
                "not the JSON expected",
            ),
            (format!("{secret} not json"), "syntax at line 1, column 2"),
        ] {
            let err = ok(&body).err().expect("invalid");
            assert_eq!(err.kind(), TokenErrorKind::InvalidResponse, "{body}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(says), "{shown}");
            assert!(shown.contains("https://issuer.example/token"), "{shown}");
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        let err = ok(r#"{"access_token":"a","token_type":"DPoP"}"#)
            .err()
            .expect("dpop");
        assert!(
            err.to_string()
                .contains("issued a `DPoP` token, not a Bearer one"),
            "{err}"
        );
    }

    #[test]
    fn only_success_and_oauth_error_statuses_are_read() {
        for status in [200, 201, 400, 401, 403] {
            assert!(
                readable(StatusCode::from_u16(status).expect("status")),
                "{status}"
            );
        }
        for status in [301, 302, 404, 500, 502, 503] {
            assert!(
                !readable(StatusCode::from_u16(status).expect("status")),
                "{status}"
            );
        }
    }
}
