//! Client authentication at an authorization server's endpoints, for the outgoing client's
//! token requests and for token introspection: the [`ClientSecret`] that never prints
//! (`client_secret_basic`, `client_secret_post`, RFC 6749 §2.3.1), and the [`PrivateKeyJwt`]
//! that signs a fresh client assertion for each request (`private_key_jwt`, RFC 7523 §2.2
//! with the audience rule of draft-ietf-oauth-rfc7523bis: `aud` is the issuer identifier).
//
// Inside: the `client_secret_basic` header, the assertion, and
// `application/x-www-form-urlencoded` encoding.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use http::header::InvalidHeaderValue;
use zeroize::Zeroize;

mod private_key_jwt;

pub use self::private_key_jwt::PrivateKeyJwt;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client secret. It never prints: `Debug` and `Display` show `[redacted]`.
///
/// There is no accessor, no `PartialEq` and no serialisation; the secret leaves this type
/// only to authenticate at the authorization server. Its memory is zeroed when it is
/// dropped (the copies the HTTP stack makes of a request are out of reach of this type).
///
/// ```
/// use bearer_guard::client_auth::ClientSecret;
///
/// let secret = ClientSecret::new("s3cr3t-value");
/// assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
/// ```
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for ClientSecret {
    fn from(secret: String) -> Self {
        ClientSecret(secret)
    }
}

impl From<&str> for ClientSecret {
    fn from(secret: &str) -> Self {
        ClientSecret(secret.to_owned())
    }
}

impl Drop for ClientSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1), marked sensitive;
/// the intermediate copies of the secret are zeroed.
///
/// # Errors
/// Never in practice: base64 is always a valid header value.
pub(crate) fn basic_authorization(
    client_id: &str,
    secret: &ClientSecret,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut pair = String::new();
    form_encode(&mut pair, client_id);
    pair.push(':');
    form_encode(&mut pair, secret.expose());
    let mut value = String::with_capacity(6 + pair.len() * 4 / 3 + 4);
    value.push_str("Basic ");
    STANDARD.encode_string(pair.as_bytes(), &mut value);
    pair.zeroize();
    let header = HeaderValue::from_str(&value);
    value.zeroize();
    let mut header = header?;
    header.set_sensitive(true);
    Ok(header)
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub(crate) fn form_encode(out: &mut String, value: &str) {
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;

    use super::*;

    #[test]
    fn basic_form_encodes_id_and_secret_and_is_sensitive() {
        let header =
            basic_authorization("svc:2 é", &ClientSecret::new("p@ss word:+")).expect("header");
        assert!(header.is_sensitive());
        let encoded = header
            .to_str()
            .expect("ascii")
            .strip_prefix("Basic ")
            .expect("Basic");
        let pair = STANDARD.decode(encoded).expect("base64");
        assert_eq!(pair, b"svc%3A2+%C3%A9:p%40ss+word%3A%2B");
        assert!(!format!("{header:?}").contains(encoded));
    }

    const RFC8037_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k1",
        "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn part(jws: &str, i: usize) -> serde_json::Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(i).expect("part"))
            .expect("b64");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn assertions_carry_the_rfc7523_claims_and_verify_with_the_public_key() {
        let key = PrivateKeyJwt::from_jwk(RFC8037_JWK).expect("key");
        let a = key
            .assertion("svc", "https://issuer.example")
            .expect("signed");
        let b = key
            .assertion("svc", "https://issuer.example")
            .expect("signed");
        let (header, claims) = (part(&a, 0), part(&a, 1));
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "svc");
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["aud"], "https://issuer.example");
        assert_eq!(
            claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
            60
        );
        assert_ne!(claims["jti"], part(&b, 1)["jti"], "a fresh jti each time");
        let jwks = format!(r#"{{"keys":[{}]}}"#, key.public_jwk());
        let validator = crate::Validator::builder()
            .issuer("svc")
            .audience("https://issuer.example")
            .keys(crate::KeySet::from_jwks_json(jwks.as_bytes()).expect("jwks"))
            .profile(crate::Profile::Jwt)
            .build()
            .expect("validator");
        assert!(validator.validate(&a).is_ok());
        let other = PrivateKeyJwt::from_jwk(&RFC8037_JWK.replace("nWGxne", "nWGxnf"));
        // Another private key under the same public members: refused.
        assert!(other.is_err());
    }

    #[test]
    fn only_asymmetric_private_keys_of_a_fitting_algorithm_are_taken() {
        for bad in [
            r#"{"kty":"oct","k":"c2VjcmV0"}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            r#"{"kty":"EC","crv":"P-521","d":"AA","x":"AA","y":"AA"}"#,
            "not json",
        ] {
            assert!(PrivateKeyJwt::from_jwk(bad).is_err(), "{bad}");
        }
        let with_alg = |alg: &str| {
            PrivateKeyJwt::from_jwk(
                &RFC8037_JWK.replace(r#""kid""#, &format!(r#""alg":"{alg}","kid""#)),
            )
        };
        assert!(with_alg("EdDSA").is_ok());
        assert!(with_alg("HS256").is_err());
        assert!(with_alg("ES256").is_err());
        let key = PrivateKeyJwt::from_jwk(RFC8037_JWK).expect("key");
        assert!(key.clone().with_algorithm(Algorithm::HS256).is_err());
        assert!(key.with_algorithm(Algorithm::EdDSA).is_ok());
        assert!(
            PrivateKeyJwt::from_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }

    #[test]
    fn the_private_key_never_prints() {
        let key = PrivateKeyJwt::from_jwk(RFC8037_JWK).expect("key");
        let shown = format!("{key:?} {key:#?} {}", key.public_jwk());
        assert!(!shown.contains("nWGxne"), "{shown}");
    }

    #[test]
    fn secret_never_prints() {
        let secret = ClientSecret::from("hunter2");
        for shown in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
        ] {
            assert_eq!(shown, "[redacted]");
        }
    }
}
