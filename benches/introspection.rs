//! What a request with an opaque token costs once its introspection answer is cached, next to
//! a request with a cached JWT: the answer cache's lookup (the token's SHA-256, the map, the
//! claims deserialized once per answer) against `Validator::validate` on a repeated token
//! (the verified-token cache). And the SHA-256 of the token alone.
//!
//! ```text
//! cargo bench --bench introspection
//! ```
//!
//! Criterion measures each case; then the cases run interleaved, round after round, and the
//! ratios are medians over the rounds, so that they come from one run on the same (noisy)
//! machine. No network: the answer comes from a stand-in for the endpoint, once.

use bearer_guard::testkit as mint;
use bearer_guard::testkit::introspection as probe;

use std::hint::black_box;
use std::time::Instant;

use bearer_guard::introspection::Introspection;
use bytes::Bytes;
use criterion::Criterion;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::json;

const ROUNDS: usize = 15;
const BATCH: usize = 2000;
/// An opaque token as the companion issuer makes them: 256 random bits, base64url.
const OPAQUE: &str = "q2Vb0d7mN4x9kLpR8sT1uW3yZ5aC6eF0gH2iJ4kM6nO";

/// The endpoint, answering every introspection with an active token.
fn endpoint(answer: String) -> impl bearer_guard::fetch::HttpService<Full<Bytes>> {
    tower::service_fn(move |_: Request<Full<Bytes>>| {
        let body = Full::<Bytes>::from(answer.clone());
        std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(body)))
    })
}

struct Cases {
    jwt: String,
    validator: bearer_guard::Validator,
    introspection: Introspection,
}

fn cases() -> Cases {
    let now = mint::now();
    // The members the companion issuer answers with.
    let answer = json!({
        "active": true, "client_id": "svc", "sub": "svc", "aud": mint::AUDIENCE,
        "iss": mint::ISSUER, "iat": now, "exp": now + 3600, "scope": "read write",
        "jti": "0f8c2d1e-6a3b-4c5d-9e7f-1a2b3c4d5e6f", "token_type": "Bearer",
    });
    let built = Introspection::builder("https://issuer.test/oauth/introspect", "rs", "secret")
        .http_client(endpoint(answer.to_string()))
        .build()
        .expect("introspection");
    let introspection = probe::bind(&built, mint::ISSUER, mint::AUDIENCE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert!(
        runtime
            .block_on(probe::introspect(&introspection, OPAQUE))
            .is_active()
    );
    assert!(probe::cached_claims(&introspection, OPAQUE).is_some());

    let jwt = mint::token("ec-1", json!({ "exp": now + 3600, "scope": "read write" }));
    let validator = mint::validator();
    validator.validate(&jwt).expect("jwt");
    Cases {
        jwt,
        validator,
        introspection,
    }
}

fn jwt(cases: &Cases) {
    black_box(
        cases
            .validator
            .validate(black_box(&cases.jwt))
            .expect("jwt"),
    );
}

fn introspected(cases: &Cases) {
    black_box(probe::cached_claims(&cases.introspection, black_box(OPAQUE)).expect("cached"));
}

fn digest() {
    black_box(probe::digest(black_box(OPAQUE)));
}

/// Median nanoseconds per operation of each case, run interleaved.
fn interleaved(cases: &Cases) -> [f64; 3] {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..BATCH {
            jwt(cases);
        }
        samples[0].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let start = Instant::now();
        for _ in 0..BATCH {
            introspected(cases);
        }
        samples[1].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let start = Instant::now();
        for _ in 0..BATCH {
            digest();
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
    let mut group = c.benchmark_group("cached");
    group.bench_function("jwt (Validator::validate)", |b| b.iter(|| jwt(&cases)));
    group.bench_function("introspection answer", |b| b.iter(|| introspected(&cases)));
    group.bench_function("sha-256 of the token", |b| b.iter(digest));
    group.finish();
    // `cargo test --benches` runs each case once; the ratios are for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let [jwt, introspected, digest] = interleaved(&cases);
    println!("\nmedian of {ROUNDS} interleaved rounds of {BATCH}:");
    println!(
        "{:>14} {:>22} {:>10} {:>22} {:>22}",
        "cached JWT",
        "cached introspection",
        "SHA-256",
        "introspection / JWT",
        "SHA-256 / introspection"
    );
    println!(
        "{:>11.0} ns {:>19.0} ns {:>7.0} ns {:>21.2}x {:>21.2}x",
        jwt,
        introspected,
        digest,
        introspected / jwt,
        digest / introspected
    );
}
