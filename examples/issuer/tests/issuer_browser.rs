//! The example issuer's login-and-consent page in a real browser: headless Chromium, driven
//! through chromedriver (W3C WebDriver). The test registers a public client whose redirect URI
//! is a listener of its own; the browser opens the authorization URL (asking for a second
//! factor), fills the form, submits it, enters the one-time code on the second step and
//! follows the redirect to that listener, which reads the code; the test exchanges it for
//! tokens. Chromium enforces the page's CSP: its `form-action` on that redirect, so a policy
//! that forgot the client's origin fails here, and its `style-src` hash, so a stylesheet the
//! policy does not admit leaves the page unstyled, which the test sees. A wrong password and
//! a wrong code show a visible message; at phone width the page is one column without
//! horizontal scrolling.
//!
//! With `BEARER_GUARD_SCREENSHOT_DIR` set, the sign-in page and the second step are saved
//! there as `login.png` and `second-factor.png` (the README's `docs/login.png` comes from
//! here: `BEARER_GUARD_SCREENSHOT_DIR=$PWD/docs cargo test -p bearer-guard-issuer --test
//! issuer_browser`).
//!
//! Skipped with a notice where Chromium is missing, unless `BEARER_GUARD_REQUIRE_BROWSER=1`
//! (CI sets it and installs `chromium` and `chromium-driver`).

use bearer_guard::testkit::redis as redis_server;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use oauth::urlencode;
#[path = "common/webdriver.rs"]
mod webdriver;
use issuer_server::{
    ACR_MFA, ALICE_CODE, ALICE_PASSWORD, Server, authorize_query, challenge, new_verifier,
    query_value,
};
use webdriver::Browser;

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_with_a_second_factor_and_consents_in_a_real_browser() {
    let Some(browser) = Browser::start(redis_server::free_port()).await else {
        return;
    };
    let server = Server::start().await;

    // The client's redirect URI: a listener of this test, which hands over the query.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let redirect = format!("http://{}/callback", listener.local_addr().expect("addr"));
    let (queries, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let callback = axum::Router::new().route(
        "/callback",
        get(move |RawQuery(query): RawQuery| {
            let _ = queries.send(query.unwrap_or_default());
            async { "signed in" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, callback).await });

    let registered = server
        .post_to(
            "/oauth/register",
            "application/json",
            json!({ "redirect_uris": [redirect], "client_name": "Browser test" }).to_string(),
            &[],
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let client_id = registered.json()["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();

    // The browser: open the page (a sign-in with a second factor)...
    let verifier = new_verifier();
    let url = format!(
        "{}/oauth/authorize?{}&acr_values={}",
        server.base,
        authorize_query(
            &client_id,
            &redirect,
            &challenge(&verifier),
            "browser-state"
        ),
        urlencode(ACR_MFA)
    );
    browser.wait_for_elements(Duration::from_secs(20)).await;
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await;
    browser.goto(&url).await;
    let client = browser.find("#client").await;
    assert_eq!(browser.text(&client).await, "Browser test");
    assert_styled_and_stacked(&browser).await;
    let scope = browser.find("#scopes li span").await;
    assert_eq!(browser.text(&scope).await, "Read your data");
    let resource = browser.find("#resources li .name").await;
    assert_eq!(browser.text(&resource).await, "The API at api.test");
    browser.find("#second-factor-note").await;
    let username = browser.find("#username").await;
    browser.type_into(&username, "alice").await;
    save_screenshot("login.png", &browser.screenshot().await);
    assert_fits_a_phone(&browser).await;

    // ... a wrong password: the page again, with a message a person sees ...
    let password = browser.find("#password").await;
    browser.type_into(&password, "not-her-password").await;
    browser.click(&browser.find("#approve").await).await;
    assert_visible_error(&browser, "Wrong username or password.").await;

    // ... the right one (the username is kept) ...
    let password = browser.find("#password").await;
    browser.type_into(&password, ALICE_PASSWORD).await;
    browser.click(&browser.find("#approve").await).await;

    // ... the second step: her code, a wrong one first.
    let otp = browser.find("#otp").await;
    let user = browser.find("#user").await;
    assert_eq!(browser.text(&user).await, "alice");
    assert_styled_and_stacked(&browser).await;
    save_screenshot("second-factor.png", &browser.screenshot().await);
    browser.type_into(&otp, "000000").await;
    browser.click(&browser.find("#verify").await).await;
    assert_visible_error(&browser, "That code is not right.").await;
    let otp = browser.find("#otp").await;
    browser.type_into(&otp, ALICE_CODE).await;
    browser.click(&browser.find("#verify").await).await;

    // The redirect reaches the listener (the page's CSP allows the form to go there).
    let query = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("the browser never reached the redirect URI")
        .expect("query");
    assert_eq!(
        query_value(&query, "state").as_deref(),
        Some("browser-state")
    );
    assert_eq!(query_value(&query, "iss").as_deref(), Some(server.iss()));
    let code = query_value(&query, "code").expect("code");
    let landed = browser.current_url().await;
    assert!(landed.starts_with(&format!("{redirect}?")), "{landed}");
    browser.quit().await;

    let reply = server
        .form(&format!(
            "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={}\
             &code_verifier={verifier}",
            urlencode(&redirect)
        ))
        .await;
    let (access, _refresh) = reply.assert_tokens();
    let claims = issuer_server::claims(&access);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["acr"], ACR_MFA);
}

/// The page's stylesheet applies (the CSP admits it: unstyled, the button would be the
/// browser's grey), and the fields are stacked, one under the other, as wide as each other.
async fn assert_styled_and_stacked(browser: &Browser) {
    let primary = browser.find("button.primary").await;
    assert_eq!(
        rgb(&browser.css(&primary, "background-color").await),
        [36, 83, 212],
        "the stylesheet does not apply: is its hash in the CSP?"
    );
    let fields = browser
        .execute(
            "return [...document.querySelectorAll('.field input')].map(e => {\
             const r = e.getBoundingClientRect(); return [r.top, r.bottom, r.width]; });",
        )
        .await;
    let fields = fields.as_array().expect("fields");
    assert!(!fields.is_empty());
    for pair in fields.windows(2) {
        let (above, below) = (&pair[0], &pair[1]);
        assert!(
            below[0].as_f64() >= above[1].as_f64(),
            "not stacked: {fields:?}"
        );
        assert_eq!(below[2], above[2], "not as wide: {fields:?}");
    }
}

/// At phone width (390 CSS pixels), nothing scrolls sideways, the fields take the width, and
/// the buttons are stacked. The window is set back afterwards.
async fn assert_fits_a_phone(browser: &Browser) {
    browser.set_window_size(390, 844).await;
    let layout = browser
        .execute(
            "const w = document.documentElement.clientWidth;\
             const r = id => document.getElementById(id).getBoundingClientRect();\
             return { width: w, scroll: document.documentElement.scrollWidth,\
             field: r('username').width, approve: r('approve').top, deny: r('deny').top };",
        )
        .await;
    let n = |k: &str| {
        layout[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {layout}"))
    };
    assert!(n("width") <= 390.0, "{layout}");
    assert!(n("scroll") <= n("width"), "scrolls sideways: {layout}");
    assert!(n("field") >= n("width") - 48.0, "narrow fields: {layout}");
    assert!(n("approve") < n("deny"), "buttons side by side: {layout}");
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await;
}

/// The window of the screenshots: the whole sign-in page fits.
const DESKTOP: (u32, u32) = (960, 1200);

/// The page shows `message` in its alert, visibly, and marks its fields invalid.
async fn assert_visible_error(browser: &Browser, message: &str) {
    let error = browser.find("#error").await;
    assert!(
        browser.text(&error).await.contains(message),
        "{}",
        browser.text(&error).await
    );
    let (_, _, width, height) = browser.rect(&error).await;
    assert!(width > 100.0 && height > 20.0, "{width}x{height}");
    assert_eq!(browser.css(&error, "display").await, "flex");
    let invalid = browser.find("input[aria-invalid=true]").await;
    assert_eq!(
        rgb(&browser.css(&invalid, "border-top-color").await),
        [210, 59, 59]
    );
}

/// The red, green and blue of a computed colour, `rgb(..)` or `rgba(..)`.
fn rgb(colour: &str) -> [u8; 3] {
    let parts: Vec<u8> = colour
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|p| {
            p.trim()
                .parse()
                .unwrap_or_else(|_| panic!("a colour: {colour}"))
        })
        .collect();
    parts
        .try_into()
        .unwrap_or_else(|_| panic!("a colour: {colour}"))
}

/// Saves a screenshot under `BEARER_GUARD_SCREENSHOT_DIR`, when it is set (the README's).
fn save_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if let Some(dir) = std::env::var_os("BEARER_GUARD_SCREENSHOT_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(name), png).expect("write the screenshot");
    }
}
