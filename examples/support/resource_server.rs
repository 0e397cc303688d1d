//! The protected resource of `examples/resource_server.rs`, shared with `examples/demo.rs`.
#![allow(dead_code)]

use axum::http::{Method, header};
use axum::routing::{MethodFilter, get, on};
use axum::{Json, Router};
use bearer_guard::rate_limit::RateLimitByClient;
use bearer_guard::{
    AccessClaims, Claims, ConfigError, Guard, RequireScope, VerifiedToken,
    metadata::ProtectedResource,
};
use serde_json::{Map, Value, json};
use tower::ServiceBuilder;

/// The path of the guarded routes.
pub const RESOURCE_PATH: &str = "/protected-resource";
/// The scope `POST` needs beside the one `GET` needs.
pub const WRITE_SCOPE: &str = "write";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// What the API serves beside its protected routes, and what those routes ask beyond their
/// scopes.
#[derive(Default)]
pub struct Extras {
    /// What the guarded routes ask of the user's sign-in (RFC 9470); nothing by default.
    pub authentication: Authentication,
    /// A per-client quota on the guarded routes (one bucket per client for all of them).
    pub rate_limit: Option<RateLimitByClient>,
    /// RFC 9728 metadata, served at its well-known path (the guard should point at it).
    pub metadata: Option<ProtectedResource>,
    /// `GET /metrics`: Prometheus text.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// `GET /openapi.json`: the OpenAPI 3.1 document of the guarded routes.
    pub openapi: Option<ApiDocs>,
}

/// What the guarded routes ask of the user's sign-in behind a token (RFC 9470): refused with
/// `401` `insufficient_user_authentication` when it falls short.
#[derive(Clone, Debug, Default)]
pub struct Authentication {
    /// `acr` values, any one of which will do; empty: `acr` is not looked at.
    pub acr: Vec<String>,
    /// The oldest `auth_time` accepted, as an age; `None`: not looked at.
    pub max_age: Option<std::time::Duration>,
}

impl Authentication {
    /// `layer`, asking this of the sign-in.
    fn apply(&self, layer: RequireScope) -> Result<RequireScope, ConfigError> {
        let layer = match self.acr.as_slice() {
            [] => layer,
            acr => layer.require_acr(acr)?,
        };
        Ok(match self.max_age {
            Some(age) => layer.max_auth_age(age),
            None => layer,
        })
    }

    /// What the OpenAPI document says of it, if anything.
    fn describe(&self) -> Option<String> {
        let mut demands = Vec::new();
        if !self.acr.is_empty() {
            let acr: Vec<String> = self.acr.iter().map(|a| format!("`{a}`")).collect();
            demands.push(format!("a sign-in of `acr` {}", acr.join(" or ")));
        }
        if let Some(age) = self.max_age {
            demands.push(format!("at most {} seconds ago", age.as_secs()));
        }
        (!demands.is_empty()).then(|| {
            format!(
                " The user must have signed in with {} (RFC 9470): a token short of it gets \
                 401 `insufficient_user_authentication`.",
                demands.join(", ")
            )
        })
    }
}

/// What the OpenAPI document says beside the routes.
pub struct ApiDocs {
    /// The issuers whose tokens the API takes: one security scheme each (OpenID Connect
    /// discovery, `<issuer>/.well-known/openid-configuration`), named `issuer-1`, `issuer-2`
    /// ... in this order; every guarded route accepts a token of any of them.
    pub issuers: Vec<String>,
    /// The API's public origin, the document's `servers` entry (default: relative to the
    /// document's own URL).
    pub server_url: Option<String>,
}

/// A guarded route: its method and path, and the layer that checks its tokens. The router
/// and the OpenAPI document are both built from the list of these; the document reads each
/// route's scopes from the route's own layer (`RequireScope::required_scopes`), so that what
/// is documented is what is enforced.
struct Guarded {
    method: Method,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    /// Requires all of its scopes (the document lists them as one requirement).
    layer: RequireScope,
}

/// `GET /protected-resource` needs `scope`; `POST /protected-resource` needs `scope` and
/// [`WRITE_SCOPE`]; both checked by `guard`'s rules, both asking `authentication` of the
/// user's sign-in.
fn guarded_routes(
    guard: &Guard,
    scope: &str,
    authentication: &Authentication,
) -> Result<Vec<Guarded>, ConfigError> {
    let mut write = vec![scope];
    if scope != WRITE_SCOPE {
        write.push(WRITE_SCOPE);
    }
    Ok(vec![
        Guarded {
            method: Method::GET,
            path: RESOURCE_PATH,
            operation_id: "readResource",
            summary: "Read the protected resource",
            layer: authentication.apply(RequireScope::all(guard, [scope])?)?,
        },
        Guarded {
            method: Method::POST,
            path: RESOURCE_PATH,
            operation_id: "writeResource",
            summary: "Write to the protected resource",
            layer: authentication.apply(RequireScope::all(guard, write)?)?,
        },
    ])
}

/// The guarded routes (see [`guarded_routes`]), `GET /healthz` (open), and what `extras` asks
/// for.
pub fn app(guard: &Guard, scope: &str, extras: Extras) -> Result<Router, ConfigError> {
    let routes = guarded_routes(guard, scope, &extras.authentication)?;
    let mut app = Router::new().route("/healthz", get(|| async { "ok" }));
    if let Some(docs) = &extras.openapi {
        let document = openapi(&routes, docs, &extras.authentication).to_string();
        app = app.route(
            OPENAPI_PATH,
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        );
    }
    for route in routes {
        let filter = MethodFilter::try_from(route.method).expect("a routable method");
        let layers = ServiceBuilder::new()
            .layer(route.layer)
            .option_layer(extras.rate_limit.clone());
        app = app.route(route.path, on(filter, protected_resource).layer(layers));
    }
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

/// The OpenAPI 3.1 document of `routes`: each operation's `security` names the scopes its
/// layer requires, once per issuer's scheme (any issuer's token will do).
fn openapi(routes: &[Guarded], docs: &ApiDocs, authentication: &Authentication) -> Value {
    let schemes: Vec<String> = (1..=docs.issuers.len())
        .map(|n| format!("issuer-{n}"))
        .collect();
    let security_schemes: Map<String, Value> = schemes
        .iter()
        .zip(&docs.issuers)
        .map(|(name, issuer)| {
            let scheme = json!({
                "type": "openIdConnect",
                "openIdConnectUrl": format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                ),
                "description": format!(
                    "Access tokens of {issuer}, as `Authorization: Bearer`, or DPoP-bound \
                     (`Authorization: DPoP` and a `DPoP` proof, RFC 9449)."
                ),
            });
            (name.clone(), scheme)
        })
        .collect();
    let mut paths = Map::new();
    for route in routes {
        let scopes: Vec<&str> = route.layer.required_scopes().iter().collect();
        let granting = scopes
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" and ");
        let operation = json!({
            "operationId": route.operation_id,
            "summary": route.summary,
            "description": format!(
                "Needs an access token granting {granting}.{}",
                authentication.describe().unwrap_or_default()
            ),
            "security": schemes
                .iter()
                .map(|name| json!({ name.as_str(): scopes }))
                .collect::<Vec<_>>(),
            "responses": {
                "200": { "description": "Granted: who the caller is, what it may do" },
                "401": { "description": "No token, or an invalid one (see `WWW-Authenticate`)" },
                "403": { "description": "The token lacks a scope (`insufficient_scope`)" },
            },
        });
        let item = paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item");
        item.insert(route.method.as_str().to_ascii_lowercase(), operation);
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bearer-guard example API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The protected resource of bearer-guard's examples. Every guarded \
                            operation lists the scopes its token must grant.",
        },
        "paths": paths,
        "components": { "securitySchemes": security_schemes },
    });
    if let Some(url) = &docs.server_url {
        document["servers"] = json!([{ "url": url }]);
    }
    document
}

async fn protected_resource(
    method: Method,
    claims: Claims<AccessClaims>,
    token: axum::Extension<VerifiedToken>,
) -> Json<Value> {
    let message = if method == Method::GET {
        "Access granted!"
    } else {
        "Written!"
    };
    let mut body = json!({
        "message": message,
        "client": token.client_id(),
        "subject": token.subject(),
        "scope": claims.scope,
        "bound": token.confirmation().is_some(),
    });
    // A delegated token (RFC 8693 token exchange): who acts for the subject, most recent
    // first.
    if let Some(actor) = token.actor() {
        body["actors"] = actor
            .chain()
            .map(|a| json!({ "client_id": a.client_id(), "subject": a.subject() }))
            .collect();
    }
    Json(body)
}
