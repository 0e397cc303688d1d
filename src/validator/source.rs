//! Where a validator's keys come from: [`KeySource`] as configured, [`IssuerKeys`] at run
//! time.

use std::fmt;
#[cfg(feature = "remote")]
use std::sync::Arc;

use crate::error::ConfigError;
use crate::keyring::{Key, KeySet};
#[cfg(feature = "remote")]
use crate::remote::{KeyCache, RemoteKeys};

/// Where a validator's keys come from, for
/// [`ValidatorBuilder::keys`](crate::ValidatorBuilder::keys): a [`KeySet`] given in code, or
/// (feature `remote`) [`RemoteKeys`] fetched from the issuer. Both convert into it.
pub struct KeySource(Kind);

enum Kind {
    Static(KeySet),
    #[cfg(feature = "remote")]
    Remote(Box<RemoteKeys>),
}

impl From<KeySet> for KeySource {
    fn from(keys: KeySet) -> Self {
        KeySource(Kind::Static(keys))
    }
}

#[cfg(feature = "remote")]
impl From<RemoteKeys> for KeySource {
    fn from(keys: RemoteKeys) -> Self {
        KeySource(Kind::Remote(Box::new(keys)))
    }
}

impl KeySource {
    /// The issuer a discovery source names, to default the validator's issuer to.
    pub(crate) fn discovery_issuer(&self) -> Option<&str> {
        match &self.0 {
            Kind::Static(_) => None,
            #[cfg(feature = "remote")]
            Kind::Remote(remote) => remote.discovery_issuer(),
        }
    }

    /// The keys at run time for `issuer`. Remote sources fetch nothing yet.
    pub(crate) fn start(self, issuer: &str) -> Result<IssuerKeys, ConfigError> {
        #[cfg(not(feature = "remote"))]
        let _ = issuer;
        match self.0 {
            Kind::Static(keys) if keys.is_empty() => Err(ConfigError::MissingKeys),
            Kind::Static(keys) => Ok(IssuerKeys::Static(keys)),
            #[cfg(feature = "remote")]
            Kind::Remote(remote) => Ok(IssuerKeys::Remote(Arc::new(KeyCache::new(
                *remote,
                issuer.to_owned(),
            )?))),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Static(keys) => keys.fmt(f),
            #[cfg(feature = "remote")]
            Kind::Remote(remote) => remote.fmt(f),
        }
    }
}

/// One issuer's keys while the validator runs.
pub(crate) enum IssuerKeys {
    /// None: the issuer's tokens are introspected, never verified here.
    #[cfg(feature = "remote")]
    None,
    Static(KeySet),
    #[cfg(feature = "remote")]
    Remote(Arc<KeyCache>),
}

impl IssuerKeys {
    /// Whether `key` is still in the key set (always, for static keys).
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    #[inline]
    pub(crate) fn contains(&self, key: &Key) -> bool {
        match self {
            IssuerKeys::Static(_) => true,
            #[cfg(feature = "remote")]
            IssuerKeys::None => false,
            #[cfg(feature = "remote")]
            IssuerKeys::Remote(cache) => cache.contains(key),
        }
    }

    /// The keys in use: the configured set, or the last fetched one (empty before the
    /// first fetch).
    pub(crate) fn current(&self) -> KeySet {
        match self {
            IssuerKeys::Static(keys) => keys.clone(),
            #[cfg(feature = "remote")]
            IssuerKeys::None => KeySet::default(),
            #[cfg(feature = "remote")]
            IssuerKeys::Remote(cache) => cache.current().unwrap_or_default(),
        }
    }

    /// Fetches the keys now unless a fetch already succeeded.
    pub(crate) async fn ready(&self) -> Result<(), ConfigError> {
        match self {
            IssuerKeys::Static(_) => Ok(()),
            #[cfg(feature = "remote")]
            IssuerKeys::None => Ok(()),
            #[cfg(feature = "remote")]
            IssuerKeys::Remote(cache) => cache.ready().await,
        }
    }

    /// Fetches because a request found no key; see `KeyCache::refresh_on_demand`.
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    pub(crate) async fn fetch(&self, generation: u64) {
        #[cfg(feature = "remote")]
        if let IssuerKeys::Remote(cache) = self {
            cache.refresh_on_demand(generation).await;
        }
    }
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssuerKeys::Static(keys) => keys.fmt(f),
            #[cfg(feature = "remote")]
            IssuerKeys::None => f.write_str("Introspected"),
            #[cfg(feature = "remote")]
            IssuerKeys::Remote(cache) => cache.fmt(f),
        }
    }
}
