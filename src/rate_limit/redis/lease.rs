//! Batching: cells a round trip took from Redis beyond its own request, lent to this replica
//! for the same client's next requests (see [`RedisQuotasBuilder::batch`]); topped up off the
//! request path when half of them are spent; and, once Redis has refused a client, the time
//! before which it would refuse it again, so that those requests are refused here.
//!
//! The request path takes no lock that another client's requests take: leases are found in
//! a sharded map by the request's borrowed [`Caller`] (no key is built, nothing allocated),
//! and a lease is spent with one compare-and-swap on a word holding its cells and their
//! expiry together. At most one round trip per client and replica is under way at a time
//! (a [`Flight`]): requests that find no cell while one is wait for it, and spend the cells
//! it brings, instead of each asking Redis.
//!
//! [`RedisQuotasBuilder::batch`]: super::RedisQuotasBuilder::batch

use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::rate_limit::Caller;

/// How many clients' leases are kept at most; past it the least recently used are forgotten
/// (their cells are lost, which only makes the limit stricter).
const CAPACITY: usize = 65_536;

/// The low bits of [`Slot::lent`] that count cells (at most 1023, with the largest batch).
const CELL_BITS: u32 = 16;
const CELL_MASK: u64 = (1 << CELL_BITS) - 1;
/// The largest expiry a lent word holds, in ms since the epoch (about 8 900 years).
const MAX_MS: u64 = u64::MAX >> CELL_BITS;

/// The cells lent to this replica, per client.
pub(super) struct Leases {
    /// Cells one round trip may take; 1: batching is off.
    batch: u32,
    max_age: Duration,
    epoch: Instant,
    slots: quick_cache::sync::Cache<LeaseKey, Arc<Slot>>,
}

/// Whose lease: a caller, or the anonymous requests (`None`).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct LeaseKey(pub(super) Option<Caller<'static>>);

/// A [`LeaseKey`] borrowed from the request, for lookups that allocate nothing.
struct LeaseRef<'k, 'a>(Option<&'k Caller<'a>>);

/// One hash for the owned and the borrowed key.
fn hash_key<H: Hasher>(caller: Option<&Caller<'_>>, state: &mut H) {
    match caller {
        None => state.write_u8(0),
        Some(caller) => {
            state.write_u8(1);
            caller.hash(state);
        }
    }
}

impl Hash for LeaseKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.0.as_ref(), state);
    }
}

impl Hash for LeaseRef<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_key(self.0, state);
    }
}

impl quick_cache::Equivalent<LeaseKey> for LeaseRef<'_, '_> {
    fn equivalent(&self, key: &LeaseKey) -> bool {
        match (self.0, key.0.as_ref()) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// One client's lease.
pub(super) struct Slot {
    /// The Redis key of the client's bucket.
    pub(super) bucket: Box<str>,
    /// The lent cells and when they expire, in one word so that one compare-and-swap spends
    /// a cell that is still fresh: `(ms since the epoch) << 16 | cells`.
    lent: AtomicU64,
    /// Redis refused the client until then (µs since the epoch; 0: it did not).
    refused_until: AtomicU64,
    /// A top-up starts once the held cells fall to this: half of what the last grant left
    /// here, so that a small grant (a slow quota's) is not topped up on every request.
    low: AtomicU32,
    /// A round trip for this client is under way ([`Flight`]).
    flying: AtomicBool,
    /// Woken when that round trip is over.
    landed: Notify,
}

fn pack(until_ms: u64, cells: u32) -> u64 {
    (until_ms.min(MAX_MS) << CELL_BITS) | (u64::from(cells) & CELL_MASK)
}

fn unpack(word: u64) -> (u64, u32) {
    // The mask keeps the value below 2^16: the cast is exact.
    (word >> CELL_BITS, (word & CELL_MASK) as u32)
}

impl Slot {
    fn new(bucket: String) -> Self {
        Slot {
            bucket: bucket.into_boxed_str(),
            lent: AtomicU64::new(0),
            refused_until: AtomicU64::new(0),
            low: AtomicU32::new(0),
            flying: AtomicBool::new(false),
            landed: Notify::new(),
        }
    }

    /// The cells held at `now` (ms since the epoch).
    fn cells(&self, now: u64) -> u32 {
        let (until, cells) = unpack(self.lent.load(Ordering::Acquire));
        if until > now { cells } else { 0 }
    }

    /// Waits until the round trip under way for this client is over, at most `within`.
    pub(super) async fn landing(&self, within: Duration) {
        let mut landed = pin!(self.landed.notified());
        // Registered before looking, so that a landing in between is not missed.
        landed.as_mut().enable();
        if !self.flying.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(within, landed).await;
    }
}

/// The one round trip under way for a client, on this replica. Dropping it (when the round
/// trip is over, whatever its outcome, or when the request waiting for it goes away) wakes
/// the requests waiting for it.
pub(super) struct Flight(Arc<Slot>);

impl Flight {
    /// The flight for `slot`, unless one is under way already.
    pub(super) fn start(slot: &Arc<Slot>) -> Option<Self> {
        if slot.flying.load(Ordering::Relaxed)
            || slot
                .flying
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(Flight(Arc::clone(slot)))
    }

    pub(super) fn slot(&self) -> &Arc<Slot> {
        &self.0
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.flying.store(false, Ordering::Release);
        self.0.landed.notify_waiters();
    }
}

/// What this replica can decide alone.
pub(super) enum Take {
    /// A lent cell admits the request. With a flight: half the cells are spent and no round
    /// trip is under way, so the caller tops them up (in the background).
    Admit(Option<Flight>),
    /// Redis refused this client until later: refused for this long, without asking.
    Refuse(Duration),
    /// Redis must decide.
    Miss,
}

impl Leases {
    pub(super) fn new(batch: u32, max_age: Duration) -> Self {
        Leases {
            batch,
            max_age,
            epoch: Instant::now(),
            slots: quick_cache::sync::Cache::new(CAPACITY),
        }
    }

    /// Cells one round trip may take.
    pub(super) fn batch(&self) -> u32 {
        self.batch
    }

    /// µs since the epoch (when Redis refused a client until).
    fn us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// ms since the epoch (when lent cells expire), rounded down: a lease ends at most 1 ms
    /// early, never late.
    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(MAX_MS)
    }

    /// Spends a cell lent earlier for `caller`, if one is left and still fresh at `now`; or
    /// refuses the request when Redis refused this client until after `now`. Allocation-free.
    pub(super) fn take(&self, caller: Option<&Caller<'_>>, now: Instant) -> Take {
        if self.batch <= 1 {
            return Take::Miss;
        }
        match self.slots.get(&LeaseRef(caller)) {
            Some(slot) => self.take_from(&slot, now),
            None => Take::Miss,
        }
    }

    /// As [`take`](Self::take), from a lease in hand.
    /// Cells held are spent first, even while Redis refuses the client: they were taken
    /// from its bucket already, and leaving them unspent would admit fewer requests than
    /// the quota.
    pub(super) fn take_from(&self, slot: &Arc<Slot>, now: Instant) -> Take {
        let ms = self.ms(now);
        let mut word = slot.lent.load(Ordering::Acquire);
        let left = loop {
            let (until, cells) = unpack(word);
            if cells == 0 || until <= ms {
                let refused = slot.refused_until.load(Ordering::Acquire);
                let now = self.us(now);
                if refused > now {
                    return Take::Refuse(Duration::from_micros(refused - now));
                }
                return Take::Miss;
            }
            match slot.lent.compare_exchange_weak(
                word,
                pack(until, cells - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break cells - 1,
                Err(current) => word = current,
            }
        };
        if left <= slot.low.load(Ordering::Relaxed) {
            return Take::Admit(Flight::start(slot));
        }
        Take::Admit(None)
    }

    /// The lease of `key`, made (with its bucket's Redis key) if it has none yet.
    pub(super) fn slot(
        &self,
        key: LeaseKey,
        bucket: impl FnOnce(&LeaseKey) -> String,
    ) -> Arc<Slot> {
        let made = self.slots.get_or_insert_with(&key, || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot::new(bucket(&key))))
        });
        match made {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }

    /// How many cells a top-up of `slot` may take now: what is missing to `batch - 1`.
    pub(super) fn top_up(&self, slot: &Slot, now: Instant) -> u32 {
        (self.batch - 1).saturating_sub(slot.cells(self.ms(now)))
    }

    /// Redis refused `slot`'s client until `until` (no cell conforms before it): requests of
    /// it are refused here until then.
    pub(super) fn refuse_until(&self, slot: &Slot, until: Instant, now: Instant) {
        if self.batch <= 1 || until <= now {
            return;
        }
        slot.refused_until.store(self.us(until), Ordering::Release);
    }

    /// Keeps `extra` cells Redis granted beyond the requests it decided, at most `batch - 1`
    /// for a client, until `max_age` after the round trip was `sent`; `now` is when it came
    /// back.
    pub(super) fn lend(&self, slot: &Slot, extra: u64, sent: Instant, now: Instant) {
        let Ok(extra @ 1..) = u32::try_from(extra) else {
            return;
        };
        if self.batch <= 1 {
            return;
        }
        let (until, now) = (self.ms(sent + self.max_age), self.ms(now));
        let cap = self.batch - 1;
        let lend = |word| {
            let (held_until, held) = unpack(word);
            if held == 0 || held_until <= now {
                pack(until, extra.min(cap))
            } else {
                // Cells lent later never extend the life of those lent earlier, and
                // concurrent round trips never leave more than `batch - 1` cells here.
                pack(held_until.min(until), held.saturating_add(extra).min(cap))
            }
        };
        let before = slot
            .lent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| Some(lend(word)))
            .unwrap_or_else(|word| word);
        slot.low
            .store(unpack(lend(before)).1 / 2, Ordering::Relaxed);
        slot.refused_until.store(0, Ordering::Release);
    }

    /// The number of clients holding a lease (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn caller(id: &str) -> Caller<'static> {
        Caller::Client {
            issuer: Cow::Borrowed("https://issuer.test"),
            id: Cow::Owned(id.to_owned()),
        }
    }

    impl Leases {
        fn slot_of(&self, id: &str) -> Arc<Slot> {
            self.slot(LeaseKey(Some(caller(id))), |_| format!("q:{{{id}}}"))
        }

        fn lend_to(&self, id: &str, extra: u64, sent: Instant, now: Instant) {
            let slot = self.slot_of(id);
            self.lend(&slot, extra, sent, now);
        }

        fn held(&self, id: &str, now: Instant) -> u32 {
            self.slots
                .get(&LeaseRef(Some(&caller(id))))
                .map_or(0, |slot| slot.cells(self.ms(now)))
        }

        fn took(&self, id: &str, now: Instant) -> bool {
            matches!(self.take(Some(&caller(id)), now), Take::Admit(_))
        }
    }

    /// Times are given, not read from the clock: a loaded machine cannot age a lease
    /// between two lines (a 5 ms lease once expired before its first `take`).
    #[test]
    fn lent_cells_are_spent_once_capped_and_never_outlive_their_grant() {
        let leases = Leases::new(8, Duration::from_millis(5));
        let t0 = leases.epoch;
        let ms = |n| t0 + Duration::from_millis(n);
        leases.lend_to("k", 3, t0, ms(1));
        assert!((0..3).all(|_| leases.took("k", ms(2))), "three lent cells");
        assert!(!leases.took("k", ms(2)), "spent");
        assert!(!leases.took("other", ms(2)));
        // Concurrent grants add up to `batch - 1` cells at most.
        for _ in 0..3 {
            leases.lend_to("k", 7, ms(2), ms(3));
        }
        assert_eq!(leases.held("k", ms(3)), 7);
        // A later grant never extends the life of earlier cells.
        leases.lend_to("k", 1, ms(4), ms(4));
        assert_eq!(leases.held("k", ms(4)), 7);
        assert!(leases.took("k", ms(6)), "fresh until its grant's end");
        assert!(!leases.took("k", ms(7)), "expired");
        // A grant that comes back after its lease would have ended lends nothing usable.
        leases.lend_to("late", 3, ms(10), ms(20));
        assert!(!leases.took("late", ms(20)));
    }

    #[test]
    fn half_spent_cells_start_one_top_up_at_a_time() {
        let leases = Leases::new(9, Duration::from_secs(60));
        let t0 = leases.epoch;
        leases.lend_to("k", 8, t0, t0);
        let mut flights = Vec::new();
        let mut refills = Vec::new();
        for _ in 0..5 {
            match leases.take(Some(&caller("k")), t0) {
                Take::Admit(flight) => {
                    refills.push(flight.is_some());
                    flights.extend(flight);
                }
                _ => panic!("a lent cell"),
            }
        }
        // 8 cells: 7, 6, 5 left, then 4 (half of 8): one top-up, not one per request.
        assert_eq!(refills, [false, false, false, true, false]);
        let slot = leases.slot_of("k");
        assert_eq!(
            leases.top_up(&slot, t0),
            8 - 3,
            "what is missing to batch - 1"
        );
        leases.lend(&slot, 5, t0, t0);
        drop(flights);
        assert_eq!(leases.held("k", t0), 8, "capped at batch - 1");
        assert!(matches!(
            leases.take(Some(&caller("k")), t0),
            Take::Admit(None)
        ));
    }

    #[test]
    fn one_flight_per_client_and_its_end_wakes_who_waits_for_it() {
        let leases = Leases::new(4, Duration::from_secs(60));
        let slot = leases.slot_of("k");
        let flight = Flight::start(&slot).expect("the first");
        assert!(Flight::start(&slot).is_none(), "one at a time");
        assert!(Flight::start(&leases.slot_of("other")).is_some());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let waiting = tokio::spawn({
                let slot = Arc::clone(&slot);
                async move {
                    let started = Instant::now();
                    slot.landing(Duration::from_secs(30)).await;
                    started.elapsed()
                }
            });
            tokio::task::yield_now().await;
            drop(flight);
            let waited = waiting.await.expect("task");
            assert!(waited < Duration::from_secs(10), "{waited:?}");
        });
        assert!(Flight::start(&slot).is_some(), "landed");
    }

    #[test]
    fn a_client_redis_refused_is_refused_here_until_its_next_cell() {
        let leases = Leases::new(4, Duration::from_secs(60));
        let t0 = leases.epoch;
        let ms = |n| t0 + Duration::from_millis(n);
        let slot = leases.slot_of("k");
        leases.refuse_until(&slot, ms(100), t0);
        assert!(matches!(
            leases.take(Some(&caller("k")), ms(40)),
            Take::Refuse(wait) if wait == Duration::from_millis(60)
        ));
        assert!(
            matches!(leases.take(Some(&caller("k")), ms(100)), Take::Miss),
            "Redis decides again"
        );
        // Cells lent later lift the refusal.
        leases.refuse_until(&slot, ms(200), ms(100));
        leases.lend(&slot, 2, ms(100), ms(100));
        assert!(leases.took("k", ms(101)));
        // Cells held when Redis refuses a top-up are spent first (they were taken from the
        // bucket already), then the refusal holds.
        leases.refuse_until(&slot, ms(300), ms(101));
        assert!(
            leases.took("k", ms(102)),
            "a held cell, though Redis refused"
        );
        assert!(matches!(
            leases.take(Some(&caller("k")), ms(103)),
            Take::Refuse(wait) if wait == Duration::from_millis(197)
        ));
        // Never without batching: every request is Redis' then.
        let off = Leases::new(1, Duration::from_secs(60));
        let slot = off.slot_of("k");
        off.refuse_until(&slot, ms(100), t0);
        assert!(matches!(off.take(Some(&caller("k")), ms(1)), Take::Miss));
    }

    #[test]
    fn nothing_is_lent_with_batching_off_or_for_a_single_cell() {
        let off = Leases::new(1, Duration::from_secs(60));
        let now = Instant::now();
        off.lend_to("k", 3, now, now);
        assert!(!off.took("k", now));
        assert_eq!(off.held("k", now), 0);
        let on = Leases::new(8, Duration::from_secs(60));
        on.lend_to("k", 0, now, now);
        assert_eq!(on.held("k", now), 0);
    }

    #[test]
    fn clients_and_the_anonymous_requests_have_leases_of_their_own() {
        let leases = Leases::new(4, Duration::from_secs(60));
        let t0 = leases.epoch;
        let anonymous = leases.slot(LeaseKey(None), |_| "q:{anonymous}".to_owned());
        leases.lend(&anonymous, 1, t0, t0);
        // A subject of the same name as a client, a custom key: other leases.
        let sub = Caller::Subject {
            issuer: Cow::Borrowed("https://issuer.test"),
            sub: Cow::Borrowed("k"),
        };
        let other = Caller::Other(Cow::Borrowed("k"));
        leases.lend_to("k", 1, t0, t0);
        for c in [&sub, &other] {
            assert!(matches!(leases.take(Some(c), t0), Take::Miss));
        }
        assert!(matches!(leases.take(None, t0), Take::Admit(_)));
        assert!(matches!(leases.take(None, t0), Take::Miss));
        assert!(leases.took("k", t0));
        assert_eq!(leases.len(), 2);
        assert_eq!(&*anonymous.bucket, "q:{anonymous}");
    }

    #[test]
    fn concurrent_takes_spend_each_cell_once() {
        let leases = Arc::new(Leases::new(64, Duration::from_secs(60)));
        let t0 = leases.epoch;
        leases.lend_to("k", 63, t0, t0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let leases = Arc::clone(&leases);
                std::thread::spawn(move || (0..40).filter(|_| leases.took("k", t0)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(admitted, 63);
    }
}
