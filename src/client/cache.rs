//! The token cache: one slot per (scope, resource), each with at most one token request in
//! flight.
//!
//! A slot's token is *fresh* until its refresh time, then *due* until it expires. A fresh
//! token is handed out at once. A due one too, and the first request to see it due starts
//! the refresh in the background. Without a usable token, requests wait for the one token
//! request in flight (starting it if there is none). The refresh runs in its own task, so a
//! caller that gives up does not cancel it for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use tokio::sync::watch;
use tokio::time::Instant;

use super::endpoint::{Issued, TokenKey};
use super::error::{TokenError, TokenErrorKind};
use super::subject::SubjectToken;

/// What a token request ends with, as the waiters see it.
pub(crate) type Outcome = Result<Arc<Token>, TokenError>;

/// After a failed background refresh, the still-valid token is used this long before the
/// next attempt.
const BACKGROUND_RETRY: Duration = Duration::from_secs(5);
/// A token obtained because the upstream refused the previous one, and refused in turn
/// within this time without having been accepted once, is not replaced again: the upstream
/// refuses fresh tokens (wrong audience, unknown issuer), and refetching on every request
/// would only load the issuer.
pub(crate) const REJECTION_COOLDOWN: Duration = Duration::from_secs(30);

/// A cached access token: the ready `Authorization` value, its type and its times.
pub(crate) struct Token {
    /// `Bearer <token>` or `DPoP <token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// A DPoP-bound token: every request with it needs a proof.
    dpop: bool,
    fetched_at: Instant,
    refresh_at: Instant,
    expires_at: Instant,
    /// Obtained because the upstream refused the previous token.
    after_rejection: bool,
    /// The upstream answered a request carrying it with something other than 401.
    accepted: AtomicBool,
}

impl Token {
    fn new(fetched: Issued, refresh_ahead: Duration, after_rejection: bool) -> Token {
        let lifetime = fetched.expires_in;
        // Refresh `refresh_ahead` before expiry, but never in the first half of the life: a
        // short-lived token would otherwise be due as soon as it arrives.
        let ahead = refresh_ahead.min(lifetime / 2);
        let far = |d: Duration| {
            fetched
                .sent_at
                .checked_add(d)
                .unwrap_or_else(|| fetched.sent_at + Duration::from_secs(86_400 * 365))
        };
        Token {
            header: fetched.header,
            dpop: fetched.dpop,
            fetched_at: fetched.sent_at,
            refresh_at: far(lifetime - ahead),
            expires_at: far(lifetime),
            after_rejection,
            accepted: AtomicBool::new(false),
        }
    }

    /// Sets the token, marked sensitive, as the request's `Authorization`.
    pub(crate) fn authorize<B>(&self, req: &mut Request<B>) {
        req.headers_mut().insert(AUTHORIZATION, self.header.clone());
    }

    /// Whether the token is DPoP-bound (`Authorization: DPoP`, a proof with each request).
    pub(crate) fn is_dpop(&self) -> bool {
        self.dpop
    }

    /// The access token itself, for a proof's `ath`.
    pub(crate) fn access_token(&self) -> &str {
        let value = self.header.as_bytes();
        let token = value
            .iter()
            .position(|&b| b == b' ')
            .map_or(&[][..], |space| &value[space + 1..]);
        // The header was made from a `&str` of visible ASCII.
        std::str::from_utf8(token).unwrap_or("")
    }

    /// The upstream answered a request carrying this token with something other than 401.
    pub(crate) fn mark_accepted(&self) {
        if !self.accepted.load(Ordering::Relaxed) {
            self.accepted.store(true, Ordering::Relaxed);
        }
    }

    fn is_valid(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

/// All slots, bounded in number.
pub(crate) struct Tokens {
    slots: Mutex<HashMap<TokenKey, Arc<Slot>>>,
    max_slots: usize,
}

impl Tokens {
    pub(crate) fn new(max_slots: usize) -> Self {
        Tokens {
            slots: Mutex::new(HashMap::new()),
            max_slots: max_slots.max(1),
        }
    }

    /// The slot of `key`, created if needed. When the cache is full, slots without a valid
    /// token or a request in flight go first, then an arbitrary one.
    pub(crate) fn slot(&self, key: TokenKey, now: Instant) -> Arc<Slot> {
        self.slot_for(key, now, None)
    }

    /// As [`slot`](Self::slot), for a token exchange: a new slot keeps `subject`, the token
    /// its requests exchange (`key` holds only its digest).
    pub(crate) fn slot_for(
        &self,
        key: TokenKey,
        now: Instant,
        subject: Option<&SubjectToken>,
    ) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(&key) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.max_slots {
            slots.retain(|_, slot| slot.is_live(now));
            if slots.len() >= self.max_slots
                && let Some(victim) = slots.keys().next().cloned()
            {
                slots.remove(&victim);
            }
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            subject: subject.cloned(),
            state: Mutex::new(SlotState::default()),
        });
        slots.insert(key, Arc::clone(&slot));
        slot
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.slots).len()
    }
}

/// The token of one (scope, resource).
pub(crate) struct Slot {
    key: TokenKey,
    /// The subject token of a token exchange's slot.
    subject: Option<SubjectToken>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<Arc<Token>>,
    /// The token request in flight: `None` in the channel until it ends.
    inflight: Option<watch::Receiver<Option<Outcome>>>,
    /// The upstream refused the last token; the next one is marked `after_rejection`.
    rejected: bool,
    /// No background refresh before this (after a failed one).
    retry_at: Option<Instant>,
}

/// What a request does to get its token.
pub(crate) enum Lookup {
    /// Use this token now; if a [`Refresh`] comes along, start it in the background.
    Ready(Arc<Token>, Option<Refresh>),
    /// Wait for the token request in flight; with a [`Refresh`], this caller must start it.
    Wait(Wait, Option<Refresh>),
}

impl Slot {
    pub(crate) fn lookup(self: &Arc<Self>, now: Instant) -> Lookup {
        let mut state = lock(&self.state);
        if let Some(token) = state.token.clone() {
            if token.is_valid(now) {
                let due = now >= token.refresh_at
                    && state.inflight.is_none()
                    && state.retry_at.is_none_or(|at| now >= at);
                let refresh = due.then(|| self.start(&mut state).0);
                return Lookup::Ready(token, refresh);
            }
            state.token = None;
        }
        match &state.inflight {
            Some(rx) => Lookup::Wait(Wait(rx.clone()), None),
            None => {
                let (refresh, rx) = self.start(&mut state);
                Lookup::Wait(Wait(rx), Some(refresh))
            }
        }
    }

    fn start(
        self: &Arc<Self>,
        state: &mut SlotState,
    ) -> (Refresh, watch::Receiver<Option<Outcome>>) {
        let (tx, rx) = watch::channel(None);
        state.inflight = Some(rx.clone());
        let refresh = Refresh {
            slot: Arc::clone(self),
            tx: Some(tx),
        };
        (refresh, rx)
    }

    /// The upstream answered 401 to a request carrying `token`. Drops the token if it is
    /// still the cached one, and says whether the request may be sent again with another
    /// token: not when `token` itself replaced a refused token less than
    /// [`REJECTION_COOLDOWN`] ago and was never accepted (that one is kept, too).
    pub(crate) fn reject(&self, token: &Arc<Token>, now: Instant) -> bool {
        if token.after_rejection
            && !token.accepted.load(Ordering::Relaxed)
            && now < token.fetched_at + REJECTION_COOLDOWN
        {
            return false;
        }
        let mut state = lock(&self.state);
        if state
            .token
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, token))
        {
            state.token = None;
            state.rejected = true;
            state.retry_at = None;
        }
        true
    }

    fn is_live(&self, now: Instant) -> bool {
        match self.state.try_lock() {
            Ok(state) => {
                state.inflight.is_some() || state.token.as_ref().is_some_and(|t| t.is_valid(now))
            }
            Err(_) => true,
        }
    }
}

/// The duty to run the token request of a slot and report its outcome. Dropping it without
/// [`complete`](Refresh::complete) releases the waiters with
/// [`TokenErrorKind::Unavailable`].
pub(crate) struct Refresh {
    slot: Arc<Slot>,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl Refresh {
    pub(crate) fn key(&self) -> &TokenKey {
        &self.slot.key
    }

    /// The subject token to exchange, for a token exchange's slot.
    pub(crate) fn subject(&self) -> Option<&SubjectToken> {
        self.slot.subject.as_ref()
    }

    /// Stores the new token (or keeps the old one after a failure) and wakes the waiters.
    pub(crate) fn complete(
        mut self,
        fetched: Result<Issued, TokenError>,
        refresh_ahead: Duration,
        now: Instant,
    ) {
        let outcome = {
            let mut state = lock(&self.slot.state);
            state.inflight = None;
            // A token that arrives after the previous one was refused (even if it was asked
            // for before) is its replacement.
            let outcome = fetched.map(|f| Arc::new(Token::new(f, refresh_ahead, state.rejected)));
            match &outcome {
                Ok(token) => {
                    state.token = Some(Arc::clone(token));
                    state.rejected = false;
                    state.retry_at = None;
                }
                Err(_) => {
                    if state.token.as_ref().is_some_and(|t| t.is_valid(now)) {
                        state.retry_at = Some(now + BACKGROUND_RETRY);
                    }
                }
            }
            outcome
        };
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome));
        }
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Abandoned: let the next request start another one. The sender drops with
            // `self`, which wakes the waiters with an error.
            lock(&self.slot.state).inflight = None;
        }
    }
}

/// A place in the queue for the token request in flight.
pub(crate) struct Wait(watch::Receiver<Option<Outcome>>);

impl Wait {
    pub(crate) async fn wait(mut self) -> Outcome {
        let outcome = match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| {
            Err(TokenError::new(TokenErrorKind::Unavailable)
                .with_detail("the token request was abandoned (is the runtime shutting down?)"))
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(expires_in: u64) -> Issued {
        Issued {
            header: HeaderValue::from_static("Bearer t"),
            dpop: false,
            expires_in: Duration::from_secs(expires_in),
            raised_from: None,
            sent_at: Instant::now(),
        }
    }

    fn key(scope: &str) -> TokenKey {
        TokenKey {
            scope: Some(scope.into()),
            resource: None,
            subject: None,
        }
    }

    fn ready(lookup: Lookup) -> (Arc<Token>, Option<Refresh>) {
        match lookup {
            Lookup::Ready(token, refresh) => (token, refresh),
            Lookup::Wait(..) => panic!("expected a ready token"),
        }
    }

    #[test]
    fn refresh_time_is_ahead_of_expiry_but_not_in_the_first_half() {
        let t = Token::new(fetched(3600), Duration::from_secs(60), false);
        assert_eq!(t.refresh_at - t.fetched_at, Duration::from_secs(3540));
        assert_eq!(t.expires_at - t.fetched_at, Duration::from_secs(3600));
        let t = Token::new(fetched(2), Duration::from_secs(60), false);
        assert_eq!(t.refresh_at - t.fetched_at, Duration::from_secs(1));
        let t = Token::new(fetched(u64::MAX / 4), Duration::from_secs(60), false);
        assert!(t.expires_at > t.fetched_at);
    }

    #[tokio::test]
    async fn one_request_in_flight_and_every_waiter_gets_its_outcome() {
        let tokens = Tokens::new(8);
        let slot = tokens.slot(key("read"), Instant::now());
        let Lookup::Wait(first, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("the first lookup must start the request");
        };
        let Lookup::Wait(second, None) = slot.lookup(Instant::now()) else {
            panic!("the second lookup must wait without starting another");
        };
        refresh.complete(Ok(fetched(3600)), Duration::from_secs(60), Instant::now());
        let a = first.wait().await.expect("token");
        let b = second.wait().await.expect("token");
        assert!(Arc::ptr_eq(&a, &b));
        let (c, refresh) = ready(slot.lookup(Instant::now()));
        assert!(Arc::ptr_eq(&a, &c) && refresh.is_none());
    }

    #[tokio::test]
    async fn due_token_is_used_while_one_background_refresh_runs() {
        let slot = Tokens::new(8).slot(key("read"), Instant::now());
        let Lookup::Wait(_, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("start");
        };
        refresh.complete(Ok(fetched(100)), Duration::from_secs(60), Instant::now());
        let later = Instant::now() + Duration::from_secs(70);
        let (old, refresh) = ready(slot.lookup(later));
        let refresh = refresh.expect("the first due lookup starts the refresh");
        let (same, none) = ready(slot.lookup(later));
        assert!(Arc::ptr_eq(&old, &same) && none.is_none());
        // A failed background refresh keeps the old token and waits before the next try.
        refresh.complete(
            Err(TokenError::new(TokenErrorKind::Timeout)),
            Duration::from_secs(60),
            later,
        );
        let (same, none) = ready(slot.lookup(later));
        assert!(Arc::ptr_eq(&old, &same) && none.is_none());
        let (_, retry) = ready(slot.lookup(later + BACKGROUND_RETRY));
        assert!(retry.is_some());
    }

    #[tokio::test]
    async fn failure_and_abandonment_release_the_waiters() {
        let slot = Tokens::new(8).slot(key("read"), Instant::now());
        let Lookup::Wait(wait, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("start");
        };
        refresh.complete(
            Err(TokenError::new(TokenErrorKind::Rejected)),
            Duration::from_secs(60),
            Instant::now(),
        );
        assert_eq!(
            wait.wait().await.err().map(|e| e.kind()),
            Some(TokenErrorKind::Rejected)
        );
        let Lookup::Wait(wait, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("a failure lets the next request start again");
        };
        drop(refresh);
        assert_eq!(
            wait.wait().await.err().map(|e| e.kind()),
            Some(TokenErrorKind::Unavailable)
        );
        assert!(matches!(
            slot.lookup(Instant::now()),
            Lookup::Wait(_, Some(_))
        ));
    }

    #[tokio::test]
    async fn rejection_drops_the_token_once_and_a_refused_replacement_is_kept() {
        let slot = Tokens::new(8).slot(key("read"), Instant::now());
        let Lookup::Wait(_, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("start");
        };
        refresh.complete(Ok(fetched(3600)), Duration::from_secs(60), Instant::now());
        let (first, _) = ready(slot.lookup(Instant::now()));
        assert!(slot.reject(&first, Instant::now()));
        // A second 401 for the same, already dropped token: retry, nothing else to drop.
        assert!(slot.reject(&first, Instant::now()));
        let Lookup::Wait(_, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("the refused token is gone");
        };
        refresh.complete(Ok(fetched(3600)), Duration::from_secs(60), Instant::now());
        let (second, _) = ready(slot.lookup(Instant::now()));
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(!slot.reject(&second, Instant::now()), "refused replacement");
        let (kept, _) = ready(slot.lookup(Instant::now()));
        assert!(Arc::ptr_eq(&second, &kept));
        assert!(slot.reject(&second, Instant::now() + REJECTION_COOLDOWN));
        // A replacement that was accepted once is replaced when refused later.
        let Lookup::Wait(_, Some(refresh)) = slot.lookup(Instant::now()) else {
            panic!("dropped");
        };
        refresh.complete(Ok(fetched(3600)), Duration::from_secs(60), Instant::now());
        let (third, _) = ready(slot.lookup(Instant::now()));
        third.mark_accepted();
        assert!(slot.reject(&third, Instant::now()));
    }

    #[test]
    fn cache_is_bounded_and_evicts_dead_slots_first() {
        let tokens = Tokens::new(2);
        let now = Instant::now();
        let live = tokens.slot(key("a"), now);
        let _keep_inflight = live.lookup(now);
        tokens.slot(key("b"), now);
        tokens.slot(key("c"), now);
        assert_eq!(tokens.len(), 2);
        assert!(Arc::ptr_eq(&live, &tokens.slot(key("a"), now)));
    }
}
