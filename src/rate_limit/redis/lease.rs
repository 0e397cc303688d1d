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

    /// Spends a cell lent earlier for `bucket`, if one is left and still fresh.
    pub(super) fn take(&self, bucket: &str) -> bool {
        if self.batch <= 1 {
            return false;
        }
        let mut leases = self.lock();
        let Some(lease) = leases.get_mut(bucket) else {
            return false;
        };
        let fresh = lease.until > Instant::now();
        if fresh {
            lease.cells -= 1;
        }
        if !fresh || lease.cells == 0 {
            leases.remove(bucket);
        }
        fresh
    }

    /// Keeps the `taken - 1` cells Redis granted beyond this request, at most `batch - 1`
    /// for a bucket, until `max_age` after the round trip was sent.
    pub(super) fn lend(&self, bucket: String, taken: u64, sent: Instant) {
        let Ok(extra @ 1..) = u32::try_from(taken.saturating_sub(1)) else {
            return;
        };
        if self.batch <= 1 {
            return;
        }
        let until = sent + self.max_age;
        let now = Instant::now();
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

    #[test]
    fn lent_cells_are_spent_once_capped_and_never_outlive_their_grant() {
        let leases = Leases::new(8, Duration::from_millis(5));
        leases.lend("k".to_owned(), 4, Instant::now());
        assert!((0..3).all(|_| leases.take("k")), "three lent cells");
        assert!(!leases.take("k"), "spent");
        assert!(!leases.take("other"));
        // Concurrent grants add up to `batch - 1` cells at most.
        for _ in 0..3 {
            leases.lend("k".to_owned(), 8, Instant::now());
        }
        let (cells, until) = leases.held("k").expect("held");
        assert_eq!(cells, 7);
        // A later grant never extends the life of earlier cells.
        std::thread::sleep(Duration::from_millis(1));
        leases.lend("k".to_owned(), 2, Instant::now());
        assert_eq!(leases.held("k"), Some((7, until)));
        std::thread::sleep(Duration::from_millis(10));
        assert!(!leases.take("k"), "expired");
        assert_eq!(leases.held("k"), None);
    }

    #[test]
    fn nothing_is_lent_with_batching_off_or_for_a_single_cell() {
        let off = Leases::new(1, Duration::from_secs(60));
        off.lend("k".to_owned(), 4, Instant::now());
        assert!(!off.take("k"));
        assert_eq!(off.held("k"), None);
        let on = Leases::new(8, Duration::from_secs(60));
        on.lend("k".to_owned(), 1, Instant::now());
        assert_eq!(on.held("k"), None);
    }

    #[test]
    fn expired_leases_are_swept_out_past_the_threshold() {
        let leases = Leases::new(4, Duration::ZERO);
        for i in 0..SWEEP_AT {
            leases.lend(format!("k{i}"), 2, Instant::now());
        }
        assert_eq!(leases.lock().len(), SWEEP_AT);
        leases.lend("last".to_owned(), 2, Instant::now());
        assert_eq!(leases.lock().len(), 1);
    }
}
