//! The validator on bare tokens: every check of `verify` and `checks`, through the public
//! `validate`/`authorize` methods, and (`rules`) the token rules as a client meets them
//! through the layer. The layer's own answers are tested in `crate::service`.

mod claims;
mod revocation;
mod rules;

use crate::Validator;
use crate::testkit as mint;

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}
