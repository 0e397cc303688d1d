//! Per-client rate limits (feature `rate-limit`), built on
//! [governor](https://docs.rs/governor)'s GCRA.
//!
//! [`RateLimitByClient`] is a layer placed *after* (inside) [`RequireScope`]: it reads the
//! [`VerifiedToken`] the authentication layer put into the request's extensions (whatever
//! the claims type), takes the caller from it, and lets the request through only while that
//! caller is within its quota. Each caller has its own bucket: one client exhausting its
//! quota does not slow down another.
//!
//! - **Quotas.** A default [`Quota`] for every caller, and per-client quotas for named ones
//!   ([`client`](RateLimitByClientBuilder::client) for a client id of every issuer,
//!   [`issuer_client`](RateLimitByClientBuilder::issuer_client) for one issuer's): a burst,
//!   refilled at a steady rate.
//! - **Key.** By default ([`ClientOrSubject`]): the token's issuer with its `client_id`, else
//!   with its `sub`, as separate key spaces ([`Caller`]). A client id is only unique within
//!   its issuer (RFC 6749 §2.2): with several trusted issuers, client `app` of one and client
//!   `app` of another have two buckets, and a token whose `sub` equals another client's id
//!   never drains that client's quota. Other keys:
//!   [`key_from_claims`](RateLimitByClientBuilder::key_from_claims) or any closure over the
//!   request ([`key`](RateLimitByClientBuilder::key)).
//! - **Anonymous requests** (no claims: a route with [optional](crate::RequireScope::optional)
//!   authentication, or a key function that found no key) share **one** bucket, limited by
//!   the default quota unless set with [`anonymous`](RateLimitByClientBuilder::anonymous).
//!   [`anonymous_unlimited`](RateLimitByClientBuilder::anonymous_unlimited) lets them through
//!   unlimited instead. Note that a `RateLimitByClient` placed *outside* `RequireScope` sees no
//!   claims at all and so limits every request under that one shared bucket.
//! - **Over quota**, the layer answers itself, never with an `Err`, through the same response
//!   table as the authentication layer: `429 Too Many Requests` with `Retry-After` (whole
//!   seconds, rounded up, at least 1) or, for gRPC requests, HTTP 200 with `grpc-status: 8`
//!   (`RESOURCE_EXHAUSTED`) and `grpc-retry-pushback-ms`. The response's extensions hold a
//!   [`RateLimited`] and an [`AuthError`](crate::AuthError) of kind
//!   [`RateLimited`](crate::ErrorKind::RateLimited); a `tracing` event (target
//!   `bearer_guard::rate_limit`) is emitted with `reason = "rate_limited"` and the
//!   `client_id`, never the token.
//! - **Several replicas** (feature `redis`): with [`redis`](RateLimitByClientBuilder::redis)
//!   the buckets live in Redis ([`RedisQuotas`]), so that N replicas give each client its
//!   quota once, not N times. The in-memory buckets then only serve [`Fallback::Local`]
//!   while Redis cannot answer.
//!
//! # Memory
//!
//! Named clients have fixed buckets. Every other caller gets a bucket in a governor keyed
//! state store, created on its first request. Keys come from validated tokens, so their number
//! is bounded by the issuer's clients (or subjects, when tokens carry no `client_id`), not by
//! what an attacker sends; a custom [`key`](RateLimitByClientBuilder::key) function over
//! unauthenticated input (an IP address, a header) does not have that bound. In any case,
//! every [`retain_recent_every`](RateLimitByClientBuilder::retain_recent_every) requests
//! (default [`DEFAULT_RETAIN_RECENT_EVERY`]) the store drops the buckets that have fully
//! replenished, which are indistinguishable from new ones.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//! use bearer_guard::rate_limit::{Quota, RateLimitByClient, RateLimited};
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! let burst = |n| NonZeroU32::new(n).expect("non-zero");
//! let limit = RateLimitByClient::builder(Quota::per_second(burst(10)))
//!     .client("billing", Quota::per_minute(burst(600)).allow_burst(burst(50)))
//!     .anonymous(Quota::per_hour(burst(1)))
//!     .build();
//!
//! let mut svc = ServiceBuilder::new()
//!     // .layer(RequireScope::authenticated(&validator).optional()) goes here, outside.
//!     .layer(limit)
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     }));
//!
//! # tokio_test_block_on(async {
//! // Requests without claims share the anonymous bucket: one per hour.
//! let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
//! assert!((3599..=3600).contains(&retry_after));
//! assert!(res.extensions().get::<RateLimited>().is_some());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! In an axum app, with [`tower::ServiceBuilder`](https://docs.rs/tower) listing the layers
//! from the outermost in:
//!
//! ```no_run
//! # use axum::{Router, routing::get};
//! # use bearer_guard::{RequireScope, Validator, rate_limit::{Quota, RateLimitByClient}};
//! # use tower::ServiceBuilder;
//! # fn app(validator: &Validator, quota: Quota) -> Router {
//! Router::new().route(
//!     "/reports",
//!     get(|| async { "reports" }).layer(
//!         ServiceBuilder::new()
//!             .layer(RequireScope::all(validator, ["reports:read"]).expect("valid scope"))
//!             .layer(RateLimitByClient::new(quota)),
//!     ),
//! )
//! # }
//! ```
//!
//! [`RequireScope`]: crate::RequireScope
//! [`VerifiedToken`]: crate::VerifiedToken

mod key;
mod layer;
mod memory;
mod quota;
mod service;

pub use self::key::{Caller, ClaimsKey, ClientOrSubject, RateLimitKey};
pub use self::layer::{DEFAULT_RETAIN_RECENT_EVERY, RateLimitByClient, RateLimitByClientBuilder};
pub use self::quota::{InvalidQuota, Quota};
pub use self::service::{RateLimitByClientService, RateLimited};

// Quotas shared through Redis (feature `redis`).
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{
    DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_RETRY_EVERY, DEFAULT_REDIS_TIMEOUT, Fallback, QuotaStats,
    QuotaStoreError, QuotaUnavailable, RedisQuotas, RedisQuotasBuilder,
};

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::num::NonZeroU32;

    use std::sync::Arc;
    use std::time::Duration;

    use http::header::{CONTENT_TYPE, RETRY_AFTER};
    use http::{HeaderValue, Request, Response, StatusCode, Version};
    use serde_json::json;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::verified::{Facts, VerifiedToken};
    use crate::{AuthError, Claims, ErrorKind};

    fn n(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    /// One request per hour after a burst of `burst`: nothing replenishes during a test.
    fn hourly(burst: u32) -> Quota {
        Quota::per_hour(n(1)).allow_burst(n(burst))
    }

    /// What the authentication layer records for a token with this client and subject.
    fn verified(client_id: Option<&str>, subject: Option<&str>) -> VerifiedToken {
        verified_by("https://issuer.test", client_id, subject)
    }

    /// The same, for a token of `issuer`.
    fn verified_by(issuer: &str, client_id: Option<&str>, subject: Option<&str>) -> VerifiedToken {
        VerifiedToken::new(Facts {
            issuer: issuer.into(),
            client_id: client_id.map(Into::into),
            subject: subject.map(Into::into),
            scopes: crate::scope::Granted::default(),
            jti: None,
            exp: 1,
            nbf: None,
            iat: None,
            cnf: None,
            act: None,
            acr: None,
            auth_time: None,
        })
    }

    fn request(token: Option<VerifiedToken>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(token) = token {
            req.extensions_mut().insert(token);
        }
        req
    }

    fn client(id: &str) -> Option<VerifiedToken> {
        Some(verified(Some(id), Some(id)))
    }

    async fn send<K, R>(layer: &RateLimitByClient<K, R>, req: Request<()>) -> Response<String>
    where
        K: RateLimitKey<()> + Send + Sync + 'static,
        R: crate::response::Rejection<String>,
    {
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new("ok".to_owned()))
        }));
        svc.oneshot(req).await.expect("infallible")
    }

    async fn statuses<K: RateLimitKey<()> + Send + Sync + 'static>(
        layer: &RateLimitByClient<K>,
        count: usize,
        token: impl Fn() -> Option<VerifiedToken>,
    ) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(send(layer, request(token())).await.status().as_u16());
        }
        out
    }

    #[tokio::test]
    async fn named_clients_get_their_own_quota_and_others_the_default() {
        let layer = RateLimitByClient::builder(hourly(2))
            .client("billing", hourly(4))
            .build();
        assert_eq!(
            statuses(&layer, 5, || client("billing")).await,
            [200, 200, 200, 200, 429]
        );
        assert_eq!(
            statuses(&layer, 3, || client("reports")).await,
            [200, 200, 429]
        );
        assert_eq!(
            statuses(&layer, 3, || client("other")).await,
            [200, 200, 429],
            "each unnamed client has its own bucket"
        );
        assert_eq!(layer.tracked_clients(), 2);
    }

    #[tokio::test]
    async fn the_same_client_id_of_two_issuers_has_two_buckets() {
        let of = |issuer: &'static str, id: &'static str| {
            move || Some(verified_by(issuer, Some(id), Some(id)))
        };
        let (a, b) = ("https://a.test", "https://b.test");
        // The default quota: issuer B's `app` cannot drain issuer A's `app`.
        let layer = RateLimitByClient::new(hourly(2));
        assert_eq!(statuses(&layer, 3, of(b, "app")).await, [200, 200, 429]);
        assert_eq!(statuses(&layer, 3, of(a, "app")).await, [200, 200, 429]);
        // Subjects too.
        let sub = |issuer: &'static str| move || Some(verified_by(issuer, None, Some("svc")));
        assert_eq!(statuses(&layer, 3, sub(a)).await, [200, 200, 429]);
        assert_eq!(statuses(&layer, 1, sub(b)).await, [200]);
        assert_eq!(layer.tracked_clients(), 4);

        // A quota named for a client id of every issuer: each issuer's client gets its own
        // bucket of that size; one named for one issuer applies to that issuer's only.
        let layer = RateLimitByClient::builder(hourly(1))
            .client("billing", hourly(3))
            .issuer_client(a, "reports", hourly(2))
            .build();
        assert_eq!(
            statuses(&layer, 4, of(a, "billing")).await,
            [200, 200, 200, 429]
        );
        assert_eq!(
            statuses(&layer, 4, of(b, "billing")).await,
            [200, 200, 200, 429]
        );
        assert_eq!(statuses(&layer, 3, of(a, "reports")).await, [200, 200, 429]);
        assert_eq!(
            statuses(&layer, 2, of(b, "reports")).await,
            [200, 429],
            "issuer B's `reports` has the default quota, in a bucket of its own"
        );
        // The issuer's own quota wins over the one for every issuer.
        let layer = RateLimitByClient::builder(hourly(1))
            .client("billing", hourly(3))
            .issuer_client(b, "billing", hourly(1))
            .build();
        assert_eq!(statuses(&layer, 2, of(b, "billing")).await, [200, 429]);
        assert_eq!(
            statuses(&layer, 4, of(a, "billing")).await,
            [200, 200, 200, 429]
        );
    }

    #[tokio::test]
    async fn over_quota_goes_through_the_rejection_like_every_other_refusal() {
        // The same kind of rejection a Guard takes: a JSON body, the standard status.
        let layer = RateLimitByClient::builder(hourly(1))
            .rejection(|refusal: &crate::response::Refusal| -> Response<String> {
                let mut res: Response<String> = refusal.to_response();
                let wait = refusal.retry_after().map_or(0, |w| w.as_secs());
                *res.body_mut() = format!(r#"{{"error":"{}","wait":{wait}}}"#, refusal.kind());
                res
            })
            .build();
        assert_eq!(send(&layer, request(client("a"))).await.status(), 200);
        let res = send(&layer, request(client("a"))).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key(RETRY_AFTER));
        assert!(res.body().starts_with(r#"{"error":"#), "{}", res.body());
        assert!(res.body().contains(r#""wait":3599"#), "{}", res.body());
        assert!(res.extensions().get::<RateLimited>().is_some());
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(ErrorKind::RateLimited)
        );
    }

    #[test]
    fn shared_keys_name_the_issuer_and_cannot_collide() {
        let client = |issuer: &'static str, id: &'static str| Caller::Client {
            issuer: issuer.into(),
            id: id.into(),
        };
        assert_eq!(
            client("https://a.test", "app").shared_key(),
            "client:14:https://a.test:app"
        );
        // An issuer ending in what another's client id begins with is told apart by length.
        assert_ne!(
            client("https://a.test:x", "y").shared_key(),
            client("https://a.test", "x:y").shared_key()
        );
        let sub = Caller::Subject {
            issuer: "https://a.test".into(),
            sub: "app".into(),
        };
        assert_eq!(sub.shared_key(), "sub:14:https://a.test:app");
        assert_eq!(Caller::Other("app".into()).shared_key(), "key:app");
    }

    #[tokio::test]
    async fn over_quota_is_429_with_retry_after_rounded_up_and_a_marker() {
        let layer = RateLimitByClient::new(Quota::per_minute(n(1)));
        assert_eq!(send(&layer, request(client("a"))).await.status(), 200);
        let res = send(&layer, request(client("a"))).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.body(), "");
        let secs: u64 = res.headers()[RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((59..=60).contains(&secs), "{secs}");
        let marker = res.extensions().get::<RateLimited>().expect("marker");
        assert!(marker.retry_after() <= Duration::from_secs(60));
        assert!(marker.retry_after() > Duration::from_secs(58));
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(ErrorKind::RateLimited)
        );
    }

    #[tokio::test]
    async fn grpc_requests_over_quota_get_resource_exhausted_with_http_200() {
        let layer = RateLimitByClient::new(hourly(1));
        let grpc = || {
            let mut req = request(client("a"));
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            req
        };
        assert_eq!(send(&layer, grpc()).await.body(), "ok");
        let res = send(&layer, grpc()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(res.headers()["grpc-message"], "rate limit exceeded");
        let pushback: u64 = res.headers()["grpc-retry-pushback-ms"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("ms");
        assert!(pushback > 3_590_000, "{pushback}");
        assert!(res.extensions().get::<RateLimited>().is_some());
        assert_eq!(res.body(), "");
        // The same content type over HTTP/1.1 is not gRPC: a plain 429.
        let mut http1 = grpc();
        *http1.version_mut() = Version::HTTP_11;
        assert_eq!(
            send(&layer, http1).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn anonymous_requests_share_one_bucket_by_default() {
        let layer = RateLimitByClient::builder(hourly(5))
            .anonymous(hourly(2))
            .build();
        assert_eq!(statuses(&layer, 3, || None).await, [200, 200, 429]);
        // A valid token without client_id or sub has no key either.
        assert_eq!(
            send(&layer, request(Some(verified(None, None))))
                .await
                .status(),
            429
        );
        assert_eq!(
            statuses(&layer, 2, || client("a")).await,
            [200, 200],
            "clients are not affected by the anonymous bucket"
        );
        let default = RateLimitByClient::new(hourly(1));
        assert_eq!(statuses(&default, 2, || None).await, [200, 429]);
    }

    #[tokio::test]
    async fn anonymous_unlimited_lets_requests_without_claims_through() {
        let layer = RateLimitByClient::builder(hourly(1))
            .anonymous_unlimited()
            .build();
        assert!(
            statuses(&layer, 20, || None)
                .await
                .iter()
                .all(|s| *s == 200)
        );
        assert_eq!(statuses(&layer, 2, || client("a")).await, [200, 429]);
    }

    #[tokio::test]
    async fn a_client_named_anonymous_is_not_the_anonymous_bucket() {
        let layer = RateLimitByClient::new(hourly(1));
        assert_eq!(statuses(&layer, 2, || None).await, [200, 429]);
        assert_eq!(statuses(&layer, 1, || client("anonymous")).await, [200]);
    }

    #[tokio::test]
    async fn sub_stands_in_for_a_missing_client_id_in_its_own_key_space() {
        let layer = RateLimitByClient::builder(hourly(2))
            .client("svc", hourly(1))
            .build();
        // A token naming no client is limited by its subject, under the default quota ...
        let by_sub = || Some(verified(None, Some("svc")));
        assert_eq!(statuses(&layer, 3, by_sub).await, [200, 200, 429]);
        // ... and never drew from the client `svc`'s own bucket.
        assert_eq!(statuses(&layer, 2, || client("svc")).await, [200, 429]);
        // Another subject equal to a client id: still its own bucket.
        let layer = RateLimitByClient::new(hourly(1));
        assert_eq!(statuses(&layer, 1, || client("billing")).await, [200]);
        assert_eq!(
            statuses(&layer, 1, || Some(verified(None, Some("billing")))).await,
            [200]
        );
        assert_eq!(layer.tracked_clients(), 2);
    }

    #[tokio::test]
    async fn the_key_does_not_depend_on_the_claims_type() {
        // Whatever `T` the validator deserializes into, the layer records a VerifiedToken:
        // two clients with custom claims get two buckets, not one shared one.
        #[derive(Debug)]
        struct Mine;
        let layer = RateLimitByClient::new(hourly(1));
        let custom = |id: &str| {
            let token = verified(Some(id), Some(id)).with_claims(&Claims(Arc::new(Mine)));
            request(Some(token))
        };
        assert_eq!(send(&layer, custom("a")).await.status(), 200);
        assert_eq!(send(&layer, custom("b")).await.status(), 200);
        assert_eq!(send(&layer, custom("a")).await.status(), 429);
    }

    #[tokio::test]
    async fn custom_keys_from_a_closure_or_from_claims() {
        let layer = RateLimitByClient::builder(hourly(1))
            .key(|req: &Request<()>| Some(req.headers().get("x-tenant")?.to_str().ok()?.to_owned()))
            .build();
        let tenant = |t: &'static str| {
            let mut req = request(None);
            req.headers_mut()
                .insert("x-tenant", HeaderValue::from_static(t));
            req
        };
        assert_eq!(send(&layer, tenant("t1")).await.status(), 200);
        assert_eq!(send(&layer, tenant("t1")).await.status(), 429);
        assert_eq!(send(&layer, tenant("t2")).await.status(), 200);

        #[derive(Debug)]
        struct Mine {
            tenant: String,
        }
        let layer = RateLimitByClient::builder(hourly(1))
            .key_from_claims(|c: &Mine| Some(c.tenant.as_str()))
            .anonymous_unlimited()
            .build();
        // The layer's one record holds the typed claims the key reads.
        let mine = |t: &str| {
            let claims = Claims(Arc::new(Mine {
                tenant: t.to_owned(),
            }));
            request(Some(verified(Some("c"), Some("c")).with_claims(&claims)))
        };
        assert_eq!(send(&layer, mine("x")).await.status(), 200);
        assert_eq!(send(&layer, mine("x")).await.status(), 429);
        assert_eq!(send(&layer, mine("y")).await.status(), 200);
        // No `Mine` claims: anonymous, and anonymous is unlimited here.
        assert_eq!(send(&layer, request(client("x"))).await.status(), 200);
    }

    #[tokio::test]
    async fn requests_pass_again_once_the_bucket_refills() {
        let quota = Quota::with_period(Duration::from_millis(200))
            .expect("non-zero")
            .allow_burst(n(2));
        let layer = RateLimitByClient::new(quota);
        assert_eq!(statuses(&layer, 3, || client("a")).await, [200, 200, 429]);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(statuses(&layer, 2, || client("a")).await, [200, 429]);
    }

    #[tokio::test]
    async fn idle_buckets_are_swept_out_of_the_keyed_store() {
        let quota = Quota::with_period(Duration::from_millis(20)).expect("non-zero");
        let layer = RateLimitByClient::builder(quota)
            .retain_recent_every(8)
            .build();
        for i in 0..7 {
            send(&layer, request(client(&format!("c{i}")))).await;
        }
        assert_eq!(layer.tracked_clients(), 7);
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&layer, request(client("last"))).await;
        // The sweep ran before the eighth request's check; only that client is left.
        assert_eq!(layer.tracked_clients(), 1);
    }

    #[tokio::test]
    async fn poll_ready_is_forwarded_to_the_inner_service() {
        let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, Response<()>, _>(
            RateLimitByClient::new(hourly(1)),
        );
        handle.allow(0);
        assert!(svc.poll_ready().is_pending());
        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
    }

    #[test]
    fn over_quota_is_logged_with_reason_and_client_id_but_no_token() {
        // One process-wide capture: a thread-local subscriber loses events whose callsite
        // another test's thread hit first (see `testkit::logs`).
        let capture = crate::testkit::logs::capture();
        let token = crate::testkit::token("ec-1", json!({"client_id": "billing"}));
        {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let layer = RateLimitByClient::new(hourly(1));
                let with_token = || {
                    let mut req = request(client("billing"));
                    req.headers_mut().insert(
                        "authorization",
                        HeaderValue::try_from(format!("Bearer {token}")).expect("header"),
                    );
                    req
                };
                assert_eq!(send(&layer, with_token()).await.status(), 200);
                assert_eq!(send(&layer, with_token()).await.status(), 429);
                assert_eq!(statuses(&layer, 2, || None).await, [200, 429]);
            });
        }
        let logs = capture.text();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].contains("reason=\"rate_limited\""), "{logs}");
        assert!(lines[0].contains("client_id=\"billing\""), "{logs}");
        assert!(lines[0].contains("retry_after_secs="), "{logs}");
        assert!(lines[1].contains("reason=\"rate_limited\""), "{logs}");
        assert!(!lines[1].contains("client_id"), "anonymous: {logs}");
        let signature = token.rsplit('.').next().expect("jws");
        assert!(
            !logs.contains(signature) && !logs.contains("Bearer"),
            "{logs}"
        );
    }

    #[test]
    fn debug_shows_quotas_and_clients() {
        let layer = RateLimitByClient::builder(hourly(3))
            .client("billing", hourly(7))
            .build();
        let shown = format!("{layer:?}");
        assert!(
            shown.contains("billing") && shown.contains("ClientOrSubject"),
            "{shown}"
        );
    }
}
