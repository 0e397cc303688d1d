//! Verification keys: a [`Key`] pins one [`Algorithm`], read from PEM, a JWK or a JWKS
//! document ([`JwksOptions`]), or, by explicit choice, an HMAC secret: a token never chooses
//! another algorithm, and an asymmetric key is never used as an HMAC secret. A
//! [`KeySet`](crate::KeySet) (at the crate root) is what a validator verifies against; a
//! [`KeySource`] is a `KeySet` or `RemoteKeys`.

pub use crate::keyring::{JwksOptions, Key};
pub use crate::validator::KeySource;
/// The signature algorithms (jsonwebtoken's): a [`Key`] pins exactly one.
pub use jsonwebtoken::Algorithm;
