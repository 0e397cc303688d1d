//! Security events and log secrecy: a realistic run (the companion issuer handing out real
//! tokens over HTTP, a protected axum service with remote keys and revocation) is logged at
//! TRACE into a buffer, which must then hold the stable `reason`s and client ids of what
//! happened, and none of the tokens, secrets, Authorization headers or key material used.
//!
//! The subscriber is the process-wide default (the key refresher logs from spawned tasks), so
//! the tests of this binary share one buffer: each uses material no other test logs.
#![cfg(all(feature = "axum", feature = "remote"))]

#[path = "common/logs.rs"]
mod logs;
use bearer_guard::testkit as mint;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing::oauth;
use logs::LogBuffer;
use mint::claims_of;
use oauth::{basic_header, cheap_hash, urlencode};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::handler::Handler as _;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bearer_guard::revocation::{MemoryRevocations, Revocations as _};
use bearer_guard::{AccessClaims, Claims, RemoteKeys, RequireScope, Validator};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::{Format, Issuer, SigningKey};
use serde_json::{Value, json};

const API: &str = mint::AUDIENCE;
const SVC_SECRET: &str = "svc-secret-Xq7-never-logged-0001";
const READER_SECRET: &str = "reader-secret-Kp2-never-logged-0002";
const WRONG_SECRET: &str = "wrong-secret-Zr9-never-logged-0003";
const ISSUER_KID: &str = "issuer-ed-1";

// ---------------------------------------------------------------------------------------------
// The captured log

/// The buffer behind the global subscriber, installed on first use.
fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let subscriber = logs.subscriber();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
}

/// A string that must never be logged, and what it is (the label is printed, not the value).
struct Needle {
    label: String,
    value: String,
}

#[derive(Default)]
struct Forbidden(Vec<Needle>);

impl Forbidden {
    fn add(&mut self, label: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        // Very short fragments (a PEM's last line ...) could occur by chance.
        if value.len() >= 8 {
            self.0.push(Needle {
                label: label.into(),
                value,
            });
        }
    }

    /// A token, each of its three parts, its first 24 characters, its Authorization header.
    fn token(&mut self, label: &str, token: &str) {
        self.add(format!("{label}: token"), token);
        self.add(format!("{label}: Authorization header"), bearer(token));
        self.add(format!("{label}: first 24 chars"), &token[..24]);
        for (part, name) in token.split('.').zip(["header", "payload", "signature"]) {
            self.add(format!("{label}: {name} part"), part);
        }
    }

    /// A client secret, raw, form-encoded, and inside Basic credentials.
    fn secret(&mut self, label: &str, client_id: &str, secret: &str) {
        self.add(format!("{label}: secret"), secret);
        self.add(format!("{label}: form-encoded secret"), urlencode(secret));
        self.add(
            format!("{label}: Basic credentials"),
            STANDARD.encode(format!("{}:{}", urlencode(client_id), urlencode(secret))),
        );
        self.add(
            format!("{label}: Basic header"),
            basic_header(client_id, secret),
        );
    }

    /// Every base64 line of a PEM file.
    fn pem(&mut self, label: &str, pem: &str) {
        for (i, line) in pem.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with("-----") {
                self.add(format!("{label}: line {}", i + 1), line);
            }
        }
    }

    /// The labels of the needles found in `logs`.
    fn found_in(&self, logs: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|n| logs.contains(&n.value))
            .map(|n| n.label.as_str())
            .collect()
    }
}

/// Whether an event has `name` = `value`: `name="value"` for a `&str` field in the fmt
/// output, `name=value` for a `Display` one.
fn has_field(line: &str, name: &str, value: &str) -> bool {
    line.contains(&format!("{name}=\"{value}\""))
        || line.contains(&format!("{name}={value} "))
        || line.ends_with(&format!("{name}={value}"))
}

fn lines_with<'a>(logs: &'a str, name: &str, value: &str) -> Vec<&'a str> {
    logs.lines().filter(|l| has_field(l, name, value)).collect()
}

// ---------------------------------------------------------------------------------------------
// The issuer and the protected service

fn clients_toml() -> String {
    format!(
        r#"
[[clients]]
client_id = "svc"
secret_hash = "{svc}"
scopes = ["read", "write"]
resources = ["{API}"]

[[clients]]
client_id = "reader"
secret_hash = "{reader}"
scopes = ["read"]
resources = ["{API}"]
"#,
        svc = cheap_hash(SVC_SECRET),
        reader = cheap_hash(READER_SECRET),
    )
}

type Http = HttpClient<HttpConnector, Full<Bytes>>;

struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn access_token(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.json());
        self.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

async fn send(http: &Http, req: Request<Full<Bytes>>) -> Reply {
    let res = http.request(req).await.expect("request");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply { status, body }
}

/// `POST /oauth/token`, form-encoded, with an optional Authorization header.
async fn token_request(http: &Http, base: &str, form: &str, auth: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{}", issuer::TOKEN_PATH))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    send(
        http,
        req.body(Full::from(form.to_owned())).expect("request"),
    )
    .await
}

/// `client_secret_basic`.
async fn token_basic(http: &Http, base: &str, id: &str, secret: &str, scope: &str) -> Reply {
    let form = format!("grant_type=client_credentials&scope={}", urlencode(scope));
    token_request(http, base, &form, Some(&basic_header(id, secret))).await
}

/// `client_secret_post`.
async fn token_post(http: &Http, base: &str, id: &str, secret: &str, scope: &str) -> Reply {
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        urlencode(id),
        urlencode(secret),
        urlencode(scope)
    );
    token_request(http, base, &form, None).await
}

async fn call(http: &Http, addr: SocketAddr, path: &str, token: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{addr}{path}"))
        .header(header::AUTHORIZATION, bearer(token))
        .body(Full::default())
        .expect("request");
    let reply = send(http, req).await;
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

async fn client_id(claims: Claims<AccessClaims>) -> String {
    claims.client_id().unwrap_or_default().to_owned()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn now() -> i64 {
    mint::now()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_carry_reasons_and_never_secrets() {
    let logs = logs();

    // The issuer, signing with a key whose private PEM this test knows.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let clients = issuer::parse_clients(&clients_toml(), Format::Toml).expect("clients");
    let key = SigningKey::from_pem(mint::ED_PRIVATE, Some(ISSUER_KID.into())).expect("key");
    let issuer = Issuer::new(base.clone(), clients, key).expect("issuer");
    let issuer_app = issuer::app(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, issuer_app).await.expect("serve") });
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();

    // Real tokens, by both client authentication methods; failed attempts with wrong secrets.
    let svc = token_basic(&http, &base, "svc", SVC_SECRET, "read write")
        .await
        .access_token();
    let reader = token_post(&http, &base, "reader", READER_SECRET, "read")
        .await
        .access_token();
    let to_revoke = token_post(&http, &base, "svc", SVC_SECRET, "read")
        .await
        .access_token();
    let refused = token_basic(&http, &base, "svc", WRONG_SECRET, "read").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"], "invalid_client");
    let refused = token_post(&http, &base, "reader", WRONG_SECRET, "read").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // Bad tokens: expired (signed by the issuer's own key), tampered payload, tampered
    // signature, and one naming a key the issuer does not publish.
    let expired = issuer
        .signing_key()
        .sign(&json!({
            "iss": base, "sub": "svc", "client_id": "svc", "aud": API,
            "iat": now() - 7200, "exp": now() - 3600, "jti": "expired-jti-1",
            "scope": "read write",
        }))
        .expect("sign");
    let (head, rest) = svc.split_once('.').expect("jws");
    let (payload, signature) = rest.split_once('.').expect("jws");
    let mut forged = claims_of(&svc);
    forged["scope"] = json!("read write admin");
    let tampered = format!("{head}.{}.{signature}", B64.encode(forged.to_string()));
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let bad_signature = format!("{head}.{payload}.{flipped}{}", &signature[1..]);
    let unknown_kid = mint::token(
        "ec-1",
        json!({ "iss": base, "aud": API, "client_id": "svc", "sub": "svc" }),
    );

    // The protected service: remote keys from the issuer's JWKS, revocation in memory.
    let revocations = Arc::new(MemoryRevocations::new());
    let validator = Validator::builder()
        .issuer(base.clone())
        .audience(API)
        .keys(RemoteKeys::jwks_url(format!("{base}{}", issuer::JWKS_PATH)))
        .revocation(revocations.clone())
        .build()
        .expect("validator");
    validator.ready().await.expect("keys");
    let api = serve(
        Router::new()
            .route(
                "/read",
                get(client_id.layer(RequireScope::all(&validator, ["read"]).expect("scopes"))),
            )
            .route(
                "/write",
                get(client_id.layer(RequireScope::all(&validator, ["write"]).expect("scopes"))),
            ),
    )
    .await;

    let revoked_claims = claims_of(&to_revoke);
    revocations
        .revoke(
            &base,
            revoked_claims["jti"].as_str().expect("jti"),
            revoked_claims["exp"].as_i64().expect("exp"),
        )
        .await
        .expect("revoke");

    let refreshes_before = lines_with(&logs.text(), "reason", "keys_refreshed").len();
    assert!(refreshes_before >= 1, "the initial fetch is logged");

    let cases: [(&str, &str, &str, StatusCode); 9] = [
        ("svc", "/write", &svc, StatusCode::OK),
        ("reader", "/read", &reader, StatusCode::OK),
        ("expired", "/read", &expired, StatusCode::UNAUTHORIZED),
        ("reader on /write", "/write", &reader, StatusCode::FORBIDDEN),
        ("tampered", "/read", &tampered, StatusCode::UNAUTHORIZED),
        (
            "bad signature",
            "/read",
            &bad_signature,
            StatusCode::UNAUTHORIZED,
        ),
        ("revoked", "/read", &to_revoke, StatusCode::UNAUTHORIZED),
        (
            "revoked again",
            "/read",
            &to_revoke,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown kid",
            "/read",
            &unknown_kid,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, path, token, status) in cases {
        let (got, body) = call(&http, api, path, token).await;
        assert_eq!(got, status, "{name}: {body}");
    }
    assert_eq!(call(&http, api, "/write", &svc).await.1, "svc");

    // Let events of spawned tasks land.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logs = logs.text();

    // The events are there, with stable reasons ...
    for reason in [
        "expired",
        "insufficient_scope",
        "invalid_signature",
        "revoked",
        "keys_refreshed",
        "unknown_key",
        "wrong_secret",
    ] {
        assert!(
            !lines_with(&logs, "reason", reason).is_empty(),
            "no event with reason {reason}:\n{logs}"
        );
    }
    assert!(
        lines_with(&logs, "reason", "invalid_signature").len() >= 2,
        "one event per tampered token:\n{logs}"
    );
    assert!(
        lines_with(&logs, "reason", "keys_refreshed").len() > refreshes_before,
        "the unknown kid triggered no key refresh:\n{logs}"
    );
    // ... and the client when the token was valid.
    assert!(
        lines_with(&logs, "reason", "insufficient_scope")
            .iter()
            .any(|l| has_field(l, "client_id", "reader")),
        "insufficient_scope event without client_id=reader:\n{logs}"
    );
    assert!(
        lines_with(&logs, "reason", "revoked")
            .iter()
            .any(|l| has_field(l, "client_id", "svc")),
        "revoked event without client_id=svc:\n{logs}"
    );

    // ... and none of the secrets.
    let mut forbidden = Forbidden::default();
    for (label, token) in [
        ("svc token", &svc),
        ("reader token", &reader),
        ("revoked token", &to_revoke),
        ("expired token", &expired),
        ("tampered token", &tampered),
        ("bad-signature token", &bad_signature),
        ("unknown-kid token", &unknown_kid),
    ] {
        forbidden.token(label, token);
    }
    forbidden.secret("svc", "svc", SVC_SECRET);
    forbidden.secret("reader", "reader", READER_SECRET);
    forbidden.secret("wrong svc", "svc", WRONG_SECRET);
    forbidden.secret("wrong reader", "reader", WRONG_SECRET);
    let keys_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let mut pems = 0;
    for entry in std::fs::read_dir(&keys_dir).expect("tests/keys") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "pem") {
            let text = std::fs::read_to_string(&path).expect("pem");
            forbidden.pem(&path.display().to_string(), &text);
            pems += 1;
        }
    }
    assert!(pems >= 5, "test keys not found in {}", keys_dir.display());
    // The issuer's private key: its PEM (covered above) and the raw Ed25519 seed.
    let seed = mint::pem_body(mint::ED_PRIVATE);
    let seed = &seed[seed.len() - 32..];
    forbidden.add("issuer seed, base64url", B64.encode(seed));
    forbidden.add("issuer seed, base64", STANDARD.encode(seed));
    forbidden.add(
        "issuer seed, hex",
        seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    );

    let leaked = forbidden.found_in(&logs);
    assert!(leaked.is_empty(), "the log holds {leaked:?}:\n{logs}");
}

/// The detector is not blind: a token, a part of one and a secret logged at TRACE through
/// the same global subscriber, from another thread and from a spawned task, are found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detector_finds_what_was_logged() {
    let logs = logs();
    // RS256: a header unlike any token of the other test (their first 24 chars differ).
    let token = mint::token("rsa-1", json!({ "jti": "self-check-jti" }));
    let secret = "self-check-secret-4f1c9a";
    let signature = token.rsplit('.').next().expect("signature").to_owned();

    let logged = token.clone();
    std::thread::spawn(move || tracing::trace!(token = %logged, "oops"))
        .join()
        .expect("thread");
    tokio::spawn(async move { tracing::trace!(sig = %signature, "oops: {secret}") })
        .await
        .expect("task");

    let mut forbidden = Forbidden::default();
    forbidden.token("self-check token", &token);
    forbidden.secret("self-check", "client", secret);
    let found = forbidden.found_in(&logs.text());
    for label in [
        "self-check token: token",
        "self-check token: first 24 chars",
        "self-check token: signature part",
        "self-check: secret",
    ] {
        assert!(found.contains(&label), "missed {label}: found {found:?}");
    }
    // Not a Bearer header: logged bare, the header form is absent.
    assert!(!found.contains(&"self-check token: Authorization header"));
    assert!(has_field(
        "INFO x: request refused reason=\"expired\"",
        "reason",
        "expired"
    ));
    assert!(has_field("a reason=expired b", "reason", "expired"));
    assert!(!has_field("a reason=expired_x b", "reason", "expired"));
}
