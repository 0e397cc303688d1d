//! The layer in front of a real tonic server over a real TCP socket, called by a real tonic
//! client: gRPC rejections arrive as `Status` codes, and the claims reach the gRPC method.
#![cfg(feature = "tonic")]

use bearer_guard::testkit as mint;

use std::net::SocketAddr;

use bearer_guard::{AccessClaims, RequireScope, Validator, tonic::RequestClaimsExt};
use mint::{now, token};
use serde_json::json;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as PbStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const SERVICE: &str = "bank.Ledger";

fn validator() -> Validator {
    mint::builder().build().expect("validator")
}

/// Serves `svc` behind `layer` on an ephemeral port of 127.0.0.1, and connects a channel.
///
/// `Server::serve_with_incoming` takes the one service directly: `add_service` would need
/// tonic's `router` feature, which the dev-dependency does not enable.
async fn serve<T>(layer: RequireScope, svc: HealthServer<T>) -> Channel
where
    T: Health,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .serve_with_incoming(svc, TcpIncoming::from(listener))
            .await
            .expect("serve");
    });
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// The stock health service, with `SERVICE` reported as serving.
async fn health_channel(layer: RequireScope) -> Channel {
    let (reporter, server) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    serve(layer, server).await
}

fn check_request(auth: Option<&str>) -> Request<HealthCheckRequest> {
    let mut req = Request::new(HealthCheckRequest {
        service: SERVICE.to_owned(),
    });
    if let Some(auth) = auth {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(auth).expect("ascii"),
        );
    }
    req
}

async fn check(
    client: &mut HealthClient<Channel>,
    auth: Option<&str>,
) -> Result<Response<HealthCheckResponse>, Status> {
    client.check(check_request(auth)).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn call_without_token_is_unauthenticated() {
    let mut client = HealthClient::new(
        health_channel(RequireScope::all(&validator(), ["health:read"]).expect("scopes")).await,
    );
    let status = check(&mut client, None).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "no bearer token");
    let status = check(&mut client, Some("Bearer a b"))
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn expired_or_forged_token_is_unauthenticated() {
    let mut client = HealthClient::new(
        health_channel(RequireScope::all(&validator(), ["health:read"]).expect("scopes")).await,
    );
    let expired = token(
        "ec-1",
        json!({ "scope": "health:read", "exp": now() - 3600 }),
    );
    let status = check(&mut client, Some(&bearer(&expired)))
        .await
        .expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // The message is as vague as the HTTP answer.
    assert_eq!(status.message(), "invalid token");
    let other_aud = token(
        "ec-1",
        json!({ "scope": "health:read", "aud": "https://other.test" }),
    );
    let status = check(&mut client, Some(&bearer(&other_aud)))
        .await
        .expect_err("audience");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn token_without_the_scope_is_permission_denied() {
    let mut client = HealthClient::new(
        health_channel(RequireScope::all(&validator(), ["health:read"]).expect("scopes")).await,
    );
    let t = token("ec-1", json!({ "scope": "read write" }));
    let status = check(&mut client, Some(&bearer(&t)))
        .await
        .expect_err("scope");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "token lacks the required scope");
}

#[tokio::test]
async fn token_with_the_scope_gets_the_real_answer() {
    let channel =
        health_channel(RequireScope::all(&validator(), ["health:read"]).expect("scopes")).await;
    let mut client = HealthClient::new(channel.clone());
    let t = token("ed-1", json!({ "scope": "health:read" }));
    let res = check(&mut client, Some(&bearer(&t))).await.expect("ok");
    assert_eq!(res.get_ref().status(), PbStatus::Serving);

    // The same through a client interceptor that adds the bearer to every call, several
    // calls over the one HTTP/2 connection.
    let auth = MetadataValue::try_from(bearer(&t)).expect("ascii");
    let mut client = HealthClient::with_interceptor(channel, move |mut req: Request<()>| {
        req.metadata_mut().insert("authorization", auth.clone());
        Ok(req)
    });
    for _ in 0..3 {
        let res = client
            .check(HealthCheckRequest {
                service: SERVICE.to_owned(),
            })
            .await
            .expect("ok");
        assert_eq!(res.get_ref().status(), PbStatus::Serving);
    }
    // An unknown service: the layer let the call through, the health service answers.
    let status = client
        .check(HealthCheckRequest {
            service: "nope".to_owned(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);
}

/// A health service whose `check` reads the claims the layer put into the request through
/// [`RequestClaimsExt`], and answers with the caller's client id in the `x-client-id`
/// response metadata.
struct WhoAmI;

#[tonic::codegen::async_trait]
impl Health for WhoAmI {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        // Tagged, to tell this method's refusal from the layer's.
        let claims = request
            .claims::<AccessClaims>()
            .map_err(|s| Status::new(s.code(), format!("method: {}", s.message())))?;
        let client = claims.client_id().unwrap_or_default();
        let mut res = Response::new(HealthCheckResponse {
            status: PbStatus::Serving.into(),
        });
        res.metadata_mut().insert(
            "x-client-id",
            MetadataValue::try_from(client).map_err(|_| Status::internal("client id"))?,
        );
        Ok(res)
    }

    type WatchStream = tonic::codegen::BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

fn client_id(res: &Response<HealthCheckResponse>) -> &str {
    res.metadata()
        .get("x-client-id")
        .expect("x-client-id")
        .to_str()
        .expect("ascii")
}

#[tokio::test]
async fn claims_reach_the_grpc_method() {
    let channel = serve(
        RequireScope::all(&validator(), ["health:read"]).expect("scopes"),
        HealthServer::new(WhoAmI),
    )
    .await;
    let mut client = HealthClient::new(channel);
    for (kid, client_name) in [("ec-1", "client-b"), ("rsa-1", "client-c")] {
        let t = token(
            kid,
            json!({ "scope": "health:read", "client_id": client_name }),
        );
        let res = check(&mut client, Some(&bearer(&t))).await.expect("ok");
        assert_eq!(client_id(&res), client_name);
    }
}

#[tokio::test]
async fn optional_layer_lets_anonymous_calls_reach_the_method_without_claims() {
    let channel = serve(
        RequireScope::authenticated(&validator()).optional(),
        HealthServer::new(WhoAmI),
    )
    .await;
    let mut client = HealthClient::new(channel);
    // No token: the layer passes the call on, and `claims()` in the method says
    // UNAUTHENTICATED.
    let status = client
        .check(check_request(None))
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "method: no bearer token");
    let res = client
        .check(check_request(Some(&bearer(&token("ed-1", json!({}))))))
        .await
        .expect("authenticated");
    assert_eq!(client_id(&res), "client-a");
    let expired = bearer(&token("ed-1", json!({ "exp": now() - 3600 })));
    let status = client
        .check(check_request(Some(&expired)))
        .await
        .expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid token");
}
