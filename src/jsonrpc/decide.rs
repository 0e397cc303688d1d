//! The decision on a read body, shared by the layer's services: the rules, the limit, the
//! challenges and the rejection.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{Response, StatusCode};

use super::message::{self, NotRead};
use super::rules::{Refused, Rules};
use crate::error::ErrorKind;
use crate::response::{self, Challenges, Refusal, Rejection};
use crate::verified::VerifiedToken;

/// What the layer's services share.
pub(super) struct Shared<R> {
    pub(super) rules: Rules,
    pub(super) max_body: usize,
    /// `realm` and `resource_metadata`: the challenges every refusal's are built from.
    pub(super) challenges: Challenges,
    pub(super) rejection: R,
}

impl<R> fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationScopes")
            .field("methods", &self.rules.methods)
            .field("tools", &self.rules.tools)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl<R> Shared<R> {
    /// The decision on the body of the request `parts`: `Ok` to call the inner service, or
    /// the answer.
    pub(super) fn decide<B>(&self, parts: &Parts, body: &[u8]) -> Result<(), Response<B>>
    where
        R: Rejection<B>,
        B: Default,
    {
        if self.rules.is_empty() {
            return Ok(());
        }
        let calls = match message::calls(body) {
            Ok(calls) => calls,
            // Not JSON: not a call any server runs; it answers with a parse error.
            Err(NotRead::NotJson) => return Ok(()),
            Err(NotRead::Unreadable) => {
                tracing::debug!(target: "bearer_guard::jsonrpc", "JSON-RPC body with a name that cannot be read: 400");
                return Err(status(StatusCode::BAD_REQUEST));
            }
        };
        let token = parts.extensions.get::<VerifiedToken>();
        let refused = match self.rules.check(&calls, token) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        Err(self.refuse(parts, token, &refused))
    }

    /// The answer to a refused body: 403 `insufficient_scope` (401 without a token) whose
    /// challenge names what the refused calls need, through the rejection; logged, counted.
    fn refuse<B>(
        &self,
        parts: &Parts,
        token: Option<&VerifiedToken>,
        refused: &Refused<'_>,
    ) -> Response<B>
    where
        R: Rejection<B>,
    {
        tracing::debug!(
            target: "bearer_guard::jsonrpc",
            method = refused.method,
            tool = refused.tool,
            scope = refused.scopes.join(" "),
            "JSON-RPC operation refused"
        );
        let kind = match token {
            Some(_) => ErrorKind::InsufficientScope,
            None => ErrorKind::MissingToken,
        };
        let challenges = Arc::new(self.challenges.for_scopes(refused.scopes.iter().copied()));
        let refusal = Refusal::new(kind).with_token(token).answering(
            Some(&challenges),
            parts.version,
            &parts.headers,
        );
        response::answer(&self.rejection, &refusal)
    }
}

/// A plain answer with `status` and an empty body: what is not a refusal of a token (a body
/// too large, unreadable or encoded).
pub(super) fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}
