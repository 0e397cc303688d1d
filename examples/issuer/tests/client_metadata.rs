//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document) at the example
//! issuer: a `client_id` that is an `https` URL, its document served over https by a server
//! whose certificate a test CA signed (`CLIENT_METADATA_CA_FILE`), on loopback
//! (`CLIENT_METADATA_ALLOW_LOOPBACK`). The whole code flow with PKCE, and every refusal: a
//! mismatched `client_id`, an unlisted `redirect_uri`, a non-https URL, user info, a fragment,
//! dot segments, private and loopback addresses, a redirect, an oversized document, a non-JSON
//! content type, secrets and bad keys in the document; and caching by `Cache-Control`. A
//! document with a `jwks_uri` or `jwks` is a confidential client: its token requests need a
//! `private_key_jwt` assertion by one of those keys, and its key set must be usable at the
//! authorization endpoint already. Every refusal is an error page, never a redirect; the
//! document server counts its fetches.

use std::collections::HashMap;

use bearer_guard::token::Audience;
use bearer_guard_issuer::testing::oauth::urlencode;
use bearer_guard_issuer::testing::{
    self as issuer_server, ALICE_PASSWORD, API, Reply, Server, authorize_query, callback_query,
    challenge, new_verifier, query_value,
};
use bearer_guard_issuer::{Config, SigningKey};
use http::{StatusCode, header};
use serde_json::{Value, json};

#[path = "common/client_docs.rs"]
mod client_docs;
use client_docs::{CaFile, Canned, Docs, Signer, assertion_form, issuer_trusting, jwks};

/// The redirect URIs the test documents list.
const CB: &str = "http://127.0.0.1:7777/cb";
const OTHER_CB: &str = "https://client.test/cb";

/// A good document at `path`: its own URL as `client_id`, [`CB`] and [`OTHER_CB`].
trait Good {
    fn good(&self, path: &str, cache: &str) -> String;
}

impl Good for Docs {
    fn good(&self, path: &str, cache: &str) -> String {
        let url = self.url(path);
        self.json(path, &document(&url), cache);
        url
    }
}

fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Metadata <App>",
        "client_uri": "https://client.test",
        "redirect_uris": [CB, OTHER_CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

// --- The issuer ---------------------------------------------------------------------------

/// The test issuer (its `[registration]` table: scope `read`, resource [`API`]) trusting the
/// documents' CA, loopback allowed or not.
async fn issuer(docs: &Docs, allow_loopback: bool) -> Server {
    issuer_with(docs, allow_loopback, issuer_server::clients_toml()).await
}

async fn issuer_with(docs: &Docs, allow_loopback: bool, clients: String) -> Server {
    issuer_trusting(docs, allow_loopback, clients).await
}

async fn page(server: &Server, client_id: &str, redirect_uri: &str) -> Reply {
    let query = authorize_query(client_id, redirect_uri, &challenge(&new_verifier()), "st");
    server.get(&format!("/oauth/authorize?{query}")).await
}

/// The form posted with alice's password, approving.
async fn approve(server: &Server, client_id: &str, redirect_uri: &str, verifier: &str) -> Reply {
    let form = format!(
        "{}&username=alice&password={}&approve=yes",
        authorize_query(client_id, redirect_uri, &challenge(verifier), "st"),
        urlencode(ALICE_PASSWORD)
    );
    server.form_to("/oauth/authorize", &form).await
}

async fn redeem(server: &Server, client_id: &str, code: &str, verifier: &str) -> Reply {
    redeem_with(server, client_id, code, verifier, "").await
}

/// [`redeem`] with more form members (`&`-prefixed): a client assertion.
async fn redeem_with(
    server: &Server,
    client_id: &str,
    code: &str,
    verifier: &str,
    more: &str,
) -> Reply {
    server
        .form(&format!(
            "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={}\
             {more}",
            urlencode(client_id),
            urlencode(code),
            urlencode(CB),
            urlencode(verifier)
        ))
        .await
}

/// A code for `client_id` at [`CB`], and its verifier.
async fn code(server: &Server, client_id: &str) -> (String, String) {
    let verifier = new_verifier();
    let reply = approve(server, client_id, CB, &verifier).await;
    let callback = callback_query(&reply.location(), CB);
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st"));
    (query_value(&callback, "code").expect("code"), verifier)
}

/// An error page: 400 (or `status`), HTML, no `Location`, `message` in it.
#[track_caller]
fn assert_refused(reply: &Reply, message: &str) {
    assert_refused_with(reply, StatusCode::BAD_REQUEST, message);
}

#[track_caller]
fn assert_refused_with(reply: &Reply, status: StatusCode, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(reply.header(header::LOCATION).is_none(), "redirected");
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    let text = reply.text();
    assert!(text.contains("Authorization request refused"), "{text}");
    assert!(text.contains(message), "expected {message:?} in {text}");
}

/// Refused on the page and on the form with a good password alike.
async fn assert_both_refused(server: &Server, client_id: &str, redirect_uri: &str, message: &str) {
    assert_refused(&page(server, client_id, redirect_uri).await, message);
    let submitted = approve(server, client_id, redirect_uri, &new_verifier()).await;
    assert_refused(&submitted, message);
}

// --- The flow -----------------------------------------------------------------------------

#[tokio::test]
async fn a_metadata_document_client_gets_tokens_with_pkce() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let client_id = docs.good("/client.json", "max-age=300");

    let metadata = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        metadata.json()["client_id_metadata_document_supported"],
        true
    );

    // The page names the client by its document's name and the host that vouches for it.
    let shown = page(&server, &client_id, CB).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    let html = shown.text();
    assert!(html.contains("Metadata &lt;App&gt; (localhost)"), "{html}");
    assert!(html.contains("<code>read</code>"), "{html}");

    // The form: a code for the redirect URI of the document.
    let (code, verifier) = code(&server, &client_id).await;

    // PKCE is enforced: a wrong verifier is refused (and the code stays good).
    redeem(&server, &client_id, &code, &new_verifier())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let reply = redeem(&server, &client_id, &code, &verifier).await;
    let (access, refresh) = reply.assert_tokens();
    assert_eq!(reply.json()["scope"], "read");

    let validator = server.validator(API).await;
    let claims = validator.validate_async(&access).await.expect("valid");
    assert_eq!(claims.subject(), Some("alice"));
    assert_eq!(claims.client_id(), Some(client_id.as_str()));
    assert_eq!(claims.aud, Audience::One(API.into()));

    // A refresh, by the same public client.
    let reply = server
        .form(&format!(
            "grant_type=refresh_token&client_id={}&refresh_token={}",
            urlencode(&client_id),
            urlencode(&refresh)
        ))
        .await;
    let (access, _) = reply.assert_tokens();
    validator.validate_async(&access).await.expect("valid");

    // The other listed redirect URI works too; one fetch for all of it (max-age=300).
    let other = approve(&server, &client_id, OTHER_CB, &new_verifier()).await;
    assert!(other.location().starts_with(&format!("{OTHER_CB}?code=")));
    assert_eq!(docs.hits("/client.json"), 1);
}

#[tokio::test]
async fn the_token_endpoint_knows_only_documents_seen_at_the_authorization_endpoint() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let never = docs.good("/never.json", "max-age=300");
    let reply = redeem(&server, &never, "some-code", &new_verifier()).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(
        docs.hits("/never.json"),
        0,
        "no fetch at the token endpoint"
    );

    // A code for another document's client is not this client's.
    let client_id = docs.good("/client.json", "max-age=300");
    let (code, verifier) = code(&server, &client_id).await;
    let other = docs.good("/other.json", "max-age=300");
    assert_eq!(page(&server, &other, CB).await.status, StatusCode::OK);
    redeem(&server, &other, &code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_document_refused_on_a_refetch_is_forgotten() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let client_id = docs.good("/client.json", "no-store");
    let (code, verifier) = code(&server, &client_id).await;
    // The document now names another client: refused, and the client is gone.
    docs.json(
        "/client.json",
        &document(&docs.url("/elsewhere.json")),
        "no-store",
    );
    assert_refused(
        &page(&server, &client_id, CB).await,
        "names another client_id",
    );
    redeem(&server, &client_id, &code, &verifier)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

// --- Confidential clients: jwks_uri and jwks ----------------------------------------------

/// A document at `path` of a `private_key_jwt` client with the member `keys.0` (`jwks_uri` or
/// `jwks`) set to `keys.1`.
fn confidential(docs: &Docs, path: &str, keys: (&str, Value)) -> String {
    let url = docs.url(path);
    let mut doc = document(&url);
    doc["token_endpoint_auth_method"] = json!("private_key_jwt");
    doc[keys.0] = keys.1;
    docs.json(path, &doc, "max-age=300");
    url
}

/// `&client_assertion_type=..&client_assertion=..`.
fn with_assertion(assertion: &str) -> String {
    format!("&{}", assertion_form(assertion))
}

#[tokio::test]
async fn a_document_with_a_jwks_uri_is_a_private_key_jwt_client() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let key = Signer::test_key("ec-1", "k1");
    docs.json("/keys.json", &jwks(&[&key]), "max-age=300");
    let client_id = confidential(
        &docs,
        "/conf.json",
        ("jwks_uri", json!(docs.url("/keys.json"))),
    );

    // The key set is fetched at the authorization endpoint, before any code is issued.
    assert_eq!(page(&server, &client_id, CB).await.status, StatusCode::OK);
    assert_eq!(docs.hits("/keys.json"), 1);
    let (code, verifier) = code(&server, &client_id).await;

    // No assertion (as a public client would), another key under the client's kid, the
    // client's key for another client id: invalid_client, and the code stays good.
    let unauthorized =
        |reply: Reply| reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    unauthorized(redeem(&server, &client_id, &code, &verifier).await);
    let stranger = Signer::ed25519("k1");
    let stranger_assertion = stranger.assertion(&client_id, &server);
    unauthorized(
        redeem_with(
            &server,
            &client_id,
            &code,
            &verifier,
            &with_assertion(&stranger_assertion),
        )
        .await,
    );
    let impostor = Signer::test_key("ec-1", "k1");
    let other_client = docs.url("/other.json");
    unauthorized(
        redeem_with(
            &server,
            &client_id,
            &code,
            &verifier,
            &with_assertion(&impostor.assertion(&other_client, &server)),
        )
        .await,
    );
    // PKCE still holds for a confidential client.
    redeem_with(
        &server,
        &client_id,
        &code,
        &verifier.replace(|c: char| c.is_ascii_alphabetic(), "x"),
        &with_assertion(&key.assertion(&client_id, &server)),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");

    let reply = redeem_with(
        &server,
        &client_id,
        &code,
        &verifier,
        &with_assertion(&key.assertion(&client_id, &server)),
    )
    .await;
    let (access, refresh) = reply.assert_tokens();
    let validator = server.validator(API).await;
    let claims = validator.validate_async(&access).await.expect("valid");
    assert_eq!(claims.subject(), Some("alice"));
    assert_eq!(claims.client_id(), Some(client_id.as_str()));

    // A refresh needs an assertion too.
    let refresh_form = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        urlencode(&client_id),
        urlencode(&refresh)
    );
    unauthorized(server.form(&refresh_form).await);
    let assertion = key.assertion(&client_id, &server);
    server
        .form(&format!("{refresh_form}{}", with_assertion(&assertion)))
        .await
        .assert_tokens();

    // Whoever publishes a document gets no token without a user.
    let assertion = key.assertion(&client_id, &server);
    server
        .form(&format!(
            "grant_type=client_credentials&client_id={}{}",
            urlencode(&client_id),
            with_assertion(&assertion)
        ))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    // One fetch of the key set for all of it (max-age=300).
    assert_eq!(docs.hits("/keys.json"), 1);
}

#[tokio::test]
async fn a_document_with_inline_jwks_is_a_private_key_jwt_client() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let key = Signer::test_key("ed-1", "k1");
    let other = Signer::test_key("rsa-1", "k2");
    let url = docs.url("/inline.json");
    // No token_endpoint_auth_method: keys make it private_key_jwt.
    let mut doc = document(&url);
    doc.as_object_mut()
        .unwrap()
        .remove("token_endpoint_auth_method");
    doc["jwks"] = jwks(&[&key, &other]);
    docs.json("/inline.json", &doc, "max-age=300");

    let (code, verifier) = code(&server, &url).await;
    redeem(&server, &url, &code, &verifier)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong = Signer::ed25519("k1");
    redeem_with(
        &server,
        &url,
        &code,
        &verifier,
        &with_assertion(&wrong.assertion(&url, &server)),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    redeem_with(
        &server,
        &url,
        &code,
        &verifier,
        &with_assertion(&other.assertion(&url, &server)),
    )
    .await
    .assert_tokens();
}

#[tokio::test]
async fn a_jwks_uri_that_cannot_be_used_refuses_the_document() {
    let docs = Docs::start().await;
    // Loopback allowed (the documents are there); every other private address is not.
    let server = issuer(&docs, true).await;
    for (i, jwks_uri) in [
        "https://10.0.0.1/jwks.json",
        "https://192.168.1.1/jwks.json",
        "https://169.254.169.254/latest/meta-data/jwks",
        "https://100.64.0.1/jwks.json",
        "https://[fd00::1]/jwks.json",
        "https://[fe80::1]/jwks.json",
        "https://[::ffff:a00:1]/jwks.json",
    ]
    .into_iter()
    .enumerate()
    {
        let client_id = confidential(
            &docs,
            &format!("/private-{i}.json"),
            ("jwks_uri", json!(jwks_uri)),
        );
        assert_both_refused(
            &server,
            &client_id,
            CB,
            "jwks_uri is a private, loopback, link-local or reserved address",
        )
        .await;
    }
    // Nothing was fetched but the documents.
    let fetched: Vec<String> = docs.hits.lock().unwrap().keys().cloned().collect();
    assert!(
        fetched.iter().all(|p| p.starts_with("/private-")),
        "{fetched:?}"
    );

    // Served, but not usable.
    let mut private = Signer::test_key("ed-1", "k1").jwk();
    private["d"] = private["x"].clone();
    docs.json(
        "/private-key.json",
        &json!({ "keys": [private] }),
        "max-age=300",
    );
    docs.answer(
        "/moved.json",
        Canned {
            status: StatusCode::FOUND,
            headers: vec![
                ("location", docs.url("/keys.json")),
                ("content-type", "application/json".into()),
            ],
            body: jwks(&[&Signer::test_key("ed-1", "k1")]).to_string(),
        },
    );
    docs.json(
        "/keys.json",
        &jwks(&[&Signer::test_key("ed-1", "k1")]),
        "max-age=300",
    );
    for (path, jwks_path, message) in [
        (
            "/a.json",
            "/missing.json",
            "cannot be fetched from its jwks_uri",
        ),
        ("/b.json", "/private-key.json", "holds a private key"),
        ("/c.json", "/moved.json", "redirects are not followed"),
    ] {
        let client_id = confidential(&docs, path, ("jwks_uri", json!(docs.url(jwks_path))));
        assert_both_refused(&server, &client_id, CB, message).await;
        // Refused for the same reason without a second fetch.
        assert_eq!(docs.hits(jwks_path), 1, "{jwks_path}");
    }
    assert_eq!(docs.hits("/keys.json"), 0, "the redirect was followed");
}

// --- Caching ------------------------------------------------------------------------------

#[tokio::test]
async fn documents_are_cached_by_max_age_and_refetched_without_it() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;

    let cached = docs.good("/cached.json", "public, max-age=300");
    for _ in 0..3 {
        assert_eq!(page(&server, &cached, CB).await.status, StatusCode::OK);
    }
    assert_eq!(docs.hits("/cached.json"), 1);
    // While fresh, a change of the document is not seen: the unlisted URI stays unlisted.
    let mut changed = document(&cached);
    changed["redirect_uris"] = json!(["https://client.test/new"]);
    docs.json("/cached.json", &changed, "max-age=300");
    assert_refused(
        &page(&server, &cached, "https://client.test/new").await,
        "not listed",
    );
    assert_eq!(docs.hits("/cached.json"), 1);

    for (path, cache) in [
        ("/no-store.json", "no-store"),
        ("/no-cache.json", "max-age=300, no-cache"),
        ("/zero.json", "max-age=0"),
        ("/aged.json", "max-age=60"),
    ] {
        let url = docs.good(path, cache);
        if path == "/aged.json" {
            // `Age` at least `max-age`: already stale.
            let mut canned = docs.answers.lock().unwrap()[path].clone();
            canned.headers.push(("age", "60".into()));
            docs.answer(path, canned);
        }
        for _ in 0..2 {
            assert_eq!(page(&server, &url, CB).await.status, StatusCode::OK);
        }
        assert_eq!(docs.hits(path), 2, "{path}: {cache}");
    }
}

// --- Refusals: the document ---------------------------------------------------------------

#[tokio::test]
async fn a_document_naming_another_client_id_is_refused() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let url = docs.url("/a.json");
    for other in [
        docs.url("/b.json"),
        format!("{url}/"),
        url.to_uppercase(),
        url.replace("https://", "http://"),
    ] {
        docs.json("/a.json", &document(&other), "no-store");
        assert_both_refused(&server, &url, CB, "names another client_id").await;
    }
    let mut missing = document(&url);
    missing.as_object_mut().unwrap().remove("client_id");
    docs.json("/a.json", &missing, "no-store");
    assert_both_refused(&server, &url, CB, "names another client_id").await;
}

#[tokio::test]
async fn an_unlisted_redirect_uri_is_an_error_page_never_a_redirect() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let client_id = docs.good("/client.json", "max-age=300");
    for unlisted in [
        "https://evil.test/cb",
        "https://client.test/cb/",
        "https://client.test/cb?x=1",
        // Exact: no loopback port leeway for documents.
        "http://127.0.0.1:7778/cb",
        "http://127.0.0.1/cb",
    ] {
        assert_both_refused(
            &server,
            &client_id,
            unlisted,
            "redirect_uri is not listed in the client metadata document",
        )
        .await;
    }
    // A missing one is refused too.
    let query = format!(
        "response_type=code&client_id={}&code_challenge={}&code_challenge_method=S256",
        urlencode(&client_id),
        challenge(&new_verifier())
    );
    let reply = server.get(&format!("/oauth/authorize?{query}")).await;
    assert_refused(&reply, "redirect_uri is missing");
}

#[tokio::test]
async fn bad_documents_are_refused_with_a_clear_page() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let url = docs.url("/bad.json");
    let ed = Signer::test_key("ed-1", "k1");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut doc = document(&url);
        change(&mut doc);
        doc
    };
    // The same without a `token_endpoint_auth_method`, so that what refuses it is the keys.
    let unset_method = |change: &dyn Fn(&mut Value)| {
        with(&|d| {
            d.as_object_mut()
                .expect("an object")
                .remove("token_endpoint_auth_method");
            change(d);
        })
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|d| d["client_secret"] = json!("s3cret")),
            "must not hold a client_secret",
        ),
        // Keys (a confidential client) with a method other than private_key_jwt; that method
        // without keys; both kinds of keys; a jwks_uri that is no https URL; unusable keys.
        (
            with(&|d| d["jwks_uri"] = json!("https://client.test/jwks")),
            "names a jwks_uri or jwks, and a token_endpoint_auth_method other than \
             private_key_jwt",
        ),
        (
            with(&|d| {
                d["jwks"] = jwks(&[&ed]);
                d["token_endpoint_auth_method"] = json!("client_secret_basic");
            }),
            "token_endpoint_auth_method other than private_key_jwt",
        ),
        (
            with(&|d| d["token_endpoint_auth_method"] = json!("private_key_jwt")),
            "asks for private_key_jwt without a jwks_uri or jwks",
        ),
        (
            with(&|d| {
                d["token_endpoint_auth_method"] = json!("private_key_jwt");
                d["jwks_uri"] = json!("https://client.test/jwks");
                d["jwks"] = jwks(&[&ed]);
            }),
            "names both a jwks_uri and a jwks",
        ),
        (
            with(&|d| {
                d["token_endpoint_auth_method"] = json!("private_key_jwt");
                d["jwks_uri"] = json!("http://client.test/jwks");
            }),
            "jwks_uri must be an https URL in normal form",
        ),
        (
            unset_method(&|d| {
                d["jwks_uri"] = json!("https://user@client.test/jwks");
            }),
            "jwks_uri must be an https URL in normal form",
        ),
        (
            unset_method(&|d| {
                d["jwks_uri"] = json!(["https://client.test/jwks"]);
            }),
            "jwks_uri must be an https URL in normal form",
        ),
        (
            unset_method(&|d| {
                let mut private = ed.jwk();
                private["d"] = private["x"].clone();
                d["jwks"] = json!({ "keys": [private] });
            }),
            "holds a private key",
        ),
        (
            unset_method(&|d| {
                d["jwks"] = json!({ "keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}] });
            }),
            "holds a symmetric key",
        ),
        (
            unset_method(&|d| {
                let mut enc = ed.jwk();
                enc["use"] = json!("enc");
                d["jwks"] = json!({ "keys": [enc] });
            }),
            "holds no usable public signing key",
        ),
        (
            unset_method(&|d| {
                d["jwks"] = json!([ed.jwk()]);
            }),
            "is not a JWK Set",
        ),
        (
            with(&|d| d["token_endpoint_auth_method"] = json!("client_secret_basic")),
            "token_endpoint_auth_method other than none",
        ),
        (
            with(&|d| d["grant_types"] = json!(["client_credentials"])),
            "grant or response types",
        ),
        (
            with(&|d| d["redirect_uris"] = json!([])),
            "must list 1 to 10 redirect_uris",
        ),
        (
            with(&|d| d["redirect_uris"] = json!(["http://client.test/cb"])),
            "must list 1 to 10 redirect_uris",
        ),
        (
            with(&|d| d["redirect_uris"] = json!("https://client.test/cb")),
            "not a JSON object of client metadata",
        ),
        (json!([url]), "not a JSON object of client metadata"),
    ];
    for (doc, message) in cases {
        docs.json("/bad.json", &doc, "no-store");
        assert_both_refused(&server, &url, CB, message).await;
    }
    docs.answer(
        "/bad.json",
        Canned {
            status: StatusCode::OK,
            headers: vec![("content-type", "application/json".into())],
            body: "{not json".into(),
        },
    );
    assert_both_refused(&server, &url, CB, "not a JSON object of client metadata").await;
}

#[tokio::test]
async fn a_non_json_content_type_is_refused() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let url = docs.url("/doc");
    for content_type in [
        "text/html",
        "text/plain",
        "application/jsonp",
        "application/jwt",
    ] {
        docs.answer(
            "/doc",
            Canned {
                status: StatusCode::OK,
                headers: vec![("content-type", content_type.into())],
                body: document(&url).to_string(),
            },
        );
        assert_refused(
            &page(&server, &url, CB).await,
            "not served as application/json",
        );
    }
    docs.answer(
        "/doc",
        Canned {
            status: StatusCode::OK,
            headers: vec![],
            body: document(&url).to_string(),
        },
    );
    assert_refused(
        &page(&server, &url, CB).await,
        "not served as application/json",
    );
    // The same document as application/json is good.
    docs.json("/doc", &document(&url), "no-store");
    assert_eq!(page(&server, &url, CB).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_document_is_refused() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let url = docs.url("/big.json");
    let padded = |size: usize| {
        let mut doc = document(&url);
        doc["padding"] = json!("");
        let pad = size - doc.to_string().len();
        doc["padding"] = json!("x".repeat(pad));
        assert_eq!(doc.to_string().len(), size);
        doc
    };
    docs.json("/big.json", &padded(5 * 1024 + 1), "no-store");
    assert_both_refused(&server, &url, CB, "larger than 5 KiB").await;
    // Without Content-Length (chunked), the body is cut at the cap all the same.
    let chunked = |size: usize| Canned {
        status: StatusCode::OK,
        headers: vec![
            ("content-type", "application/json".into()),
            ("transfer-encoding", "chunked".into()),
        ],
        body: padded(size).to_string(),
    };
    docs.answer("/big.json", chunked(64 * 1024));
    assert_both_refused(&server, &url, CB, "larger than 5 KiB").await;
    docs.answer("/big.json", chunked(5 * 1024));
    assert_eq!(page(&server, &url, CB).await.status, StatusCode::OK);
    // 5 KiB exactly is fine.
    docs.json("/big.json", &padded(5 * 1024), "no-store");
    assert_eq!(page(&server, &url, CB).await.status, StatusCode::OK);
}

#[tokio::test]
async fn redirects_are_not_followed_and_errors_are_refused() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    let target = docs.good("/client.json", "max-age=300");
    for status in [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        docs.answer(
            "/moved",
            Canned {
                status,
                headers: vec![
                    ("location", target.clone()),
                    ("content-type", "application/json".into()),
                ],
                body: document(&docs.url("/moved")).to_string(),
            },
        );
        assert_both_refused(
            &server,
            &docs.url("/moved"),
            CB,
            "redirects are not followed",
        )
        .await;
    }
    assert_eq!(docs.hits("/client.json"), 0, "the redirect was followed");
    assert_both_refused(
        &server,
        &docs.url("/missing.json"),
        CB,
        "answered with an error status",
    )
    .await;
}

// --- Refusals: the URL --------------------------------------------------------------------

#[tokio::test]
async fn urls_that_are_not_plain_https_are_refused_without_a_fetch() {
    let docs = Docs::start().await;
    let server = issuer(&docs, true).await;
    docs.good("/client.json", "max-age=300");
    let port = docs.base.rsplit(':').next().unwrap();
    for (url, message) in [
        (
            format!("http://localhost:{port}/client.json"),
            "not an https one",
        ),
        (
            format!("https://alice@localhost:{port}/client.json"),
            "must not carry a user name or password",
        ),
        (
            format!("https://alice:pw@localhost:{port}/client.json"),
            "must not carry a user name or password",
        ),
        (
            format!("https://localhost:{port}/client.json#x"),
            "must not have a fragment",
        ),
        (
            format!("https://localhost:{port}/x/../client.json"),
            "must not have . or .. path segments",
        ),
        (format!("https://localhost:{port}"), "must have a path"),
        (
            format!("HTTPS://localhost:{port}/client.json"),
            "not in normal form",
        ),
        (
            format!("https://LOCALHOST:{port}/client.json"),
            "not in normal form",
        ),
        (
            format!("https://localhost:{port}/{}", "a".repeat(255)),
            "longer than 255 bytes",
        ),
    ] {
        assert_both_refused(&server, &url, CB, message).await;
    }
    // Only the good URL below was ever fetched.
    let hits: usize = docs.hits.lock().unwrap().values().sum();
    assert_eq!(hits, 0);
    let good = docs.url("/client.json");
    assert_eq!(page(&server, &good, CB).await.status, StatusCode::OK);
    assert_eq!(docs.hits("/client.json"), 1);
}

#[tokio::test]
async fn private_and_loopback_addresses_are_refused() {
    let docs = Docs::start().await;
    let client_id = docs.good("/client.json", "max-age=300");

    // Without CLIENT_METADATA_ALLOW_LOOPBACK: `localhost` resolves to loopback: refused,
    // before any connection.
    let strict = issuer(&docs, false).await;
    assert_both_refused(
        &strict,
        &client_id,
        CB,
        "private, loopback, link-local or reserved address",
    )
    .await;
    assert_eq!(docs.hits("/client.json"), 0);
    let port = docs.base.rsplit(':').next().unwrap();
    let loopback_literals = [
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
        format!("https://[::ffff:7f00:1]:{port}/client.json"),
    ];
    for url in &loopback_literals {
        assert_refused(&page(&strict, url, CB).await, "loopback");
    }

    // With it: loopback only; every other non-public address is still refused, IPv4-mapped
    // IPv6 included. These are refused before any connection (nothing listens there).
    let loose = issuer(&docs, true).await;
    for url in [
        "https://10.0.0.1/client.json",
        "https://172.16.5.4/client.json",
        "https://192.168.1.1/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/client.json",
        "https://0.0.0.0/client.json",
        "https://[::]/client.json",
        "https://[fe80::1]/client.json",
        "https://[fd00::1]/client.json",
        "https://[::ffff:a00:1]/client.json",
        "https://[::ffff:a9fe:a9fe]/client.json",
        "https://[64:ff9b::a00:1]/client.json",
        "https://[ff02::1]/client.json",
    ] {
        assert_refused(
            &page(&loose, url, CB).await,
            "private, loopback, link-local or reserved address",
        );
    }
    assert_eq!(page(&loose, &client_id, CB).await.status, StatusCode::OK);
    assert_eq!(docs.hits("/client.json"), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    // The issuer trusts another CA than the documents' server.
    let docs = Docs::start().await;
    let stranger = Docs::start().await;
    let client_id = stranger.good("/client.json", "max-age=300");
    let server = issuer(&docs, true).await;
    assert_refused(&page(&server, &client_id, CB).await, "not trusted (TLS)");
    assert_eq!(stranger.hits("/client.json"), 0);
}

#[tokio::test]
async fn without_a_registration_table_documents_are_not_accepted() {
    let docs = Docs::start().await;
    let clients = issuer_server::clients_toml();
    let clients = clients.split("[registration]").next().unwrap().to_owned();
    let server = issuer_with(&docs, true, clients).await;
    let metadata = server.get("/.well-known/oauth-authorization-server").await;
    assert!(
        metadata.json()["client_id_metadata_document_supported"].is_null(),
        "{}",
        metadata.text()
    );
    let client_id = docs.good("/client.json", "max-age=300");
    assert_both_refused(
        &server,
        &client_id,
        CB,
        "does not accept client metadata documents",
    )
    .await;
    assert_eq!(docs.hits("/client.json"), 0);
}

#[tokio::test]
async fn a_ca_file_without_certificates_stops_the_start() {
    let file = CaFile::new("not a certificate\n");
    let mut config = Config::new("http://127.0.0.1:1");
    config.client_metadata_ca_file = Some(file.0.clone());
    let clients = bearer_guard_issuer::parse_clients(
        &issuer_server::clients_toml(),
        bearer_guard_issuer::Format::Toml,
    )
    .expect("clients");
    let err = bearer_guard_issuer::Issuer::build(
        &config,
        clients,
        HashMap::new(),
        SigningKey::generate(None).expect("key"),
    )
    .expect_err("no certificate");
    assert!(err.to_string().contains("CLIENT_METADATA_CA_FILE"), "{err}");
}
