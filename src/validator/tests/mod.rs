//! The validator on bare tokens: every check of `verify` and `checks`, through the public
//! `validate`/`authorize` methods. The layer's answers are tested in `crate::service`.

mod claims;
mod revocation;

use crate::Validator;
use crate::testkit as mint;

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}
