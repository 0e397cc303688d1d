//! One request through a `RequireScope` around a handler that echoes the client id, and
//! what the unit tests read of the answer: shared by the layer's tests (`crate::service`)
//! and the validator's rules as a client meets them (`crate::validator::tests::rules`).

use std::convert::Infallible;

use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode};
use tower::{ServiceExt, service_fn};

use crate::{AccessClaims, AuthError, ErrorKind, RequireScope, Validator, VerifiedToken};

impl RequireScope {
    /// The layer around a handler that answers with the client id of the request's claims,
    /// `"?"` when the token names none, `"anonymous"` without claims.
    pub(crate) fn layer_fn_wrap(
        self,
    ) -> impl tower::Service<Request<()>, Response = Response<String>, Error = Infallible> {
        tower_layer::Layer::layer(
            &self,
            service_fn(|req: Request<()>| async move {
                let body = match req
                    .extensions()
                    .get::<VerifiedToken>()
                    .and_then(VerifiedToken::claims::<AccessClaims>)
                {
                    Some(c) => c.client_id().unwrap_or("?").to_owned(),
                    None => "anonymous".to_owned(),
                };
                Ok::<_, Infallible>(Response::new(body))
            }),
        )
    }
}

/// Sends a request with `auth` (if any) through `layer` around the echoing handler.
pub(crate) async fn send(layer: RequireScope, auth: Option<&str>) -> Response<String> {
    let svc = layer.layer_fn_wrap();
    let mut req = Request::builder().uri("/");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    svc.oneshot(req.body(()).expect("request"))
        .await
        .expect("infallible")
}

/// `token` sent as `Bearer` to a layer of `validator` requiring no scope is refused as
/// `expected`: 401, `error="invalid_token"`, no body.
pub(crate) async fn assert_invalid_token(validator: &Validator, token: &str, expected: ErrorKind) {
    let res = send(RequireScope::authenticated(validator), Some(&bearer(token))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{expected:?}");
    assert_eq!(challenge(&res), r#"Bearer error="invalid_token""#);
    assert_eq!(kind(&res), Some(expected));
    assert!(res.body().is_empty());
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The kind of the refusal in the answer's extensions, if any.
pub(crate) fn kind(res: &Response<String>) -> Option<ErrorKind> {
    res.extensions().get::<AuthError>().map(AuthError::kind)
}

/// The `WWW-Authenticate` value, or `""`.
pub(crate) fn challenge(res: &Response<String>) -> &str {
    res.headers()
        .get(WWW_AUTHENTICATE)
        .map_or("", |v| v.to_str().expect("ascii"))
}
