//! [`Issuer`]: one of several authorization servers a validator trusts.

use std::fmt;
use std::time::Duration;

use super::source::KeySource;
use crate::checks::Profile;

/// An authorization server a [`Validator`](crate::Validator) trusts beside (or instead of)
/// the one set on its builder, with its own keys and, where they differ, its own audiences,
/// profile, leeway and lifetime cap. Give it to
/// [`ValidatorBuilder::trust`](crate::ValidatorBuilder::trust).
///
/// A token's unverified `iss` only *selects* among the trusted issuers: an unknown one is
/// refused at once, with no fetch, and a token is verified with its own issuer's keys only,
/// so a token signed by issuer A but claiming to come from B is refused even though A is
/// trusted.
///
/// ```
/// use std::time::Duration;
/// use bearer_guard::{Issuer, KeySet, Profile, Validator};
/// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
/// # let internal_keys = KeySet::from_jwks_json(jwks)?;
/// # let partner_keys = KeySet::from_jwks_json(jwks)?;
/// let validator = Validator::builder()
///     .audience("https://api.example")
///     .trust(Issuer::new("https://login.internal.example").keys(internal_keys))
///     .trust(
///         Issuer::new("https://partners.example")
///             .keys(partner_keys)
///             .profile(Profile::Jwt)
///             .leeway(Duration::from_secs(30)),
///     )
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct Issuer {
    pub(crate) issuer: Option<String>,
    pub(crate) keys: Option<KeySource>,
    pub(crate) audiences: Vec<String>,
    pub(crate) profile: Option<Profile>,
    pub(crate) leeway: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
}

impl Issuer {
    /// The issuer `issuer`: its tokens' `iss`, exactly.
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: Some(issuer.into()),
            keys: None,
            audiences: Vec::new(),
            profile: None,
            leeway: None,
            max_lifetime: None,
        }
    }

    /// The issuer at `issuer_url`, with its keys found through its metadata
    /// ([`RemoteKeys::discover`](crate::RemoteKeys::discover)).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn discover(issuer_url: impl Into<String>) -> Self {
        let url = issuer_url.into();
        Issuer::new(url.clone()).keys(crate::RemoteKeys::discover(url))
    }

    /// Its keys: a [`KeySet`](crate::KeySet) or [`RemoteKeys`](crate::RemoteKeys).
    pub fn keys(mut self, keys: impl Into<KeySource>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// An audience its tokens must name, instead of the validator's. Call again for
    /// several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Its [`Profile`], instead of the validator's.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Its clock-skew allowance, instead of the validator's.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Its maximum token lifetime, instead of the validator's.
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &crate::url::redacted_opt(self.issuer.as_deref()))
            .field("keys", &self.keys)
            .field("audiences", &crate::url::redacted_all(&self.audiences))
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}
