//! The protected resource of `examples/resource_server.rs`, shared with `examples/demo.rs`.
#![allow(dead_code)]

use axum::routing::get;
use axum::{Json, Router};
use bearer_guard::rate_limit::RateLimitByClient;
use bearer_guard::{
    AccessClaims, Claims, ConfigError, Guard, RequireScope, VerifiedToken,
    metadata::ProtectedResource,
};
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// What the API serves beside its protected route.
#[derive(Default)]
pub struct Extras {
    /// A per-client quota on `/protected-resource`.
    pub rate_limit: Option<RateLimitByClient>,
    /// RFC 9728 metadata, served at its well-known path (the guard should point at it).
    pub metadata: Option<ProtectedResource>,
    /// `GET /metrics`: Prometheus text.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// `GET /protected-resource` (needs `scope`, checked by `guard`'s rules), `GET /healthz`
/// (open), and what `extras` asks for.
pub fn app(guard: &Guard, scope: &str, extras: Extras) -> Result<Router, ConfigError> {
    let protected = ServiceBuilder::new()
        .layer(RequireScope::all(guard, [scope])?)
        .option_layer(extras.rate_limit);
    let mut app = Router::new()
        .route(
            "/protected-resource",
            get(protected_resource).layer(protected),
        )
        .route("/healthz", get(|| async { "ok" }));
    if let Some(metadata) = extras.metadata {
        app = app.route_service(metadata.well_known_path(), metadata.service());
    }
    if let Some(metrics) = extras.metrics {
        app = app.route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
    }
    Ok(app)
}

async fn protected_resource(
    claims: Claims<AccessClaims>,
    token: axum::Extension<VerifiedToken>,
) -> Json<Value> {
    Json(json!({
        "message": "Access granted!",
        "client": token.client_id(),
        "subject": token.subject(),
        "scope": claims.scope,
        "bound": token.confirmation().is_some(),
    }))
}
