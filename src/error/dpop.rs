//! Why a DPoP proof was refused: one row per kind, with its name and the refusal of the
//! crate's one table ([`ErrorKind`]) it is answered as.

use std::fmt;

use http::StatusCode;

use super::ErrorKind;

/// Why a DPoP proof (or the way a DPoP-bound token was presented) was refused.
///
/// Never holds a proof, a token or a key: safe to log. [`kind`](Self::kind) tells the check
/// that failed; [`oauth_error`](DpopErrorKind::oauth_error),
/// [`status`](DpopErrorKind::status) and [`nonce_due`](DpopErrorKind::nonce_due) tell how to
/// answer it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DpopError {
    kind: DpopErrorKind,
    claim: Option<&'static str>,
}

/// The check a DPoP proof failed.
///
/// New kinds may be added in minor releases; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopErrorKind {
    /// No `DPoP` header.
    MissingProof,
    /// More than one `DPoP` header (RFC 9449 §4.3, check 1).
    MultipleProofs,
    /// The proof is longer than the configured maximum; it was not parsed.
    ProofTooLarge,
    /// Not a compact JWS of `token68` characters, bad base64url, JSON that does not parse,
    /// is not an object, or has a member of the wrong JSON type in the header.
    Malformed,
    /// The header or the claims repeat a member name, at any depth.
    DuplicateMember,
    /// The header's `typ` is not `dpop+jwt`.
    InvalidType,
    /// The header has a `crit` member: no extension is understood.
    UnsupportedCritical,
    /// The header's `alg` is absent, `none`, symmetric, unknown or not in the allowed list.
    UnsupportedAlgorithm,
    /// The header has no `jwk`.
    MissingKey,
    /// The `jwk` holds private key members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`).
    PrivateKey,
    /// The `jwk` is not a usable public key for the header's `alg` (wrong `kty` or curve,
    /// bad coordinates, RSA key too small, `alg` or `use` that disagree).
    InvalidKey,
    /// The signature does not verify with the `jwk`.
    InvalidSignature,
    /// A required claim is absent; [`DpopError::claim_name`] names it.
    MissingClaim,
    /// A claim has the wrong JSON type or an empty value; [`DpopError::claim_name`] names it.
    InvalidClaim,
    /// `htm` is not the request's method.
    MethodMismatch,
    /// `htu` is not the request's URI (after RFC 3986 normalisation, query and fragment
    /// ignored), or it is not an `http(s)` URI.
    UriMismatch,
    /// `iat` is older than the accepted window.
    TooOld,
    /// `iat` is further in the future than the accepted leeway.
    IssuedInFuture,
    /// The proof has an `exp` (not defined by RFC 9449, but a JWT's, RFC 7519 §4.1.4) and it
    /// has passed, beyond the leeway.
    Expired,
    /// The proof has an `nbf` (RFC 7519 §4.1.5) further in the future than the leeway.
    NotYetValid,
    /// Nonces are required and the proof has no `nonce` (`use_dpop_nonce`).
    NonceMissing,
    /// The `nonce` was not issued by this server (or its secret changed) (`use_dpop_nonce`).
    NonceInvalid,
    /// The `nonce` is older than its lifetime (`use_dpop_nonce`).
    NonceExpired,
    /// `ath` does not equal the SHA-256 of the access token.
    AccessTokenHashMismatch,
    /// The proof's key is not the key the token is bound to (its thumbprint differs from the
    /// token's `cnf.jkt`, or from the expected `dpop_jkt`): `invalid_token` (RFC 9449 §7.1).
    KeyMismatch,
    /// The proof's `jti` was already used by this key within the window.
    Replayed,
    /// The replay store could not be asked: 503 with `Retry-After` (fail closed).
    ReplayUnavailable,
    /// A DPoP-bound token (with `cnf.jkt`) was sent with the `Bearer` scheme (RFC 9449 §7.2).
    BoundTokenAsBearer,
    /// A token without `cnf.jkt` was sent with the `DPoP` scheme.
    UnboundTokenAsDpop,
    /// The route requires DPoP and the token came with the `Bearer` scheme.
    DpopRequired,
}

/// One row per kind: the detail's name for logs, its description, and the refusal it is
/// answered as (whose row of [`ErrorKind`]'s table gives the status, the `error` code, the
/// gRPC code and the log reason).
struct Row {
    name: &'static str,
    description: &'static str,
    refusal: ErrorKind,
}

const fn row(name: &'static str, description: &'static str, refusal: ErrorKind) -> Row {
    Row {
        name,
        description,
        refusal,
    }
}

const PROOF: ErrorKind = ErrorKind::InvalidDpopProof;
const NONCE: ErrorKind = ErrorKind::UseDpopNonce;
const BINDING: ErrorKind = ErrorKind::BindingMismatch;

impl DpopErrorKind {
    fn row(self) -> Row {
        use DpopErrorKind as K;
        match self {
            K::MissingProof => row("missing_proof", "no DPoP proof", PROOF),
            K::MultipleProofs => row("multiple_proofs", "more than one DPoP proof", PROOF),
            K::ProofTooLarge => row(
                "proof_too_large",
                "DPoP proof exceeds the size limit",
                PROOF,
            ),
            K::Malformed => row("malformed", "DPoP proof is not a well-formed JWS", PROOF),
            K::DuplicateMember => row("duplicate_member", "DPoP proof repeats a member", PROOF),
            K::InvalidType => row("invalid_type", "DPoP proof type is not dpop+jwt", PROOF),
            K::UnsupportedCritical => row(
                "unsupported_critical",
                "DPoP proof has critical header parameters",
                PROOF,
            ),
            K::UnsupportedAlgorithm => row(
                "unsupported_algorithm",
                "DPoP proof algorithm is not accepted",
                PROOF,
            ),
            K::MissingKey => row("missing_key", "DPoP proof has no jwk", PROOF),
            K::PrivateKey => row("private_key", "DPoP proof jwk holds a private key", PROOF),
            K::InvalidKey => row("invalid_key", "DPoP proof jwk is not usable", PROOF),
            K::InvalidSignature => row(
                "invalid_signature",
                "DPoP proof signature is invalid",
                PROOF,
            ),
            K::MissingClaim => row("missing_claim", "DPoP proof lacks a claim", PROOF),
            K::InvalidClaim => row("invalid_claim", "DPoP proof claim is invalid", PROOF),
            K::MethodMismatch => row(
                "method_mismatch",
                "DPoP proof htm is not the request method",
                PROOF,
            ),
            K::UriMismatch => row(
                "uri_mismatch",
                "DPoP proof htu is not the request URI",
                PROOF,
            ),
            K::TooOld => row("too_old", "DPoP proof is too old", PROOF),
            K::IssuedInFuture => row("issued_in_future", "DPoP proof iat is in the future", PROOF),
            K::Expired => row("expired", "DPoP proof has expired", PROOF),
            K::NotYetValid => row("not_yet_valid", "DPoP proof is not yet valid", PROOF),
            K::NonceMissing => row("nonce_missing", "DPoP proof lacks the nonce", NONCE),
            K::NonceInvalid => row("nonce_invalid", "DPoP proof nonce is invalid", NONCE),
            K::NonceExpired => row("nonce_expired", "DPoP proof nonce has expired", NONCE),
            K::AccessTokenHashMismatch => row(
                "ath_mismatch",
                "DPoP proof ath is not the access token hash",
                PROOF,
            ),
            K::KeyMismatch => row("key_mismatch", "invalid DPoP key binding", BINDING),
            K::Replayed => row("replayed", "DPoP proof was already used", PROOF),
            K::ReplayUnavailable => row(
                "replay_unavailable",
                "DPoP replay store is unavailable",
                ErrorKind::ProofReplayUnavailable,
            ),
            K::BoundTokenAsBearer => row(
                "bound_token_as_bearer",
                "DPoP-bound token sent as a bearer token",
                ErrorKind::SenderConstrained,
            ),
            K::UnboundTokenAsDpop => {
                row("unbound_token_as_dpop", "token is not DPoP-bound", BINDING)
            }
            K::DpopRequired => row(
                "dpop_required",
                "this resource requires DPoP",
                ErrorKind::DpopRequired,
            ),
        }
    }

    /// A stable, short, lower-case name for logs and metrics (`"replayed"`, `"uri_mismatch"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// The refusal this failure is answered as at a protected resource, a row of the crate's
    /// one table: [`InvalidDpopProof`](ErrorKind::InvalidDpopProof) for a proof that fails a
    /// check of RFC 9449 §4.3, [`UseDpopNonce`](ErrorKind::UseDpopNonce) for a missing,
    /// invalid or expired nonce, [`BindingMismatch`](ErrorKind::BindingMismatch) for a key
    /// binding that does not hold, [`SenderConstrained`](ErrorKind::SenderConstrained) and
    /// [`DpopRequired`](ErrorKind::DpopRequired) for a token presented with the wrong scheme,
    /// [`ProofReplayUnavailable`](ErrorKind::ProofReplayUnavailable) when the replay store
    /// could not be asked. Its status, `error` code, gRPC code and log reason are that kind's.
    #[must_use]
    pub fn refusal(self) -> ErrorKind {
        self.row().refusal
    }

    /// The `error` code of the `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1), from
    /// [`refusal`](Self::refusal):
    /// `invalid_dpop_proof` for a proof that fails a check of §4.3, `use_dpop_nonce` for a
    /// missing, invalid or expired nonce (§9), `invalid_token` for a key binding that does not
    /// hold or a token presented with the wrong scheme; `None` when the server could not
    /// decide ([`ReplayUnavailable`](Self::ReplayUnavailable)). An authorization server's
    /// token endpoint sends the same codes in its JSON error body.
    #[must_use]
    pub fn oauth_error(self) -> Option<&'static str> {
        self.refusal().oauth_error()
    }

    /// The status a protected resource answers with ([`refusal`](Self::refusal)'s): 401, or
    /// 503 when the replay store was unavailable. (A token endpoint answers 400 instead of
    /// 401, RFC 6749 §5.2.)
    #[must_use]
    pub fn status(self) -> StatusCode {
        self.refusal().status()
    }

    /// Whether the answer must carry a fresh `DPoP-Nonce` header (the `use_dpop_nonce`
    /// kinds): see [`Dpop::nonce_header`](crate::dpop::Dpop::nonce_header).
    #[must_use]
    pub fn nonce_due(self) -> bool {
        self.refusal() == NONCE
    }

    /// Whether the `Bearer` challenge, rather than the `DPoP` one, carries the error: the
    /// token came with the `Bearer` scheme (RFC 9449 §7.2, "the mechanism used ... could be
    /// established unambiguously").
    #[must_use]
    pub fn bearer_challenge(self) -> bool {
        matches!(
            self,
            DpopErrorKind::BoundTokenAsBearer | DpopErrorKind::DpopRequired
        )
    }
}

impl fmt::Display for DpopErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.row().description)
    }
}

impl DpopError {
    pub(crate) const fn new(kind: DpopErrorKind) -> Self {
        DpopError { kind, claim: None }
    }

    pub(crate) const fn claim(kind: DpopErrorKind, claim: &'static str) -> Self {
        DpopError {
            kind,
            claim: Some(claim),
        }
    }

    /// The check that failed.
    #[must_use]
    pub fn kind(&self) -> DpopErrorKind {
        self.kind
    }

    /// The claim at fault, for [`DpopErrorKind::MissingClaim`] and
    /// [`DpopErrorKind::InvalidClaim`] (`"jti"`, `"ath"` ...).
    #[must_use]
    pub fn claim_name(&self) -> Option<&'static str> {
        self.claim
    }

    /// The HTTP status at a protected resource; see [`DpopErrorKind::status`].
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<DpopErrorKind> for DpopError {
    fn from(kind: DpopErrorKind) -> Self {
        DpopError::new(kind)
    }
}

impl fmt::Debug for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DpopError");
        d.field("kind", &self.kind);
        if let Some(claim) = self.claim {
            d.field("claim", &claim);
        }
        d.finish()
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.claim {
            Some(claim) => write!(f, "{} (`{claim}`)", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for DpopError {}

/// A strict-JSON failure as a proof error: a repeated member, or anything else malformed.
pub(crate) fn json_error(err: serde_json::Error) -> DpopError {
    if crate::json::is_duplicate(&err) {
        DpopErrorKind::DuplicateMember.into()
    } else {
        DpopErrorKind::Malformed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_kinds_to_codes_and_statuses() {
        use DpopErrorKind as K;
        assert_eq!(K::Replayed.oauth_error(), Some("invalid_dpop_proof"));
        assert_eq!(K::NonceExpired.oauth_error(), Some("use_dpop_nonce"));
        assert!(K::NonceMissing.nonce_due() && !K::Replayed.nonce_due());
        assert_eq!(K::KeyMismatch.oauth_error(), Some("invalid_token"));
        assert_eq!(K::ReplayUnavailable.oauth_error(), None);
        assert_eq!(
            K::ReplayUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(K::TooOld.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            K::BoundTokenAsBearer.refusal(),
            ErrorKind::SenderConstrained
        );
        assert_eq!(K::KeyMismatch.refusal(), ErrorKind::BindingMismatch);
        assert_eq!(K::DpopRequired.refusal(), ErrorKind::DpopRequired);
        assert_eq!(
            K::ReplayUnavailable.refusal(),
            ErrorKind::ProofReplayUnavailable
        );
        assert!(K::BoundTokenAsBearer.bearer_challenge());
        assert!(!K::UnboundTokenAsDpop.bearer_challenge());
    }

    #[test]
    fn display_names_the_claim_and_debug_is_plain() {
        let err = DpopError::claim(DpopErrorKind::MissingClaim, "jti");
        assert_eq!(err.to_string(), "DPoP proof lacks a claim (`jti`)");
        assert_eq!(
            format!("{err:?}"),
            r#"DpopError { kind: MissingClaim, claim: "jti" }"#
        );
    }
}
