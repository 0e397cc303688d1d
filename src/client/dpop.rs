//! DPoP on the outgoing side (RFC 9449): the layer's key signs a fresh proof for every token
//! request and every call that carries a DPoP-bound token, and the servers' latest nonces
//! are remembered per origin for the next proofs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::error::{TokenError, TokenErrorKind};
use super::origin::Origin;
use crate::dpop::{DpopKey, ProofError};

/// The `DPoP` request header.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 §8, §9).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// Longest nonce remembered; a longer one is ignored.
const MAX_NONCE_LEN: usize = 1024;
/// Most origins whose nonce is remembered. Proofs only go to the token endpoint and the
/// allowed origins, so this is only a backstop.
const MAX_ORIGINS: usize = 64;

/// The layer's DPoP key and what the servers said about nonces.
pub(crate) struct DpopState {
    key: DpopKey,
    /// The latest `DPoP-Nonce` each origin sent.
    nonces: Mutex<HashMap<Origin, Box<str>>>,
}

impl DpopState {
    pub(crate) fn new(key: DpopKey) -> Self {
        DpopState {
            key,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A fresh proof (the value of the `DPoP` header, marked sensitive) for a `method` request
    /// to the absolute `uri`: `htu` is its scheme, authority (without userinfo) and path;
    /// `ath` hashes `access_token` when given (calls to an API; not token requests); `nonce`
    /// is the latest one of the origin, if any.
    pub(crate) fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, TokenError> {
        let (Some(htu), Some(origin)) = (htu(uri), Origin::of(uri)) else {
            return Err(TokenError::new(TokenErrorKind::Proof)
                .with_detail("the request's URI is not an absolute http(s) URI"));
        };
        let mut proof = self.key.proof(method, &htu);
        if let Some(token) = access_token {
            proof = proof.access_token(token);
        }
        if let Some(nonce) = self.nonce(&origin) {
            proof = proof.nonce(nonce);
        }
        let signed = proof.sign().map_err(|e| {
            let detail = match e {
                ProofError::Random => "no randomness for its jti",
                _ => "the key could not sign it",
            };
            TokenError::new(TokenErrorKind::Proof).with_detail(detail)
        })?;
        let mut value = HeaderValue::try_from(signed).map_err(|_| {
            TokenError::new(TokenErrorKind::Proof).with_detail("the proof is no header value")
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Remembers the `DPoP-Nonce` of a response from `origin`, if it sent a well-formed one
    /// (RFC 9449 §8: `1*NQCHAR`); says whether it did.
    pub(crate) fn remember(&self, origin: &Origin, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(DPOP_NONCE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let nonce = value.as_bytes();
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || !nonce.iter().all(|&b| is_nqchar(b))
        {
            tracing::debug!(
                target: "bearer_guard::client",
                reason = "invalid_dpop_nonce",
                origin = %origin,
                "ignored a DPoP-Nonce that is not 1*NQCHAR (or longer than 1 KiB)"
            );
            return false;
        }
        // NQCHAR is ASCII.
        let Ok(nonce) = std::str::from_utf8(nonce) else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(origin) {
            nonces.clear();
        }
        nonces.insert(origin.clone(), nonce.into());
        true
    }

    fn nonce(&self, origin: &Origin) -> Option<String> {
        let nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        nonces.get(origin).map(|n| n.to_string())
    }
}

impl fmt::Debug for DpopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopState")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// `NQCHAR = %x21 / %x23-5B / %x5D-7E` (RFC 9449 §8.1).
fn is_nqchar(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// `scheme://host[:port]/path` of an absolute URI: no userinfo, query or fragment.
fn htu(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    Some(format!("{scheme}://{host_port}{}", uri.path()))
}

/// Whether a resource server's `WWW-Authenticate` asks for a DPoP nonce (RFC 9449 §9:
/// `DPoP error="use_dpop_nonce"`).
pub(crate) fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.to_ascii_lowercase();
        // The code only exists for the DPoP scheme; its parameter may be quoted or not.
        value.contains("dpop")
            && (value.contains("error=\"use_dpop_nonce\"") || value.contains("error=use_dpop_nonce"))
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    use super::*;

    fn claims(proof: &HeaderValue) -> Value {
        let text = proof.to_str().expect("ascii");
        let payload = text.split('.').nth(1).expect("payload");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
    }

    fn state() -> DpopState {
        DpopState::new(DpopKey::generate().expect("key"))
    }

    #[test]
    fn a_proof_names_the_request_without_query_fragment_or_userinfo_and_hashes_the_token() {
        let dpop = state();
        let uri: Uri = "https://u:p@API.example:8443/a/b?x=1".parse().expect("uri");
        let proof = dpop
            .proof(&Method::PUT, &uri, Some("tok-1"))
            .expect("proof");
        assert!(proof.is_sensitive());
        let c = claims(&proof);
        assert_eq!(c["htm"], "PUT");
        assert_eq!(c["htu"], "https://API.example:8443/a/b");
        // base64url(SHA-256("tok-1")).
        let ath = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(b"tok-1"));
        assert_eq!(c["ath"], ath);
        assert!(c.get("nonce").is_none());
        // Token requests carry no `ath`; every proof has its own `jti`.
        let token_request = dpop
            .proof(&Method::POST, &"https://issuer.example/token".parse().expect("uri"), None)
            .expect("proof");
        let t = claims(&token_request);
        assert!(t.get("ath").is_none());
        assert_ne!(t["jti"], c["jti"]);
        // A relative URI has no htu.
        let err = dpop
            .proof(&Method::GET, &"/relative".parse().expect("uri"), None)
            .expect_err("relative");
        assert_eq!(err.kind(), TokenErrorKind::Proof);
    }

    #[test]
    fn nonces_are_remembered_per_origin_and_only_when_well_formed() {
        let dpop = state();
        let api: Uri = "https://api.example/x".parse().expect("uri");
        let other: Uri = "https://other.example/x".parse().expect("uri");
        let origin = Origin::of(&api).expect("origin");
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, HeaderValue::from_static("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
        assert!(dpop.remember(&origin, &headers));
        let with = claims(&dpop.proof(&Method::GET, &api, Some("t")).expect("proof"));
        assert_eq!(with["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
        let without = claims(&dpop.proof(&Method::GET, &other, Some("t")).expect("proof"));
        assert!(without.get("nonce").is_none());
        // Not NQCHAR (a quote, a space), too long, or two of them: ignored, the last kept.
        for bad in ["a\"b", "a b", &"n".repeat(MAX_NONCE_LEN + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(DPOP_NONCE, HeaderValue::from_str(bad).expect("value"));
            assert!(!dpop.remember(&origin, &headers), "{bad}");
        }
        let mut two = HeaderMap::new();
        two.append(DPOP_NONCE, HeaderValue::from_static("one"));
        two.append(DPOP_NONCE, HeaderValue::from_static("two"));
        assert!(!dpop.remember(&origin, &two));
        assert!(!dpop.remember(&origin, &HeaderMap::new()));
        let kept = claims(&dpop.proof(&Method::GET, &api, Some("t")).expect("proof"));
        assert_eq!(kept["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
    }

    #[test]
    fn a_nonce_challenge_is_recognised_in_any_spelling() {
        let asks = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            asks_for_nonce(&headers)
        };
        assert!(asks(&[
            "Bearer",
            r#"DPoP error="use_dpop_nonce", error_description="nonce", algs="ES256""#
        ]));
        assert!(asks(&["dpop error=use_dpop_nonce"]));
        assert!(!asks(&[r#"DPoP error="invalid_dpop_proof", algs="ES256""#]));
        assert!(!asks(&[r#"Bearer error="invalid_token""#]));
        assert!(!asks(&[]));
    }

    #[test]
    fn debug_shows_the_thumbprint_only() {
        let dpop = state();
        let shown = format!("{dpop:?}");
        assert!(shown.contains(dpop.key().thumbprint()), "{shown}");
        assert!(!shown.contains("\"d\""), "{shown}");
    }
}
