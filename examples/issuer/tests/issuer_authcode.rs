//! The example issuer's OAuth 2.1 user flow over real sockets: the login-and-consent page,
//! authorization codes with PKCE, refresh-token rotation, dynamic client registration, and
//! every refusal: wrong or missing verifier, `plain`, code replay (revokes what the code
//! issued), expired code, redirect URI mismatch, refresh-token reuse (revokes the family).
//! The page in a real browser is `tests/issuer_browser.rs`.

use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;
use issuer_server::{
    ALICE_PASSWORD, API, APP, OTHER_API, OTHER_REDIRECT, REDIRECT, Reply, Server, authorize_query,
    callback_query, challenge, new_verifier, query_value,
};
use oauth::urlencode;

use std::sync::Arc;
use std::time::Duration;

use bearer_guard::revocation::{MemoryRevocations, Revocations};
use bearer_guard::{ErrorKind, KeySet, Validator, token::Audience};
use http::{StatusCode, header};
use serde_json::json;

/// The issuer revoking into a store this test can give a validator.
async fn start() -> (Server, Arc<MemoryRevocations>) {
    let store = Arc::new(MemoryRevocations::new());
    let revocations: Arc<dyn Revocations> = store.clone();
    let server = Server::start_with(|config| config.revocations = Some(revocations)).await;
    (server, store)
}

/// A validator for [`API`] with the served keys, asking `store` on every request.
async fn validator(server: &Server, store: Arc<MemoryRevocations>) -> Validator {
    let jwks = server.get("/.well-known/jwks.json").await;
    Validator::builder()
        .issuer(server.iss())
        .audience(API)
        .keys(KeySet::from_jwks_json(&jwks.body).expect("jwks"))
        .revocation(store)
        .revocation_memo(Duration::ZERO)
        .build()
        .expect("validator")
}

/// `GET /oauth/authorize?<query>`.
/// The authorization form submitted for `query` with alice's password, approving.
async fn approve_as_alice(server: &Server, query: &str) -> Reply {
    let form = format!(
        "{query}&username=alice&password={}&approve=yes",
        urlencode(ALICE_PASSWORD)
    );
    server.form_to("/oauth/authorize", &form).await
}

async fn page(server: &Server, query: &str) -> Reply {
    server.get(&format!("/oauth/authorize?{query}")).await
}

/// The redirect of a refused authorization request: (error, state).
fn redirect_error(reply: &Reply, redirect_uri: &str) -> (String, Option<String>) {
    let query = callback_query(&reply.location(), redirect_uri);
    (
        query_value(&query, "error").expect("error"),
        query_value(&query, "state"),
    )
}

fn assert_page_headers(reply: &Reply) {
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(header::X_FRAME_OPTIONS), Some("DENY"));
    let csp = reply
        .header(header::CONTENT_SECURITY_POLICY)
        .expect("Content-Security-Policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn the_whole_flow_issues_tokens_and_rotates_refresh_tokens() {
    let (server, store) = start().await;
    let verifier = new_verifier();
    let query = format!(
        "{}&scope=read+write",
        authorize_query(APP, REDIRECT, &challenge(&verifier), "xyz")
    );

    // The page: the client's name escaped, the request in hidden fields.
    let shown = page(&server, &query).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    assert_page_headers(&shown);
    let html = shown.text();
    assert!(html.contains("Test &lt;App&gt;"), "{html}");
    assert!(html.contains("name=\"code_challenge\""), "{html}");
    assert!(
        html.contains(&format!("value=\"{}\"", challenge(&verifier))),
        "{html}"
    );
    let csp = shown.header(header::CONTENT_SECURITY_POLICY).unwrap_or("");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9999"),
        "{csp}"
    );

    // The form, with alice's password: a redirect with code, state and iss (RFC 9207).
    let submitted = approve_as_alice(&server, &query).await;
    assert_eq!(submitted.header(header::CACHE_CONTROL), Some("no-store"));
    let callback = callback_query(&submitted.location(), REDIRECT);
    assert_eq!(query_value(&callback, "state").as_deref(), Some("xyz"));
    assert_eq!(query_value(&callback, "iss").as_deref(), Some(server.iss()));
    let code = query_value(&callback, "code").expect("code");
    assert_eq!(code.len(), 43, "256 random bits, base64url");

    // The code for tokens: an RFC 9068 access token for alice, by the app, for API.
    let reply = server.redeem(&code, &verifier).await;
    let (access, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read write");
    assert_eq!(reply.json()["expires_in"], 300);
    let validator = validator(&server, store.clone()).await;
    let claims = validator.validate_async(&access).await.expect("valid");
    assert_eq!(claims.subject(), Some("alice"));
    assert_eq!(claims.client_id(), Some(APP));
    assert_eq!(claims.aud, Audience::One(API.into()));
    assert_eq!(claims.scope.as_deref(), Some("read write"));

    // Rotation: each use gives a new refresh token; the old one is then spent.
    let (access2, refresh2) = server.refresh(&refresh).await.assert_tokens();
    assert_ne!(refresh2, refresh);
    validator.validate_async(&access2).await.expect("valid");
    // A narrower scope is fine, a wider one is not.
    let reply = server
        .form(&format!(
            "grant_type=refresh_token&client_id={APP}&refresh_token={}&scope=read",
            urlencode(&refresh2)
        ))
        .await;
    let (access3, refresh3) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read");
    server
        .form(&format!(
            "grant_type=refresh_token&client_id={APP}&refresh_token={}&scope=admin",
            urlencode(&refresh3)
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");

    // Reuse of a spent refresh token: refused, and the whole family is revoked: the newest
    // refresh token stops working, the family's access tokens are revoked.
    server
        .refresh(&refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    server
        .refresh(&refresh3)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    for token in [&access, &access2, &access3] {
        let err = validator.validate_async(token).await.expect_err("revoked");
        assert_eq!(err.kind(), ErrorKind::Revoked);
    }
    assert_eq!(store.len(), 3);

    // Another grant of the same user is another family: untouched.
    let (code, verifier) = server.code("").await;
    let (access, _) = server.redeem(&code, &verifier).await.assert_tokens();
    validator.validate_async(&access).await.expect("valid");
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_checked() {
    let (server, _) = start().await;
    let verifier = new_verifier();
    let good = challenge(&verifier);
    let base = format!(
        "response_type=code&client_id={APP}&redirect_uri={}&state=s",
        urlencode(REDIRECT)
    );
    // Refusals that go back to the client, state included.
    for query in [
        base.clone(),
        format!("{base}&code_challenge={good}"),
        format!("{base}&code_challenge={verifier}&code_challenge_method=plain"),
        format!("{base}&code_challenge=short&code_challenge_method=S256"),
        format!("{base}&code_challenge={good}&code_challenge_method=S256&code_challenge={good}"),
    ] {
        let (error, state) = redirect_error(&page(&server, &query).await, REDIRECT);
        assert_eq!(error, "invalid_request", "{query}");
        assert_eq!(state.as_deref(), Some("s"));
    }
    let query = authorize_query(APP, REDIRECT, &good, "s")
        .replace("response_type=code", "response_type=token");
    let (error, _) = redirect_error(&page(&server, &query).await, REDIRECT);
    assert_eq!(error, "unsupported_response_type");

    // At the token endpoint: a wrong verifier and a missing one are refused; the code is
    // still good for the right one (the binding is checked before the code is spent).
    let (code, verifier) = server.code("").await;
    let wrong = new_verifier();
    server
        .redeem(&code, &wrong)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    server
        .form(&format!(
            "grant_type=authorization_code&client_id={APP}&code={code}&redirect_uri={}",
            urlencode(REDIRECT)
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // The challenge itself is not a verifier.
    server
        .redeem(&code, &challenge(&verifier))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    server.redeem(&code, &verifier).await.assert_tokens();
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let (server, store) = start().await;
    let validator = validator(&server, store.clone()).await;
    let (code, verifier) = server.code("").await;
    let (access, refresh) = server.redeem(&code, &verifier).await.assert_tokens();
    validator.validate_async(&access).await.expect("valid");

    server
        .redeem(&code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let err = validator
        .validate_async(&access)
        .await
        .expect_err("revoked");
    assert_eq!(err.kind(), ErrorKind::Revoked);
    server
        .refresh(&refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server =
        Server::start_with(|config| config.code_lifetime = Duration::from_millis(200)).await;
    let (code, verifier) = server.code("").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    server
        .redeem(&code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // A fresh one, redeemed at once, works.
    let (code, verifier) = server.code("").await;
    server.redeem(&code, &verifier).await.assert_tokens();
}

#[tokio::test]
async fn client_and_redirect_uri_errors_are_shown_never_redirected() {
    let (server, _) = start().await;
    let good = challenge(&new_verifier());
    for query in [
        authorize_query(APP, "https://evil.test/cb", &good, "s"),
        authorize_query(APP, &format!("{REDIRECT}?x=1"), &good, "s"),
        authorize_query(APP, "http://127.0.0.1:9999/callback/", &good, "s"),
        authorize_query("nobody", REDIRECT, &good, "s"),
        // svc is confidential without redirect URIs: no code flow.
        authorize_query("svc", REDIRECT, &good, "s"),
        format!(
            "response_type=code&client_id={APP}&code_challenge={good}&code_challenge_method=S256"
        ),
    ] {
        let reply = page(&server, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.header(header::LOCATION).is_none(), "{query}");
        assert_page_headers(&reply);
    }

    // The other registered redirect URI works; a code must go back to its own.
    let verifier = new_verifier();
    let query = authorize_query(APP, OTHER_REDIRECT, &challenge(&verifier), "s");
    let location = approve_as_alice(&server, &query).await.location();
    let code = query_value(&callback_query(&location, OTHER_REDIRECT), "code").expect("code");
    server
        .redeem(&code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    server
        .form(&format!(
            "grant_type=authorization_code&client_id={APP}&code={code}&redirect_uri={}&code_verifier={verifier}",
            urlencode(OTHER_REDIRECT)
        ))
        .await
        .assert_tokens();
}

#[tokio::test]
async fn wrong_password_shows_the_page_again_and_deny_redirects_access_denied() {
    let (server, _) = start().await;
    let query = authorize_query(APP, REDIRECT, &challenge(&new_verifier()), "s");
    for (user, password) in [("alice", "wrong"), ("mallory", "anything"), ("alice", "")] {
        let reply = server
            .form_to(
                "/oauth/authorize",
                &format!("{query}&username={user}&password={password}&approve=yes"),
            )
            .await;
        assert!(reply.header(header::LOCATION).is_none(), "{}", reply.text());
        assert_page_headers(&reply);
        assert!(reply.text().contains("id=\"error\""), "{}", reply.text());
        assert!(reply.text().contains("name=\"code_challenge\""));
    }
    let reply = server
        .form_to(
            "/oauth/authorize",
            &format!(
                "{query}&username=alice&password={}&approve=no",
                urlencode(ALICE_PASSWORD)
            ),
        )
        .await;
    let (error, state) = redirect_error(&reply, REDIRECT);
    assert_eq!(error, "access_denied");
    assert_eq!(state.as_deref(), Some("s"));
}

#[tokio::test]
async fn reflected_values_are_escaped() {
    let (server, _) = start().await;
    let state = "\"><script>alert(1)</script>";
    let query = authorize_query(APP, REDIRECT, &challenge(&new_verifier()), state);
    let html = page(&server, &query).await.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    let reply = server
        .form_to(
            "/oauth/authorize",
            &format!("{query}&username=<b>x</b>&password=p&approve=yes"),
        )
        .await;
    assert!(!reply.text().contains("<b>x</b>"), "{}", reply.text());
    assert!(reply.text().contains("&lt;b&gt;x&lt;/b&gt;"));
}

#[tokio::test]
async fn resource_indicators_choose_the_audience() {
    let (server, _) = start().await;
    let (code, verifier) = server
        .code(&format!("&resource={}", urlencode(OTHER_API)))
        .await;
    let (access, _) = server.redeem(&code, &verifier).await.assert_tokens();
    assert_eq!(issuer_server::claims(&access)["aud"], OTHER_API);

    // A resource the client may not have: back to the client with invalid_target.
    let query = format!(
        "{}&resource={}",
        authorize_query(APP, REDIRECT, &challenge(&new_verifier()), "s"),
        urlencode("https://evil.test")
    );
    assert_eq!(
        redirect_error(&page(&server, &query).await, REDIRECT).0,
        "invalid_target"
    );
    // At the token endpoint, only a resource the code was issued for.
    let (code, verifier) = server.code("").await;
    server
        .form(&format!(
            "grant_type=authorization_code&client_id={APP}&code={code}&redirect_uri={}\
             &code_verifier={verifier}&resource={}",
            urlencode(REDIRECT),
            urlencode(OTHER_API)
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_target");
}

#[tokio::test]
async fn clients_register_themselves_and_use_the_flow() {
    let (server, _) = start().await;
    let register = |body: serde_json::Value| {
        server.post_to("/oauth/register", "application/json", body.to_string(), &[])
    };
    let redirect = "http://127.0.0.1:33333/callback";
    let reply = register(json!({
        "redirect_uris": [redirect],
        "client_name": "An <MCP> client",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "unknown_metadata": 1,
    }))
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.assert_no_store();
    let body = reply.json();
    let client_id = body["client_id"].as_str().expect("client_id").to_owned();
    assert!(client_id.starts_with("dyn-"), "{client_id}");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["redirect_uris"], json!([redirect]));
    assert_eq!(body["scope"], "read");

    // The flow, as that client.
    let verifier = new_verifier();
    let query = authorize_query(&client_id, redirect, &challenge(&verifier), "s");
    let html = page(&server, &query).await.text();
    assert!(html.contains("An &lt;MCP&gt; client"), "{html}");
    let location = approve_as_alice(&server, &query).await.location();
    let code = query_value(&callback_query(&location, redirect), "code").expect("code");
    // Bound to the client: the app cannot redeem it.
    server
        .form(&format!(
            "grant_type=authorization_code&client_id={APP}&code={code}&redirect_uri={}&code_verifier={verifier}",
            urlencode(redirect)
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let reply = server
        .form(&format!(
            "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={}&code_verifier={verifier}",
            urlencode(redirect)
        ))
        .await;
    reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read");

    // Refused registrations.
    for (body, error) in [
        (
            json!({ "redirect_uris": ["http://app.test/cb"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": ["https://app.test/cb#x"] }),
            "invalid_redirect_uri",
        ),
        (json!({ "redirect_uris": [] }), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({ "redirect_uris": [redirect], "token_endpoint_auth_method": "client_secret_basic" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [redirect], "grant_types": ["client_credentials"] }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [redirect], "scope": "write" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": "not-a-list" }),
            "invalid_client_metadata",
        ),
    ] {
        register(body.clone())
            .await
            .assert_error(StatusCode::BAD_REQUEST, error);
    }
}

/// Step-up (MCP): a client registered with the scope of a first 401 may ask, later, for more
/// of the `[registration]` table (its user consents to what it asks), never for a scope
/// outside it.
#[tokio::test]
async fn a_registered_client_may_step_up_to_any_scope_of_the_registration_table() {
    let clients = issuer_server::clients_toml();
    let table = "[registration]\nscopes = [\"read\"]";
    assert!(clients.contains(table), "{clients}");
    let clients = clients.replace(table, "[registration]\nscopes = [\"read\", \"write\"]");
    let server = Server::start_full(
        clients,
        bearer_guard_issuer::SigningKey::generate(None).expect("key"),
        |_| {},
    )
    .await;
    let redirect = "http://127.0.0.1:33333/callback";
    let register = |scope: &str| {
        let body = json!({ "redirect_uris": [redirect], "scope": scope });
        server.post_to("/oauth/register", "application/json", body.to_string(), &[])
    };
    // Registered with `read` (what a first 401 named): the server lets it use the table.
    let reply = register("read").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["scope"], "read write");
    let client_id = reply.json()["client_id"].as_str().expect("id").to_owned();

    // (scope asked, scope consented to and granted): none asked gives what it registered
    // with; the step-up asks for the union.
    for (asked, granted) in [(None, "read"), (Some("read write"), "read write")] {
        let verifier = new_verifier();
        let mut query = authorize_query(&client_id, redirect, &challenge(&verifier), "s");
        if let Some(asked) = asked {
            query.push_str(&format!("&scope={}", urlencode(asked)));
        }
        let html = page(&server, &query).await.text();
        let shown: Vec<&str> = granted.split(' ').collect();
        for scope in ["read", "write"] {
            let on_page = html.contains(&format!("<li class=\"scope\"><code>{scope}</code>"));
            assert_eq!(
                on_page,
                shown.contains(&scope),
                "{scope} on the page: {html}"
            );
        }
        let location = approve_as_alice(&server, &query).await.location();
        let code = query_value(&callback_query(&location, redirect), "code").expect("code");
        let reply = server
            .form(&format!(
                "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={}&code_verifier={verifier}",
                urlencode(redirect)
            ))
            .await;
        reply.assert_tokens();
        assert_eq!(reply.json()["scope"], granted, "{asked:?}");
    }

    // Outside the table: refused at the authorization endpoint and at registration.
    let verifier = new_verifier();
    let query = format!(
        "{}&scope={}",
        authorize_query(&client_id, redirect, &challenge(&verifier), "s"),
        urlencode("read admin")
    );
    let (error, state) = redirect_error(&page(&server, &query).await, redirect);
    assert_eq!(
        (error.as_str(), state.as_deref()),
        ("invalid_scope", Some("s"))
    );
    register("read admin")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_client_metadata");
}

/// Security events are logged, and nothing secret is: no password, code, verifier or token.
#[tokio::test]
async fn security_events_are_logged_without_secrets() {
    // One global subscriber, capturing this thread (the runtime's only one).
    let logs = bearer_guard::testkit::logs::capture();
    let (server, _) = start().await;
    let mut secrets: Vec<String> = vec![ALICE_PASSWORD.into(), "wrong-password-123".into()];

    let query = authorize_query(APP, REDIRECT, &challenge(&new_verifier()), "s");
    server
        .form_to(
            "/oauth/authorize",
            &format!("{query}&username=alice&password=wrong-password-123&approve=yes"),
        )
        .await;
    let (code, verifier) = server.code("").await;
    let wrong = new_verifier();
    server.redeem(&code, &wrong).await;
    let (access, refresh) = server.redeem(&code, &verifier).await.assert_tokens();
    server.redeem(&code, &verifier).await;
    let (code2, verifier2) = server.code("").await;
    let (access2, refresh2) = server.redeem(&code2, &verifier2).await.assert_tokens();
    let (access3, refresh3) = server.refresh(&refresh2).await.assert_tokens();
    server.refresh(&refresh2).await;
    secrets.extend([
        code, verifier, wrong, access, refresh, code2, verifier2, access2, refresh2, access3,
        refresh3,
    ]);
    // The second factor: a wrong code, then the right one; neither, nor the ticket, logged.
    let query = format!(
        "{}&acr_values={}",
        authorize_query(APP, REDIRECT, &challenge(&new_verifier()), "s"),
        urlencode(issuer_server::ACR_MFA)
    );
    let first = approve_as_alice(&server, &query).await;
    let ticket = issuer_server::sign_in_ticket(&first.text()).expect("ticket");
    for code in ["864209", issuer_server::ALICE_CODE] {
        server
            .form_to(
                "/oauth/authorize",
                &format!(
                    "{query}&login={}&otp={code}&approve=yes",
                    urlencode(&ticket)
                ),
            )
            .await;
    }
    secrets.push(ticket);

    let text = logs.text();
    for event in [
        "login_failure",
        "second_factor_failure",
        "pkce_failure",
        "code_replay",
        "refresh_reuse",
    ] {
        assert!(
            text.contains(&format!("event=\"{event}\"")),
            "no {event}:\n{text}"
        );
    }
    assert!(text.contains("issuer::security"), "{text}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "logged a secret:\n{text}");
    }
    // The codes are short: looked for without the lines' timestamps, whose digits could
    // hold them by chance.
    let untimed: Vec<&str> = text
        .lines()
        .map(|line| line.split_once(' ').map_or(line, |(_, rest)| rest))
        .collect();
    for code in ["864209", issuer_server::ALICE_CODE] {
        assert!(
            !untimed.iter().any(|line| line.contains(code)),
            "logged a code:\n{text}"
        );
    }
}

/// RFC 6749 §6: a refresh request with a narrower `scope` narrows the access token only; the
/// rotated refresh token keeps the scope of the one presented.
#[tokio::test]
async fn a_narrower_refresh_narrows_the_access_token_not_the_refresh_token() {
    let (server, _) = start().await;
    let refresh_with = async |refresh: &str, scope: Option<&str>| {
        let scope = scope.map(|s| format!("&scope={}", urlencode(s)));
        server
            .form(&format!(
                "grant_type=refresh_token&client_id={APP}&refresh_token={}{}",
                urlencode(refresh),
                scope.unwrap_or_default()
            ))
            .await
    };
    let (code, verifier) = server.code("&scope=read+write").await;
    let reply = server.redeem(&code, &verifier).await;
    let (_, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read write");

    // Narrower: the access token has `read` only.
    let reply = refresh_with(&refresh, Some("read")).await;
    let (access, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read");
    assert_eq!(issuer_server::claims(&access)["scope"], "read");

    // The new refresh token still carries `read write`: without scope, all of it ...
    let reply = refresh_with(&refresh, None).await;
    let (access, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read write");
    assert_eq!(issuer_server::claims(&access)["scope"], "read write");
    // ... and the scope dropped two refreshes ago can be asked for alone.
    let reply = refresh_with(&refresh, Some("read")).await;
    let (_, refresh) = reply.assert_tokens();
    let reply = refresh_with(&refresh, Some("write")).await;
    let (access, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "write");
    assert_eq!(issuer_server::claims(&access)["scope"], "write");
    // Never more than the original grant.
    refresh_with(&refresh, Some("read write admin"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
}

/// RFC 8252 §7.3: a registered `http://127.0.0.1:{port}` or `http://[::1]:{port}` redirect
/// URI matches any port; everything else must match exactly, and a mismatch is shown on a
/// page, never redirected.
#[tokio::test]
async fn loopback_redirect_uris_match_any_port_and_nothing_else() {
    let (server, _) = start().await;
    // The flow through the page with `redirect_uri`, for `client_id`: the code, and the
    // verifier.
    let flow = async |client_id: &str, redirect_uri: &str| {
        let verifier = new_verifier();
        let query = authorize_query(client_id, redirect_uri, &challenge(&verifier), "s");
        let shown = page(&server, &query).await;
        assert_eq!(
            shown.status,
            StatusCode::OK,
            "{redirect_uri}: {}",
            shown.text()
        );
        let origin = redirect_uri
            .split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        let csp = shown.header(header::CONTENT_SECURITY_POLICY).unwrap_or("");
        assert!(
            csp.contains(&format!("form-action 'self' {origin}")),
            "{csp}"
        );
        let location = approve_as_alice(&server, &query).await.location();
        let callback = callback_query(&location, redirect_uri);
        assert_eq!(query_value(&callback, "state").as_deref(), Some("s"));
        (query_value(&callback, "code").expect("code"), verifier)
    };
    let redeem = async |client_id: &str, code: &str, redirect_uri: &str, verifier: &str| {
        server
            .form(&format!(
                "grant_type=authorization_code&client_id={client_id}&code={code}\
                 &redirect_uri={}&code_verifier={verifier}",
                urlencode(redirect_uri)
            ))
            .await
    };
    let refused = async |client_id: &str, redirect_uri: &str| {
        let query = authorize_query(client_id, redirect_uri, &challenge(&new_verifier()), "s");
        let reply = page(&server, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{redirect_uri}");
        assert!(reply.header(header::LOCATION).is_none(), "{redirect_uri}");
        assert_page_headers(&reply);
        // The form's answer is refused the same way.
        let reply = approve_as_alice(&server, &query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{redirect_uri}");
        assert!(reply.header(header::LOCATION).is_none(), "{redirect_uri}");
    };

    // The app registered http://127.0.0.1:9999/callback: another port works, and the code
    // is bound to the redirect URI actually used.
    assert_eq!(REDIRECT, "http://127.0.0.1:9999/callback");
    let other_port = "http://127.0.0.1:51234/callback";
    let (code, verifier) = flow(APP, other_port).await;
    redeem(APP, &code, REDIRECT, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    redeem(APP, &code, other_port, &verifier)
        .await
        .assert_tokens();
    // The registered port itself still works.
    let (code, verifier) = flow(APP, REDIRECT).await;
    redeem(APP, &code, REDIRECT, &verifier)
        .await
        .assert_tokens();

    // Only the port may differ.
    for uri in [
        "http://127.0.0.1:51234/other",
        "http://127.0.0.1:51234/callback/",
        "http://127.0.0.1:51234/callback?x=1",
        "http://127.0.0.1:51234/Callback",
        "https://127.0.0.1:51234/callback",
        "HTTP://127.0.0.1:51234/callback",
        "http://localhost:51234/callback",
        "http://127.0.0.2:51234/callback",
        "http://127.1:51234/callback",
        "http://2130706433:51234/callback",
        "http://[::1]:51234/callback",
        "http://127.0.0.1:051234/callback",
        "http://127.0.0.1:99999/callback",
        "http://127.0.0.1:/callback",
        "http://127.0.0.1:51234@evil.test/callback",
        "http://127.0.0.1:51234.evil.test/callback",
        // Not loopback: the port is part of the match.
        "https://app.test:8443/cb",
    ] {
        refused(APP, uri).await;
    }

    // A client registered with an [::1] redirect URI, likewise.
    let registered = "http://[::1]:8080/cb";
    let reply = server
        .post_to(
            "/oauth/register",
            "application/json",
            json!({ "redirect_uris": [registered], "token_endpoint_auth_method": "none" })
                .to_string(),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let client_id = reply.json()["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let other_port = "http://[::1]:43210/cb";
    let (code, verifier) = flow(&client_id, other_port).await;
    redeem(&client_id, &code, other_port, &verifier)
        .await
        .assert_tokens();
    for uri in [
        "http://[::1]:43210/other",
        "https://[::1]:43210/cb",
        "http://127.0.0.1:43210/cb",
        "http://localhost:43210/cb",
        "http://[0:0:0:0:0:0:0:1]:43210/cb",
        "http://[::2]:43210/cb",
    ] {
        refused(&client_id, uri).await;
    }
}
