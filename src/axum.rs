//! axum extractors for [`Claims`] (feature `axum`).

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::Claims;
use crate::verified::VerifiedToken;

/// `Claims<T>` extracts the claims [`RequireScope`](crate::RequireScope) put into the
/// request. On a route without the layer it fails with [`ClaimsRejection`] (500): a
/// misconfiguration, never a way in.
///
/// `Option<Claims<T>>` is `None` on requests an [`optional`](crate::RequireScope::optional)
/// layer let through without a token.
impl<T, S> FromRequestParts<S> for Claims<T>
where
    T: Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<T>)
            .ok_or(ClaimsRejection { _priv: () })
    }
}

impl<T, S> OptionalFromRequestParts<S> for Claims<T>
where
    T: Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<T>))
    }
}

/// The [`Claims`] extractor found no claims: the route is not behind a
/// [`RequireScope`](crate::RequireScope) layer for this claims type. Answers 500.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimsRejection {
    _priv: (),
}

impl fmt::Debug for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimsRejection")
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no claims in the request: is the route behind a `RequireScope` layer?")
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        tracing::error!(target: "bearer_guard", "{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use ::axum::Router;
    use ::axum::body::{Body, to_bytes};
    use ::axum::routing::get;
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::IntoResponse;
    use http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt;

    use super::ClaimsRejection;
    use crate::testkit::{self as mint, AUDIENCE, ISSUER, token};
    use crate::{AccessClaims, Claims, RequireScope, Validator};

    fn validator() -> Validator {
        mint::validator()
    }

    fn claims() -> Claims<AccessClaims> {
        validator()
            .validate(&token("ec-1", json!({})))
            .expect("valid")
    }

    fn parts(claims: Option<Claims<AccessClaims>>) -> http::request::Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        if let Some(claims) = claims {
            // What the layer inserts: its one record, holding the claims.
            parts.extensions.insert(mint::record_of(&claims));
        }
        parts
    }

    #[tokio::test]
    async fn extracts_the_claims_the_layer_inserted() {
        let inserted = claims();
        let mut p = parts(Some(inserted.clone()));
        let got = <Claims<AccessClaims> as FromRequestParts<()>>::from_request_parts(&mut p, &())
            .await
            .expect("present");
        assert!(
            std::sync::Arc::ptr_eq(&got.0, &inserted.0),
            "a clone, not a copy"
        );
        let got =
            <Claims<AccessClaims> as OptionalFromRequestParts<()>>::from_request_parts(&mut p, &())
                .await
                .expect("infallible");
        assert_eq!(got.expect("some").client_id(), Some("client-a"));
    }

    #[tokio::test]
    async fn missing_claims_are_a_500_rejection_or_none() {
        let mut p = parts(None);
        let err = <Claims<AccessClaims> as FromRequestParts<()>>::from_request_parts(&mut p, &())
            .await
            .expect_err("missing");
        assert_eq!(err, ClaimsRejection { _priv: () });
        assert_eq!(format!("{err:?}"), "ClaimsRejection");
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get(http::header::WWW_AUTHENTICATE).is_none());
        let body = to_bytes(res.into_body(), 1024).await.expect("body");
        assert_eq!(body, ClaimsRejection { _priv: () }.to_string());
        let got =
            <Claims<AccessClaims> as OptionalFromRequestParts<()>>::from_request_parts(&mut p, &())
                .await
                .expect("infallible");
        assert!(got.is_none());
    }

    #[tokio::test]
    async fn claims_of_another_type_are_missing() {
        #[derive(Debug, serde::Deserialize)]
        struct Mine {
            sub: String,
        }
        let mine = Validator::builder()
            .claims::<Mine>()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(mint::key_set())
            .build()
            .expect("validator")
            .validate(&token("ec-1", json!({})))
            .expect("valid");
        assert_eq!(mine.sub, "client-a");
        let (mut p, ()) = Request::new(()).into_parts();
        p.extensions.insert(mint::record_of(&mine));
        // A `Claims<T>` inserted by hand is not what the extractor reads.
        let (mut by_hand, ()) = Request::new(()).into_parts();
        by_hand.extensions.insert(claims());
        assert!(
            <Claims<AccessClaims> as FromRequestParts<()>>::from_request_parts(&mut by_hand, &())
                .await
                .is_err()
        );
        assert!(
            <Claims<AccessClaims> as FromRequestParts<()>>::from_request_parts(&mut p, &())
                .await
                .is_err()
        );
        assert!(
            <Claims<Mine> as FromRequestParts<()>>::from_request_parts(&mut p, &())
                .await
                .is_ok()
        );
    }

    async fn client(claims: Claims<AccessClaims>) -> String {
        claims.client_id().unwrap_or_default().to_owned()
    }

    async fn maybe(claims: Option<Claims<AccessClaims>>) -> String {
        claims.map_or_else(
            || "anonymous".to_owned(),
            |c| c.sub.clone().unwrap_or_default(),
        )
    }

    async fn call(app: &Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().uri(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = res.status();
        let body = to_bytes(res.into_body(), 1024).await.expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn extractors_in_a_router() {
        let v = validator();
        let app = Router::new()
            .route(
                "/required",
                get(client).layer(RequireScope::all(&v, ["read"]).expect("scopes")),
            )
            .route(
                "/optional",
                get(maybe).layer(RequireScope::authenticated(&v).optional()),
            )
            .route("/bare", get(client))
            .route("/bare-optional", get(maybe));
        let t = format!("Bearer {}", token("ed-1", json!({"client_id": "c-9"})));

        assert_eq!(
            call(&app, "/required", Some(&t)).await,
            (StatusCode::OK, "c-9".to_owned())
        );
        assert_eq!(
            call(&app, "/required", None).await,
            (StatusCode::UNAUTHORIZED, String::new())
        );
        assert_eq!(
            call(&app, "/optional", Some(&t)).await,
            (StatusCode::OK, "client-a".to_owned())
        );
        assert_eq!(
            call(&app, "/optional", None).await,
            (StatusCode::OK, "anonymous".to_owned())
        );
        let (status, body) = call(&app, "/bare", Some(&t)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("RequireScope"), "{body}");
        // Without the layer the `Option` extractor sees nothing, whatever the header says.
        assert_eq!(
            call(&app, "/bare-optional", Some(&t)).await,
            (StatusCode::OK, "anonymous".to_owned())
        );
    }
}
