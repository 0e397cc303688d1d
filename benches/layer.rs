//! Per-request cost of the `RequireScope` layer against the floor: `jsonwebtoken::decode` on
//! the same token, with the same key and backend.
//!
//! ```text
//! cargo bench --bench layer                                              # aws-lc-rs (default)
//! cargo bench --bench layer --no-default-features --features rust_crypto # RustCrypto
//! cargo bench --bench layer --features rust_crypto   # aws-lc-rs, plus both backends compared
//! ```
//!
//! All cases of one algorithm run interleaved, round after round, and each figure is the
//! median over the rounds, so that the ratios come from one run on the same (noisy) machine.

use bearer_guard::testkit as mint;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bearer_guard::{AccessClaims, KeySet, RequireScope, Validator, VerifiedToken, keys::Key};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;
use tower::{Layer, Service, service_fn};

const ROUNDS: usize = 25;
/// Target duration of one batch, in nanoseconds.
const BATCH_NS: f64 = 4_000_000.0;

fn backend() -> (&'static str, &'static jsonwebtoken::crypto::CryptoProvider) {
    #[cfg(feature = "aws_lc_rs")]
    {
        ("aws_lc_rs", &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER)
    }
    #[cfg(not(feature = "aws_lc_rs"))]
    {
        (
            "rust_crypto",
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        )
    }
}

fn main() {
    let (name, provider) = backend();
    // The floor calls `jsonwebtoken::decode`, which uses the process-wide provider.
    let _ = provider.install_default();
    println!("backend: {name}; median of {ROUNDS} interleaved rounds\n");
    println!(
        "{:<8} {:>12} {:>14} {:>9} {:>14} {:>9} {:>12} {:>18} {:>17}",
        "alg",
        "floor (us)",
        "layer, no cache",
        "ratio",
        "layer, cached",
        "ratio",
        "floor/cached",
        "cache hit - bare (ns)",
        "- one record (ns)"
    );
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        bench_alg(kid);
    }
    #[cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]
    compare_backends();
}

/// Both backends verifying the same signatures in one run (`--features rust_crypto` on top
/// of the default): the figures behind the choice of the default backend.
#[cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]
fn compare_backends() {
    use jsonwebtoken::crypto::CryptoProvider;
    let providers: [(&str, &CryptoProvider); 2] = [
        ("aws_lc_rs", &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER),
        (
            "rust_crypto",
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        ),
    ];
    println!("\nsignature verification alone, both backends in one run:");
    println!(
        "{:<8} {:>14} {:>14} {:>16}",
        "alg", "aws_lc_rs (us)", "rust_crypto (us)", "rust_crypto/aws"
    );
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let (_, alg, _, public) = mint::KEYS.iter().find(|k| k.0 == kid).expect("test kid");
        let token = mint::token(kid, json!({}));
        let (message, signature) = token.rsplit_once('.').expect("jws");
        let signature = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(signature)
                .expect("b64")
        };
        let key = match alg {
            jsonwebtoken::Algorithm::RS256 => DecodingKey::from_rsa_pem(public),
            jsonwebtoken::Algorithm::ES256 => DecodingKey::from_ec_pem(public),
            _ => DecodingKey::from_ed_pem(public),
        }
        .expect("decoding key");
        let mut cases: Vec<Case> = providers
            .iter()
            .map(|(_, provider)| {
                let (key, signature, message) = (&key, &signature, message);
                Case::new(Box::new(move |n| {
                    for _ in 0..n {
                        let verifier = (provider.verifier_factory)(alg, key).expect("verifier");
                        assert!(verifier.verify(message.as_bytes(), signature).is_ok());
                    }
                }))
            })
            .collect();
        for case in &mut cases {
            case.calibrate();
        }
        for _ in 0..ROUNDS {
            for case in &mut cases {
                case.round();
            }
        }
        let (aws, rc) = (cases[0].median_ns(), cases[1].median_ns());
        println!(
            "{:<8} {:>14.2} {:>14.2} {:>15.2}x",
            mint::alg_name(*alg),
            aws / 1e3,
            rc / 1e3,
            rc / aws
        );
    }
}

fn bench_alg(kid: &str) {
    let (_, alg, _, public) = mint::KEYS.iter().find(|k| k.0 == kid).expect("test kid");
    let token = mint::token(kid, json!({"exp": mint::now() + 3600}));
    let key = Key::from_pem(public, *alg).expect("key").with_kid(kid);

    // The floor: jsonwebtoken::decode with the same checks (alg, exp, iss, aud).
    let decoding = match alg {
        jsonwebtoken::Algorithm::RS256 => DecodingKey::from_rsa_pem(public),
        jsonwebtoken::Algorithm::ES256 => DecodingKey::from_ec_pem(public),
        _ => DecodingKey::from_ed_pem(public),
    }
    .expect("decoding key");
    let mut validation = Validation::new(*alg);
    validation.set_issuer(&[mint::ISSUER]);
    validation.set_audience(&[mint::AUDIENCE]);
    let floor = || {
        let data = jsonwebtoken::decode::<AccessClaims>(black_box(&token), &decoding, &validation)
            .expect("floor decodes");
        black_box(data);
    };

    let builder = || {
        Validator::builder()
            .issuer(mint::ISSUER)
            .audience(mint::AUDIENCE)
            .keys(KeySet::new([key.clone()]))
    };
    let mut uncached = service(&builder().without_token_cache().build().expect("validator"));
    let mut cached = service(&builder().build().expect("validator"));
    let mut bare = bare();
    let claims = builder().build().expect("validator").validate(&token);
    let mut one_record = one_record((*claims.expect("valid").0).clone());
    let header = HeaderValue::try_from(format!("Bearer {token}")).expect("header");
    let request = || {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, header.clone());
        req
    };
    assert_eq!(call(&mut uncached, request()), "client-a");
    assert_eq!(call(&mut cached, request()), "client-a");

    let mut cases: Vec<Case> = vec![
        Case::new(Box::new(|n| {
            for _ in 0..n {
                floor();
            }
        })),
        Case::timed(Box::new(|n| run_layer(&mut uncached, &request, n))),
        Case::timed(Box::new(|n| run_layer(&mut cached, &request, n))),
        Case::timed(Box::new(|n| run_layer(&mut bare, &request, n))),
        Case::timed(Box::new(|n| run_layer(&mut one_record, &request, n))),
    ];
    for case in &mut cases {
        case.calibrate();
    }
    for _ in 0..ROUNDS {
        for case in &mut cases {
            case.round();
        }
    }
    let [floor, no_cache, with_cache, bare, one_record] =
        [0, 1, 2, 3, 4].map(|i| cases[i].median_ns());
    println!(
        "{:<8} {:>12.2} {:>14.2} {:>8.3}x {:>14.3} {:>8.4}x {:>11.0}x {:>18.0} {:>17.0}",
        mint::alg_name(*alg),
        floor / 1e3,
        no_cache / 1e3,
        no_cache / floor,
        with_cache / 1e3,
        with_cache / floor,
        floor / with_cache,
        with_cache - bare,
        with_cache - one_record,
    );
}

type Svc = Box<dyn FnMut(Request<()>) -> Response<String>>;

/// The same handler as a bare `service_fn`, without the layer: what a cache hit is measured
/// against (the request and its header are built the same way, outside the clock).
fn bare() -> Svc {
    ready(service_fn(|req: Request<()>| async move {
        let who = req
            .extensions()
            .get::<VerifiedToken>()
            .and_then(VerifiedToken::claims::<AccessClaims>)
            .and_then(|claims| claims.sub.clone());
        Ok::<_, Infallible>(Response::new(who.unwrap_or_default()))
    }))
}

/// The same handler behind a layer that only puts one record into the request (a clone of
/// a prepared `VerifiedToken`): what any layer handing the handler its claims pays, before it
/// decides anything (http's extension map, created for the first entry, and the box). The
/// last column is the cache hit minus this: the decision's own cost.
fn one_record(claims: AccessClaims) -> Svc {
    let record = mint::verified_token("client-a", claims);
    let svc = tower::util::MapRequestLayer::new(move |mut req: Request<()>| {
        req.extensions_mut().insert(record.clone());
        req
    })
    .layer(service_fn(handler));
    ready(svc)
}

fn service(validator: &Validator) -> Svc {
    let svc = RequireScope::all(validator, ["read"])
        .expect("scopes")
        .layer(service_fn(handler));
    ready(svc)
}

/// The handler behind a layer: it reads the claims the layer put into the request.
async fn handler(req: Request<()>) -> Result<Response<String>, Infallible> {
    let claims = req
        .extensions()
        .get::<VerifiedToken>()
        .and_then(VerifiedToken::claims::<AccessClaims>)
        .expect("claims");
    Ok(Response::new(claims.sub.clone().unwrap_or_default()))
}

/// A service whose futures complete at once, as a plain function of the request.
fn ready<S>(mut svc: S) -> Svc
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + 'static,
{
    Box::new(move |req| {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(req));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => res,
            _ => unreachable!("the layer over a ready service_fn completes at once"),
        }
    })
}

fn call(svc: &mut Svc, req: Request<()>) -> String {
    svc(req).into_body()
}

/// Calls the layered service `n` times; the requests are built before the clock starts.
fn run_layer(svc: &mut Svc, request: &dyn Fn() -> Request<()>, n: usize) -> f64 {
    let requests: Vec<_> = (0..n).map(|_| request()).collect();
    let start = Instant::now();
    for req in requests {
        black_box(svc(black_box(req)));
    }
    start.elapsed().as_nanos() as f64
}

struct Case<'a> {
    run: Box<dyn FnMut(usize) -> f64 + 'a>,
    batch: usize,
    samples: Vec<f64>,
}

impl<'a> Case<'a> {
    fn new(mut f: Box<dyn FnMut(usize) + 'a>) -> Self {
        Case::timed(Box::new(move |n| {
            let start = Instant::now();
            f(n);
            start.elapsed().as_nanos() as f64
        }))
    }

    fn timed(run: Box<dyn FnMut(usize) -> f64 + 'a>) -> Self {
        Case {
            run,
            batch: 1,
            samples: Vec::new(),
        }
    }

    fn calibrate(&mut self) {
        let mut n = 1;
        loop {
            let ns = (self.run)(n);
            if ns > BATCH_NS / 10.0 || n > 1 << 22 {
                self.batch = ((BATCH_NS / (ns / n as f64)) as usize).max(1);
                return;
            }
            n *= 4;
        }
    }

    fn round(&mut self) {
        let ns = (self.run)(self.batch);
        self.samples.push(ns / self.batch as f64);
    }

    fn median_ns(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}
