//! The layer over real tokens: `RequireScope` admits them (with the test keys), then
//! `OperationScopes` decides on the body; a handler behind records the bytes it gets.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::Full;
use serde_json::json;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt, service_fn};

use super::{Body, OperationScopes, OperationScopesBuilder};
use crate::metadata::ProtectedResource;
use crate::response::Refusal;
use crate::testkit::{self as mint, token};
use crate::{AuthError, ConfigError, ErrorKind, RequireScope};

mod body;

const METADATA: &str = "https://api.test/.well-known/oauth-protected-resource";

/// `tools/list` needs `mcp:list`, the tool `admin_stats` needs `mcp:admin`.
fn operations() -> OperationScopesBuilder {
    OperationScopes::builder()
        .method("tools/list", ["mcp:list"])
        .tool("admin_stats", ["mcp:admin"])
        .resource_metadata(METADATA)
}

/// The bodies the handler got, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Bytes>>>);

impl Seen {
    fn bodies(&self) -> Vec<Bytes> {
        self.0.lock().expect("lock").clone()
    }

    /// A handler that records its body and answers 200 `ok`.
    fn handler(
        &self,
    ) -> impl Service<
        Request<Body>,
        Response = Response<String>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        let seen = self.clone();
        service_fn(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                seen.0
                    .lock()
                    .expect("lock")
                    .push(req.into_body().into_bytes());
                Ok::<_, Infallible>(Response::new("ok".to_owned()))
            }
        })
    }
}

fn call(tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

fn bearer(scope: &str) -> String {
    format!("Bearer {}", token("ed-1", json!({ "scope": scope })))
}

fn post<B>(auth: Option<&str>, body: B) -> Request<B> {
    let mut req = Request::post("/mcp");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(body).expect("request")
}

/// `body` sent with a token of `scope` through `RequireScope` (any token) and the layer.
async fn send(
    layer: OperationScopes,
    scope: &str,
    body: impl Into<Bytes>,
) -> (Response<String>, Vec<Bytes>) {
    let seen = Seen::default();
    let svc = ServiceBuilder::new()
        .layer(RequireScope::authenticated(&mint::validator()))
        .layer(layer)
        .service(seen.handler());
    let req = post(Some(&bearer(scope)), Full::new(body.into()));
    let res = svc.oneshot(req).await.expect("infallible");
    (res, seen.bodies())
}

fn kind(res: &Response<String>) -> Option<ErrorKind> {
    res.extensions().get::<AuthError>().map(AuthError::kind)
}

fn challenge(res: &Response<String>) -> &str {
    res.headers()
        .get(WWW_AUTHENTICATE)
        .map_or("", |v| v.to_str().expect("ascii"))
}

fn insufficient(scope: &str) -> String {
    format!(r#"Bearer resource_metadata="{METADATA}", error="insufficient_scope", scope="{scope}""#)
}

fn layer() -> OperationScopes {
    operations().build().expect("layer")
}

#[tokio::test]
async fn a_tool_without_its_scope_is_refused_before_the_server_with_the_operation_challenge() {
    let (res, seen) = send(layer(), "mcp:tools", call("admin_stats")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&res), insufficient("mcp:admin"));
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).iter().count(), 1);
    assert_eq!(kind(&res), Some(ErrorKind::InsufficientScope));
    assert!(res.body().is_empty());
    assert!(seen.is_empty(), "the server never saw the call");

    // Another tool, and the same tool with its scope, reach the server.
    let (res, seen) = send(layer(), "mcp:tools", call("echo")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen.len(), 1);
    let (res, _) = send(layer(), "mcp:tools mcp:admin", call("admin_stats")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(kind(&res), None);
}

#[tokio::test]
async fn the_server_gets_the_very_bytes_the_client_sent() {
    let body = "  {\"id\":7,\"method\":\"tools/call\",\"jsonrpc\":\"2.0\",\n\t\"params\":{\"name\":\"admin\\u005fstats\",\"arguments\":{\"text\":\"h\u{e9}llo \\\"\\n\",\"n\":1.0e+2}}}  \n";
    let (res, seen) = send(layer(), "mcp:admin", body).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen, [Bytes::from(body)]);
    // The escaped name is the tool's: without the scope, refused.
    let (res, seen) = send(layer(), "mcp:tools", body).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_method_needs_its_scopes_and_a_call_both_its_methods_and_its_tools() {
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let (res, _) = send(layer(), "mcp:tools", list).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&res), insufficient("mcp:list"));
    let (res, _) = send(layer(), "mcp:list", list).await;
    assert_eq!(res.status(), StatusCode::OK);

    // tools/call itself needs mcp:call, admin_stats mcp:admin: the challenge names what the
    // operation needs, both, whatever the token already has.
    let layer = || {
        operations()
            .method("tools/call", ["mcp:call"])
            .build()
            .expect("layer")
    };
    for granted in ["mcp:call", "mcp:admin", "mcp:tools"] {
        let (res, seen) = send(layer(), granted, call("admin_stats")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{granted}");
        assert_eq!(challenge(&res), insufficient("mcp:call mcp:admin"));
        assert!(seen.is_empty());
    }
    let (res, _) = send(layer(), "mcp:call mcp:admin", call("admin_stats")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = send(layer(), "mcp:admin", call("echo")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&res), insufficient("mcp:call"));
}

#[tokio::test]
async fn a_batch_passes_only_if_every_call_does_and_names_what_the_refused_ones_need() {
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "admin_stats"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "admin_stats"}},
    ])
    .to_string();
    let (res, seen) = send(layer(), "mcp:tools", batch.clone()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&res), insufficient("mcp:admin mcp:list"));
    assert!(seen.is_empty());
    let (res, _) = send(layer(), "mcp:list", batch.clone()).await;
    assert_eq!(challenge(&res), insufficient("mcp:admin"));
    let (res, seen) = send(layer(), "mcp:list mcp:admin", batch.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen, [Bytes::from(batch)]);
}

#[tokio::test]
async fn notifications_and_responses_are_checked_by_their_method_alone() {
    let layer = || {
        operations()
            .method("notifications/cancelled", ["mcp:cancel"])
            .build()
            .expect("layer")
    };
    let cancelled =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
    let (res, seen) = send(layer(), "mcp:tools", cancelled).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(challenge(&res), insufficient("mcp:cancel"));
    assert!(seen.is_empty());
    for passes in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        // A response the client sends back to the server (no method): no rule applies.
        r#"{"jsonrpc":"2.0","id":"s-1","result":{"name":"admin_stats"}}"#,
        r#"{"jsonrpc":"2.0","id":"s-2","error":{"code":-32601,"message":"tools/list"}}"#,
    ] {
        let (res, seen) = send(layer(), "mcp:tools", passes).await;
        assert_eq!(res.status(), StatusCode::OK, "{passes}");
        assert_eq!(seen, [Bytes::from(passes)]);
    }
}

#[tokio::test]
async fn what_is_not_json_reaches_the_server_unchanged() {
    for body in [
        &b""[..],
        b"{",
        b"{\"method\":\"tools/call\",\"params\":{\"name\":\"admin_stats\"}",
        b"{\"method\":\"tools/call\",\"params\":{\"name\":\"admin_stats\"}} {}",
        b"\xff\xfe{\"method\":\"tools/call\"}",
        b"not json at all",
    ] {
        let (res, seen) = send(layer(), "mcp:tools", Bytes::from_static(body)).await;
        assert_eq!(res.status(), StatusCode::OK, "{body:?}");
        assert_eq!(seen, [Bytes::from_static(body)], "{body:?}");
    }
}

#[tokio::test]
async fn every_name_a_server_could_take_is_checked() {
    for body in [
        // A repeated name or method: whichever one the server keeps.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_stats","name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_stats"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"admin_stats"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"admin_stats"}}"#,
        // Escapes, in the member names too.
        r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools\/call","p\u0061rams":{"n\u0061me":"admin\u005fstats"}}"#,
        // Positional params.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["admin_stats",{}]}"#,
        // A number out of range beside it.
        r#"{"jsonrpc":"2.0","id":1e999,"method":"tools/call","params":{"name":"admin_stats"}}"#,
        // In a batch, beside elements that are not messages.
        r#"[1e999, "x", {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_stats"}}]"#,
    ] {
        let (res, seen) = send(layer(), "mcp:tools", body).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{body}");
        assert_eq!(challenge(&res), insufficient("mcp:admin"), "{body}");
        assert!(seen.is_empty(), "{body}");
    }
    // A name that cannot be decoded: refused as a bad request, never passed on.
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_stats\ud800"}}"#;
    let (res, seen) = send(layer(), "mcp:tools mcp:admin", body).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn without_a_verified_token_an_operation_with_scopes_is_401_naming_them() {
    let seen = Seen::default();
    let svc = layer().layer(seen.handler());
    let res = svc
        .clone()
        .oneshot(post(None, Full::new(Bytes::from(call("admin_stats")))))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&res),
        format!(r#"Bearer resource_metadata="{METADATA}", scope="mcp:admin""#)
    );
    assert_eq!(kind(&res), Some(ErrorKind::MissingToken));
    assert!(seen.bodies().is_empty());
    // Operations without a rule pass (an optional route's anonymous calls).
    let res = svc
        .oneshot(post(None, Full::new(Bytes::from(call("echo")))))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn refusals_go_through_the_rejection_and_are_logged_and_counted_with_their_reason() {
    #[cfg(feature = "metrics")]
    let (recorder, _guard);
    #[cfg(feature = "metrics")]
    {
        recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        _guard = metrics::set_default_local_recorder(&recorder);
    }
    let logs = crate::testkit::logs::capture();

    let layer = operations()
        .realm("mcp")
        .rejection(|refusal: &Refusal| -> Response<String> {
            let mut res = refusal.to_response::<String>();
            let client = refusal.token().and_then(|t| t.client_id()).unwrap_or("-");
            *res.body_mut() = format!("{} for {client}", refusal.kind().as_str());
            res
        })
        .build()
        .expect("layer");
    let seen = Seen::default();
    let svc = ServiceBuilder::new()
        .layer(RequireScope::authenticated(&mint::validator()))
        .layer(layer)
        .service(seen.handler());
    let req = post(
        Some(&bearer("mcp:tools")),
        Full::new(Bytes::from(call("admin_stats"))),
    );
    let res = svc.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), "insufficient_scope for client-a");
    assert_eq!(
        challenge(&res),
        format!(
            r#"Bearer realm="mcp", resource_metadata="{METADATA}", error="insufficient_scope", scope="mcp:admin""#
        )
    );
    assert_eq!(kind(&res), Some(ErrorKind::InsufficientScope));

    let logged = logs.text();
    assert!(logged.contains("reason=\"insufficient_scope\""), "{logged}");
    assert!(logged.contains("client_id=\"client-a\""), "{logged}");
    #[cfg(feature = "metrics")]
    {
        let text = recorder.handle().render();
        assert!(
            text.contains(
                r#"bearer_guard_requests_total{outcome="refused",reason="insufficient_scope"} 1"#
            ),
            "{text}"
        );
    }
}

#[test]
fn mistakes_are_refused_when_the_layer_is_built() {
    let built = |b: OperationScopesBuilder| b.build().map(|_| ());
    assert_eq!(
        built(OperationScopes::builder().tool("t", Vec::<String>::new())),
        Err(ConfigError::EmptyScopes)
    );
    assert_eq!(
        built(
            OperationScopes::builder()
                .method("m", ["two words"])
                .tool("t", ["ok"])
        ),
        Err(ConfigError::InvalidScope("two words".into()))
    );
    assert_eq!(
        built(OperationScopes::builder().tool("t", ["offline_access"])),
        Err(ConfigError::OfflineAccessRequired)
    );
    assert_eq!(
        built(OperationScopes::builder().realm("a\"b")),
        Err(ConfigError::InvalidHeaderValue("realm"))
    );
    assert_eq!(
        built(OperationScopes::builder().resource_metadata("https://x/\r\n")),
        Err(ConfigError::InvalidHeaderValue("resource_metadata"))
    );
}

#[test]
fn the_protected_resource_lists_the_operations_scopes() {
    let resource = ProtectedResource::builder("https://api.test/mcp")
        .build()
        .expect("resource");
    let _layer = operations()
        .method("tools/call", ["mcp:call"])
        .protected_resource(&resource)
        .build()
        .expect("layer");
    assert!(
        resource
            .document()
            .contains(r#""scopes_supported":["mcp:admin","mcp:call","mcp:list"]"#),
        "{}",
        resource.document()
    );
    let debug = format!("{_layer:?}");
    assert!(
        debug.contains("admin_stats") && debug.contains("max_body"),
        "{debug}"
    );
}

#[tokio::test]
async fn poll_ready_is_forwarded_and_the_ready_service_gets_the_call() {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<String>>();
    let mut svc = tower_test::mock::Spawn::new(layer().layer(mock));
    handle.allow(0);
    assert!(
        svc.poll_ready::<Request<Full<Bytes>>>().is_pending(),
        "inner not ready"
    );
    handle.allow(1);
    assert!(svc.poll_ready::<Request<Full<Bytes>>>().is_ready());
    let body = call("echo");
    let future = svc.call(post(None, Full::new(Bytes::from(body.clone()))));
    let (served, answered) = tokio::join!(future, async {
        let (req, send) = handle.next_request().await.expect("forwarded");
        send.send_response(Response::new("served".to_owned()));
        req.into_body().into_bytes()
    });
    assert_eq!(served.expect("response").body(), "served");
    assert_eq!(answered, body);
}
