//! The whole client-credentials flow on one machine, in one process:
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Starts the example issuer (`examples/support/issuer.rs`) and the protected resource server
//! (`examples/support/resource_server.rs`) on free loopback ports. The resource server's
//! validator fetches the issuer's keys over HTTP from its JWKS URL and answers to its own base
//! URL as audience; `GET /protected-resource` requires the scope `write`. Issuer and validator
//! share one in-memory revocation store (in production, a Redis both point at with
//! `REDIS_URL`): what `POST /oauth/revoke` writes, the validator refuses on the next request.
//! Then, as a plain HTTP client, the demo asks for tokens, revokes one, and calls the resource
//! in nine situations; then, as the public client `demo-app` posting the login form for
//! `alice` itself (no browser), runs the authorization code flow with PKCE, rotates a refresh
//! token and replays the old one. It prints what it expected and what it got, and exits with
//! status 1 if any case differs.
//!
//! The two clients and their secrets are demo-only and exist only in memory: their argon2id
//! hashes are made at start. Neither secrets nor tokens are printed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bearer_guard::revocation::{MemoryRevocations, Revocations};
use bearer_guard::{Guard, RemoteKeys, Validator};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod support {
    pub mod authcode_client;
    pub mod issuer;
    pub mod resource_server;
}

use support::authcode_client::{self, AuthCodeClient};
use support::issuer::{self, Format, Issuer, SigningKey};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// DEMO ONLY: public secrets of the two in-memory clients (as in `examples/clients.toml`).
const DEMO_SECRET: &str = "demo-secret";
const READER_SECRET: &str = "reader-secret";
/// What a caller who does not know the secret sends.
const WRONG_SECRET: &str = "guessed-secret";
/// The scope `GET /protected-resource` requires: `demo-client` may have it, `reader` may not.
const ROUTE_SCOPE: &str = "write";
/// A second resource `demo-client` may ask tokens for; the demo's resource server is not it.
const OTHER_RESOURCE: &str = "https://reports.example";
/// Longest wait for one HTTP exchange.
const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let started = Instant::now();
    match run().await {
        Ok(rows) => {
            let failed = rows.iter().filter(|r| !r.pass()).count();
            println!(
                "\n{} passed, {failed} failed ({:.1} s)",
                rows.len() - failed,
                started.elapsed().as_secs_f64()
            );
            if failed == 0 {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<Vec<Row>, Error> {
    let demo = Demo::start().await?;

    println!("bearer-guard demo: OAuth 2.0 client credentials, end to end\n");
    println!(
        "  issuer           {}  token endpoint {}, revocation {}, keys {}",
        demo.issuer_url,
        issuer::TOKEN_PATH,
        issuer::REVOKE_PATH,
        issuer::JWKS_PATH
    );
    println!(
        "  resource server  {}  GET /protected-resource needs scope {ROUTE_SCOPE:?}",
        demo.api_url
    );
    println!("  clients          demo-client (read write), reader (read); demo-only secrets");
    println!("                   demo-app (public, authorization code + PKCE) for user alice\n");

    let rows = demo.cases().await;
    print_table(&rows);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// The cases

/// One line of the table.
struct Row {
    case: &'static str,
    expected: String,
    got: String,
}

impl Row {
    fn pass(&self) -> bool {
        self.expected == self.got
    }
}

impl Demo {
    async fn cases(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut row = |case, expected: &str, got: String| {
            rows.push(Row {
                case,
                expected: expected.to_owned(),
                got,
            });
        };

        // 1. The normal flow: client_secret_basic, then the token on the protected route.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row(
            "successful access",
            "200 \"Access granted!\" (demo-client)",
            got,
        );

        // 2. A wrong secret gets no token; the resource refuses a request without one.
        let got = match self.token("demo-client", WRONG_SECRET, None, None).await {
            Ok(token) => format!("token 200; API {}", self.call(Some(&token)).await),
            Err(refused) => format!("{refused}; API {}", self.call(None).await),
        };
        row(
            "wrong secret",
            "token 401 invalid_client; API 401 Bearer",
            got,
        );

        // 3. `reader` may only have `read`.
        let got = match self
            .token("reader", READER_SECRET, Some("write"), None)
            .await
        {
            Ok(_) => "token 200".to_owned(),
            Err(refused) => refused,
        };
        row(
            "scope not allowed for client",
            "token 400 invalid_scope",
            got,
        );

        // 4. No Authorization header: a bare challenge (RFC 6750 §3.1).
        row("no token", "401 Bearer", self.call(None).await);

        // 5. A genuine token of this issuer, but for another resource (RFC 8707 `aud`).
        let got = match self
            .token("demo-client", DEMO_SECRET, None, Some(OTHER_RESOURCE))
            .await
        {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row("token for another audience", "401 invalid_token", got);

        // 6. Signed by the issuer's own key, everything right except `exp`: an hour ago.
        let got = match self.expired_token() {
            Ok(token) => self.call(Some(&token)).await,
            Err(e) => format!("cannot mint: {e}"),
        };
        row("expired token", "401 invalid_token", got);

        // 7. `reader`'s token is valid here, but lacks the route's scope.
        let got = match self.token("reader", READER_SECRET, None, None).await {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row(
            "token lacks the route's scope",
            "403 insufficient_scope",
            got,
        );

        // 8. A good token with one character of its payload changed.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => match tamper(&token) {
                Some(token) => self.call(Some(&token)).await,
                None => "not a JWS".to_owned(),
            },
            Err(refused) => refused,
        };
        row("tampered token", "401 invalid_token", got);

        // 9. A good token, used once, then revoked by its own client (RFC 7009): the resource
        //    server sees the shared store and refuses it from then on.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => {
                let before = self.call(Some(&token)).await;
                let revoked = self.revoke("demo-client", DEMO_SECRET, &token).await;
                let after = self.call(Some(&token)).await;
                format!("{}; revoke {revoked}; then {after}", status_only(&before))
            }
            Err(refused) => refused,
        };
        row(
            "revoked token",
            "200; revoke 200; then 401 invalid_token",
            got,
        );

        // 10-12. demo-app signs alice in (authorization code + PKCE), rotates its refresh
        //    token, then presents the old one again: the whole family is revoked.
        let app = AuthCodeClient {
            http: &self.http,
            issuer_url: &self.issuer_url,
        };
        let signed_in = app.sign_in("read write").await;
        let got = match &signed_in {
            Ok(tokens) => self.call(Some(&tokens.access)).await,
            Err(refused) => refused.clone(),
        };
        row(
            "authorization code + PKCE",
            "200 \"Access granted!\" (demo-app for alice)",
            got,
        );
        let rotated = match &signed_in {
            Ok(tokens) => app.refresh(&tokens.refresh).await.map(|new| (tokens, new)),
            Err(refused) => Err(refused.clone()),
        };
        let got = match &rotated {
            Ok((old, new)) if new.refresh != old.refresh => {
                status_only(&self.call(Some(&new.access)).await).to_owned()
            }
            Ok(_) => "the same refresh token again".to_owned(),
            Err(refused) => refused.clone(),
        };
        row("refresh token rotated", "200", got);
        let got = match &rotated {
            Ok((old, new)) => format!(
                "{}; newest {}; API {}",
                app.refresh(&old.refresh)
                    .await
                    .err()
                    .unwrap_or_else(|| "token 200".into()),
                app.refresh(&new.refresh)
                    .await
                    .err()
                    .unwrap_or_else(|| "token 200".into()),
                self.call(Some(&new.access)).await
            ),
            Err(refused) => refused.clone(),
        };
        row(
            "refresh token reused",
            "token 400 invalid_grant; newest token 400 invalid_grant; API 401 invalid_token",
            got,
        );

        rows
    }

    /// An RFC 9068 token for this resource server, signed by the issuer, expired an hour ago.
    fn expired_token(&self) -> Result<String, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        self.issuer.signing_key().sign(&json!({
            "iss": self.issuer_url,
            "sub": "demo-client",
            "client_id": "demo-client",
            "aud": self.api_url,
            "iat": now - 7200,
            "exp": now - 3600,
            "jti": "demo-expired-token",
            "scope": "read write",
        }))
    }
}

/// `200` for a success line of [`Demo::call`], else the line itself.
fn status_only(call: &str) -> &str {
    if call.starts_with("200 ") {
        "200"
    } else {
        call
    }
}

/// Changes one character in the middle of the token's payload.
fn tamper(token: &str) -> Option<String> {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = parts.get_mut(1).filter(|p| p.len() > 2)?;
    let at = payload.len() / 2;
    let flipped = if payload.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    payload.replace_range(at..=at, flipped);
    Some(parts.join("."))
}

fn print_table(rows: &[Row]) {
    let width = |title: &str, column: fn(&Row) -> &str| {
        rows.iter()
            .map(|r| column(r).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let case = width("case", |r| r.case);
    let expected = width("expected", |r| &r.expected);
    let got = width("got", |r| &r.got);
    println!(
        "   #  {:case$}  {:expected$}  {:got$}  result",
        "case", "expected", "got"
    );
    println!(
        "   -  {}  {}  {}  ------",
        "-".repeat(case),
        "-".repeat(expected),
        "-".repeat(got)
    );
    for (i, r) in rows.iter().enumerate() {
        println!(
            "  {:>2}  {:case$}  {:expected$}  {:got$}  {}",
            i + 1,
            r.case,
            r.expected,
            r.got,
            if r.pass() { "pass" } else { "FAIL" }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The servers and the HTTP client

struct Demo {
    issuer: Issuer,
    issuer_url: String,
    api_url: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Demo {
    /// Issuer and resource server on free loopback ports, each serving in the background.
    async fn start() -> Result<Demo, Error> {
        let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
        let api_listener = TcpListener::bind("127.0.0.1:0").await?;
        let issuer_url = format!("http://{}", issuer_listener.local_addr()?);
        let api_url = format!("http://{}", api_listener.local_addr()?);

        // One revocation store for the issuer (writes) and the resource server (reads).
        let revocations: Arc<dyn Revocations> = Arc::new(MemoryRevocations::new());

        // argon2 runs (two client hashes, the issuer's dummy hash) stay off the async threads.
        let issuer = tokio::task::spawn_blocking({
            let (issuer_url, api_url) = (issuer_url.clone(), api_url.clone());
            let revocations = Arc::clone(&revocations);
            move || -> Result<Issuer, Error> {
                let clients = format!(
                    "{}{}",
                    clients_toml(&api_url)?,
                    authcode_client::client_toml(&api_url)
                );
                let clients = issuer::parse_clients(&clients, Format::Toml)?;
                let mut config = issuer::Config::new(issuer_url);
                config.revocations = Some(revocations);
                let users = authcode_client::users()?;
                Issuer::build(&config, clients, users, SigningKey::generate(None)?)
            }
        })
        .await??;
        tokio::spawn(issuer::serve(issuer_listener, issuer.clone()));

        // The resource server gets its keys the way a deployed one would: over HTTP. It asks
        // the store on every request (no memo), so a revocation counts from the next one.
        let validator = Validator::builder()
            .issuer(issuer_url.as_str())
            .audience(api_url.as_str())
            .revocation(revocations)
            .revocation_memo(Duration::ZERO)
            .keys(RemoteKeys::jwks_url(format!(
                "{issuer_url}{}",
                issuer::JWKS_PATH
            )))
            .build()?;
        validator.ready().await?;
        let guard = Guard::new(&validator);
        let app = support::resource_server::app(&guard, ROUTE_SCOPE, Default::default())?;
        tokio::spawn(async move { axum::serve(api_listener, app).await });

        Ok(Demo {
            issuer,
            issuer_url,
            api_url,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// `POST /oauth/token` with `client_secret_basic`. `Err` describes a refusal (or failure)
    /// for the table.
    async fn token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<String, String> {
        let mut form = "grant_type=client_credentials".to_owned();
        for (name, value) in [("scope", scope), ("resource", resource)] {
            if let Some(value) = value {
                let _ = write!(form, "&{name}={}", form_encode(value));
            }
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{}", self.issuer_url, issuer::TOKEN_PATH))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, basic_auth(client_id, secret))
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("bad request: {e}"))?;
        let reply = self
            .send(request)
            .await
            .map_err(|e| format!("token: {e}"))?;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status == StatusCode::OK {
            body["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "token 200 without access_token".to_owned())
        } else {
            let error = body["error"].as_str().unwrap_or("(no error code)");
            Err(format!("token {} {error}", reply.status.as_u16()))
        }
    }

    /// `POST /oauth/revoke` with `client_secret_basic`; describes the answer for the table:
    /// the status, and the `error` of a refusal.
    async fn revoke(&self, client_id: &str, secret: &str, token: &str) -> String {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{}", self.issuer_url, issuer::REVOKE_PATH))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, basic_auth(client_id, secret))
            .body(Full::new(Bytes::from(format!(
                "token={}&token_type_hint=access_token",
                form_encode(token)
            ))));
        let reply = match request {
            Ok(request) => match self.send(request).await {
                Ok(reply) => reply,
                Err(e) => return format!("revoke: {e}"),
            },
            Err(e) => return format!("bad request: {e}"),
        };
        if reply.status == StatusCode::OK {
            return "200".to_owned();
        }
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let error = body["error"].as_str().unwrap_or("(no error code)");
        format!("{} {error}", reply.status.as_u16())
    }

    /// `GET /protected-resource`, with the token if any; describes the answer for the table:
    /// the message on success, else the status and the challenge's `error`.
    async fn call(&self, token: Option<&str>) -> String {
        let mut request = Request::get(format!("{}/protected-resource", self.api_url));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let reply = match request.body(Full::default()) {
            Ok(request) => match self.send(request).await {
                Ok(reply) => reply,
                Err(e) => return format!("API: {e}"),
            },
            Err(e) => return format!("bad request: {e}"),
        };
        let status = reply.status.as_u16();
        if reply.status == StatusCode::OK {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let client = body["client"].as_str().unwrap_or("?");
            let who = match body["subject"].as_str() {
                Some(user) if user != client => format!("{client} for {user}"),
                _ => client.to_owned(),
            };
            return format!("{status} {} ({who})", body["message"]);
        }
        match &reply.challenge {
            Some(challenge) => format!("{status} {}", challenge_error(challenge)),
            None => format!("{status} (no WWW-Authenticate)"),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
        tokio::time::timeout(TIMEOUT, async {
            let response = self.http.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            let challenge = parts
                .headers
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok::<_, Error>(Reply {
                status: parts.status,
                challenge,
                body,
            })
        })
        .await
        .map_err(|_| "timed out")?
    }
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Bytes,
}

/// The `error` auth-param of a Bearer challenge, or `Bearer` for a challenge without one.
fn challenge_error(challenge: &str) -> String {
    let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return format!("{scheme} challenge");
    }
    params
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("error"))
        .map_or_else(
            || "Bearer".to_owned(),
            |(_, value)| value.trim_matches('"').to_owned(),
        )
}

/// The two demo clients: `demo-client` may have `read write` for this resource server and for
/// [`OTHER_RESOURCE`]; `reader` only `read`, for this resource server.
fn clients_toml(api_url: &str) -> Result<String, Error> {
    let hash = |secret: &str| -> Result<String, Error> {
        Ok(Argon2::default()
            .hash_password(secret.as_bytes())
            .map_err(|e| format!("hashing failed: {e}"))?
            .to_string())
    };
    Ok(format!(
        r#"
[[clients]]
client_id = "demo-client"
secret_hash = "{demo}"
scopes = ["read", "write"]
resources = ["{api_url}", "{OTHER_RESOURCE}"]
token_lifetime = 300

[[clients]]
client_id = "reader"
secret_hash = "{reader}"
scopes = ["read"]
resources = ["{api_url}"]
token_lifetime = 300
"#,
        demo = hash(DEMO_SECRET)?,
        reader = hash(READER_SECRET)?,
    ))
}

/// `client_secret_basic`: id and secret are form-encoded before Basic encoding (RFC 6749
/// §2.3.1).
fn basic_auth(client_id: &str, secret: &str) -> String {
    let credentials = format!("{}:{}", form_encode(client_id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(credentials))
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}
