//! RFC 9728 OAuth 2.0 Protected Resource Metadata: how a client that knows only this API's
//! URL finds the authorization server (MCP clients do exactly this).
//!
//! One [`ProtectedResource`] drives both halves: the document served at the well-known URL
//! ([`ProtectedResource::service`]), and the `resource_metadata` parameter of every challenge
//! of the routes built from a [`Guard`](crate::Guard) that
//! [points at it](crate::Guard::protected_resource). The scopes those routes require are
//! collected into the document's `scopes_supported`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW,
    CACHE_CONTROL, CONTENT_TYPE,
};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use serde::Serialize;
use tower_service::Service;

use crate::error::ConfigError;

/// The well-known path segment of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An API's RFC 9728 metadata: the document, its well-known URL, and the scopes its routes
/// require. Cheap to clone (one `Arc`); clones share the collected scopes.
///
/// ```
/// use bearer_guard::metadata::ProtectedResource;
/// let resource = ProtectedResource::builder("https://api.example/mcp")
///     .authorization_server("https://issuer.example")
///     .resource_name("Example MCP server")
///     .build()?;
/// // RFC 9728 §3.1: the well-known segment goes between the host and the path.
/// assert_eq!(
///     resource.metadata_url(),
///     "https://api.example/.well-known/oauth-protected-resource/mcp"
/// );
/// assert_eq!(resource.well_known_path(), "/.well-known/oauth-protected-resource/mcp");
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ProtectedResource {
    inner: Arc<Inner>,
}

struct Inner {
    document: Document,
    metadata_url: String,
    path: String,
    /// Scopes the routes registered, beside the configured ones.
    collected: Mutex<BTreeSet<String>>,
}

/// The document's members (RFC 9728 §2), in the order they are written.
#[derive(Clone, Serialize)]
struct Document {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    scopes_supported: BTreeSet<String>,
    bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
}

impl ProtectedResource {
    /// Starts the metadata of the resource `resource` (its RFC 8707 resource identifier,
    /// usually the audience tokens for it carry).
    pub fn builder(resource: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResourceBuilder {
            document: Document {
                resource: resource.into(),
                authorization_servers: Vec::new(),
                jwks_uri: None,
                scopes_supported: BTreeSet::new(),
                bearer_methods_supported: vec!["header"],
                resource_name: None,
                resource_documentation: None,
                dpop_signing_alg_values_supported: Vec::new(),
                dpop_bound_access_tokens_required: false,
            },
            allow_http: false,
        }
    }

    /// The resource identifier.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.inner.document.resource
    }

    /// The document's URL: the resource's origin, the well-known segment, then the
    /// resource's path (RFC 9728 §3.1). Sent as `resource_metadata` in challenges.
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// The path to serve the document at, on the resource's origin.
    #[must_use]
    pub fn well_known_path(&self) -> &str {
        &self.inner.path
    }

    /// Adds scopes a route requires to `scopes_supported`. The routes of a [`Guard`] that
    /// points at this resource register theirs when they are built.
    ///
    /// [`Guard`]: crate::Guard
    pub fn register_scopes<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) {
        let mut collected = self
            .inner
            .collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collected.extend(scopes.into_iter().map(str::to_owned));
    }

    /// The document as JSON, with the scopes collected so far.
    #[must_use]
    pub fn document(&self) -> String {
        let mut document = self.inner.document.clone();
        document.scopes_supported.extend(
            self.inner
                .collected
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        document
            .scopes_supported
            .remove(crate::scope::OFFLINE_ACCESS);
        // Strings and lists of strings: serialisation cannot fail.
        serde_json::to_string(&document).unwrap_or_default()
    }

    /// A tower [`Service`] answering `GET` and `HEAD` with the document (`application/json`,
    /// cacheable for a minute), anything else with 405. Route it at
    /// [`well_known_path`](Self::well_known_path); with axum:
    /// `router.route_service(resource.well_known_path(), resource.service())`.
    #[must_use]
    pub fn service(&self) -> MetadataService {
        MetadataService {
            resource: self.clone(),
        }
    }
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let document = &self.inner.document;
        f.debug_struct("ProtectedResource")
            .field("resource", &crate::url::Redacted(&document.resource))
            .field(
                "authorization_servers",
                &crate::url::redacted_all(&document.authorization_servers),
            )
            .field(
                "metadata_url",
                &crate::url::Redacted(&self.inner.metadata_url),
            )
            .finish_non_exhaustive()
    }
}

/// Builds a [`ProtectedResource`]; from [`ProtectedResource::builder`].
#[must_use]
#[derive(Clone)]
pub struct ProtectedResourceBuilder {
    document: Document,
    allow_http: bool,
}

impl ProtectedResourceBuilder {
    /// An authorization server (its issuer identifier) whose tokens the resource accepts.
    /// Call again for several.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.document.authorization_servers.push(issuer.into());
        self
    }

    /// Scopes to list in `scopes_supported` beyond those the routes register.
    /// `offline_access` is never listed (it asks for a refresh token; MCP clients would ask
    /// for it at every authorization).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.document
            .scopes_supported
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The resource's own JWKS (`jwks_uri`), for resources that sign responses.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.document.jwks_uri = Some(url.into());
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.document.resource_name = Some(name.into());
        self
    }

    /// A page of documentation for developers (`resource_documentation`).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.document.resource_documentation = Some(url.into());
        self
    }

    /// The DPoP algorithms the resource accepts (`dpop_signing_alg_values_supported`), from
    /// its DPoP verifier; with `required`, `dpop_bound_access_tokens_required: true`.
    pub fn dpop(mut self, dpop: &crate::dpop::Dpop, required: bool) -> Self {
        self.document.dpop_signing_alg_values_supported = dpop
            .algorithms()
            .iter()
            .map(|alg| crate::dpop::algorithm_name(*alg).to_owned())
            .collect();
        self.document.dpop_bound_access_tokens_required = required;
        self
    }

    /// Allows an `http://` resource identifier on a host that is not loopback (never for
    /// production: RFC 9728 requires `https`).
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Builds the metadata.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] for a resource identifier that is not an absolute
    /// `https` URL without query or fragment (`http` only to loopback, or with
    /// [`allow_insecure_http`](Self::allow_insecure_http)), [`ConfigError::InsecureUrl`],
    /// [`ConfigError::CredentialsInUrl`].
    pub fn build(self) -> Result<ProtectedResource, ConfigError> {
        let resource = &self.document.resource;
        let uri = crate::url::checked_uri(resource, self.allow_http)?;
        let invalid = || ConfigError::InvalidUrl(resource.clone());
        if resource.contains('#') || uri.query().is_some() {
            return Err(invalid());
        }
        let (metadata_url, path) = well_known(&uri).ok_or_else(invalid)?;
        Ok(ProtectedResource {
            inner: Arc::new(Inner {
                document: self.document,
                metadata_url,
                path,
                collected: Mutex::new(BTreeSet::new()),
            }),
        })
    }
}

impl fmt::Debug for ProtectedResourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResourceBuilder")
            .field("resource", &crate::url::Redacted(&self.document.resource))
            .finish_non_exhaustive()
    }
}

/// The metadata URL and path of `resource` (RFC 9728 §3.1): the well-known segment between
/// the host and the path; a resource without a path (or `/`) gets the segment alone.
fn well_known(resource: &Uri) -> Option<(String, String)> {
    let scheme = resource.scheme_str()?;
    let authority = resource.authority()?;
    let path = resource.path().trim_end_matches('/');
    let well_known_path = format!("{WELL_KNOWN}{path}");
    Some((
        format!("{scheme}://{authority}{well_known_path}"),
        well_known_path,
    ))
}

/// Serves a [`ProtectedResource`]'s document; from [`ProtectedResource::service`].
#[derive(Clone, Debug)]
pub struct MetadataService {
    resource: ProtectedResource,
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut res = if matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut res = Response::new(self.resource.document());
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            );
            // A public document, fetched without credentials: any origin may read it (a
            // browser-based MCP client discovers the issuer here).
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            res
        } else if req.method() == Method::OPTIONS {
            // The CORS preflight of such a client (it may send headers of its own, such as
            // `MCP-Protocol-Version`).
            let mut res = Response::new(String::new());
            *res.status_mut() = StatusCode::NO_CONTENT;
            let headers = res.headers_mut();
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD"),
            );
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            res
        } else {
            let mut res = Response::new(String::new());
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            res
        };
        if req.method() == Method::HEAD {
            res.body_mut().clear();
        }
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[test]
    fn the_well_known_url_goes_between_host_and_path() {
        for (resource, url) in [
            (
                "https://api.example",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example:8443/tenant/1",
                "https://api.example:8443/.well-known/oauth-protected-resource/tenant/1",
            ),
            (
                "http://127.0.0.1:8001",
                "http://127.0.0.1:8001/.well-known/oauth-protected-resource",
            ),
        ] {
            let r = ProtectedResource::builder(resource)
                .build()
                .expect(resource);
            assert_eq!(r.metadata_url(), url);
            assert!(url.ends_with(r.well_known_path()));
        }
        for bad in [
            "https://api.example/x?y=1",
            "https://api.example/x#frag",
            "http://api.example/",
            "https://u:p@api.example/",
            "/relative",
        ] {
            assert!(ProtectedResource::builder(bad).build().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn serves_the_document_with_the_collected_scopes() {
        let r = ProtectedResource::builder("https://api.example/mcp")
            .authorization_server("https://a.example")
            .authorization_server("https://b.example")
            .scopes_supported(["mcp:tools"])
            .resource_name("MCP")
            .resource_documentation("https://docs.example/mcp")
            .build()
            .expect("metadata");
        r.register_scopes(["mcp:admin", "mcp:tools"]);
        let res = r
            .service()
            .oneshot(Request::get(r.well_known_path()).body(()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let doc: serde_json::Value = serde_json::from_str(res.body()).expect("json");
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://api.example/mcp",
                "authorization_servers": ["https://a.example", "https://b.example"],
                "scopes_supported": ["mcp:admin", "mcp:tools"],
                "bearer_methods_supported": ["header"],
                "resource_name": "MCP",
                "resource_documentation": "https://docs.example/mcp",
            })
        );
        let res = r
            .service()
            .oneshot(Request::post("/").body(()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[ALLOW], "GET, HEAD, OPTIONS");
    }

    #[tokio::test]
    async fn any_origin_may_read_the_document_and_preflights_pass() {
        let r = ProtectedResource::builder("https://api.example/mcp")
            .authorization_server("https://a.example")
            .build()
            .expect("metadata");
        let get = Request::get(r.well_known_path())
            .header("origin", "https://inspector.example")
            .body(())
            .expect("request");
        let res = r.service().oneshot(get).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let preflight = Request::options(r.well_known_path())
            .header("origin", "https://inspector.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "mcp-protocol-version")
            .body(())
            .expect("request");
        let res = r.service().oneshot(preflight).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD");
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "*");
        assert!(res.body().is_empty());
    }

    #[test]
    fn offline_access_is_never_listed_in_scopes_supported() {
        let r = ProtectedResource::builder("https://api.example/mcp")
            .authorization_server("https://a.example")
            .scopes_supported(["mcp:tools", "offline_access"])
            .build()
            .expect("resource");
        r.register_scopes(["offline_access", "mcp:admin"]);
        let document: serde_json::Value = serde_json::from_str(&r.document()).expect("json");
        assert_eq!(
            document["scopes_supported"],
            serde_json::json!(["mcp:admin", "mcp:tools"])
        );
    }
}
