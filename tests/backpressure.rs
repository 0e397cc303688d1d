//! `RequireScopeService` is transparent to backpressure: it forwards the inner service's
//! readiness (and its wake-ups and errors), answers rejections without touching the inner
//! service, and hands accepted requests on with their claims.

use bearer_guard::testkit as mint;

use std::task::Poll;

use bearer_guard::{AccessClaims, AuthError, ErrorKind, RequireScope, Validator, VerifiedToken};
use http::{Request, Response, StatusCode};
use mint::token;
use serde_json::json;
use tower_test::mock;

type Req = Request<()>;
type Res = Response<&'static str>;

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

fn request(auth: Option<String>) -> Req {
    let mut req = Request::builder().uri("/");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(()).expect("request")
}

fn good() -> Option<String> {
    Some(format!(
        "Bearer {}",
        token("ec-1", json!({ "scope": "read" }))
    ))
}

#[tokio::test]
async fn poll_ready_forwards_the_inner_readiness_and_its_wakeup() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(
        RequireScope::all(&validator(), ["read"]).expect("scopes"),
    );

    handle.allow(0);
    assert!(svc.poll_ready().is_pending(), "inner not ready");
    assert!(!svc.is_woken());

    handle.allow(1);
    assert!(
        svc.is_woken(),
        "the inner service's wake-up reaches the caller"
    );
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));

    // The one permitted call goes through; then the inner service is out of capacity again.
    let fut = svc.call(request(good()));
    let (req, send) = handle.next_request().await.expect("forwarded");
    assert!(
        req.extensions()
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<AccessClaims>)
            .is_some()
    );
    send.send_response(Response::new("inner"));
    assert_eq!(fut.await.expect("ok").into_body(), "inner");
    assert!(svc.poll_ready().is_pending(), "capacity used up");
}

#[tokio::test]
async fn poll_ready_forwards_inner_errors() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(
        RequireScope::all(&validator(), ["read"]).expect("scopes"),
    );
    handle.send_error("inner failed");
    match svc.poll_ready() {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "inner failed"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

#[tokio::test]
async fn rejected_requests_never_reach_the_inner_service() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(
        RequireScope::all(&validator(), ["admin"]).expect("scopes"),
    );
    handle.allow(10);
    let expired = Some(format!(
        "Bearer {}",
        token("ec-1", json!({ "exp": mint::now() - 3600 }))
    ));
    for (auth, status, kind) in [
        (None, StatusCode::UNAUTHORIZED, ErrorKind::MissingToken),
        (
            Some("Bearer a b".to_owned()),
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidRequest,
        ),
        (expired, StatusCode::UNAUTHORIZED, ErrorKind::Expired),
        (good(), StatusCode::FORBIDDEN, ErrorKind::InsufficientScope),
    ] {
        assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
        let res = svc
            .call(request(auth))
            .await
            .expect("answered by the layer");
        assert_eq!(res.status(), status);
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(kind)
        );
        assert_eq!(*res.body(), "", "default body");
        assert!(
            handle.poll_request().is_pending(),
            "{kind:?} reached the inner service"
        );
    }
}

#[tokio::test]
async fn accepted_request_reaches_the_inner_service_with_claims() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(
        RequireScope::all(&validator(), ["read"]).expect("scopes"),
    );
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let t = token("ed-1", json!({ "scope": "read", "client_id": "client-z" }));
    let fut = svc.call(request(Some(format!("Bearer {t}"))));

    let (req, send) = handle.next_request().await.expect("forwarded");
    let claims = req
        .extensions()
        .get::<VerifiedToken>()
        .and_then(VerifiedToken::claims::<AccessClaims>)
        .expect("claims in the extensions");
    assert_eq!(claims.client_id(), Some("client-z"));
    assert!(claims.has_scope("read"));
    assert!(req.headers()["authorization"].is_sensitive());
    send.send_response(Response::new("from inner"));

    let res = fut.await.expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<AuthError>().is_none());
    assert_eq!(res.into_body(), "from inner");
}

#[tokio::test]
async fn optional_layer_forwards_anonymous_requests_without_claims() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, Res, _>(RequireScope::authenticated(&validator()).optional());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
    let fut = svc.call(request(None));
    let (req, send) = handle.next_request().await.expect("forwarded");
    assert!(
        req.extensions()
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<AccessClaims>)
            .is_none()
    );
    send.send_response(Response::new("anonymous"));
    assert_eq!(fut.await.expect("ok").into_body(), "anonymous");
}
