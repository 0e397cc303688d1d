//! Who the client is and what it asks for: [`ClientCredentials`], [`ClientSecret`],
//! [`AuthMethod`], and the per-request [`TokenTarget`].

use std::fmt;

use http::Uri;

use crate::client_auth::{ClientSecret, PrivateKeyJwt};
use crate::error::ConfigError;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `client_secret_basic`: `Authorization: Basic` with the form-encoded id and secret. The
    /// default, and what RFC 6749 asks servers to support.
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `private_key_jwt` (RFC 7523 §2.2): a fresh assertion signed by the client's private
    /// key in the form body; for credentials made by
    /// [`ClientCredentials::private_key_jwt`].
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 8414 name: `client_secret_basic`, `client_secret_post` or
    /// `private_key_jwt`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The client-credentials grant (RFC 6749 §4.4) a client uses to obtain its access tokens:
/// the token endpoint, the client's id and secret, how it authenticates, and the default
/// `scope` and RFC 8707 `resource` of its tokens.
///
/// `Debug` shows everything but the secret.
///
/// # Example
/// ```
/// use bearer_guard::client::{AuthMethod, ClientCredentials};
///
/// let credentials = ClientCredentials::builder(
///     "https://issuer.example/oauth/token",
///     "billing-service",
///     "s3cr3t-from-the-environment",
/// )
/// .scope("read:transactions")
/// .resource("https://api.example")
/// .auth_method(AuthMethod::ClientSecretBasic)
/// .build()?;
/// assert!(!format!("{credentials:?}").contains("s3cr3t"));
/// # Ok::<(), bearer_guard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    pub(crate) token_endpoint: Uri,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    /// The `private_key_jwt` key and the issuer identifier its assertions are for.
    pub(crate) private_key: Option<(PrivateKeyJwt, String)>,
    pub(crate) auth_method: AuthMethod,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
}

impl ClientCredentials {
    /// Starts the configuration of a client that authenticates by `private_key_jwt`
    /// (RFC 7523 §2.2): each token request carries a fresh assertion signed by `key`, whose
    /// `aud` is `issuer`, the authorization server's **issuer identifier** (its metadata's
    /// `issuer`, the `iss` of its tokens: draft-ietf-oauth-rfc7523bis asks for it, not the
    /// token endpoint's URL).
    ///
    /// ```
    /// use bearer_guard::client::{AuthMethod, ClientCredentials};
    /// use bearer_guard::client_auth::PrivateKeyJwt;
    /// # let key = PrivateKeyJwt::from_jwk(r#"{"kty":"OKP","crv":"Ed25519",
    /// #   "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    /// #   "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)?;
    /// let credentials = ClientCredentials::private_key_jwt(
    ///     "https://issuer.example/oauth/token",
    ///     "billing-service",
    ///     key, // PrivateKeyJwt::from_pem(..) or ::from_jwk(..)
    ///     "https://issuer.example",
    /// )
    /// .resource("https://api.example")
    /// .build()?;
    /// assert_eq!(credentials.auth_method(), AuthMethod::PrivateKeyJwt);
    /// # Ok::<(), bearer_guard::ConfigError>(())
    /// ```
    pub fn private_key_jwt(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        key: PrivateKeyJwt,
        issuer: impl Into<String>,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: None,
            private_key: Some((key, issuer.into())),
            auth_method: AuthMethod::PrivateKeyJwt,
            scope: None,
            resource: None,
            allow_insecure_http: false,
        }
    }

    /// Starts the configuration with what every client needs.
    pub fn builder(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            private_key: None,
            auth_method: AuthMethod::default(),
            scope: None,
            resource: None,
            allow_insecure_http: false,
        }
    }

    /// The token endpoint.
    #[must_use]
    pub fn token_endpoint(&self) -> &Uri {
        &self.token_endpoint
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How the client authenticates.
    #[must_use]
    pub fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }

    /// The default scope, normalised (sorted, without repeats), if any.
    #[must_use]
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The default RFC 8707 resource, if any.
    #[must_use]
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field(
                "token_endpoint",
                &crate::url::Redacted(&self.token_endpoint.to_string()),
            )
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("private_key", &self.private_key)
            .field("auth_method", &self.auth_method)
            .field("scope", &self.scope)
            .field(
                "resource",
                &crate::url::redacted_opt(self.resource.as_deref()),
            )
            .finish()
    }
}

/// Builds [`ClientCredentials`]; from [`ClientCredentials::builder`].
#[must_use]
pub struct ClientCredentialsBuilder {
    token_endpoint: String,
    client_id: String,
    client_secret: Option<ClientSecret>,
    private_key: Option<(PrivateKeyJwt, String)>,
    auth_method: AuthMethod,
    scope: Option<String>,
    resource: Option<String>,
    allow_insecure_http: bool,
}

impl ClientCredentialsBuilder {
    /// How to authenticate at the token endpoint; [`AuthMethod::ClientSecretBasic`] by
    /// default, [`AuthMethod::PrivateKeyJwt`] for [`ClientCredentials::private_key_jwt`]. A
    /// secret method needs a secret, `private_key_jwt` a key: [`build`](Self::build)
    /// refuses the others.
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// The `scope` to request, space-delimited (RFC 6749 §3.3). Without it the token endpoint
    /// grants the client's default scope. The order and repeats do not matter: the scope is
    /// normalised, so `"b a a"` and `"a b"` share one cached token.
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scope = normalize_scope(scope.as_ref());
        self
    }

    /// The RFC 8707 `resource`: the URI of the API the tokens are for, which the issuer
    /// puts into their `aud`.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Accepts an `http://` token endpoint on a host that is not loopback. The secret and the
    /// tokens then cross the network in clear text: for tests in closed networks only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// - [`ConfigError::InvalidUrl`]: the token endpoint is not an absolute `http(s)` URL
    ///   with a host, or the resource is not an absolute URI without a fragment.
    /// - [`ConfigError::InsecureUrl`]: the token endpoint is plain `http` to a host that is
    ///   not loopback, without [`allow_insecure_http`](Self::allow_insecure_http); the same
    ///   for the issuer identifier of `private_key_jwt`.
    /// - [`ConfigError::InvalidKey`]: the [`auth_method`](Self::auth_method) needs a secret
    ///   these credentials do not have, or a key they do not have.
    pub fn build(self) -> Result<ClientCredentials, ConfigError> {
        let token_endpoint =
            crate::url::checked_uri(&self.token_endpoint, self.allow_insecure_http)?;
        let usable = match self.auth_method {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                self.client_secret.is_some()
            }
            AuthMethod::PrivateKeyJwt => self.private_key.is_some(),
        };
        if !usable {
            return Err(ConfigError::InvalidKey {
                kid: None,
                reason: format!(
                    "{} needs {}",
                    self.auth_method.as_str(),
                    if self.private_key.is_some() {
                        "a client secret, and these credentials have a private key"
                    } else {
                        "a private key (ClientCredentials::private_key_jwt)"
                    }
                ),
            });
        }
        if let Some((_, issuer)) = &self.private_key {
            crate::url::checked_uri(issuer, self.allow_insecure_http)?;
        }
        if let Some(resource) = &self.resource
            && !is_resource_uri(resource)
        {
            return Err(ConfigError::InvalidUrl(resource.clone()));
        }
        Ok(ClientCredentials {
            token_endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            private_key: self.private_key,
            auth_method: self.auth_method,
            scope: self.scope,
            resource: self.resource,
        })
    }
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field(
                "token_endpoint",
                &crate::url::Redacted(&self.token_endpoint),
            )
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("private_key", &self.private_key)
            .field("auth_method", &self.auth_method)
            .field("scope", &self.scope)
            .field(
                "resource",
                &crate::url::redacted_opt(self.resource.as_deref()),
            )
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

/// A request extension choosing the `scope` and/or `resource` of the token sent with this
/// one request, instead of the [`ClientCredentials`]' defaults. What is not set here keeps
/// the default. Tokens are cached per (scope, resource), so alternating targets do not
/// refetch.
///
/// The layer removes the extension before the request goes on.
///
/// ```
/// use bearer_guard::client::TokenTarget;
///
/// let mut request = http::Request::new(());
/// request
///     .extensions_mut()
///     .insert(TokenTarget::new().scope("write:transactions"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenTarget {
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
}

impl TokenTarget {
    /// A target that changes nothing yet.
    #[must_use]
    pub fn new() -> Self {
        TokenTarget::default()
    }

    /// The scope to request (space-delimited; normalised as in
    /// [`ClientCredentialsBuilder::scope`]).
    #[must_use]
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scope = normalize_scope(scope.as_ref());
        self
    }

    /// The RFC 8707 resource to request.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }
}

/// Sorted, without repeats, single spaces; `None` when empty.
pub(crate) fn normalize_scope(scope: &str) -> Option<String> {
    let mut tokens: Vec<&str> = scope.split_ascii_whitespace().collect();
    tokens.sort_unstable();
    tokens.dedup();
    (!tokens.is_empty()).then(|| tokens.join(" "))
}

/// RFC 8707 §2: an absolute URI (a scheme, something after it), no fragment, visible ASCII.
fn is_resource_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.contains('#')
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(url: &str) -> ClientCredentialsBuilder {
        ClientCredentials::builder(url, "svc", "hunter2-secret")
    }

    #[test]
    fn secret_never_prints() {
        let credentials = builder("https://issuer.example/token")
            .scope("read")
            .build()
            .expect("valid");
        for shown in [
            format!("{credentials:?}"),
            format!("{credentials:#?}"),
            format!("{:?}", builder("https://x.example/t")),
            format!("{}", credentials.client_secret.as_ref().expect("secret")),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn token_endpoint_must_be_https_or_loopback_http() {
        assert!(builder("https://issuer.example/token").build().is_ok());
        assert!(builder("http://127.0.0.1:8000/token").build().is_ok());
        assert!(builder("http://localhost/token").build().is_ok());
        assert!(builder("http://[::1]:9/token").build().is_ok());
        assert_eq!(
            builder("http://issuer.example/token").build().unwrap_err(),
            ConfigError::InsecureUrl("http://issuer.example/token".into())
        );
        assert!(
            builder("http://issuer.example/token")
                .allow_insecure_http()
                .build()
                .is_ok()
        );
        for bad in ["/token", "ftp://issuer.example/token", "not a url", ""] {
            assert!(
                matches!(builder(bad).build(), Err(ConfigError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn resource_must_be_an_absolute_uri_without_fragment() {
        let ok = |r: &str| builder("https://i.example/t").resource(r).build().is_ok();
        assert!(ok("https://api.example"));
        assert!(ok("urn:example:api"));
        assert!(!ok("https://api.example/#x"));
        assert!(!ok("/relative"));
        assert!(!ok("https://api example"));
    }

    #[test]
    fn scope_is_normalised() {
        assert_eq!(normalize_scope(" b  a a\tc "), Some("a b c".into()));
        assert_eq!(normalize_scope("   "), None);
        let c = builder("https://i.example/t")
            .scope("write read")
            .build()
            .expect("valid");
        assert_eq!(c.scope(), Some("read write"));
        assert_eq!(TokenTarget::new().scope("y x").scope, Some("x y".into()));
    }

    #[test]
    fn auth_method_names() {
        assert_eq!(AuthMethod::default(), AuthMethod::ClientSecretBasic);
        assert_eq!(AuthMethod::ClientSecretPost.as_str(), "client_secret_post");
    }
}
