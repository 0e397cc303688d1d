//! The synchronous checks of a proof (RFC 9449 §4.3): everything but the replay store.
//!
//! Order: what costs nothing first (count, size, characters, header), then the signature,
//! then the claims against the request, and last what binds the proof to a token. Only a
//! proof that passed all of them reaches the replay store.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq as _;

use super::error::{DpopError, DpopErrorKind, json_error};
use super::htu::{self, Origin};
use super::jwk::{RawJwk, asymmetric_algorithm, sha256};
use super::nonce::Nonces;
use super::replay::ReplayKey;
use crate::json::{self, Value};
use crate::keyring::provider;

/// The parts of an HTTP request a proof is checked against.
#[derive(Clone, Copy, Debug)]
pub struct ProofRequest<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a http::Uri,
    pub(crate) headers: &'a http::HeaderMap,
}

impl<'a> ProofRequest<'a> {
    /// The request's method, URI (as received: origin-form or absolute) and headers (the
    /// `DPoP` header, and `Host` when the origin comes from the request).
    #[must_use]
    pub fn new(method: &'a http::Method, uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Self {
        ProofRequest {
            method,
            uri,
            headers,
        }
    }
}

impl<'a, B> From<&'a http::Request<B>> for ProofRequest<'a> {
    fn from(req: &'a http::Request<B>) -> Self {
        ProofRequest::new(req.method(), req.uri(), req.headers())
    }
}

impl<'a> From<&'a http::request::Parts> for ProofRequest<'a> {
    fn from(parts: &'a http::request::Parts) -> Self {
        ProofRequest::new(&parts.method, &parts.uri, &parts.headers)
    }
}

/// The settings the checks run with.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) algorithms: Vec<jsonwebtoken::Algorithm>,
    pub(crate) max_proof_len: usize,
    /// Seconds an `iat` may lie in the past.
    pub(crate) max_age: i64,
    /// Seconds an `iat` may lie in the future.
    pub(crate) future_leeway: i64,
    pub(crate) nonces: Option<Nonces>,
    pub(crate) origin: Origin,
}

/// What the proof is checked against besides the request.
#[derive(Clone, Copy)]
pub(crate) enum Binding<'a> {
    /// At a protected resource: `ath` must hash this token, the key must hash to `jkt`.
    AccessToken { token: &'a str, jkt: &'a str },
    /// At a token endpoint: no access token; the key must hash to `jkt` when given. Built by
    /// `Dpop::verify_token_request` (feature `token-endpoint`) and the RFC's test vectors.
    #[cfg_attr(not(any(test, feature = "token-endpoint")), allow(dead_code))]
    TokenRequest { jkt: Option<&'a str> },
}

/// A proof that passed every check but the replay store.
pub(crate) struct Checked {
    pub(crate) jkt: String,
    pub(crate) jti: Box<str>,
    pub(crate) iat: i64,
    pub(crate) nonce_refresh_due: bool,
    pub(crate) replay_key: ReplayKey,
    /// How long the replay store must remember the proof.
    pub(crate) replay_ttl_secs: u64,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    jwk: Option<&'a serde_json::value::RawValue>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// The one `DPoP` header's value.
fn single_proof<'r>(req: &ProofRequest<'r>) -> Result<&'r HeaderValue, DpopError> {
    let mut values = req.headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value),
        (None, _) => Err(DpopErrorKind::MissingProof.into()),
        (Some(_), Some(_)) => Err(DpopErrorKind::MultipleProofs.into()),
    }
}

/// `typ` is `dpop+jwt`, with or without `application/`, in any case (RFC 7515 §4.1.9).
fn is_dpop_type(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("dpop+jwt")
}

fn b64(part: &str) -> Result<Vec<u8>, DpopError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopErrorKind::Malformed.into())
}

fn string_claim<'v>(
    value: &'v Option<Value<'_>>,
    name: &'static str,
) -> Result<&'v str, DpopError> {
    match value {
        None | Some(Value::Null) => Err(DpopError::claim(DpopErrorKind::MissingClaim, name)),
        Some(Value::Str(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(DpopError::claim(DpopErrorKind::InvalidClaim, name)),
    }
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// An optional NumericDate claim (`exp`, `nbf`): absent, or a JSON number of seconds, a
/// fraction rounded the way that makes its check stricter. Any other JSON value, `null`
/// included, is [`DpopErrorKind::InvalidClaim`].
fn optional_date(
    value: Option<Value<'_>>,
    name: &'static str,
    round: Round,
) -> Result<Option<i64>, DpopError> {
    match value {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(i)),
        Some(Value::Float(f)) if f.is_finite() => Ok(Some(match round {
            Round::Down => f.floor() as i64,
            Round::Up => f.ceil() as i64,
        })),
        Some(_) => Err(DpopError::claim(DpopErrorKind::InvalidClaim, name)),
    }
}

/// Constant-time string equality (lengths are not secret).
fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Runs every check but the replay store, at `now` (seconds since the epoch).
pub(crate) fn check(
    inner: &Rules,
    req: &ProofRequest<'_>,
    binding: Binding<'_>,
    now: i64,
) -> Result<Checked, DpopError> {
    let value = single_proof(req)?;
    if value.len() > inner.max_proof_len {
        return Err(DpopErrorKind::ProofTooLarge.into());
    }
    // A compact JWS: base64url and dots only (a subset of `token68`).
    let proof = value.as_bytes();
    if !proof
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(DpopErrorKind::Malformed.into());
    }
    let proof = std::str::from_utf8(proof).map_err(|_| DpopErrorKind::Malformed)?;
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopErrorKind::Malformed.into());
    };

    // Header: strict JSON (no repeated member at any depth), then its members.
    let header_json = b64(header_b64)?;
    json::check_strict(&header_json).map_err(json_error)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_json).map_err(|_| DpopErrorKind::Malformed)?;
    if !header.typ.as_deref().is_some_and(is_dpop_type) {
        return Err(DpopErrorKind::InvalidType.into());
    }
    if header.crit {
        return Err(DpopErrorKind::UnsupportedCritical.into());
    }
    let alg = header
        .alg
        .as_deref()
        .and_then(asymmetric_algorithm)
        .filter(|alg| inner.algorithms.contains(alg))
        .ok_or(DpopErrorKind::UnsupportedAlgorithm)?;
    let jwk = header.jwk.ok_or(DpopErrorKind::MissingKey)?;
    let key = serde_json::from_str::<RawJwk<'_>>(jwk.get())
        .map_err(|_| DpopErrorKind::InvalidKey)?
        .into_key(alg)?;

    // Signature, with the key from the header, pinned to the allowed `alg`.
    let signature = b64(signature_b64)?;
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    let verifier = (provider().verifier_factory)(&alg, key.key.decoding_key())
        .map_err(|_| DpopErrorKind::InvalidKey)?;
    if signature.is_empty()
        || verifier
            .verify(signing_input.as_bytes(), &signature)
            .is_err()
    {
        return Err(DpopErrorKind::InvalidSignature.into());
    }

    // Claims: strict JSON, required members of the right type.
    let payload = b64(payload_b64)?;
    let [jti, htm, htu_claim, iat, ath, nonce, exp, nbf] = json::read_object(
        &payload,
        ["jti", "htm", "htu", "iat", "ath", "nonce", "exp", "nbf"],
    )
    .map_err(json_error)?;
    let jti = string_claim(&jti, "jti")?;
    let htm = string_claim(&htm, "htm")?;
    let htu_claim = string_claim(&htu_claim, "htu")?;
    let iat = match iat {
        None | Some(Value::Null) => {
            return Err(DpopError::claim(DpopErrorKind::MissingClaim, "iat"));
        }
        Some(Value::Int(i)) => i,
        Some(Value::Float(f)) if f.is_finite() => f.floor() as i64,
        Some(_) => return Err(DpopError::claim(DpopErrorKind::InvalidClaim, "iat")),
    };
    let exp = optional_date(exp, "exp", Round::Down)?;
    let nbf = optional_date(nbf, "nbf", Round::Up)?;

    // The request.
    if htm != req.method.as_str() {
        return Err(DpopErrorKind::MethodMismatch.into());
    }
    let target = inner
        .origin
        .request_uri(req.uri, req.headers)
        .ok_or(DpopErrorKind::UriMismatch)?;
    match htu::normalize(htu_claim) {
        Some(claimed) if claimed == target => {}
        _ => return Err(DpopErrorKind::UriMismatch.into()),
    }

    // Time: `iat` within the window, and the server's nonce when nonces are on.
    if iat < now.saturating_sub(inner.max_age) {
        return Err(DpopErrorKind::TooOld.into());
    }
    if iat > now.saturating_add(inner.future_leeway) {
        return Err(DpopErrorKind::IssuedInFuture.into());
    }
    // RFC 9449 defines neither `exp` nor `nbf` for a proof, but a proof is a JWT: when it
    // has them, it is not accepted past its `exp` or before its `nbf` (RFC 7519 §4.1.4,
    // §4.1.5), with the leeway allowed for the client's clock on `iat`.
    if exp.is_some_and(|exp| now.saturating_sub(inner.future_leeway) >= exp) {
        return Err(DpopError::claim(DpopErrorKind::Expired, "exp"));
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(inner.future_leeway)) {
        return Err(DpopError::claim(DpopErrorKind::NotYetValid, "nbf"));
    }
    let mut nonce_refresh_due = false;
    if let Some(nonces) = &inner.nonces {
        let nonce = match &nonce {
            None | Some(Value::Null) => return Err(DpopErrorKind::NonceMissing.into()),
            Some(Value::Str(n)) => n,
            Some(_) => return Err(DpopErrorKind::NonceInvalid.into()),
        };
        let issued = nonces.check(nonce, now)?;
        nonce_refresh_due = nonces.refresh_due(issued, now);
    }

    // The binding: `ath` to the token, the key to the token's (or code's) `jkt`.
    let expected_jkt = match binding {
        Binding::AccessToken { token, jkt } => {
            let ath = string_claim(&ath, "ath")?;
            let hash = sha256(token.as_bytes()).ok_or(DpopErrorKind::AccessTokenHashMismatch)?;
            if !same(ath, &URL_SAFE_NO_PAD.encode(hash)) {
                return Err(DpopErrorKind::AccessTokenHashMismatch.into());
            }
            Some(jkt)
        }
        Binding::TokenRequest { jkt } => jkt,
    };
    if expected_jkt.is_some_and(|jkt| !same(jkt, &key.thumbprint)) {
        return Err(DpopErrorKind::KeyMismatch.into());
    }

    // The replay key: the proof's `jti` for this key, hashed (never stored raw).
    let mut id = Vec::with_capacity(32 + key.thumbprint.len() + jti.len());
    id.extend_from_slice(b"bearer-guard DPoP jti v1\0");
    id.extend_from_slice(key.thumbprint.as_bytes());
    id.push(0);
    id.extend_from_slice(jti.as_bytes());
    let digest = sha256(&id).ok_or(DpopErrorKind::ReplayUnavailable)?;
    // Remembered until the proof's `iat` leaves the window (plus the second `now` rounds
    // away).
    let until = iat.saturating_add(inner.max_age).saturating_add(1);
    let replay_ttl_secs = u64::try_from(until.saturating_sub(now)).unwrap_or(0).max(1);
    Ok(Checked {
        jkt: key.thumbprint,
        jti: jti.into(),
        iat,
        nonce_refresh_due,
        replay_key: ReplayKey::new(digest),
        replay_ttl_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_type_is_matched_as_a_media_type() {
        for ok in [
            "dpop+jwt",
            "DPoP+JWT",
            "application/dpop+jwt",
            "Application/DPOP+jwt",
        ] {
            assert!(is_dpop_type(ok), "{ok}");
        }
        for bad in [
            "",
            "jwt",
            "at+jwt",
            "application/",
            "dpop+jwt ",
            "x-dpop+jwt",
            "é",
        ] {
            assert!(!is_dpop_type(bad), "{bad}");
        }
    }
}
