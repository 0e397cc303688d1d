//! Compact JWS verification (RFC 7515) against a [`KeySet`].
//!
//! The header is read strictly and only for `alg`, `kid`, `typ` and `crit`. The key is chosen
//! by `kid` from the configured set and pins the algorithm; `jku`, `x5u`, `jwk` and `x5c` are
//! never looked at, so a token can neither name its own key nor make us fetch anything.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

use crate::error::{AuthError, ErrorKind};
use crate::json::{self, Value};
use crate::keyring::{Key, KeySet, Lookup, provider};

/// What the header's `typ` says, reduced to what the validator decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Typ {
    Absent,
    /// `at+jwt` or `application/at+jwt` (RFC 9068 §2.1), any case.
    AccessToken,
    /// `JWT` or `application/jwt`, any case.
    Jwt,
    Other,
}

/// A compact JWS whose header was read: what it claims, not yet verified.
pub(crate) struct Jws<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    alg: Algorithm,
    kid: Option<Box<str>>,
    typ: Typ,
}

/// Splits `token` and reads its header strictly: `alg` (exact names, never `none`), `kid`,
/// `typ`; any `crit` is refused. Nothing else in the header is looked at.
pub(crate) fn parse(token: &str) -> Result<Jws<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ErrorKind::Malformed.into());
    };
    let signing_input = &token[..header_b64.len() + 1 + payload.len()];

    let header = b64(header_b64)?;
    let [alg, kid, typ, crit] =
        json::read_object(&header, ["alg", "kid", "typ", "crit"]).map_err(json_error)?;
    if crit.is_some() {
        // No extension is understood here, so a critical one can never be honoured.
        return Err(ErrorKind::UnsupportedCritical.into());
    }
    let alg = alg
        .as_ref()
        .and_then(Value::as_str)
        .and_then(algorithm)
        .ok_or(AuthError::new(ErrorKind::UnsupportedAlgorithm))?;
    let kid = match kid {
        None => None,
        Some(Value::Str(kid)) => Some(Box::from(kid.as_ref())),
        Some(_) => return Err(ErrorKind::Malformed.into()),
    };
    let typ = match &typ {
        None => Typ::Absent,
        Some(Value::Str(t)) => classify_typ(t),
        Some(_) => Typ::Other,
    };
    Ok(Jws {
        signing_input,
        payload,
        signature,
        alg,
        kid,
        typ,
    })
}

impl Jws<'_> {
    /// What the header's `typ` says.
    pub(crate) fn typ(&self) -> Typ {
        self.typ
    }

    /// Finds the key (by `kid`, pinned to `alg`) in `keys` and checks the signature with it.
    pub(crate) fn verify<'k>(&self, keys: &'k KeySet) -> Result<&'k Key, AuthError> {
        let kid = self.kid.as_deref();
        let key = match keys.find(kid, self.alg) {
            Lookup::Found(key) => key,
            Lookup::AlgorithmMismatch => return Err(ErrorKind::AlgorithmMismatch.into()),
            Lookup::Unknown => return Err(ErrorKind::UnknownKey.into()),
        };
        let signature = b64(self.signature)?;
        let verifier = (provider().verifier_factory)(&key.algorithm(), key.decoding_key())
            .map_err(|_| AuthError::new(ErrorKind::InvalidSignature))?;
        if signature.is_empty()
            || verifier
                .verify(self.signing_input.as_bytes(), &signature)
                .is_err()
        {
            // A token naming a kid we do not have, tried against a key without a kid: what
            // failed is finding its key (and, with remote keys, that is what a refetch can
            // fix).
            let fell_back = kid.is_some() && key.kid().is_none();
            return Err(if fell_back {
                ErrorKind::UnknownKey
            } else {
                ErrorKind::InvalidSignature
            }
            .into());
        }
        Ok(key)
    }

    /// The decoded payload (not yet verified unless [`verify`](Self::verify) said so).
    pub(crate) fn payload(&self) -> Result<Vec<u8>, AuthError> {
        b64(self.payload)
    }
}

impl KeySet {
    /// Verifies the signature of a compact JWS and returns its decoded payload. Only the
    /// JOSE layer is checked (header, pinned algorithm, key, signature); the payload may be
    /// anything, and no claim, `typ` or time is looked at. Use a [`Validator`](crate::Validator)
    /// for access tokens.
    ///
    /// # Errors
    /// An [`AuthError`] saying why the JWS is refused.
    pub fn verify_signature(&self, jws: &str) -> Result<Vec<u8>, AuthError> {
        let jws = parse(jws)?;
        jws.verify(self)?;
        jws.payload()
    }
}

pub(crate) fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ErrorKind::Malformed.into())
}

pub(crate) fn json_error(err: serde_json::Error) -> AuthError {
    if json::is_duplicate(&err) {
        ErrorKind::DuplicateMember.into()
    } else {
        ErrorKind::Malformed.into()
    }
}

/// Maps a header `alg` to an algorithm this crate verifies. Exact, case-sensitive names
/// (RFC 7518 §3.1); `none` and everything else is refused.
fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        // RFC 9864 names the Ed25519 instance of EdDSA `Ed25519`.
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn classify_typ(typ: &str) -> Typ {
    let typ = strip_prefix_ignore_case(typ, "application/").unwrap_or(typ);
    if typ.eq_ignore_ascii_case("at+jwt") {
        Typ::AccessToken
    } else if typ.eq_ignore_ascii_case("jwt") {
        Typ::Jwt
    } else {
        Typ::Other
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_is_classified_case_insensitively() {
        assert_eq!(classify_typ("at+jwt"), Typ::AccessToken);
        assert_eq!(classify_typ("Application/AT+JWT"), Typ::AccessToken);
        assert_eq!(classify_typ("JWT"), Typ::Jwt);
        assert_eq!(classify_typ("application/jwt"), Typ::Jwt);
        assert_eq!(classify_typ("dpop+jwt"), Typ::Other);
        assert_eq!(classify_typ("application/"), Typ::Other);
        assert_eq!(classify_typ("é"), Typ::Other);
    }

    #[test]
    fn alg_names_are_exact() {
        for name in [
            "none", "None", "NONE", "nOnE", "rs256", "HS256 ", "ES512", "",
        ] {
            assert_eq!(algorithm(name), None, "{name}");
        }
        assert_eq!(algorithm("RS256"), Some(Algorithm::RS256));
        assert_eq!(algorithm("Ed25519"), Some(Algorithm::EdDSA));
    }
}
