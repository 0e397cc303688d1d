//! tonic helpers (feature `tonic`).
//!
//! The layer itself needs no feature to protect a tonic server: it answers gRPC requests
//! with `grpc-status` on its own. This module adds reading claims inside a gRPC method and
//! turning an [`AuthError`] into a [`tonic::Status`] for code that calls
//! [`Validator::validate`](crate::Validator::validate) itself.

use crate::claims::Claims;
use crate::error::AuthError;
use crate::verified::VerifiedToken;

/// Reads the [`Claims`] the layer put into a `tonic::Request`.
///
/// ```
/// use bearer_guard::{AccessClaims, tonic::RequestClaimsExt};
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
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<T>)
            .ok_or_else(|| tonic::Status::unauthenticated("no bearer token"))
    }
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        tonic::Status::new(err.kind().grpc_code().into(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tonic::Code;

    use super::RequestClaimsExt;
    use crate::testkit::{self as mint, now, token};
    use crate::{AccessClaims, AuthError, ErrorKind, RequiredScopes, Validator};

    fn validator() -> Validator {
        mint::builder().build().expect("validator")
    }

    fn status_of(err: AuthError) -> tonic::Status {
        tonic::Status::from(err)
    }

    #[test]
    fn insufficient_scope_is_permission_denied() {
        let err = validator()
            .authorize(
                &token("ec-1", json!({"scope": "read"})),
                &RequiredScopes::all(["admin"]).expect("scopes"),
            )
            .expect_err("no admin");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
        let message = err.to_string();
        let status = status_of(err);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), message);
    }

    #[test]
    fn token_failures_are_unauthenticated() {
        let v = validator();
        let expired = v
            .validate(&token("ec-1", json!({"exp": now() - 3600})))
            .expect_err("expired");
        assert_eq!(expired.kind(), ErrorKind::Expired);
        let status = status_of(expired);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "token has expired (`exp`)");

        for (t, kind) in [
            (
                token("ec-1", json!({"aud": "https://other.test"})),
                ErrorKind::InvalidAudience,
            ),
            ("a.b".to_owned(), ErrorKind::Malformed),
            ("a".repeat(9000), ErrorKind::TokenTooLarge),
        ] {
            let err = v.validate(&t).expect_err("invalid");
            assert_eq!(err.kind(), kind);
            assert_eq!(status_of(err).code(), Code::Unauthenticated, "{kind:?}");
        }
    }

    #[test]
    fn keys_unavailable_is_unavailable() {
        let status = status_of(AuthError::from(ErrorKind::KeysUnavailable));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "verification keys are unavailable");
    }

    #[test]
    fn status_codes_match_the_layers_grpc_status() {
        use ErrorKind::*;
        for kind in [
            MissingToken,
            InvalidRequest,
            TokenTooLarge,
            Malformed,
            DuplicateMember,
            UnsupportedAlgorithm,
            AlgorithmMismatch,
            UnknownKey,
            UnsupportedCritical,
            InvalidSignature,
            InvalidType,
            MissingClaim,
            InvalidClaimType,
            Expired,
            NotYetValid,
            IssuedInFuture,
            InvalidIssuer,
            InvalidAudience,
            InvalidClaims,
            InsufficientScope,
            KeysUnavailable,
        ] {
            let status = status_of(AuthError::from(kind));
            assert_eq!(
                status.code() as i32,
                i32::from(kind.grpc_code().as_u16()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn request_claims_ext_reads_the_inserted_claims() {
        let claims = validator()
            .validate(&token("ed-1", json!({"client_id": "svc-7"})))
            .expect("valid");
        let mut req = tonic::Request::new(());
        req.extensions_mut()
            .insert(crate::testkit::record_of(&claims));
        let got = req.claims::<AccessClaims>().expect("present");
        assert!(std::sync::Arc::ptr_eq(&got.0, &claims.0));
        assert_eq!(got.client_id(), Some("svc-7"));
    }

    #[test]
    fn request_claims_ext_without_claims_is_unauthenticated() {
        let status = tonic::Request::new(())
            .claims::<AccessClaims>()
            .expect_err("none");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "no bearer token");

        // Claims of another type do not count.
        let mut req = tonic::Request::new(());
        req.extensions_mut()
            .insert(crate::testkit::record_of(&crate::Claims(
                std::sync::Arc::new(42_u32),
            )));
        assert!(req.claims::<u32>().is_ok());
        assert_eq!(
            req.claims::<AccessClaims>().expect_err("wrong type").code(),
            Code::Unauthenticated
        );
    }
}
