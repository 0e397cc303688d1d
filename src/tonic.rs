//! tonic helpers (feature `tonic`).
//!
//! The layer itself needs no feature to protect a tonic server: it answers gRPC requests
//! with `grpc-status` on its own. This module adds reading claims inside a gRPC method and
//! turning an [`AuthError`] into a [`tonic::Status`] for code that calls
//! [`Validator::validate`](crate::Validator::validate) itself.

use crate::claims::Claims;
use crate::error::AuthError;

/// Reads the [`Claims`] the layer put into a `tonic::Request`.
///
/// ```
/// use bearer_guard::{AccessClaims, RequestClaimsExt};
/// fn client_of(req: &tonic::Request<()>) -> Result<String, tonic::Status> {
///     let claims = req.claims::<AccessClaims>()?;
///     Ok(claims.client_id().unwrap_or_default().to_owned())
/// }
/// assert_eq!(client_of(&tonic::Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
/// ```
pub trait RequestClaimsExt {
    /// The claims, or `UNAUTHENTICATED` when there are none (the method is not behind the
    /// layer, or the layer is optional and the call carried no token).
    ///
    /// # Errors
    /// `Status::unauthenticated` when the request holds no claims of type `T`.
    fn claims<T: Send + Sync + 'static>(&self) -> Result<Claims<T>, tonic::Status>;
}

impl<M> RequestClaimsExt for tonic::Request<M> {
    fn claims<T: Send + Sync + 'static>(&self) -> Result<Claims<T>, tonic::Status> {
        self.extensions()
            .get::<Claims<T>>()
            .cloned()
            .ok_or_else(|| tonic::Status::unauthenticated("no bearer token"))
    }
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        let code = match err.kind().grpc_code() {
            7 => tonic::Code::PermissionDenied,
            14 => tonic::Code::Unavailable,
            _ => tonic::Code::Unauthenticated,
        };
        tonic::Status::new(code, err.to_string())
    }
}
