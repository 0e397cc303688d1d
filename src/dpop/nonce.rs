//! Stateless server nonces (RFC 9449 §8, §9): `DPoP-Nonce` =
//! base64url(issue time ‖ HMAC-SHA256(secret, issue time)).
//!
//! Any replica that shares the secret accepts a nonce another one issued, for its lifetime,
//! without shared state. The HMAC runs through the signature backend's HS256 signer; tags are
//! compared in constant time.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use subtle::ConstantTimeEq as _;

use super::error::DpopErrorKind;
use crate::error::ConfigError;
use crate::keyring::provider;

/// Shortest nonce secret accepted (the HS256 output size, RFC 7518 §3.2).
pub(crate) const MIN_SECRET_LEN: usize = 32;
/// Longest nonce lifetime accepted: a nonce exists to keep proofs short-lived.
pub(crate) const MAX_NONCE_LIFETIME: Duration = Duration::from_secs(3600);
/// How far in the future an issue time may lie: replicas' clocks differ a little.
const FUTURE_SKEW: i64 = 5;
/// Domain separation: these tags can never be mistaken for another use of the secret.
const CONTEXT: &[u8] = b"bearer-guard DPoP-Nonce v1\0";
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 32;
/// base64url length of time and tag (40 bytes).
const NONCE_LEN: usize = 54;

/// The nonce issuer and checker.
pub(crate) struct Nonces {
    key: EncodingKey,
    lifetime: i64,
}

impl Nonces {
    pub(crate) fn new(secret: &[u8], lifetime: Duration) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::HmacSecretTooShort {
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        if lifetime.is_zero() || lifetime > MAX_NONCE_LIFETIME {
            return Err(ConfigError::LeewayTooLarge {
                requested: lifetime.as_secs(),
                max: MAX_NONCE_LIFETIME.as_secs(),
            });
        }
        let nonces = Nonces {
            key: EncodingKey::from_secret(secret),
            lifetime: i64::try_from(lifetime.as_secs().max(1)).unwrap_or(i64::MAX),
        };
        // The backend must be able to MAC now, not at the first request.
        nonces.tag(0).ok_or_else(|| {
            ConfigError::UnsupportedAlgorithm("HS256 for DPoP nonces (backend refused)".into())
        })?;
        Ok(nonces)
    }

    fn tag(&self, time: i64) -> Option<Vec<u8>> {
        let signer = (provider().signer_factory)(&Algorithm::HS256, &self.key).ok()?;
        let mut input = Vec::with_capacity(CONTEXT.len() + TIME_LEN);
        input.extend_from_slice(CONTEXT);
        input.extend_from_slice(&time.to_be_bytes());
        signer.try_sign(&input).ok()
    }

    /// A nonce issued at `now` (seconds since the epoch).
    pub(crate) fn issue(&self, now: i64) -> String {
        let mut raw = Vec::with_capacity(TIME_LEN + TAG_LEN);
        raw.extend_from_slice(&now.to_be_bytes());
        // `new` proved the backend can MAC; an empty tag would only make the nonce invalid.
        raw.extend_from_slice(&self.tag(now).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce at `now`; returns its issue time.
    pub(crate) fn check(&self, nonce: &str, now: i64) -> Result<i64, DpopErrorKind> {
        if nonce.len() != NONCE_LEN {
            return Err(DpopErrorKind::NonceInvalid);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| DpopErrorKind::NonceInvalid)?;
        let (time, tag) = raw.split_at(TIME_LEN);
        let time = i64::from_be_bytes(time.try_into().map_err(|_| DpopErrorKind::NonceInvalid)?);
        let expected = self.tag(time).ok_or(DpopErrorKind::NonceInvalid)?;
        if !bool::from(expected.as_slice().ct_eq(tag)) || time > now.saturating_add(FUTURE_SKEW) {
            return Err(DpopErrorKind::NonceInvalid);
        }
        if now.saturating_sub(time) >= self.lifetime {
            return Err(DpopErrorKind::NonceExpired);
        }
        Ok(time)
    }

    /// Whether a nonce issued at `issued` is past half its life at `now`: time to hand out
    /// the next one.
    pub(crate) fn refresh_due(&self, issued: i64, now: i64) -> bool {
        now.saturating_sub(issued).saturating_mul(2) >= self.lifetime
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn nonces(lifetime: u64) -> Nonces {
        Nonces::new(SECRET, Duration::from_secs(lifetime)).expect("nonces")
    }

    #[test]
    fn a_fresh_nonce_is_accepted_by_any_holder_of_the_secret() {
        let a = nonces(300);
        let b = nonces(300);
        let nonce = a.issue(1_000);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(
            nonce
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(b.check(&nonce, 1_000), Ok(1_000));
        assert_eq!(b.check(&nonce, 1_299), Ok(1_000));
        assert!(!b.refresh_due(1_000, 1_149) && b.refresh_due(1_000, 1_150));
    }

    #[test]
    fn expired_future_and_foreign_nonces_are_refused() {
        let a = nonces(300);
        let nonce = a.issue(1_000);
        assert_eq!(a.check(&nonce, 1_300), Err(DpopErrorKind::NonceExpired));
        assert_eq!(a.check(&nonce, 994), Err(DpopErrorKind::NonceInvalid));
        assert_eq!(a.check(&nonce, 995), Ok(1_000));
        let other = Nonces::new(&[7u8; 32], Duration::from_secs(300)).expect("nonces");
        assert_eq!(other.check(&nonce, 1_000), Err(DpopErrorKind::NonceInvalid));
    }

    #[test]
    fn tampered_nonces_are_refused() {
        let a = nonces(300);
        let nonce = a.issue(1_000);
        // Move the issue time forward, keeping the tag.
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).expect("b64");
        raw[7] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(a.check(&forged, 1_000), Err(DpopErrorKind::NonceInvalid));
        for bad in [
            "",
            "x",
            &nonce[1..],
            &format!("{nonce}A"),
            &"A".repeat(NONCE_LEN),
        ] {
            assert_eq!(
                a.check(bad, 1_000),
                Err(DpopErrorKind::NonceInvalid),
                "{bad}"
            );
        }
        let mut flipped = nonce.into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(a.check(&flipped, 1_000), Err(DpopErrorKind::NonceInvalid));
    }

    #[test]
    fn short_secrets_and_long_lifetimes_are_refused() {
        assert!(matches!(
            Nonces::new(&SECRET[..31], Duration::from_secs(60)),
            Err(ConfigError::HmacSecretTooShort { len: 31, min: 32 })
        ));
        assert!(Nonces::new(SECRET, Duration::from_secs(3601)).is_err());
        assert!(Nonces::new(SECRET, Duration::ZERO).is_err());
        assert!(!format!("{:?}", nonces(60)).contains("0123"));
    }
}
