//! The server of the end-to-end load test (`scripts/loadtest.sh`): one minimal axum handler
//! served twice on one single-threaded runtime, at `/plain` as it is and at `/guard` behind
//! `RequireScope` (static keys, the verified-token cache on). With the same token repeated,
//! the throughput ratio guarded/plain is what the layer costs a real server.
//!
//! ```text
//! cargo bench --bench e2e_server -- 127.0.0.1:18002 /tmp/token   # then wrk (see the script)
//! ```
//!
//! Writes a test token (RS256, signed by the crate's test key, valid ten minutes) to the given file,
//! then prints `listening on <addr>`. With `E2E_METRICS` set, a Prometheus recorder is
//! installed first, so that the crate's counters do their full work.

use axum::Router;
use axum::handler::Handler as _;
use axum::routing::{get, get_service};
use bearer_guard::RequireScope;
use bearer_guard::testkit as mint;
use serde_json::json;
use std::sync::Arc;
use tower::Layer as _;
use tower::util::MapRequestLayer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18002".to_owned());
    let token_file = args.next().ok_or("usage: e2e_server <addr> <token file>")?;

    if std::env::var_os("E2E_METRICS").is_some() {
        metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    }
    let validator = mint::validator();
    let token = mint::token("rsa-1", json!({ "scope": "read" }));
    validator.validate(&token)?;
    std::fs::write(&token_file, &token)?;

    async fn handler() -> &'static str {
        "ok"
    }
    // `/guard` is the same handler as a service behind the layer, so that axum boxes the
    // pair once (`get(handler).layer(..)` boxes the handler, then the pair: one more
    // allocation per request that is axum's, not the layer's; both forms are measured).
    let guard = RequireScope::all(&validator, ["read"])?;
    // `/floor` is what any layer with state that hands the handler one record pays in axum,
    // before it decides anything: axum clones and boxes the route's service per request (free
    // only for a zero-sized one), and http's extension map takes a fourth entry next to
    // axum's three (a box, and the map's growth). `/guard` minus `/floor` is the decision.
    #[derive(Clone)]
    struct Record(#[allow(dead_code)] Arc<str>);
    let state = Arc::new(Record(Arc::from("state")));
    let floor = MapRequestLayer::new(move |mut req: axum::extract::Request| {
        req.extensions_mut().insert((*state).clone());
        req
    });
    let app = Router::new()
        .route("/plain", get(handler))
        .route("/floor", get_service(floor.layer(handler.with_state(()))))
        .route(
            "/guard",
            get_service(guard.clone().layer(handler.with_state(()))),
        )
        .route("/guard-layer", get(handler).layer(guard));

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("listening on {}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(())
        })
}
