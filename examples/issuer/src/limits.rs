//! Password and secret verification under load: argon2 runs on the blocking pool, a few at a
//! time ([`Limits::verify_slots`]); a few more may wait, not long ([`Limits::verify_queue`],
//! [`Limits::verify_wait`]: past that, 503); and each peer address and each client id or
//! username has a budget of attempts ([`Limits::max_attempts`] failures plus attempts in
//! progress per [`Limits::window`]: past that, 429 without hashing). A flood of bogus
//! credentials from one peer therefore costs a handful of hashes, and cannot hold the slots
//! that other clients need.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::form::Secret;

/// Longest accepted secret or password, in bytes (checked before hashing).
pub const MAX_SECRET_LEN: usize = 1024;
/// Most keys one attempt counter tracks; past that, a new key takes the place of the least
/// recently used one (never untracked: a new key always has a budget).
const MAX_TRACKED: usize = 10_000;

/// The verification limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// argon2 verifications running at once (each holds `m_cost` KiB of memory).
    pub verify_slots: usize,
    /// Verifications that may wait for a slot; one more is answered 503.
    pub verify_queue: usize,
    /// The longest wait for a slot; past it, 503.
    pub verify_wait: Duration,
    /// Failed attempts plus attempts in progress allowed per peer address, and per client id
    /// or username, within one [`window`](Limits::window); one more is answered 429.
    pub max_attempts: u32,
    /// The window of [`max_attempts`](Limits::max_attempts).
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            verify_slots: 4,
            verify_queue: 32,
            verify_wait: Duration::from_secs(2),
            max_attempts: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Why a verification did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The peer or the name is over its budget: retry after this many seconds (429).
    /// `first` is the first such refusal of the key in its window (worth a log line; the
    /// rest of a flood is not).
    TooManyAttempts { retry: u64, first: bool },
    /// The queue is full or the wait too long (503).
    Busy,
}

/// The verification gate of one issuer.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    peers: Attempts,
    names: Attempts,
    /// Client registrations per peer (every one counts).
    registrations: Attempts,
    checks: AtomicU64,
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(limits.verify_slots.max(1))),
            queued: AtomicUsize::new(0),
            peers: Attempts::new(limits.max_attempts, limits.window),
            names: Attempts::new(limits.max_attempts, limits.window),
            registrations: Attempts::new(limits.max_attempts, limits.window),
            checks: AtomicU64::new(0),
            limits,
        }
    }

    /// Verifies `secret` against `hash` for `name` (`client:<id>` or `user:<name>`) from
    /// `peer`. `Ok(false)` is a wrong secret, counted against both budgets.
    pub async fn verify(
        &self,
        peer: &str,
        name: &str,
        hash: PasswordHash,
        secret: Secret,
    ) -> Result<bool, Refused> {
        let mut attempt = Attempt::begin(self, peer, name)?;
        let permit = self.slot().await.inspect_err(|_| attempt.failed = false)?;
        self.checks.fetch_add(1, Ordering::Relaxed);
        // The permit moves into the blocking task: a caller that hangs up does not free its
        // slot before the verification ends.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            secret.0.len() <= MAX_SECRET_LEN
                && Argon2::default()
                    .verify_password(secret.0.as_bytes(), &hash)
                    .is_ok()
        })
        .await
        .unwrap_or(false);
        attempt.failed = !ok;
        Ok(ok)
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.limits.verify_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::Busy);
        }
        // Leaves the queue however the wait ends (the caller may hang up).
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _queued = Queued(&self.queued);
        match tokio::time::timeout(
            self.limits.verify_wait,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Busy),
        }
    }

    /// Counts one client registration from `peer`, within the same budget as attempts.
    pub fn register_attempt(&self, peer: &str) -> Result<(), Refused> {
        self.registrations.begin(peer)?;
        self.registrations.end(peer, true);
        Ok(())
    }

    /// How many argon2 verifications have run.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// How many verifications wait for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Takes every slot until the guard drops: tests and demos use it to fill the queue
    /// deterministically.
    pub fn hold_all_slots(&self) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(self.limits.verify_slots.max(1)).ok()?;
        Arc::clone(&self.slots).try_acquire_many_owned(n).ok()
    }
}

/// One attempt, counted in both budgets while it runs, and as a failure unless it succeeded
/// (a caller that hangs up mid-verification counts as failed).
struct Attempt<'a> {
    gate: &'a Gate,
    peer: Option<&'a str>,
    name: Option<&'a str>,
    failed: bool,
}

impl<'a> Attempt<'a> {
    fn begin(gate: &'a Gate, peer: &'a str, name: &'a str) -> Result<Attempt<'a>, Refused> {
        let mut attempt = Attempt {
            gate,
            peer: None,
            name: None,
            failed: false,
        };
        gate.peers.begin(peer)?;
        attempt.peer = Some(peer);
        gate.names.begin(name)?;
        attempt.name = Some(name);
        attempt.failed = true;
        Ok(attempt)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.gate.peers.end(peer, self.failed);
        }
        if let Some(name) = self.name {
            self.gate.names.end(name, self.failed);
        }
    }
}

/// Attempts per key in a fixed window.
#[derive(Debug)]
struct Attempts {
    max: u32,
    window: Duration,
    /// Most keys tracked at once ([`MAX_TRACKED`]).
    cap: usize,
    counters: Mutex<HashMap<String, Counter>>,
}

#[derive(Debug)]
struct Counter {
    since: Instant,
    /// The last attempt (or refusal): the least recently used counter is evicted first.
    touched: Instant,
    failures: u32,
    in_flight: u32,
    refusals: u32,
}

impl Attempts {
    fn new(max: u32, window: Duration) -> Attempts {
        Attempts::with_cap(max, window, MAX_TRACKED)
    }

    /// Tracking at most `cap` keys.
    fn with_cap(max: u32, window: Duration, cap: usize) -> Attempts {
        Attempts {
            max: max.max(1),
            window,
            cap: cap.max(1),
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counter>> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an attempt: `Ok` counted (end it with [`end`](Attempts::end)), `Err` over
    /// budget. A full table makes room: expired counters go, else the least recently used
    /// one (idle ones first).
    fn begin(&self, key: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let mut counters = self.lock();
        if !counters.contains_key(key) && counters.len() >= self.cap {
            let window = self.window;
            counters.retain(|_, c| c.in_flight > 0 || now.duration_since(c.since) < window);
            if counters.len() >= self.cap {
                let oldest = counters
                    .iter()
                    .min_by_key(|(_, c)| (c.in_flight > 0, c.touched))
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    counters.remove(&oldest);
                }
            }
        }
        let counter = counters.entry(key.to_owned()).or_insert(Counter {
            since: now,
            touched: now,
            failures: 0,
            in_flight: 0,
            refusals: 0,
        });
        counter.touched = now;
        let elapsed = now.duration_since(counter.since);
        if elapsed >= self.window {
            counter.since = now;
            counter.failures = 0;
            counter.refusals = 0;
        }
        if counter.failures + counter.in_flight >= self.max {
            let left = self
                .window
                .saturating_sub(now.duration_since(counter.since));
            let retry = if counter.failures == 0 {
                1
            } else {
                left.as_secs() + 1
            };
            counter.refusals = counter.refusals.saturating_add(1);
            return Err(Refused::TooManyAttempts {
                retry,
                first: counter.refusals == 1,
            });
        }
        counter.in_flight += 1;
        Ok(())
    }

    fn end(&self, key: &str, failed: bool) {
        if let Some(counter) = self.lock().get_mut(key) {
            counter.in_flight = counter.in_flight.saturating_sub(1);
            if failed {
                counter.failures = counter.failures.saturating_add(1);
            }
        }
    }
}

/// The key of a peer's budget: its IPv4 address, or its IPv6 /64 (one host usually has a
/// whole /64); `unknown` when the server was not started with connection info (then every
/// peer shares one budget: stricter, never looser).
pub fn peer_key(peer: Option<SocketAddr>) -> String {
    match peer.map(|p| p.ip()) {
        None => "unknown".to_owned(),
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = ip.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn attempts_in_flight_and_failures_share_one_budget() {
        let attempts = Attempts::new(3, Duration::from_secs(60));
        assert_eq!(attempts.begin("a"), Ok(()));
        assert_eq!(attempts.begin("a"), Ok(()));
        attempts.end("a", true);
        assert_eq!(attempts.begin("a"), Ok(()));
        // One failure and two in flight: full.
        assert!(matches!(
            attempts.begin("a"),
            Err(Refused::TooManyAttempts { first: true, .. })
        ));
        assert!(matches!(
            attempts.begin("a"),
            Err(Refused::TooManyAttempts { first: false, .. })
        ));
        // Successes free their place; failures keep it.
        attempts.end("a", false);
        assert_eq!(attempts.begin("b"), Ok(()));
        assert_eq!(attempts.begin("a"), Ok(()));
    }

    #[test]
    fn a_full_table_still_tracks_and_limits_a_new_key() {
        let attempts = Attempts::with_cap(2, Duration::from_secs(60), 3);
        // The table full of keys, each over its budget, none expired.
        for key in ["k0", "k1", "k2"] {
            for _ in 0..2 {
                assert!(attempts.begin(key).is_ok());
                attempts.end(key, true);
            }
            assert!(attempts.begin(key).is_err(), "{key}");
        }
        // A new key gets its budget, and no more.
        for _ in 0..2 {
            assert!(attempts.begin("new").is_ok());
            attempts.end("new", true);
        }
        assert!(matches!(
            attempts.begin("new"),
            Err(Refused::TooManyAttempts { first: true, .. })
        ));
        assert!(attempts.lock().len() <= 3);
    }
}
