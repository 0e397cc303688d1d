//! Errors: why a request was refused ([`AuthError`]) and why a configuration was refused
//! ([`ConfigError`]).
//!
//! Neither type ever holds a token, a secret or key material, so both are safe to log. The
//! kinds of a failed proof of possession live here too (`dpop.rs`, `mtls.rs`), next to the
//! one table they are answered by; they are exported from `dpop` and `mtls`.

pub(crate) mod dpop;
pub(crate) mod mtls;

use std::fmt;

use http::StatusCode;

use self::dpop::{DpopError, DpopErrorKind};
use self::mtls::{MtlsError, MtlsErrorKind};

/// A boxed error: what the crate's services return when an inner service or an HTTP client
/// fails, and what a custom [`HttpService`](crate::fetch::HttpService)'s errors convert into.
#[cfg(any(feature = "remote", feature = "client"))]
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request was refused.
///
/// The layers answer every failure with a response, never with an `Err` from the service;
/// the `AuthError` is inserted into that response's extensions so that callers, middleware
/// further out and tests can see the reason:
///
/// ```
/// use bearer_guard::{AuthError, ErrorKind};
/// # let response = http::Response::new(());
/// if let Some(err) = response.extensions().get::<AuthError>() {
///     if err.kind() == ErrorKind::Expired { /* ... */ }
/// }
/// ```
///
/// Where a proof of possession was checked and failed, the error also says how: a DPoP
/// proof ([`dpop_error`](Self::dpop_error)) or a client certificate
/// ([`certificate_error`](Self::certificate_error)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthError {
    kind: ErrorKind,
    claim: Option<&'static str>,
    proof: Option<ProofFailure>,
}

/// The proof of possession that failed, for an [`AuthError`] that checked one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProofFailure {
    Dpop(DpopErrorKind),
    Certificate(MtlsErrorKind),
}

impl ProofFailure {
    fn as_str(self) -> &'static str {
        match self {
            ProofFailure::Dpop(kind) => kind.as_str(),
            ProofFailure::Certificate(kind) => kind.as_str(),
        }
    }
}

/// The reason behind a refusal: what is logged as `reason`, counted in metrics, and looked
/// up in the one table that gives each its HTTP status, RFC 6750 error code and gRPC code
/// (see [`ErrorKind::status`], [`ErrorKind::oauth_error`], [`ErrorKind::grpc_code`]).
///
/// New reasons may be added in minor releases; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No `Authorization: Bearer` credentials (RFC 6750 §3.1: 401 with no error code).
    MissingToken,
    /// The `Authorization` header is malformed: several headers, several tokens, characters
    /// outside `token68`, whitespace other than spaces after the scheme (400
    /// `invalid_request`).
    InvalidRequest,
    /// The token is longer than the configured maximum; it was not parsed.
    TokenTooLarge,
    /// Not a compact JWS: wrong number of parts, bad base64url, JSON that does not parse or
    /// is not an object, or a NumericDate claim that is not a plain number within range
    /// (an exponent, a value past `i64::MAX`); [`AuthError::claim_name`] names such a claim.
    Malformed,
    /// A JSON object in the header or the claims repeats a member name.
    DuplicateMember,
    /// The header's `alg` is `none`, unknown or missing.
    UnsupportedAlgorithm,
    /// The header's `alg` differs from the algorithm pinned to the key it names.
    AlgorithmMismatch,
    /// No key matches the token's `kid` (or, without a `kid`, no single key of its `alg`).
    UnknownKey,
    /// The header has a `crit` member: no extension is understood, so none may be critical
    /// (RFC 7515 §4.1.11).
    UnsupportedCritical,
    /// The signature does not verify.
    InvalidSignature,
    /// The header's `typ` is not `at+jwt` (RFC 9068 §4), or absent while it is required.
    InvalidType,
    /// A required claim is absent; [`AuthError::claim_name`] names it.
    MissingClaim,
    /// A claim has the wrong JSON type (for example a string `exp`); [`AuthError::claim_name`]
    /// names it.
    InvalidClaimType,
    /// The token has expired (`exp`, beyond the leeway).
    Expired,
    /// The token is not valid yet (`nbf`, beyond the leeway).
    NotYetValid,
    /// The token claims to be issued in the future (`iat`, beyond the leeway).
    IssuedInFuture,
    /// The token lives longer than the configured
    /// [`max_token_lifetime`](crate::ValidatorBuilder::max_token_lifetime) (`exp - iat`, or
    /// `exp - now`).
    LifetimeTooLong,
    /// `iss` is not the configured issuer (or none of the configured issuers).
    InvalidIssuer,
    /// `aud` does not contain the configured audience.
    InvalidAudience,
    /// The claims do not deserialize into the application's claims type.
    InvalidClaims,
    /// The token is bound to a key its presenter must prove (a `cnf` claim: DPoP `jkt`,
    /// mTLS `x5t#S256`, or another confirmation method), and the request carries no such
    /// proof: a sender-constrained token presented as a plain bearer token is refused (RFC
    /// 9449 §7.2, RFC 8705 §3).
    SenderConstrained,
    /// The DPoP proof (RFC 9449) fails a check: [`AuthError::dpop_error`] says which (401
    /// `invalid_dpop_proof`).
    InvalidDpopProof,
    /// The DPoP proof lacks a valid server nonce: the answer carries a fresh `DPoP-Nonce`
    /// header to retry with (401 `use_dpop_nonce`, RFC 9449 §9).
    UseDpopNonce,
    /// The token's binding does not hold: the DPoP proof's key is not the token's `cnf.jkt`,
    /// a token that is not DPoP-bound came with the `DPoP` scheme, or the connection's client
    /// certificate is missing or is not the token's `cnf.x5t#S256` (RFC 8705 §3) (401
    /// `invalid_token`).
    BindingMismatch,
    /// The route requires DPoP and the token came as a plain `Bearer` token (401
    /// `invalid_token`).
    DpopRequired,
    /// The token is valid but lacks the scopes the route requires (403 `insufficient_scope`).
    InsufficientScope,
    /// The token is valid and has the scopes, but a claims requirement of the route
    /// ([`RequireScope::require`](crate::RequireScope::require)) refused it (403
    /// `insufficient_scope`).
    Forbidden,
    /// The token is valid and has the scopes, but the user's authentication behind it falls
    /// short of the route's ([`RequireScope::require_acr`](crate::RequireScope::require_acr),
    /// [`RequireScope::max_auth_age`](crate::RequireScope::max_auth_age)): its `acr` is not
    /// one the route accepts, or its `auth_time` is too old, or the claim is absent;
    /// [`AuthError::claim_name`] says which (`"acr"`, `"auth_time"`). Answered 401
    /// `insufficient_user_authentication` with the route's `acr_values` and `max_age` in the
    /// challenge, for the client to send its user to the authorization server again (RFC
    /// 9470 §3).
    InsufficientUserAuthentication,
    /// The token has been revoked (its `jti` is in the revocation store).
    Revoked,
    /// The issuer's introspection endpoint says the token is not active (RFC 7662
    /// `active: false`: unknown, expired, revoked, or not for this resource server) (401
    /// `invalid_token`).
    InactiveToken,
    /// No verification keys are available (for example the issuer's key set could not be
    /// fetched): a server-side problem, answered with 503.
    KeysUnavailable,
    /// The revocation store could not be asked: 503 with `Retry-After` (fail closed). A
    /// synchronous [`Validator::validate`](crate::Validator::validate) that would have to
    /// wait for the store answers this too, and starts asking it in the background.
    RevocationUnavailable,
    /// The DPoP replay store could not be asked: 503 with `Retry-After` (fail closed).
    ProofReplayUnavailable,
    /// The introspection endpoint could not answer (down, slow, refusing this resource
    /// server's credentials, answering something that is not RFC 7662, too many tokens
    /// waiting): 503 with `Retry-After`, never 401. A synchronous
    /// [`Validator::validate`](crate::Validator::validate) that would have to wait answers
    /// this too, and starts the introspection in the background.
    IntrospectionUnavailable,
    /// The client is over its rate limit (429 with `Retry-After`; gRPC
    /// `RESOURCE_EXHAUSTED`).
    RateLimited,
    /// The shared quota store could not be asked and the rate limit fails closed (503).
    QuotaUnavailable,
}

impl AuthError {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        AuthError::with_claim(kind, None)
    }

    pub(crate) const fn claim(kind: ErrorKind, claim: &'static str) -> Self {
        AuthError::with_claim(kind, Some(claim))
    }

    pub(crate) const fn with_claim(kind: ErrorKind, claim: Option<&'static str>) -> Self {
        AuthError {
            kind,
            claim,
            proof: None,
        }
    }

    /// A DPoP proof's refusal, as the refusal of the one table it is answered as.
    pub(crate) fn dpop(err: &DpopError) -> Self {
        AuthError {
            kind: err.kind().refusal(),
            claim: err.claim_name(),
            proof: Some(ProofFailure::Dpop(err.kind())),
        }
    }

    /// A certificate-bound token's refusal (RFC 8705 §3: 401 `invalid_token`).
    pub(crate) fn certificate(err: MtlsError) -> Self {
        AuthError {
            kind: ErrorKind::BindingMismatch,
            claim: None,
            proof: Some(ProofFailure::Certificate(err.kind())),
        }
    }

    /// The DPoP check that failed, when a DPoP proof (or the way a DPoP-bound token was
    /// presented) was refused.
    ///
    /// ```
    /// # use bearer_guard::AuthError;
    /// fn explain(err: &AuthError) -> String {
    ///     match (err.dpop_error(), err.certificate_error()) {
    ///         (Some(dpop), _) => format!("DPoP: {}", dpop.as_str()),
    ///         (_, Some(cert)) => format!("mTLS: {}", cert.as_str()),
    ///         _ => err.kind().as_str().to_owned(),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn dpop_error(&self) -> Option<DpopErrorKind> {
        match self.proof {
            Some(ProofFailure::Dpop(kind)) => Some(kind),
            _ => None,
        }
    }

    /// The client-certificate check that failed, when a certificate-bound token (RFC 8705)
    /// was refused.
    #[must_use]
    pub fn certificate_error(&self) -> Option<MtlsErrorKind> {
        match self.proof {
            Some(ProofFailure::Certificate(kind)) => Some(kind),
            _ => None,
        }
    }

    /// The proof check's short name (`"replayed"`, `"client_certificate_mismatch"` ...),
    /// for logs.
    pub(crate) fn proof_detail(&self) -> Option<&'static str> {
        self.proof.map(ProofFailure::as_str)
    }

    /// The reason.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The claim at fault, for [`ErrorKind::MissingClaim`], [`ErrorKind::InvalidClaimType`]
    /// and the other claim checks (`"exp"`, `"aud"` ...).
    #[must_use]
    pub fn claim_name(&self) -> Option<&'static str> {
        self.claim
    }

    /// The HTTP status this failure is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<ErrorKind> for AuthError {
    fn from(kind: ErrorKind) -> Self {
        AuthError::new(kind)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuthError");
        d.field("kind", &self.kind);
        if let Some(claim) = self.claim {
            d.field("claim", &claim);
        }
        if let Some(proof) = self.proof {
            d.field("proof", &proof);
        }
        d.finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())?;
        if let Some(claim) = self.claim {
            write!(f, " (`{claim}`)")?;
        }
        match self.proof {
            Some(ProofFailure::Dpop(kind)) => write!(f, ": {kind}"),
            Some(ProofFailure::Certificate(kind)) => write!(f, ": {}", kind.as_str()),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AuthError {}

/// Why a [`Validator`](crate::Validator), [`KeySet`](crate::KeySet) or key was refused at
/// configuration time.
///
/// Messages name the offending setting (a `kid`, a length, an algorithm), never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`issuer`](crate::ValidatorBuilder::issuer) was not set.
    MissingIssuer,
    /// [`audience`](crate::ValidatorBuilder::audience) was not set.
    MissingAudience,
    /// No keys were configured.
    MissingKeys,
    /// The key set holds no key this crate can verify with.
    NoUsableKeys,
    /// The leeway exceeds the allowed maximum (seconds).
    LeewayTooLarge {
        /// The requested leeway in seconds.
        requested: u64,
        /// The maximum accepted.
        max: u64,
    },
    /// An HMAC secret shorter than the hash output of its algorithm (RFC 7518 §3.2).
    HmacSecretTooShort {
        /// The secret's length in bytes.
        len: usize,
        /// The minimum for the algorithm.
        min: usize,
    },
    /// An algorithm that cannot be used where it was given (for example an HMAC algorithm
    /// for a PEM public key, or `none`).
    UnsupportedAlgorithm(String),
    /// An RSA key below the minimum size.
    RsaKeyTooSmall {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// The modulus size in bits.
        bits: usize,
    },
    /// A key could not be read; `reason` says why, without key material.
    InvalidKey {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A JWK or JWKS document is not valid JSON of the expected shape.
    InvalidJson(String),
    /// A URL that does not parse, or has no host, or a scheme other than `http(s)`.
    InvalidUrl(String),
    /// A URL with credentials in it (`https://user:password@host/..`), refused so that they
    /// never reach logs or `Debug` output. The URL is held with its userinfo replaced by
    /// `***`.
    CredentialsInUrl(String),
    /// An `http://` URL to a host that is not loopback, without
    /// `RemoteKeys::allow_insecure_http`.
    InsecureUrl(String),
    /// The issuer's keys could not be fetched at start-up (eager `build`); the reason says
    /// why (timeout, HTTP status, issuer mismatch, unusable key set ...).
    KeyFetch(String),
    /// A value that goes into `WWW-Authenticate` (realm, resource metadata URL) holds a
    /// character that cannot be sent in a quoted string.
    InvalidHeaderValue(&'static str),
    /// A required scope is not a valid RFC 6749 §3.3 `scope-token` (printable ASCII without
    /// space, `"` or `\\`): no token could ever grant it.
    InvalidScope(String),
    /// [`RequireScope::all`](crate::RequireScope::all) or
    /// [`RequireScope::any`](crate::RequireScope::any) was given no scope. A route that
    /// needs only a valid token says so with
    /// [`RequireScope::authenticated`](crate::RequireScope::authenticated).
    EmptyScopes,
    /// The same issuer is trusted twice ([`ValidatorBuilder::trust`](crate::ValidatorBuilder::trust));
    /// the issuer is held with any userinfo replaced by `***`.
    DuplicateIssuer(String),
    /// The issuer's metadata could not be read, or does not name the endpoint needed (an
    /// `Introspection` built by discovery); the reason names the URL and what failed.
    Discovery(String),
    /// CA certificates (for [`remote::private_ca`](crate::remote::private_ca)) that could
    /// not be read: not PEM, no certificate in it, or one rustls refuses.
    InvalidCertificate(String),
    /// A route required `offline_access`: that scope asks the authorization server for a
    /// refresh token; it is not a permission an access token brings to a resource, and a
    /// challenge naming it would send a client (an MCP client, say) asking for a refresh
    /// token to get past a refusal.
    OfflineAccessRequired,
    /// [`RequireScope::require_acr`](crate::RequireScope::require_acr) was given no value
    /// (held as the empty string), or a value no challenge can carry in `acr_values`: empty,
    /// or holding whitespace, `"`, `\\` or a character outside printable ASCII.
    InvalidAcrValue(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MissingIssuer => f.write_str("no issuer configured"),
            ConfigError::MissingAudience => f.write_str("no audience configured"),
            ConfigError::MissingKeys => f.write_str("no verification keys configured"),
            ConfigError::NoUsableKeys => f.write_str("the key set holds no usable key"),
            ConfigError::LeewayTooLarge { requested, max } => {
                write!(f, "leeway of {requested} s exceeds the maximum of {max} s")
            }
            ConfigError::HmacSecretTooShort { len, min } => {
                write!(f, "HMAC secret of {len} bytes is shorter than {min} bytes")
            }
            ConfigError::UnsupportedAlgorithm(alg) => write!(f, "unsupported algorithm `{alg}`"),
            ConfigError::RsaKeyTooSmall { kid, bits } => {
                write!(f, "RSA key{} has {bits} bits, below 2048", fmt_kid(kid))
            }
            ConfigError::InvalidKey { kid, reason } => {
                write!(f, "invalid key{}: {reason}", fmt_kid(kid))
            }
            ConfigError::InvalidJson(reason) => write!(f, "invalid JSON: {reason}"),
            ConfigError::InvalidUrl(url) => write!(f, "invalid URL `{url}`"),
            ConfigError::CredentialsInUrl(url) => write!(
                f,
                "refusing URL `{url}` with credentials in it: configure them separately"
            ),
            ConfigError::InsecureUrl(url) => {
                write!(f, "refusing plain-http URL `{url}` to a non-loopback host")
            }
            ConfigError::KeyFetch(reason) => {
                write!(f, "could not fetch the issuer's keys: {reason}")
            }
            ConfigError::InvalidHeaderValue(what) => {
                write!(f, "{what} holds characters not allowed in WWW-Authenticate")
            }
            ConfigError::InvalidScope(scope) => write!(
                f,
                "required scope `{}` is not a valid scope-token (RFC 6749 §3.3)",
                scope.escape_debug()
            ),
            ConfigError::DuplicateIssuer(issuer) => write!(f, "issuer `{issuer}` is trusted twice"),
            ConfigError::Discovery(reason) => {
                write!(f, "could not discover the issuer's metadata: {reason}")
            }
            ConfigError::InvalidCertificate(reason) => {
                write!(f, "invalid CA certificate: {reason}")
            }
            ConfigError::OfflineAccessRequired => f.write_str(
                "a route cannot require `offline_access`: it asks for a refresh token, it is \
                 not a permission",
            ),
            ConfigError::InvalidAcrValue(acr) if acr.is_empty() => {
                f.write_str("no acr value given to require, or an empty one")
            }
            ConfigError::InvalidAcrValue(acr) => write!(
                f,
                "acr value `{}` cannot be sent in `acr_values` (RFC 9470 §3)",
                acr.escape_debug()
            ),
            ConfigError::EmptyScopes => f.write_str(
                "no scope given to require; use `RequireScope::authenticated` to require only a valid token",
            ),
        }
    }
}

fn fmt_kid(kid: &Option<String>) -> String {
    kid.as_deref()
        .map(|k| format!(" `{k}`"))
        .unwrap_or_default()
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::GrpcCode;

    #[test]
    fn statuses_follow_rfc_6750() {
        assert_eq!(ErrorKind::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ErrorKind::MissingToken.oauth_error(), None);
        assert_eq!(ErrorKind::InvalidRequest.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorKind::Expired.oauth_error(), Some("invalid_token"));
        assert_eq!(ErrorKind::InsufficientScope.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorKind::InsufficientScope.grpc_code(),
            GrpcCode::PermissionDenied
        );
        assert_eq!(GrpcCode::PermissionDenied.as_u16(), 7);
        assert_eq!(ErrorKind::Expired.grpc_code(), GrpcCode::Unauthenticated);
        assert_eq!(
            ErrorKind::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // RFC 9470 §3: 401, its own error code, logged and counted under the same name.
        let step_up = ErrorKind::InsufficientUserAuthentication;
        assert_eq!(step_up.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            step_up.oauth_error(),
            Some("insufficient_user_authentication")
        );
        assert_eq!(step_up.as_str(), "insufficient_user_authentication");
        assert_eq!(step_up.grpc_code(), GrpcCode::Unauthenticated);
    }

    #[test]
    fn a_failed_proof_is_one_error_with_its_kind_and_the_check_that_failed() {
        let replayed = AuthError::dpop(&DpopError::new(DpopErrorKind::Replayed));
        assert_eq!(replayed.kind(), DpopErrorKind::Replayed.refusal());
        assert_eq!(replayed.kind(), ErrorKind::InvalidDpopProof);
        assert_eq!(replayed.dpop_error(), Some(DpopErrorKind::Replayed));
        assert_eq!(replayed.certificate_error(), None);
        assert_eq!(replayed.proof_detail(), Some("replayed"));
        assert!(
            replayed
                .to_string()
                .ends_with(&format!(": {}", DpopErrorKind::Replayed))
        );

        let in_claim = AuthError::dpop(&DpopError::claim(DpopErrorKind::InvalidClaim, "htu"));
        assert_eq!(in_claim.claim_name(), Some("htu"));

        let nonce = AuthError::dpop(&DpopError::new(DpopErrorKind::NonceMissing));
        assert_eq!(nonce.kind(), ErrorKind::UseDpopNonce);

        let certificate =
            AuthError::certificate(MtlsError::new(MtlsErrorKind::CertificateMismatch));
        assert_eq!(certificate.kind(), ErrorKind::BindingMismatch);
        assert_eq!(certificate.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(certificate.dpop_error(), None);
        assert_eq!(
            certificate.certificate_error(),
            Some(MtlsErrorKind::CertificateMismatch)
        );
        assert!(
            certificate
                .to_string()
                .ends_with(": client_certificate_mismatch")
        );

        let plain = AuthError::new(ErrorKind::Expired);
        assert_eq!(
            (plain.dpop_error(), plain.certificate_error()),
            (None, None)
        );
        assert!(!format!("{plain:?}").contains("proof"));
    }

    #[test]
    fn display_names_the_claim() {
        let err = AuthError::claim(ErrorKind::InvalidClaimType, "exp");
        assert_eq!(err.to_string(), "token claim has the wrong type (`exp`)");
        assert_eq!(
            format!("{err:?}"),
            r#"AuthError { kind: InvalidClaimType, claim: "exp" }"#
        );
    }
}
