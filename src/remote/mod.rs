//! Keys fetched from the issuer (feature `remote`): the [`HttpClient`] every outgoing call
//! goes through, for a client of your own (a proxy, a test double).
//!
//! [`RemoteKeys`] (at the crate root) says where an issuer's keys come
//! from; they are cached and rotated in a `KeyCache`.

mod cache;
pub(crate) mod discovery;
pub(crate) mod http;
pub(crate) mod source;

pub(crate) use self::cache::{KeyCache, Keys};
pub use self::http::{HttpClient, HttpFuture, private_ca};
pub(crate) use self::source::{RemoteKeys, Settings, Source};
