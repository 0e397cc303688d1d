//! The MCP server over real sockets, beside the companion issuer (in-process, on its own
//! port): an MCP client without a token is sent to the issuer (401, `resource_metadata`,
//! the RFC 9728 document, the issuer's RFC 8414 metadata), gets a token there, and with it
//! lists and calls the tools through rmcp's own streamable HTTP client; `admin_stats` needs
//! the extra scope, and a call without it is refused with the step-up challenge (403)
//! before rmcp reads it. Then the whole MCP authorization flow with rmcp's OAuth client:
//! discovery from the 401, dynamic registration, PKCE, a user signing in, the tools, and the
//! step-up: refused, re-authorized with the union of its scopes and the challenged ones,
//! served.

use bearer_guard_issuer as issuer;
use bearer_guard_issuer::testing as issuer_server;
use bearer_guard_issuer::testing::oauth;

use std::sync::Arc;

use bearer_guard_mcp_server::{ADMIN_SCOPE, Caller, Settings, StatsReport, TOOLS_SCOPE, build};
use http::{Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use issuer_server::{Reply, Server, client_from, send_with};
use oauth::{cheap_hash, urlencode};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::auth::{AuthorizationCallback, AuthorizationMetadataSource};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{
    AuthClient, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    StreamableHttpClientTransport,
};
use rmcp::{ServiceError, ServiceExt as _};
use serde_json::{Value, json};

const AGENT_SECRET: &str = "agent-secret-0123456789";
const ADMIN_SECRET: &str = "admin-secret-0123456789";
const READER_SECRET: &str = "reader-secret-0123456789";
const ELSEWHERE: &str = "https://elsewhere.test/mcp";

/// The issuer's clients for the MCP resource `resource`: `agent` (`mcp:tools`), `admin`
/// (`mcp:tools`, and `mcp:admin` when it asks), `reader` (a scope of another API only),
/// `roamer` (`mcp:tools`, for another resource); registration open to MCP clients.
fn clients_toml(resource: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "agent"
secret_hash = "{agent}"
scopes = ["{TOOLS_SCOPE}"]
resources = ["{resource}"]

[[clients]]
client_id = "admin"
secret_hash = "{admin}"
scopes = ["{TOOLS_SCOPE}", "{ADMIN_SCOPE}"]
default_scope = "{TOOLS_SCOPE}"
resources = ["{resource}"]

[[clients]]
client_id = "reader"
secret_hash = "{reader}"
scopes = ["read"]
resources = ["{resource}"]

[[clients]]
client_id = "roamer"
secret_hash = "{agent}"
scopes = ["{TOOLS_SCOPE}"]
resources = ["{ELSEWHERE}"]

[registration]
scopes = ["{TOOLS_SCOPE}", "{ADMIN_SCOPE}"]
resources = ["{resource}"]
"#,
        agent = cheap_hash(AGENT_SECRET),
        admin = cheap_hash(ADMIN_SECRET),
        reader = cheap_hash(READER_SECRET),
    )
}

/// The issuer and the MCP server, each on a free loopback port.
struct Setup {
    issuer: Server,
    /// `http://127.0.0.1:<port>/mcp`: the MCP endpoint and the resource identifier.
    mcp: String,
    /// Where RFC 9728 §3.1 puts the metadata of that resource.
    metadata: String,
}

async fn start() -> Setup {
    // The MCP server's address first: the issuer's clients name it as their resource.
    let (listener, addr) = issuer_server::bind().await;
    let public_url = format!("http://{addr}");
    let mcp = format!("{public_url}/mcp");
    let issuer = Server::start_full(
        clients_toml(&mcp),
        issuer::SigningKey::generate(None).expect("key"),
        |_| {},
    )
    .await;
    let settings = Settings {
        issuer: issuer.base.clone(),
        public_url: public_url.clone(),
        bind: addr,
    };
    let server = build(&settings).await.expect("the MCP server starts");
    assert_eq!(server.resource.resource(), mcp);
    tokio::spawn(async move { axum::serve(listener, server.router).await });
    Setup {
        issuer,
        mcp,
        metadata: format!("{public_url}/.well-known/oauth-protected-resource/mcp"),
    }
}

async fn get(url: &str) -> Reply {
    let req = Request::get(url).body(Full::default()).expect("request");
    send_with(&client_from(None), req).await
}

/// A client-credentials token from the token endpoint `endpoint`, for the MCP resource.
async fn token(setup: &Setup, endpoint: &str, id: &str, secret: &str, scope: &str) -> String {
    let path = endpoint
        .strip_prefix(&setup.issuer.base)
        .expect("the token endpoint is the issuer's");
    setup
        .issuer
        .basic_to(
            path,
            id,
            secret,
            &format!(
                "grant_type=client_credentials&scope={}&resource={}",
                urlencode(scope),
                urlencode(&setup.mcp)
            ),
        )
        .await
        .assert_token()
}

/// rmcp's client over its streamable HTTP transport, with this bearer token (or none).
async fn connect(
    mcp: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ClientConfig>, rmcp::service::ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(mcp);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
}

async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &'static str,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
}

/// The structured result of a successful call.
fn structured<T: serde::de::DeserializeOwned>(result: &CallToolResult) -> T {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    serde_json::from_value(
        result
            .structured_content
            .clone()
            .expect("structured content"),
    )
    .expect("the tool's output type")
}

#[tokio::test]
async fn a_client_without_a_token_is_sent_to_the_issuer_and_with_one_uses_the_tools() {
    let setup = start().await;

    // (1) No token: rmcp's client is refused with the RFC 9728 challenge...
    let refused = connect(&setup.mcp, None).await.expect_err("no token");
    // The first 401 names the route's scopes too (MCP authorization, scope selection).
    let challenge = format!(
        r#"Bearer resource_metadata="{}", scope="{TOOLS_SCOPE}""#,
        setup.metadata
    );
    assert!(refused.is_authorization_required(), "{refused:?}");
    assert_eq!(refused.auth_challenge(), Some(challenge.as_str()));
    // ... which is a 401 on the wire, for any MCP request.
    let req = Request::post(&setup.mcp)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Full::new(Bytes::from(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
        )))
        .expect("request");
    let reply = send_with(&client_from(None), req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert_eq!(
        reply.header(header::WWW_AUTHENTICATE),
        Some(challenge.as_str())
    );

    // (2) The metadata names the issuer, the resource and its scopes (RFC 9728 §2)...
    let document = get(&setup.metadata).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(
        document.json(),
        json!({
            "resource": setup.mcp,
            "authorization_servers": [setup.issuer.base],
            "scopes_supported": [ADMIN_SCOPE, TOOLS_SCOPE],
            "bearer_methods_supported": ["header"],
            "resource_name": "bearer-guard MCP example",
        })
    );
    // ... and the issuer's own metadata (RFC 8414) where to get tokens and to register.
    let issuer_url = document.json()["authorization_servers"][0]
        .as_str()
        .expect("issuer")
        .to_owned();
    let as_metadata = get(&format!(
        "{issuer_url}/.well-known/oauth-authorization-server"
    ))
    .await
    .json();
    assert_eq!(as_metadata["issuer"], setup.issuer.iss());
    assert!(
        as_metadata["registration_endpoint"].is_string(),
        "{as_metadata}"
    );
    let token_endpoint = as_metadata["token_endpoint"]
        .as_str()
        .expect("token_endpoint");

    // (3) A token for the resource, then rmcp's client with it: initialize, list, call.
    let agent = token(&setup, token_endpoint, "agent", AGENT_SECRET, TOOLS_SCOPE).await;
    let client = connect(&setup.mcp, Some(&agent))
        .await
        .expect("initialized with a token");
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect();
    tools.sort();
    assert_eq!(tools, ["admin_stats", "echo", "whoami"]);
    let echoed = call(&client, "echo", json!({"text": "héllo, MCP"}))
        .await
        .expect("echo");
    assert_eq!(
        echoed.content[0].as_text().map(|t| t.text.as_str()),
        Some("héllo, MCP")
    );
    let caller: Caller = structured(&call(&client, "whoami", json!({})).await.expect("whoami"));
    assert_eq!(caller.issuer, setup.issuer.iss());
    assert_eq!(caller.client_id.as_deref(), Some("agent"));
    assert_eq!(caller.scopes, [TOOLS_SCOPE]);

    // (4) admin_stats without mcp:admin: refused before rmcp reads the call, with the
    // step-up challenge naming the scope this operation needs; the client goes on.
    let step_up = step_up_challenge(&setup);
    let refused = call(&client, "admin_stats", json!({}))
        .await
        .expect_err("mcp:tools alone");
    assert_eq!(
        refused.auth_challenge(),
        Some(step_up.as_str()),
        "{refused:?}"
    );
    call(&client, "echo", json!({"text": "still here"}))
        .await
        .expect("the client goes on after a refused call");
    // The admin client, with a token of mcp:tools only, is refused as well...
    let admin_without = token(&setup, token_endpoint, "admin", ADMIN_SECRET, TOOLS_SCOPE).await;
    let admin_client = connect(&setup.mcp, Some(&admin_without))
        .await
        .expect("initialized");
    let refused = call(&admin_client, "admin_stats", json!({}))
        .await
        .expect_err("mcp:tools alone");
    assert_eq!(
        refused.auth_challenge(),
        Some(step_up.as_str()),
        "{refused:?}"
    );
    // ... and served with one that grants mcp:admin.
    let both = format!("{TOOLS_SCOPE} {ADMIN_SCOPE}");
    let admin = token(&setup, token_endpoint, "admin", ADMIN_SECRET, &both).await;
    let admin_client = connect(&setup.mcp, Some(&admin))
        .await
        .expect("initialized");
    let stats: StatsReport = structured(
        &call(&admin_client, "admin_stats", json!({}))
            .await
            .expect("admin_stats with mcp:admin"),
    );
    // The refused calls never ran: admin_stats ran once, for the token that may.
    assert_eq!(
        (
            stats.echo_calls,
            stats.whoami_calls,
            stats.admin_stats_calls
        ),
        (2, 1, 1)
    );
}

/// The 403 a call of `admin_stats` without `mcp:admin` gets (RFC 6750 §3.1, MCP step-up).
fn step_up_challenge(setup: &Setup) -> String {
    format!(
        r#"Bearer resource_metadata="{}", error="insufficient_scope", scope="{ADMIN_SCOPE}""#,
        setup.metadata
    )
}

/// A JSON-RPC message POSTed to the MCP endpoint as an MCP client sends it, with `token`.
async fn post_mcp(setup: &Setup, token: &str, message: Value) -> Reply {
    let req = Request::post(&setup.mcp)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(Full::new(Bytes::from(message.to_string())))
        .expect("request");
    send_with(&client_from(None), req).await
}

#[tokio::test]
async fn over_http_a_token_of_mcp_tools_initializes_and_echoes_and_gets_403_for_admin_stats() {
    let setup = start().await;
    let endpoint = format!("{}/oauth/token", setup.issuer.base);
    let agent = token(&setup, &endpoint, "agent", AGENT_SECRET, TOOLS_SCOPE).await;

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let reply = post_mcp(&setup, &agent, initialize).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.json()["result"]["serverInfo"].is_object(),
        "{}",
        reply.text()
    );

    let call = |id: u32, tool: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": "raw"}}})
    };
    let reply = post_mcp(&setup, &agent, call(2, "echo")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["result"]["content"][0]["text"], "raw");

    let reply = post_mcp(&setup, &agent, call(3, "admin_stats")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(
        reply.header(header::WWW_AUTHENTICATE),
        Some(step_up_challenge(&setup).as_str())
    );
    assert!(reply.body.is_empty(), "{}", reply.text());

    // With mcp:admin, the same call runs, for the first time: the refused one never did.
    let admin = token(
        &setup,
        &endpoint,
        "admin",
        ADMIN_SECRET,
        &format!("{TOOLS_SCOPE} {ADMIN_SCOPE}"),
    )
    .await;
    let reply = post_mcp(&setup, &admin, call(4, "admin_stats")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let stats = &reply.json()["result"]["structuredContent"];
    assert_eq!(stats["admin_stats_calls"], 1, "{stats}");
    assert_eq!(stats["echo_calls"], 1, "{stats}");
}

#[tokio::test]
async fn tokens_without_the_scope_or_for_another_resource_are_refused_over_http() {
    let setup = start().await;
    let endpoint = format!("{}/oauth/token", setup.issuer.base);

    // A valid token of this resource without mcp:tools: 403 naming the scope (step-up).
    let reader = token(&setup, &endpoint, "reader", READER_SECRET, "read").await;
    let refused = connect(&setup.mcp, Some(&reader))
        .await
        .expect_err("no mcp:tools");
    assert_eq!(
        refused.auth_challenge(),
        Some(
            format!(
                r#"Bearer resource_metadata="{}", error="insufficient_scope", scope="{TOOLS_SCOPE}""#,
                setup.metadata
            )
            .as_str()
        )
    );

    // A token the same issuer minted for another resource: 401 invalid_token.
    let roamer = setup
        .issuer
        .basic(
            "roamer",
            AGENT_SECRET,
            &format!(
                "grant_type=client_credentials&resource={}",
                urlencode(ELSEWHERE)
            ),
        )
        .await
        .assert_token();
    let refused = connect(&setup.mcp, Some(&roamer))
        .await
        .expect_err("another audience");
    assert_eq!(
        refused.auth_challenge(),
        Some(
            format!(
                r#"Bearer resource_metadata="{}", error="invalid_token""#,
                setup.metadata
            )
            .as_str()
        )
    );

    // A token that does not verify (its signature altered): 401 invalid_token.
    let agent = token(&setup, &endpoint, "agent", AGENT_SECRET, TOOLS_SCOPE).await;
    let (signed, signature) = agent.rsplit_once('.').expect("a JWS");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    let refused = connect(&setup.mcp, Some(&forged))
        .await
        .expect_err("a forged token");
    assert!(
        refused
            .auth_challenge()
            .is_some_and(|c| c.ends_with(r#"error="invalid_token""#)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_mcp_client_discovers_the_issuer_registers_and_signs_its_user_in() {
    let setup = start().await;

    // The 401's challenge is where rmcp's OAuth client starts (MCP authorization, RFC 9728).
    let refused = connect(&setup.mcp, None).await.expect_err("no token");
    let challenge = refused.auth_challenge().expect("a challenge").to_owned();
    let mut manager = AuthorizationManager::new(setup.mcp.as_str())
        .await
        .expect("manager");
    let resolution = manager
        .resolve_metadata_from_challenge(Some(&challenge))
        .await
        .expect("discovery");
    assert!(
        matches!(
            resolution.source,
            AuthorizationMetadataSource::ProtectedResourceMetadata
        ),
        "found through the resource's metadata, not guessed"
    );
    let base = &setup.issuer.base;
    assert_eq!(
        resolution.metadata.token_endpoint,
        format!("{base}/oauth/token")
    );
    manager.set_metadata(resolution.metadata);

    // Dynamic registration (RFC 7591), then the authorization request (PKCE S256) for the
    // scopes of the 401 (MCP's scope selection: the challenge first), not all of
    // `scopes_supported`.
    let session = AuthorizationSession::new(
        manager,
        AuthorizationRequest::new(issuer_server::REDIRECT)
            .with_client_name("rmcp test client")
            .with_challenge(challenge)
            .with_initial_scope_selection(),
    )
    .await
    .map_err(|(_, e)| e)
    .expect("registered");
    let auth_url = session.get_authorization_url().to_owned();
    let query = auth_url
        .strip_prefix(&format!("{base}/oauth/authorize?"))
        .unwrap_or_else(|| panic!("{auth_url} is not the issuer's authorization endpoint"));
    assert_eq!(
        issuer_server::query_value(query, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        issuer_server::query_value(query, "scope").as_deref(),
        Some(TOOLS_SCOPE)
    );

    // alice signs in on the issuer's page (its form, posted as a browser would) and is sent
    // back to the client with a code, which the client redeems.
    let reply = setup
        .issuer
        .form_to(
            "/oauth/authorize",
            &format!(
                "{query}&username=alice&password={}&approve=yes",
                urlencode(issuer_server::ALICE_PASSWORD)
            ),
        )
        .await;
    session
        .handle_callback_url(&reply.location())
        .await
        .expect("the code redeemed");

    // The client's transport now sends alice's token: the tools answer.
    let auth_client = AuthClient::new(reqwest::Client::default(), session.auth_manager);
    let manager = Arc::clone(&auth_client.auth_manager);
    let transport = StreamableHttpClientTransport::with_client(
        auth_client,
        StreamableHttpClientTransportConfig::with_uri(setup.mcp.as_str()),
    );
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialized with alice's token");
    let caller: Caller = structured(&call(&client, "whoami", json!({})).await.expect("whoami"));
    assert_eq!(caller.issuer, setup.issuer.iss());
    assert_eq!(caller.subject.as_deref(), Some("alice"));
    assert!(
        caller
            .client_id
            .as_deref()
            .is_some_and(|id| id.starts_with("dyn-")),
        "a registered client: {caller:?}"
    );
    assert_eq!(caller.scopes, [TOOLS_SCOPE], "{caller:?}");
    let echoed = call(&client, "echo", json!({"text": "from alice"}))
        .await
        .expect("echo");
    assert_eq!(
        echoed.content[0].as_text().map(|t| t.text.as_str()),
        Some("from alice")
    );

    // Step-up: admin_stats is refused with the scope it needs...
    let refused = call(&client, "admin_stats", json!({}))
        .await
        .expect_err("alice's token has mcp:tools only");
    let challenge = refused.auth_challenge().expect("a 403 challenge");
    assert_eq!(challenge, step_up_challenge(&setup));
    let needed = auth_param(challenge, "scope").expect("the challenge names a scope");
    // ... the client asks alice again, for the union of what it has and what it was told
    // (rmcp's scope upgrade), and the issuer lets the client it registered with mcp:tools
    // ask for mcp:admin too (alice consents to what is asked)...
    let auth_url = manager
        .lock()
        .await
        .request_scope_upgrade(&needed)
        .await
        .expect("scope upgrade");
    let query = auth_url
        .strip_prefix(&format!("{base}/oauth/authorize?"))
        .unwrap_or_else(|| panic!("{auth_url} is not the issuer's authorization endpoint"));
    let union = format!("{TOOLS_SCOPE} {ADMIN_SCOPE}");
    assert_eq!(
        issuer_server::query_value(query, "scope").as_deref(),
        Some(union.as_str())
    );
    let page = setup.issuer.get(&format!("/oauth/authorize?{query}")).await;
    assert!(
        page.text().contains(&format!("<code>{ADMIN_SCOPE}</code>")),
        "consent for what is asked: {}",
        page.text()
    );
    let reply = setup
        .issuer
        .form_to(
            "/oauth/authorize",
            &format!(
                "{query}&username=alice&password={}&approve=yes",
                urlencode(issuer_server::ALICE_PASSWORD)
            ),
        )
        .await;
    let callback = AuthorizationCallback::from_redirect_url(&reply.location()).expect("a code");
    manager
        .lock()
        .await
        .exchange_code_for_token_with_issuer(
            &callback.code,
            &callback.csrf_token,
            callback.issuer.as_deref(),
        )
        .await
        .expect("the code redeemed");
    // ... and the same client's call then succeeds, with the new token.
    let stats: StatsReport = structured(
        &call(&client, "admin_stats", json!({}))
            .await
            .expect("admin_stats after the step-up"),
    );
    assert_eq!(stats.admin_stats_calls, 1);
    let caller: Caller = structured(&call(&client, "whoami", json!({})).await.expect("whoami"));
    assert_eq!(caller.scopes, [TOOLS_SCOPE, ADMIN_SCOPE], "{caller:?}");
}

/// The value of the auth-param `name` of a `WWW-Authenticate` challenge (quoted-string, no
/// escapes: what the crate sends).
fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}
