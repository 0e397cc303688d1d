//! A small W3C WebDriver client for a headless Chromium driven by `chromedriver` (Debian's
//! `chromium` and `chromium-driver` packages): start the driver, open a session, navigate,
//! find elements, type, click, read the URL, an element's computed style and box, the
//! window's size, screenshots. The driver is killed and the browser profile removed on drop.
//!
//! [`Browser::start`] returns `None` (after a loud notice) when either binary is missing,
//! unless `BEARER_GUARD_REQUIRE_BROWSER=1`, where a missing browser fails the test.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Browser {
    /// Starts chromedriver on `port` and a headless Chromium session.
    pub async fn start(port: u16) -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var("BEARER_GUARD_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "{CHROMIUM} or {CHROMEDRIVER} is missing and BEARER_GUARD_REQUIRE_BROWSER=1 \
                 (apt-get install chromium chromium-driver)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n## SKIPPED: the browser test needs {CHROMIUM} and {CHROMEDRIVER} \
                 (apt-get install chromium chromium-driver); it did NOT run.\n"
            );
            return None;
        }
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile = std::env::temp_dir().join(format!(
            "bearer-guard-chromium-{}-{port}",
            std::process::id()
        ));
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        for attempt in 0.. {
            let ready = browser.call(Method::GET, "/status", None).await;
            if ready.is_ok_and(|status| status["value"]["ready"] == true) {
                break;
            }
            assert!(attempt < 200, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", browser.profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let session = browser
            .call(Method::POST, "/session", Some(capabilities))
            .await
            .expect("new session");
        browser.session = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Some(browser)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(60), async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(body.to_bytes())
        })
        .await
        .map_err(|_| "WebDriver timeout".to_owned())??;
        let value: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
        match value["value"].get("error") {
            Some(error) => Err(format!(
                "WebDriver error {error}: {}",
                value["value"]["message"]
            )),
            None => Ok(value),
        }
    }

    async fn session_call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.session_call(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        let value = self.session_call(Method::GET, "/url", None).await;
        value["value"].as_str().expect("url").to_owned()
    }

    /// The element matching a CSS selector.
    pub async fn find(&self, css: &str) -> String {
        let value = self
            .session_call(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        value["value"][ELEMENT]
            .as_str()
            .expect("element")
            .to_owned()
    }

    pub async fn text(&self, element: &str) -> String {
        let value = self
            .session_call(Method::GET, &format!("/element/{element}/text"), None)
            .await;
        value["value"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.session_call(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, element: &str) {
        self.session_call(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clears a text field.
    pub async fn clear(&self, element: &str) {
        self.session_call(
            Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
    }

    /// How long finding an element waits for it to appear (W3C implicit wait): a page the
    /// browser is still loading after a click is waited for, not slept on.
    pub async fn wait_for_elements(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.session_call(Method::POST, "/timeouts", Some(json!({ "implicit": ms })))
            .await;
    }

    /// The computed value of a CSS `property` of an element (`rgb(..)` for colours).
    pub async fn css(&self, element: &str, property: &str) -> String {
        let value = self
            .session_call(
                Method::GET,
                &format!("/element/{element}/css/{property}"),
                None,
            )
            .await;
        value["value"].as_str().unwrap_or_default().to_owned()
    }

    /// An element's box in CSS pixels: (x, y, width, height).
    pub async fn rect(&self, element: &str) -> (f64, f64, f64, f64) {
        let value = self
            .session_call(Method::GET, &format!("/element/{element}/rect"), None)
            .await;
        let n = |k: &str| value["value"][k].as_f64().expect("a number");
        (n("x"), n("y"), n("width"), n("height"))
    }

    /// Sets the window's outer size in CSS pixels.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.session_call(
            Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Runs `script` (a function body) in the page and returns its value. Runs through the
    /// driver: the page's CSP, which allows no script, does not apply to it.
    pub async fn execute(&self, script: &str) -> Value {
        let value = self
            .session_call(
                Method::POST,
                "/execute/sync",
                Some(json!({ "script": script, "args": [] })),
            )
            .await;
        value["value"].clone()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let value = self.session_call(Method::GET, "/screenshot", None).await;
        let png = value["value"].as_str().expect("base64 PNG");
        base64::engine::general_purpose::STANDARD
            .decode(png)
            .expect("base64")
    }

    /// Ends the session (the browser exits).
    pub async fn quit(mut self) {
        let path = format!("/session/{}", std::mem::take(&mut self.session));
        let _ = self.call(Method::DELETE, &path, None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
