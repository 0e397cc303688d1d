//! Replay detection: each proof (`jti`, per key) is accepted once within the window in which
//! its `iat` is accepted (RFC 9449 §11.1).
//!
//! Stores see only a [`ReplayKey`], a SHA-256 of the key's thumbprint and the `jti`: never
//! raw input, and always 32 bytes however long the `jti`. [`MemoryReplay`] serves one
//! process; `RedisReplay` (feature `redis`) is shared by every replica, so a proof replayed
//! to another replica is refused too.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A proof's identity in a replay store: SHA-256 over the key thumbprint and the `jti`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    pub(crate) fn new(digest: [u8; 32]) -> Self {
        ReplayKey(digest)
    }

    /// The 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters: a store key.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// A replay store could not answer. Carries a reason, never a proof.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayError {
    reason: String,
}

impl ReplayError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        ReplayError {
            reason: reason.into(),
        }
    }
}

impl fmt::Debug for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReplayError").field(&self.reason).finish()
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DPoP replay store unavailable: {}", self.reason)
    }
}

impl std::error::Error for ReplayError {}

type Answer = Result<bool, ReplayError>;

/// What a [`DpopReplay`] store answers: `Ok(true)` on a key's first use, `Ok(false)` for a
/// replay. Either ready at once (an in-process store: no allocation) or a boxed future.
pub struct ReplayFuture {
    inner: Inner,
}

enum Inner {
    Ready(Option<Answer>),
    Boxed(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl ReplayFuture {
    /// An answer known now.
    pub fn ready(answer: Result<bool, ReplayError>) -> Self {
        ReplayFuture {
            inner: Inner::Ready(Some(answer)),
        }
    }

    /// An answer that must be awaited.
    pub fn new(future: impl Future<Output = Result<bool, ReplayError>> + Send + 'static) -> Self {
        ReplayFuture {
            inner: Inner::Boxed(Box::pin(future)),
        }
    }

    /// Takes the answer if it is known without waiting.
    pub(crate) fn take_ready(&mut self) -> Option<Answer> {
        match &mut self.inner {
            Inner::Ready(answer) => answer.take(),
            Inner::Boxed(_) => None,
        }
    }
}

impl Future for ReplayFuture {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match &mut self.inner {
            Inner::Ready(answer) => Poll::Ready(answer.take().expect("polled after completion")),
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ReplayFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "done",
            Inner::Boxed(_) => "pending",
        };
        f.debug_tuple("ReplayFuture").field(&state).finish()
    }
}

/// A store of the proofs seen recently.
///
/// `first_use` must be atomic: of two concurrent calls with the same key (on any replica
/// sharing the store), exactly one sees its first use. A store that cannot answer returns a
/// [`ReplayError`]; the proof is then refused with 503 (fail closed), never accepted.
pub trait DpopReplay: Send + Sync + 'static {
    /// Records `key` for `ttl` (at least the rest of the window in which the proof is
    /// accepted); answers `true` if it was not recorded yet.
    fn first_use(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture;
}

/// Default number of proofs [`MemoryReplay`] holds: room for about 4,000 proofs a second with
/// the default 65 s window, in about 20 MB at most.
pub const DEFAULT_REPLAY_CAPACITY: usize = 262_144;

/// How often the store sweeps expired entries out, and how often at most while full.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_millis(100);

/// An in-process replay store: for one replica, tests and development.
///
/// Bounded: entries leave when their window has passed, and when the store is full of
/// unexpired entries new proofs are refused as unavailable (503) rather than old entries
/// evicted, since an evicted entry could be replayed. Only proofs that passed every other
/// check (signature, token binding, `ath`) reach the store.
pub struct MemoryReplay {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    seen: HashMap<ReplayKey, Instant>,
    last_sweep: Instant,
}

impl MemoryReplay {
    /// A store with room for [`DEFAULT_REPLAY_CAPACITY`] proofs.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store with room for `capacity` proofs (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryReplay {
            state: Mutex::new(State {
                seen: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// The number of entries held, expired ones not yet swept included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether the store holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, key: &ReplayKey, ttl: Duration) -> Answer {
        let now = Instant::now();
        let mut state = self.lock();
        if state.seen.get(key).is_some_and(|&until| until > now) {
            return Ok(false);
        }
        let since_sweep = now.saturating_duration_since(state.last_sweep);
        let full = state.seen.len() >= self.capacity && !state.seen.contains_key(key);
        if since_sweep >= SWEEP_EVERY || (full && since_sweep >= SWEEP_WHEN_FULL_EVERY) {
            state.seen.retain(|_, until| *until > now);
            state.last_sweep = now;
        }
        if state.seen.len() >= self.capacity && !state.seen.contains_key(key) {
            return Err(ReplayError::new("memory replay store is full"));
        }
        // Far-future TTLs are capped so that `Instant` arithmetic cannot overflow.
        let until = now + ttl.min(Duration::from_secs(86_400));
        state.seen.insert(*key, until);
        Ok(true)
    }
}

impl Default for MemoryReplay {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplay")
            .field("entries", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl DpopReplay for MemoryReplay {
    fn first_use(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        ReplayFuture::ready(self.record(key, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ReplayKey {
        ReplayKey::new([n; 32])
    }

    fn first(store: &MemoryReplay, k: &ReplayKey, ttl: Duration) -> Answer {
        store
            .first_use(k, ttl)
            .take_ready()
            .expect("memory store answers at once")
    }

    #[test]
    fn second_use_within_ttl_is_a_replay() {
        let store = MemoryReplay::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(first(&store, &key(1), ttl), Ok(true));
        assert_eq!(first(&store, &key(1), ttl), Ok(false));
        assert_eq!(first(&store, &key(2), ttl), Ok(true));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let store = MemoryReplay::new();
        let ttl = Duration::from_millis(30);
        assert_eq!(first(&store, &key(1), ttl), Ok(true));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(first(&store, &key(1), ttl), Ok(true));
    }

    #[test]
    fn a_full_store_refuses_instead_of_evicting_then_recovers() {
        let store = MemoryReplay::with_capacity(3);
        let short = Duration::from_millis(30);
        for n in 0..3 {
            assert_eq!(first(&store, &key(n), short), Ok(true));
        }
        // Full of unexpired entries: a new proof is refused, the old ones stay replays.
        assert!(first(&store, &key(9), short).is_err());
        assert_eq!(first(&store, &key(0), short), Ok(false));
        assert_eq!(store.len(), 3);
        // Once they expire, a sweep makes room (the sweep runs at most every 100 ms).
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(first(&store, &key(9), short), Ok(true));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_flood_of_distinct_keys_never_grows_past_capacity() {
        let store = MemoryReplay::with_capacity(100);
        let ttl = Duration::from_secs(60);
        let mut refused = 0;
        for n in 0..1_000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&n.to_be_bytes());
            if first(&store, &ReplayKey::new(k), ttl).is_err() {
                refused += 1;
            }
        }
        assert_eq!(store.len(), 100);
        assert_eq!(refused, 900);
    }

    #[test]
    fn keys_print_as_hex() {
        assert_eq!(key(0xab).to_hex(), "ab".repeat(32));
        assert!(format!("{:?}", key(1)).starts_with("ReplayKey(0101"));
    }
}
