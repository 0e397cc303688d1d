//! The authorization code flow with PKCE as `examples/demo.rs` runs it without a browser: it
//! posts the login-and-consent form itself, reads the code from the redirect's `Location`,
//! redeems it, and rotates refresh tokens. Also the demo's public client and user.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use bearer_guard_issuer::{self as issuer, User};

/// DEMO ONLY: the public client and its redirect URI (nothing listens there: the demo reads
/// the redirect instead of following it), and the user and password (as in
/// `examples/clients.toml` and `examples/users.toml`).
pub const CLIENT_ID: &str = "demo-app";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9999/callback";
pub const USERNAME: &str = "alice";
pub const PASSWORD: &str = "alice-password";

/// The `[[clients]]` entry of `demo-app`: a public client that may have `read write` for
/// `api_url`.
pub fn client_toml(api_url: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "{CLIENT_ID}"
client_name = "Demo app"
token_endpoint_auth_method = "none"
redirect_uris = ["{REDIRECT_URI}"]
scopes = ["read", "write"]
resources = ["{api_url}"]
token_lifetime = 300
"#
    )
}

/// The demo's one user, `alice`, hashed at start.
pub fn users() -> Result<HashMap<String, User>, issuer::Error> {
    let hash = Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .map_err(|e| format!("hashing failed: {e}"))?;
    issuer::parse_users(&format!(
        "[[users]]\nusername = \"{USERNAME}\"\npassword_hash = \"{hash}\"\n"
    ))
}

/// An access token and the refresh token that came with it.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// `demo-app` talking to the issuer at `issuer_url`.
pub struct AuthCodeClient<'a> {
    pub http: &'a Client<HttpConnector, Full<Bytes>>,
    pub issuer_url: &'a str,
}

impl AuthCodeClient<'_> {
    /// Signs `alice` in with PKCE, asking for `scope`; `Err` describes a refusal.
    pub async fn sign_in(&self, scope: &str) -> Result<Tokens, String> {
        let mut verifier = [0u8; 32];
        getrandom::fill(&mut verifier).map_err(|e| format!("no randomness: {e}"))?;
        let verifier = URL_SAFE_NO_PAD.encode(verifier);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = "demo-state";
        // The form the login page would post: the request, the credentials, the consent.
        let form = encode(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("username", USERNAME),
            ("password", PASSWORD),
            ("approve", "yes"),
        ]);
        let (status, location, _) = self.post(issuer::AUTHORIZE_PATH, form).await?;
        let location = location
            .filter(|_| status == StatusCode::FOUND)
            .ok_or_else(|| format!("authorize {}", status.as_u16()))?;
        let url = url::Url::parse(&location).map_err(|_| "a bad redirect".to_owned())?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state)
            || param("iss").as_deref() != Some(self.issuer_url)
        {
            return Err("redirect without our state and the issuer's iss".to_owned());
        }
        let code = param("code")
            .ok_or_else(|| format!("authorize {}", param("error").unwrap_or_default()))?;
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .await
    }

    /// Trades `refresh` for new tokens; `Err` describes a refusal.
    pub async fn refresh(&self, refresh: &str) -> Result<Tokens, String> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", refresh),
        ])
        .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Tokens, String> {
        let (status, _, body) = self.post(issuer::TOKEN_PATH, encode(form)).await?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |name: &str| body[name].as_str().map(str::to_owned);
        match (status, field("access_token"), field("refresh_token")) {
            (StatusCode::OK, Some(access), Some(refresh)) => Ok(Tokens { access, refresh }),
            _ => Err(format!(
                "token {} {}",
                status.as_u16(),
                field("error").unwrap_or_default()
            )),
        }
    }

    async fn post(
        &self,
        path: &str,
        form: String,
    ) -> Result<(StatusCode, Option<String>, Bytes), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.issuer_url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            let location = parts
                .headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok::<_, String>((parts.status, location, body))
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

/// `application/x-www-form-urlencoded`.
fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        let _ = write!(out, "{name}=");
        out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
    }
    out
}
