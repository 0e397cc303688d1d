//! What a verification gives back: a [`VerifiedProof`], through a [`ProofCheck`] that is
//! decided at once unless the replay store must be awaited.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::error::{DpopError, DpopErrorKind};
use super::proof::Checked;
use super::replay::{ReplayError, ReplayFuture};

/// A proof that passed every check, the replay store included.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: Box<str>,
    iat: i64,
    nonce_refresh_due: bool,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key: what a token bound to it carries
    /// in `cnf.jkt` (an authorization server puts this value there).
    #[must_use]
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, seconds since the epoch.
    #[must_use]
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// Whether the proof's nonce is past half its life: the answer should carry the next
    /// one in a `DPoP-Nonce` header (RFC 9449 §8.2), from
    /// [`Dpop::nonce_header`](super::Dpop::nonce_header).
    #[must_use]
    pub fn nonce_refresh_due(&self) -> bool {
        self.nonce_refresh_due
    }
}

impl fmt::Debug for VerifiedProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedProof")
            .field("jkt", &self.jkt)
            .field("iat", &self.iat)
            .finish_non_exhaustive()
    }
}

impl From<Checked> for VerifiedProof {
    fn from(checked: Checked) -> Self {
        VerifiedProof {
            jkt: checked.jkt,
            jti: checked.jti,
            iat: checked.iat,
            nonce_refresh_due: checked.nonce_refresh_due,
        }
    }
}

/// The outcome of [`Dpop::verify_access`](super::Dpop::verify_access) (or, at an
/// authorization server, `Dpop::verify_token_request`).
///
/// Every check runs at once; only a replay store that answers asynchronously (Redis) leaves
/// the outcome [`Pending`](ProofCheck::Pending). `.await` it either way (it is
/// [`IntoFuture`]), or match on it to stay synchronous when it is ready.
#[must_use = "the proof is only verified once the check is resolved"]
#[derive(Debug)]
pub enum ProofCheck {
    /// Decided without waiting.
    Ready(Result<VerifiedProof, DpopError>),
    /// The replay store's answer must be awaited.
    Pending(ProofFuture),
}

impl IntoFuture for ProofCheck {
    type Output = Result<VerifiedProof, DpopError>;
    type IntoFuture = ProofFuture;

    fn into_future(self) -> ProofFuture {
        match self {
            ProofCheck::Ready(outcome) => ProofFuture {
                state: State::Done(Some(outcome)),
            },
            ProofCheck::Pending(future) => future,
        }
    }
}

/// A proof waiting for the replay store. `Send`, `Unpin` and `'static`.
pub struct ProofFuture {
    state: State,
}

enum State {
    Done(Option<Result<VerifiedProof, DpopError>>),
    Replay {
        proof: Option<VerifiedProof>,
        replay: ReplayFuture,
    },
}

impl ProofFuture {
    /// Waits for `replay` to say whether `proof` is used for the first time.
    pub(crate) fn replay(proof: VerifiedProof, replay: ReplayFuture) -> Self {
        ProofFuture {
            state: State::Replay {
                proof: Some(proof),
                replay,
            },
        }
    }
}

impl Future for ProofFuture {
    type Output = Result<VerifiedProof, DpopError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Done(outcome) => Poll::Ready(outcome.take().expect("polled after completion")),
            State::Replay { proof, replay } => {
                let answer = std::task::ready!(Pin::new(replay).poll(cx));
                let proof = proof.take().expect("polled after completion");
                Poll::Ready(settle(proof, answer))
            }
        }
    }
}

impl fmt::Debug for ProofFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Done(_) => "done",
            State::Replay { .. } => "waiting for the replay store",
        };
        f.debug_tuple("ProofFuture").field(&state).finish()
    }
}

/// The proof, once the replay store has answered.
pub(crate) fn settle(
    proof: VerifiedProof,
    answer: Result<bool, ReplayError>,
) -> Result<VerifiedProof, DpopError> {
    match answer {
        Ok(true) => Ok(proof),
        Ok(false) => {
            tracing::info!(
                target: "bearer_guard::dpop",
                jkt = %proof.jkt,
                "DPoP proof replayed; refused"
            );
            Err(DpopErrorKind::Replayed.into())
        }
        Err(err) => {
            tracing::warn!(
                target: "bearer_guard::dpop",
                reason = %err,
                "DPoP replay store unavailable; proof refused (fail closed)"
            );
            Err(DpopErrorKind::ReplayUnavailable.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::Dpop;

    fn send_sync_static<T: Send + Sync + 'static>() {}
    fn send_unpin_static<T: Send + Unpin + 'static>() {}

    #[test]
    fn outcomes_can_cross_threads_and_live_in_futures() {
        send_sync_static::<Dpop>();
        send_sync_static::<VerifiedProof>();
        send_unpin_static::<ProofCheck>();
        send_unpin_static::<ProofFuture>();
    }

    #[tokio::test]
    async fn a_ready_check_resolves_as_a_future() {
        let check = ProofCheck::Ready(Err(DpopErrorKind::Malformed.into()));
        assert_eq!(
            check.await.map_err(|e| e.kind()),
            Err(DpopErrorKind::Malformed)
        );
        let proof = VerifiedProof {
            jkt: "j".into(),
            jti: "t".into(),
            iat: 1,
            nonce_refresh_due: false,
        };
        let replayed = ProofFuture::replay(proof.clone(), ReplayFuture::new(async { Ok(false) }));
        assert_eq!(
            replayed.await.map_err(|e| e.kind()),
            Err(DpopErrorKind::Replayed)
        );
        let down = ProofFuture::replay(
            proof.clone(),
            ReplayFuture::new(async { Err(ReplayError::new("down")) }),
        );
        assert_eq!(
            down.await.map_err(|e| e.kind()),
            Err(DpopErrorKind::ReplayUnavailable)
        );
        let first = ProofFuture::replay(proof.clone(), ReplayFuture::new(async { Ok(true) }));
        assert_eq!(first.await, Ok(proof));
    }
}
