//! The request path on a cache hit allocates nothing beyond inserting its one record, the
//! verified token (which holds the typed claims), into the request's extensions; the bearer
//! parse and the response future allocate nothing.
//!
//! Counted with a global allocator, per thread, so that other tests running in parallel
//! threads do not disturb the count.

use bearer_guard::testkit as mint;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bearer_guard::{AccessClaims, KeySet, RequireScope, Validator, VerifiedToken, keys::Key};
use http::{HeaderValue, Request, Response};
use serde_json::json;
use tower::{Layer, Service, service_fn};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the thread-local may be gone while a thread shuts down.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

fn validator() -> Validator {
    let keys = KeySet::new([
        Key::from_pem(mint::ED_PUBLIC, jsonwebtoken::Algorithm::EdDSA)
            .expect("key")
            .with_kid("ed-1"),
    ]);
    Validator::builder()
        .issuer(mint::ISSUER)
        .audience(mint::AUDIENCE)
        .keys(keys)
        .build()
        .expect("validator")
}

#[test]
fn validate_on_a_cache_hit_allocates_nothing() {
    let v = validator();
    let t = mint::token("ed-1", json!({}));
    v.validate(&t).expect("first: verified and cached");
    // The first hit on a thread keeps the hit counter's metrics handle (one allocation per
    // thread and recorder, for the process's life); every later hit allocates nothing.
    v.validate(&t).expect("second: the first hit");
    let (n, claims) = allocations_in(|| v.validate(&t));
    claims.expect("hit");
    assert_eq!(n, 0, "a cache hit allocated {n} times");
}

/// The `VerifiedToken` the layer records for `t`, read back from a layered call.
fn verified_token(v: &Validator, t: &str) -> bearer_guard::VerifiedToken {
    let mut svc = RequireScope::authenticated(v).layer(service_fn(|req: Request<()>| {
        let token = req
            .extensions()
            .get::<bearer_guard::VerifiedToken>()
            .cloned();
        std::future::ready(Ok::<_, Infallible>(Response::new(token)))
    }));
    let mut req = Request::new(());
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {t}")).expect("header"),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => res.into_body().expect("verified"),
        _ => unreachable!("completes at once"),
    }
}

#[test]
fn the_layer_on_a_cache_hit_allocates_only_for_the_extension() {
    let v = validator();
    let t = mint::token("ed-1", json!({}));
    let claims = v.validate(&t).expect("cached");
    let header = HeaderValue::try_from(format!("Bearer {t}")).expect("header");

    // What inserting the one record into an empty `Extensions` costs on its own.
    let token = verified_token(&v, &t);
    assert_eq!(
        token.claims::<AccessClaims>().map(|c| c.jti.clone()),
        Some(claims.jti.clone()),
        "the record holds the typed claims"
    );
    let (extension_cost, _) = allocations_in(|| {
        let mut ext = http::Extensions::new();
        ext.insert(token.clone());
        ext
    });

    let mut svc = RequireScope::all(&v, ["read"])
        .expect("scopes")
        .layer(service_fn(|req: Request<()>| {
            // One extension, from which the typed claims are read.
            let ok = req.extensions().len() == 1
                && req
                    .extensions()
                    .get::<VerifiedToken>()
                    .and_then(VerifiedToken::claims::<AccessClaims>)
                    .is_some();
            std::future::ready(Ok::<_, Infallible>(Response::new(ok)))
        }));
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |req: Request<()>| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(req));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => res,
            _ => unreachable!("completes at once"),
        }
    };
    for _ in 0..3 {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        let (n, res) = allocations_in(|| call(req));
        assert!(
            *res.body(),
            "one record, with the claims, reached the handler"
        );
        assert_eq!(
            n, extension_cost,
            "the layer allocated {n} times; inserting the extensions alone costs {extension_cost}"
        );
    }
}

#[test]
fn a_rejection_allocates_nothing_in_the_layer() {
    let v = validator();
    let mut svc = RequireScope::all(&v, ["read"])
        .expect("scopes")
        .layer(service_fn(|_req: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(())))
        }));
    let mut cx = Context::from_waker(Waker::noop());
    // A missing token: no parse, no allocation but the response's own header map entry.
    let (with_header, _) = allocations_in(|| {
        let mut res = Response::new(());
        res.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        res.extensions_mut().insert(1u8);
        res
    });
    let mut reject = || {
        allocations_in(|| {
            assert!(svc.poll_ready(&mut cx).is_ready());
            let mut fut = pin!(svc.call(Request::new(())));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(res)) => res,
                _ => unreachable!("completes at once"),
            }
        })
    };
    // The first clone of a prebuilt challenge header promotes its bytes to shared storage
    // (one allocation, once); every later rejection costs what a bare response does.
    reject();
    for _ in 0..3 {
        let (n, res) = reject();
        assert_eq!(res.status(), 401);
        assert!(
            n <= with_header,
            "a rejection allocated {n} times (a bare response costs {with_header})"
        );
    }
}
