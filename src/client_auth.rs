//! Client authentication at an authorization server's endpoints (RFC 6749 §2.3.1), for the
//! outgoing client's token requests and for token introspection: the [`ClientSecret`] that
//! never prints.
//
// Inside: the `client_secret_basic` header and `application/x-www-form-urlencoded`
// encoding.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use http::header::InvalidHeaderValue;
use zeroize::Zeroize;

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
