//! Keys fetched from the issuer (feature `remote`), and TLS to an issuer behind a private CA
//! ([`private_ca`]). The HTTP client is hyper over rustls unless you give one of your own
//! (any [`HttpService`](crate::fetch::HttpService): a proxy-aware client, a test double).
//!
//! [`RemoteKeys`] (at the crate root) says where an issuer's keys come
//! from; they are cached and rotated in a `KeyCache`.

mod cache;
pub(crate) mod discovery;
pub(crate) mod http;
pub(crate) mod source;

pub(crate) use self::cache::{KeyCache, Keys};
pub use self::http::private_ca;
pub(crate) use self::source::{RemoteKeys, Settings, Source};
