//! A protected resource server: `GET /protected-resource` needs an access token with the
//! configured scope, `POST /protected-resource` that scope and `write`, as a `Bearer` token,
//! or as a DPoP-bound token with its proof.
//!
//! ```text
//! ISSUER=http://127.0.0.1:8000 AUDIENCE=http://127.0.0.1:8001 cargo run --example resource_server
//! ```
//!
//! Environment:
//! - `ISSUER` (required): the issuer, or several separated by commas (a token is checked
//!   with its own issuer's keys, found through each issuer's discovery document, RFC 8414
//!   then OpenID Connect);
//! - `AUDIENCE` (required): this API's resource identifier: tokens' `aud` must name it, and
//!   it is the `resource` of the RFC 9728 metadata served at
//!   `GET /.well-known/oauth-protected-resource` (whose `authorization_servers` are the
//!   issuers); every 401 points at that document (`resource_metadata`);
//! - `JWKS_FILE` or `JWKS_URL`: the issuer's keys from a file or a URL instead of discovery
//!   (one issuer only);
//! - `INTROSPECTION_CLIENT_ID` and `INTROSPECTION_CLIENT_SECRET`: opaque tokens are
//!   introspected (RFC 7662) as this client, at `INTROSPECTION_URL` or the endpoint the
//!   (first) issuer's metadata names; JWTs of the issuers are still verified here (mixed
//!   mode). `INTROSPECTION_CACHE_TTL` (seconds, default 60): how long an answer is trusted,
//!   the longest a token revoked at the issuer can still be accepted;
//! - `ISSUER_CA_FILE`: a PEM file of CA certificates, the only roots trusted for the
//!   issuers' https endpoints (discovery, keys, introspection): an issuer behind a private CA;
//! - `REQUIRED_SCOPE` (default `read`): the scope `/protected-resource` requires;
//! - `REQUIRED_ACR` (e.g. `urn:bearer-guard:acr:mfa`; several separated by commas, any one
//!   will do): `/protected-resource` (both methods) also requires the user's sign-in behind
//!   the token to be of one of these `acr` values (RFC 9470). A token without one of them
//!   (a client-credentials token has no `acr`) gets `401` with
//!   `WWW-Authenticate: Bearer …, error="insufficient_user_authentication", acr_values="…"`:
//!   the client sends its user to the issuer again with those `acr_values` (the companion
//!   issuer then asks for a one-time code after the password);
//! - `MAX_AUTH_AGE` (seconds): `/protected-resource` also requires the user to have signed
//!   in at most this long ago (the token's `auth_time`); a token with an older `auth_time`,
//!   or none, gets `401` `insufficient_user_authentication` with `max_age="<seconds>"` (with
//!   `REQUIRED_ACR` too, the challenge names both);
//! - `PUBLIC_URL`: the origin clients use (DPoP proofs' `htu` must match it); default
//!   `http://` + the request's `Host`;
//! - `RATE_LIMIT` (e.g. `120/minute`, `10/second`): a quota per client on
//!   `/protected-resource`, both methods together (a burst of 120, refilled at 120 a minute),
//!   429 over it;
//! - `REDIS_URL`: one URL (`redis://127.0.0.1:6379/`) for a single node, two or more
//!   comma-separated URLs for a Redis Cluster's seed nodes, or
//!   `redis+sentinel://[user:password@]host:26379,host:26379/<master>[/db]` (the same value
//!   as the issuer's). Shared by every replica pointing at it: revoked tokens (written by the
//!   issuer's `POST /oauth/revoke`; tokens without `jti` are then refused), mirrored in
//!   process and refreshed every 250 ms, so that no request waits for Redis: a revoked token
//!   is refused at most 1 s after the issuer answered, and while the copy is older than that
//!   (Redis down, a failover) requests are refused with 503; the DPoP replay store; and the
//!   quotas of `RATE_LIMIT`, which are decided locally on cells lent by Redis (up to 1024 at a
//!   time, topped up in the background: a client can exceed its quota by at most 1023
//!   requests per replica, and by at most one second's worth of it in all);
//! - `RATE_LIMIT_EXACT=1`: with `REDIS_URL`, one round trip to Redis per request instead
//!   (no lent cells);
//! - `BIND` (default `127.0.0.1:8001`); `RUST_LOG` (default `info`), logs on stderr.
//!
//! Also serves `GET /openapi.json`, for the clients and tools that read OpenAPI: an OpenAPI
//! 3.1 document of the guarded routes, with one OpenID Connect security scheme per issuer
//! (its discovery document) and, on each route, the scopes the route's own layer requires
//! (`examples/support/resource_server.rs`; `servers` is `PUBLIC_URL` when set); `GET
//! /metrics` (Prometheus text) and `GET /healthz`. Prints `listening on <addr>` on stdout
//! once it accepts connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bearer_guard::dpop::{Dpop, RedisReplay};
use bearer_guard::rate_limit::{Quota, RateLimitByClient, RedisQuotas};
use bearer_guard::redis_conn::RedisConnection;
use bearer_guard::revocation::RedisRevocations;
use bearer_guard::{
    Guard, Issuer, KeySet, RemoteKeys, Validator, introspection::Introspection,
    metadata::ProtectedResource,
};
use tracing_subscriber::EnvFilter;

mod support {
    pub mod resource_server;
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let issuers: Vec<String> = required("ISSUER")?
        .split(',')
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect();
    let audience = required("AUDIENCE")?;
    let scope = optional("REQUIRED_SCOPE").unwrap_or_else(|| "read".to_owned());
    let authentication = support::resource_server::Authentication {
        acr: optional("REQUIRED_ACR")
            .iter()
            .flat_map(|acr| acr.split(','))
            .map(|acr| acr.trim().to_owned())
            .filter(|acr| !acr.is_empty())
            .collect(),
        max_age: match optional("MAX_AUTH_AGE") {
            Some(secs) => Some(Duration::from_secs(
                secs.parse()
                    .map_err(|_| "MAX_AUTH_AGE: a number of seconds")?,
            )),
            None => None,
        },
    };
    let bind: SocketAddr = optional("BIND")
        .unwrap_or_else(|| "127.0.0.1:8001".to_owned())
        .parse()?;
    // One connection (single node, Cluster or Sentinel), shared by the three stores. The URL
    // may carry a password: never logged (the connection's errors leave it out).
    let redis = match optional("REDIS_URL") {
        Some(url) => Some(
            RedisConnection::builder(&url)
                .connect()
                .await
                .map_err(|e| format!("REDIS_URL: {e}"))?,
        ),
        None => None,
    };

    // The validator: who may issue tokens for this API, and how they are checked.
    let tls = match optional("ISSUER_CA_FILE") {
        Some(path) => Some(bearer_guard::remote::private_ca(&std::fs::read(&path)?)?),
        None => None,
    };
    let remote = |keys: RemoteKeys| match &tls {
        Some(tls) => keys.tls_config(tls.clone()),
        None => keys,
    };
    let mut builder = Validator::builder().audience(audience.as_str());
    builder = match (
        issuers.as_slice(),
        optional("JWKS_FILE"),
        optional("JWKS_URL"),
    ) {
        ([issuer], Some(path), _) => builder
            .issuer(issuer)
            .keys(KeySet::from_jwks_json(&std::fs::read(&path)?)?),
        ([issuer], None, Some(url)) => builder
            .issuer(issuer)
            .keys(remote(RemoteKeys::jwks_url(url))),
        (_, None, None) => issuers.iter().fold(builder, |b, issuer| {
            b.trust(Issuer::new(issuer).keys(remote(RemoteKeys::discover(issuer))))
        }),
        _ => return Err("JWKS_FILE and JWKS_URL take a single ISSUER".into()),
    };
    if let Some(introspection) = introspection(&issuers[0], tls.as_ref())? {
        builder = builder.introspection(introspection);
    }
    if let Some(conn) = &redis {
        // Revocations mirrored in process (refreshed every 250 ms): no round trip per
        // request; a revoked token is refused within 1 s, and 503 while Redis cannot be read.
        let revocations = RedisRevocations::new(conn.clone()).mirror(Duration::from_secs(1));
        builder = builder.revocation(Arc::new(revocations));
    }
    let validator = builder.build()?;
    // Fetch the keys now: a service that starts is a service that can authenticate. With
    // several issuers, one that is down only gets its own tokens refused (503) for now.
    if let Err(err) = validator.ready().await {
        if issuers.len() == 1 {
            return Err(err.into());
        }
        tracing::warn!("starting without some issuers' keys: {err}");
    }

    // The HTTP side: DPoP proofs, RFC 9728 metadata, the challenges pointing at it.
    let public_url = optional("PUBLIC_URL");
    let mut dpop = Dpop::builder();
    dpop = match &public_url {
        Some(origin) => dpop.external_origin(origin.as_str()),
        None => dpop.origin_from_host("http"),
    };
    if let Some(conn) = &redis {
        dpop = dpop.replay(Arc::new(RedisReplay::new(conn.clone())));
    }
    let dpop = dpop.build()?;
    let metadata = issuers
        .iter()
        .fold(
            ProtectedResource::builder(audience.as_str()),
            |m, issuer| m.authorization_server(issuer),
        )
        .dpop(&dpop, false)
        .build()?;
    let guard = Guard::new(&validator)
        .protected_resource(&metadata)?
        .dpop(dpop);

    let rate_limit = match optional("RATE_LIMIT") {
        None => None,
        Some(quota) => {
            let quota: Quota = quota.parse().map_err(|e| format!("RATE_LIMIT: {e}"))?;
            let limit = RateLimitByClient::builder(quota);
            Some(match &redis {
                Some(conn) => {
                    let mut quotas = RedisQuotas::with_connection(conn.clone());
                    if optional("RATE_LIMIT_EXACT").is_none() {
                        // Decided locally on lent cells, refilled off the request path.
                        quotas = quotas.batch(1024, Duration::from_secs(1));
                    }
                    limit.redis(quotas.connect().await?).build()
                }
                None => limit.build(),
            })
        }
    };

    let app = support::resource_server::app(
        &guard,
        &scope,
        support::resource_server::Extras {
            authentication,
            rate_limit,
            metadata: Some(metadata),
            metrics: Some(metrics),
            openapi: Some(support::resource_server::ApiDocs {
                issuers: issuers.clone(),
                server_url: public_url,
            }),
        },
    )?;

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Introspection, when `INTROSPECTION_CLIENT_ID` and `INTROSPECTION_CLIENT_SECRET` are set.
fn introspection(
    issuer: &str,
    tls: Option<&rustls::ClientConfig>,
) -> Result<Option<Introspection>, Error> {
    let (Some(client_id), Some(secret)) = (
        optional("INTROSPECTION_CLIENT_ID"),
        optional("INTROSPECTION_CLIENT_SECRET"),
    ) else {
        return Ok(None);
    };
    let mut introspection = match optional("INTROSPECTION_URL") {
        Some(url) => Introspection::builder(url, client_id, secret).issuer(issuer),
        None => Introspection::discover(issuer, client_id, secret),
    };
    if let Some(ttl) = optional("INTROSPECTION_CACHE_TTL") {
        let seconds: u64 = ttl
            .parse()
            .map_err(|_| "INTROSPECTION_CACHE_TTL: a number of seconds")?;
        introspection = introspection.ttl(Duration::from_secs(seconds));
    }
    if let Some(tls) = tls {
        introspection = introspection.tls_config(tls.clone());
    }
    Ok(Some(introspection.build()?))
}

fn required(name: &str) -> Result<String, Error> {
    optional(name).ok_or_else(|| format!("environment variable {name} is required").into())
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
