//! The answer cache: introspection answers under the SHA-256 digest of their token, each
//! kept for its own time, bounded in entries and bytes like the verified-token cache.
//!
//! Why a SHA-256 digest, computed on every lookup: the cache must not hold tokens, and its
//! key must *be* the token's identity, since a hit is an acceptance. A 256-bit digest is
//! collision-resistant, so equal keys mean equal tokens and the map's own comparison is
//! the check; the digest of a token reveals nothing a caller could use. A keyed 64-bit fast
//! hash would be cheaper to compute, but is not an identity: it would need a stored digest
//! beside it, compared on every hit, hence the same SHA-256 on every hit anyway (on a miss it
//! would save one, which is followed by a network request). One SHA-256 block covers a token
//! of up to 55 bytes; `benches/introspection.rs` measures the lookup.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use sha2::{Digest as _, Sha256};

use super::answer::Answer;

/// A token's SHA-256 digest: the cache and flight key.
pub(crate) type Key = [u8; 32];

/// The key of `token`. No allocation.
pub(crate) fn digest(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
struct Entry {
    answer: Answer,
    until: Instant,
}

pub(crate) struct AnswerCache {
    cache: quick_cache::sync::Cache<Key, Entry, Weight>,
    /// Unix second at or after which the next sweep of stale entries runs.
    next_sweep: AtomicI64,
}

/// How often stale entries are swept out, at most. They are never served in between (every
/// hit checks its time); the sweep only returns their memory early.
const SWEEP_EVERY: i64 = 5;
/// Bookkeeping per entry beyond the answer: the key, the `Arc`s, the map slot.
const ENTRY_OVERHEAD: u64 = 128;

/// Weight of an entry: its estimated size in bytes, but at least `floor` =
/// `max_bytes / max_entries`, so that neither bound can be exceeded.
#[derive(Clone)]
struct Weight {
    floor: u64,
}

impl Weighter<Key, Entry> for Weight {
    fn weight(&self, _key: &Key, entry: &Entry) -> u64 {
        let size = match &entry.answer {
            Answer::Active(i) => i.size,
            _ => 0,
        };
        (size + ENTRY_OVERHEAD).max(self.floor)
    }
}

impl AnswerCache {
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let floor = (max_bytes / max_entries as u64).max(1);
        AnswerCache {
            cache: quick_cache::sync::Cache::with_weighter(
                max_entries,
                max_bytes,
                Weight { floor },
            ),
            next_sweep: AtomicI64::new(0),
        }
    }

    /// The answer cached for `key`, if it is still fresh. `now` (Unix seconds) paces the
    /// sweep. No allocation.
    pub(crate) fn get(&self, key: &Key, now: i64) -> Option<Answer> {
        self.sweep(now);
        let entry = self.cache.get(key)?;
        if Instant::now() < entry.until {
            return Some(entry.answer);
        }
        self.cache.remove(key);
        None
    }

    /// Keeps `answer` for `ttl` (an active one never past its `exp`, counted from `now`).
    /// An unavailable answer, or one whose time is zero, is not kept.
    pub(crate) fn insert(
        &self,
        key: Key,
        answer: &Answer,
        now: i64,
        ttl: Duration,
        negative_ttl: Duration,
    ) {
        let keep = match answer {
            Answer::Active(i) => {
                let left = i.facts().exp.saturating_sub(now).max(0);
                ttl.min(Duration::from_secs(left.unsigned_abs()))
            }
            Answer::Inactive | Answer::Refused(_) => negative_ttl,
            Answer::Unavailable(_) => return,
        };
        if keep.is_zero() {
            self.cache.remove(&key);
            return;
        }
        let entry = Entry {
            answer: answer.clone(),
            until: Instant::now() + keep,
        };
        self.cache.insert(key, entry);
    }

    /// Drops stale entries, at most once per [`SWEEP_EVERY`] seconds; one caller sweeps,
    /// the others go on at once.
    fn sweep(&self, now: i64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(due, now + SWEEP_EVERY, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let instant = Instant::now();
        self.cache.retain(|_, entry| instant < entry.until);
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Checks, Profile};
    use crate::error::{AuthError, ErrorKind};
    use crate::introspection::answer::{Unavailable, read};

    const NOW: i64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(60);

    fn rules() -> Box<[Checks]> {
        Box::new([Checks::new(
            "https://issuer.example".into(),
            Box::new(["https://api.example".into()]),
            Duration::ZERO,
            Profile::Jwt,
            None,
            false,
        )])
    }

    fn active(exp: i64, pad: usize) -> Answer {
        let body = serde_json::json!({"active": true, "exp": exp, "pad": "x".repeat(pad)});
        let answer = read(body.to_string().as_bytes(), &rules(), None, NOW, TTL);
        assert!(matches!(answer, Answer::Active(_)), "{answer:?}");
        answer
    }

    fn until(cache: &AnswerCache, key: &Key) -> Option<Duration> {
        cache
            .cache
            .get(key)
            .map(|e| e.until.saturating_duration_since(Instant::now()))
    }

    #[test]
    fn the_key_is_the_sha256_digest_of_the_token() {
        // FIPS 180-2 test vector.
        assert_eq!(
            digest("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
        let cache = AnswerCache::new(8, 1 << 20);
        cache.insert(digest("tok-1"), &Answer::Inactive, NOW, TTL, TTL);
        assert!(cache.get(&digest("tok-1"), NOW).is_some());
        assert!(cache.get(&digest("tok-2"), NOW).is_none());
        // The map holds digests only.
        let keys = std::cell::RefCell::new(Vec::new());
        cache.cache.retain(|k, _| {
            keys.borrow_mut().push(*k);
            true
        });
        assert_eq!(keys.into_inner(), [digest("tok-1")]);
    }

    #[test]
    fn active_answers_live_min_of_exp_and_ttl_negative_ones_the_negative_ttl() {
        let cache = AnswerCache::new(8, 1 << 20);
        let second = Duration::from_secs(1);
        let short = digest("short");
        cache.insert(short, &active(NOW + 10, 0), NOW, TTL, second);
        let left = until(&cache, &short).expect("cached");
        assert!(
            left <= Duration::from_secs(10) && left > Duration::from_secs(9),
            "{left:?}"
        );
        let long = digest("long");
        cache.insert(long, &active(NOW + 3600, 0), NOW, TTL, second);
        let left = until(&cache, &long).expect("cached");
        assert!(left <= TTL && left > TTL - second, "{left:?}");
        for (token, answer) in [
            ("inactive", Answer::Inactive),
            (
                "refused",
                Answer::Refused(AuthError::new(ErrorKind::InvalidAudience)),
            ),
        ] {
            cache.insert(digest(token), &answer, NOW, TTL, second);
            let left = until(&cache, &digest(token)).expect("cached");
            assert!(left <= second, "{left:?}");
        }
        // Never cached: unavailable answers, no time left before `exp`, a zero ttl.
        let none = [
            (
                "down",
                Answer::Unavailable(Unavailable::Overloaded),
                NOW,
                TTL,
            ),
            ("expiring", active(NOW + 10, 0), NOW + 10, TTL),
            ("zero", active(NOW + 60, 0), NOW, Duration::ZERO),
        ];
        for (token, answer, now, ttl) in none {
            cache.insert(digest(token), &answer, now, ttl, second);
            assert!(cache.get(&digest(token), now).is_none(), "{token}");
        }
    }

    #[test]
    fn stale_entries_are_not_served_and_are_swept() {
        let cache = AnswerCache::new(8, 1 << 20);
        let tiny = Duration::from_millis(300);
        cache.insert(digest("a"), &Answer::Inactive, NOW, TTL, tiny);
        cache.insert(digest("b"), &Answer::Inactive, NOW, TTL, tiny);
        cache.insert(digest("c"), &active(NOW + 60, 0), NOW, TTL, tiny);
        assert!(cache.get(&digest("a"), NOW).is_some());
        std::thread::sleep(tiny * 2);
        assert!(cache.get(&digest("a"), NOW).is_none(), "stale");
        assert_eq!(cache.len(), 2, "the stale entry asked for is dropped");
        // The next sweep (due at NOW + SWEEP_EVERY) drops the other stale one.
        assert!(cache.get(&digest("c"), NOW + SWEEP_EVERY).is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_flood_of_distinct_tokens_stays_within_the_bounds() {
        let cache = AnswerCache::new(64, 64 * 4096);
        for n in 0..400 {
            cache.insert(
                digest(&format!("t{n}")),
                &active(NOW + 60, 100),
                NOW,
                TTL,
                TTL,
            );
        }
        assert!(cache.len() <= 64 && cache.len() > 0, "{}", cache.len());
        assert!(cache.weight() <= 64 * 4096);
        // A memory bound tighter than the entry bound wins.
        let cache = AnswerCache::new(1000, 8 * 1024);
        for n in 0..200 {
            cache.insert(
                digest(&format!("t{n}")),
                &active(NOW + 60, 1000),
                NOW,
                TTL,
                TTL,
            );
        }
        assert!(cache.weight() <= 8 * 1024, "{}", cache.weight());
        assert!(
            cache.len() < 8,
            "{} entries of ~1.3 KiB in 8 KiB",
            cache.len()
        );
    }
}
