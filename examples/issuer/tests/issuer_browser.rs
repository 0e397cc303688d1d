//! The example issuer's login-and-consent page in a real browser: headless Chromium, driven
//! through chromedriver (W3C WebDriver). The test registers a public client whose redirect URI
//! is a listener of its own; the browser opens the authorization URL, fills the form, submits
//! it and follows the redirect to that listener, which reads the code; the test exchanges it
//! for tokens. Chromium enforces the page's `form-action` on that redirect, so a policy that
//! forgot the client's origin fails here.
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
    ALICE_PASSWORD, Server, authorize_query, challenge, new_verifier, query_value,
};
use webdriver::Browser;

use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_and_consents_in_a_real_browser() {
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

    // The browser: open the page, fill the form, submit.
    let verifier = new_verifier();
    let url = format!(
        "{}/oauth/authorize?{}",
        server.base,
        authorize_query(
            &client_id,
            &redirect,
            &challenge(&verifier),
            "browser-state"
        )
    );
    browser.goto(&url).await;
    let client = browser.find("#client").await;
    assert_eq!(browser.text(&client).await, "Browser test");
    let username = browser.find("#username").await;
    browser.type_into(&username, "alice").await;
    let password = browser.find("#password").await;
    browser.type_into(&password, ALICE_PASSWORD).await;
    let approve = browser.find("#approve").await;
    browser.click(&approve).await;

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
}
