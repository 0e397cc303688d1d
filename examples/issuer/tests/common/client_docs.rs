//! The https side of the issuer's tests of client documents (`client_metadata.rs`,
//! `client_jwks_uri.rs`): a test CA and a loopback https server of canned answers that counts
//! its requests per path; the issuer trusting that CA; and clients' assertions
//! (`private_key_jwt`), signed with the crate's test keys or a fresh Ed25519 key.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::testkit;
use bearer_guard_issuer::testing::oauth::urlencode;
use bearer_guard_issuer::testing::{Server, new_verifier};
use bearer_guard_issuer::{Config, SigningKey};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

// --- A test CA and an https server of documents -------------------------------------------

/// A test CA (rcgen), as in the crate's `tests/common/https_issuer.rs`.
pub struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
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

    /// A server certificate for `sans`, and its key.
    pub fn server(&self, sans: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, sans[0]);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    pub fn pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.cert.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

/// One canned answer.
#[derive(Clone)]
pub struct Canned {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// A body of unknown length: sent chunked, without `Content-Length`.
pub struct Chunked(Option<Bytes>);

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Documents at `https://localhost:<port>/<path>`, with a count of the requests per path.
pub struct Docs {
    pub base: String,
    pub ca_pem: String,
    pub answers: Arc<Mutex<HashMap<String, Canned>>>,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Docs {
    pub async fn start() -> Docs {
        let ca = Ca::new("client metadata test CA");
        let (cert, key) = ca.server(&["localhost"]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers: Arc<Mutex<HashMap<String, Canned>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (a, h) = (answers.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, answers, hits) = (acceptor.clone(), a.clone(), h.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned();
                        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                        let canned = answers.lock().unwrap().get(&path).cloned();
                        let canned = canned.unwrap_or(Canned {
                            status: StatusCode::NOT_FOUND,
                            headers: vec![],
                            body: String::new(),
                        });
                        // `transfer-encoding: chunked` asks for a body without a length.
                        let chunked = canned
                            .headers
                            .iter()
                            .any(|(n, _)| *n == "transfer-encoding");
                        let body = Bytes::from(canned.body);
                        let body = if chunked {
                            Chunked(Some(body)).boxed()
                        } else {
                            Full::new(body).boxed()
                        };
                        let mut res = Response::new(body);
                        *res.status_mut() = canned.status;
                        for (name, value) in canned
                            .headers
                            .into_iter()
                            .filter(|(n, _)| *n != "transfer-encoding")
                        {
                            res.headers_mut()
                                .insert(name, value.parse().expect("header value"));
                        }
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Docs {
            base: format!("https://localhost:{port}"),
            ca_pem: ca.pem(),
            answers,
            hits,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn answer(&self, path: &str, canned: Canned) {
        self.answers.lock().unwrap().insert(path.to_owned(), canned);
    }

    /// `body` as `application/json` with `Cache-Control: <cache>`.
    pub fn json(&self, path: &str, body: &Value, cache: &str) {
        self.answer(
            path,
            Canned {
                status: StatusCode::OK,
                headers: vec![
                    ("content-type", "application/json; charset=utf-8".into()),
                    ("cache-control", cache.into()),
                ],
                body: body.to_string(),
            },
        );
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

// --- The issuer ---------------------------------------------------------------------------

/// An issuer of `clients` trusting the CA of `docs`, loopback fetches allowed or not.
pub async fn issuer_trusting(docs: &Docs, allow_loopback: bool, clients: String) -> Server {
    let ca = CaFile::new(&docs.ca_pem);
    let adjust = |config: &mut Config| {
        config.client_metadata_allow_loopback = allow_loopback;
        config.client_metadata_ca_file = Some(ca.0.clone());
    };
    Server::start_full(clients, SigningKey::generate(None).expect("key"), adjust).await
}

// --- Client assertions (private_key_jwt) --------------------------------------------------

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's signing key and its public JWK (with `kid`).
pub struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    /// The crate's test key `name` (`ed-1`, `ec-1`, `rsa-1`, ...) under `kid`.
    pub fn test_key(name: &str, kid: &str) -> Signer {
        let (alg, key) = testkit::encoding_key(name);
        let mut jwk = testkit::jwk(name);
        jwk["kid"] = json!(kid);
        Signer { alg, key, jwk }
    }

    /// A fresh Ed25519 key under `kid`.
    pub fn ed25519(kid: &str) -> Signer {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random");
        der.extend_from_slice(&seed);
        let x = (DEFAULT_PROVIDER
            .key_utils
            .ed_pub_components_from_private_key)(&der, &EllipticCurve::Ed25519)
        .expect("public key");
        Signer {
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&der),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x), "kid": kid}),
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A good assertion of `client_id` for `server`, its header naming this key's `kid`.
    pub fn assertion(&self, client_id: &str, server: &Server) -> String {
        let header = json!({"typ": "JWT", "kid": self.jwk["kid"]});
        self.sign(header, &assertion_claims(client_id, server))
    }

    /// A JWS of `claims` under `header` (its `alg` this key's unless given).
    pub fn sign(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = json!(testkit::alg_name(self.alg));
        }
        testkit::sign_raw(
            self.alg,
            &self.key,
            &header.to_string(),
            &claims.to_string(),
        )
    }
}

/// `{"keys": [...]}` of the signers' public keys.
pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

/// Good claims of an assertion of `client_id` for `server`.
pub fn assertion_claims(client_id: &str, server: &Server) -> Value {
    let now = testkit::now();
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).expect("random");
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": server.iss(),
        "jti": B64.encode(jti),
        "iat": now,
        "exp": now + 60,
    })
}

/// The form members of a client assertion.
pub fn assertion_form(assertion: &str) -> String {
    format!(
        "client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        urlencode(assertion)
    )
}

/// The test CA's PEM in a file of its own (removed on drop).
pub struct CaFile(pub PathBuf);

impl CaFile {
    pub fn new(pem: &str) -> CaFile {
        let path = std::env::temp_dir().join(format!(
            "cimd-ca-{}-{}.pem",
            std::process::id(),
            new_verifier()
        ));
        std::fs::write(&path, pem).expect("write CA file");
        CaFile(path)
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
