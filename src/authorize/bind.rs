//! Stage 3 of the decision: a sender-constrained token must come with proof of its key.
//!
//! | token's `cnf` | came as | needs |
//! |---|---|---|
//! | none | `Bearer` | nothing (refused where the route requires DPoP) |
//! | none | `DPoP` | refused: the token is not DPoP-bound |
//! | `jkt` | `DPoP` | a valid DPoP proof of that key for this request (RFC 9449) |
//! | `jkt` | `Bearer` | refused (RFC 9449 §7.2) |
//! | `x5t#S256` | `Bearer` | the connection's client certificate, hashing to it (RFC 8705 §3) |
//! | anything else | any | refused: no proof this crate can check |
//!
//! It runs on every request, the cached tokens' too: a proof is good for one request.

use std::sync::Arc;

use super::Head;
use http::HeaderValue;

use crate::dpop::{Dpop, DpopError, DpopErrorKind, ProofCheck, ProofFuture, ProofRequest};
use crate::error::{AuthError, ErrorKind};
use crate::mtls::{PeerCertificate, check_x5t};
use crate::response::Refusal;
use crate::response::Scheme;
use crate::verified::{Confirmation, Verified};

/// A route's rules on sender-constrained tokens.
#[derive(Clone, Debug, Default)]
pub(crate) struct Binding {
    /// DPoP proofs are accepted (and checked) with this verifier.
    pub(crate) dpop: Option<Dpop>,
    /// Plain `Bearer` tokens are refused.
    pub(crate) dpop_required: bool,
}

/// The outcome of the binding stage.
pub(crate) enum Bound {
    /// The binding holds. `renew_nonce`: the proof's server nonce is past half its life, so
    /// the response brings the next one (RFC 9449 §8.2), and the client never meets
    /// `use_dpop_nonce`.
    Holds {
        renew_nonce: bool,
    },
    Refused(Refusal),
    /// The DPoP replay store must be asked.
    Wait(ProofFuture),
}

impl Bound {
    const HOLDS: Bound = Bound::Holds { renew_nonce: false };
}

impl Binding {
    /// The next DPoP server nonce, as a `DPoP-Nonce` value (when nonces are on).
    pub(crate) fn next_nonce(&self) -> Option<HeaderValue> {
        self.dpop.as_ref().and_then(Dpop::nonce_header)
    }

    /// Whether `Authorization: DPoP` is read at all.
    pub(crate) fn accepts_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// Checks `token`, as it came with `scheme` in the request `head` (starting at `start`
    /// in the `Authorization` value), against them.
    #[inline(always)]
    pub(crate) fn check<T: Send + Sync + 'static>(
        &self,
        scheme: Scheme,
        start: usize,
        token: &Arc<Verified<T>>,
        head: Head<'_>,
    ) -> Bound {
        let refuse =
            |kind: ErrorKind| Bound::Refused(Refusal::new(kind).with_token(Some(&token.record())));
        match (token.token.confirmation(), scheme) {
            (None, Scheme::Bearer) if self.dpop_required => {
                self.refused(DpopErrorKind::DpopRequired.into(), token)
            }
            (None, Scheme::Bearer) => Bound::HOLDS,
            (None | Some(Confirmation::X5tS256(_)), Scheme::Dpop) => {
                self.refused(DpopErrorKind::UnboundTokenAsDpop.into(), token)
            }
            (Some(Confirmation::Jkt(_)), Scheme::Bearer) => refuse(ErrorKind::SenderConstrained),
            (Some(Confirmation::Jkt(jkt)), Scheme::Dpop) => {
                let Some(dpop) = &self.dpop else {
                    return refuse(ErrorKind::SenderConstrained);
                };
                // The bytes presented, where the extract stage found them: a verified JWS or
                // an introspected `b64token`, so ASCII; anything else would fail `ath`.
                let access_token = head
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|value| value.as_bytes().get(start..))
                    .and_then(|token| std::str::from_utf8(token).ok())
                    .unwrap_or_default();
                match dpop.verify_access(
                    &ProofRequest::new(head.method, head.uri, head.headers),
                    access_token,
                    jkt,
                ) {
                    ProofCheck::Ready(result) => self.proven(result, token),
                    ProofCheck::Pending(proof) => Bound::Wait(proof),
                }
            }
            (Some(Confirmation::X5tS256(_)), Scheme::Bearer) if self.dpop_required => {
                self.refused(DpopErrorKind::DpopRequired.into(), token)
            }
            (Some(Confirmation::X5tS256(x5t)), Scheme::Bearer) => {
                match check_x5t(x5t, head.extensions.get::<PeerCertificate>()) {
                    Ok(()) => Bound::HOLDS,
                    Err(err) => Bound::Refused(
                        Refusal::new(AuthError::certificate(err)).with_token(Some(&token.record())),
                    ),
                }
            }
            (Some(Confirmation::Other), _) => refuse(ErrorKind::SenderConstrained),
        }
    }

    /// The outcome of a DPoP proof check.
    pub(crate) fn proven<T: Send + Sync + 'static>(
        &self,
        result: Result<crate::dpop::VerifiedProof, DpopError>,
        token: &Arc<Verified<T>>,
    ) -> Bound {
        match result {
            Ok(proof) => Bound::Holds {
                renew_nonce: proof.nonce_refresh_due(),
            },
            Err(err) => self.refused(err, token),
        }
    }

    fn refused<T: Send + Sync + 'static>(&self, err: DpopError, token: &Arc<Verified<T>>) -> Bound {
        let nonce = err.kind().nonce_due().then(|| self.next_nonce()).flatten();
        Bound::Refused(
            Refusal::new(AuthError::dpop(&err))
                .with_token(Some(&token.record()))
                .with_dpop_nonce(nonce),
        )
    }
}
