//! Why a certificate-bound token was refused (RFC 8705): kept with the crate's one error
//! table, which an `AuthError` carries it in; exported from `mtls`.

use std::fmt;

use http::StatusCode;

/// Why a certificate-bound token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MtlsError {
    kind: MtlsErrorKind,
}

/// The reason behind an [`MtlsError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MtlsErrorKind {
    /// The request carries no [`PeerCertificate`](crate::mtls::PeerCertificate): no client certificate, or the application
    /// did not hand it to the layer.
    MissingCertificate,
    /// The client certificate's thumbprint is not the token's `cnf.x5t#S256`.
    CertificateMismatch,
}

impl MtlsErrorKind {
    /// A stable, short, lower-case name for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsErrorKind::MissingCertificate => "missing_client_certificate",
            MtlsErrorKind::CertificateMismatch => "client_certificate_mismatch",
        }
    }
}

impl MtlsError {
    /// The reason.
    #[must_use]
    pub fn kind(&self) -> MtlsErrorKind {
        self.kind
    }

    /// 401 (RFC 8705 §3).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// `invalid_token` (RFC 8705 §3), for the `Bearer` challenge.
    #[must_use]
    pub fn oauth_error(&self) -> &'static str {
        "invalid_token"
    }
}

impl fmt::Display for MtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            MtlsErrorKind::MissingCertificate => {
                "certificate-bound token without a client certificate"
            }
            MtlsErrorKind::CertificateMismatch => "client certificate does not match the token",
        })
    }
}

impl std::error::Error for MtlsError {}

impl MtlsError {
    pub(crate) const fn new(kind: MtlsErrorKind) -> Self {
        MtlsError { kind }
    }
}
