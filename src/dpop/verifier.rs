//! [`Dpop`]: the settings and the entry points that verify a proof.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use jsonwebtoken::Algorithm;

use super::error::DpopErrorKind;
use super::htu::Origin;
use super::jwk::algorithm_name;
use super::nonce::Nonces;
use super::outcome::{ProofCheck, ProofFuture, VerifiedProof, settle};
use super::proof::{self, Binding, ProofRequest, Rules};
use super::replay::{DpopReplay, MemoryReplay};
use crate::error::ConfigError;

/// Default window for a proof's `iat` in the past.
pub const DEFAULT_PROOF_MAX_AGE: Duration = Duration::from_secs(60);
/// Longest `iat` window accepted.
pub const MAX_PROOF_MAX_AGE: Duration = Duration::from_secs(300);
/// Default leeway for an `iat` in the future (the client's clock ahead of ours).
pub const DEFAULT_PROOF_FUTURE_LEEWAY: Duration = Duration::from_secs(5);
/// Largest future leeway accepted.
pub const MAX_PROOF_FUTURE_LEEWAY: Duration = Duration::from_secs(60);
/// Default cap on a proof's length in bytes, checked before any parsing: room for RSA keys up
/// to 8192 bits.
pub const DEFAULT_MAX_PROOF_LEN: usize = 8 * 1024;

/// The algorithms accepted by default: every asymmetric JWS algorithm the signature backends
/// verify. `none` and HMAC are never accepted.
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// DPoP proof verification (RFC 9449) with its settings: accepted algorithms, `iat` window,
/// size cap, server nonces, replay store and the server's external origin. A proof with an
/// `exp` or `nbf` of its own (RFC 7519 §4.1.4-4.1.5; RFC 9449 defines neither) must also be
/// within them, with the [future leeway](DpopBuilder::future_leeway).
///
/// Cheap to clone (one `Arc`); build one per protected API (or token endpoint) and share it.
///
/// ```
/// use bearer_guard::dpop::{Dpop, DpopErrorKind, ProofCheck, ProofRequest};
/// let dpop = Dpop::builder().external_origin("https://api.example").build()?;
///
/// let req = http::Request::get("/accounts").body(())?;
/// // No `DPoP` header: refused at once.
/// let ProofCheck::Ready(Err(err)) = dpop.verify_access(&ProofRequest::from(&req), "token", "jkt")
/// else { panic!("decided at once") };
/// assert_eq!(err.kind(), DpopErrorKind::MissingProof);
/// assert_eq!(err.kind().oauth_error(), Some("invalid_dpop_proof"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Rules,
    replay: Arc<dyn DpopReplay>,
    /// `algs="ES256 ..."`, for challenges.
    algs_param: String,
}

impl Dpop {
    /// Starts a builder with the defaults: every asymmetric algorithm, `iat` from 60 s in the
    /// past to 5 s in the future, proofs up to 8 KiB, no nonces, an in-process replay store,
    /// and the origin `https://` + the request's `Host`.
    pub fn builder() -> DpopBuilder {
        DpopBuilder {
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            max_age: DEFAULT_PROOF_MAX_AGE,
            future_leeway: DEFAULT_PROOF_FUTURE_LEEWAY,
            max_proof_len: DEFAULT_MAX_PROOF_LEN,
            nonces: None,
            replay: None,
            origin: OriginSetting::FromRequest("https"),
        }
    }

    /// Verifies the proof of a request to a protected resource (RFC 9449 §7), after its
    /// access token verified: every check of §4.3, `ath` against `access_token`, the proof's
    /// key against `jkt` (the token's `cnf.jkt`), then the replay store.
    ///
    /// A cached token still needs this on every request: a proof is good for one request.
    pub fn verify_access(
        &self,
        req: &ProofRequest<'_>,
        access_token: &str,
        jkt: &str,
    ) -> ProofCheck {
        let binding = Binding::AccessToken {
            token: access_token,
            jkt,
        };
        self.verify(req, binding)
    }

    /// Verifies the proof of a request to an authorization server's token (or PAR) endpoint
    /// (RFC 9449 §5): every check of §4.3 (no `ath`), the key against `expected_jkt` when
    /// the grant is already bound (a `dpop_jkt` authorization code, a DPoP-bound refresh
    /// token), then the replay store. The issuer binds the new token to
    /// [`VerifiedProof::jkt`].
    ///
    /// Call it once the client is authenticated and the grant checked: anyone can make a
    /// valid proof with a key of their own, and each one takes a place in the replay store
    /// until its window passes (a full [`MemoryReplay`] refuses new proofs).
    ///
    /// For an authorization server, not a resource server: behind the `token-endpoint`
    /// feature (the companion issuer, `examples/issuer/`, uses it). The checks are the ones
    /// [`verify_access`](Self::verify_access) makes, less the access token's.
    #[cfg(feature = "token-endpoint")]
    #[cfg_attr(docsrs, doc(cfg(feature = "token-endpoint")))]
    pub fn verify_token_request(
        &self,
        req: &ProofRequest<'_>,
        expected_jkt: Option<&str>,
    ) -> ProofCheck {
        self.verify(req, Binding::TokenRequest { jkt: expected_jkt })
    }

    fn verify(&self, req: &ProofRequest<'_>, binding: Binding<'_>) -> ProofCheck {
        self.verify_at(req, binding, unix_now())
    }

    /// [`verify`](Self::verify) at `now`, seconds since the epoch.
    fn verify_at(&self, req: &ProofRequest<'_>, binding: Binding<'_>, now: i64) -> ProofCheck {
        let checked = match proof::check(&self.inner.rules, req, binding, now) {
            Ok(checked) => checked,
            Err(err) => return ProofCheck::Ready(Err(err)),
        };
        let ttl = Duration::from_secs(checked.replay_ttl_secs);
        let mut replay = self.inner.replay.first_use(&checked.replay_key, ttl);
        let proof = VerifiedProof::from(checked);
        match replay.take_ready() {
            Some(answer) => ProofCheck::Ready(settle(proof, answer)),
            None => ProofCheck::Pending(ProofFuture::replay(proof, replay)),
        }
    }

    /// Whether proofs must carry a server nonce.
    #[must_use]
    pub fn requires_nonce(&self) -> bool {
        self.inner.rules.nonces.is_some()
    }

    /// A fresh nonce for a `DPoP-Nonce` header, when nonces are on: due with every
    /// `use_dpop_nonce` answer ([`DpopErrorKind::nonce_due`]) and, on success, when
    /// [`VerifiedProof::nonce_refresh_due`].
    #[must_use]
    pub fn nonce_header(&self) -> Option<HeaderValue> {
        let nonce = self.inner.rules.nonces.as_ref()?.issue(unix_now());
        // base64url: always a valid header value.
        HeaderValue::from_str(&nonce).ok()
    }

    /// The accepted algorithms.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.rules.algorithms
    }

    /// The `algs` auth-param of the `DPoP` challenge: `algs="ES256 ES384 ..."`.
    #[must_use]
    pub fn algs_param(&self) -> &str {
        &self.inner.algs_param
    }

    /// A `WWW-Authenticate` value for the `DPoP` scheme (RFC 9449 §7.1):
    /// `DPoP algs=".."` without an error (no credentials), or
    /// `DPoP error="..", algs=".."` with the error code of `error`.
    #[must_use]
    pub fn challenge(&self, error: Option<DpopErrorKind>) -> HeaderValue {
        let value = match error.and_then(DpopErrorKind::oauth_error) {
            Some(code) => format!("DPoP error=\"{code}\", {}", self.inner.algs_param),
            None => format!("DPoP {}", self.inner.algs_param),
        };
        // Fixed names only: always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = &self.inner.rules;
        f.debug_struct("Dpop")
            .field("algorithms", &rules.algorithms)
            .field("max_age", &rules.max_age)
            .field("future_leeway", &rules.future_leeway)
            .field("max_proof_len", &rules.max_proof_len)
            .field("nonces", &rules.nonces)
            .field("origin", &rules.origin)
            .finish_non_exhaustive()
    }
}

/// `d` in whole seconds, if it is at most `max` (and not zero unless `zero_ok`).
fn whole_seconds(d: Duration, max: Duration, zero_ok: bool) -> Result<i64, ConfigError> {
    if d > max || (d.is_zero() && !zero_ok) {
        return Err(ConfigError::LeewayTooLarge {
            requested: d.as_secs(),
            max: max.as_secs(),
        });
    }
    Ok(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

enum OriginSetting {
    External(String),
    FromRequest(&'static str),
    BadScheme(String),
}

/// Builder for [`Dpop`]; see [`Dpop::builder`].
#[must_use]
pub struct DpopBuilder {
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    future_leeway: Duration,
    max_proof_len: usize,
    nonces: Option<Result<Nonces, ConfigError>>,
    replay: Option<Arc<dyn DpopReplay>>,
    origin: OriginSetting,
}

impl DpopBuilder {
    /// The algorithms proofs may be signed with (default
    /// [`DEFAULT_PROOF_ALGORITHMS`]). HMAC algorithms are refused by `build`.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s, at most 300 s). Replays are remembered
    /// for as long.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How far in the future a proof's `iat` may lie (default 5 s, at most 60 s). The same
    /// leeway applies to a proof's own `exp` and `nbf`, when it has them: it is refused that
    /// long after its `exp`, and accepted that long before its `nbf`.
    pub fn future_leeway(mut self, leeway: Duration) -> Self {
        self.future_leeway = leeway;
        self
    }

    /// The longest `DPoP` header accepted, in bytes (default 8 KiB).
    pub fn max_proof_len(mut self, bytes: usize) -> Self {
        self.max_proof_len = bytes;
        self
    }

    /// Requires a server nonce in every proof (RFC 9449 §8, §9): stateless nonces sealed with
    /// HMAC-SHA256 under `secret` (at least 32 bytes; give every replica the same one),
    /// valid for `lifetime` (at most an hour). A proof without one, or with an invalid or
    /// expired one, is answered `use_dpop_nonce` with a fresh nonce. Behind
    /// [`RequireScope`](crate::RequireScope), a request whose nonce is past half its life
    /// gets the next one in its response's `DPoP-Nonce` header (RFC 9449 §8.2).
    pub fn nonces(mut self, secret: impl AsRef<[u8]>, lifetime: Duration) -> Self {
        self.nonces = Some(Nonces::new(secret.as_ref(), lifetime));
        self
    }

    /// The store that refuses a proof used twice (default: a [`MemoryReplay`], right for
    /// one process; share a `RedisReplay` between replicas).
    pub fn replay(mut self, store: Arc<dyn DpopReplay>) -> Self {
        self.replay = Some(store);
        self
    }

    /// The server's origin as clients see it (`https://api.example`, `https://api.example:8443`):
    /// `htu` is compared with it and the request's path. Set it behind a proxy or load
    /// balancer that terminates TLS, and wherever the `Host` header cannot be trusted.
    pub fn external_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = OriginSetting::External(origin.into());
        self
    }

    /// Takes the origin from each request (its absolute URI's authority, else its one `Host`
    /// header) with `scheme` (`https` or `http`): the default, with `https`. A client can
    /// then aim a proof at any host name that reaches this server; prefer
    /// [`external_origin`](Self::external_origin) in production.
    pub fn origin_from_host(mut self, scheme: &str) -> Self {
        self.origin = match scheme.to_ascii_lowercase().as_str() {
            "https" => OriginSetting::FromRequest("https"),
            "http" => OriginSetting::FromRequest("http"),
            _ => OriginSetting::BadScheme(scheme.to_owned()),
        };
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedAlgorithm`] for an HMAC algorithm or an empty list,
    /// [`ConfigError::LeewayTooLarge`] for a window or nonce lifetime over its maximum (or
    /// zero), [`ConfigError::HmacSecretTooShort`] for a short nonce secret,
    /// [`ConfigError::InvalidUrl`] for an origin that is not `http(s)://host[:port]`.
    pub fn build(self) -> Result<Dpop, ConfigError> {
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::UnsupportedAlgorithm(format!(
                "{} for DPoP proofs (symmetric)",
                algorithm_name(*alg)
            )));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::UnsupportedAlgorithm(
                "no algorithm for DPoP proofs".into(),
            ));
        }
        let max_age = whole_seconds(self.max_age, MAX_PROOF_MAX_AGE, false)?;
        let future_leeway = whole_seconds(self.future_leeway, MAX_PROOF_FUTURE_LEEWAY, true)?;
        let origin = match self.origin {
            OriginSetting::External(url) => {
                Origin::external(&url).ok_or(ConfigError::InvalidUrl(url))?
            }
            OriginSetting::FromRequest(scheme) => Origin::FromRequest { scheme },
            OriginSetting::BadScheme(scheme) => return Err(ConfigError::InvalidUrl(scheme)),
        };
        let nonces = self.nonces.transpose()?;
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for alg in self.algorithms {
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let names: Vec<&str> = algorithms.iter().map(|a| algorithm_name(*a)).collect();
        Ok(Dpop {
            inner: Arc::new(Inner {
                algs_param: format!("algs=\"{}\"", names.join(" ")),
                rules: Rules {
                    algorithms,
                    max_proof_len: self.max_proof_len,
                    max_age,
                    future_leeway,
                    nonces,
                    origin,
                },
                replay: self.replay.unwrap_or_else(|| Arc::new(MemoryReplay::new())),
            }),
        })
    }
}

impl fmt::Debug for DpopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopBuilder")
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("future_leeway", &self.future_leeway)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::{DpopError, DpopErrorKind as K};

    /// RFC 9449's example key: the `jkt` of its example access token (§6.1).
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    /// Figure 4 (§5): token request with an authorization code, `iat` 1562262616.
    const TOKEN_REQUEST_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj",
        "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia",
        "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg",
        "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg",
    );

    /// Figure 6 (§5): token request with a refresh token, `iat` 1562265296.
    const REFRESH_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj",
        "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia",
        "WF0IjoxNTYyMjY1Mjk2fQ.pAqut2IRDm_De6PR93SYmGBPXpwrAk90e8cP2hjiaG5Qs",
        "GSuKDYW7_X620BxqhvYC8ynrrvZLTk41mSRroapUA",
    );

    /// Figure 12 (§7.1): protected resource request, `iat` 1562262618, with `ath`.
    const RESOURCE_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj",
        "oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z",
        "WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF",
        "c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E",
        "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA",
    );
    const RESOURCE_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

    fn request(method: &str, uri: &str, host: &str, proof: &str) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .header("dpop", proof)
            .body(())
            .expect("request")
    }

    fn ready(check: ProofCheck) -> Result<VerifiedProof, DpopError> {
        match check {
            ProofCheck::Ready(outcome) => outcome,
            ProofCheck::Pending(_) => panic!("the memory store answers at once"),
        }
    }

    fn kind(check: ProofCheck) -> Option<K> {
        ready(check).err().map(|e| e.kind())
    }

    fn token_request(dpop: &Dpop, proof: &str, jkt: Option<&str>, now: i64) -> ProofCheck {
        let req = request("POST", "/token", "server.example.com", proof);
        dpop.verify_at(
            &ProofRequest::from(&req),
            Binding::TokenRequest { jkt },
            now,
        )
    }

    fn resource(dpop: &Dpop, token: &str, jkt: &str, now: i64) -> ProofCheck {
        let req = request(
            "GET",
            "/protectedresource",
            "resource.example.org",
            RESOURCE_PROOF,
        );
        dpop.verify_at(
            &ProofRequest::from(&req),
            Binding::AccessToken { token, jkt },
            now,
        )
    }

    fn es256_only() -> Dpop {
        Dpop::builder()
            .algorithms([Algorithm::ES256])
            .build()
            .expect("dpop")
    }

    #[test]
    fn rfc_9449_token_request_examples_verify() {
        let dpop = es256_only();
        let proof = ready(token_request(
            &dpop,
            TOKEN_REQUEST_PROOF,
            Some(JKT),
            1_562_262_620,
        ))
        .expect("Figure 4 verifies");
        assert_eq!(proof.jkt(), JKT);
        assert_eq!(proof.jti(), "-BwC3ESc6acc2lTc");
        assert_eq!(proof.iat(), 1_562_262_616);
        // Figures 4 and 6 share their key and `jti`: once Figure 4 is accepted, Figure 6 is
        // a replay for as long as the store remembers Figure 4.
        assert_eq!(
            kind(token_request(&dpop, REFRESH_PROOF, None, 1_562_265_300)),
            Some(K::Replayed)
        );
        let proof = ready(token_request(
            &es256_only(),
            REFRESH_PROOF,
            None,
            1_562_265_300,
        ))
        .expect("Figure 6 verifies");
        assert_eq!((proof.jkt(), proof.iat()), (JKT, 1_562_265_296));
        // Outside its window, either side.
        for now in [1_562_262_616 - 6, 1_562_262_616 + 61] {
            assert!(matches!(
                kind(token_request(&es256_only(), TOKEN_REQUEST_PROOF, None, now)),
                Some(K::IssuedInFuture | K::TooOld)
            ));
        }
    }

    #[test]
    fn rfc_9449_resource_example_verifies_with_its_token_and_key() {
        let now = 1_562_262_618 + 30;
        let proof = ready(resource(&es256_only(), RESOURCE_TOKEN, JKT, now)).expect("Figure 12");
        assert_eq!(proof.jti(), "e1j3V_bKic8-LAEB");
        // The same proof with another token, another key, at another time, or twice.
        let other_jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert_eq!(
            kind(resource(&es256_only(), "another-token", JKT, now)),
            Some(K::AccessTokenHashMismatch)
        );
        assert_eq!(
            kind(resource(&es256_only(), RESOURCE_TOKEN, other_jkt, now)),
            Some(K::KeyMismatch)
        );
        assert_eq!(
            kind(resource(&es256_only(), RESOURCE_TOKEN, JKT, now + 60)),
            Some(K::TooOld)
        );
        let dpop = es256_only();
        assert!(ready(resource(&dpop, RESOURCE_TOKEN, JKT, now)).is_ok());
        assert_eq!(
            kind(resource(&dpop, RESOURCE_TOKEN, JKT, now)),
            Some(K::Replayed)
        );
    }

    #[test]
    fn rfc_9449_examples_are_refused_where_they_do_not_belong() {
        let now = 1_562_262_620;
        // Presented to a protected resource, the token-request proof has no `ath`.
        let req = request("POST", "/token", "server.example.com", TOKEN_REQUEST_PROOF);
        let binding = Binding::AccessToken {
            token: RESOURCE_TOKEN,
            jkt: JKT,
        };
        let err = ready(es256_only().verify_at(&ProofRequest::from(&req), binding, now))
            .expect_err("no ath");
        assert_eq!(
            (err.kind(), err.claim_name()),
            (K::MissingClaim, Some("ath"))
        );
        // Another method, path, host or scheme.
        for (method, uri, host) in [
            ("GET", "/token", "server.example.com"),
            ("POST", "/token/", "server.example.com"),
            ("POST", "/token", "resource.example.org"),
            ("POST", "/token", "server.example.com:8443"),
        ] {
            let req = request(method, uri, host, TOKEN_REQUEST_PROOF);
            let binding = Binding::TokenRequest { jkt: None };
            let check = es256_only().verify_at(&ProofRequest::from(&req), binding, now);
            assert!(
                matches!(kind(check), Some(K::MethodMismatch | K::UriMismatch)),
                "{method} {host}{uri}"
            );
        }
        let http = Dpop::builder()
            .origin_from_host("http")
            .build()
            .expect("dpop");
        assert_eq!(
            kind(token_request(&http, TOKEN_REQUEST_PROOF, None, now)),
            Some(K::UriMismatch)
        );
        // Not in the allowed algorithms.
        let eddsa = Dpop::builder()
            .algorithms([Algorithm::EdDSA])
            .build()
            .expect("dpop");
        assert_eq!(
            kind(token_request(&eddsa, TOKEN_REQUEST_PROOF, None, now)),
            Some(K::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn builder_refuses_insecure_or_odd_settings() {
        let err = |b: DpopBuilder| b.build().expect_err("refused");
        assert!(matches!(
            err(Dpop::builder().algorithms([Algorithm::ES256, Algorithm::HS256])),
            ConfigError::UnsupportedAlgorithm(_)
        ));
        assert!(matches!(
            err(Dpop::builder().algorithms([])),
            ConfigError::UnsupportedAlgorithm(_)
        ));
        assert!(matches!(
            err(Dpop::builder().max_age(Duration::from_secs(301))),
            ConfigError::LeewayTooLarge {
                requested: 301,
                max: 300
            }
        ));
        assert!(
            err(Dpop::builder().max_age(Duration::ZERO))
                .to_string()
                .contains("0 s")
        );
        assert!(
            Dpop::builder()
                .future_leeway(Duration::from_secs(61))
                .build()
                .is_err()
        );
        assert!(
            Dpop::builder()
                .future_leeway(Duration::ZERO)
                .build()
                .is_ok()
        );
        assert!(
            Dpop::builder()
                .nonces([1u8; 31], Duration::from_secs(60))
                .build()
                .is_err()
        );
        for origin in [
            "api.example",
            "ftp://api.example",
            "https://api.example/v1",
            "https://api.example/?x",
            "https://u:p@api.example",
        ] {
            assert!(
                matches!(
                    err(Dpop::builder().external_origin(origin)),
                    ConfigError::InvalidUrl(_)
                ),
                "{origin}"
            );
        }
        assert!(
            Dpop::builder()
                .external_origin("HTTPS://API.example:443/")
                .build()
                .is_ok()
        );
        assert!(Dpop::builder().origin_from_host("gopher").build().is_err());
    }

    #[test]
    fn challenges_list_the_algorithms() {
        let dpop = Dpop::builder()
            .algorithms([Algorithm::ES256, Algorithm::PS256, Algorithm::ES256])
            .build()
            .expect("dpop");
        assert_eq!(dpop.algs_param(), r#"algs="ES256 PS256""#);
        assert_eq!(dpop.challenge(None), r#"DPoP algs="ES256 PS256""#);
        assert_eq!(
            dpop.challenge(Some(K::Replayed)),
            r#"DPoP error="invalid_dpop_proof", algs="ES256 PS256""#
        );
        assert_eq!(
            dpop.challenge(Some(K::ReplayUnavailable)),
            r#"DPoP algs="ES256 PS256""#
        );
        assert!(dpop.nonce_header().is_none() && !dpop.requires_nonce());
        let debug = format!(
            "{:?}",
            Dpop::builder()
                .nonces([9u8; 32], Duration::from_secs(60))
                .build()
                .expect("dpop")
        );
        assert!(
            debug.contains("lifetime") && !debug.contains("9, 9"),
            "{debug}"
        );
    }
}
