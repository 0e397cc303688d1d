//! An API over TLS that requires client certificates and certificate-bound access tokens
//! (RFC 8705 §3): `GET /whoami` answers only a token whose `cnf.x5t#S256` is the SHA-256
//! thumbprint of the client certificate of the connection it came on.
//!
//! ```text
//! cargo run --example mtls
//! ```
//!
//! Without environment it makes everything in a fresh temporary directory: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate, an issuer key and a
//! token bound to the client certificate (`token.txt`), and prints a `curl` command to try it.
//!
//! Environment (the test `tests/mtls.rs` sets all of them):
//! - `MTLS_DIR`: a directory with `ca.pem` (the CA client certificates must chain to),
//!   `server.pem` and `server-key.pem`;
//! - `ISSUER`, `AUDIENCE`, `JWKS_FILE`: the tokens' issuer, audience and the issuer's keys;
//! - `BIND` (default `127.0.0.1:8443`).
//!
//! Prints `listening on <addr>` once it accepts connections.
//!
//! How the certificate reaches the check: each accepted TLS connection's client certificate
//! becomes a `PeerCertificate` (`PeerCertificate::from_tls_stream`), and an
//! `AddPeerCertificateLayer` built for that connection puts it into every request served on
//! it. `RequireScope` compares it with the verified token's `cnf.x5t#S256` (RFC 8705 §3):
//! a token bound to another certificate, or presented without one, is refused with 401
//! `invalid_token`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::mtls::{AddPeerCertificateLayer, PeerCertificate};
use bearer_guard::{
    AccessClaims, Claims, KeySet, RequireScope, Validator, keys::Algorithm, keys::Key,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio_rustls::TlsAcceptor;
use tower::Layer as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().with_target(true).init();
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:8443".to_owned())
        .parse()?;

    let (dir, validator) = match std::env::var_os("MTLS_DIR") {
        Some(dir) => {
            let keys = KeySet::from_jwks_json(&std::fs::read(required("JWKS_FILE")?)?)?;
            let validator = Validator::builder()
                .issuer(required("ISSUER")?)
                .audience(required("AUDIENCE")?)
                .keys(keys)
                .build()?;
            (PathBuf::from(dir), validator)
        }
        None => demo_setup(bind)?,
    };

    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&dir)?));
    // The layer checks every certificate-bound token (`cnf.x5t#S256`) against the client
    // certificate of its connection; this route also takes no other kind of token.
    let app = Router::new().route(
        "/whoami",
        get(whoami).layer(
            RequireScope::authenticated(&validator)
                .require_named("certificate-bound", |c: &AccessClaims| x5t(c).is_some()),
        ),
    );

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (tcp, peer_addr) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // The handshake fails for a client without a certificate from our CA.
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return tracing::info!(%peer_addr, "TLS handshake refused: {e}"),
            };
            // One connection, one client certificate: into every request served on it.
            let cert = PeerCertificate::from_tls_stream(&tls);
            let service = AddPeerCertificateLayer::new(cert).layer(app);
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer_addr, "connection ended: {e}");
            }
        });
    }
}

/// `GET /whoami`: the token verified, and bound to this connection's client certificate (the
/// layer checked both).
async fn whoami(
    claims: Claims<AccessClaims>,
    Extension(cert): Extension<PeerCertificate>,
) -> Json<serde_json::Value> {
    Json(json!({
        "client": claims.client_id(),
        "x5t#S256": cert.x5t_s256(),
        "bound_to": x5t(&claims),
    }))
}

/// The token's `cnf.x5t#S256`, if it is certificate-bound.
fn x5t(claims: &AccessClaims) -> Option<&str> {
    claims.extra.get("cnf")?.get("x5t#S256")?.as_str()
}

/// A server config that requires a client certificate chaining to `ca.pem`.
fn tls_config(dir: &Path) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem"))?)?;
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server-key.pem"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Makes a CA, server and client certificates, an issuer key and a bound token in a fresh
/// temporary directory, and prints how to call the API.
fn demo_setup(bind: SocketAddr) -> Result<(PathBuf, Validator), Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let dir = std::env::temp_dir().join(format!("bearer-guard-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text);

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "bearer-guard demo CA");
    let ca_key = KeyPair::generate()?;
    write("ca.pem", &ca.self_signed(&ca_key)?.pem())?;
    let ca = Issuer::new(ca, ca_key);
    for (name, sans, usage) in [
        (
            "server",
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        ("client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages.push(usage);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        write(&format!("{name}.pem"), &cert.pem())?;
        write(&format!("{name}-key.pem"), &key.serialize_pem())?;
        if name == "client" {
            let x5t = PeerCertificate::from_der(cert.der().to_vec())
                .x5t_s256()
                .to_owned();
            let issuer_key = KeyPair::generate()?;
            write("token.txt", &bound_token(&issuer_key, &x5t)?)?;
            std::fs::write(dir.join("issuer.pem"), issuer_key.public_key_pem())?;
        }
    }
    let issuer_public = std::fs::read(dir.join("issuer.pem"))?;
    let validator = Validator::builder()
        .issuer("https://issuer.example")
        .audience("https://api.example")
        .keys(KeySet::new([Key::from_pem(
            &issuer_public,
            Algorithm::ES256,
        )?]))
        .build()?;
    let d = dir.display();
    println!("certificates, keys and a bound token are in {d}; try:");
    println!(
        "  curl --cacert {d}/ca.pem --cert {d}/client.pem --key {d}/client-key.pem \\\n    \
         -H \"Authorization: Bearer $(cat {d}/token.txt)\" https://localhost:{}/whoami",
        bind.port()
    );
    Ok((dir, validator))
}

/// An hour-long access token bound to the certificate thumbprint `x5t`, signed with the
/// demo issuer's key.
fn bound_token(issuer_key: &rcgen::KeyPair, x5t: &str) -> Result<String, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = json!({ "alg": "ES256", "typ": "at+jwt" });
    let claims = json!({
        "iss": "https://issuer.example", "aud": "https://api.example",
        "client_id": "demo-client", "iat": now, "exp": now + 3600,
        "cnf": { "x5t#S256": x5t },
    });
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = jsonwebtoken::EncodingKey::from_ec_der(&issuer_key.serialize_der());
    let signer = (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory)(
        &Algorithm::ES256,
        &key,
    )?;
    Ok(format!(
        "{input}.{}",
        B64.encode(signer.try_sign(input.as_bytes())?)
    ))
}

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is required (with MTLS_DIR)").into())
}
