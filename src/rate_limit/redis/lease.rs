//! Batching: cells a round trip took from Redis beyond its own request, lent to this replica
//! for the same client's next requests (see [`RedisQuotasBuilder::batch`]).
//!
//! [`RedisQuotasBuilder::batch`]: super::RedisQuotasBuilder::batch

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Past this many clients holding lent cells, expired ones are swept out.
const SWEEP_AT: usize = 1024;

/// The cells lent to this replica, per bucket.
pub(super) struct Leases {
    /// Cells one round trip may take; 1: batching is off.
    batch: u32,
    max_age: Duration,
    by_bucket: Mutex<HashMap<String, Lease>>,
}

/// Cells lent by Redis to this replica, to be spent before `until`.
struct Lease {
    cells: u32,
    until: Instant,
}

impl Leases {
    pub(super) fn new(batch: u32, max_age: Duration) -> Self {
        Leases {
            batch,
            max_age,
            by_bucket: Mutex::new(HashMap::new()),
        }
    }

    /// Cells one round trip may take.
    pub(super) fn batch(&self) -> u32 {
        self.batch
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.by_bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends a cell lent earlier for `bucket`, if one is left and still fresh at `now`.
    pub(super) fn take(&self, bucket: &str, now: Instant) -> bool {
        if self.batch <= 1 {
            return false;
        }
        let mut leases = self.lock();
        let Some(lease) = leases.get_mut(bucket) else {
            return false;
        };
        let fresh = lease.until > now;
        if fresh {
            lease.cells -= 1;
        }
        if !fresh || lease.cells == 0 {
            leases.remove(bucket);
        }
        fresh
    }

    /// Keeps the `taken - 1` cells Redis granted beyond this request, at most `batch - 1`
    /// for a bucket, until `max_age` after the round trip was `sent`; `now` is when it came
    /// back.
    pub(super) fn lend(&self, bucket: String, taken: u64, sent: Instant, now: Instant) {
        let Ok(extra @ 1..) = u32::try_from(taken.saturating_sub(1)) else {
            return;
        };
        if self.batch <= 1 {
            return;
        }
        let until = sent + self.max_age;
        let mut leases = self.lock();
        if leases.len() >= SWEEP_AT {
            leases.retain(|_, lease| lease.until > now);
        }
        let lease = leases.entry(bucket).or_insert(Lease { cells: 0, until });
        if lease.until <= now {
            *lease = Lease { cells: 0, until };
        }
        // Cells lent later never extend the life of those lent earlier, and concurrent round
        // trips never leave more than `batch - 1` cells here: the rest are dropped.
        lease.cells = lease.cells.saturating_add(extra).min(self.batch - 1);
        lease.until = lease.until.min(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Leases {
        fn held(&self, bucket: &str) -> Option<(u32, Instant)> {
            self.lock().get(bucket).map(|l| (l.cells, l.until))
        }
    }

    /// Times are given, not read from the clock: a loaded machine cannot age a lease
    /// between two lines (a 5 ms lease once expired before its first `take`).
    #[test]
    fn lent_cells_are_spent_once_capped_and_never_outlive_their_grant() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let leases = Leases::new(8, Duration::from_millis(5));
        leases.lend("k".to_owned(), 4, t0, ms(1));
        assert!((0..3).all(|_| leases.take("k", ms(2))), "three lent cells");
        assert!(!leases.take("k", ms(2)), "spent");
        assert!(!leases.take("other", ms(2)));
        // Concurrent grants add up to `batch - 1` cells at most.
        for _ in 0..3 {
            leases.lend("k".to_owned(), 8, ms(2), ms(3));
        }
        let (cells, until) = leases.held("k").expect("held");
        assert_eq!((cells, until), (7, ms(7)));
        // A later grant never extends the life of earlier cells.
        leases.lend("k".to_owned(), 2, ms(4), ms(4));
        assert_eq!(leases.held("k"), Some((7, ms(7))));
        assert!(leases.take("k", ms(6)), "fresh until its grant's end");
        assert!(!leases.take("k", ms(7)), "expired");
        assert_eq!(leases.held("k"), None);
        // A grant that comes back after its lease would have ended lends nothing usable.
        leases.lend("late".to_owned(), 4, ms(10), ms(20));
        assert!(!leases.take("late", ms(20)));
    }

    #[test]
    fn nothing_is_lent_with_batching_off_or_for_a_single_cell() {
        let off = Leases::new(1, Duration::from_secs(60));
        let now = Instant::now();
        off.lend("k".to_owned(), 4, now, now);
        assert!(!off.take("k", now));
        assert_eq!(off.held("k"), None);
        let on = Leases::new(8, Duration::from_secs(60));
        on.lend("k".to_owned(), 1, now, now);
        assert_eq!(on.held("k"), None);
    }

    #[test]
    fn expired_leases_are_swept_out_past_the_threshold() {
        let leases = Leases::new(4, Duration::from_millis(1));
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            leases.lend(format!("k{i}"), 2, t0, t0);
        }
        assert_eq!(leases.lock().len(), SWEEP_AT);
        let later = t0 + Duration::from_millis(2);
        leases.lend("last".to_owned(), 2, later, later);
        assert_eq!(leases.lock().len(), 1);
    }
}
