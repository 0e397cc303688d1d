//! Batching: cells a round trip took from Redis beyond its own request, lent to this replica
//! for the same client's next requests (see [`RedisQuotasBuilder::batch`]); refilled off the
//! request path when half of them are spent; and, once Redis has refused a client, the time
//! before which it would refuse it again, so that those requests are refused here.
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
    /// A background round trip for more cells is under way.
    refilling: bool,
    /// Redis said no cell conforms before then (`None`: it did not refuse).
    refused_until: Option<Instant>,
}

/// What this replica can decide alone.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Take {
    /// A lent cell admits the request; `refill`: half the cells are spent and no refill is
    /// under way, so the caller starts one (and calls [`Leases::refilled`] when it is done).
    Admit { refill: bool },
    /// Redis refused this client until later: refused for this long, without asking.
    Refuse(std::time::Duration),
    /// Redis must decide.
    Miss,
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

    /// Spends a cell lent earlier for `bucket`, if one is left and still fresh at `now`; or
    /// refuses the request when Redis refused this client until after `now`.
    pub(super) fn take(&self, bucket: &str, now: Instant) -> Take {
        if self.batch <= 1 {
            return Take::Miss;
        }
        let mut leases = self.lock();
        let Some(lease) = leases.get_mut(bucket) else {
            return Take::Miss;
        };
        if let Some(until) = lease.refused_until {
            if until > now {
                return Take::Refuse(until - now);
            }
            lease.refused_until = None;
        }
        if lease.cells == 0 || lease.until <= now {
            lease.cells = 0;
            if !lease.refilling {
                leases.remove(bucket);
            }
            return Take::Miss;
        }
        lease.cells -= 1;
        let refill = !lease.refilling && lease.cells <= (self.batch - 1) / 2;
        lease.refilling |= refill;
        Take::Admit { refill }
    }

    /// A refill started by [`take`](Self::take) is over, whatever its outcome.
    pub(super) fn refilled(&self, bucket: &str) {
        let mut leases = self.lock();
        if let Some(lease) = leases.get_mut(bucket) {
            lease.refilling = false;
            if lease.cells == 0 && lease.refused_until.is_none() {
                leases.remove(bucket);
            }
        }
    }

    /// Redis refused `bucket` until `until` (no cell conforms before it): requests of it are
    /// refused here until then.
    pub(super) fn refuse_until(&self, bucket: String, until: Instant, now: Instant) {
        if self.batch <= 1 || until <= now {
            return;
        }
        let mut leases = self.lock();
        self.sweep(&mut leases, now);
        let lease = leases.entry(bucket).or_insert(Lease {
            cells: 0,
            until: now,
            refilling: false,
            refused_until: None,
        });
        lease.refused_until = Some(until);
    }

    fn sweep(&self, leases: &mut HashMap<String, Lease>, now: Instant) {
        if leases.len() >= SWEEP_AT {
            leases.retain(|_, lease| {
                lease.refilling || lease.until > now || lease.refused_until.is_some_and(|u| u > now)
            });
        }
    }

    /// Keeps `extra` cells Redis granted beyond the requests it decided, at most `batch - 1`
    /// for a bucket, until `max_age` after the round trip was `sent`; `now` is when it came
    /// back.
    pub(super) fn lend(&self, bucket: String, extra: u64, sent: Instant, now: Instant) {
        let Ok(extra @ 1..) = u32::try_from(extra) else {
            return;
        };
        if self.batch <= 1 {
            return;
        }
        let until = sent + self.max_age;
        let mut leases = self.lock();
        self.sweep(&mut leases, now);
        let lease = leases.entry(bucket).or_insert(Lease {
            cells: 0,
            until,
            refilling: false,
            refused_until: None,
        });
        if lease.until <= now || lease.cells == 0 {
            lease.cells = 0;
            lease.until = until;
        }
        // Cells lent later never extend the life of those lent earlier, and concurrent round
        // trips never leave more than `batch - 1` cells here: the rest are dropped.
        lease.cells = lease.cells.saturating_add(extra).min(self.batch - 1);
        lease.until = lease.until.min(until);
        lease.refused_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Leases {
        fn held(&self, bucket: &str) -> Option<(u32, Instant)> {
            self.lock().get(bucket).map(|l| (l.cells, l.until))
        }

        fn took(&self, bucket: &str, now: Instant) -> bool {
            matches!(self.take(bucket, now), Take::Admit { .. })
        }
    }

    /// Times are given, not read from the clock: a loaded machine cannot age a lease
    /// between two lines (a 5 ms lease once expired before its first `take`).
    #[test]
    fn lent_cells_are_spent_once_capped_and_never_outlive_their_grant() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let leases = Leases::new(8, Duration::from_millis(5));
        leases.lend("k".to_owned(), 3, t0, ms(1));
        assert!((0..3).all(|_| leases.took("k", ms(2))), "three lent cells");
        assert!(!leases.took("k", ms(2)), "spent");
        assert!(!leases.took("other", ms(2)));
        // Concurrent grants add up to `batch - 1` cells at most.
        for _ in 0..3 {
            leases.lend("k".to_owned(), 7, ms(2), ms(3));
        }
        let (cells, until) = leases.held("k").expect("held");
        assert_eq!((cells, until), (7, ms(7)));
        // A later grant never extends the life of earlier cells.
        leases.lend("k".to_owned(), 1, ms(4), ms(4));
        assert_eq!(leases.held("k"), Some((7, ms(7))));
        assert!(leases.took("k", ms(6)), "fresh until its grant's end");
        assert!(!leases.took("k", ms(7)), "expired");
        leases.refilled("k");
        assert_eq!(leases.held("k"), None);
        // A grant that comes back after its lease would have ended lends nothing usable.
        leases.lend("late".to_owned(), 3, ms(10), ms(20));
        assert!(!leases.took("late", ms(20)));
    }

    #[test]
    fn half_spent_cells_ask_for_one_refill_at_a_time() {
        let t0 = Instant::now();
        let leases = Leases::new(9, Duration::from_secs(60));
        leases.lend("k".to_owned(), 8, t0, t0);
        let takes: Vec<Take> = (0..5).map(|_| leases.take("k", t0)).collect();
        // 8 cells: 7, 6, 5 left, then 4 (half of 8): one refill, not one per request.
        assert_eq!(
            takes,
            [false, false, false, true, false].map(|refill| Take::Admit { refill })
        );
        leases.lend("k".to_owned(), 8, t0, t0);
        leases.refilled("k");
        assert_eq!(
            leases.held("k").map(|h| h.0),
            Some(8),
            "capped at batch - 1"
        );
        assert_eq!(leases.take("k", t0), Take::Admit { refill: false });
    }

    #[test]
    fn a_client_redis_refused_is_refused_here_until_its_next_cell() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let leases = Leases::new(4, Duration::from_secs(60));
        leases.refuse_until("k".to_owned(), ms(100), t0);
        assert_eq!(
            leases.take("k", ms(40)),
            Take::Refuse(Duration::from_millis(60))
        );
        assert_eq!(leases.take("k", ms(100)), Take::Miss, "Redis decides again");
        // Never without batching: every request is Redis' then.
        let off = Leases::new(1, Duration::from_secs(60));
        off.refuse_until("k".to_owned(), ms(100), t0);
        assert_eq!(off.take("k", ms(1)), Take::Miss);
    }

    #[test]
    fn nothing_is_lent_with_batching_off_or_for_a_single_cell() {
        let off = Leases::new(1, Duration::from_secs(60));
        let now = Instant::now();
        off.lend("k".to_owned(), 3, now, now);
        assert!(!off.took("k", now));
        assert_eq!(off.held("k"), None);
        let on = Leases::new(8, Duration::from_secs(60));
        on.lend("k".to_owned(), 0, now, now);
        assert_eq!(on.held("k"), None);
    }

    #[test]
    fn expired_leases_are_swept_out_past_the_threshold() {
        let leases = Leases::new(4, Duration::from_millis(1));
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            leases.lend(format!("k{i}"), 1, t0, t0);
        }
        assert_eq!(leases.lock().len(), SWEEP_AT);
        let later = t0 + Duration::from_millis(2);
        leases.lend("last".to_owned(), 1, later, later);
        assert_eq!(leases.lock().len(), 1);
    }
}
