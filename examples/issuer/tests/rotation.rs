//! Signing-key rotation (`SIGNING_KEYS_DIR`): every key of the directory is published, the
//! newest signs once it has been published for the publish-ahead time, a removed file leaves
//! the JWKS, and a reload that cannot read the directory whole changes nothing.
//!
//! - The rule itself, on [`SigningKeys`] (no server, no clock to wait for: a publish-ahead of
//!   zero or of an hour);
//! - a rotation under load through a real resource server (`bearer_guard` with the issuer's
//!   JWKS URL, refreshed every 300 ms): no request fails, the old key's token stays valid,
//!   fresh tokens carry the new `kid` once, and not before, the publish-ahead time has
//!   passed;
//! - the `issuer` binary: `SIGHUP` publishes a new file at once, makes it the signing key
//!   after `SIGNING_KEY_PUBLISH_AHEAD`, and refuses a malformed file with a log line.
//!
//! Waits are on observable state (the JWKS, the `kid` of fresh tokens, a log line), polled
//! with a deadline.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bearer_guard::{KeySet, RemoteKeys, RequireScope, Validator};
use http::{Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use issuer::{Config, SigningKey, SigningKeys};
use issuer_server::{API, FORM, Reply, SVC_SECRET, Server, oauth::basic_header};
use serde_json::{Value, json};

/// How long a new key is published before it signs, in the tests that wait for it.
const AHEAD: Duration = Duration::from_secs(3);
/// How often the resource server refreshes the JWKS: well under [`AHEAD`].
const RS_REFRESH: Duration = Duration::from_millis(300);
/// The longest wait for anything observable.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the target's temporary directory; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "rotation-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the directory");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: &[u8]) {
        std::fs::write(self.join(name), contents).expect("write");
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.join(name)).expect("remove");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh Ed25519 private key, PKCS#8 PEM (RFC 8410 §7), as `openssl genpkey` writes it.
fn ed25519_pem() -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    der.extend_from_slice(&seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der)
    )
    .into_bytes()
}

/// The shipped P-256 test key (PKCS#8 PEM): a rotation may change the algorithm too.
fn p256_pem() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join("tests/keys/ec256_private.pem")).expect("tests/keys/ec256_private.pem")
}

/// The `kid` a PEM key gets: its RFC 7638 thumbprint.
fn kid_of(pem: &[u8]) -> String {
    SigningKey::from_pem(pem, None)
        .expect("key")
        .kid()
        .to_owned()
}

/// The `kid` in a token's JOSE header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The `kid`s of a JWKS document.
fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Polls `probe` until it returns `Some`, for [`DEADLINE`] at most.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The test clients in a file of `dir`, as `CLIENTS_FILE` takes them.
fn clients_file(dir: &Path) -> PathBuf {
    let path = dir.join("clients.toml");
    std::fs::write(&path, issuer_server::clients_toml()).expect("write");
    path
}

/// The test users in a file of `dir`, as `USERS_FILE` takes them.
fn users_file(dir: &Path) -> PathBuf {
    let path = dir.join("users.toml");
    std::fs::write(&path, issuer_server::users_toml()).expect("write");
    path
}

/// An issuer on a loopback port whose keys are those of `keys`.
async fn start_issuer(keys: &TempDir, files: &TempDir, ahead: Duration) -> Server {
    let (listener, addr) = issuer_server::bind().await;
    let mut config = Config::new(format!("http://{addr}"));
    config.clients_file = clients_file(&files.0);
    config.users_file = None;
    config.signing_keys_dir = Some(keys.0.clone());
    config.signing_key_publish_ahead = ahead;
    Server::serve(listener, issuer::load(&config).await.expect("load"))
}

/// A client-credentials token of `svc`, or what went wrong.
async fn try_token(server: &Server) -> Result<String, String> {
    let reply = server
        .basic("svc", SVC_SECRET, "grant_type=client_credentials")
        .await;
    if reply.status != StatusCode::OK {
        return Err(format!("token request: {} {}", reply.status, reply.text()));
    }
    Ok(reply.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned())
}

// ---------------------------------------------------------------------------------------------
// The rule

#[test]
fn every_key_is_published_and_the_newest_signs_after_the_publish_ahead_time() {
    let dir = TempDir::new("rule");
    let (a, b) = (ed25519_pem(), p256_pem());
    dir.write("2025-01.pem", &a);

    // One key: it signs from the start, whatever the publish-ahead time.
    let keys = SigningKeys::from_dir(&dir.0, Duration::from_secs(3600)).expect("keys");
    assert_eq!(keys.kids(), [kid_of(&a)]);
    assert_eq!(keys.signer().kid(), kid_of(&a));

    // A new file: published at once; with an hour to go, the previous key still signs.
    dir.write("2025-02.pem", &b);
    let reloaded = keys.reload().expect("reload");
    assert_eq!(reloaded.added, [kid_of(&b)]);
    assert!(reloaded.removed.is_empty());
    assert_eq!(reloaded.signing, kid_of(&a));
    let (next, left) = reloaded.next.expect("the newest does not sign yet");
    assert_eq!(next, kid_of(&b));
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    assert_eq!(keys.kids(), [kid_of(&a), kid_of(&b)]);
    assert_eq!(keys.signer().kid(), kid_of(&a));
    let jwks: Value = serde_json::from_str(&keys.jwks_json()).expect("jwks");
    assert_eq!(jwks_kids(&jwks), [kid_of(&a), kid_of(&b)]);
    assert_eq!(jwks["keys"][1]["alg"], "ES256");
    // A token of either key is the issuer's own.
    let token = keys.sign(&json!({ "sub": "x" })).expect("sign");
    assert!(keys.verify_signature(&token).is_ok());

    // Reloading the same directory changes nothing: the new key keeps its publication time.
    let again = keys.reload().expect("reload");
    assert!(again.added.is_empty() && again.removed.is_empty());
    assert_eq!(again.signing, kid_of(&a));
    assert!(again.next.expect("still waiting").1 <= left);

    // The old file removed: its key leaves the JWKS and its tokens are no longer its own;
    // the only key left signs.
    dir.remove("2025-01.pem");
    let reloaded = keys.reload().expect("reload");
    assert_eq!(reloaded.removed, [kid_of(&a)]);
    assert_eq!(reloaded.signing, kid_of(&b));
    assert_eq!(reloaded.next, None);
    assert_eq!(keys.kids(), [kid_of(&b)]);
    assert!(keys.verify_signature(&token).is_err());

    // With no publish-ahead time, a new key signs at once.
    let now = SigningKeys::from_dir(&dir.0, Duration::ZERO).expect("keys");
    let c = ed25519_pem();
    dir.write("2025-03.pem", &c);
    assert_eq!(now.reload().expect("reload").signing, kid_of(&c));
    assert_eq!(now.signer().kid(), kid_of(&c));

    // At start, the newest of several keys counts as just published: the one before it
    // signs until the publish-ahead time has passed.
    let restarted = SigningKeys::from_dir(&dir.0, Duration::from_secs(3600)).expect("keys");
    assert_eq!(restarted.kids(), [kid_of(&b), kid_of(&c)]);
    assert_eq!(restarted.signer().kid(), kid_of(&b));
    let restarted = SigningKeys::from_dir(&dir.0, Duration::ZERO).expect("keys");
    assert_eq!(restarted.signer().kid(), kid_of(&c));
}

#[test]
fn a_directory_that_cannot_be_read_whole_is_refused_and_the_keys_stay() {
    let logs = bearer_guard::testkit::logs::capture();
    let dir = TempDir::new("refused");
    let a = ed25519_pem();
    dir.write("01.pem", &a);
    let keys = SigningKeys::from_dir(&dir.0, Duration::ZERO).expect("keys");
    let jwks = keys.jwks_json();

    let refusals: [(&str, &[u8], &str); 3] = [
        (
            "02.pem",
            b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
            "02.pem",
        ),
        ("02.pem", b"not even PEM", "02.pem"),
        // The same key twice.
        ("02.pem", &a, "holds the same key as 01.pem"),
    ];
    for (file, contents, reason) in refusals {
        dir.write(file, contents);
        let error = keys.reload().expect_err("refused").to_string();
        assert!(error.contains(reason), "{error}");
        assert_eq!(keys.jwks_json(), jwks, "the published keys changed");
        assert_eq!(keys.signer().kid(), kid_of(&a));
        dir.remove(file);
    }
    // A public key is no signing key.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let public = std::fs::read(root.join("tests/keys/ed25519_public.pem")).expect("pem");
    dir.write("02.pem", &public);
    assert!(keys.reload().is_err());
    dir.remove("02.pem");

    // No key left: refused too (a resource server must never see an empty JWKS).
    dir.remove("01.pem");
    let error = keys.reload().expect_err("refused").to_string();
    assert!(error.contains("no key"), "{error}");
    assert_eq!(keys.jwks_json(), jwks);

    // Each refusal is logged, naming the directory and why.
    let text = logs.text();
    assert_eq!(
        text.matches("signing keys not reloaded").count(),
        5,
        "{text}"
    );
    assert!(text.contains("02.pem"), "{text}");
    assert!(text.contains(&*dir.0.to_string_lossy()), "{text}");

    // Hidden files and other extensions are not keys; a good directory is taken again.
    dir.write("01.pem", &a);
    dir.write(".02.pem", &ed25519_pem());
    dir.write("02.pem.tmp", b"half-written");
    dir.write("README", b"keys");
    let reloaded = keys.reload().expect("reload");
    assert!(reloaded.added.is_empty(), "{reloaded:?}");
    assert_eq!(keys.kids(), [kid_of(&a)]);

    // Keys that do not come from a directory cannot be reloaded.
    let single = SigningKeys::from(SigningKey::generate(None).expect("key"));
    assert!(single.reload().is_err());
}

#[test]
fn a_directory_excludes_a_key_file_and_a_key_id() {
    let dir = TempDir::new("exclusive");
    dir.write("01.pem", &ed25519_pem());
    let mut config = Config::new("http://127.0.0.1:8000");
    config.signing_keys_dir = Some(dir.0.clone());
    assert!(config.signing_keys().is_ok());
    config.signing_key_id = Some("k1".into());
    assert!(config.signing_keys().is_err());
    config.signing_key_id = None;
    config.signing_key_file = Some(dir.join("01.pem"));
    assert!(config.signing_keys().is_err());
}

// ---------------------------------------------------------------------------------------------
// Under load, through a resource server

/// A resource server: `GET /data` needs `read`, checked by `bearer_guard` with the issuer's
/// keys from its JWKS URL, refreshed every [`RS_REFRESH`].
async fn resource_server(issuer: &Server) -> SocketAddr {
    let keys = RemoteKeys::jwks_url(format!("{}{}", issuer.base, issuer::JWKS_PATH))
        .refresh_interval(RS_REFRESH, RS_REFRESH)
        // No key is fetched because a token names an unknown one (see below): a new key
        // reaches this server by its scheduled refreshes only, as it would reach a server
        // whose on-demand fetch is in its cooldown.
        .unknown_kid_cooldown(Duration::from_secs(3600));
    let validator = Validator::builder()
        .issuer(issuer.base.clone())
        .audience(API)
        .keys(keys)
        .build()
        .expect("validator");
    validator.ready().await.expect("keys");
    let app = Router::new().route(
        "/data",
        get(|| async { "ok" }).layer(RequireScope::all(&validator, ["read"]).expect("layer")),
    );
    let (listener, addr) = issuer_server::bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Spend the one on-demand fetch now: a token of a key nobody publishes.
    let stranger = SigningKey::generate(None).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = stranger
        .sign(&json!({
            "iss": issuer.base, "sub": "svc", "client_id": "svc", "aud": API,
            "iat": now, "exp": now + 60, "jti": "stranger", "scope": "read",
        }))
        .expect("sign");
    assert_eq!(call(addr, &token).await, StatusCode::UNAUTHORIZED);
    addr
}

/// `GET /data` with `token`.
async fn call(rs: SocketAddr, token: &str) -> StatusCode {
    let http = issuer_server::client_from(None);
    let req = Request::get(format!("http://{rs}/data"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::<Bytes>::default())
        .expect("request");
    issuer_server::send_with(&http, req).await.status
}

/// What the clients under load saw.
#[derive(Default, Debug)]
struct Tally {
    /// Admitted requests, by the `kid` of the fresh token (the old token's are under "old").
    admitted: BTreeMap<String, u64>,
    failures: Vec<String>,
}

/// Clients that, until stopped, each take a fresh token and call the resource server with it
/// and with `old`, a token taken before the rotation.
struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(issuer: &Arc<Server>, rs: SocketAddr, old: &str, clients: usize) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (issuer, tally, stop, old) = (
                    Arc::clone(issuer),
                    Arc::clone(&tally),
                    Arc::clone(&stop),
                    old.to_owned(),
                );
                tokio::spawn(async move {
                    // Bounded: the test stops it long before.
                    for _ in 0..100_000 {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        let fresh = match try_token(&issuer).await {
                            Ok(token) => token,
                            Err(failure) => {
                                tally.lock().unwrap().failures.push(failure);
                                continue;
                            }
                        };
                        for (label, token) in [(kid(&fresh), &fresh), ("old".to_owned(), &old)] {
                            let status = call(rs, token).await;
                            let mut tally = tally.lock().unwrap();
                            if status == StatusCode::OK {
                                *tally.admitted.entry(label).or_default() += 1;
                            } else {
                                tally.failures.push(format!("{label}: {status}"));
                            }
                        }
                    }
                })
            })
            .collect();
        Load { tally, stop, tasks }
    }

    /// Admitted requests with a fresh token of `kid` so far.
    fn admitted(&self, kid: &str) -> u64 {
        self.tally
            .lock()
            .unwrap()
            .admitted
            .get(kid)
            .copied()
            .unwrap_or(0)
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("client task");
        }
        Arc::try_unwrap(self.tally)
            .expect("tasks done")
            .into_inner()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_through_a_resource_server() {
    let (keys, files) = (TempDir::new("load-keys"), TempDir::new("load-files"));
    let (a, b) = (ed25519_pem(), p256_pem());
    let (kid_a, kid_b) = (kid_of(&a), kid_of(&b));
    keys.write("01.pem", &a);
    let issuer = Arc::new(start_issuer(&keys, &files, AHEAD).await);
    let rs = resource_server(&issuer).await;

    let old = try_token(&issuer).await.expect("token");
    assert_eq!(kid(&old), kid_a);
    let load = Load::start(&issuer, rs, &old, 2);
    eventually("the load to run", || async {
        (load.admitted(&kid_a) >= 3).then_some(())
    })
    .await;

    // The new key: published at once, not signing yet.
    keys.write("02.pem", &b);
    let reloaded_at = Instant::now();
    let reloaded = issuer.issuer.reload_signing_keys().await.expect("reload");
    assert_eq!(reloaded.added, [kid_b.as_str()]);
    assert_eq!(reloaded.signing, kid_a);
    assert_eq!(reloaded.next.as_ref().map(|n| &n.0), Some(&kid_b));
    let served = issuer.get(issuer::JWKS_PATH).await.json();
    assert_eq!(jwks_kids(&served), [kid_a.clone(), kid_b.clone()]);
    let early = try_token(&issuer).await.expect("token");
    if reloaded_at.elapsed() < AHEAD {
        assert_eq!(kid(&early), kid_a, "the new key signed before its time");
    }

    // Fresh tokens carry the new kid once the publish-ahead time has passed, and not before.
    let switched = eventually("a token of the new key", || async {
        let token = try_token(&issuer).await.expect("token");
        (kid(&token) == kid_b).then(|| reloaded_at.elapsed())
    })
    .await;
    assert!(switched >= AHEAD, "the new key signed after {switched:?}");
    eventually("the load to use the new key", || async {
        (load.admitted(&kid_b) >= 3).then_some(())
    })
    .await;

    // Through all of it: no request failed; the old token was admitted all along.
    let tally = load.stop().await;
    assert!(
        tally.failures.is_empty(),
        "{} requests failed, e.g. {:?}; admitted: {:?}",
        tally.failures.len(),
        &tally.failures[..tally.failures.len().min(5)],
        tally.admitted
    );
    assert!(tally.admitted["old"] >= 6, "{tally:?}");
    assert!(
        tally.admitted[&kid_a] >= 3 && tally.admitted[&kid_b] >= 3,
        "{tally:?}"
    );

    // The old file removed: its key leaves the JWKS, and the resource server refuses its
    // token from its next refresh; the new key's tokens pass.
    keys.remove("01.pem");
    let reloaded = issuer.issuer.reload_signing_keys().await.expect("reload");
    assert_eq!(reloaded.removed, [kid_a.as_str()]);
    let served = issuer.get(issuer::JWKS_PATH).await.json();
    assert_eq!(jwks_kids(&served), [kid_b.as_str()]);
    eventually("the old key to leave the resource server", || async {
        (call(rs, &old).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let fresh = try_token(&issuer).await.expect("token");
    assert_eq!(call(rs, &fresh).await, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// The binary and SIGHUP

/// The `issuer` binary on a free port; killed when dropped.
struct Process {
    child: Child,
    base: String,
    http: issuer_server::Http,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// With the test clients and users (files written to `files`, its log too), the keys of
    /// `keys`, publishing new ones `ahead_s` seconds ahead.
    fn start(files: &Path, keys: &Path, ahead_s: &str) -> Process {
        let log = files.join("issuer.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_issuer"))
            .env("BIND", "127.0.0.1:0")
            .env("CLIENTS_FILE", clients_file(files))
            .env("USERS_FILE", users_file(files))
            .env("SIGNING_KEYS_DIR", keys)
            .env("SIGNING_KEY_PUBLISH_AHEAD", ahead_s)
            .env("RUST_LOG", "info")
            .env_remove("ISSUER")
            .env_remove("SIGNING_KEY_FILE")
            .env_remove("SIGNING_KEY_ID")
            .env_remove("REDIS_URL")
            .env_remove("TOKEN_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the issuer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("unexpected first line: {line:?}; log:\n{log}")
            });
        Process {
            base: format!("http://{addr}"),
            child,
            http: issuer_server::client_from(None),
            log,
        }
    }

    fn sighup(&self) {
        let status = Command::new("sh")
            .args(["-c", "kill -HUP \"$0\"", &self.child.id().to_string()])
            .status()
            .expect("sh");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("log")
    }

    async fn jwks(&self) -> Value {
        let req = Request::get(format!("{}{}", self.base, issuer::JWKS_PATH))
            .body(Full::default())
            .expect("request");
        let reply = issuer_server::send_with(&self.http, req).await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.json()
    }

    async fn token(&self) -> String {
        let req = Request::post(format!("{}{}", self.base, issuer::TOKEN_PATH))
            .header(header::CONTENT_TYPE, FORM)
            .header(header::AUTHORIZATION, basic_header("svc", SVC_SECRET))
            .body(Full::from("grant_type=client_credentials"))
            .expect("request");
        let reply: Reply = issuer_server::send_with(&self.http, req).await;
        reply.assert_token()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_publishes_a_new_key_at_once_and_signs_with_it_after_the_publish_ahead_time() {
    let (keys, files) = (TempDir::new("hup-keys"), TempDir::new("hup-files"));
    let (a, b) = (ed25519_pem(), ed25519_pem());
    let (kid_a, kid_b) = (kid_of(&a), kid_of(&b));
    keys.write("01.pem", &a);
    let issuer = tokio::task::spawn_blocking({
        let (keys, files) = (keys.0.clone(), files.0.clone());
        move || Process::start(&files, &keys, "2")
    })
    .await
    .expect("started");
    let old = issuer.token().await;
    assert_eq!(kid(&old), kid_a);

    // A new file and SIGHUP: the JWKS publishes it at once (before the publish-ahead time),
    // while fresh tokens still carry the old kid.
    keys.write("02.pem", &b);
    let sent = Instant::now();
    issuer.sighup();
    let published = eventually("the new key in the JWKS", || async {
        let jwks = issuer.jwks().await;
        (jwks_kids(&jwks).len() == 2).then_some(jwks)
    })
    .await;
    assert_eq!(jwks_kids(&published), [kid_a.clone(), kid_b.clone()]);
    let early = issuer.token().await;
    if sent.elapsed() < Duration::from_secs(2) {
        assert_eq!(kid(&early), kid_a, "the new key signed before its time");
    }
    eventually("the reload in the log", || async {
        issuer.log().contains("signing keys reloaded").then_some(())
    })
    .await;

    // After SIGNING_KEY_PUBLISH_AHEAD (2 s), the new key signs.
    let switched = eventually("a token of the new key", || async {
        let token = issuer.token().await;
        (kid(&token) == kid_b).then(|| (sent.elapsed(), token))
    })
    .await;
    assert!(switched.0 >= Duration::from_secs(2), "{:?}", switched.0);

    // Tokens of the previous key are still admitted, and so are the new key's.
    let validator = Validator::builder()
        .issuer(issuer.base.clone())
        .audience(API)
        .keys(KeySet::from_jwks_json(published.to_string().as_bytes()).expect("keys"))
        .build()
        .expect("validator");
    validator.validate(&old).expect("the old key's token");
    validator
        .validate(&switched.1)
        .expect("the new key's token");

    // A malformed new file: refused with a log line, the keys kept.
    keys.write(
        "03.pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    issuer.sighup();
    eventually("the refusal in the log", || async {
        issuer
            .log()
            .contains("signing keys not reloaded")
            .then_some(())
    })
    .await;
    assert!(issuer.log().contains("03.pem"), "{}", issuer.log());
    assert_eq!(issuer.jwks().await, published);
    assert_eq!(kid(&issuer.token().await), kid_b);
}

#[test]
fn the_binary_refuses_a_key_directory_with_a_key_file() {
    let (keys, files) = (TempDir::new("both-keys"), TempDir::new("both-files"));
    keys.write("01.pem", &ed25519_pem());
    let output = Command::new(env!("CARGO_BIN_EXE_issuer"))
        .env("BIND", "127.0.0.1:0")
        .env("CLIENTS_FILE", clients_file(&files.0))
        .env("USERS_FILE", users_file(&files.0))
        .env("SIGNING_KEYS_DIR", &keys.0)
        .env("SIGNING_KEY_FILE", keys.join("01.pem"))
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run the issuer");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exclude each other"), "{stderr}");
}
