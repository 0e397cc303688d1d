//! `examples/resource_server.rs` as a real process, against two companion issuers started
//! here: both issuers' tokens pass, every 401 points at the RFC 9728 document, the document
//! lists the issuers, and `GET /metrics` counts a refusal under its reason; with the
//! `INTROSPECTION_*` settings, opaque tokens are introspected beside local JWTs. Its OpenAPI
//! document is a well-formed OpenAPI 3.1 document whose every guarded operation names the
//! scopes the route enforces (a token of exactly those scopes passes, one missing any is
//! refused). Behind a private CA (`ISSUER_CA_FILE`), it trusts the issuer only with that CA.
//! With `REQUIRED_ACR` and `MAX_AUTH_AGE` (RFC 9470), a token short of the `acr` or whose
//! `auth_time` is too old gets 401 `insufficient_user_authentication` naming `acr_values` /
//! `max_age`, one that meets both 200; against the companion issuer, the step-up sign-in the
//! challenge asks for yields a token that passes. A token exchanged at the companion issuer
//! (RFC 8693) passes with its actor chain in the answer (`actors`, the current actor first).

#[path = "common/example.rs"]
mod example;
#[path = "common/https_issuer.rs"]
mod https_issuer;
use bearer_guard::testkit as mint;
use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use issuer::TokenFormat;
use issuer_server::oauth::urlencode;
use issuer_server::{API, RS_SECRET, SVC_SECRET, Server};
use serde_json::{Value, json};

/// The example's process; killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
    /// Its stderr (the logs), kept while it runs.
    _log: TempFile,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file under the target's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "resource-server-example-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write");
        TempFile(path)
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts the example for `issuers` (comma-separated), with `API` as its audience and
/// `env` besides (which may change it).
fn start(issuers: &str, env: &[(&str, &str)]) -> Example {
    try_start(issuers, env)
        .unwrap_or_else(|(status, log)| panic!("the example did not start ({status}):\n{log}"))
}

/// As [`start`]; a process that exits before it listens gives its exit status and logs.
fn try_start(issuers: &str, env: &[(&str, &str)]) -> Result<Example, (ExitStatus, String)> {
    let log = TempFile::new("stderr", b"");
    let mut child = Command::new(example::build_example("resource_server"))
        .env("ISSUER", issuers)
        .env("AUDIENCE", API)
        .env("BIND", "127.0.0.1:0")
        .env("REQUIRED_SCOPE", "read")
        .env_remove("REDIS_URL")
        .env_remove("RATE_LIMIT")
        .env_remove("RUST_LOG")
        .env_remove("PUBLIC_URL")
        .env_remove("ISSUER_CA_FILE")
        .env_remove("JWKS_FILE")
        .env_remove("JWKS_URL")
        .env_remove("REQUIRED_ACR")
        .env_remove("MAX_AUTH_AGE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log.0).expect("log file"))
        .spawn()
        .expect("start the example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        assert!(line.is_empty(), "unexpected first line: {line:?}");
        // Stdout closed without the line: the process is exiting.
        let status = child.wait().expect("wait");
        return Err((status, log.text()));
    };
    let addr = addr.parse().expect("address");
    Ok(Example {
        child,
        addr,
        _log: log,
    })
}

/// `GET path`: status, the `WWW-Authenticate` values, the body.
async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    send(addr, Method::GET, path, token).await
}

/// `method path`, with `token` as `Bearer` if any: status, the `WWW-Authenticate` values,
/// the body.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = http
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let challenges = res
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        challenges,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_metadata_and_metrics() {
    let (a, b) = (Server::start().await, Server::start().await);
    let example = tokio::task::spawn_blocking({
        let issuers = format!("{},{}", a.base, b.base);
        move || start(&issuers, &[])
    })
    .await
    .expect("started");
    let addr = example.addr;

    // No token: 401, pointing at the metadata (RFC 9728 §5.1); DPoP offered beside Bearer.
    let (status, challenges, _) = get(addr, "/protected-resource", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let metadata_url = format!("{API}/.well-known/oauth-protected-resource");
    assert_eq!(
        challenges[0],
        format!(r#"Bearer resource_metadata="{metadata_url}", scope="read""#)
    );
    assert!(challenges[1].starts_with(&format!(
        r#"DPoP resource_metadata="{metadata_url}", algs=""#
    )));

    // The document: this API, both issuers, the route's scope, DPoP algorithms.
    let (status, _, body) = get(addr, "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["resource"], API);
    assert_eq!(doc["authorization_servers"], json!([a.base, b.base]));
    assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert!(
        doc["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    // Tokens of both issuers pass.
    for server in [&a, &b] {
        let token = server.token("svc", SVC_SECRET).await;
        let (status, _, body) = get(addr, "/protected-resource", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The refusal above is counted under its reason, the two admissions too.
    let (status, _, metrics) = get(addr, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics
            .contains(r#"bearer_guard_requests_total{outcome="refused",reason="missing_token"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"bearer_guard_requests_total{outcome="admitted"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("bearer_guard_key_fetches_total"),
        "{metrics}"
    );
    for secret in [SVC_SECRET, "eyJ"] {
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_in_mixed_mode() {
    let opaque = Server::start_with(|config| config.token_format = TokenFormat::Opaque).await;
    let jwt = Server::start().await;
    let example = tokio::task::spawn_blocking({
        let issuers = format!("{},{}", opaque.base, jwt.base);
        move || {
            start(
                &issuers,
                &[
                    ("INTROSPECTION_CLIENT_ID", "rs"),
                    ("INTROSPECTION_CLIENT_SECRET", RS_SECRET),
                    ("INTROSPECTION_CACHE_TTL", "30"),
                ],
            )
        }
    })
    .await
    .expect("started");
    let addr = example.addr;

    // An opaque token of the first issuer (found by discovery) passes, twice, with one
    // introspection; a JWT of the second is verified here; a made-up token is inactive.
    let token = opaque.token("svc", SVC_SECRET).await;
    assert_eq!(token.split('.').count(), 1, "opaque");
    for _ in 0..2 {
        let (status, _, body) = get(addr, "/protected-resource", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["client"], "svc");
    }
    let local = jwt.token("svc", SVC_SECRET).await;
    let (status, _, _) = get(addr, "/protected-resource", Some(&local)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, challenges, _) = get(
        addr,
        "/protected-resource",
        Some("not-a-token-anyone-issued"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenges[0].contains(r#"error="invalid_token""#),
        "{challenges:?}"
    );

    let (_, _, metrics) = get(addr, "/metrics", None).await;
    for line in [
        r#"bearer_guard_introspection_requests_total{result="active"} 1"#,
        r#"bearer_guard_introspection_requests_total{result="inactive"} 1"#,
        r#"bearer_guard_requests_total{outcome="refused",reason="inactive"} 1"#,
        r#"bearer_guard_requests_total{outcome="admitted"} 3"#,
    ] {
        assert!(metrics.contains(line), "no {line}:\n{metrics}");
    }
    assert!(!metrics.contains(&token));
}

// ---------------------------------------------------------------------------------------------
// OpenAPI

/// The scopes the test client `svc` may have.
const SVC_SCOPES: [&str; 2] = ["read", "write"];

/// The guarded operations of the example, as `(method, path)`: the document must list each.
const GUARDED: [(&str, &str); 2] = [
    ("get", "/protected-resource"),
    ("post", "/protected-resource"),
];

/// Checks `doc` against the structure of an OpenAPI 3.1 document (the fixed fields of the
/// specification's objects that the example uses, their types, required members, and that
/// every security requirement names a declared scheme). Returns the operations, as
/// `(method, path, operation)`.
fn check_openapi_31(doc: &Value) -> Vec<(String, String, Value)> {
    const ROOT: [&str; 9] = [
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
    ];
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    const SCHEME_TYPES: [&str; 5] = ["apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"];
    let root = doc.as_object().expect("an object");
    for key in root.keys() {
        assert!(
            ROOT.contains(&key.as_str()) || key.starts_with("x-"),
            "unknown root field {key}"
        );
    }
    let version = doc["openapi"].as_str().expect("openapi: a string");
    let patch = version.strip_prefix("3.1.").expect("openapi: 3.1.x");
    assert!(
        !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()),
        "{version}"
    );
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
    if let Some(servers) = root.get("servers") {
        for server in servers.as_array().expect("servers: an array") {
            assert!(server["url"].is_string(), "servers[].url");
        }
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    for (name, scheme) in schemes {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "component name {name}"
        );
        let kind = scheme["type"].as_str().expect("a scheme's type");
        assert!(SCHEME_TYPES.contains(&kind), "{kind}");
        if kind == "openIdConnect" {
            let url = scheme["openIdConnectUrl"]
                .as_str()
                .expect("openIdConnectUrl");
            assert!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{url}"
            );
        }
    }
    let mut operations = Vec::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths: an object") {
        assert!(path.starts_with('/'), "{path}");
        for (method, operation) in item.as_object().expect("a path item") {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            if let Some(id) = operation.get("operationId") {
                let id = id.as_str().expect("operationId: a string");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no response");
            for (code, response) in responses {
                assert!(
                    code == "default"
                        || (code.len() == 3
                            && (code.bytes().all(|b| b.is_ascii_digit()) || code.ends_with("XX"))),
                    "{code}"
                );
                assert!(response["description"].is_string(), "{code}: description");
            }
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for (scheme, scopes) in requirement.as_object().expect("a requirement") {
                    assert!(schemes.contains_key(scheme), "undeclared scheme {scheme}");
                    assert!(
                        scopes
                            .as_array()
                            .expect("scopes: an array")
                            .iter()
                            .all(Value::is_string)
                    );
                }
            }
            operations.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    operations
}

/// A client-credentials token of `svc` granting exactly `scopes`.
async fn token_with(issuer: &Server, scopes: &[&str]) -> String {
    let scope = scopes.join(" ");
    let token = issuer
        .basic(
            "svc",
            SVC_SECRET,
            &format!("grant_type=client_credentials&scope={}", urlencode(&scope)),
        )
        .await
        .assert_token();
    assert_eq!(issuer_server::claims(&token)["scope"], scope.as_str());
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_names_the_scopes_each_route_enforces() {
    let issuer = Server::start().await;
    let example = tokio::task::spawn_blocking({
        let base = issuer.base.clone();
        move || start(&base, &[("PUBLIC_URL", API)])
    })
    .await
    .expect("started");
    let addr = example.addr;

    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = http
        .get(format!("http://{addr}/openapi.json").parse().expect("uri"))
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    let operations = check_openapi_31(&doc);
    assert_eq!(doc["servers"], json!([{ "url": API }]));

    // One security scheme, for the one issuer: its discovery document, which is served.
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    assert_eq!(schemes.keys().collect::<Vec<_>>(), ["issuer-1"]);
    let scheme = &schemes["issuer-1"];
    assert_eq!(scheme["type"], "openIdConnect");
    let discovery = format!("{}/.well-known/openid-configuration", issuer.base);
    assert_eq!(scheme["openIdConnectUrl"], discovery.as_str());
    let metadata = issuer.get("/.well-known/openid-configuration").await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.json()["issuer"], issuer.base.as_str());

    // Every guarded route is documented, with a requirement.
    let documented: BTreeSet<(String, String)> = operations
        .iter()
        .map(|(method, path, _)| (method.clone(), path.clone()))
        .collect();
    let guarded: BTreeSet<(String, String)> = GUARDED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, guarded);

    // What each operation documents is what its route enforces: a token of exactly the
    // documented scopes passes; one with every scope of the client but one of them is
    // refused with 403 naming the route's scopes; no token, 401.
    for (method, path, operation) in &operations {
        let requirements = operation["security"].as_array().expect("security");
        assert_eq!(requirements.len(), 1, "{method} {path}");
        let scopes: Vec<&str> = requirements[0]["issuer-1"]
            .as_array()
            .expect("scopes")
            .iter()
            .map(|s| s.as_str().expect("scope"))
            .collect();
        assert!(!scopes.is_empty(), "{method} {path}: no scope");
        let method: Method = method.to_uppercase().parse().expect("method");

        let exact = token_with(&issuer, &scopes).await;
        let (status, _, body) = send(addr, method.clone(), path, Some(&exact)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{method} {path} with {scopes:?}: {body}"
        );

        for missing in &scopes {
            let others: Vec<&str> = SVC_SCOPES.into_iter().filter(|s| s != missing).collect();
            let token = token_with(&issuer, &others).await;
            let (status, challenges, _) = send(addr, method.clone(), path, Some(&token)).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} without {missing}, with {others:?}"
            );
            assert!(
                challenges[0].contains(r#"error="insufficient_scope""#)
                    && challenges[0].contains(&format!(r#"scope="{}""#, scopes.join(" "))),
                "{challenges:?}"
            );
        }

        let (status, _, _) = send(addr, method.clone(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// A private CA

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_behind_a_private_ca_is_trusted_with_issuer_ca_file_only() {
    let ca = https_issuer::Ca::new("bearer-guard example test CA");
    let (cert, key) = ca.server(&["localhost"]);
    let issuer = https_issuer::serve(cert, key).await;
    let token = mint::token("ec-1", json!({ "iss": issuer }));
    let ca_file = TempFile::new("ca.pem", ca.pem().as_bytes());
    let other_ca = https_issuer::Ca::new("another CA");
    let other_ca_file = TempFile::new("other-ca.pem", other_ca.pem().as_bytes());

    let run = |ca: Option<PathBuf>| {
        let issuer = issuer.clone();
        tokio::task::spawn_blocking(move || {
            let ca = ca.map(|p| p.to_str().expect("utf-8").to_owned());
            let mut env = vec![("AUDIENCE", mint::AUDIENCE)];
            if let Some(ca) = &ca {
                env.push(("ISSUER_CA_FILE", ca));
            }
            try_start(&issuer, &env)
        })
    };

    // With the CA: discovery and keys over https; the token passes.
    let example = run(Some(ca_file.0.clone()))
        .await
        .expect("joined")
        .unwrap_or_else(|(status, log)| panic!("did not start ({status}):\n{log}"));
    let (status, _, body) = get(example.addr, "/protected-resource", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(example);

    // Without it (the system's roots), or with another CA: the handshake is refused, no key
    // can be fetched, and the example refuses to start (a single issuer: a service that
    // starts is one that can authenticate).
    for ca in [None, Some(other_ca_file.0.clone())] {
        let refused = run(ca.clone()).await.expect("joined");
        let Err((status, log)) = refused else {
            panic!("started without trusting the issuer's CA ({ca:?})");
        };
        assert!(!status.success(), "{status}");
        assert!(log.contains(&issuer), "{log}");
        assert!(log.contains("TLS") || log.contains("tls"), "{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication strength (RFC 9470): REQUIRED_ACR, MAX_AUTH_AGE

const MFA: &str = issuer_server::ACR_MFA;

/// The `WWW-Authenticate` value of an `insufficient_user_authentication` refusal, checked.
fn step_up_challenge(status: StatusCode, challenges: &[String], body: &str) -> String {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let challenge = challenges
        .iter()
        .find(|c| c.starts_with("Bearer "))
        .unwrap_or_else(|| panic!("no Bearer challenge: {challenges:?}"));
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#),
        "{challenge}"
    );
    challenge.clone()
}

/// The example with the test keys' issuer (a `JWKS_FILE`: tokens minted here, with any
/// `acr` and `auth_time`) and `env` besides.
async fn start_minted(jwks: &TempFile, env: &[(&'static str, &'static str)]) -> Example {
    let jwks = jwks.0.to_str().expect("utf-8").to_owned();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut env = env;
        env.push(("JWKS_FILE", &jwks));
        start(mint::ISSUER, &env)
    })
    .await
    .expect("started")
}

/// A token of the test issuer for this API (`read`), with `claims` merged in.
fn minted(claims: Value) -> String {
    mint::token("ec-1", claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_acr_and_max_auth_age_answer_401_insufficient_user_authentication() {
    let jwks = TempFile::new("jwks.json", mint::jwks(&["ec-1"]).as_bytes());
    let now = mint::now();
    let path = "/protected-resource";

    // REQUIRED_ACR: a token without one of its values is refused, naming them; one with
    // either passes (however old its sign-in: no age is asked).
    let example = start_minted(&jwks, &[("REQUIRED_ACR", "urn:bearer-guard:acr:mfa, phr")]).await;
    for claims in [
        json!({}),
        json!({"acr": issuer_server::ACR_PASSWORD}),
        json!({"acr": "urn:bearer-guard:acr:MFA"}),
    ] {
        let (status, challenges, body) =
            get(example.addr, path, Some(&minted(claims.clone()))).await;
        let challenge = step_up_challenge(status, &challenges, &body);
        assert!(
            challenge.ends_with(&format!(
                r#"error="insufficient_user_authentication", acr_values="{MFA} phr""#
            )),
            "{claims}: {challenge}"
        );
        assert!(!challenge.contains("max_age"), "{challenge}");
    }
    for acr in [MFA, "phr"] {
        let token = minted(json!({"acr": acr, "auth_time": now - 86_400}));
        let (status, _, body) = get(example.addr, path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{acr}: {body}");
    }
    // Both methods of the route, and the refusals counted under their reason.
    let (status, challenges, body) = send(
        example.addr,
        Method::POST,
        path,
        Some(&minted(json!({"scope": "read write"}))),
    )
    .await;
    step_up_challenge(status, &challenges, &body);
    let (_, _, metrics) = get(example.addr, "/metrics", None).await;
    let counted = r#"bearer_guard_requests_total{outcome="refused",reason="insufficient_user_authentication"} 4"#;
    assert!(metrics.contains(counted), "{metrics}");
    drop(example);

    // MAX_AUTH_AGE: an `auth_time` older than the age, or none, is refused, naming it; a
    // recent one passes, whatever the `acr`.
    let example = start_minted(&jwks, &[("MAX_AUTH_AGE", "300")]).await;
    for claims in [
        json!({"auth_time": now - 3600}),
        json!({"auth_time": now - 400, "acr": MFA}),
        json!({"acr": MFA}),
    ] {
        let (status, challenges, body) =
            get(example.addr, path, Some(&minted(claims.clone()))).await;
        let challenge = step_up_challenge(status, &challenges, &body);
        assert!(
            challenge.ends_with(r#"error="insufficient_user_authentication", max_age="300""#),
            "{claims}: {challenge}"
        );
    }
    let (status, _, body) = get(
        example.addr,
        path,
        Some(&minted(json!({"auth_time": now - 10}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(example);

    // Both: the challenge names both; a token that meets both passes.
    let example = start_minted(
        &jwks,
        &[
            ("REQUIRED_ACR", "urn:bearer-guard:acr:mfa"),
            ("MAX_AUTH_AGE", "300"),
        ],
    )
    .await;
    for claims in [
        json!({"acr": MFA, "auth_time": now - 3600}),
        json!({"acr": issuer_server::ACR_PASSWORD, "auth_time": now - 10}),
    ] {
        let (status, challenges, body) =
            get(example.addr, path, Some(&minted(claims.clone()))).await;
        let challenge = step_up_challenge(status, &challenges, &body);
        assert!(
            challenge.ends_with(&format!(
                r#"error="insufficient_user_authentication", acr_values="{MFA}", max_age="300""#
            )),
            "{claims}: {challenge}"
        );
        assert!(
            challenge.starts_with(r#"Bearer resource_metadata=""#),
            "{challenge}"
        );
    }
    let strong = minted(json!({"acr": MFA, "auth_time": now - 10}));
    let (status, _, body) = get(example.addr, path, Some(&strong)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["message"], "Access granted!");
}

/// The step-up loop against the companion issuer: a token of a password sign-in (or of client
/// credentials) is refused with the `acr_values` to ask for; the client sends its user to the
/// issuer with them, she enters her one-time code after her password, and the new token
/// passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_for_its_acr_is_replaced_by_one_of_a_step_up_sign_in() {
    let issuer = Server::start().await;
    let example = tokio::task::spawn_blocking({
        let base = issuer.base.clone();
        move || start(&base, &[("REQUIRED_ACR", MFA), ("MAX_AUTH_AGE", "600")])
    })
    .await
    .expect("started");
    let path = "/protected-resource";

    let service = issuer.token("svc", SVC_SECRET).await;
    let (status, challenges, body) = get(example.addr, path, Some(&service)).await;
    step_up_challenge(status, &challenges, &body);

    let (code, verifier) = issuer.code("").await;
    let (password_only, _) = issuer.redeem(&code, &verifier).await.assert_tokens();
    let (status, challenges, body) = get(example.addr, path, Some(&password_only)).await;
    let challenge = step_up_challenge(status, &challenges, &body);

    // What the challenge asks for goes into the authorization request as it is.
    let acr_values = challenge
        .split_once(r#"acr_values=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(values, _)| values.to_owned())
        .expect("acr_values");
    assert_eq!(acr_values, MFA);
    let verifier = issuer_server::new_verifier();
    let query = format!(
        "{}&acr_values={}&max_age=600",
        issuer_server::authorize_query(
            issuer_server::APP,
            issuer_server::REDIRECT,
            &issuer_server::challenge(&verifier),
            "st"
        ),
        urlencode(&acr_values)
    );
    let callback = issuer.sign_in_with_code(&query).await;
    let code = issuer_server::query_value(&callback, "code").expect("code");
    let (stepped_up, refresh) = issuer.redeem(&code, &verifier).await.assert_tokens();
    let (status, _, body) = get(example.addr, path, Some(&stepped_up)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A token refreshed from it keeps the sign-in's `acr` and `auth_time`: it passes too.
    let (refreshed, _) = issuer.refresh(&refresh).await.assert_tokens();
    let (status, _, body) = get(example.addr, path, Some(&refreshed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `subject` exchanged (RFC 8693) by the client `id`, for a token to its own resources.
async fn exchanged(issuer: &Server, id: &str, secret: &str, subject: &str) -> String {
    issuer
        .basic(
            id,
            secret,
            &format!(
                "grant_type={}&subject_token={}&subject_token_type={}",
                urlencode("urn:ietf:params:oauth:grant-type:token-exchange"),
                urlencode(subject),
                urlencode("urn:ietf:params:oauth:token-type:access_token")
            ),
        )
        .await
        .assert_token()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_passes_with_its_actor_chain_in_the_answer() {
    // `exch` exchanges tokens for API into tokens for OTHER_API, `exch2` the other way round.
    let issuer = Server::start_full(
        issuer_server::exchange_clients_toml(),
        issuer::SigningKey::generate(None).expect("key"),
        |_| {},
    )
    .await;
    let example = tokio::task::spawn_blocking({
        let base = issuer.base.clone();
        move || start(&base, &[])
    })
    .await
    .expect("started");
    let path = "/protected-resource";

    // svc's own token (for API): no actor, no `actors`.
    let direct = issuer.token("svc", SVC_SECRET).await;
    let (status, _, body) = get(example.addr, path, Some(&direct)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["client"], "svc", "{answer}");
    assert!(answer.get("actors").is_none(), "{answer}");

    // Exchanged by exch (for OTHER_API: refused here), then by exch2 (for API again).
    let first = exchanged(&issuer, "exch", issuer_server::EXCH_SECRET, &direct).await;
    let (status, _, body) = get(example.addr, path, Some(&first)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let second = exchanged(&issuer, "exch2", issuer_server::EXCH2_SECRET, &first).await;
    let (status, _, body) = get(example.addr, path, Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    // Still svc's token (`sub`), now held by exch2, which acts for exch, which acted for svc.
    assert_eq!(answer["subject"], "svc", "{answer}");
    assert_eq!(answer["client"], "exch2", "{answer}");
    assert_eq!(
        answer["actors"],
        json!([
            {"client_id": "exch2", "subject": "exch2"},
            {"client_id": "exch", "subject": "exch"},
        ]),
        "{answer}"
    );
}
