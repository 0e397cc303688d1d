//! After the upstream's answer: a 401 drops the token, and a request that can be replayed is
//! sent once more with a new one. With a DPoP-bound token, the answer's `DPoP-Nonce` is
//! remembered, and a 401 `use_dpop_nonce` is retried once with the same token and a proof
//! carrying the nonce (RFC 9449 §9).

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use tokio::time::Instant;

use super::Boxed;
use super::cache::{Slot, Token};
use super::dpop::asks_for_nonce;
use super::error::BoxError;
use super::origin::Origin;
use super::shared::Shared;
use crate::fetch::HttpService;

/// What a sent request still needs once the upstream answers.
pub(crate) struct After<S, B> {
    pub(crate) slot: Arc<Slot>,
    pub(crate) token: Arc<Token>,
    /// A clone of the inner service and a copy of the request, when the request can be
    /// replayed.
    pub(crate) retry: Option<(S, Request<B>)>,
    pub(crate) shared: Arc<Shared>,
    /// The request's origin, when its token is DPoP-bound: the origin's nonces are
    /// remembered.
    pub(crate) origin: Option<Origin>,
}

impl<S, B> After<S, B> {
    /// On a 401: drops the token, and returns the retry when the request may be sent again
    /// (with the same token and a nonce, when that is what the upstream asked for). On
    /// anything else: the token was accepted.
    pub(crate) fn answered<ResBody>(
        self,
        response: &Response<ResBody>,
    ) -> Option<Boxed<Response<S::ResBody>>>
    where
        S: HttpService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let new_nonce = remember_nonce(&self.shared, self.origin.as_ref(), response.headers());
        if response.status() != StatusCode::UNAUTHORIZED {
            self.token.mark_accepted();
            return None;
        }
        if self.origin.is_some() && asks_for_nonce(response.headers()) {
            // Not the token's fault: keep it, and prove again with the nonce.
            let Some((inner, req)) = self.retry.filter(|_| new_nonce) else {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "use_dpop_nonce",
                    new_nonce,
                    "upstream asks for a DPoP nonce; not retrying (the request cannot be \
                     replayed, or the answer carried no valid nonce)"
                );
                return None;
            };
            tracing::debug!(
                target: "bearer_guard::client",
                reason = "use_dpop_nonce",
                "upstream asks for a DPoP nonce; retrying once with it"
            );
            let resend = Resend {
                slot: self.slot,
                shared: self.shared,
                token: Some(self.token),
            };
            return Some(Box::pin(resend.send(inner, req)));
        }
        let retry = self.slot.reject(&self.token, Instant::now());
        match (retry, self.retry) {
            (true, Some((inner, req))) => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "unauthorized",
                    "upstream refused the access token; retrying once with a new one"
                );
                let resend = Resend {
                    slot: self.slot,
                    shared: self.shared,
                    token: None,
                };
                Some(Box::pin(resend.send(inner, req)))
            }
            (true, None) => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "unauthorized",
                    "upstream refused the access token; the request cannot be replayed"
                );
                None
            }
            (false, _) => {
                tracing::warn!(
                    target: "bearer_guard::client",
                    reason = "unauthorized_again",
                    "upstream refused a freshly replaced access token; not retrying"
                );
                None
            }
        }
    }
}

/// The one retry of a request.
struct Resend {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    /// The token to send again (after `use_dpop_nonce`); `None`: the slot's new one.
    token: Option<Arc<Token>>,
}

impl Resend {
    /// Sends `req` again, with a fresh proof for a DPoP-bound token.
    async fn send<S, B>(
        self,
        mut inner: S,
        mut req: Request<B>,
    ) -> Result<Response<S::ResBody>, BoxError>
    where
        S: HttpService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let same_token = self.token.is_some();
        let token = match self.token {
            Some(token) => token,
            None => self.shared.ticket(&self.slot, &inner).token().await?,
        };
        let origin = nonce_origin(&token, &req);
        self.shared.authorize(&token, &mut req)?;
        poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        let response = inner.call(req).await.map_err(Into::into)?;
        remember_nonce(&self.shared, origin.as_ref(), response.headers());
        if response.status() != StatusCode::UNAUTHORIZED {
            token.mark_accepted();
        } else if same_token && !asks_for_nonce(response.headers()) {
            // The nonce was not the only problem: the next request gets a new token.
            self.slot.reject(&token, Instant::now());
        }
        Ok(response)
    }
}

/// The origin whose nonces a request with `token` takes part in: a DPoP-bound token's only.
pub(crate) fn nonce_origin<B>(token: &Token, req: &Request<B>) -> Option<Origin> {
    token.is_dpop().then(|| Origin::of(req.uri())).flatten()
}

/// Remembers the `DPoP-Nonce` of an answer from `origin`; whether there was a valid one.
fn remember_nonce(shared: &Shared, origin: Option<&Origin>, headers: &HeaderMap) -> bool {
    match (&shared.dpop, origin) {
        (Some(dpop), Some(origin)) => dpop.remember(origin, headers),
        _ => false,
    }
}
