//! DPoP on the outgoing side (RFC 9449): the layer's key signs a fresh proof for every token
//! request and every call that carries a DPoP-bound token, and the servers' latest nonces
//! are remembered per origin for the next proofs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::error::{TokenError, TokenErrorKind};
use super::origin::Origin;
pub(crate) use crate::dpop::DPOP_NONCE;
use crate::dpop::{DpopKey, ProofError};

/// The `DPoP` request header.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// Longest nonce remembered; a longer one is ignored.
const MAX_NONCE_LEN: usize = 1024;
/// Most origins whose nonce is remembered. Proofs only go to the token endpoint and the
/// allowed origins, so this is only a backstop.
const MAX_ORIGINS: usize = 64;

/// The layer's DPoP key and what the servers said about nonces.
pub(crate) struct DpopState {
    key: DpopKey,
    /// The latest `DPoP-Nonce` each origin sent.
    nonces: Mutex<HashMap<Origin, Box<str>>>,
}

impl DpopState {
    pub(crate) fn new(key: DpopKey) -> Self {
        DpopState {
            key,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A fresh proof (the value of the `DPoP` header, marked sensitive) for a `method` request
    /// to the absolute `uri`: `htu` is its scheme, authority (without userinfo) and path;
    /// `ath` hashes `access_token` when given (calls to an API; not token requests); `nonce`
    /// is the latest one of the origin, if any.
    pub(crate) fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, TokenError> {
        let (Some(htu), Some(origin)) = (htu(uri), Origin::of(uri)) else {
            return Err(TokenError::new(TokenErrorKind::Proof)
                .with_detail("the request's URI is not an absolute http(s) URI"));
        };
        let mut proof = self.key.proof(method, &htu);
        if let Some(token) = access_token {
            proof = proof.access_token(token);
        }
        if let Some(nonce) = self.nonce(&origin) {
            proof = proof.nonce(nonce);
        }
        let signed = proof.sign().map_err(|e| {
            let detail = match e {
                ProofError::Random => "no randomness for its jti",
                _ => "the key could not sign it",
            };
            TokenError::new(TokenErrorKind::Proof).with_detail(detail)
        })?;
        let mut value = HeaderValue::try_from(signed).map_err(|_| {
            TokenError::new(TokenErrorKind::Proof).with_detail("the proof is no header value")
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Remembers the `DPoP-Nonce` of a response from `origin`, if it sent a well-formed one
    /// (RFC 9449 §8: `1*NQCHAR`); says whether it did.
    pub(crate) fn remember(&self, origin: &Origin, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(DPOP_NONCE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let nonce = value.as_bytes();
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || !nonce.iter().all(|&b| is_nqchar(b)) {
            tracing::debug!(
                target: "bearer_guard::client",
                reason = "invalid_dpop_nonce",
                origin = %origin,
                "ignored a DPoP-Nonce that is not 1*NQCHAR (or longer than 1 KiB)"
            );
            return false;
        }
        // NQCHAR is ASCII.
        let Ok(nonce) = std::str::from_utf8(nonce) else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(origin) {
            nonces.clear();
        }
        nonces.insert(origin.clone(), nonce.into());
        true
    }

    fn nonce(&self, origin: &Origin) -> Option<String> {
        let nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        nonces.get(origin).map(|n| n.to_string())
    }
}

impl fmt::Debug for DpopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopState")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// `NQCHAR = %x21 / %x23-5B / %x5D-7E` (RFC 9449 §8.1).
fn is_nqchar(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// `scheme://host[:port]/path` of an absolute URI: no userinfo, query or fragment.
fn htu(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    Some(format!("{scheme}://{host_port}{}", uri.path()))
}

/// Whether a resource server's `WWW-Authenticate` asks for a DPoP nonce (RFC 9449 §9:
/// `DPoP error="use_dpop_nonce"`).
pub(crate) fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.to_ascii_lowercase();
        // A `DPoP` challenge (its scheme a token of its own) with the error, quoted or not.
        let dpop_scheme = value
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|token| token == "dpop");
        dpop_scheme
            && (value.contains("error=\"use_dpop_nonce\"")
                || value.contains("error=use_dpop_nonce"))
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    use super::*;

    fn claims(proof: &HeaderValue) -> Value {
        let text = proof.to_str().expect("ascii");
        let payload = text.split('.').nth(1).expect("payload");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
    }

    fn state() -> DpopState {
        DpopState::new(DpopKey::generate().expect("key"))
    }

    #[test]
    fn a_proof_names_the_request_without_query_fragment_or_userinfo_and_hashes_the_token() {
        let dpop = state();
        let uri: Uri = "https://u:p@API.example:8443/a/b?x=1".parse().expect("uri");
        let proof = dpop
            .proof(&Method::PUT, &uri, Some("tok-1"))
            .expect("proof");
        assert!(proof.is_sensitive());
        let c = claims(&proof);
        assert_eq!(c["htm"], "PUT");
        assert_eq!(c["htu"], "https://API.example:8443/a/b");
        // base64url(SHA-256("tok-1")).
        let ath = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(b"tok-1"));
        assert_eq!(c["ath"], ath);
        assert!(c.get("nonce").is_none());
        // Token requests carry no `ath`; every proof has its own `jti`.
        let token_request = dpop
            .proof(
                &Method::POST,
                &"https://issuer.example/token".parse().expect("uri"),
                None,
            )
            .expect("proof");
        let t = claims(&token_request);
        assert!(t.get("ath").is_none());
        assert_ne!(t["jti"], c["jti"]);
        // A relative URI has no htu.
        let err = dpop
            .proof(&Method::GET, &"/relative".parse().expect("uri"), None)
            .expect_err("relative");
        assert_eq!(err.kind(), TokenErrorKind::Proof);
    }

    #[test]
    fn nonces_are_remembered_per_origin_and_only_when_well_formed() {
        let dpop = state();
        let api: Uri = "https://api.example/x".parse().expect("uri");
        let other: Uri = "https://other.example/x".parse().expect("uri");
        let origin = Origin::of(&api).expect("origin");
        let mut headers = HeaderMap::new();
        headers.insert(
            DPOP_NONCE,
            HeaderValue::from_static("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
        );
        assert!(dpop.remember(&origin, &headers));
        let with = claims(&dpop.proof(&Method::GET, &api, Some("t")).expect("proof"));
        assert_eq!(with["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
        let without = claims(&dpop.proof(&Method::GET, &other, Some("t")).expect("proof"));
        assert!(without.get("nonce").is_none());
        // Not NQCHAR (a quote, a space), too long, or two of them: ignored, the last kept.
        for bad in ["a\"b", "a b", &"n".repeat(MAX_NONCE_LEN + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(DPOP_NONCE, HeaderValue::from_str(bad).expect("value"));
            assert!(!dpop.remember(&origin, &headers), "{bad}");
        }
        let mut two = HeaderMap::new();
        two.append(DPOP_NONCE, HeaderValue::from_static("one"));
        two.append(DPOP_NONCE, HeaderValue::from_static("two"));
        assert!(!dpop.remember(&origin, &two));
        assert!(!dpop.remember(&origin, &HeaderMap::new()));
        let kept = claims(&dpop.proof(&Method::GET, &api, Some("t")).expect("proof"));
        assert_eq!(kept["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
    }

    #[test]
    fn a_nonce_challenge_is_recognised_in_any_spelling() {
        let asks = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            asks_for_nonce(&headers)
        };
        assert!(asks(&[
            "Bearer",
            r#"DPoP error="use_dpop_nonce", error_description="nonce", algs="ES256""#
        ]));
        assert!(asks(&["dpop error=use_dpop_nonce"]));
        assert!(!asks(&[r#"DPoP error="invalid_dpop_proof", algs="ES256""#]));
        assert!(!asks(&[r#"Bearer error="invalid_token""#]));
        assert!(!asks(&[r#"Bearer error="use_dpop_nonce""#]));
        assert!(!asks(&[]));
    }

    #[test]
    fn debug_shows_the_thumbprint_only() {
        let dpop = state();
        let shown = format!("{dpop:?}");
        assert!(shown.contains(dpop.key().thumbprint()), "{shown}");
        assert!(!shown.contains("\"d\""), "{shown}");
    }

    // -----------------------------------------------------------------------------------------
    // Through the layer, over a stand-in for the HTTP client.

    mod layer {
        use std::convert::Infallible;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};

        use bytes::Bytes;
        use http::header::AUTHORIZATION;
        use http::{Request, Response, StatusCode};
        use http_body_util::{BodyExt as _, Full};
        use tower::{ServiceExt as _, service_fn};
        use tower_layer::Layer as _;

        use super::*;
        use crate::client::{AddAccessTokenLayer, ClientCredentials, NoReplay};

        const TOKEN: &str = "tok-1";

        fn layer(key: &DpopKey) -> AddAccessTokenLayer {
            let credentials =
                ClientCredentials::builder("https://issuer.example/token", "svc", "secret-value")
                    .resource("https://api.example")
                    .build()
                    .expect("credentials");
            AddAccessTokenLayer::builder(credentials)
                .dpop(key.clone())
                .build()
                .expect("layer")
        }

        /// A request as the stand-in saw it: path, `Authorization`, proof claims.
        type SeenRequest = (String, Option<String>, Option<Value>);

        /// What the stand-in saw.
        #[derive(Default)]
        struct Seen(Mutex<Vec<SeenRequest>>);

        impl Seen {
            fn record<B>(&self, req: &Request<B>) {
                let auth = req
                    .headers()
                    .get(AUTHORIZATION)
                    .map(|v| v.to_str().expect("ascii").to_owned());
                let proof = req.headers().get(DPOP).map(|p| {
                    assert!(p.is_sensitive(), "the proof is marked sensitive");
                    claims(p)
                });
                let mut seen = self.0.lock().expect("lock");
                seen.push((req.uri().path().to_owned(), auth, proof));
            }

            fn all(&self) -> Vec<SeenRequest> {
                self.0.lock().expect("lock").clone()
            }
        }

        fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
            let mut res = Response::new(Full::new(Bytes::from(body.to_owned())));
            *res.status_mut() = status;
            res
        }

        fn with_nonce(
            mut res: Response<Full<Bytes>>,
            nonce: &'static str,
        ) -> Response<Full<Bytes>> {
            res.headers_mut()
                .insert(DPOP_NONCE, HeaderValue::from_static(nonce));
            res
        }

        fn nonce_of(proof: Option<&Value>) -> Option<&str> {
            proof.and_then(|p| p["nonce"].as_str())
        }

        async fn status<S>(svc: &S, url: &str) -> StatusCode
        where
            S: tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>> + Clone,
            S::Error: std::fmt::Debug,
        {
            let req = Request::get(url).body(Full::default()).expect("request");
            let res = svc.clone().oneshot(req).await.expect("sent");
            let status = res.status();
            let _ = res.into_body().collect().await;
            status
        }

        #[tokio::test]
        async fn token_requests_and_calls_carry_fresh_proofs_and_the_token_goes_as_dpop() {
            let key = DpopKey::generate().expect("key");
            let seen = Arc::new(Seen::default());
            let svc = layer(&key).layer(issuer_and_api(&seen, "DPoP"));
            for url in [
                "https://api.example/x?page=2#f",
                "https://API.example:443/x",
            ] {
                assert_eq!(status(&svc, url).await, StatusCode::OK);
            }
            let seen = seen.all();
            assert_eq!(seen.len(), 3, "one token request, two calls");
            let (path, auth, proof) = &seen[0];
            assert_eq!(path, "/token");
            assert!(auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
            let proof = proof.as_ref().expect("a proof on the token request");
            assert_eq!(proof["htm"], "POST");
            assert_eq!(proof["htu"], "https://issuer.example/token");
            assert!(proof.get("ath").is_none(), "no ath on a token request");
            let ath = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(TOKEN));
            let mut jtis = vec![proof["jti"].clone()];
            // `htu` is the URI as written, without query and fragment (the server normalises).
            let htus = ["https://api.example/x", "https://API.example:443/x"];
            for ((_, auth, proof), htu) in seen[1..].iter().zip(htus) {
                assert_eq!(auth.as_deref(), Some("DPoP tok-1"));
                let proof = proof.as_ref().expect("a proof on each call");
                assert_eq!(proof["htm"], "GET");
                assert_eq!(proof["htu"], htu);
                assert_eq!(proof["ath"], ath.as_str());
                jtis.push(proof["jti"].clone());
            }
            jtis.dedup();
            assert_eq!(jtis.len(), 3, "every proof is fresh");
        }

        /// A token endpoint and an API that both want nonces (`n-token`, `n-api`), answering
        /// each proof without the right one with `use_dpop_nonce` and the nonce; the API
        /// hands out `n-api-2` on success.
        /// The token endpoint (`/token`, answering a token of `token_type`) and the API
        /// (any other path, `data`), both recording what they see.
        fn issuer_and_api(
            seen: &Arc<Seen>,
            token_type: &'static str,
        ) -> impl crate::fetch::HttpService<Full<Bytes>, ResBody = Full<Bytes>> + use<> {
            let log = Arc::clone(seen);
            service_fn(move |req: Request<Full<Bytes>>| {
                log.record(&req);
                let token_request = req.uri().path() == "/token";
                async move {
                    Ok::<_, Infallible>(if token_request {
                        let body = format!(
                            r#"{{"access_token":"tok-1","token_type":"{token_type}","expires_in":60}}"#
                        );
                        json(StatusCode::OK, &body)
                    } else {
                        json(StatusCode::OK, "data")
                    })
                }
            })
        }

        fn nonce_servers(
            seen: &Arc<Seen>,
        ) -> impl crate::fetch::HttpService<Full<Bytes>, ResBody = Full<Bytes>> + use<> {
            let log = Arc::clone(seen);
            service_fn(move |req: Request<Full<Bytes>>| {
                log.record(&req);
                let proof = req.headers().get(DPOP).map(claims);
                let nonce = nonce_of(proof.as_ref()).map(str::to_owned);
                let token_request = req.uri().path() == "/token";
                async move {
                    let res = match (token_request, nonce.as_deref()) {
                        (true, Some("n-token")) => json(
                            StatusCode::OK,
                            r#"{"access_token":"tok-1","token_type":"DPoP","expires_in":60}"#,
                        ),
                        (true, _) => with_nonce(
                            json(StatusCode::BAD_REQUEST, r#"{"error":"use_dpop_nonce"}"#),
                            "n-token",
                        ),
                        (false, Some("n-api" | "n-api-2")) => {
                            with_nonce(json(StatusCode::OK, "data"), "n-api-2")
                        }
                        (false, _) => {
                            let mut res = with_nonce(json(StatusCode::UNAUTHORIZED, ""), "n-api");
                            res.headers_mut().insert(
                                http::header::WWW_AUTHENTICATE,
                                HeaderValue::from_static(
                                    r#"DPoP error="use_dpop_nonce", algs="ES256""#,
                                ),
                            );
                            res
                        }
                    };
                    Ok::<_, Infallible>(res)
                }
            })
        }

        #[tokio::test]
        async fn use_dpop_nonce_is_retried_once_with_the_nonce_and_nonces_are_remembered() {
            let key = DpopKey::generate().expect("key");
            let seen = Arc::new(Seen::default());
            let svc = layer(&key).layer(nonce_servers(&seen));
            assert_eq!(status(&svc, "https://api.example/x").await, StatusCode::OK);
            let first = seen.all();
            let paths: Vec<&str> = first.iter().map(|(p, _, _)| p.as_str()).collect();
            assert_eq!(paths, ["/token", "/token", "/x", "/x"], "each retried once");
            let nonces: Vec<Option<&str>> =
                first.iter().map(|(_, _, c)| nonce_of(c.as_ref())).collect();
            assert_eq!(nonces, [None, Some("n-token"), None, Some("n-api")]);
            // The same token both times: a nonce is not the token's fault.
            assert_eq!(first[2].1, first[3].1);

            // The next call uses the nonce the last answer carried, at once.
            assert_eq!(status(&svc, "https://api.example/y").await, StatusCode::OK);
            let all = seen.all();
            assert_eq!(all.len(), 5);
            assert_eq!(nonce_of(all[4].2.as_ref()), Some("n-api-2"));
        }

        #[tokio::test]
        async fn an_api_that_keeps_asking_for_a_nonce_gets_one_retry_and_its_401() {
            let key = DpopKey::generate().expect("key");
            let api_hits = Arc::new(AtomicUsize::new(0));
            let token_requests = Arc::new(AtomicUsize::new(0));
            let (hits, tokens) = (Arc::clone(&api_hits), Arc::clone(&token_requests));
            let svc = layer(&key).layer(service_fn(move |req: Request<Full<Bytes>>| {
                let res = if req.uri().path() == "/token" {
                    tokens.fetch_add(1, Ordering::SeqCst);
                    json(
                        StatusCode::OK,
                        r#"{"access_token":"tok-1","token_type":"DPoP","expires_in":60}"#,
                    )
                } else {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let nonce = if n % 2 == 0 { "even" } else { "odd" };
                    let mut res = with_nonce(json(StatusCode::UNAUTHORIZED, ""), nonce);
                    res.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"DPoP error="use_dpop_nonce""#),
                    );
                    res
                };
                async move { Ok::<_, Infallible>(res) }
            }));
            let status = status(&svc, "https://api.example/x").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(api_hits.load(Ordering::SeqCst), 2, "one retry, not more");
            assert_eq!(token_requests.load(Ordering::SeqCst), 1);
        }

        #[tokio::test]
        async fn a_nonce_challenge_without_a_nonce_is_returned_and_the_token_kept() {
            let key = DpopKey::generate().expect("key");
            let api_hits = Arc::new(AtomicUsize::new(0));
            let token_requests = Arc::new(AtomicUsize::new(0));
            let (hits, tokens) = (Arc::clone(&api_hits), Arc::clone(&token_requests));
            let svc = layer(&key).layer(service_fn(move |req: Request<Full<Bytes>>| {
                let res = if req.uri().path() == "/token" {
                    tokens.fetch_add(1, Ordering::SeqCst);
                    json(
                        StatusCode::OK,
                        r#"{"access_token":"tok-1","token_type":"DPoP","expires_in":60}"#,
                    )
                } else {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let mut res = json(StatusCode::UNAUTHORIZED, "");
                    res.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"DPoP error="use_dpop_nonce""#),
                    );
                    res
                };
                async move { Ok::<_, Infallible>(res) }
            }));
            for _ in 0..2 {
                let status = status(&svc, "https://api.example/x").await;
                assert_eq!(status, StatusCode::UNAUTHORIZED);
            }
            assert_eq!(
                api_hits.load(Ordering::SeqCst),
                2,
                "no retry without a nonce"
            );
            assert_eq!(
                token_requests.load(Ordering::SeqCst),
                1,
                "the token was kept"
            );
        }

        #[tokio::test]
        async fn a_request_that_cannot_be_replayed_returns_the_401_and_the_next_uses_the_nonce() {
            let key = DpopKey::generate().expect("key");
            let seen = Arc::new(Seen::default());
            let svc = layer(&key).replay(NoReplay).layer(nonce_servers(&seen));
            assert_eq!(
                status(&svc, "https://api.example/x").await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(status(&svc, "https://api.example/x").await, StatusCode::OK);
            let calls: Vec<Option<String>> = seen
                .all()
                .iter()
                .filter(|(p, _, _)| p == "/x")
                .map(|(_, _, c)| nonce_of(c.as_ref()).map(str::to_owned))
                .collect();
            assert_eq!(calls, [None, Some("n-api".to_owned())]);
        }

        #[tokio::test]
        async fn a_bearer_answer_to_a_proof_is_sent_as_bearer_without_proof_and_logged() {
            let logs = crate::testkit::logs::capture();
            let key = DpopKey::generate().expect("key");
            let seen = Arc::new(Seen::default());
            let svc = layer(&key).layer(issuer_and_api(&seen, "Bearer"));
            assert_eq!(status(&svc, "https://api.example/x").await, StatusCode::OK);
            let seen = seen.all();
            assert!(seen[0].2.is_some(), "the token request carried a proof");
            assert_eq!(seen[1].1.as_deref(), Some("Bearer tok-1"));
            assert!(seen[1].2.is_none(), "no proof with a Bearer token");
            let text = logs.text();
            assert!(text.contains("bearer_despite_dpop"), "{text}");
            assert!(!text.contains("tok-1"), "{text}");
        }
    }
}
