//! The verified-token cache: tokens that passed every check, keyed by their exact bytes.
//!
//! A hit skips the signature and the JSON parsing, but never the checks that depend on the
//! moment or the route: `exp`/`nbf` against the clock, the key still being in the key set,
//! and the route's scopes (checked by the layer). Only fully validated tokens are inserted.
//! The cache is bounded both in entries and in bytes, so a flood of distinct tokens only
//! evicts older entries. In front of the shared map, each thread keeps the last entries it
//! found ([`front`]: 64 slots, no lock), which a hit checks in exactly the same way.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, Weighter};

use crate::verified::Verified;

mod front;

/// Default bound on cached tokens.
pub(crate) const DEFAULT_CACHE_ENTRIES: usize = 4096;
/// Default bound on the cache's memory, in bytes (estimated: token, claims JSON, scopes).
pub(crate) const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

pub(crate) struct TokenCache<T> {
    cache: quick_cache::sync::Cache<
        TokenKey<T>,
        Arc<Verified<T>>,
        Weight,
        DefaultHashBuilder,
        Evictions,
    >,
    /// This cache's name in the threads' fronts ([`front`]): unique for the process's life.
    id: u64,
    /// Unix second at or after which the next sweep of expired entries runs.
    next_sweep: AtomicI64,
    /// Evictions not reported to the metrics yet.
    evicted: Arc<AtomicU64>,
}

/// A cached token: its entry, whose [`raw`](Verified::raw) bytes are the key (held once).
/// Hashed by their length and their last [`HASHED`] bytes only (the end of the signature,
/// which the issuer's key made: no caller chooses it), so that a lookup hashes two words
/// instead of hundreds of bytes; equality compares every byte, so only the exact token is
/// ever found.
struct TokenKey<T>(Arc<Verified<T>>);

/// A lookup by the bytes presented, without copying them into a key.
struct Lookup<'a>(&'a [u8]);

/// How many trailing bytes of a token are hashed: 128 bits of signature, far more than the
/// table's buckets can tell apart.
const HASHED: usize = 16;

fn hash_tail<H: Hasher>(token: &[u8], state: &mut H) {
    state.write_usize(token.len());
    match token.last_chunk::<HASHED>() {
        Some(tail) => state.write_u128(u128::from_le_bytes(*tail)),
        None => state.write(token),
    }
}

impl<T> Hash for TokenKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tail(&self.0.raw, state);
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tail(self.0, state);
    }
}

impl<T> PartialEq for TokenKey<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.raw == other.0.raw
    }
}

impl<T> Eq for TokenKey<T> {}

impl<T> Equivalent<TokenKey<T>> for Lookup<'_> {
    fn equivalent(&self, key: &TokenKey<T>) -> bool {
        *self.0 == *key.0.raw
    }
}

/// Counts the entries the cache evicts to stay within its bounds.
#[derive(Clone, Default)]
struct Evictions(Arc<AtomicU64>);

impl<K, V> Lifecycle<K, V> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, _val: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// How often expired entries are swept out, at most, by the misses (hits only read the clock
/// and compare). Expired entries are never served in between (every hit checks `exp`); the
/// sweep only returns their memory early, before a new token takes a place.
const SWEEP_EVERY: i64 = if cfg!(test) { 1 } else { 5 };

/// Weight of an entry: its estimated size in bytes, but at least `floor` =
/// `max_bytes / max_entries`, so that neither bound can be exceeded.
#[derive(Clone)]
struct Weight {
    floor: u64,
}

/// Bookkeeping per entry beyond the token and the claims: the `Arc`s, the map slot.
const ENTRY_OVERHEAD: u64 = 128;

impl<T> Weighter<TokenKey<T>, Arc<Verified<T>>> for Weight {
    fn weight(&self, key: &TokenKey<T>, value: &Arc<Verified<T>>) -> u64 {
        (key.0.raw.len() as u64 + value.size + ENTRY_OVERHEAD).max(self.floor)
    }
}

impl<T> TokenCache<T> {
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let floor = (max_bytes / max_entries as u64).max(1);
        let evictions = Evictions::default();
        TokenCache {
            evicted: Arc::clone(&evictions.0),
            cache: quick_cache::sync::Cache::with(
                max_entries,
                max_bytes,
                Weight { floor },
                DefaultHashBuilder::default(),
                evictions,
            ),
            id: front::new_cache(),
            next_sweep: AtomicI64::new(0),
        }
    }

    /// Drops the entries whose token has expired (`exp + leeway <= now`), at most once per
    /// [`SWEEP_EVERY`] seconds; one caller sweeps, the others go on at once.
    pub(crate) fn sweep_expired(&self, now: i64, leeway: i64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(due, now + SWEEP_EVERY, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.cache
            .retain(|_, v| now.saturating_sub(leeway) < v.facts().exp);
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

impl<T: Send + Sync + 'static> TokenCache<T> {
    /// The entry for exactly this token (its bytes as presented: no UTF-8 check is needed
    /// to look it up): from this thread's [`front`] when it holds it, else from the shared
    /// map (and then kept in the front). No allocation.
    #[inline(always)]
    pub(crate) fn get(&self, token: &[u8]) -> Option<Arc<Verified<T>>> {
        if let Some(hit) = front::get(self.id, token) {
            return Some(hit);
        }
        let hit = self.cache.get(&Lookup(token))?;
        front::keep(self.id, &hit);
        Some(hit)
    }

    pub(crate) fn insert(&self, verified: &Arc<Verified<T>>) {
        self.cache
            .insert(TokenKey(Arc::clone(verified)), Arc::clone(verified));
        let evicted = self.evicted.swap(0, Ordering::Relaxed);
        crate::metrics::token_cache(evicted, self.cache.len(), self.cache.weight());
    }

    /// Drops the entry for this token, here and in this thread's front (another thread's
    /// front may keep it: every hit checks its entry again, wherever it was found).
    pub(crate) fn remove(&self, token: &[u8]) {
        front::forget::<T>(self.id, token);
        self.cache.remove(&Lookup(token));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::testkit::{self as mint, now, token};
    use crate::{ErrorKind, RequiredScopes};

    fn builder() -> crate::ValidatorBuilder {
        mint::builder()
    }

    #[test]
    fn repeated_token_is_served_from_the_cache() {
        let v = builder().build().expect("validator");
        let t = token("rsa-1", json!({}));
        let first = v.validate(&t).expect("valid");
        let second = v.validate(&t).expect("valid");
        assert!(
            std::sync::Arc::ptr_eq(&first.0, &second.0),
            "second call must be a cache hit"
        );
        assert_eq!(v.token_cache_usage().map(|u| u.0), Some(1));
        let uncached = builder().without_token_cache().build().expect("validator");
        let a = uncached.validate(&t).expect("valid");
        let b = uncached.validate(&t).expect("valid");
        assert!(!std::sync::Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(uncached.token_cache_usage(), None);
    }

    #[test]
    fn invalid_tokens_are_never_cached() {
        let v = builder().build().expect("validator");
        for changes in [
            json!({"exp": now() - 3600}),
            json!({"aud": "x"}),
            json!({"iss": "x"}),
        ] {
            let t = token("ec-1", changes);
            assert!(v.validate(&t).is_err());
            assert!(v.validate(&t).is_err());
        }
        let good = token("ec-1", json!({}));
        let forged = format!("{}x", &good[..good.len() - 1]);
        assert!(v.validate(&forged).is_err());
        assert_eq!(v.token_cache_usage(), Some((0, 0)));
    }

    /// Keys are hashed by their last bytes only: a token that shares them with a cached one
    /// (same length, same signature end) lands in its bucket and is still not found.
    #[test]
    fn only_the_exact_token_is_found_whatever_it_shares_with_a_cached_one() {
        let v = builder().build().expect("validator");
        let good = token("ed-1", json!({}));
        v.validate(&good).expect("valid");
        let cache = v.inner.cache.as_ref().expect("cache on");
        assert!(cache.get(good.as_bytes()).is_some());
        let mut twin = good.clone().into_bytes();
        twin[10] = if twin[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(twin.len(), good.len());
        assert_eq!(twin[twin.len() - 32..], good.as_bytes()[good.len() - 32..]);
        assert!(cache.get(&twin).is_none());
        let twin = String::from_utf8(twin).expect("ascii");
        assert!(v.validate(&twin).is_err(), "verified in full, and refused");
        assert!(cache.get(&good.as_bytes()[1..]).is_none());
    }

    /// Sleeps until the wall clock's whole seconds are past `exp` (at most 5 s).
    fn wait_past(exp: i64) {
        let started = std::time::Instant::now();
        while now() <= exp && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_cached_token_still_expires() {
        let v = builder().leeway(Duration::ZERO).build().expect("validator");
        // Two seconds ahead: one would expire at the next second boundary, which a slow
        // signature (the rust_crypto backend on a loaded machine) can cross before the
        // first check.
        let exp = now() + 2;
        let t = token("ed-1", json!({"exp": exp}));
        assert!(v.validate(&t).is_ok());
        assert_eq!(v.token_cache_usage().map(|u| u.0), Some(1));
        wait_past(exp);
        let err = v.validate(&t).expect_err("expired while cached");
        assert_eq!(err.kind(), ErrorKind::Expired);
        assert_eq!(
            v.token_cache_usage().map(|u| u.0),
            Some(0),
            "expired entry is dropped"
        );
    }

    #[test]
    fn expired_entries_are_swept_out_without_being_asked_for() {
        let v = mint::builder()
            .leeway(Duration::ZERO)
            .build()
            .expect("validator");
        let exp = now() + 2;
        let short = token("ed-1", json!({"exp": exp}));
        let long = token("ed-1", json!({}));
        assert!(v.validate(&short).is_ok());
        assert!(v.validate(&long).is_ok());
        assert_eq!(v.token_cache_usage().map(|u| u.0), Some(2));
        // Past `exp`, and past the next sweep (every second under test).
        wait_past(exp + 1);
        // Hits read the clock once and sweep nothing: the expired entry is still held ...
        assert!(v.validate(&long).is_ok());
        assert_eq!(v.token_cache_usage().map(|u| u.0), Some(2));
        // ... until the next miss, whose sweep drops it before the new token is cached.
        let other = token("ed-1", json!({"jti": "another"}));
        assert!(v.validate(&other).is_ok());
        assert_eq!(v.token_cache_usage().map(|u| u.0), Some(2));
        assert!(v.validate(&long).is_ok(), "the live token stays");
    }

    #[test]
    fn scopes_are_checked_on_every_hit() {
        let v = builder().build().expect("validator");
        let t = token("ec-1", json!({"scope": "read"}));
        assert!(
            v.authorize(&t, &RequiredScopes::all(["read"]).expect("scopes"))
                .is_ok()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(v.authorize_async(
                &t,
                &RequiredScopes::any(["admin", "write"]).expect("scopes"),
            ))
            .expect_err("cached, but neither scope");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
        let err = v
            .authorize(&t, &RequiredScopes::all(["admin"]).expect("scopes"))
            .expect_err("cached, but no admin");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
    }

    /// A thread's front names the cache its entries came from: a token another validator on
    /// the same thread verified (and keeps in the front) is checked in full here, and refused
    /// when this validator's rules refuse it.
    #[test]
    fn a_front_entry_serves_only_its_own_validator() {
        let t = token("ec-1", json!({}));
        let theirs = builder().build().expect("validator");
        theirs.validate(&t).expect("valid for its audience");
        theirs
            .validate(&t)
            .expect("a hit, from this thread's front");
        let ours = crate::Validator::builder()
            .issuer(mint::ISSUER)
            .audience("another-api")
            .keys(mint::key_set())
            .build()
            .expect("validator");
        let err = ours.validate(&t).expect_err("not our audience");
        assert_eq!(err.kind(), ErrorKind::InvalidAudience);
        assert_eq!(ours.token_cache_usage(), Some((0, 0)));
        // A validator with the same rules has a cache (and a name) of its own: it verifies
        // the token itself, once, then finds it.
        let twin = builder().build().expect("validator");
        let first = twin.validate(&t).expect("valid");
        let again = twin.validate(&t).expect("valid");
        assert!(std::sync::Arc::ptr_eq(&first.0, &again.0));
        assert!(!std::sync::Arc::ptr_eq(
            &first.0,
            &theirs.validate(&t).expect("valid").0
        ));
    }

    /// Tokens that share a front slot (many more tokens than slots) displace each other and
    /// are each found, byte for byte; a token that differs from a kept one only in the middle
    /// (same length, same end: the same slot) is never found.
    #[test]
    fn front_slots_are_shared_and_matched_byte_for_byte() {
        let v = builder().build().expect("validator");
        let tokens: Vec<String> = (0..300)
            .map(|i| token("ed-1", json!({ "jti": format!("t-{i}") })))
            .collect();
        for t in &tokens {
            v.validate(t).expect("valid");
        }
        for t in tokens.iter().rev() {
            let hit = v.validate(t).expect("valid");
            assert!(std::sync::Arc::ptr_eq(
                &hit.0,
                &v.validate(t).expect("valid").0
            ));
        }
        let kept = &tokens[0];
        v.validate(kept).expect("in this thread's front now");
        let cache = v.inner.cache.as_ref().expect("cache on");
        let mut twin = kept.clone().into_bytes();
        let middle = twin.len() / 2;
        twin[middle] = if twin[middle] == b'A' { b'B' } else { b'A' };
        assert!(cache.get(&twin).is_none());
        assert!(
            v.validate(std::str::from_utf8(&twin).expect("ASCII"))
                .is_err()
        );
        assert!(cache.get(kept.as_bytes()).is_some());
    }

    /// Each thread keeps its own front; an entry found on one thread is the shared entry on
    /// another, not a copy.
    #[test]
    fn another_thread_finds_the_same_entry() {
        let v = builder().build().expect("validator");
        let t = token("ec-1", json!({}));
        let here = v.validate(&t).expect("valid");
        let there = std::thread::scope(|s| {
            s.spawn(|| v.validate(&t).expect("valid"))
                .join()
                .expect("thread")
        });
        assert!(std::sync::Arc::ptr_eq(&here.0, &there.0));
    }

    #[test]
    fn a_flood_of_distinct_tokens_stays_within_the_bounds() {
        let v = builder()
            .token_cache(64, 64 * 4096)
            .build()
            .expect("validator");
        for _ in 0..400 {
            assert!(v.validate(&token("ed-1", json!({}))).is_ok());
        }
        let (entries, bytes) = v.token_cache_usage().expect("on");
        assert!(entries <= 64, "{entries} entries");
        assert!(bytes <= 64 * 4096, "{bytes} bytes");
        assert!(entries > 0);

        // A memory bound tighter than the entry bound wins.
        let v = builder()
            .token_cache(1000, 8 * 1024)
            .build()
            .expect("validator");
        for _ in 0..200 {
            let padding = "x".repeat(1000);
            assert!(
                v.validate(&token("ed-1", json!({ "pad": padding })))
                    .is_ok()
            );
        }
        let (entries, bytes) = v.token_cache_usage().expect("on");
        assert!(bytes <= 8 * 1024, "{bytes} bytes");
        assert!(entries < 8, "{entries} entries of ~2 KiB in 8 KiB");
    }
}
