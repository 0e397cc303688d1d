//! Request parameters: `application/x-www-form-urlencoded` bodies and query strings, the JSON
//! body of simple token clients, and client credentials (RFC 6749 §2.3.1, §3.1, RFC 7617).

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::OAuthError;

/// A secret (client secret, password, code, verifier, token): never printed.
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The parameters of one request, in order. A parameter without a value is as if omitted
/// (RFC 6749 §3.1); unknown ones are kept and ignored by whoever reads them (§3.2).
#[derive(Default)]
pub struct Params(Vec<(String, String)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be secrets.
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Params {
    /// `a=1&b=2`, form-decoded; malformed encoding is `invalid_request`.
    pub fn from_form(body: &[u8]) -> Result<Params, OAuthError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
        let mut params = Vec::new();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(name), Some(value)) = (form_decode(name), form_decode(value)) else {
                return Err(OAuthError::invalid_request("malformed form encoding"));
            };
            if !value.is_empty() {
                params.push((name, value));
            }
        }
        Ok(Params(params))
    }

    /// A form body, after checking that the request says it is one.
    pub fn from_form_request(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
        if media_type(headers)? != MediaType::Form {
            return Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        Params::from_form(body)
    }

    /// The token endpoint's body: a form, or the JSON object some client-credentials clients
    /// send (`client_id`, `client_secret`, `scope`, `resource`; `grant_type` defaults to
    /// `client_credentials`).
    pub fn from_token_request(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
        match media_type(headers)? {
            MediaType::Form => Params::from_form(body),
            MediaType::Json => Params::from_json(body),
            MediaType::Other => Err(OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded or application/json",
            )),
        }
    }

    fn from_json(body: &[u8]) -> Result<Params, OAuthError> {
        #[derive(Deserialize)]
        struct Json {
            grant_type: Option<String>,
            client_id: Option<String>,
            client_secret: Option<String>,
            scope: Option<String>,
            resource: Option<OneOrMany>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        // serde_json refuses duplicate members of the struct, and wrong types.
        let json: Json = serde_json::from_slice(body).map_err(|_| {
            OAuthError::invalid_request("the body must be a JSON object of string members")
        })?;
        let mut params = vec![(
            "grant_type".to_owned(),
            json.grant_type
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| "client_credentials".to_owned()),
        )];
        for (name, value) in [
            ("client_id", json.client_id),
            ("client_secret", json.client_secret),
            ("scope", json.scope),
        ] {
            params.extend(value.map(|v| (name.to_owned(), v)));
        }
        let resources = match json.resource {
            None => Vec::new(),
            Some(OneOrMany::One(r)) => vec![r],
            Some(OneOrMany::Many(r)) => r,
        };
        params.extend(resources.into_iter().map(|r| ("resource".to_owned(), r)));
        params.retain(|(_, v)| !v.is_empty());
        Ok(Params(params))
    }

    /// The one value of `name`; a repeated parameter is `invalid_request` (§3.1).
    pub fn one(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name);
        match (values.next(), values.next()) {
            (first, None) => Ok(first.map(|(_, v)| v.as_str())),
            _ => Err(OAuthError::invalid_request(format!("{name} is repeated"))),
        }
    }

    /// The one value of `name`, which must be there.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.one(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }

    /// The value of a secret parameter, taken out of the request.
    pub fn take_secret(&mut self, name: &str) -> Result<Option<Secret>, OAuthError> {
        self.one(name)?;
        let at = self.0.iter().position(|(n, _)| n == name);
        Ok(at.map(|i| Secret(self.0.remove(i).1)))
    }

    /// The value of a required secret parameter, taken out of the request:
    /// `invalid_request` when it is missing, as [`required`](Self::required).
    pub fn required_secret(&mut self, name: &str) -> Result<Secret, OAuthError> {
        self.take_secret(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }

    /// Every value of a repeatable parameter (`resource`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Form,
    Json,
    Other,
}

fn media_type(headers: &HeaderMap) -> Result<MediaType, OAuthError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().unwrap_or(""),
        _ => return Err(OAuthError::invalid_request("one Content-Type is required")),
    };
    let media = value.split(';').next().unwrap_or("").trim();
    Ok(
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            MediaType::Form
        } else if media.eq_ignore_ascii_case("application/json") {
            MediaType::Json
        } else {
            MediaType::Other
        },
    )
}

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client authenticated (RFC 8414 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Basic`.
    Basic,
    /// `client_id` and `client_secret` in the body.
    Post,
    /// A public client: `client_id` only.
    None,
    /// `client_assertion` (RFC 7523 §2.2): a JWT signed by the client's key.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// What the request says about its client, from exactly one method (§2.3.1). The secret (or
/// the client assertion, for `private_key_jwt`; `client_id` is then optional, and empty when
/// absent) is taken out of the parameters.
#[derive(Debug)]
pub struct Credentials {
    pub method: AuthMethod,
    pub client_id: String,
    pub secret: Option<Secret>,
}

/// A request about one token (RFC 7009 §2.1, RFC 7662 §2.1): its form, the client's
/// credentials, and the `token` parameter (required).
pub fn token_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Credentials, Secret), OAuthError> {
    let mut params = Params::from_form_request(headers, body)?;
    let credentials = credentials(headers, &mut params)?;
    let token = params.required_secret("token")?;
    Ok((params, credentials, token))
}

/// The client's credentials. No client id at all, or a malformed Authorization header, is
/// `invalid_client`.
pub fn credentials(headers: &HeaderMap, params: &mut Params) -> Result<Credentials, OAuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let header = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value),
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
    };
    let body_secret = params.take_secret("client_secret")?;
    let body_id = params.one("client_id")?.map(str::to_owned);
    let assertion = params.take_secret("client_assertion")?;
    let assertion_type = params.one("client_assertion_type")?.map(str::to_owned);
    if assertion.is_some() || assertion_type.is_some() {
        if header.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: client_assertion, Authorization \
                 header or client_secret",
            ));
        }
        // RFC 7521 §4.2: an assertion of another type, or none, fails authentication.
        return match (assertion, assertion_type.as_deref()) {
            (Some(assertion), Some(JWT_BEARER)) => Ok(Credentials {
                method: AuthMethod::PrivateKeyJwt,
                client_id: body_id.unwrap_or_default(),
                secret: Some(assertion),
            }),
            _ => Err(OAuthError::invalid_client()),
        };
    }

    let Some(header) = header else {
        return match (body_id, body_secret) {
            (Some(client_id), secret) => Ok(Credentials {
                method: if secret.is_some() {
                    AuthMethod::Post
                } else {
                    AuthMethod::None
                },
                client_id,
                secret,
            }),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
            (None, None) => Err(OAuthError::invalid_client()),
        };
    };
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: Authorization header or client_secret",
        ));
    }
    let header = header.to_str().map_err(|_| OAuthError::invalid_client())?;
    let (client_id, secret) = parse_basic(header).ok_or_else(OAuthError::invalid_client)?;
    if body_id.is_some_and(|id| id != client_id) {
        return Err(OAuthError::invalid_request(
            "client_id differs from the Authorization header's",
        ));
    }
    Ok(Credentials {
        method: AuthMethod::Basic,
        client_id,
        secret: Some(secret),
    })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 7617, RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Option<(String, Secret)> {
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim_matches(' ')).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, Secret(secret)))
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, `%XX` a
/// byte; the result must be UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%3A%2b").as_deref(), Some("a b c:+"));
        assert_eq!(form_decode("%"), None);
        assert_eq!(form_decode("%+1"), None);
        assert_eq!(form_decode("%ff"), None);
        assert_eq!(form_decode("caf%C3%A9").as_deref(), Some("café"));
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_dropped() {
        let params = Params::from_form(b"a=1&a=2&b=&c=3").expect("form");
        assert!(params.one("a").is_err());
        assert_eq!(params.one("b").ok().flatten(), None);
        assert_eq!(params.one("c").ok().flatten(), Some("3"));
        assert_eq!(params.all("a"), ["1", "2"]);
    }
}
