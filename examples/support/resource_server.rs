//! The protected resource of `examples/resource_server.rs`, shared with `examples/demo.rs`.
#![allow(dead_code)]

use axum::routing::get;
use axum::{Extension, Json, Router};
use bearer_guard::{AccessClaims, Claims, ConfigError, RequireScope, Validator};
use serde_json::{Value, json};

/// `GET /protected-resource` (needs `scope`) and `GET /healthz` (open).
pub fn app(validator: &Validator, scope: &str) -> Result<Router, ConfigError> {
    Ok(Router::new()
        .route(
            "/protected-resource",
            get(protected).layer(RequireScope::all(validator, [scope])?),
        )
        .route("/healthz", get(|| async { "ok" })))
}

async fn protected(Extension(claims): Extension<Claims<AccessClaims>>) -> Json<Value> {
    Json(json!({
        "message": "Access granted!",
        "client": claims.sub,
        "scope": claims.scope,
    }))
}
