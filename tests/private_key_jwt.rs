//! `private_key_jwt` (RFC 7523, `aud` = the issuer identifier) on the outgoing side, through
//! the real companion issuer: `AddAccessTokenLayer` and `ExchangeTokenLayer` with
//! `ClientCredentials::private_key_jwt`, and `Introspection::builder_with_key`, each with a
//! key from a JWK or a PEM. The issuer accepts only assertions signed by the registered key,
//! so a token (or an active introspection answer) proves a valid assertion was sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::client::{
    AddAccessTokenLayer, AuthMethod, BoxError, ClientCredentials, TokenError, TokenErrorKind,
};
use bearer_guard::client_auth::PrivateKeyJwt;
use bearer_guard::introspection::Introspection;
use bearer_guard::{ErrorKind, Validator};
use bearer_guard_issuer::testing::oauth::cheap_hash;
use bearer_guard_issuer::testing::{API, Server, clients_toml};
use bearer_guard_issuer::{SigningKey, TOKEN_PATH, TokenFormat};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A fresh Ed25519 key as a private JWK.
fn ed25519_key(kid: &str) -> PrivateKeyJwt {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    let jwk = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","d":"{}"}}"#,
        B64.encode(seed)
    );
    PrivateKeyJwt::from_jwk(&jwk).expect("private JWK")
}

/// A fresh P-256 key as a PKCS#8 PEM.
fn p256_key() -> PrivateKeyJwt {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    PrivateKeyJwt::from_pem(pair.serialize_pem().as_bytes()).expect("PEM")
}

/// The issuer with `jwt-client` (Ed25519, client credentials and token exchange),
/// `pem-client` (P-256, introspection for API), `opaque` tokens when asked.
async fn issuer(jwt: &PrivateKeyJwt, pem: &PrivateKeyJwt, opaque: bool) -> Server {
    let clients = format!(
        r#"{}
[[clients]]
client_id = "jwt-client"
token_endpoint_auth_method = "private_key_jwt"
jwk = {}
scopes = ["read"]
resources = ["{API}"]

[[clients]]
client_id = "pem-client"
token_endpoint_auth_method = "private_key_jwt"
jwk = {}
introspect_for = ["{API}"]

[[clients]]
client_id = "secret-client"
secret_hash = "{}"
scopes = ["read"]
resources = ["{API}"]
"#,
        clients_toml(),
        toml_table(&jwt.public_jwk()),
        toml_table(&pem.public_jwk()),
        cheap_hash("secret-client-secret-0123"),
    );
    Server::start_full(clients, SigningKey::generate(None).expect("key"), |c| {
        if opaque {
            c.token_format = TokenFormat::Opaque;
        }
    })
    .await
}

/// A JSON object of strings as a TOML inline table.
fn toml_table(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect("json");
    let members: Vec<String> = value
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!("{{ {} }}", members.join(", "))
}

/// Sends one request to API's stand-in through `layer` around a real client, and returns
/// the token the stand-in received.
async fn token_through(layer: AddAccessTokenLayer) -> Result<String, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Token requests go to the issuer; the call itself is answered here with its token.
    let stand_in = service_fn(move |req: Request<Full<Bytes>>| {
        let http = http.clone();
        async move {
            if req.uri().path() == TOKEN_PATH {
                let res = http.request(req).await?;
                let (parts, body) = res.into_parts();
                let body = body.collect().await?.to_bytes();
                return Ok::<_, BoxError>(Response::from_parts(parts, Full::new(body)));
            }
            let auth = req.headers()[AUTHORIZATION].to_str()?.to_owned();
            Ok(Response::new(Full::from(auth)))
        }
    });
    let svc = ServiceBuilder::new().layer(layer).service(stand_in);
    let req = Request::get("https://api.test/data").body(Full::default())?;
    let res = svc.oneshot(req).await?;
    let body = res.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?
        .strip_prefix("Bearer ")
        .expect("bearer")
        .to_owned())
}

fn credentials(server: &Server, id: &str, key: PrivateKeyJwt, aud: &str) -> ClientCredentials {
    ClientCredentials::private_key_jwt(format!("{}{TOKEN_PATH}", server.base), id, key, aud)
        .resource(API)
        .build()
        .expect("credentials")
}

#[tokio::test]
async fn the_outgoing_client_authenticates_with_an_assertion_for_the_issuer() {
    let (jwt, pem) = (ed25519_key("k1"), p256_key());
    let server = issuer(&jwt, &pem, false).await;

    let c = credentials(&server, "jwt-client", jwt.clone(), server.iss());
    assert_eq!(c.auth_method(), AuthMethod::PrivateKeyJwt);
    assert!(!format!("{c:?}").contains("\"d\""));
    let token = token_through(AddAccessTokenLayer::new(c))
        .await
        .expect("a token");
    let validator = server.validator(API).await;
    let verified = validator.validate(&token).expect("a token of the issuer");
    assert_eq!(verified.client_id(), Some("jwt-client"));

    // The same key, but assertions for the token endpoint's URL (RFC 7523's old
    // reading): refused, as the bis draft says.
    let c = credentials(
        &server,
        "jwt-client",
        jwt.clone(),
        &format!("{}{TOKEN_PATH}", server.base),
    );
    let err = token_through(AddAccessTokenLayer::new(c))
        .await
        .expect_err("refused");
    let err = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(err.kind(), TokenErrorKind::Rejected);
    assert_eq!(err.oauth_error(), Some("invalid_client"));

    // Another key than the registered one.
    let c = credentials(&server, "jwt-client", ed25519_key("k1"), server.iss());
    let err = token_through(AddAccessTokenLayer::new(c))
        .await
        .expect_err("refused");
    let err = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(err.oauth_error(), Some("invalid_client"));
}

#[tokio::test]
async fn introspection_authenticates_with_an_assertion() {
    let (jwt, pem) = (ed25519_key("k1"), p256_key());
    let server = issuer(&jwt, &pem, true).await;
    let token = server
        .basic(
            "secret-client",
            "secret-client-secret-0123",
            "grant_type=client_credentials",
        )
        .await
        .assert_token();
    assert_eq!(token.split('.').count(), 1, "an opaque token");

    let validator = |key: PrivateKeyJwt| {
        let introspection = Introspection::builder_with_key(
            format!("{}/oauth/introspect", server.base),
            "pem-client",
            key,
        )
        .issuer(server.iss())
        .build()
        .expect("introspection");
        Validator::builder()
            .audience(API)
            .introspection(introspection)
            .build()
            .expect("validator")
    };
    let verified = validator(pem.clone())
        .validate_async(&token)
        .await
        .expect("active: the assertion was accepted");
    assert_eq!(verified.client_id(), Some("secret-client"));

    // A key the issuer does not know: the endpoint refuses the client, the token is not
    // admitted.
    let refused = validator(p256_key()).validate_async(&token).await;
    assert_eq!(
        refused.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::IntrospectionUnavailable)
    );
}
