//! Metrics (feature `metrics`), through the [`metrics`](https://docs.rs/metrics) facade: the
//! application installs whichever recorder it likes (Prometheus, StatsD ...). Labels are
//! fixed, low-cardinality values: reasons, results, never a token, a secret or a client id.
//! Without the feature, every function here is empty and compiles away.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `bearer_guard_requests_total` | counter | `outcome` (`admitted`, `refused`), `reason` | decisions of the auth and rate-limit layers; `reason` is [`ErrorKind::as_str`] |
//! | `bearer_guard_verify_seconds` | histogram | | time spent verifying a token not in the cache (signature and claims) |
//! | `bearer_guard_token_cache_total` | counter | `result` (`hit`, `miss`) | verified-token cache lookups |
//! | `bearer_guard_revocation_lookups_total` | counter | | questions asked of the revocation store |

use crate::error::ErrorKind;

#[cfg(feature = "metrics")]
use std::time::Instant;

/// A request refused for `kind`. Without an allocation: the key and its labels are
/// statics, one per kind.
pub(crate) fn refused(kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    {
        static METADATA: metrics::Metadata<'static> =
            metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let key =
            metrics::Key::from_static_parts("bearer_guard_requests_total", refused_labels(kind));
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA).increment(1));
    }
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// `outcome="refused"` and `reason=<kind>`, as a static per kind.
#[cfg(feature = "metrics")]
fn refused_labels(kind: ErrorKind) -> &'static [metrics::Label] {
    macro_rules! labels {
        ($($kind:ident),* $(,)?) => {
            match kind {
                $(ErrorKind::$kind => {
                    static LABELS: [metrics::Label; 2] = [
                        metrics::Label::from_static_parts("outcome", "refused"),
                        metrics::Label::from_static_parts("reason", ErrorKind::$kind.as_str()),
                    ];
                    &LABELS
                })*
            }
        };
    }
    labels!(
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
        LifetimeTooLong,
        InvalidIssuer,
        InvalidAudience,
        InvalidClaims,
        SenderConstrained,
        BindingMismatch,
        DpopRequired,
        InvalidDpopProof,
        UseDpopNonce,
        InsufficientScope,
        Forbidden,
        Revoked,
        KeysUnavailable,
        RevocationUnavailable,
        ProofReplayUnavailable,
        RateLimited,
        QuotaUnavailable,
    )
}

/// A request admitted.
pub(crate) fn admitted() {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_requests_total", "outcome" => "admitted").increment(1);
}

/// A verified-token cache hit.
pub(crate) fn cache_hit() {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_token_cache_total", "result" => "hit").increment(1);
}

/// A verified-token cache miss.
pub(crate) fn cache_miss() {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_token_cache_total", "result" => "miss").increment(1);
}

/// A question to the revocation store.
pub(crate) fn revocation_lookup() {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_revocation_lookups_total").increment(1);
}

/// Times a verification.
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    started: Instant,
}

impl Timer {
    pub(crate) fn start() -> Self {
        Timer {
            #[cfg(feature = "metrics")]
            started: Instant::now(),
        }
    }

    /// Records the time since [`start`](Self::start) as a verification.
    pub(crate) fn verified(self) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("bearer_guard_verify_seconds").record(self.started.elapsed());
    }
}
