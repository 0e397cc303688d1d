//! `examples/mtls.rs` end to end, as a real process with real certificates made here (rcgen):
//! a token bound to client certificate A is accepted over mTLS with A, refused with B (401
//! `invalid_token`, by `RequireScope`), a token without binding is refused (403: the route
//! takes bound tokens only), and a client without a certificate
//! from the CA does not get through the handshake. Thumbprints are computed here with `sha2`,
//! independently of the crate.

#[path = "common/example.rs"]
mod example;
use bearer_guard::testkit as mint;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A certificate and its key, as DER.
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Identity {
    fn x5t(&self) -> String {
        use sha2::Digest as _;
        B64.encode(sha2::Sha256::digest(self.cert.as_ref()))
    }
}

/// A CA, and certificates it signs.
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA").der().clone();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (Identity, String, String) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages.push(usage);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let pems = (cert.pem(), key.serialize_pem());
        let identity = Identity {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        };
        (identity, pems.0, pems.1)
    }
}

/// The example process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(ca: &Ca) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "bearer-guard-mtls-test-{}-{}",
        std::process::id(),
        mint::now()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_, server_pem, server_key) = ca.issue(
        "localhost",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let ca_pem = pem("CERTIFICATE", &ca.cert);
    for (name, text) in [
        ("ca.pem", ca_pem.as_str()),
        ("server.pem", &server_pem),
        ("server-key.pem", &server_key),
        ("jwks.json", &mint::jwks(&["ec-1"])),
    ] {
        std::fs::write(dir.join(name), text).expect("write");
    }
    let mut child = Command::new(example::build_example("mtls"))
        .env("MTLS_DIR", &dir)
        .env("JWKS_FILE", dir.join("jwks.json"))
        .env("ISSUER", mint::ISSUER)
        .env("AUDIENCE", mint::AUDIENCE)
        .env("BIND", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("address");
    Server { child, addr, dir }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn client_config(ca: &Ca, identity: Option<&Identity>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![id.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone())),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    }
}

/// `GET /whoami` over a new TLS connection.
async fn whoami(
    server: &Server,
    config: rustls::ClientConfig,
    token: &str,
) -> Result<(StatusCode, Option<String>, Value), Error> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get("/whoami")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = res.into_body().collect().await?.to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, challenge, json))
}

fn bound_token(x5t: Option<&str>) -> String {
    let cnf = match x5t {
        Some(x5t) => json!({ "cnf": { "x5t#S256": x5t } }),
        None => json!({}),
    };
    mint::token("ec-1", cnf)
}

#[tokio::test]
async fn tokens_bound_to_a_client_certificate_work_only_over_it() {
    let ca = Ca::new("test CA");
    let (a, _, _) = ca.issue("client-a", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let (b, _, _) = ca.issue("client-b", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let server = start(&ca);
    let bound_to_a = bound_token(Some(&a.x5t()));

    let (status, _, body) = whoami(&server, client_config(&ca, Some(&a)), &bound_to_a)
        .await
        .expect("request with A");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["x5t#S256"], a.x5t());

    // The same token from another client of the same CA.
    let (status, challenge, _) = whoami(&server, client_config(&ca, Some(&b)), &bound_to_a)
        .await
        .expect("request with B");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );

    // B's own bound token works with B; an unbound token works with neither.
    let (status, _, _) = whoami(
        &server,
        client_config(&ca, Some(&b)),
        &bound_token(Some(&b.x5t())),
    )
    .await
    .expect("request with B");
    assert_eq!(status, StatusCode::OK);
    // The route takes certificate-bound tokens only (a claims requirement): a valid token
    // without binding is not allowed here.
    let (status, challenge, _) = whoami(&server, client_config(&ca, Some(&a)), &bound_token(None))
        .await
        .expect("unbound token");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.expect("challenge").contains("insufficient_scope"));
    // An invalid token is refused by the layer before any binding is looked at.
    let (status, challenge, _) = whoami(&server, client_config(&ca, Some(&a)), "not-a-token")
        .await
        .expect("bad token");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.expect("challenge").contains("invalid_token"));

    // Without a certificate, or with one from another CA, no request gets through.
    assert!(
        whoami(&server, client_config(&ca, None), &bound_to_a)
            .await
            .is_err()
    );
    let stranger_ca = Ca::new("stranger CA");
    let (stranger, _, _) = stranger_ca.issue("client-a", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let token = bound_token(Some(&stranger.x5t()));
    let stranger_config = {
        let mut config = client_config(&ca, None);
        let with_cert = client_config(&stranger_ca, Some(&stranger));
        config.client_auth_cert_resolver = with_cert.client_auth_cert_resolver;
        config
    };
    assert!(whoami(&server, stranger_config, &token).await.is_err());
}
