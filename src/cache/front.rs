//! Each thread's front of the verified-token caches: the entries it found last, so that a
//! token a thread sees again skips the shared map (its hash, its shard's lock, its probe)
//! and costs one slot read and the byte-for-byte comparison.
//!
//! A slot holds an entry of the shared cache (the same `Arc`), named by the cache it came
//! from: an id drawn once per cache, never reused, so that a slot is never read by another
//! validator. It is found by the token's length and last bytes, like the shared map's
//! buckets, and matches only the token's exact bytes. A hit is checked exactly as a hit of
//! the shared map is (its validity window, its key still in its issuer's set): the front
//! changes where an entry is found, never what is done with it. An entry the shared map has
//! evicted may still be served from a front while it stays valid (at most [`SLOTS`] per
//! thread); an entry found expired or without its key is dropped from both.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::verified::Verified;

/// Slots per thread: a power of two.
const SLOTS: usize = 64;

struct Slot {
    cache: u64,
    /// An `Arc<Verified<T>>` of that cache's `T`.
    entry: Arc<dyn Any + Send + Sync>,
}

thread_local! {
    static FRONT: RefCell<[Option<Slot>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// A new cache's id.
pub(super) fn new_cache() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The slot for `token`: its length and last eight bytes (the end of a signature), mixed.
#[inline(always)]
fn index(token: &[u8]) -> usize {
    let tail = token
        .last_chunk::<8>()
        .map_or(0, |t| u64::from_le_bytes(*t));
    let mixed = (tail ^ token.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (u64::BITS - SLOTS.trailing_zeros())) as usize
}

/// The entry this thread keeps for exactly `token` from `cache`.
#[inline(always)]
pub(super) fn get<T: Send + Sync + 'static>(cache: u64, token: &[u8]) -> Option<Arc<Verified<T>>> {
    FRONT
        .try_with(|front| {
            let front = front.try_borrow().ok()?;
            let slot = front[index(token)].as_ref()?;
            if slot.cache != cache {
                return None;
            }
            // The cache's id names its `T`: this cannot fail, and is checked all the same.
            let verified = Arc::clone(&slot.entry).downcast::<Verified<T>>().ok()?;
            (*verified.raw == *token).then_some(verified)
        })
        .ok()
        .flatten()
}

/// Keeps `verified`, an entry of `cache`, in this thread's front (in its token's slot).
pub(super) fn keep<T: Send + Sync + 'static>(cache: u64, verified: &Arc<Verified<T>>) {
    let slot = Slot {
        cache,
        entry: Arc::clone(verified) as Arc<dyn Any + Send + Sync>,
    };
    replace(index(&verified.raw), |_| true, Some(slot));
}

/// Drops this thread's entry for exactly `token` from `cache`, if it keeps one.
pub(super) fn forget<T: Send + Sync + 'static>(cache: u64, token: &[u8]) {
    let same = |slot: &Slot| {
        slot.cache == cache
            && slot
                .entry
                .downcast_ref::<Verified<T>>()
                .is_some_and(|verified| *verified.raw == *token)
    };
    replace(index(token), same, None);
}

/// Puts `new` into slot `index` when it is empty or its entry passes `when`. What it
/// replaces is dropped once the front is released (an entry's claims may run any code in
/// their `Drop`, this front's lookups included).
fn replace(index: usize, when: impl FnOnce(&Slot) -> bool, new: Option<Slot>) {
    let replaced = FRONT
        .try_with(|front| {
            let mut front = front.try_borrow_mut().ok()?;
            let slot = &mut front[index];
            if slot.as_ref().is_none_or(when) {
                std::mem::replace(slot, new)
            } else {
                None
            }
        })
        .ok()
        .flatten();
    drop(replaced);
}
