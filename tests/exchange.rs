//! Delegated tokens (RFC 8693) at a resource server: tokens exchanged at the real companion
//! issuer carry their actor chain into the [`VerifiedToken`], and routes require, allow or
//! forbid actors (403 `Forbidden`), judging only the current actor (§4.1).

use std::convert::Infallible;

use bearer_guard::{AuthError, ErrorKind, RequireScope, Validator, VerifiedToken};
use bearer_guard_issuer::SigningKey;
use bearer_guard_issuer::testing::oauth::urlencode;
use bearer_guard_issuer::testing::{
    API, EXCH_SECRET, EXCH2_SECRET, OTHER_API, SVC_SECRET, Server, exchange_clients_toml,
};
use http::{Request, Response, StatusCode, header};
use tower::{Layer as _, ServiceExt as _, service_fn};

const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";

/// `exch` exchanges tokens for API into tokens for OTHER_API; `exch2` the other way round.
async fn issuer() -> Server {
    let key = SigningKey::generate(None).expect("key");
    Server::start_full(exchange_clients_toml(), key, |_| {}).await
}

async fn exchange(server: &Server, id: &str, secret: &str, subject: &str) -> String {
    server
        .basic(
            id,
            secret,
            &format!(
                "grant_type={GRANT}&subject_token={}&subject_token_type={}",
                urlencode(subject),
                urlencode(ACCESS)
            ),
        )
        .await
        .assert_token()
}

/// The tokens of the tests: a direct one for each API, one exchanged by `exch` (for
/// OTHER_API) and one exchanged from that by `exch2` (for API).
struct Tokens {
    direct_api: String,
    direct_other: String,
    exchanged: String,
    nested: String,
}

async fn tokens(server: &Server) -> Tokens {
    let direct_api = server.token("svc", SVC_SECRET).await;
    let direct_other = server
        .basic(
            "svc",
            SVC_SECRET,
            &format!(
                "grant_type=client_credentials&resource={}",
                urlencode(OTHER_API)
            ),
        )
        .await
        .assert_token();
    let exchanged = exchange(server, "exch", EXCH_SECRET, &direct_api).await;
    let nested = exchange(server, "exch2", EXCH2_SECRET, &exchanged).await;
    Tokens {
        direct_api,
        direct_other,
        exchanged,
        nested,
    }
}

/// Calls `route` with `token`; the handler answers with the actor chain's ids.
async fn call(route: &RequireScope, token: &str) -> (StatusCode, Option<ErrorKind>, String) {
    let svc = route.layer(service_fn(|req: Request<()>| async move {
        let token = req.extensions().get::<VerifiedToken>().expect("verified");
        let chain: Vec<&str> = token
            .actor()
            .map(|a| a.chain().filter_map(|a| a.id()).collect())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(chain.join(" > ")))
    }));
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .expect("request");
    let res = svc.oneshot(req).await.expect("infallible");
    let kind = res.extensions().get::<AuthError>().map(AuthError::kind);
    (res.status(), kind, res.into_body())
}

async fn validators(server: &Server) -> (Validator, Validator) {
    (
        server.validator(API).await,
        server.validator(OTHER_API).await,
    )
}

#[tokio::test]
async fn the_actor_chain_is_part_of_the_verified_token() {
    let server = issuer().await;
    let t = tokens(&server).await;
    let (api, other) = validators(&server).await;
    let any_api = RequireScope::authenticated(&api);
    let any_other = RequireScope::authenticated(&other);

    assert_eq!(call(&any_api, &t.direct_api).await.2, "");
    assert_eq!(call(&any_other, &t.exchanged).await.2, "exch");
    // Most recent first.
    assert_eq!(call(&any_api, &t.nested).await.2, "exch2 > exch");
}

#[tokio::test]
async fn require_actor_admits_only_the_listed_current_actors() {
    let server = issuer().await;
    let t = tokens(&server).await;
    let (api, other) = validators(&server).await;
    let forbidden = (StatusCode::FORBIDDEN, Some(ErrorKind::Forbidden));

    let via_exch = RequireScope::authenticated(&other).require_actor(["exch"]);
    assert_eq!(call(&via_exch, &t.exchanged).await.0, StatusCode::OK);
    let (status, kind, _) = call(&via_exch, &t.direct_other).await;
    assert_eq!((status, kind), forbidden, "a direct token has no actor");

    let via_someone_else = RequireScope::authenticated(&other).require_actor(["billing"]);
    let (status, kind, _) = call(&via_someone_else, &t.exchanged).await;
    assert_eq!((status, kind), forbidden);

    // Only the current actor counts: `exch` is an earlier actor of `nested`.
    let via_exch_on_api = RequireScope::authenticated(&api).require_actor(["exch"]);
    let (status, kind, _) = call(&via_exch_on_api, &t.nested).await;
    assert_eq!((status, kind), forbidden);
    let via_exch2 = RequireScope::authenticated(&api).require_actor(["exch2"]);
    assert_eq!(call(&via_exch2, &t.nested).await.0, StatusCode::OK);
}

#[tokio::test]
async fn allow_actors_admits_direct_tokens_and_listed_actors() {
    let server = issuer().await;
    let t = tokens(&server).await;
    let (api, _) = validators(&server).await;
    let route = RequireScope::authenticated(&api).allow_actors(["exch2"]);
    assert_eq!(call(&route, &t.direct_api).await.0, StatusCode::OK);
    assert_eq!(call(&route, &t.nested).await.0, StatusCode::OK);
    let strict = RequireScope::authenticated(&api).allow_actors(["someone"]);
    assert_eq!(call(&strict, &t.direct_api).await.0, StatusCode::OK);
    let (status, kind, _) = call(&strict, &t.nested).await;
    assert_eq!(
        (status, kind),
        (StatusCode::FORBIDDEN, Some(ErrorKind::Forbidden))
    );
}

#[tokio::test]
async fn forbid_actors_refuses_delegated_tokens() {
    let server = issuer().await;
    let t = tokens(&server).await;
    let (_, other) = validators(&server).await;
    let route = RequireScope::authenticated(&other).forbid_actors();
    assert_eq!(call(&route, &t.direct_other).await.0, StatusCode::OK);
    let (status, kind, _) = call(&route, &t.exchanged).await;
    assert_eq!(
        (status, kind),
        (StatusCode::FORBIDDEN, Some(ErrorKind::Forbidden))
    );
}
