//! What a verified token says beyond its claims type: the audience of [`AccessClaims`](crate::AccessClaims) and
//! the key a sender-constrained token is bound to ([`VerifiedToken::confirmation`](crate::VerifiedToken::confirmation)),
//! and the actor chain of a delegated token ([`VerifiedToken::actor`](crate::VerifiedToken::actor)).

pub use crate::claims::Audience;
pub use crate::verified::{Actor, Confirmation};
