//! Requests per second through `RateLimitByClient`: buckets in memory (governor) against
//! buckets in Redis (`RedisQuotas`, a `redis-server` of its own on loopback), with batching
//! off and on, for clients far below their quota. Criterion measures every case in one run;
//! the ratios are printed at the end.
//!
//! ```text
//! cargo bench --bench rate_limit
//! ```
//!
//! Needs `redis-server` on `PATH` (`apt-get install redis-server`).

use bearer_guard::testkit::redis as redis_server;

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bearer_guard::rate_limit::{Quota, RateLimitByClient, RedisQuotas};
use bearer_guard::{AccessClaims, VerifiedToken};
use criterion::{Criterion, Throughput};
use http::{Request, Response, StatusCode};
use redis_server::RedisServer;
use serde_json::json;
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _, service_fn};

type Svc = BoxCloneSyncService<Request<()>, Response<()>, Infallible>;

/// Requests in flight at once in the concurrent cases.
const IN_FLIGHT: usize = 64;
/// Clients taking turns.
const CLIENTS: usize = 8;
/// The batch of the batching case, and how long its cells may wait.
const BATCH: u32 = 16;
const BATCH_MAX_AGE: Duration = Duration::from_secs(1);

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = rt
        .block_on(RedisServer::start())
        .expect("redis-server is needed for this benchmark");
    let (exact, batched) = rt.block_on(async {
        let exact = RedisQuotas::builder(redis.url()).connect().await;
        let batched = RedisQuotas::builder(redis.url())
            .prefix("batched:")
            .batch(BATCH, BATCH_MAX_AGE)
            .connect()
            .await;
        (exact.expect("connect"), batched.expect("connect"))
    });
    // A million requests per second per client: every client stays far below its quota.
    let quota = Quota::per_second(NonZeroU32::new(1_000_000).expect("non-zero"));
    let cases: [(&str, Svc); 3] = [
        (
            "memory",
            service(
                RateLimitByClient::builder(quota)
                    .key_from_claims(client)
                    .build(),
            ),
        ),
        (
            "redis",
            service(
                RateLimitByClient::builder(quota)
                    .key_from_claims(client)
                    .redis(exact)
                    .build(),
            ),
        ),
        (
            "redis_batch16",
            service(
                RateLimitByClient::builder(quota)
                    .key_from_claims(client)
                    .redis(batched.clone())
                    .build(),
            ),
        ),
    ];
    let requests: Vec<VerifiedToken> = (0..CLIENTS).map(claims).collect();
    for (name, svc) in &cases {
        let status = rt.block_on(call(svc, &requests[0]));
        assert_eq!(status, StatusCode::OK, "{name}");
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    for (group, in_flight) in [("sequential", 1), ("concurrent", IN_FLIGHT)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(in_flight as u64));
        for (name, svc) in &cases {
            let mut turn = 0usize;
            g.bench_function(*name, |b| {
                b.to_async(&rt).iter(|| {
                    turn = turn.wrapping_add(1);
                    let batch: Vec<_> = (0..in_flight)
                        .map(|i| call(svc, &requests[(turn + i) % CLIENTS]))
                        .collect();
                    async move {
                        for status in join_all(batch).await {
                            assert_eq!(status, StatusCode::OK);
                        }
                    }
                });
            });
        }
        g.finish();
    }
    c.final_summary();

    let stats = batched.stats();
    let round_trips = stats.redis as f64 / (stats.redis + stats.batched).max(1) as f64;
    println!("\nrequests/s, Redis on loopback against memory, same run (median times):");
    for group in ["sequential", "concurrent"] {
        let median = |name: &str| median_ns(group, name);
        if let (Some(memory), Some(redis), Some(batch)) =
            (median("memory"), median("redis"), median("redis_batch16"))
        {
            println!(
                "  {group:<10} redis/memory {:.4}   redis_batch16/memory {:.4}   \
                 redis_batch16/redis {:.2}",
                memory / redis,
                memory / batch,
                redis / batch,
            );
        }
    }
    println!(
        "  batching ({BATCH} cells, {BATCH_MAX_AGE:?}): {:.3} round trips per request \
         ({} round trips, {} requests on lent cells)",
        round_trips, stats.redis, stats.batched
    );
    println!(
        "  tolerance: across N replicas, at most min(N x {}, ceil(max_age / T)) requests per \
         window beyond the quota's bound",
        BATCH - 1
    );
    drop(redis);
}

fn service<K>(limit: RateLimitByClient<K>) -> Svc
where
    RateLimitByClient<K>: tower::Layer<Svc>,
    <RateLimitByClient<K> as tower::Layer<Svc>>::Service: tower::Service<
            Request<()>,
            Response = Response<()>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    // The handler, boxed so that every case wraps the same named type.
    let handler: Svc = BoxCloneSyncService::new(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    BoxCloneSyncService::new(limit.layer(handler))
}

/// The bucket's key: the client of the typed claims in the record the bench puts in each
/// request, as `RequireScope` would.
fn client(claims: &AccessClaims) -> Option<&str> {
    claims.client_id()
}

fn claims(i: usize) -> VerifiedToken {
    let claims = json!({
        "iss": "https://issuer.test", "aud": "https://api.test", "exp": 4_000_000_000u64,
        "client_id": format!("client-{i}"), "sub": format!("client-{i}"),
    });
    let claims: AccessClaims = serde_json::from_value(claims).expect("claims");
    bearer_guard::testkit::verified_token(&format!("client-{i}"), claims)
}

/// One request through `svc` for the client of `claims`.
fn call(svc: &Svc, claims: &VerifiedToken) -> Pin<Box<dyn Future<Output = StatusCode>>> {
    let mut req = Request::new(());
    req.extensions_mut().insert(claims.clone());
    let svc = svc.clone();
    Box::pin(async move {
        let res = svc.oneshot(black_box(req)).await.expect("infallible");
        res.status()
    })
}

/// Polls every future until all are done (no `futures` dependency here).
async fn join_all(mut futures: Vec<Pin<Box<dyn Future<Output = StatusCode>>>>) -> Vec<StatusCode> {
    let mut out: Vec<Option<StatusCode>> = vec![None; futures.len()];
    poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(status) => *slot = Some(status),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|s| s.expect("done")).collect()
}

/// The median time of one iteration of `group/name`, from criterion's estimates of this run.
fn median_ns(group: &str, name: &str) -> Option<f64> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let path = target
        .join("criterion")
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}
