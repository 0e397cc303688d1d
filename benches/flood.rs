//! The verified-token cache under a flood: N distinct tokens through a cache of M < N
//! entries. Reports the hit rate of a skewed workload and the peak heap.
//!
//! ```text
//! cargo bench --bench flood
//! ```

use bearer_guard::testkit as mint;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bearer_guard::{KeySet, Validator, keys::Key};
use serde_json::json;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const DISTINCT: usize = 20_000;
const CACHE_ENTRIES: usize = 2_048;
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
const REQUESTS: usize = 200_000;
const HOT: usize = 500;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let key = Key::from_pem(mint::ED_PUBLIC, jsonwebtoken::Algorithm::EdDSA)
        .expect("key")
        .with_kid("ed-1");
    let validator = Validator::builder()
        .issuer(mint::ISSUER)
        .audience(mint::AUDIENCE)
        .keys(KeySet::new([key]))
        .token_cache(CACHE_ENTRIES, CACHE_BYTES)
        .build()
        .expect("validator");

    println!("minting {DISTINCT} distinct EdDSA tokens ...");
    let tokens: Vec<String> = (0..DISTINCT)
        .map(|i| {
            mint::token(
                "ed-1",
                json!({"exp": mint::now() + 3600, "sub": format!("client-{i}")}),
            )
        })
        .collect();
    let token_bytes: usize = tokens.iter().map(String::len).sum();

    // 1. Flood: every token once.
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    for t in &tokens {
        validator.validate(t).expect("valid");
    }
    let flood_time = start.elapsed();
    let (entries, est) = validator.token_cache_usage().expect("cache on");
    let flood_peak = PEAK.load(Ordering::Relaxed) - base;
    println!(
        "\nflood: {DISTINCT} distinct valid tokens ({:.1} MiB of tokens) into a cache of {CACHE_ENTRIES} \
         entries / {:.1} MiB",
        mib(token_bytes),
        mib(CACHE_BYTES as usize)
    );
    println!(
        "  cache after: {entries} entries, {:.2} MiB estimated; peak heap above start {:.2} MiB; \
         {:.1} us per token",
        mib(est as usize),
        mib(flood_peak),
        flood_time.as_secs_f64() * 1e6 / DISTINCT as f64
    );

    // 2. Skewed traffic: 90% from a hot set, 10% from the rest.
    let mut last: HashMap<usize, usize> = HashMap::new();
    let (mut hits, mut rng) = (0usize, 0x9e37_79b9_7f4a_7c15_u64);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        let r = next();
        let i = if r % 10 < 9 {
            (r >> 8) as usize % HOT
        } else {
            HOT + (r >> 8) as usize % (DISTINCT - HOT)
        };
        let claims = validator.validate(&tokens[i]).expect("valid");
        let ptr = Arc::as_ptr(&claims.0) as usize;
        if last.insert(i, ptr) == Some(ptr) {
            hits += 1;
        }
    }
    let mixed_time = start.elapsed();
    let (entries, est) = validator.token_cache_usage().expect("cache on");
    println!(
        "\nskewed: {REQUESTS} requests, 90% over {HOT} hot tokens, 10% over {} cold ones",
        DISTINCT - HOT
    );
    println!(
        "  hit rate {:.1}%; cache {entries} entries, {:.2} MiB estimated; peak heap growth {:.2} MiB \
         (incl. the bench's own map); {:.2} us per request",
        100.0 * hits as f64 / REQUESTS as f64,
        mib(est as usize),
        mib(PEAK.load(Ordering::Relaxed) - base),
        mixed_time.as_secs_f64() * 1e6 / REQUESTS as f64
    );

    // 3. A flood of invalid tokens: nothing is cached, memory does not grow.
    let before = validator.token_cache_usage().expect("cache on");
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    for t in tokens.iter().take(DISTINCT / 2) {
        let forged = format!("{}A", &t[..t.len() - 1]);
        if forged != *t {
            assert!(validator.validate(&forged).is_err());
        }
    }
    println!(
        "\ninvalid flood: {} forged tokens; cache {:?} -> {:?}; peak heap growth {:.3} MiB",
        DISTINCT / 2,
        before,
        validator.token_cache_usage().expect("cache on"),
        mib(PEAK.load(Ordering::Relaxed) - base)
    );
}
