//! What a DPoP proof costs next to the access token it comes with: `Dpop::verify_access`
//! (every check, the in-memory replay store included) against `Validator::validate` on a
//! token of the same algorithm, with the token cache off and on.
//!
//! ```text
//! cargo bench --bench dpop                                              # aws-lc-rs (default)
//! cargo bench --bench dpop --no-default-features --features rust_crypto,dpop-client
//! ```
//!
//! Criterion measures each case; then all cases of one algorithm run interleaved, round after
//! round, and the ratios are medians over the rounds, so that they come from one run on the
//! same (noisy) machine.

use bearer_guard::testkit as mint;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bearer_guard::dpop::{Dpop, DpopKey, MemoryReplay, ProofCheck, ProofRequest};
use bearer_guard::{Validator, keys::Algorithm};
use criterion::{BatchSize, Criterion};
use http::{Method, Request};
use serde_json::json;

const URL: &str = "https://api.test/accounts";
const ROUNDS: usize = 15;
const BATCH: usize = 200;

/// One algorithm's token, validators and proof key.
struct Case {
    name: &'static str,
    token: String,
    uncached: Validator,
    cached: Validator,
    dpop: Dpop,
    key: DpopKey,
}

impl Case {
    fn new(name: &'static str, kid: &str, alg: Algorithm, private: &[u8]) -> Case {
        let token = mint::token(kid, json!({ "exp": mint::now() + 3600 }));
        let cached = mint::validator();
        cached.validate(&token).expect("token");
        Case {
            name,
            token,
            uncached: mint::builder()
                .without_token_cache()
                .build()
                .expect("validator"),
            cached,
            // Room for every proof a run makes: a full store would refuse them.
            dpop: Dpop::builder()
                .external_origin("https://api.test")
                .replay(Arc::new(MemoryReplay::with_capacity(10_000_000)))
                .build()
                .expect("dpop"),
            key: DpopKey::from_pem(private, alg).expect("key"),
        }
    }

    /// A request with a fresh proof (a proof is good once).
    fn request(&self) -> Request<()> {
        let proof = self
            .key
            .proof(&Method::GET, URL)
            .access_token(&self.token)
            .sign()
            .expect("sign");
        Request::get("/accounts")
            .header("dpop", proof)
            .body(())
            .expect("request")
    }

    fn verify(&self, req: &Request<()>) {
        let check = self.dpop.verify_access(
            &ProofRequest::from(req),
            black_box(&self.token),
            self.key.thumbprint(),
        );
        assert!(matches!(check, ProofCheck::Ready(Ok(_))), "proof refused");
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case::new("ES256", "ec-1", Algorithm::ES256, mint::EC256_PRIVATE),
        Case::new("EdDSA", "ed-1", Algorithm::EdDSA, mint::ED_PRIVATE),
        Case::new("RS256", "rsa-1", Algorithm::RS256, mint::RSA_PRIVATE),
    ]
}

fn criterion_cases(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let mut group = c.benchmark_group(case.name);
        group.bench_function("token, cache off", |b| {
            b.iter(|| {
                case.uncached
                    .validate(black_box(&case.token))
                    .expect("token")
            });
        });
        group.bench_function("token, cached", |b| {
            b.iter(|| case.cached.validate(black_box(&case.token)).expect("token"));
        });
        group.bench_function("proof", |b| {
            b.iter_batched(
                || case.request(),
                |req| case.verify(&req),
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

/// Median nanoseconds per operation of each closure, run interleaved.
fn interleaved(case: &Case) -> [f64; 3] {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(
                case.uncached
                    .validate(black_box(&case.token))
                    .expect("token"),
            );
        }
        samples[0].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(case.cached.validate(black_box(&case.token)).expect("token"));
        }
        samples[1].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let requests: Vec<Request<()>> = (0..BATCH).map(|_| case.request()).collect();
        let start = Instant::now();
        for req in &requests {
            case.verify(req);
        }
        samples[2].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    })
}

fn main() {
    let cases = cases();
    let mut c = Criterion::default().configure_from_args();
    criterion_cases(&mut c, &cases);
    // `cargo test --benches` runs each case once; the ratios are for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("\nmedian of {ROUNDS} interleaved rounds of {BATCH}:");
    println!(
        "{:<6} {:>16} {:>14} {:>11} {:>18} {:>20}",
        "alg",
        "token, no cache",
        "token, cached",
        "proof",
        "proof / no cache",
        "proof / cached token"
    );
    for case in &cases {
        let [uncached, cached, proof] = interleaved(case);
        println!(
            "{:<6} {:>13.1} us {:>11.2} us {:>8.1} us {:>17.2}x {:>19.1}x",
            case.name,
            uncached / 1e3,
            cached / 1e3,
            proof / 1e3,
            proof / uncached,
            proof / cached
        );
    }
}
