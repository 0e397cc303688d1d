//! Every metric of the table in `src/metrics.rs`, driven by the behaviour it counts and read
//! back from a real Prometheus recorder: the value and the labels, not only the name. The
//! layer answers real requests; keys come from a real JWKS server on 127.0.0.1, revocation
//! answers from an in-memory store, introspection and token answers from loopback stubs.
//!
//! Each test puts a recorder of its own in force on its thread
//! (`metrics::set_default_local_recorder`) and runs on a current-thread runtime: the layer,
//! the tasks the crate spawns (key fetches, introspection requests) and the local servers
//! all run on the test's thread, so the recorder sees every event, including those of the
//! counters whose handles the crate keeps per thread, and tests running in parallel (each on
//! a thread of its own) never add to one another's counts. Histograms are exported as the
//! example (`examples/resource_server.rs`) exports them, with `PrometheusBuilder`'s
//! defaults: summaries, whose `_count` and `_sum` are checked.
//!
//! The last part checks the Grafana dashboard (`examples/grafana/dashboard.json`) against
//! the same table: every series a panel queries is one the crate exports, and every metric
//! of the table is charted.
#![cfg(all(
    feature = "metrics",
    feature = "remote",
    feature = "rate-limit",
    feature = "client"
))]

#[path = "common/http_stub.rs"]
mod http_stub;
#[path = "common/jwks_server.rs"]
mod jwks_server;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bearer_guard::client::{AddAccessTokenLayer, BoxError, ClientCredentials};
use bearer_guard::introspection::Introspection;
use bearer_guard::rate_limit::{Quota, RateLimitByClient};
use bearer_guard::revocation::{MemoryRevocations, RevocationError, RevocationFuture, Revocations};
use bearer_guard::service::RequireScopeService;
use bearer_guard::testkit::{self as mint, AUDIENCE, ISSUER, now, token};
use bearer_guard::{AuthError, ErrorKind, RemoteKeys, RequireScope, Validator};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use http_stub::{Reply, Stub};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jwks_server::{Behaviour, JwksServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::{Value, json};
use tower::util::ServiceFn;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _, service_fn};

// ---------------------------------------------------------------------------------------
// The table: what `src/metrics.rs` documents, and what these tests check.

/// The source of the table, read when the tests are compiled.
const METRICS_RS: &str = include_str!("../src/metrics.rs");

/// One row of the table.
#[derive(Debug, Clone)]
struct Documented {
    name: String,
    /// `counter`, `gauge` or `histogram`.
    kind: String,
    /// The label names (the values named in parentheses are not labels).
    labels: BTreeSet<String>,
}

/// The rows of the table in `src/metrics.rs`' module docs.
fn documented() -> Vec<Documented> {
    let rows: Vec<Documented> = METRICS_RS
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `bearer_guard_"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert!(cells.len() >= 4, "a row of four cells: {row}");
            let name = format!("bearer_guard_{}", cells[0].trim_end_matches('`'));
            Documented {
                name,
                kind: cells[1].to_owned(),
                labels: label_names(cells[2]),
            }
        })
        .collect();
    assert!(rows.len() >= 10, "the table was not found: {rows:?}");
    rows
}

/// The backticked words of a labels cell outside parentheses: `outcome` (`admitted`, ..),
/// `reason` gives `outcome` and `reason`.
fn label_names(cell: &str) -> BTreeSet<String> {
    let mut depth = 0usize;
    let mut outside = String::new();
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every metric and the test below that drives it and checks its value.
const CHECKED_BY: &[(&str, &str)] = &[
    (
        "bearer_guard_requests_total",
        "requests_total_counts_admissions_and_each_refusal_under_its_reason",
    ),
    (
        "bearer_guard_requests_total",
        "a_quota_refusal_counts_as_rate_limited_after_the_auth_layer_admitted_the_request",
    ),
    (
        "bearer_guard_verify_seconds",
        "verify_seconds_times_each_verification_of_a_token_not_served_from_the_cache",
    ),
    (
        "bearer_guard_token_cache_total",
        "token_cache_total_counts_hits_and_misses_and_nothing_without_a_cache",
    ),
    (
        "bearer_guard_token_cache_evictions_total",
        "a_two_token_cache_counts_an_eviction_for_each_new_token_past_the_second",
    ),
    (
        "bearer_guard_token_cache_entries",
        "the_cache_gauges_are_its_size_after_each_insertion_and_nothing_is_evicted_when_it_fits",
    ),
    (
        "bearer_guard_token_cache_bytes",
        "the_cache_gauges_are_its_size_after_each_insertion_and_nothing_is_evicted_when_it_fits",
    ),
    (
        "bearer_guard_key_fetches_total",
        "a_good_key_fetch_counts_as_ok_and_stamps_the_issuer_s_key_set",
    ),
    (
        "bearer_guard_key_fetches_total",
        "a_failed_key_fetch_counts_under_its_reason_and_stamps_nothing",
    ),
    (
        "bearer_guard_key_set_fetched_timestamp_seconds",
        "a_good_key_fetch_counts_as_ok_and_stamps_the_issuer_s_key_set",
    ),
    (
        "bearer_guard_revocation_lookups_total",
        "revocation_lookups_count_each_answer_of_the_store_and_are_timed",
    ),
    (
        "bearer_guard_revocation_lookup_seconds",
        "revocation_lookups_count_each_answer_of_the_store_and_are_timed",
    ),
    (
        "bearer_guard_introspection_requests_total",
        "introspection_requests_count_each_answer_of_the_endpoint_and_are_timed",
    ),
    (
        "bearer_guard_introspection_seconds",
        "introspection_requests_count_each_answer_of_the_endpoint_and_are_timed",
    ),
    (
        "bearer_guard_client_token_requests_total",
        "client_token_requests_count_each_request_to_the_token_endpoint_by_result",
    ),
];

/// The names the crate's sources pass to the `metrics` macros and keys: every string
/// literal starting with `bearer_guard_` in `src/`.
fn emitted_names() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for (i, _) in text.match_indices("\"bearer_guard_") {
                    let rest = &text[i + 1..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    names.insert(rest[..end].to_owned());
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut names,
    );
    names
}

/// The table names every metric the sources emit and no other, and each is checked by a
/// test of this file (listed in [`CHECKED_BY`], whose test names must exist here).
#[test]
fn the_table_documents_every_emitted_metric_and_each_has_a_test() {
    let table: BTreeSet<String> = documented().into_iter().map(|d| d.name).collect();
    assert_eq!(
        table,
        emitted_names(),
        "the table in src/metrics.rs and the names the sources emit differ"
    );
    let checked: BTreeSet<String> = CHECKED_BY.iter().map(|(m, _)| (*m).to_owned()).collect();
    assert_eq!(table, checked, "a metric of the table without a test here");
    let this_file = include_str!("metrics.rs");
    for (_, test) in CHECKED_BY {
        assert!(
            this_file.contains(&format!("async fn {test}()")),
            "no test named {test}"
        );
    }
    for row in documented() {
        assert!(
            ["counter", "gauge", "histogram"].contains(&row.kind.as_str()),
            "{row:?}"
        );
        // Prometheus conventions: counters end in `_total`, nothing else does; times are
        // in seconds; no client id as a label.
        assert_eq!(
            row.kind == "counter",
            row.name.ends_with("_total"),
            "{row:?}"
        );
        if row.kind == "histogram" {
            assert!(row.name.ends_with("_seconds"), "{row:?}");
        }
        for label in &row.labels {
            assert!(
                ["outcome", "reason", "result", "issuer"].contains(&label.as_str()),
                "{row:?}: label {label} is not one of the bounded ones"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A scrape: the recorder's text exposition, parsed.

fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    // As the example installs it: no buckets, so histograms are summaries.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// One sample line: `name{label="value",..} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Scrape {
    text: String,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

type Labels<'a> = &'a [(&'a str, &'a str)];

impl Scrape {
    fn of(handle: &PrometheusHandle) -> Scrape {
        let text = handle.render();
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(typed) = line.strip_prefix("# TYPE ") {
                let (name, kind) = typed.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                let sample = parse_sample(line)
                    .unwrap_or_else(|| panic!("not a sample line: {line:?}\n{text}"));
                samples.push(sample);
            }
        }
        Scrape {
            text,
            types,
            samples,
        }
    }

    /// The value of `name` with exactly these labels, if exported.
    fn value(&self, name: &str, labels: Labels<'_>) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Every series of `name`, as `k=v,k=v` (sorted) with its value.
    fn series(&self, name: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (label_key(&s.labels), s.value))
            .collect()
    }

    /// `name` has exactly these series with these values, and is exported as `kind`.
    fn assert_series(&self, name: &str, kind: &str, expected: &[(Labels<'_>, f64)]) {
        let expected: BTreeMap<String, f64> = expected
            .iter()
            .map(|(labels, value)| {
                let labels = labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                (label_key(&labels), *value)
            })
            .collect();
        assert_eq!(self.series(name), expected, "{name}:\n{}", self.text);
        self.assert_type(name, kind);
    }

    fn assert_type(&self, name: &str, kind: &str) {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}:\n{}",
            self.text
        );
    }

    /// The `_count` and `_sum` of a histogram exported as a summary (no labels), after
    /// checking it is one and has its quantiles.
    fn summary(&self, name: &str) -> (f64, f64) {
        self.assert_type(name, "summary");
        for q in ["0.5", "0.99"] {
            assert!(
                self.value(name, &[("quantile", q)]).is_some(),
                "no {name}{{quantile=\"{q}\"}}:\n{}",
                self.text
            );
        }
        let count = self.value(&format!("{name}_count"), &[]);
        let sum = self.value(&format!("{name}_sum"), &[]);
        match (count, sum) {
            (Some(count), Some(sum)) => (count, sum),
            _ => panic!("no {name}_count or _sum:\n{}", self.text),
        }
    }

    /// Whether any series of `name` (or its summary's) is exported.
    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| {
            s.name == name || s.name == format!("{name}_count") || s.name == format!("{name}_sum")
        })
    }
}

fn label_key(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `name{k="v",..} value` (label values with `\\`, `\"` and `\n` escapes).
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim_start_matches(',').to_owned(), value);
            inner = &after[end + 1..];
            inner = inner.strip_prefix(',').unwrap_or(inner);
        }
    }
    let value = rest.trim().split(' ').next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[test]
fn the_scrape_parser_reads_names_labels_escapes_and_values() {
    let s = parse_sample(r#"m_total{a="x",b="q\"uo\\te\n"} 12"#).expect("sample");
    assert_eq!(s.name, "m_total");
    assert_eq!(s.labels["a"], "x");
    assert_eq!(s.labels["b"], "q\"uo\\te\n");
    assert_eq!(s.value, 12.0);
    let s = parse_sample("m_sum 0.25").expect("sample");
    assert!(s.labels.is_empty());
    assert_eq!(s.value, 0.25);
    assert!(parse_sample("m{a=\"x} 1").is_none());
}

// ---------------------------------------------------------------------------------------
// Requests through the real layer.

type Answer = Response<String>;

/// The protected handler: `200 ok`.
type Handler = ServiceFn<fn(Request<()>) -> Ready<Result<Answer, Infallible>>>;

fn handler() -> Handler {
    fn ok(_req: Request<()>) -> Ready<Result<Answer, Infallible>> {
        ready(Ok(Response::new("ok".to_owned())))
    }
    service_fn(ok as fn(_) -> _)
}

/// One request with `token` (if any) as `Bearer`.
async fn send<S>(svc: &S, token: Option<&str>) -> Answer
where
    S: Service<Request<()>, Response = Answer, Error = Infallible> + Clone,
{
    let mut req = Request::get("/data");
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    svc.clone()
        .oneshot(req.body(()).expect("request"))
        .await
        .expect("infallible")
}

/// `layer` around the handler.
fn protected(layer: &RequireScope) -> RequireScopeService<Handler> {
    layer.layer(handler())
}

/// The refusal's kind, or `None` for an admitted request.
fn refusal(res: &Answer) -> Option<ErrorKind> {
    res.extensions().get::<AuthError>().map(AuthError::kind)
}

/// Unix time now, in seconds with a fraction.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

const ADMITTED: Labels<'static> = &[("outcome", "admitted")];

fn refused(reason: &'static str) -> [(&'static str, &'static str); 2] {
    [("outcome", "refused"), ("reason", reason)]
}

// ---------------------------------------------------------------------------------------
// bearer_guard_requests_total

/// Admissions count under `outcome="admitted"` (the second with a cached token, through
/// the counter whose handle is kept per thread), every refusal under `outcome="refused"`
/// with its `reason`, as many times as it happened; no token appears in any label.
#[tokio::test(flavor = "current_thread")]
async fn requests_total_counts_admissions_and_each_refusal_under_its_reason() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::validator();
    let api = protected(&RequireScope::all(&validator, ["read"]).expect("scope"));

    let good = token("rsa-1", json!({}));
    let expired = token("ec-1", json!({"exp": now() - 3600, "iat": now() - 4000}));
    let write_only = token("ed-1", json!({"scope": "write"}));
    let elsewhere = token("ec-1", json!({"aud": "https://other.test"}));
    let unknown_kid = mint::token_with("rsa-1", json!({"kid": "gone"}), json!({}));
    let cases: [(Option<&str>, Option<ErrorKind>); 10] = [
        (Some(&good), None),
        (Some(&good), None),
        (None, Some(ErrorKind::MissingToken)),
        (Some("not-a-jwt"), Some(ErrorKind::Malformed)),
        (Some(&expired), Some(ErrorKind::Expired)),
        (Some(&write_only), Some(ErrorKind::InsufficientScope)),
        (Some(&write_only), Some(ErrorKind::InsufficientScope)),
        (Some(&write_only), Some(ErrorKind::InsufficientScope)),
        (Some(&elsewhere), Some(ErrorKind::InvalidAudience)),
        (Some(&unknown_kid), Some(ErrorKind::UnknownKey)),
    ];
    for (token, expected) in cases {
        assert_eq!(refusal(&send(&api, token).await), expected, "{token:?}");
    }

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_requests_total",
        "counter",
        &[
            (ADMITTED, 2.0),
            (&refused("missing_token"), 1.0),
            (&refused("malformed"), 1.0),
            (&refused("expired"), 1.0),
            (&refused("insufficient_scope"), 3.0),
            (&refused("invalid_audience"), 1.0),
            (&refused("unknown_key"), 1.0),
        ],
    );
    for token in [&good, &expired, &write_only, &elsewhere] {
        assert!(!scrape.text.contains(token.as_str()), "{}", scrape.text);
    }
    assert!(!scrape.text.contains("client-a"), "no client id as a label");
}

/// `RateLimitByClient` behind `RequireScope`: a request over quota is one the auth layer
/// admitted (`outcome="admitted"`) and the rate limit refused
/// (`outcome="refused",reason="rate_limited"`), so it counts once as each; another client
/// has its own quota.
#[tokio::test(flavor = "current_thread")]
async fn a_quota_refusal_counts_as_rate_limited_after_the_auth_layer_admitted_the_request() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::validator();
    let burst = NonZeroU32::new(2).expect("non-zero");
    let one = NonZeroU32::new(1).expect("non-zero");
    let api = ServiceBuilder::new()
        .layer(RequireScope::authenticated(&validator))
        .layer(RateLimitByClient::new(
            Quota::per_hour(one).allow_burst(burst),
        ))
        .service(handler());

    let a = token("rsa-1", json!({}));
    let b = token("rsa-1", json!({"client_id": "client-b", "sub": "client-b"}));
    let mut statuses = Vec::new();
    for token in [&a, &a, &a, &b] {
        statuses.push(send(&api, Some(token)).await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::OK
        ]
    );
    assert_eq!(ErrorKind::RateLimited.as_str(), "rate_limited");

    Scrape::of(&handle).assert_series(
        "bearer_guard_requests_total",
        "counter",
        &[(ADMITTED, 4.0), (&refused("rate_limited"), 1.0)],
    );
}

// ---------------------------------------------------------------------------------------
// bearer_guard_verify_seconds, bearer_guard_token_cache_*

/// One verification per token not served from the cache, whether it passes or not: two
/// good tokens (one sent three times) and a malformed one are three; a missing token is
/// none.
#[tokio::test(flavor = "current_thread")]
async fn verify_seconds_times_each_verification_of_a_token_not_served_from_the_cache() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::validator();
    let api = protected(&RequireScope::authenticated(&validator));
    let a = token("rsa-1", json!({}));
    let b = token("ec-1", json!({}));
    for token in [
        Some(&*a),
        Some(&*a),
        Some(&*b),
        Some(&*a),
        Some("x.y"),
        None,
    ] {
        send(&api, token).await;
    }
    let (count, sum) = Scrape::of(&handle).summary("bearer_guard_verify_seconds");
    assert_eq!(count, 3.0);
    assert!(sum > 0.0, "{sum}");
}

/// A token verified once is found in the cache afterwards: two tokens, five requests, two
/// misses and three hits (the hits through the counter whose handle is kept per thread).
/// A validator without a cache counts neither.
#[tokio::test(flavor = "current_thread")]
async fn token_cache_total_counts_hits_and_misses_and_nothing_without_a_cache() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::validator();
    let api = protected(&RequireScope::authenticated(&validator));
    let a = token("rsa-1", json!({}));
    let b = token("ed-1", json!({}));
    for token in [&a, &a, &b, &a, &b] {
        assert_eq!(refusal(&send(&api, Some(token)).await), None);
    }
    let uncached = mint::builder()
        .without_token_cache()
        .build()
        .expect("validator");
    let uncached = protected(&RequireScope::authenticated(&uncached));
    for token in [&a, &a] {
        assert_eq!(refusal(&send(&uncached, Some(token)).await), None);
    }

    Scrape::of(&handle).assert_series(
        "bearer_guard_token_cache_total",
        "counter",
        &[(&[("result", "miss")], 2.0), (&[("result", "hit")], 3.0)],
    );
}

/// A cache of two tokens (each weighing half the byte budget, its floor weight): each new
/// token past the second evicts one, so five tokens are three evictions, and the cache
/// stays full: two tokens, the whole budget.
#[tokio::test(flavor = "current_thread")]
async fn a_two_token_cache_counts_an_eviction_for_each_new_token_past_the_second() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::builder()
        .token_cache(2, 4096)
        .build()
        .expect("validator");
    let api = protected(&RequireScope::authenticated(&validator));
    for _ in 0..5 {
        let fresh = token("ed-1", json!({}));
        assert_eq!(refusal(&send(&api, Some(&fresh)).await), None);
    }
    assert_eq!(validator.token_cache_usage(), Some((2, 4096)));

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_token_cache_evictions_total",
        "counter",
        &[(&[], 3.0)],
    );
    scrape.assert_series("bearer_guard_token_cache_entries", "gauge", &[(&[], 2.0)]);
    scrape.assert_series("bearer_guard_token_cache_bytes", "gauge", &[(&[], 4096.0)]);
}

/// The gauges are the cache's size after the last insertion, as the validator reports it;
/// a cache with room evicts nothing (no evictions series at all).
#[tokio::test(flavor = "current_thread")]
async fn the_cache_gauges_are_its_size_after_each_insertion_and_nothing_is_evicted_when_it_fits() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let validator = mint::validator();
    let api = protected(&RequireScope::authenticated(&validator));
    let tokens: Vec<String> = ["rsa-1", "ec-1", "ed-1"]
        .iter()
        .map(|kid| token(kid, json!({})))
        .collect();
    for token in tokens.iter().chain(&tokens) {
        assert_eq!(refusal(&send(&api, Some(token)).await), None);
    }
    let (entries, bytes) = validator.token_cache_usage().expect("cache on");
    assert_eq!(entries, 3);
    assert!(bytes > 0);

    let scrape = Scrape::of(&handle);
    scrape.assert_series("bearer_guard_token_cache_entries", "gauge", &[(&[], 3.0)]);
    scrape.assert_series(
        "bearer_guard_token_cache_bytes",
        "gauge",
        &[(&[], bytes as f64)],
    );
    assert!(
        !scrape.has("bearer_guard_token_cache_evictions_total"),
        "{}",
        scrape.text
    );
}

// ---------------------------------------------------------------------------------------
// bearer_guard_key_fetches_total, bearer_guard_key_set_fetched_timestamp_seconds

/// A validator for [`ISSUER`] whose keys come from `url`, fetched by the first request.
fn remote_validator(url: String) -> Validator {
    Validator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(RemoteKeys::jwks_url(url).timeouts(Duration::from_secs(5), Duration::from_secs(10)))
        .build()
        .expect("validator")
}

/// The first request fetches the key set (one `GET /jwks`): `result="ok"`, and the
/// issuer's key set is stamped with the time of the fetch. Later requests fetch nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_good_key_fetch_counts_as_ok_and_stamps_the_issuer_s_key_set() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let server = JwksServer::start().await;
    server.json("/jwks", mint::jwks(&["rsa-1", "ec-1"]));
    let validator = remote_validator(server.url("/jwks"));
    let api = protected(&RequireScope::authenticated(&validator));

    let before = unix_now();
    let first = token("rsa-1", json!({}));
    assert_eq!(refusal(&send(&api, Some(&first)).await), None);
    let after = unix_now();
    for kid in ["rsa-1", "ec-1"] {
        let token = token(kid, json!({}));
        assert_eq!(refusal(&send(&api, Some(&token)).await), None);
    }
    assert_eq!(server.hits("/jwks"), 1);

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_key_fetches_total",
        "counter",
        &[(&[("result", "ok")], 1.0)],
    );
    let stamped = scrape.series("bearer_guard_key_set_fetched_timestamp_seconds");
    assert_eq!(
        stamped.keys().collect::<Vec<_>>(),
        [&format!("issuer={ISSUER}")],
        "{}",
        scrape.text
    );
    scrape.assert_type("bearer_guard_key_set_fetched_timestamp_seconds", "gauge");
    let at = scrape
        .value(
            "bearer_guard_key_set_fetched_timestamp_seconds",
            &[("issuer", ISSUER)],
        )
        .expect("stamped");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
}

/// Fetches that fail count under why: an error status (`http_status`), a document that
/// is no key set (`invalid_document`), no server (`connect`); each request is refused as
/// `keys_unavailable`, and no key set is stamped.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_key_fetch_counts_under_its_reason_and_stamps_nothing() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let server = JwksServer::start().await;
    server.set("/down", Behaviour::Status(503));
    server.json("/not-keys", r#"{"keys": 7}"#);
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let token = token("rsa-1", json!({}));
    for url in [
        server.url("/down"),
        server.url("/not-keys"),
        format!("http://{closed}/jwks"),
    ] {
        let validator = remote_validator(url);
        let api = protected(&RequireScope::authenticated(&validator));
        assert_eq!(
            refusal(&send(&api, Some(&token)).await),
            Some(ErrorKind::KeysUnavailable)
        );
    }
    assert_eq!((server.hits("/down"), server.hits("/not-keys")), (1, 1));

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_key_fetches_total",
        "counter",
        &[
            (&[("result", "http_status")], 1.0),
            (&[("result", "invalid_document")], 1.0),
            (&[("result", "connect")], 1.0),
        ],
    );
    assert!(
        !scrape.has("bearer_guard_key_set_fetched_timestamp_seconds"),
        "{}",
        scrape.text
    );
    scrape.assert_series(
        "bearer_guard_requests_total",
        "counter",
        &[(&refused("keys_unavailable"), 3.0)],
    );
}

// ---------------------------------------------------------------------------------------
// bearer_guard_revocation_lookups_total, bearer_guard_revocation_lookup_seconds

/// A store that cannot answer.
struct Down;

impl Revocations for Down {
    fn is_revoked<'a>(&'a self, _: &'a str, _: &'a str) -> RevocationFuture<'a, bool> {
        Box::pin(async { Err(RevocationError::new("store down")) })
    }

    fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> RevocationFuture<'a, ()> {
        Box::pin(async { Err(RevocationError::new("store down")) })
    }
}

/// With no memo, every request asks the store: a good token twice (`not_revoked`), a
/// revoked one (`revoked`), and a store that cannot answer (`error`, refused as
/// `revocation_unavailable`); each lookup is timed.
#[tokio::test(flavor = "current_thread")]
async fn revocation_lookups_count_each_answer_of_the_store_and_are_timed() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let store = Arc::new(MemoryRevocations::new());
    store
        .revoke(ISSUER, "revoked-1", now() + 600)
        .await
        .expect("revoke");
    let validator = mint::builder()
        .revocation(store)
        .revocation_memo(Duration::ZERO)
        .build()
        .expect("validator");
    let api = protected(&RequireScope::authenticated(&validator));
    let good = token("rsa-1", json!({"jti": "good-1"}));
    let revoked = token("rsa-1", json!({"jti": "revoked-1"}));
    assert_eq!(refusal(&send(&api, Some(&good)).await), None);
    assert_eq!(refusal(&send(&api, Some(&good)).await), None);
    assert_eq!(
        refusal(&send(&api, Some(&revoked)).await),
        Some(ErrorKind::Revoked)
    );
    let down = mint::builder()
        .revocation(Arc::new(Down))
        .revocation_memo(Duration::ZERO)
        .build()
        .expect("validator");
    let down = protected(&RequireScope::authenticated(&down));
    assert_eq!(
        refusal(&send(&down, Some(&good)).await),
        Some(ErrorKind::RevocationUnavailable)
    );

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_revocation_lookups_total",
        "counter",
        &[
            (&[("result", "not_revoked")], 2.0),
            (&[("result", "revoked")], 1.0),
            (&[("result", "error")], 1.0),
        ],
    );
    let (count, sum) = scrape.summary("bearer_guard_revocation_lookup_seconds");
    assert_eq!(count, 4.0);
    assert!(sum > 0.0, "{sum}");
}

// ---------------------------------------------------------------------------------------
// bearer_guard_introspection_requests_total, bearer_guard_introspection_seconds

/// A validator whose tokens are all introspected at a stub answering `reply`.
async fn introspecting(reply: Reply) -> (Stub, Validator) {
    let stub = Stub::start(reply).await;
    let introspection =
        Introspection::builder(stub.url("/introspect"), "rs", "rs-secret-0123456789abcdef")
            .issuer(ISSUER)
            .build()
            .expect("introspection");
    let validator = Validator::builder()
        .audience(AUDIENCE)
        .introspection(introspection)
        .build()
        .expect("validator");
    (stub, validator)
}

/// An active answer for [`AUDIENCE`], or for `audience`.
fn active(audience: &str) -> Reply {
    let now = now();
    let body = json!({
        "active": true, "iss": ISSUER, "aud": audience, "sub": "client-a",
        "client_id": "client-a", "scope": "read", "exp": now + 600, "iat": now,
        "jti": "opaque-jti-1",
    });
    Reply::json(200, &body.to_string())
}

/// One opaque token per endpoint, each asked about once: `active`, `inactive`, `refused`
/// (an active answer for another audience), and why the others gave no answer
/// (`http_status`, `client_refused`); each request is timed.
#[tokio::test(flavor = "current_thread")]
async fn introspection_requests_count_each_answer_of_the_endpoint_and_are_timed() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let cases = [
        (active(AUDIENCE), None),
        (
            Reply::json(200, r#"{"active":false}"#),
            Some(ErrorKind::InactiveToken),
        ),
        (
            active("https://other.test"),
            Some(ErrorKind::InvalidAudience),
        ),
        (
            Reply::json(500, "{}"),
            Some(ErrorKind::IntrospectionUnavailable),
        ),
        (
            Reply::json(401, r#"{"error":"invalid_client"}"#),
            Some(ErrorKind::IntrospectionUnavailable),
        ),
    ];
    for (i, (reply, expected)) in cases.into_iter().enumerate() {
        let (stub, validator) = introspecting(reply).await;
        let api = protected(&RequireScope::authenticated(&validator));
        let opaque = format!("opaque-token-{i}");
        assert_eq!(
            refusal(&send(&api, Some(&opaque)).await),
            expected,
            "case {i}"
        );
        assert_eq!(stub.heads().len(), 1, "case {i}: one introspection request");
    }

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_introspection_requests_total",
        "counter",
        &[
            (&[("result", "active")], 1.0),
            (&[("result", "inactive")], 1.0),
            (&[("result", "refused")], 1.0),
            (&[("result", "http_status")], 1.0),
            (&[("result", "client_refused")], 1.0),
        ],
    );
    let (count, sum) = scrape.summary("bearer_guard_introspection_seconds");
    assert_eq!(count, 5.0);
    assert!(sum > 0.0, "{sum}");
    assert!(!scrape.text.contains("opaque-token"), "{}", scrape.text);
}

// ---------------------------------------------------------------------------------------
// bearer_guard_client_token_requests_total

const SVC_SECRET: &str = "svc-secret-0123456789";

/// The outgoing side against a stub token endpoint answering `reply`, calling `api`.
fn calling(
    token_endpoint: &Stub,
    api: &Stub,
) -> bearer_guard::client::AddAccessToken<
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
> {
    let credentials = ClientCredentials::builder(token_endpoint.url("/token"), "svc", SVC_SECRET)
        .resource(api.url("/"))
        .build()
        .expect("credentials");
    let layer = AddAccessTokenLayer::builder(credentials)
        .build()
        .expect("layer");
    layer.layer(Client::builder(TokioExecutor::new()).build_http())
}

/// One token request for three calls while the token lasts (`ok`), and one per failing
/// call: refused by the endpoint (`rejected`), or an unexpected status (`http_status`).
#[tokio::test(flavor = "current_thread")]
async fn client_token_requests_count_each_request_to_the_token_endpoint_by_result() {
    let (recorder, handle) = recorder();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let api = Stub::start(Reply::json(200, "{}")).await;
    let get = || {
        Request::get(api.url("/data"))
            .body(Full::<Bytes>::default())
            .expect("request")
    };

    let issuing = Stub::start(Reply::json(
        200,
        r#"{"access_token":"stub-token","token_type":"Bearer","expires_in":3600}"#,
    ))
    .await;
    let svc = calling(&issuing, &api);
    for _ in 0..3 {
        let res = svc.clone().oneshot(get()).await.expect("call");
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(issuing.heads().len(), 1);

    for reply in [
        Reply::json(400, r#"{"error":"invalid_client"}"#),
        Reply::json(502, "{}"),
    ] {
        let failing = Stub::start(reply).await;
        let err: BoxError = calling(&failing, &api)
            .oneshot(get())
            .await
            .expect_err("no token");
        assert!(
            err.downcast_ref::<bearer_guard::client::TokenError>()
                .is_some(),
            "{err}"
        );
    }

    let scrape = Scrape::of(&handle);
    scrape.assert_series(
        "bearer_guard_client_token_requests_total",
        "counter",
        &[
            (&[("result", "ok")], 1.0),
            (&[("result", "rejected")], 1.0),
            (&[("result", "http_status")], 1.0),
        ],
    );
    assert!(!scrape.text.contains(SVC_SECRET), "{}", scrape.text);
    assert!(!scrape.text.contains("svc"), "no client id as a label");
}

// ---------------------------------------------------------------------------------------
// The Grafana dashboard

const DASHBOARD: &str = include_str!("../examples/grafana/dashboard.json");

/// Documented metrics no panel charts, on purpose. Empty: every metric has a panel.
const NOT_CHARTED: &[&str] = &[];

/// Labels every scraped series has besides the crate's own (set by Prometheus).
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Every panel, rows' collapsed panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        if let Some(inner) = panel.get("panels").and_then(Value::as_array) {
            all.extend(inner);
        }
    }
    all
}

/// A metric name used in a query, and the label names its selector matches on.
#[derive(Debug)]
struct Selector {
    name: String,
    labels: Vec<(String, String)>,
}

/// The `bearer_guard_*` selectors of a PromQL expression, with the labels and values of
/// their matchers (`{a="x", b=~"y|z"}`).
fn selectors(expr: &str) -> Vec<Selector> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = expr[at..].find("bearer_guard_") {
        let start = at + i;
        let end = expr[start..]
            .find(|c: char| !ident(c))
            .map_or(expr.len(), |e| start + e);
        // Part of a longer identifier (`x_bearer_guard_..`) is not a metric name.
        let inside = expr[..start].chars().next_back().is_some_and(ident);
        let mut labels = Vec::new();
        if let Some(body) = expr[end..].strip_prefix('{') {
            let close = body.find('}').expect("closed selector");
            for matcher in body[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let op = matcher.find(['=', '!']).expect("a matcher");
                let value = matcher[op..].trim_start_matches(['=', '!', '~']).trim();
                labels.push((
                    matcher[..op].trim().to_owned(),
                    value.trim_matches('"').to_owned(),
                ));
            }
        }
        if !inside {
            found.push(Selector {
                name: expr[start..end].to_owned(),
                labels,
            });
        }
        at = end;
    }
    found
}

/// The documented metric a series belongs to, and the labels it may have: a counter or a
/// gauge is its own series; a histogram, exported as a summary (the example installs the
/// exporter without buckets), is its `quantile` series, `_sum` and `_count`: there is no
/// `_bucket`.
fn series_of<'a>(table: &'a [Documented], series: &str) -> Option<(&'a Documented, bool)> {
    if let Some(row) = table.iter().find(|d| d.name == series) {
        return Some((row, row.kind == "histogram"));
    }
    let base = series
        .strip_suffix("_sum")
        .or_else(|| series.strip_suffix("_count"))?;
    table
        .iter()
        .find(|d| d.name == base && d.kind == "histogram")
        .map(|row| (row, false))
}

/// Every reason `bearer_guard_requests_total` can carry ([`ErrorKind::as_str`]).
fn reasons() -> BTreeSet<&'static str> {
    use ErrorKind as K;
    [
        K::MissingToken,
        K::InvalidRequest,
        K::TokenTooLarge,
        K::Malformed,
        K::DuplicateMember,
        K::UnsupportedAlgorithm,
        K::AlgorithmMismatch,
        K::UnknownKey,
        K::UnsupportedCritical,
        K::InvalidSignature,
        K::InvalidType,
        K::MissingClaim,
        K::InvalidClaimType,
        K::Expired,
        K::NotYetValid,
        K::IssuedInFuture,
        K::LifetimeTooLong,
        K::InvalidIssuer,
        K::InvalidAudience,
        K::InvalidClaims,
        K::SenderConstrained,
        K::BindingMismatch,
        K::DpopRequired,
        K::InvalidDpopProof,
        K::UseDpopNonce,
        K::InsufficientScope,
        K::InsufficientUserAuthentication,
        K::Forbidden,
        K::Revoked,
        K::InactiveToken,
        K::KeysUnavailable,
        K::RevocationUnavailable,
        K::ProofReplayUnavailable,
        K::IntrospectionUnavailable,
        K::RateLimited,
        K::QuotaUnavailable,
    ]
    .into_iter()
    .map(ErrorKind::as_str)
    .collect()
}

/// The documented metrics one PromQL expression reads, or why it reads something else: a
/// series the crate does not export, a label that series does not have, a `reason` that
/// does not exist.
fn metrics_read(table: &[Documented], expr: &str) -> Result<BTreeSet<String>, String> {
    let reasons = reasons();
    let used = selectors(expr);
    if used.is_empty() {
        return Err("reads no metric".to_owned());
    }
    let mut read = BTreeSet::new();
    for selector in used {
        let name = &selector.name;
        let Some((row, quantiles)) = series_of(table, name) else {
            return Err(format!(
                "{name} is not exported (histograms are summaries: no _bucket)"
            ));
        };
        read.insert(row.name.clone());
        for (label, value) in &selector.labels {
            if !(row.labels.contains(label)
                || TARGET_LABELS.contains(&label.as_str())
                || (quantiles && label == "quantile"))
            {
                return Err(format!("{name} has no label {label}"));
            }
            if label == "reason"
                && let Some(unknown) = value.split('|').find(|r| !reasons.contains(r))
            {
                return Err(format!("no reason {unknown}"));
            }
        }
    }
    Ok(read)
}

/// What the dashboard check refuses: unexported series (a histogram's `_bucket`, a
/// counter's `_count`, a name the crate never had), labels a series lacks, unknown reasons.
#[test]
fn the_dashboard_check_refuses_dead_series_foreign_labels_and_unknown_reasons() {
    let table = documented();
    let ok = |expr: &str| metrics_read(&table, expr).map(|m| m.into_iter().collect::<Vec<_>>());
    assert_eq!(
        ok(
            r#"rate(bearer_guard_verify_seconds_sum[5m]) / rate(bearer_guard_verify_seconds_count[5m])"#
        ),
        Ok(vec!["bearer_guard_verify_seconds".to_owned()])
    );
    assert_eq!(
        ok(r#"max by (quantile) (bearer_guard_verify_seconds{quantile="0.99", job=~"$job"})"#),
        Ok(vec!["bearer_guard_verify_seconds".to_owned()])
    );
    assert_eq!(
        ok(r#"sum(rate(bearer_guard_requests_total{reason=~"rate_limited|expired"}[1m]))"#),
        Ok(vec!["bearer_guard_requests_total".to_owned()])
    );
    for dead in [
        "histogram_quantile(0.99, rate(bearer_guard_verify_seconds_bucket[5m]))",
        "rate(bearer_guard_requests_count[5m])",
        "bearer_guard_token_cache_hits_total",
        "time()",
        r#"bearer_guard_requests_total{client_id="a"}"#,
        r#"bearer_guard_token_cache_total{quantile="0.5"}"#,
        r#"bearer_guard_requests_total{reason="quota_exceeded"}"#,
    ] {
        assert!(ok(dead).is_err(), "{dead} passed");
    }
}

/// Every query of every panel reads series the crate exports (no dead panel), matches only
/// on labels those series have (and `reason` only on reasons that exist), and every
/// documented metric is charted somewhere, unless listed in [`NOT_CHARTED`].
#[test]
fn every_dashboard_query_reads_exported_series_and_every_metric_is_charted() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let table = documented();
    let mut charted = BTreeSet::new();
    for panel in panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a panel title");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            match metrics_read(&table, expr) {
                Ok(read) => charted.extend(read),
                Err(why) => panic!("panel {title:?}: {why}: {expr}"),
            }
        }
    }
    for row in &table {
        assert!(
            charted.contains(&row.name) || NOT_CHARTED.contains(&row.name.as_str()),
            "{} is charted by no panel",
            row.name
        );
    }
}

/// The dashboard is a Grafana dashboard model that imports anywhere: schema version 39,
/// a `datasource` variable for the Prometheus data source, which every panel and query
/// uses; unique panel ids; every panel placed on the grid.
#[test]
fn the_dashboard_is_an_importable_grafana_model_over_a_prometheus_variable() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["id"].is_null(), "an importable model has no id");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric panel id")),
            "{title}: id taken"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        if panel["type"] == "row" {
            continue;
        }
        let uses_variable = |v: &Value| v["uid"] == "${datasource}" && v["type"] == "prometheus";
        assert!(uses_variable(&panel["datasource"]), "{title}: datasource");
        for target in panel["targets"].as_array().expect("targets") {
            assert!(uses_variable(&target["datasource"]), "{title}: datasource");
            assert!(target["refId"].is_string(), "{title}: refId");
        }
    }
}
