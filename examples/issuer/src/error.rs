//! OAuth errors as JSON (RFC 6749 §5.2, RFC 8707 §2, RFC 7009 §2.2.1, RFC 7591 §3.2.2), and
//! the JSON responses every endpoint shares.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The challenge of every 401 `invalid_client` (RFC 6749 §5.2, RFC 7235 §3.1: a 401 always
/// says how to authenticate).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"oauth\", charset=\"UTF-8\"";

/// An error answer of a JSON endpoint.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    pub retry_after: Option<u64>,
    /// A fresh `DPoP-Nonce` for the client to retry with (`use_dpop_nonce`, RFC 9449 §8).
    pub dpop_nonce: Option<HeaderValue>,
}

impl OAuthError {
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            retry_after: None,
            dpop_nonce: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// One answer for every client authentication failure: unknown client, wrong secret,
    /// missing or malformed credentials, whatever the method. Always 401 with a challenge.
    pub fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }

    /// A code, refresh token or verifier that does not hold: one description for every
    /// reason, which only the log tells.
    pub fn invalid_grant() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the authorization grant is invalid, expired, revoked or was issued to another client",
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// Too many failed attempts from this peer or for this name: come back later.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        OAuthError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many attempts; retry later",
            )
        }
    }

    /// A dependency (the verification queue, a store) cannot serve this request now.
    pub fn unavailable(description: impl Into<String>) -> Self {
        OAuthError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                description,
            )
        }
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the request could not be completed",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = no_store_json(self.status, &body);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(nonce) = self.dpop_nonce {
            headers.insert("dpop-nonce", nonce);
        }
        response
    }
}

/// JSON that no cache may keep (RFC 6749 §5.1).
pub fn no_store_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
            (PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Public JSON documents (metadata, JWKS).
pub fn cacheable_json(body: &str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=60"),
        ],
        body.to_owned(),
    )
        .into_response()
}
