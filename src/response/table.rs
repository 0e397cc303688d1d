//! The table: for each [`ErrorKind`], its HTTP status, RFC 6750 `error` code, gRPC code,
//! log and metrics `reason`, and description. Adding a kind is adding a row.

use http::StatusCode;

use super::GrpcCode;
use crate::error::ErrorKind;

/// One row of the table: everything a kind of refusal is answered and logged with.
struct Row {
    status: StatusCode,
    /// RFC 6750 §3.1 `error` code, if any.
    error: Option<&'static str>,
    grpc: GrpcCode,
    /// The log and metrics `reason`.
    reason: &'static str,
    /// The `Display` text and the `grpc-message`.
    description: &'static str,
}

const fn row(
    status: StatusCode,
    error: Option<&'static str>,
    grpc: GrpcCode,
    reason: &'static str,
    description: &'static str,
) -> Row {
    Row {
        status,
        error,
        grpc,
        reason,
        description,
    }
}

const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const UNAUTHENTICATED: GrpcCode = GrpcCode::Unauthenticated;

/// A 401 `invalid_token` row.
const fn invalid(reason: &'static str, description: &'static str) -> Row {
    row(
        UNAUTHORIZED,
        Some("invalid_token"),
        UNAUTHENTICATED,
        reason,
        description,
    )
}

impl ErrorKind {
    /// The table. Adding a kind is adding a row.
    #[rustfmt::skip]
    const fn row(self) -> Row {
        use ErrorKind as K;
        use GrpcCode::{PermissionDenied, ResourceExhausted, Unavailable};
        const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
        const DOWN: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
        match self {
            K::MissingToken => row(UNAUTHORIZED, None, UNAUTHENTICATED, "missing_token", "no bearer token"),
            K::InvalidRequest => row(StatusCode::BAD_REQUEST, Some("invalid_request"), UNAUTHENTICATED, "invalid_request", "malformed Authorization header"),
            K::TokenTooLarge => invalid("token_too_large", "token exceeds the size limit"),
            K::Malformed => invalid("malformed", "token is not a well-formed compact JWS"),
            K::DuplicateMember => invalid("duplicate_member", "token repeats a JSON member name"),
            K::UnsupportedAlgorithm => invalid("unsupported_algorithm", "token algorithm is not accepted"),
            K::AlgorithmMismatch => invalid("algorithm_mismatch", "token algorithm differs from the key's algorithm"),
            K::UnknownKey => invalid("unknown_key", "no key matches the token"),
            K::UnsupportedCritical => invalid("unsupported_critical", "token has critical header parameters"),
            K::InvalidSignature => invalid("invalid_signature", "token signature is invalid"),
            K::InvalidType => invalid("invalid_type", "token type is not at+jwt"),
            K::MissingClaim => invalid("missing_claim", "token lacks a required claim"),
            K::InvalidClaimType => invalid("invalid_claim_type", "token claim has the wrong type"),
            K::Expired => invalid("expired", "token has expired"),
            K::NotYetValid => invalid("not_yet_valid", "token is not valid yet"),
            K::IssuedInFuture => invalid("issued_in_future", "token is issued in the future"),
            K::LifetimeTooLong => invalid("lifetime_too_long", "token lifetime exceeds the maximum"),
            K::InvalidIssuer => invalid("invalid_issuer", "token issuer is not accepted"),
            K::InvalidAudience => invalid("invalid_audience", "token audience is not accepted"),
            K::InvalidClaims => invalid("invalid_claims", "token claims do not match the expected shape"),
            K::SenderConstrained => invalid("sender_constrained", "token is bound to a key and needs proof of possession"),
            K::BindingMismatch => invalid("binding_mismatch", "token binding does not hold"),
            K::DpopRequired => invalid("dpop_required", "this resource requires DPoP"),
            K::InvalidDpopProof => row(UNAUTHORIZED, Some("invalid_dpop_proof"), UNAUTHENTICATED, "invalid_dpop_proof", "DPoP proof is invalid"),
            K::UseDpopNonce => row(UNAUTHORIZED, Some("use_dpop_nonce"), UNAUTHENTICATED, "use_dpop_nonce", "DPoP proof needs a server nonce"),
            K::Revoked => invalid("revoked", "token has been revoked"),
            K::InactiveToken => invalid("inactive", "token is not active"),
            K::InsufficientScope => row(FORBIDDEN, Some("insufficient_scope"), PermissionDenied, "insufficient_scope", "token lacks the required scope"),
            K::Forbidden => row(FORBIDDEN, Some("insufficient_scope"), PermissionDenied, "forbidden", "token is not allowed here"),
            K::InsufficientUserAuthentication => row(UNAUTHORIZED, Some("insufficient_user_authentication"), UNAUTHENTICATED, "insufficient_user_authentication", "user authentication is insufficient"),
            K::KeysUnavailable => row(DOWN, None, Unavailable, "keys_unavailable", "verification keys are unavailable"),
            K::RevocationUnavailable => row(DOWN, None, Unavailable, "revocation_unavailable", "revocation status is unavailable"),
            K::ProofReplayUnavailable => row(DOWN, None, Unavailable, "proof_replay_unavailable", "DPoP replay store is unavailable"),
            K::IntrospectionUnavailable => row(DOWN, None, Unavailable, "introspection_unavailable", "token introspection is unavailable"),
            K::RateLimited => row(StatusCode::TOO_MANY_REQUESTS, None, ResourceExhausted, "rate_limited", "rate limit exceeded"),
            K::QuotaUnavailable => row(DOWN, None, Unavailable, "quota_unavailable", "quota store is unavailable"),
        }
    }

    /// A stable, short, lower-case name for logs and metrics (`"expired"`, `"unknown_key"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.row().reason
    }

    /// The HTTP status this failure is answered with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        self.row().status
    }

    /// The RFC 6750 §3.1 `error` code, if the failure has one.
    #[must_use]
    pub const fn oauth_error(self) -> Option<&'static str> {
        self.row().error
    }

    /// The gRPC status code this failure is answered with on a gRPC request.
    #[must_use]
    pub const fn grpc_code(self) -> GrpcCode {
        self.row().grpc
    }

    pub(crate) const fn description(self) -> &'static str {
        self.row().description
    }

    /// Whether the refusal is the server's fault (a dependency down): answered 503 with
    /// `Retry-After`, logged as a warning.
    pub(crate) const fn is_unavailable(self) -> bool {
        self.row().status.as_u16() == 503
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_consistent_row() {
        use ErrorKind as K;
        let all = [
            K::MissingToken,
            K::InvalidRequest,
            K::TokenTooLarge,
            K::Malformed,
            K::DuplicateMember,
            K::UnsupportedAlgorithm,
            K::AlgorithmMismatch,
            K::UnknownKey,
            K::UnsupportedCritical,
            K::InvalidSignature,
            K::InvalidType,
            K::MissingClaim,
            K::InvalidClaimType,
            K::Expired,
            K::NotYetValid,
            K::IssuedInFuture,
            K::LifetimeTooLong,
            K::InvalidIssuer,
            K::InvalidAudience,
            K::InvalidClaims,
            K::SenderConstrained,
            K::BindingMismatch,
            K::DpopRequired,
            K::InvalidDpopProof,
            K::UseDpopNonce,
            K::InsufficientScope,
            K::Forbidden,
            K::InsufficientUserAuthentication,
            K::Revoked,
            K::InactiveToken,
            K::KeysUnavailable,
            K::RevocationUnavailable,
            K::ProofReplayUnavailable,
            K::IntrospectionUnavailable,
            K::RateLimited,
            K::QuotaUnavailable,
        ];
        let mut reasons = std::collections::HashSet::new();
        for kind in all {
            assert!(reasons.insert(kind.as_str()), "{kind:?}: reason repeated");
            let status = kind.status();
            match kind.oauth_error() {
                Some("invalid_token") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
                    assert_eq!(kind.grpc_code(), GrpcCode::Unauthenticated, "{kind:?}");
                }
                Some("insufficient_scope") => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{kind:?}");
                    assert_eq!(kind.grpc_code(), GrpcCode::PermissionDenied, "{kind:?}");
                }
                Some("invalid_dpop_proof" | "use_dpop_nonce") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
                }
                // RFC 9470 §3: a 401, the client's cue to authenticate its user again.
                Some("insufficient_user_authentication") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
                    assert_eq!(kind.grpc_code(), GrpcCode::Unauthenticated, "{kind:?}");
                }
                Some(other) => assert_eq!(other, "invalid_request"),
                None => assert!(
                    matches!(status.as_u16(), 401 | 429 | 503),
                    "{kind:?}: {status}"
                ),
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(kind.grpc_code(), GrpcCode::Unavailable, "{kind:?}");
            }
        }
    }
}
