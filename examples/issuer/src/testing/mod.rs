//! The issuer on a free loopback port, with the test clients and users, and an HTTP client
//! for it: shared by this crate's tests, `bearer-guard`'s tests that need a real issuer, and
//! the MCP example's tests. Test support only (it panics on every surprise).
#![allow(clippy::missing_panics_doc, clippy::unwrap_used)]

pub mod oauth;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_guard::revocation::Revocations;
use bearer_guard::{KeySet, Validator};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use self::oauth::{basic_header, cheap_hash, urlencode};
pub use crate::authorize::{ACR_MFA, ACR_PASSWORD};
use crate::{self as issuer, Config, Format, Issuer, SigningKey};

pub const API: &str = "https://api.test";
pub const OTHER_API: &str = "https://other.test";

pub const SVC_SECRET: &str = "svc-secret-0123456789";
pub const READER_SECRET: &str = "reader-secret-0123456789";
pub const RS_SECRET: &str = "rs-secret-0123456789";
pub const OTHER_RS_SECRET: &str = "other-rs-secret-0123456789";
/// A client id and secret that need form-urlencoding in a Basic header (RFC 6749 §2.3.1).
pub const ODD_ID: &str = "svc:2 é";
pub const ODD_SECRET: &str = "p@ss word:+%&=";
/// The public client of the authorization code flow, and its redirect URIs.
pub const APP: &str = "app";
pub const REDIRECT: &str = "http://127.0.0.1:9999/callback";
pub const OTHER_REDIRECT: &str = "https://app.test/cb";
pub const ALICE_PASSWORD: &str = "alice-password-0123";
pub const BOB_PASSWORD: &str = "bob-password-0123";
/// Alice's one-time code, her second factor (bob has none).
pub const ALICE_CODE: &str = "271828";

/// The secrets of `exch` and `exch2`, the token-exchanging services of
/// [`exchange_clients_toml`].
pub const EXCH_SECRET: &str = "exch-secret-0123456789";
pub const EXCH2_SECRET: &str = "exch2-secret-0123456789";

/// [`clients_toml`] and two services that exchange tokens (RFC 8693): `exch` exchanges tokens
/// for [`API`] into tokens for [`OTHER_API`] (600 s ones), `exch2` the other way round.
pub fn exchange_clients_toml() -> String {
    format!(
        r#"{}
[[clients]]
client_id = "exch"
secret_hash = "{exch}"
scopes = ["read", "write"]
resources = ["{OTHER_API}"]
exchange_from = ["{API}"]
token_lifetime = 600

[[clients]]
client_id = "exch2"
secret_hash = "{exch2}"
scopes = ["read"]
resources = ["{API}"]
exchange_from = ["{OTHER_API}"]
"#,
        clients_toml(),
        exch = cheap_hash(EXCH_SECRET),
        exch2 = cheap_hash(EXCH2_SECRET),
    )
}

/// The test clients: confidential `svc`, `reader`, [`ODD_ID`]; public [`APP`]; resource
/// servers `rs` (for [`API`]) and `other-rs` (for [`OTHER_API`]); open registration.
pub fn clients_toml() -> String {
    format!(
        r#"
[[clients]]
client_id = "svc"
secret_hash = "{svc}"
scopes = ["read", "write"]
default_scope = "read"
resources = ["{API}", "{OTHER_API}"]

[[clients]]
client_id = "reader"
secret_hash = "{reader}"
scopes = ["read"]
resources = ["{API}"]
token_lifetime = 60

[[clients]]
client_id = "{ODD_ID}"
secret_hash = "{odd}"
scopes = ["read", "admin"]
resources = ["{API}"]

[[clients]]
client_id = "{APP}"
client_name = "Test <App>"
token_endpoint_auth_method = "none"
redirect_uris = ["{REDIRECT}", "{OTHER_REDIRECT}"]
scopes = ["read", "write"]
default_scope = "read"
resources = ["{API}", "{OTHER_API}"]
token_lifetime = 300

[[clients]]
client_id = "rs"
secret_hash = "{rs}"
introspect_for = ["{API}"]

[[clients]]
client_id = "other-rs"
secret_hash = "{other_rs}"
introspect_for = ["{OTHER_API}"]

[registration]
scopes = ["read"]
resources = ["{API}"]
"#,
        svc = cheap_hash(SVC_SECRET),
        reader = cheap_hash(READER_SECRET),
        odd = cheap_hash(ODD_SECRET),
        rs = cheap_hash(RS_SECRET),
        other_rs = cheap_hash(OTHER_RS_SECRET),
    )
}

/// Users `alice` (with a second factor, [`ALICE_CODE`]) and `bob` (without).
pub fn users_toml() -> String {
    format!(
        "[[users]]\nusername = \"alice\"\npassword_hash = \"{}\"\nsecond_factor_hash = \"{}\"\n\n\
         [[users]]\nusername = \"bob\"\npassword_hash = \"{}\"\n",
        cheap_hash(ALICE_PASSWORD),
        cheap_hash(ALICE_CODE),
        cheap_hash(BOB_PASSWORD)
    )
}

pub type Http = HttpClient<HttpConnector, Full<Bytes>>;

/// An issuer serving on a loopback port.
pub struct Server {
    /// Where it listens, `http://127.0.0.1:<port>`.
    pub base: String,
    pub issuer: Issuer,
    http: Http,
}

pub async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

impl Server {
    /// The test clients and users, a generated key, everything in memory; `adjust` may
    /// change the configuration (its `issuer` is this server's address).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Server {
        Server::start_full(
            clients_toml(),
            SigningKey::generate(None).expect("key"),
            adjust,
        )
        .await
    }

    /// [`Server::start_with`] without changes.
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// These clients, this key.
    pub async fn start_full(
        clients: String,
        key: SigningKey,
        adjust: impl FnOnce(&mut Config),
    ) -> Server {
        let (listener, addr) = bind().await;
        let mut config = Config::new(format!("http://{addr}"));
        adjust(&mut config);
        let clients = issuer::parse_clients(&clients, Format::Toml).expect("clients");
        let users = issuer::parse_users(&users_toml()).expect("users");
        let issuer = Issuer::build(&config, clients, users, key).expect("issuer");
        Server::serve(listener, issuer)
    }

    /// Serves `issuer` on `listener`, with connection info.
    pub fn serve(listener: tokio::net::TcpListener, issuer: Issuer) -> Server {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(issuer::serve(listener, issuer.clone()));
        Server {
            base,
            issuer,
            http: client_from(None),
        }
    }

    /// The `iss` of its tokens.
    pub fn iss(&self) -> &str {
        self.issuer.issuer()
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        send_with(&self.http, req).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let req = Request::get(format!("{}{path}", self.base))
            .body(Full::default())
            .expect("request");
        self.send(req).await
    }

    pub fn request(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(Full::new(body.into())).expect("request")
    }

    pub async fn post_to(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(self.request(path, content_type, body, headers))
            .await
    }

    /// `POST /oauth/token`.
    pub async fn post(
        &self,
        content_type: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post_to("/oauth/token", content_type, body, headers)
            .await
    }

    /// A form to `path`, credentials (if any) in it.
    pub async fn form_to(&self, path: &str, form: &str) -> Reply {
        self.post_to(path, FORM, form.to_owned(), &[]).await
    }

    /// A form to `path` with `client_secret_basic`.
    pub async fn basic_to(&self, path: &str, id: &str, secret: &str, form: &str) -> Reply {
        let auth = basic_header(id, secret);
        self.post_to(path, FORM, form.to_owned(), &[("authorization", &auth)])
            .await
    }

    /// A form to the token endpoint.
    pub async fn form(&self, form: &str) -> Reply {
        self.form_to("/oauth/token", form).await
    }

    /// `client_secret_basic` to the token endpoint.
    pub async fn basic(&self, id: &str, secret: &str, form: &str) -> Reply {
        self.basic_to("/oauth/token", id, secret, form).await
    }

    pub async fn json(&self, body: Value) -> Reply {
        self.post("application/json", body.to_string(), &[]).await
    }

    /// A client-credentials token for [`API`].
    pub async fn token(&self, id: &str, secret: &str) -> String {
        self.basic(id, secret, "grant_type=client_credentials")
            .await
            .assert_token()
    }

    /// `POST /oauth/introspect` by `id`.
    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> Reply {
        self.basic_to(
            "/oauth/introspect",
            id,
            secret,
            &format!("token={}", urlencode(token)),
        )
        .await
    }

    /// The authorization code flow without a browser, up to the code: the form posted with
    /// alice's password. Returns the code and the verifier.
    pub async fn code(&self, extra: &str) -> (String, String) {
        let verifier = new_verifier();
        let reply = self
            .form_to(
                "/oauth/authorize",
                &format!(
                    "{}&username=alice&password={}&approve=yes{extra}",
                    authorize_query(APP, REDIRECT, &challenge(&verifier), "st"),
                    urlencode(ALICE_PASSWORD)
                ),
            )
            .await;
        let location = reply.location();
        let query = callback_query(&location, REDIRECT);
        assert_eq!(query_value(&query, "state").as_deref(), Some("st"));
        assert_eq!(query_value(&query, "iss").as_deref(), Some(self.iss()));
        (query_value(&query, "code").expect("code"), verifier)
    }

    /// The authorization code flow with a second factor, up to the code: `query` (an
    /// authorization request of [`APP`] to [`REDIRECT`] asking for [`ACR_MFA`]) with alice's
    /// password, then her code on the second step. Returns the redirect's query.
    pub async fn sign_in_with_code(&self, query: &str) -> String {
        let first = self
            .form_to(
                "/oauth/authorize",
                &format!(
                    "{query}&username=alice&password={}&approve=yes",
                    urlencode(ALICE_PASSWORD)
                ),
            )
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        let ticket = sign_in_ticket(&first.text()).expect("the second step's ticket");
        let second = self
            .form_to(
                "/oauth/authorize",
                &format!(
                    "{query}&login={}&otp={ALICE_CODE}&approve=yes",
                    urlencode(&ticket)
                ),
            )
            .await;
        callback_query(&second.location(), REDIRECT)
    }

    /// Redeems `code` for [`APP`].
    pub async fn redeem(&self, code: &str, verifier: &str) -> Reply {
        self.form(&format!(
            "grant_type=authorization_code&client_id={APP}&code={}&redirect_uri={}&code_verifier={}",
            urlencode(code),
            urlencode(REDIRECT),
            urlencode(verifier)
        ))
        .await
    }

    /// Uses `refresh` for [`APP`].
    pub async fn refresh(&self, refresh: &str) -> Reply {
        self.form(&format!(
            "grant_type=refresh_token&client_id={APP}&refresh_token={}",
            urlencode(refresh)
        ))
        .await
    }
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// An HTTP client whose connections leave from `local` (e.g. `127.0.0.2`: another peer).
pub fn client_from(local: Option<IpAddr>) -> Http {
    let mut connector = HttpConnector::new();
    connector.set_local_address(local);
    HttpClient::builder(TokioExecutor::new()).build(connector)
}

pub async fn send_with(http: &Http, req: Request<Full<Bytes>>) -> Reply {
    let res = http.request(req).await.expect("request");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The query of an authorization request (without `scope`: the default).
pub fn authorize_query(
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&state={}&code_challenge={challenge}\
         &code_challenge_method=S256",
        urlencode(client_id),
        urlencode(redirect_uri),
        urlencode(state)
    )
}

/// A fresh PKCE verifier (43 base64url characters).
pub fn new_verifier() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("random");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Its S256 challenge.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The query of `location`, which must be `redirect_uri` plus a query.
pub fn callback_query(location: &str, redirect_uri: &str) -> String {
    let rest = location
        .strip_prefix(redirect_uri)
        .unwrap_or_else(|| panic!("redirect to {location}, not to {redirect_uri}"));
    rest.strip_prefix('?').expect("a query").to_owned()
}

/// The ticket of a second-factor page (its hidden `login` field), if the page is one.
pub fn sign_in_ticket(html: &str) -> Option<String> {
    let (_, rest) = html.split_once("<input type=\"hidden\" name=\"login\" value=\"")?;
    Some(rest.split_once('"')?.0.to_owned())
}

/// The decoded value of `name` in a query.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// An HTTP answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii"))
    }

    /// The Location of a 302.
    pub fn location(&self) -> String {
        assert_eq!(self.status, StatusCode::FOUND, "{}", self.text());
        self.header(header::LOCATION).expect("Location").to_owned()
    }

    /// An RFC 6749 §5.2 error; a 401 carries a Basic challenge.
    pub fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"], error, "{body}");
        assert!(body["error_description"].is_string(), "{body}");
        self.assert_no_store();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = self
                .header(header::WWW_AUTHENTICATE)
                .expect("a 401 without WWW-Authenticate");
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
        }
    }

    /// The answer to a revocation that got past client authentication (RFC 7009 §2.2).
    pub fn assert_revoke_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert!(self.body.is_empty(), "{:?}", self.body);
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(self.header(header::PRAGMA), Some("no-cache"));
    }

    pub fn assert_no_store(&self) {
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(self.header(header::PRAGMA), Some("no-cache"));
        assert_eq!(self.header(header::CONTENT_TYPE), Some("application/json"));
    }

    /// A successful token response; returns the access token.
    pub fn assert_token(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.assert_no_store();
        let body = self.json();
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].is_u64(), "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A successful token response with a refresh token: (access, refresh).
    pub fn assert_tokens(&self) -> (String, String) {
        let access = self.assert_token();
        let refresh = self.json()["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned();
        (access, refresh)
    }
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

impl Server {
    /// `POST /oauth/revoke` with `body`, `content_type` and extra headers.
    pub async fn post_revoke(
        &self,
        content_type: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post_to("/oauth/revoke", content_type, body, headers)
            .await
    }

    /// A form for revocation with `client_secret_basic`.
    pub async fn revoke_basic(&self, id: &str, secret: &str, form: &str) -> Reply {
        self.basic_to("/oauth/revoke", id, secret, form).await
    }

    /// A form for revocation, credentials (if any) in it.
    pub async fn revoke_form(&self, form: &str) -> Reply {
        self.form_to("/oauth/revoke", form).await
    }

    pub async fn jwks(&self) -> KeySet {
        let reply = self.get("/.well-known/jwks.json").await;
        assert_eq!(reply.status, StatusCode::OK);
        KeySet::from_jwks_json(&reply.body).expect("served JWKS")
    }

    /// A validator of this issuer's tokens for `audience`, with the keys it serves.
    pub async fn validator(&self, audience: &str) -> Validator {
        Validator::builder()
            .issuer(self.iss())
            .audience(audience)
            .keys(self.jwks().await)
            .build()
            .expect("validator")
    }

    /// A validator for [`API`] that asks `store` on every request (no memo).
    pub async fn revoking_validator(&self, store: Arc<dyn Revocations>) -> Validator {
        Validator::builder()
            .issuer(self.base.clone())
            .audience(API)
            .keys(self.jwks().await)
            .revocation(store)
            .revocation_memo(Duration::ZERO)
            .build()
            .expect("validator")
    }
}
