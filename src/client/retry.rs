//! After the upstream's answer: a 401 drops the token, and a request that can be replayed is
//! sent once more with a new one.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::cache::{Slot, Token};
use super::error::BoxError;
use super::http::{Boxed, HttpService};
use super::shared::Shared;

/// What a sent request still needs if the upstream answers 401.
pub(crate) struct After<S, B> {
    pub(crate) slot: Arc<Slot>,
    pub(crate) token: Arc<Token>,
    /// A clone of the inner service and a copy of the request, when the request can be
    /// replayed.
    pub(crate) retry: Option<(S, Request<B>)>,
    pub(crate) shared: Arc<Shared>,
}

impl<S, B> After<S, B> {
    /// On a 401: drops the token, and returns the retry when the request may be sent again.
    /// On anything else: the token was accepted.
    pub(crate) fn unauthorized<ResBody>(
        self,
        response: &Response<ResBody>,
    ) -> Option<Boxed<Response<S::ResBody>>>
    where
        S: HttpService<B>,
        B: From<Bytes> + Send + 'static,
    {
        if response.status() != StatusCode::UNAUTHORIZED {
            self.token.mark_accepted();
            return None;
        }
        let retry = self.slot.reject(&self.token, Instant::now());
        match (retry, self.retry) {
            (true, Some((inner, req))) => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "unauthorized",
                    "upstream refused the access token; retrying once with a new one"
                );
                Some(Box::pin(resend(inner, req, self.slot, self.shared)))
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

/// Sends `req` again with the slot's (new) token.
async fn resend<S, B>(
    mut inner: S,
    mut req: Request<B>,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
) -> Result<Response<S::ResBody>, BoxError>
where
    S: HttpService<B>,
    B: From<Bytes> + Send + 'static,
{
    let token = shared.ticket(&slot, &inner).token().await?;
    token.authorize(&mut req);
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let response = inner.call(req).await.map_err(Into::into)?;
    if response.status() != StatusCode::UNAUTHORIZED {
        token.mark_accepted();
    }
    Ok(response)
}
