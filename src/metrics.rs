//! Metrics (feature `metrics`), through the [`metrics`](https://docs.rs/metrics) facade: the
//! application installs whichever recorder it likes (Prometheus, StatsD ...). Labels are
//! fixed, low-cardinality values: reasons, results, never a token, a secret or a client id.
//! Without the feature, every function here is empty and compiles away.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `bearer_guard_requests_total` | counter | `outcome` (`admitted`, `refused`), `reason` (refused only) | decisions of the auth and rate-limit layers; `reason` is [`ErrorKind::as_str`]. `admitted` is counted by the auth layer: a request it admits and a rate limit behind it refuses counts once as each |
//! | `bearer_guard_verify_seconds` | histogram | | each verification of a token not served from the cache (signature and claims), passed or failed; a token that waits for its issuer's keys is verified (and counted) before and after the fetch |
//! | `bearer_guard_token_cache_total` | counter | `result` (`hit`, `miss`) | verified-token cache lookups |
//! | `bearer_guard_token_cache_evictions_total` | counter | | tokens evicted to stay within the cache's bounds |
//! | `bearer_guard_token_cache_entries` | gauge | | tokens in the cache, after the last insertion (one value per process: with several validators, the last one's) |
//! | `bearer_guard_token_cache_bytes` | gauge | | estimated bytes the cache holds, likewise |
//! | `bearer_guard_key_fetches_total` | counter | `result` (`ok`, or why it failed: `connect`, `tls`, `timeout`, `http_status`, `too_large`, `invalid_json`, `invalid_document` ...) | key-set fetches (with the discovery document, when it is read first) |
//! | `bearer_guard_key_set_fetched_timestamp_seconds` | gauge | `issuer` (configured, few) | when each issuer's key set was last fetched; now minus it is the key set's age |
//! | `bearer_guard_revocation_lookups_total` | counter | `result` (`not_revoked`, `revoked`, `error`) | questions asked of the revocation store |
//! | `bearer_guard_revocation_lookup_seconds` | histogram | | how long the store took to answer |
//! | `bearer_guard_introspection_requests_total` | counter | `result` (`active`, `inactive`, `refused`, or why there was no answer: `connect`, `timeout`, `http_status`, `client_refused`, `invalid_response`, `overloaded` ...) | introspection requests (RFC 7662; feature `remote`); `refused` is an active answer the validator's rules refuse |
//! | `bearer_guard_introspection_seconds` | histogram | | how long each introspection request took |
//! | `bearer_guard_client_token_requests_total` | counter | `result` (`ok`, or `TokenErrorKind::as_str`: `rejected`, `http_status`, `timeout` ...) | token requests of the outgoing client (feature `client`); a call served with a cached token asks for none |
//!
//! Histograms are recorded in seconds; how they are exported (buckets or quantiles) is the
//! recorder's choice.

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
        InsufficientUserAuthentication,
        Revoked,
        InactiveToken,
        KeysUnavailable,
        RevocationUnavailable,
        ProofReplayUnavailable,
        IntrospectionUnavailable,
        RateLimited,
        QuotaUnavailable,
    )
}

/// A request admitted, with a token from the verified-token cache (`cache_hit`): both
/// counters in one visit of the recorder.
#[inline(always)]
pub(crate) fn admitted(cache_hit: bool) {
    #[cfg(feature = "metrics")]
    hot::with(|admitted, hit| {
        admitted.increment(1);
        if cache_hit {
            hit.increment(1);
        }
    });
    #[cfg(not(feature = "metrics"))]
    let _ = cache_hit;
}

/// A verified-token cache hit that is not an admitted request's (a refusal follows, or a
/// wait, or a bare validation).
pub(crate) fn cache_hit() {
    #[cfg(feature = "metrics")]
    hot::with(|_, hit| hit.increment(1));
}

/// The counters every admitted request with a cached token updates, with their handles kept
/// per thread: registering a counter with a recorder looks it up by its key (about 500
/// instructions with the Prometheus exporter), incrementing a kept handle is one atomic add.
///
/// The handles are kept together with the address of the recorder that registered them, and
/// used only while that recorder is still the one in force on this thread: a recorder
/// installed later, or a thread-local one set for a test, gets its own registration on the
/// next event. The address is the recorder's identity, so a test that drops a thread-local
/// recorder and makes another *at the same address on the same thread* keeps counting into
/// the first: give each test its own thread (as `#[test]` and `#[tokio::test]` do), or keep
/// one recorder per thread.
#[cfg(feature = "metrics")]
mod hot {
    use std::cell::Cell;

    use metrics::{Counter, Key, Label, Level, Metadata, Recorder};

    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    static ADMITTED: [Label; 1] = [Label::from_static_parts("outcome", "admitted")];
    static HIT: [Label; 1] = [Label::from_static_parts("result", "hit")];

    /// The recorder the handles were registered with (its address), and the handles of
    /// `requests_total{outcome="admitted"}` and `token_cache_total{result="hit"}`. Leaked
    /// when kept (two small allocations per thread and recorder, for the process's life), so
    /// that the thread-local holds no destructor: reading it is then a plain load.
    type Kept = (usize, &'static Counter, &'static Counter);

    thread_local! {
        static KEPT: Cell<Option<Kept>> = const { Cell::new(None) };
    }

    /// Runs `f` with the handles of the recorder in force, registering them on first use.
    pub(super) fn with(f: impl FnOnce(&Counter, &Counter)) {
        metrics::with_recorder(|recorder| {
            // The recorder's identity: its address (no recorder moves while in force).
            let id = std::ptr::from_ref::<dyn Recorder>(recorder).cast::<()>() as usize;
            let kept = KEPT.get();
            match kept {
                Some((kept_id, admitted, hit)) if kept_id == id => f(admitted, hit),
                _ => {
                    let register = |name, labels| {
                        let key = Key::from_static_parts(name, labels);
                        &*Box::leak(Box::new(recorder.register_counter(&key, &METADATA)))
                    };
                    let admitted = register("bearer_guard_requests_total", &ADMITTED);
                    let hit = register("bearer_guard_token_cache_total", &HIT);
                    KEPT.set(Some((id, admitted, hit)));
                    f(admitted, hit);
                }
            }
        });
    }
}

/// A verified-token cache miss.
pub(crate) fn cache_miss() {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_token_cache_total", "result" => "miss").increment(1);
}

/// A question to the revocation store: its answer, and how long it took.
pub(crate) fn revocation_lookup(result: &'static str, took: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("bearer_guard_revocation_lookups_total", "result" => result).increment(1);
        metrics::histogram!("bearer_guard_revocation_lookup_seconds").record(took);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (result, took);
}

/// An introspection request: its outcome (`active`, `inactive`, `refused`, or why there was
/// no answer), and how long it took.
#[cfg(feature = "remote")]
pub(crate) fn introspection(result: &'static str, took: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("bearer_guard_introspection_requests_total", "result" => result)
            .increment(1);
        metrics::histogram!("bearer_guard_introspection_seconds").record(took);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (result, took);
}

/// A token request of the outgoing client: `ok`, or why it failed
/// ([`TokenErrorKind::as_str`](crate::client::TokenErrorKind::as_str)).
#[cfg(feature = "client")]
pub(crate) fn client_token_request(result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("bearer_guard_client_token_requests_total", "result" => result).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// Tokens evicted from the verified-token cache, and its size after an insertion.
pub(crate) fn token_cache(evicted: u64, entries: usize, bytes: u64) {
    #[cfg(feature = "metrics")]
    {
        if evicted > 0 {
            metrics::counter!("bearer_guard_token_cache_evictions_total").increment(evicted);
        }
        metrics::gauge!("bearer_guard_token_cache_entries").set(entries as f64);
        metrics::gauge!("bearer_guard_token_cache_bytes").set(bytes as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (evicted, entries, bytes);
}

/// A key-set (or discovery) fetch for `issuer`: `ok`, or why it failed.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) fn key_fetch(issuer: &str, result: &'static str) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("bearer_guard_key_fetches_total", "result" => result).increment(1);
        if result == "ok" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!("bearer_guard_key_set_fetched_timestamp_seconds", "issuer" => issuer.to_owned())
                .set(now);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, result);
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

#[cfg(all(test, feature = "metrics"))]
mod tests {
    /// Each recorder in force gets the events made while it is: a handle kept for one is
    /// never used for another.
    #[test]
    fn kept_handles_follow_the_recorder_in_force() {
        let first = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let second = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let (first_handle, second_handle) = (first.handle(), second.handle());
        let count = |text: &str, line: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(line))
                .map(|n| n.trim().to_owned())
        };
        {
            let _in_force = metrics::set_default_local_recorder(&first);
            for _ in 0..3 {
                super::admitted(false);
            }
            super::cache_hit();
        }
        {
            let _in_force = metrics::set_default_local_recorder(&second);
            super::admitted(true);
        }
        {
            let _in_force = metrics::set_default_local_recorder(&first);
            super::admitted(false);
        }
        let admitted = r#"bearer_guard_requests_total{outcome="admitted"}"#;
        let hit = r#"bearer_guard_token_cache_total{result="hit"}"#;
        let first = first_handle.render();
        let second = second_handle.render();
        assert_eq!(count(&first, admitted).as_deref(), Some("4"), "{first}");
        assert_eq!(count(&first, hit).as_deref(), Some("1"), "{first}");
        assert_eq!(count(&second, admitted).as_deref(), Some("1"), "{second}");
        assert_eq!(count(&second, hit).as_deref(), Some("1"), "{second}");
    }
}
