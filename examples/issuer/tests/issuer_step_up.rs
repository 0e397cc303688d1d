//! Authentication strength at the example issuer (RFC 9470; OpenID Connect `acr_values` and
//! `max_age`): a sign-in with the password is `urn:bearer-guard:acr:pwd`; asking for
//! `urn:bearer-guard:acr:mfa` adds a second step, the user's one-time code, and the tokens of
//! the code say which was achieved and when (`acr`, `auth_time`), refreshed ones too. The
//! second step's ticket is single-use and bound to its request; a wrong code shows the page
//! again with a message; a user without a second factor cannot get `mfa`.

use bearer_guard_issuer::TokenFormat;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth::urlencode;
use issuer_server::{
    ACR_MFA, ACR_PASSWORD, ALICE_CODE, ALICE_PASSWORD, APP, BOB_PASSWORD, REDIRECT, RS_SECRET,
    Reply, Server, authorize_query, callback_query, challenge, claims, new_verifier, query_value,
    sign_in_ticket,
};

use std::time::{SystemTime, UNIX_EPOCH};

use http::{StatusCode, header};
use serde_json::json;

/// Seconds since the epoch, as the issuer counts them.
fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_secs()).expect("in range")
}

/// An authorization request of [`APP`] with `extra` parameters, and its verifier.
fn request(extra: &str) -> (String, String) {
    let verifier = new_verifier();
    let query = format!(
        "{}{extra}",
        authorize_query(APP, REDIRECT, &challenge(&verifier), "st")
    );
    (query, verifier)
}

/// `query` asking for the second factor.
fn mfa(extra: &str) -> (String, String) {
    request(&format!("&acr_values={}{extra}", urlencode(ACR_MFA)))
}

/// The first step's form for `query` with `user`'s `password`.
async fn first_step(server: &Server, query: &str, user: &str, password: &str) -> Reply {
    server
        .form_to(
            "/oauth/authorize",
            &format!(
                "{query}&username={user}&password={}&approve=yes",
                urlencode(password)
            ),
        )
        .await
}

/// The second step's form for `query` with `ticket` and `code`.
async fn second_step(server: &Server, query: &str, ticket: &str, code: &str) -> Reply {
    server
        .form_to(
            "/oauth/authorize",
            &format!(
                "{query}&login={}&otp={}&approve=yes",
                urlencode(ticket),
                urlencode(code)
            ),
        )
        .await
}

/// The access and refresh tokens for the redirect `query` of a sign-in.
async fn tokens(server: &Server, callback: &str, verifier: &str) -> (String, String) {
    let code = query_value(callback, "code").unwrap_or_else(|| panic!("no code: {callback}"));
    server.redeem(&code, verifier).await.assert_tokens()
}

#[tokio::test]
async fn metadata_advertises_the_acr_values_it_achieves() {
    let server = Server::start().await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        metadata.json()["acr_values_supported"],
        json!([ACR_PASSWORD, ACR_MFA])
    );
}

#[tokio::test]
async fn a_password_sign_in_is_pwd_with_its_time_and_client_credentials_have_neither() {
    let server = Server::start().await;
    let before = now();
    let (code, verifier) = server.code("").await;
    let (access, _) = server.redeem(&code, &verifier).await.assert_tokens();
    let after = now();
    let signed_in = claims(&access);
    assert_eq!(signed_in["acr"], ACR_PASSWORD);
    let auth_time = signed_in["auth_time"].as_i64().expect("auth_time");
    assert!((before..=after).contains(&auth_time), "{signed_in}");

    let service = claims(&server.token("svc", issuer_server::SVC_SECRET).await);
    assert!(service.get("acr").is_none() && service.get("auth_time").is_none());
    // Asking for the password only, or for something unknown first: no second step.
    for extra in [
        format!(
            "&acr_values={}",
            urlencode(&format!("{ACR_PASSWORD} {ACR_MFA}"))
        ),
        format!("&acr_values={}", urlencode("urn:unknown")),
    ] {
        let (query, verifier) = request(&extra);
        let reply = first_step(&server, &query, "alice", ALICE_PASSWORD).await;
        let callback = callback_query(&reply.location(), REDIRECT);
        let (access, _) = tokens(&server, &callback, &verifier).await;
        assert_eq!(claims(&access)["acr"], ACR_PASSWORD, "{extra}");
    }
}

#[tokio::test]
async fn mfa_asks_for_the_code_after_the_password_and_its_tokens_say_so() {
    let server = Server::start().await;
    let (query, verifier) = mfa("");

    // The first page says a code will follow.
    let page = server.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("id=\"second-factor-note\""),
        "{}",
        page.text()
    );

    // The password: no redirect yet, the second step's page.
    let before = now();
    let first = first_step(&server, &query, "alice", ALICE_PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(first.header(header::LOCATION).is_none());
    assert_eq!(first.header(header::CACHE_CONTROL), Some("no-store"));
    let html = first.text();
    assert!(
        html.contains("<label for=\"otp\">One-time code</label>"),
        "{html}"
    );
    assert!(
        html.contains("<strong id=\"user\">alice</strong>"),
        "{html}"
    );
    assert!(!html.contains("id=\"error\""), "{html}");
    let ticket = sign_in_ticket(&html).expect("ticket");

    // A wrong code: the page again, with a visible message; no code for the client.
    for wrong in ["000000", "271829"] {
        let reply = second_step(&server, &query, &ticket, wrong).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.header(header::LOCATION).is_none());
        let html = reply.text();
        assert!(
            html.contains("<div id=\"error\" class=\"alert\" role=\"alert\">"),
            "{html}"
        );
        assert!(html.contains("That code is not right"), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert_eq!(sign_in_ticket(&html).as_deref(), Some(ticket.as_str()));
    }
    // No code at all: asked for it.
    let reply = server
        .form_to(
            "/oauth/authorize",
            &format!("{query}&login={}&approve=yes", urlencode(&ticket)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("id=\"error\""));

    // The right code: the redirect with a code whose tokens are `mfa`, from now.
    let reply = second_step(&server, &query, &ticket, ALICE_CODE).await;
    let after = now();
    let callback = callback_query(&reply.location(), REDIRECT);
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st"));
    let (access, refresh) = tokens(&server, &callback, &verifier).await;
    let signed_in = claims(&access);
    assert_eq!(signed_in["acr"], ACR_MFA);
    let auth_time = signed_in["auth_time"].as_i64().expect("auth_time");
    assert!((before..=after).contains(&auth_time), "{signed_in}");

    // A refreshed access token keeps the sign-in's `acr` and `auth_time`.
    let (refreshed, _) = server.refresh(&refresh).await.assert_tokens();
    let refreshed = claims(&refreshed);
    assert_eq!(refreshed["acr"], ACR_MFA);
    assert_eq!(refreshed["auth_time"], auth_time);
    assert_ne!(refreshed["jti"], signed_in["jti"]);

    // The ticket signed in once: used again, the user must start over.
    let reply = second_step(&server, &query, &ticket, ALICE_CODE).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.header(header::LOCATION).is_none());
    assert!(
        reply.text().contains("Your sign-in has expired"),
        "{}",
        reply.text()
    );
    assert!(sign_in_ticket(&reply.text()).is_none());
}

#[tokio::test]
async fn a_ticket_is_good_for_its_own_request_only_and_a_made_up_one_for_none() {
    let server = Server::start().await;
    let (query, _) = mfa("");
    let first = first_step(&server, &query, "alice", ALICE_PASSWORD).await;
    let ticket = sign_in_ticket(&first.text()).expect("ticket");
    // Another request (another PKCE challenge) cannot finish this sign-in.
    let (other, _) = mfa("");
    for (query, ticket) in [(&other, ticket.as_str()), (&query, "made-up")] {
        let reply = second_step(&server, query, ticket, ALICE_CODE).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{ticket}");
        assert!(reply.header(header::LOCATION).is_none());
        assert!(reply.text().contains("Your sign-in has expired"));
    }
    // Its own still can.
    let reply = second_step(&server, &query, &ticket, ALICE_CODE).await;
    assert!(callback_query(&reply.location(), REDIRECT).contains("code="));
}

#[tokio::test]
async fn a_user_without_a_second_factor_cannot_get_mfa() {
    let server = Server::start().await;
    let (query, _) = mfa("");
    let reply = first_step(&server, &query, "bob", BOB_PASSWORD).await;
    let callback = callback_query(&reply.location(), REDIRECT);
    assert_eq!(
        query_value(&callback, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st"));
    assert!(query_value(&callback, "code").is_none());
    // A wrong password is still a wrong password.
    let reply = first_step(&server, &query, "bob", "nope").await;
    assert!(reply.header(header::LOCATION).is_none());
    assert!(reply.text().contains("Wrong username or password."));
}

#[tokio::test]
async fn max_age_is_a_number_of_seconds_and_every_sign_in_meets_it() {
    let server = Server::start().await;
    for bad in ["-1", "abc", "1.5", "+3", "99999999999999999999"] {
        let (query, _) = request(&format!("&max_age={}", urlencode(bad)));
        let reply = server.get(&format!("/oauth/authorize?{query}")).await;
        let callback = callback_query(&reply.location(), REDIRECT);
        assert_eq!(
            query_value(&callback, "error").as_deref(),
            Some("invalid_request"),
            "{bad}"
        );
    }
    // `max_age=0`: the user signs in now, as always; with `mfa` too.
    let (query, verifier) = mfa("&max_age=0");
    let callback = server.sign_in_with_code(&query).await;
    let (access, _) = tokens(&server, &callback, &verifier).await;
    let signed_in = claims(&access);
    assert_eq!(signed_in["acr"], ACR_MFA);
    assert!(signed_in["auth_time"].as_i64().is_some_and(|t| t <= now()));
}

#[tokio::test]
async fn opaque_tokens_state_the_sign_in_through_introspection() {
    let server = Server::start_with(|config| config.token_format = TokenFormat::Opaque).await;
    let (query, verifier) = mfa("");
    let callback = server.sign_in_with_code(&query).await;
    let (access, _) = tokens(&server, &callback, &verifier).await;
    let answer = server.introspect("rs", RS_SECRET, &access).await.json();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["acr"], ACR_MFA, "{answer}");
    assert!(answer["auth_time"].is_i64(), "{answer}");
}
