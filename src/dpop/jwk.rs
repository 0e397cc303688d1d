//! The proof's embedded `jwk`: a public key only, pinned to the header's `alg`, and its
//! RFC 7638 thumbprint.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

use super::error::{DpopError, DpopErrorKind};
use crate::keyring::{Key, provider};

/// SHA-256 through the signature backend (either backend has it).
pub(crate) fn sha256(data: &[u8]) -> Option<[u8; 32]> {
    let digest =
        (provider().key_utils.compute_digest)(data, jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .ok()?;
    digest.try_into().ok()
}

/// The members of an embedded JWK that matter. Values are borrowed where the input has no
/// escapes.
#[derive(Deserialize)]
pub(crate) struct RawJwk<'a> {
    #[serde(borrow, default)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(rename = "use", borrow, default)]
    use_: Option<Cow<'a, str>>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    /// Any private or symmetric member, whatever its value (`null` included).
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A verified public key from a proof, and its thumbprint.
pub(crate) struct ProofKey {
    pub(crate) key: Key,
    /// base64url SHA-256 of the RFC 7638 members: the `jkt`.
    pub(crate) thumbprint: String,
}

/// The JWS `alg` names a proof may use: asymmetric signatures only. RFC 9864's `Ed25519` is
/// the Ed25519 instance of `EdDSA`.
pub(crate) fn asymmetric_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        _ => return None,
    })
}

/// The canonical JOSE name of an algorithm.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        _ => "unknown",
    }
}

/// base64url characters only, non-empty: safe to copy into JSON as it is.
fn is_b64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RawJwk<'_> {
    /// The key, pinned to `alg`, with its thumbprint. Private members, members that are not
    /// base64url, an `alg`, `use` or `key_ops` at odds with `alg`, and anything the key loader
    /// refuses (curve, lengths, RSA size) make it invalid.
    pub(crate) fn into_key(self, alg: Algorithm) -> Result<ProofKey, DpopError> {
        let invalid = DpopError::new(DpopErrorKind::InvalidKey);
        if self.d || self.p || self.q || self.dp || self.dq || self.qi || self.oth || self.k {
            return Err(DpopErrorKind::PrivateKey.into());
        }
        if self
            .alg
            .as_deref()
            .is_some_and(|a| asymmetric_algorithm(a) != Some(alg))
            || self.use_.as_deref().is_some_and(|u| u != "sig")
            || self
                .key_ops
                .as_ref()
                .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
        {
            return Err(invalid);
        }
        let member = |m: &Option<Cow<'_, str>>| -> Result<String, DpopError> {
            match m.as_deref() {
                Some(v) if is_b64url(v) => Ok(v.to_owned()),
                _ => Err(invalid),
            }
        };
        // RFC 7638 §3.2: the required members, in lexicographic order, no whitespace. Every
        // value is base64url or a fixed name, so nothing needs escaping.
        let members = match (self.kty.as_deref(), alg) {
            (Some("EC"), Algorithm::ES256 | Algorithm::ES384) => {
                let crv = match (self.crv.as_deref(), alg) {
                    (Some("P-256"), Algorithm::ES256) => "P-256",
                    (Some("P-384"), Algorithm::ES384) => "P-384",
                    _ => return Err(invalid),
                };
                let (x, y) = (member(&self.x)?, member(&self.y)?);
                format!(r#""crv":"{crv}","kty":"EC","x":"{x}","y":"{y}""#)
            }
            (Some("OKP"), Algorithm::EdDSA) => {
                if self.crv.as_deref() != Some("Ed25519") {
                    return Err(invalid);
                }
                let x = member(&self.x)?;
                format!(r#""crv":"Ed25519","kty":"OKP","x":"{x}""#)
            }
            (
                Some("RSA"),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => {
                let (e, n) = (member(&self.e)?, member(&self.n)?);
                // RFC 7518 §6.3.1: no leading zero octets, so that one key has one thumbprint.
                for value in [&e, &n] {
                    match URL_SAFE_NO_PAD.decode(value) {
                        Ok(bytes) if bytes.first().is_some_and(|&b| b != 0) => {}
                        _ => return Err(invalid),
                    }
                }
                format!(r#""e":"{e}","kty":"RSA","n":"{n}""#)
            }
            _ => return Err(invalid),
        };
        let thumbprint_input = format!("{{{members}}}");
        // The crate's own JWK loader checks lengths, curve points and RSA sizes, and pins the
        // key to `alg`.
        let jwk = format!(r#"{{{members},"alg":"{}"}}"#, algorithm_name(alg));
        let key = Key::from_jwk_json(jwk.as_bytes()).map_err(|_| invalid)?;
        if key.algorithm() != alg {
            return Err(invalid);
        }
        let digest = sha256(thumbprint_input.as_bytes()).ok_or(invalid)?;
        Ok(ProofKey {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(digest),
        })
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK (JSON text), pinned to `alg`.
///
/// # Errors
/// [`DpopErrorKind::PrivateKey`] for private members, [`DpopErrorKind::InvalidKey`] for a JWK
/// that is not a usable public key of `alg`, [`DpopErrorKind::Malformed`] or
/// [`DpopErrorKind::DuplicateMember`] for JSON that is not a JWK object.
pub fn jwk_thumbprint(jwk: &str, alg: Algorithm) -> Result<String, DpopError> {
    crate::json::check_strict(jwk.as_bytes()).map_err(super::error::json_error)?;
    let raw: RawJwk<'_> =
        serde_json::from_str(jwk).map_err(|_| DpopError::new(DpopErrorKind::InvalidKey))?;
    raw.into_key(alg).map(|k| k.thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc_7638_example_thumbprint() {
        let jwk = format!(
            r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#
        );
        assert_eq!(
            jwk_thumbprint(&jwk, Algorithm::RS256).as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        // Member order and extra members do not change it; the pinned algorithm must fit.
        let reordered = format!(r#"{{"e":"AQAB","kid":"x","n":"{RFC7638_N}","kty":"RSA"}}"#);
        assert_eq!(
            jwk_thumbprint(&reordered, Algorithm::PS256).as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(
            jwk_thumbprint(&jwk, Algorithm::PS256).map_err(|e| e.kind()),
            Err(DpopErrorKind::InvalidKey)
        );
    }

    #[test]
    fn rfc_9449_example_key_thumbprint() {
        // The key of RFC 9449's example proofs, and its `jkt` (§6.1, Figure 8).
        let jwk = r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;
        assert_eq!(
            jwk_thumbprint(jwk, Algorithm::ES256).as_deref(),
            Ok("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert!(jwk_thumbprint(jwk, Algorithm::ES384).is_err());
    }

    #[test]
    fn private_members_are_refused_whatever_their_value() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            for value in [r#""AAAA""#, "null", "[]"] {
                let jwk =
                    format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","{private}":{value}}}"#);
                assert_eq!(
                    jwk_thumbprint(&jwk, Algorithm::RS256).map_err(|e| e.kind()),
                    Err(DpopErrorKind::PrivateKey),
                    "{private}: {value}"
                );
            }
        }
    }

    #[test]
    fn members_that_could_escape_the_thumbprint_json_are_refused() {
        let x = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
        for y in [r#"a\",\"d\":\"x"#, "", "a b", "a=", "a+/"] {
            let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#);
            assert_eq!(
                jwk_thumbprint(&jwk, Algorithm::ES256).map_err(|e| e.kind()),
                Err(DpopErrorKind::InvalidKey),
                "{y}"
            );
        }
    }

    #[test]
    fn rsa_members_with_leading_zeros_are_refused() {
        let padded = URL_SAFE_NO_PAD
            .encode([&[0u8][..], &URL_SAFE_NO_PAD.decode(RFC7638_N).expect("n")].concat());
        let jwk = format!(r#"{{"kty":"RSA","n":"{padded}","e":"AQAB"}}"#);
        assert!(jwk_thumbprint(&jwk, Algorithm::RS256).is_err());
        let jwk = format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AAEAAQ"}}"#);
        assert!(jwk_thumbprint(&jwk, Algorithm::RS256).is_err());
    }

    #[test]
    fn alg_use_and_key_ops_must_agree() {
        let base =
            r#""kty":"OKP","crv":"Ed25519","x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE""#;
        for (extra, ok) in [
            ("", true),
            (r#","alg":"EdDSA""#, true),
            (r#","alg":"Ed25519""#, true),
            (r#","use":"sig","key_ops":["verify"]"#, true),
            (r#","alg":"ES256""#, false),
            (r#","use":"enc""#, false),
            (r#","key_ops":["encrypt"]"#, false),
        ] {
            let jwk = format!("{{{base}{extra}}}");
            assert_eq!(
                jwk_thumbprint(&jwk, Algorithm::EdDSA).is_ok(),
                ok,
                "{extra}"
            );
        }
        let jwk = format!("{{{base}}}");
        assert!(jwk_thumbprint(&jwk, Algorithm::ES256).is_err());
    }
}
