//! The whole client-credentials flow on one machine, in one process:
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Starts the example issuer (`examples/issuer/`) and two instances of the protected resource
//! server (`examples/support/resource_server.rs`) on free loopback ports: the API, and API 2
//! downstream of it. Each resource server's validator fetches the issuer's keys over HTTP from
//! its JWKS URL and answers to its own base URL as audience; `GET /protected-resource`
//! requires the scope `write` at the API, `read` at API 2. Issuer and validators share one
//! in-memory revocation store (in production, a Redis all point at with `REDIS_URL`): what
//! `POST /oauth/revoke` writes, the validators refuse on the next request.
//! Then, as a plain HTTP client, the demo asks for tokens, revokes one, and calls the resource
//! in nine situations; then, as the public client `demo-app` posting the login form for
//! `alice` itself (no browser), runs the authorization code flow with PKCE, rotates a refresh
//! token and replays the old one. Last, through the crate's own outgoing layers:
//! `demo-service` calls API 2 for `demo-client` with a token exchanged from demo-client's
//! (RFC 8693, `ExchangeTokenLayer`; API 2 sees demo-service as the actor), and
//! `demo-jwt-client` gets its token with no secret, by a signed ES256 assertion (RFC 7523
//! `private_key_jwt`, `AddAccessTokenLayer`). It prints what it expected and what it got, and
//! exits with status 1 if any case differs.
//!
//! The clients and their secrets are the demo-only ones of `examples/clients.toml`, registered
//! in memory for the demo's URLs (their argon2id hashes are made at start); here
//! `demo-jwt-client` may also have `write`, the scope the API needs. Its private key is
//! `examples/keys/demo-jwt-client.pem`, public and demo-only too; the issuer registers the
//! public half. Neither secrets, keys nor tokens are printed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bearer_guard::client::{
    AddAccessTokenLayer, ClientCredentials, ExchangeTokenLayer, SubjectToken, TokenError,
};
use bearer_guard::client_auth::PrivateKeyJwt;
use bearer_guard::dpop::{Dpop, DpopKey};
use bearer_guard::revocation::{MemoryRevocations, Revocations};
use bearer_guard::{Guard, RemoteKeys, Validator, metadata::ProtectedResource};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt as _};

mod support {
    pub mod authcode_client;
    pub mod resource_server;
}

use bearer_guard_issuer::{self as issuer, Format, Issuer, SigningKey};
use support::authcode_client::{self, AuthCodeClient};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// DEMO ONLY: public secrets of the in-memory clients (as in `examples/clients.toml`).
const DEMO_SECRET: &str = "demo-secret";
const READER_SECRET: &str = "reader-secret";
const SERVICE_SECRET: &str = "demo-service-secret";
/// DEMO ONLY: the private key of `demo-jwt-client`, public in this repository.
const JWT_CLIENT_KEY: &str = include_str!("keys/demo-jwt-client.pem");
/// What a caller who does not know the secret sends.
const WRONG_SECRET: &str = "guessed-secret";
/// The scope `GET /protected-resource` requires: `demo-client` may have it, `reader` may not.
const ROUTE_SCOPE: &str = "write";
/// The scope `GET /protected-resource` of API 2 requires; `demo-service` asks for no more.
const API2_SCOPE: &str = "read";
/// A second resource `demo-client` may ask tokens for; no resource server of the demo is it.
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

    println!("bearer-guard demo: OAuth 2.0 on one machine, end to end\n");
    println!(
        "  issuer    {}  (token, revocation, keys, login page)",
        demo.issuer_url
    );
    println!(
        "  API       {}/protected-resource  needs scope {ROUTE_SCOPE:?}; Bearer or DPoP",
        demo.api_url
    );
    println!(
        "  API 2     {}/protected-resource  needs scope {API2_SCOPE:?}; downstream",
        demo.api2_url
    );
    println!("  clients   demo-client (may have read write), reader (read): client secrets");
    println!("            demo-app: public, authorization code + PKCE, for the user alice");
    println!("            demo-service: exchanges tokens for the API into ones for API 2");
    println!(
        "            demo-jwt-client (read write): no secret, an ES256 key (private_key_jwt)\n"
    );
    println!("  Each case says who calls and with which token, then what came back:");
    println!("    200 (c)                 the API admitted it; c is the token's client (and user)");
    println!(
        "    200 (sub s, act.sub a)  admitted; a acts for s with an exchanged token (RFC 8693)"
    );
    println!("    401 invalid_token       the API's status and its WWW-Authenticate `error`");
    println!("    token 400 x             the issuer refused a token request with error x\n");

    let rows = demo.cases().await;
    print_rows(&rows);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// The cases

/// One case: what it shows, who calls with which token, what should and did come back.
struct Row {
    case: &'static str,
    who: &'static str,
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
        let mut row = |case, who, expected: &str, got: String| {
            rows.push(Row {
                case,
                who,
                expected: expected.to_owned(),
                got,
            });
        };

        // The normal flow: client_secret_basic, then the token on the protected route.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row(
            "successful access",
            "demo-client, its token as Bearer",
            "200 (demo-client)",
            got,
        );

        // A wrong secret gets no token.
        let got = match self.token("demo-client", WRONG_SECRET, None, None).await {
            Ok(_) => "token 200".to_owned(),
            Err(refused) => refused,
        };
        row(
            "wrong client secret",
            "demo-client with a guessed secret",
            "token 401 invalid_client",
            got,
        );

        // `reader` may only have `read`.
        let got = match self
            .token("reader", READER_SECRET, Some("write"), None)
            .await
        {
            Ok(_) => "token 200".to_owned(),
            Err(refused) => refused,
        };
        row(
            "scope not allowed for the client",
            "reader asks for write",
            "token 400 invalid_scope",
            got,
        );

        // No Authorization header: a challenge without error, naming the route's scope
        // (RFC 6750 §3) and, for clients that know only this URL, the metadata (RFC 9728).
        row(
            "no token",
            "anyone, no Authorization header",
            "401 challenge: scope write, resource_metadata",
            self.call(None).await,
        );

        // A genuine token of this issuer, but for another resource (RFC 8707 `aud`).
        let got = match self
            .token("demo-client", DEMO_SECRET, None, Some(OTHER_RESOURCE))
            .await
        {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row(
            "token for another API",
            "demo-client, token for reports.example",
            "401 invalid_token",
            got,
        );

        // Signed by the issuer's own key, everything right except `exp`: an hour ago.
        let got = match self.expired_token() {
            Ok(token) => self.call(Some(&token)).await,
            Err(e) => format!("cannot mint: {e}"),
        };
        row(
            "expired token",
            "issuer-signed token, expired 1 h ago",
            "401 invalid_token",
            got,
        );

        // `reader`'s token is valid here, but lacks the route's scope.
        let got = match self.token("reader", READER_SECRET, None, None).await {
            Ok(token) => self.call(Some(&token)).await,
            Err(refused) => refused,
        };
        row(
            "token lacks the route's scope",
            "reader, its token (read)",
            "403 insufficient_scope",
            got,
        );

        // A good token with one character of its payload changed.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => match tamper(&token) {
                Some(token) => self.call(Some(&token)).await,
                None => "not a JWS".to_owned(),
            },
            Err(refused) => refused,
        };
        row(
            "tampered token",
            "demo-client's token, 1 char changed",
            "401 invalid_token",
            got,
        );

        // A good token, used once, then revoked by its own client (RFC 7009): the resource
        // server sees the shared store and refuses it from then on.
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
            "demo-client, its token, then revoked",
            "200; revoke 200; then 401 invalid_token",
            got,
        );

        // A client that knows only the API's URL: the 401 names the metadata (RFC 9728),
        // which names the issuer, whose metadata (RFC 8414) names the token endpoint.
        row(
            "discovery from the API's URL",
            "demo-client, knowing only the API",
            "found the issuer; 200 (demo-client)",
            self.discover_and_call().await,
        );

        // DPoP (RFC 9449): the token is bound to demo-client's key; each call carries a
        // fresh proof signed by it, for this method and URL.
        let key = DpopKey::generate().map_err(|e| e.to_string());
        let bound = match &key {
            Ok(key) => self.dpop_token(key).await,
            Err(e) => Err(e.clone()),
        };
        let api = format!("{}/protected-resource", self.api_url);
        let got = match (&key, &bound) {
            (Ok(key), Ok(token)) => {
                match key.proof(&Method::GET, &api).access_token(token).sign() {
                    Ok(proof) => {
                        let first = self.call_dpop(token, &proof).await;
                        // The thief has the token and this (used) proof, not the key.
                        let replayed = self.call_dpop(token, &proof).await;
                        format!("{first}; replayed proof {replayed}")
                    }
                    Err(e) => e.to_string(),
                }
            }
            (_, Err(e)) | (Err(e), _) => e.clone(),
        };
        row(
            "DPoP-bound token, its proof",
            "demo-client + its key; then a replay",
            "200 (demo-client); replayed proof 401 invalid_dpop_proof",
            got,
        );
        let got = match &bound {
            Ok(token) => self.call(Some(token)).await,
            Err(e) => e.clone(),
        };
        row(
            "stolen DPoP token as Bearer",
            "a thief with the token, no key",
            "401 invalid_token",
            got,
        );
        let other = format!("{}/healthz", self.api_url);
        let got = match (&key, &bound) {
            (Ok(key), Ok(token)) => {
                match key.proof(&Method::GET, &other).access_token(token).sign() {
                    Ok(proof) => self.call_dpop(token, &proof).await,
                    Err(e) => e.to_string(),
                }
            }
            (_, Err(e)) | (Err(e), _) => e.clone(),
        };
        row(
            "DPoP proof for another URL",
            "a thief with a captured proof for /healthz",
            "401 invalid_dpop_proof",
            got,
        );

        // demo-app signs alice in (authorization code + PKCE), rotates its refresh token,
        // then presents the old one again: the whole family is revoked.
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
            "demo-app, signed in as alice",
            "200 (demo-app for alice)",
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
        row(
            "refresh token rotated",
            "demo-app, its refresh token",
            "200",
            got,
        );
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
                    .map_or_else(|| "token 200".into(), |e| e.replacen("token ", "", 1)),
                self.call(Some(&new.access)).await
            ),
            Err(refused) => refused.clone(),
        };
        row(
            "refresh token reused",
            "demo-app, the old refresh token",
            "token 400 invalid_grant; newest 400 invalid_grant; API 401 invalid_token",
            got,
        );

        // Token exchange (RFC 8693): demo-service, serving demo-client's request to the API,
        // calls API 2 on its behalf. Its `ExchangeTokenLayer` trades demo-client's token
        // (audience: the API) for one for API 2 with `read` only: same `sub`, demo-service
        // as the actor (`act`), which API 2 reports.
        let got = match self.token("demo-client", DEMO_SECRET, None, None).await {
            Ok(token) => self.call_downstream(&token).await,
            Err(refused) => refused,
        };
        row(
            "token exchange (RFC 8693)",
            "demo-service for demo-client, to API 2",
            "200 (sub demo-client, act.sub demo-service, scope read)",
            got,
        );

        // private_key_jwt (RFC 7523): no secret at all; `AddAccessTokenLayer` signs a fresh
        // ES256 assertion (aud: the issuer) for the token request, the issuer checks it with
        // the registered public key, and the token goes to the API.
        row(
            "private_key_jwt client (RFC 7523)",
            "demo-jwt-client: ES256 assertion, no secret",
            "200 (demo-jwt-client)",
            self.call_as_jwt_client().await,
        );

        rows
    }

    /// What `demo-service` does when serving a request that carried `subject`: calls API 2
    /// through `ExchangeTokenLayer`, which exchanges `subject` first. API 2's answer (or the
    /// refusal of the exchange), described.
    async fn call_downstream(&self, subject: &str) -> String {
        let layer = ClientCredentials::builder(self.token_url(), "demo-service", SERVICE_SECRET)
            .resource(self.api2_url.as_str())
            .scope(API2_SCOPE)
            .build()
            .and_then(ExchangeTokenLayer::new);
        let layer = match layer {
            Ok(layer) => layer,
            Err(e) => return format!("client: {e}"),
        };
        let Some(subject) = SubjectToken::new(subject) else {
            return "not a token".to_owned();
        };
        let mut request = match Request::get(format!("{}/protected-resource", self.api2_url))
            .body(Full::default())
        {
            Ok(request) => request,
            Err(e) => return format!("bad request: {e}"),
        };
        request.extensions_mut().insert(subject);
        let client = ServiceBuilder::new()
            .layer(layer)
            .service(self.http.clone());
        describe_sent(self.send_with(client, request).await)
    }

    /// `demo-jwt-client` calls the API through `AddAccessTokenLayer`, authenticating at the
    /// token endpoint by `private_key_jwt` with its key. The API's answer, described.
    async fn call_as_jwt_client(&self) -> String {
        let layer = ClientCredentials::private_key_jwt(
            self.token_url(),
            "demo-jwt-client",
            self.jwt_key.clone(),
            self.issuer_url.as_str(),
        )
        .resource(self.api_url.as_str())
        .build()
        .map(AddAccessTokenLayer::new);
        let layer = match layer {
            Ok(layer) => layer,
            Err(e) => return format!("client: {e}"),
        };
        let request = match Request::get(format!("{}/protected-resource", self.api_url))
            .body(Full::default())
        {
            Ok(request) => request,
            Err(e) => return format!("bad request: {e}"),
        };
        let client = ServiceBuilder::new()
            .layer(layer)
            .service(self.http.clone());
        describe_sent(self.send_with(client, request).await)
    }

    /// What a client knowing only the API's URL does: read the challenge, the resource's
    /// metadata, its issuer's metadata, ask the token endpoint, call. Describes the outcome.
    async fn discover_and_call(&self) -> String {
        let first = match self
            .get(&format!("{}/protected-resource", self.api_url))
            .await
        {
            Ok(reply) => reply,
            Err(e) => return e,
        };
        let Some(metadata_url) = first
            .challenges
            .iter()
            .find_map(|c| param(c, "resource_metadata"))
        else {
            return format!("{} without resource_metadata", first.status.as_u16());
        };
        let scope = first.challenges.iter().find_map(|c| param(c, "scope"));
        let resource = match self.get_json(&metadata_url).await {
            Ok(doc) => doc,
            Err(e) => return format!("metadata: {e}"),
        };
        let Some(issuer) = resource["authorization_servers"][0].as_str() else {
            return "metadata names no authorization server".to_owned();
        };
        let found = if issuer == self.issuer_url {
            "found the issuer".to_owned()
        } else {
            format!("metadata names {issuer}")
        };
        let issuer_metadata = match self
            .get_json(&format!("{issuer}{}", issuer::METADATA_PATH))
            .await
        {
            Ok(doc) => doc,
            Err(e) => return format!("{found}; issuer metadata: {e}"),
        };
        let Some(token_endpoint) = issuer_metadata["token_endpoint"].as_str() else {
            return format!("{found}; no token_endpoint");
        };
        let mut form = "grant_type=client_credentials".to_owned();
        if let Some(scope) = scope {
            let _ = write!(form, "&scope={}", form_encode(&scope));
        }
        if let Some(resource) = resource["resource"].as_str() {
            let _ = write!(form, "&resource={}", form_encode(resource));
        }
        let basic = basic_auth("demo-client", DEMO_SECRET);
        let token = match self
            .token_request(token_endpoint, &form, &[(AUTHORIZATION.as_str(), &basic)])
            .await
        {
            Ok(body) => body["access_token"].as_str().map(str::to_owned),
            Err(refused) => return format!("{found}; {refused}"),
        };
        match token {
            Some(token) => format!("{found}; {}", self.call(Some(&token)).await),
            None => format!("{found}; token 200 without access_token"),
        }
    }

    /// A token bound to `key`: the token request carries a proof of it (RFC 9449 §5).
    async fn dpop_token(&self, key: &DpopKey) -> Result<String, String> {
        let url = format!("{}{}", self.issuer_url, issuer::TOKEN_PATH);
        let proof = key
            .proof(&Method::POST, &url)
            .sign()
            .map_err(|e| e.to_string())?;
        let basic = basic_auth("demo-client", DEMO_SECRET);
        let headers = [
            (AUTHORIZATION.as_str(), basic.as_str()),
            ("dpop", proof.as_str()),
        ];
        let body = self
            .token_request(&url, "grant_type=client_credentials", &headers)
            .await?;
        match (body["token_type"].as_str(), body["access_token"].as_str()) {
            (Some("DPoP"), Some(token)) => Ok(token.to_owned()),
            (kind, _) => Err(format!("token 200 of type {kind:?}")),
        }
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
    if call.starts_with("200 (") {
        "200"
    } else {
        call
    }
}

/// An API's answer to a request sent through one of the crate's outgoing layers, described
/// as [`describe`] does; a token request the issuer refused as `token 401 invalid_client`.
fn describe_sent(sent: Result<Reply, Error>) -> String {
    match sent {
        Ok(reply) => describe(&reply),
        Err(e) => match e.downcast_ref::<TokenError>() {
            Some(refused) => format!(
                "token {} {}",
                refused.status().map_or(0, |s| s.as_u16()),
                refused.oauth_error().unwrap_or("(no error code)")
            ),
            None => format!("API: {e}"),
        },
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

/// Two lines a case: number, case and caller; then the answer and the verdict (and what
/// was expected, when it differs). Every line fits 100 columns.
fn print_rows(rows: &[Row]) {
    for (i, r) in rows.iter().enumerate() {
        println!("  {:>2}  {:<34}{}", i + 1, r.case, r.who);
        let verdict = if r.pass() { "pass" } else { "FAIL" };
        println!("      {:<86}{verdict}", r.got);
        if !r.pass() {
            println!("      expected {}", r.expected);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The servers and the HTTP client

struct Demo {
    issuer: Issuer,
    issuer_url: String,
    api_url: String,
    /// The API downstream of the first one: tokens reach it by exchange.
    api2_url: String,
    /// `demo-jwt-client`'s private key.
    jwt_key: PrivateKeyJwt,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

/// What the demo's resource servers share: the issuer they trust and the revocation store.
struct Api<'a> {
    issuer_url: &'a str,
    revocations: &'a Arc<dyn Revocations>,
}

impl Api<'_> {
    /// A resource server for the audience `url` on `listener`, serving in the background;
    /// `GET /protected-resource` needs `scope`.
    async fn serve(
        &self,
        listener: TcpListener,
        url: &str,
        name: &str,
        scope: &str,
    ) -> Result<(), Error> {
        let issuer_url = self.issuer_url;
        // It gets its keys the way a deployed one would: over HTTP. It asks the store on
        // every request (no memo), so a revocation counts from the next one.
        let validator = Validator::builder()
            .issuer(issuer_url)
            .audience(url)
            .revocation(Arc::clone(self.revocations))
            .revocation_memo(Duration::ZERO)
            .keys(RemoteKeys::jwks_url(format!(
                "{issuer_url}{}",
                issuer::JWKS_PATH
            )))
            .build()?;
        validator.ready().await?;
        // RFC 9728: the API says which issuer it trusts; every 401 points at the document.
        let metadata = ProtectedResource::builder(url)
            .authorization_server(issuer_url)
            .resource_name(name)
            .build()?;
        // DPoP proofs name this API's public URL (`htu`).
        let dpop = Dpop::builder().external_origin(url).build()?;
        let guard = Guard::new(&validator)
            .protected_resource(&metadata)?
            .dpop(dpop);
        let extras = support::resource_server::Extras {
            metadata: Some(metadata),
            ..Default::default()
        };
        let app = support::resource_server::app(&guard, scope, extras)?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(())
    }
}

impl Demo {
    /// Issuer and the two resource servers on free loopback ports, each serving in the
    /// background.
    async fn start() -> Result<Demo, Error> {
        let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
        let api_listener = TcpListener::bind("127.0.0.1:0").await?;
        let api2_listener = TcpListener::bind("127.0.0.1:0").await?;
        let issuer_url = format!("http://{}", issuer_listener.local_addr()?);
        let api_url = format!("http://{}", api_listener.local_addr()?);
        let api2_url = format!("http://{}", api2_listener.local_addr()?);
        let jwt_key = PrivateKeyJwt::from_pem(JWT_CLIENT_KEY.as_bytes())?;

        // One revocation store for the issuer (writes) and the resource servers (reads).
        let revocations: Arc<dyn Revocations> = Arc::new(MemoryRevocations::new());

        // argon2 runs (the client hashes, the issuer's dummy hash) stay off the async threads.
        let issuer = tokio::task::spawn_blocking({
            let (issuer_url, api_url, api2_url) =
                (issuer_url.clone(), api_url.clone(), api2_url.clone());
            let jwk = jwt_key.public_jwk();
            let revocations = Arc::clone(&revocations);
            move || -> Result<Issuer, Error> {
                let clients = format!(
                    "{}{}",
                    clients_toml(&api_url, &api2_url, &jwk)?,
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

        let api = Api {
            issuer_url: &issuer_url,
            revocations: &revocations,
        };
        api.serve(api_listener, &api_url, "bearer-guard demo API", ROUTE_SCOPE)
            .await?;
        api.serve(
            api2_listener,
            &api2_url,
            "bearer-guard demo API 2",
            API2_SCOPE,
        )
        .await?;

        Ok(Demo {
            issuer,
            issuer_url,
            api_url,
            api2_url,
            jwt_key,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The issuer's token endpoint.
    fn token_url(&self) -> String {
        format!("{}{}", self.issuer_url, issuer::TOKEN_PATH)
    }

    /// `POST /oauth/token` for the client credentials grant with `client_secret_basic`.
    /// `Err` describes a refusal (or failure) for the table.
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
        let url = self.token_url();
        let basic = basic_auth(client_id, secret);
        let body = self
            .token_request(&url, &form, &[(AUTHORIZATION.as_str(), &basic)])
            .await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "token 200 without access_token".to_owned())
    }

    /// A token request: `form` to `url` with these headers. The answer's JSON, or a
    /// description of the refusal (`token 400 invalid_scope`).
    async fn token_request(
        &self,
        url: &str,
        form: &str,
        headers: &[(&str, &str)],
    ) -> Result<Value, String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(form.to_owned())))
            .map_err(|e| format!("bad request: {e}"))?;
        let reply = self
            .send(request)
            .await
            .map_err(|e| format!("token: {e}"))?;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status == StatusCode::OK {
            Ok(body)
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

    /// `GET /protected-resource` with the token as `Bearer`, if any; described for the table.
    async fn call(&self, token: Option<&str>) -> String {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.call_with(authorization.as_deref(), None).await
    }

    /// `GET /protected-resource` with the token as `DPoP` and this proof.
    async fn call_dpop(&self, token: &str, proof: &str) -> String {
        self.call_with(Some(&format!("DPoP {token}")), Some(proof))
            .await
    }

    /// `GET /protected-resource` of the API with these headers; its answer, as [`describe`]
    /// puts it.
    async fn call_with(&self, authorization: Option<&str>, proof: Option<&str>) -> String {
        let mut request = Request::get(format!("{}/protected-resource", self.api_url));
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        match request.body(Full::default()) {
            Ok(request) => match self.send(request).await {
                Ok(reply) => describe(&reply),
                Err(e) => format!("API: {e}"),
            },
            Err(e) => format!("bad request: {e}"),
        }
    }

    async fn get(&self, url: &str) -> Result<Reply, String> {
        let request = Request::get(url)
            .body(Full::default())
            .map_err(|e| format!("bad request: {e}"))?;
        self.send(request).await.map_err(|e| format!("{url}: {e}"))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let reply = self.get(url).await?;
        if reply.status != StatusCode::OK {
            return Err(format!("{}", reply.status.as_u16()));
        }
        serde_json::from_slice(&reply.body).map_err(|e| format!("invalid JSON: {e}"))
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
        self.send_with(self.http.clone(), request).await
    }

    /// Sends `request` through `client` (the plain HTTP client, or one of the crate's
    /// outgoing layers around it), within [`TIMEOUT`].
    async fn send_with<S>(&self, client: S, request: Request<Full<Bytes>>) -> Result<Reply, Error>
    where
        S: tower::Service<Request<Full<Bytes>>, Response = http::Response<Incoming>>,
        S::Error: Into<Error>,
    {
        tokio::time::timeout(TIMEOUT, async {
            let response = client.oneshot(request).await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            let challenges = parts
                .headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect();
            Ok::<_, Error>(Reply {
                status: parts.status,
                challenges,
                body,
            })
        })
        .await
        .map_err(|_| "timed out")?
    }
}

struct Reply {
    status: StatusCode,
    /// The `WWW-Authenticate` values (`Bearer ..`, `DPoP ..`).
    challenges: Vec<String>,
    body: Bytes,
}

/// The API's answer, described: `200 (client)` or `200 (client for user)` on success (for a
/// delegated token `200 (sub s, act.sub a, scope x)`: a, the current actor, acts for s),
/// else the status and the `error` of its challenge (or what the challenge names).
fn describe(reply: &Reply) -> String {
    let status = reply.status.as_u16();
    if reply.status == StatusCode::OK {
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let client = body["client"].as_str().unwrap_or("?");
        let subject = body["subject"].as_str();
        if let Some(actor) = body["actors"][0]["subject"].as_str() {
            return format!(
                "{status} (sub {}, act.sub {actor}, scope {})",
                subject.unwrap_or("?"),
                body["scope"].as_str().unwrap_or("?")
            );
        }
        return match subject {
            Some(user) if user != client => format!("{status} ({client} for {user})"),
            _ => format!("{status} ({client})"),
        };
    }
    if let Some(error) = reply.challenges.iter().find_map(|c| param(c, "error")) {
        return format!("{status} {error}");
    }
    match reply.challenges.first() {
        Some(challenge) => {
            let mut named = Vec::new();
            if let Some(scope) = param(challenge, "scope") {
                named.push(format!("scope {scope}"));
            }
            if param(challenge, "resource_metadata").is_some() {
                named.push("resource_metadata".to_owned());
            }
            format!("{status} challenge: {}", named.join(", "))
        }
        None => format!("{status} (no WWW-Authenticate)"),
    }
}

/// The auth-param `name` of a challenge (`Bearer error="invalid_token", scope="write"`),
/// unquoted. The demo's challenges hold no commas inside quoted values.
fn param(challenge: &str, name: &str) -> Option<String> {
    let (_scheme, params) = challenge.split_once(' ')?;
    params
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// The demo clients: `demo-client` may have `read write` for the API and for
/// [`OTHER_RESOURCE`]; `reader` only `read`, for the API; `demo-service` exchanges tokens for
/// the API into tokens for API 2; `demo-jwt-client` (`read write` for the API) authenticates
/// by `private_key_jwt` with the key whose public JWK is `jwk`.
fn clients_toml(api_url: &str, api2_url: &str, jwk: &str) -> Result<String, Error> {
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

[[clients]]
client_id = "demo-service"
secret_hash = "{service}"
scopes = ["read", "write"]
resources = ["{api2_url}"]
exchange_from = ["{api_url}"]
token_lifetime = 300

[[clients]]
client_id = "demo-jwt-client"
token_endpoint_auth_method = "private_key_jwt"
jwk = {jwk}
scopes = ["read", "write"]
resources = ["{api_url}"]
token_lifetime = 300
"#,
        demo = hash(DEMO_SECRET)?,
        reader = hash(READER_SECRET)?,
        service = hash(SERVICE_SECRET)?,
        jwk = toml_inline_table(jwk)?,
    ))
}

/// A JSON object of strings (a public JWK) as a TOML inline table.
fn toml_inline_table(json: &str) -> Result<String, Error> {
    let value: Value = serde_json::from_str(json)?;
    let members = value.as_object().ok_or("the JWK is not a JSON object")?;
    let members: Vec<String> = members
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    Ok(format!("{{ {} }}", members.join(", ")))
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
