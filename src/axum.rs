//! axum extractors for [`Claims`] (feature `axum`).

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::Claims;

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
            .get::<Claims<T>>()
            .cloned()
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
        Ok(parts.extensions.get::<Claims<T>>().cloned())
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
