//! [`RequireScopeService`]: the service [`RequireScope`](crate::RequireScope) wraps around
//! the inner one.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::challenge::is_grpc;
use crate::error::ErrorKind;
use crate::future::ResponseFuture;
use crate::layer::{Authz, Denial, State};

/// Checks the bearer token, then calls the inner service with the claims in the request's
/// extensions, or answers with the rejection. Built by [`RequireScope`](crate::RequireScope).
pub struct RequireScopeService<S, T> {
    inner: S,
    state: Arc<State<T>>,
}

impl<S, T> RequireScopeService<S, T> {
    pub(crate) fn new(inner: S, state: Arc<State<T>>) -> Self {
        RequireScopeService { inner, state }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, T> Clone for RequireScopeService<S, T> {
    fn clone(&self) -> Self {
        RequireScopeService {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for RequireScopeService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopeService<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
    T: DeserializeOwned + Send + Sync + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if let Some(value) = req.headers_mut().get_mut(AUTHORIZATION) {
            // Keeps the token out of `Debug` output and HPACK tables further in.
            value.set_sensitive(true);
        }
        match self.state.authorize(req.headers()) {
            Authz::Done(Ok(claims)) => {
                if let Some(claims) = claims {
                    req.extensions_mut().insert(claims);
                }
                ResponseFuture::inner(self.inner.call(req))
            }
            Authz::Done(Err(denial)) => {
                record(&denial);
                ResponseFuture::reject(self.state.reject(denial, is_grpc(req.headers())))
            }
            Authz::Wait => {
                // The inner service is ready now; take that instance into the future and
                // leave a clone behind (tower-service: "be careful when cloning inner
                // services").
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = Arc::clone(&self.state);
                ResponseFuture::wait(Box::pin(async move {
                    match state.authorize_async(req.headers()).await {
                        Ok(claims) => {
                            if let Some(claims) = claims {
                                req.extensions_mut().insert(claims);
                            }
                            inner.call(req).await
                        }
                        Err(denial) => {
                            record(&denial);
                            Ok(state.reject(denial, is_grpc(req.headers())))
                        }
                    }
                }))
            }
        }
    }
}

/// One `tracing` event per rejection, with a stable `reason`, the client when the token
/// was valid, and never any token material.
fn record(denial: &Denial) {
    let err = &denial.error;
    let reason = err.kind().as_str();
    let claim = err.claim_name();
    let client_id = denial.client_id.as_deref();
    match err.kind() {
        ErrorKind::MissingToken => {
            tracing::debug!(target: "bearer_guard", reason, "request without bearer token refused");
        }
        ErrorKind::KeysUnavailable | ErrorKind::RevocationUnavailable => {
            tracing::warn!(target: "bearer_guard", reason, "request refused: server-side dependency unavailable");
        }
        _ => tracing::info!(target: "bearer_guard", reason, claim, client_id, "request refused"),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
    use http::{Request, Response, StatusCode};
    use serde_json::json;
    use tower::{ServiceExt, service_fn};

    use crate::mint::{self, AUDIENCE, ISSUER, now, token, token_with};
    use crate::{AccessClaims, AuthError, Claims, ErrorKind, Key, KeySet, RequireScope, Validator};

    fn validator() -> Validator {
        mint::builder().build().expect("validator")
    }

    /// Sends a request with `auth` (if any) through `layer` around a handler that echoes the
    /// client id.
    async fn send(layer: RequireScope, auth: Option<&str>) -> Response<String> {
        let svc = layer.layer_fn_wrap();
        let mut req = Request::builder().uri("/");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        svc.oneshot(req.body(()).expect("request"))
            .await
            .expect("infallible")
    }

    impl RequireScope {
        fn layer_fn_wrap(
            self,
        ) -> impl tower::Service<Request<()>, Response = Response<String>, Error = Infallible>
        {
            tower_layer::Layer::layer(
                &self,
                service_fn(|req: Request<()>| async move {
                    let body = match req.extensions().get::<Claims<AccessClaims>>() {
                        Some(c) => c.client_id().unwrap_or("?").to_owned(),
                        None => "anonymous".to_owned(),
                    };
                    Ok::<_, Infallible>(Response::new(body))
                }),
            )
        }
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn kind(res: &Response<String>) -> Option<ErrorKind> {
        res.extensions().get::<AuthError>().map(AuthError::kind)
    }

    fn challenge(res: &Response<String>) -> &str {
        res.headers()
            .get(WWW_AUTHENTICATE)
            .map_or("", |v| v.to_str().expect("ascii"))
    }

    async fn assert_invalid_token(token: &str, expected: ErrorKind) {
        let res = send(
            RequireScope::authenticated(&validator()),
            Some(&bearer(token)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{expected:?}");
        assert_eq!(challenge(&res), r#"Bearer error="invalid_token""#);
        assert_eq!(kind(&res), Some(expected));
        assert!(res.body().is_empty());
    }

    #[tokio::test]
    async fn accepts_valid_token_of_every_algorithm_and_inserts_claims() {
        for (kid, ..) in mint::KEYS {
            let res = send(
                RequireScope::all(&validator(), ["read"]),
                Some(&bearer(&token(kid, json!({})))),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK, "{kid}");
            assert_eq!(res.body(), "client-a");
            assert_eq!(kind(&res), None);
        }
    }

    #[tokio::test]
    async fn rejects_missing_token_with_bare_challenge() {
        let res = send(RequireScope::authenticated(&validator()), None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&res), "Bearer");
        assert_eq!(kind(&res), Some(ErrorKind::MissingToken));
        let res = send(
            RequireScope::authenticated(&validator()),
            Some("Basic dXNlcjpwYXNz"),
        )
        .await;
        assert_eq!(kind(&res), Some(ErrorKind::MissingToken));
    }

    #[tokio::test]
    async fn rejects_malformed_header_with_invalid_request() {
        let t = token("ec-1", json!({}));
        for auth in [
            format!("Bearer {t} {t}"),
            "Bearer".into(),
            format!("Bearer \"{t}\""),
        ] {
            let res = send(RequireScope::authenticated(&validator()), Some(&auth)).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            assert_eq!(challenge(&res), r#"Bearer error="invalid_request""#);
            assert_eq!(kind(&res), Some(ErrorKind::InvalidRequest));
        }
    }

    #[tokio::test]
    async fn scheme_is_case_insensitive() {
        let t = token("ed-1", json!({}));
        let res = send(
            RequireScope::authenticated(&validator()),
            Some(&format!("bEaReR {t}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn rejects_oversized_token_before_parsing() {
        let huge = "a".repeat(9000);
        assert_invalid_token(&huge, ErrorKind::TokenTooLarge).await;
    }

    #[tokio::test]
    async fn rejects_expired_token_with_invalid_token() {
        assert_invalid_token(
            &token("ec-1", json!({"exp": now() - 61})),
            ErrorKind::Expired,
        )
        .await;
    }

    #[tokio::test]
    async fn leeway_admits_small_skew_only() {
        let v = validator();
        assert!(
            v.validate(&token("ec-1", json!({"exp": now() - 30})))
                .is_ok()
        );
        assert!(
            v.validate(&token("ec-1", json!({"nbf": now() + 30})))
                .is_ok()
        );
        assert!(
            v.validate(&token("ec-1", json!({"iat": now() + 30})))
                .is_ok()
        );
        let strict = Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(v.keys().clone())
            .leeway(std::time::Duration::ZERO)
            .build()
            .expect("validator");
        let err = strict
            .validate(&token("ec-1", json!({"exp": now() - 1})))
            .expect_err("expired");
        assert_eq!(err.kind(), ErrorKind::Expired);
    }

    #[tokio::test]
    async fn rejects_not_yet_valid_and_future_iat() {
        assert_invalid_token(
            &token("ec-1", json!({"nbf": now() + 120})),
            ErrorKind::NotYetValid,
        )
        .await;
        assert_invalid_token(
            &token("ec-1", json!({"iat": now() + 120})),
            ErrorKind::IssuedInFuture,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_missing_exp() {
        assert_invalid_token(
            &token("ec-1", json!({"exp": null})),
            ErrorKind::MissingClaim,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_wrongly_typed_dates_instead_of_skipping_them() {
        // GHSA-h395-gr6q-cpjc: a string `nbf`/`exp` must not be treated as absent.
        let far = (now() + 3600).to_string();
        let past = (now() - 3600).to_string();
        for changes in [
            json!({"exp": far}),
            json!({"nbf": far}),
            json!({"iat": far}),
            json!({"exp": true}),
            json!({"exp": [now() + 60]}),
            json!({"nbf": past}),
        ] {
            let t = token("ec-1", changes.clone());
            let err = validator().validate(&t).expect_err("wrong type");
            assert_eq!(err.kind(), ErrorKind::InvalidClaimType, "{changes}");
        }
        let err = validator()
            .validate(&token("ec-1", json!({"iat": null, "nbf": {}})))
            .expect_err("object");
        assert_eq!(err.claim_name(), Some("nbf"));
    }

    #[tokio::test]
    async fn fractional_dates_are_accepted_and_rounded_strictly() {
        let v = validator();
        assert!(
            v.validate(&token("ec-1", json!({"exp": now() as f64 + 600.5})))
                .is_ok()
        );
        let err = v
            .validate(&token("ec-1", json!({"exp": now() as f64 - 60.5})))
            .expect_err("expired");
        assert_eq!(err.kind(), ErrorKind::Expired);
    }

    #[tokio::test]
    async fn rejects_wrong_issuer_exactly() {
        for iss in [
            json!("https://issuer.test/"),
            json!("https://ISSUER.test"),
            json!("https://evil.test"),
        ] {
            assert_invalid_token(
                &token("ec-1", json!({"iss": iss})),
                ErrorKind::InvalidIssuer,
            )
            .await;
        }
        assert_invalid_token(
            &token("ec-1", json!({"iss": null})),
            ErrorKind::MissingClaim,
        )
        .await;
        assert_invalid_token(
            &token("ec-1", json!({"iss": [ISSUER]})),
            ErrorKind::InvalidClaimType,
        )
        .await;
    }

    #[tokio::test]
    async fn audience_string_or_array_must_contain_ours() {
        let v = validator();
        assert!(
            v.validate(&token("ec-1", json!({"aud": ["other", AUDIENCE]})))
                .is_ok()
        );
        assert_invalid_token(
            &token("ec-1", json!({"aud": "https://other.test"})),
            ErrorKind::InvalidAudience,
        )
        .await;
        assert_invalid_token(
            &token("ec-1", json!({"aud": []})),
            ErrorKind::InvalidAudience,
        )
        .await;
        assert_invalid_token(
            &token("ec-1", json!({"aud": null})),
            ErrorKind::MissingClaim,
        )
        .await;
        assert_invalid_token(
            &token("ec-1", json!({"aud": [AUDIENCE, 1]})),
            ErrorKind::InvalidClaimType,
        )
        .await;
    }

    #[tokio::test]
    async fn typ_must_be_at_jwt_unless_opted_out() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(
                validator()
                    .validate(&token_with("ec-1", json!({"typ": typ}), json!({})))
                    .is_ok(),
                "{typ}"
            );
        }
        for typ in [json!("JWT"), json!(null), json!("id_token+jwt"), json!(1)] {
            assert_invalid_token(
                &token_with("ec-1", json!({"typ": typ}), json!({})),
                ErrorKind::InvalidType,
            )
            .await;
        }
        let lenient = Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(validator().keys().clone())
            .allow_untyped_tokens()
            .build()
            .expect("validator");
        assert!(
            lenient
                .validate(&token_with("ec-1", json!({"typ": "JWT"}), json!({})))
                .is_ok()
        );
        assert!(
            lenient
                .validate(&token_with("ec-1", json!({"typ": null}), json!({})))
                .is_ok()
        );
        let err = lenient
            .validate(&token_with("ec-1", json!({"typ": "dpop+jwt"}), json!({})))
            .expect_err("dpop");
        assert_eq!(err.kind(), ErrorKind::InvalidType);
    }

    #[tokio::test]
    async fn rejects_duplicate_members_rather_than_picking_one() {
        let (alg, key) = mint::encoding_key("ec-1");
        let header = r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}"#;
        let good = mint::claims(json!({})).to_string();
        let dup_claims = format!(r#"{{"aud":"https://evil.test",{}"#, &good[1..]);
        let t = mint::sign_raw(alg, &key, header, &dup_claims);
        assert_invalid_token(&t, ErrorKind::DuplicateMember).await;
        let dup_header = r#"{"alg":"ES256","typ":"at+jwt","kid":"ec-1","kid":"ec-1"}"#;
        assert_invalid_token(
            &mint::sign_raw(alg, &key, dup_header, &good),
            ErrorKind::DuplicateMember,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_critical_header_parameters() {
        let t = token_with("ec-1", json!({"crit": ["exp"], "exp": 1}), json!({}));
        assert_invalid_token(&t, ErrorKind::UnsupportedCritical).await;
        let t = token_with("ec-1", json!({"crit": ["b64"], "b64": false}), json!({}));
        assert_invalid_token(&t, ErrorKind::UnsupportedCritical).await;
    }

    #[tokio::test]
    async fn kid_selects_the_key_and_alg_must_match_it() {
        // A token signed by the EC key but naming the Ed25519 key's kid.
        let (alg, key) = mint::encoding_key("ec-1");
        let header = mint::header(alg, "ed-1", json!({})).to_string();
        let t = mint::sign_raw(alg, &key, &header, &mint::claims(json!({})).to_string());
        assert_invalid_token(&t, ErrorKind::AlgorithmMismatch).await;
        let t = token_with("ec-1", json!({"kid": "unknown"}), json!({}));
        assert_invalid_token(&t, ErrorKind::UnknownKey).await;
    }

    #[tokio::test]
    async fn an_unknown_kid_may_fall_back_to_the_one_kid_less_key() {
        let kidless =
            KeySet::new([Key::from_pem(mint::RSA2_PUBLIC, crate::Algorithm::RS256).expect("key")]);
        let v = Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(kidless)
            .build()
            .expect("v");
        // Signed by that key, naming a kid the set does not have: accepted.
        let (alg, key) = (
            crate::Algorithm::RS256,
            mint::encoding_key_for(crate::Algorithm::RS256, mint::RSA2_PRIVATE),
        );
        let header = mint::header(alg, "rotated-away", json!({})).to_string();
        let t = mint::sign_raw(alg, &key, &header, &mint::claims(json!({})).to_string());
        assert!(v.validate(&t).is_ok());
        // Signed by another key: its key is unknown here, not merely a bad signature.
        let err = v
            .validate(&token("rsa-1", json!({})))
            .expect_err("other key");
        assert_eq!(err.kind(), ErrorKind::UnknownKey);
    }

    #[tokio::test]
    async fn token_without_kid_needs_exactly_one_key_of_its_algorithm() {
        let t = token_with("ec-1", json!({"kid": null}), json!({}));
        assert!(validator().validate(&t).is_ok());
        let t = token_with("rsa-1", json!({"kid": null}), json!({}));
        assert!(validator().validate(&t).is_ok(), "only rsa-1 pins RS256");
        let two_ec = KeySet::new([
            Key::from_pem(mint::EC256_PUBLIC, crate::Algorithm::ES256)
                .expect("k")
                .with_kid("a"),
            Key::from_pem(mint::EC256_PUBLIC, crate::Algorithm::ES256)
                .expect("k")
                .with_kid("b"),
        ]);
        let v = Validator::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(two_ec)
            .build()
            .expect("v");
        let t = token_with("ec-1", json!({"kid": null}), json!({}));
        assert_eq!(
            v.validate(&t).expect_err("ambiguous").kind(),
            ErrorKind::UnknownKey
        );
    }

    #[tokio::test]
    async fn rejects_tampered_payload_and_signature() {
        let t = token("rsa-1", json!({}));
        let (head, rest) = t.split_once('.').expect("jws");
        let (_, sig) = rest.split_once('.').expect("jws");
        let forged = mint::claims(json!({"scope": "admin"})).to_string();
        use base64::Engine as _;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        assert_invalid_token(
            &format!("{head}.{forged}.{sig}"),
            ErrorKind::InvalidSignature,
        )
        .await;
        assert_invalid_token(
            &format!("{head}.{}.", rest.split_once('.').expect("jws").0),
            ErrorKind::InvalidSignature,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_structurally_broken_tokens_as_malformed() {
        for t in ["a.b", "a.b.c.d", "a.b.c.d.e", "!!!.b.c", "e30.e30.e30"] {
            let err = validator().validate(t).expect_err("broken");
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::Malformed | ErrorKind::UnsupportedAlgorithm
                ),
                "{t}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn insufficient_scope_is_403_naming_the_required_scopes() {
        let t = token("ec-1", json!({"scope": "read"}));
        let res = send(
            RequireScope::all(&validator(), ["read", "write:transactions"]),
            Some(&bearer(&t)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(&res),
            r#"Bearer error="insufficient_scope", scope="read write:transactions""#
        );
        assert_eq!(kind(&res), Some(ErrorKind::InsufficientScope));
        let res = send(
            RequireScope::any(&validator(), ["admin", "read"]),
            Some(&bearer(&t)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn scp_array_grants_scopes() {
        let t = token("ec-1", json!({"scope": null, "scp": ["reports:read"]}));
        let res = send(
            RequireScope::any(&validator(), ["reports:read", "admin"]),
            Some(&bearer(&t)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn optional_layer_passes_anonymous_requests_but_not_bad_tokens() {
        let layer = RequireScope::authenticated(&validator()).optional();
        let res = send(layer.clone(), None).await;
        assert_eq!(
            (res.status(), res.body().as_str()),
            (StatusCode::OK, "anonymous")
        );
        let res = send(
            layer.clone(),
            Some(&bearer(&token("ec-1", json!({"exp": now() - 3600})))),
        )
        .await;
        assert_eq!(kind(&res), Some(ErrorKind::Expired));
        let res = send(layer.clone(), Some("Bearer a b")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let res = send(layer, Some(&bearer(&token("ec-1", json!({}))))).await;
        assert_eq!(res.body(), "client-a");
        let scoped = RequireScope::all(&validator(), ["admin"]).optional();
        let res = send(scoped, Some(&bearer(&token("ec-1", json!({}))))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn grpc_requests_get_grpc_status_with_http_200() {
        let svc = RequireScope::all(&validator(), ["admin"]).layer_fn_wrap();
        let req = |auth: Option<String>| {
            let mut r = Request::builder().header(CONTENT_TYPE, "application/grpc");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.body(()).expect("request")
        };
        let res = svc.oneshot(req(None)).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        let svc = RequireScope::all(&validator(), ["admin"]).layer_fn_wrap();
        let res = svc
            .oneshot(req(Some(bearer(&token("ec-1", json!({}))))))
            .await
            .expect("infallible");
        assert_eq!(res.headers()["grpc-status"], "7");
        assert_eq!(kind(&res), Some(ErrorKind::InsufficientScope));
    }

    #[tokio::test]
    async fn claim_requirements_answer_403_insufficient_scope() {
        let trusted = RequireScope::all(&validator(), ["read"])
            .require(|c: &AccessClaims| c.client_id() == Some("client-a"))
            .require(|c: &AccessClaims| c.extra.get("trusted") == Some(&json!(true)));
        let ok = token("ec-1", json!({"trusted": true}));
        assert_eq!(
            send(trusted.clone(), Some(&bearer(&ok))).await.status(),
            StatusCode::OK
        );
        for t in [
            token("ec-1", json!({"trusted": false})),
            token("ec-1", json!({"client_id": "client-b", "trusted": true})),
        ] {
            let res = send(trusted.clone(), Some(&bearer(&t))).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            assert_eq!(
                challenge(&res),
                r#"Bearer error="insufficient_scope", scope="read""#
            );
            assert_eq!(kind(&res), Some(ErrorKind::Forbidden));
        }
        // Scopes are checked before claim requirements.
        let res = send(
            trusted,
            Some(&bearer(&token(
                "ec-1",
                json!({"scope": "x", "trusted": true}),
            ))),
        )
        .await;
        assert_eq!(kind(&res), Some(ErrorKind::InsufficientScope));
    }

    #[tokio::test]
    async fn claim_requirements_can_answer_with_a_custom_response() {
        let layer = RequireScope::authenticated(&validator()).require_or(
            |c: &AccessClaims| c.extra.contains_key("tenant"),
            |_c: &AccessClaims| {
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header("x-reason", "no tenant")
                    .body(())
                    .expect("response")
            },
        );
        let res = send(layer.clone(), Some(&bearer(&token("ec-1", json!({}))))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["x-reason"], "no tenant");
        assert_eq!(kind(&res), Some(ErrorKind::Forbidden));
        let res = send(layer, Some(&bearer(&token("ec-1", json!({"tenant": "t"}))))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn authorization_header_is_marked_sensitive() {
        let t = token("ec-1", json!({}));
        let svc = tower_layer::Layer::layer(
            &RequireScope::authenticated(&validator()),
            service_fn(|req: Request<()>| async move {
                let sensitive = req.headers()["authorization"].is_sensitive();
                Ok::<_, Infallible>(Response::new(sensitive.to_string()))
            }),
        );
        let req = Request::builder()
            .header("authorization", bearer(&t))
            .body(())
            .expect("request");
        assert_eq!(svc.oneshot(req).await.expect("ok").body(), "true");
    }

    #[tokio::test]
    async fn custom_claims_types_are_supported() {
        #[derive(Debug, serde::Deserialize)]
        struct Mine {
            sub: String,
            tenant: String,
        }
        let v = Validator::builder()
            .claims::<Mine>()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(validator().keys().clone())
            .build()
            .expect("validator");
        let c = v
            .validate(&token("ed-1", json!({"tenant": "t1"})))
            .expect("valid");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("client-a", "t1"));
        let err = v
            .validate(&token("ed-1", json!({})))
            .expect_err("no tenant");
        assert_eq!(err.kind(), ErrorKind::InvalidClaims);
    }

    #[test]
    fn builder_refuses_incomplete_or_unsafe_configuration() {
        use crate::ConfigError;
        let keys = validator().keys().clone();
        let b = || {
            Validator::builder()
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .keys(keys.clone())
        };
        assert_eq!(
            Validator::builder()
                .audience(AUDIENCE)
                .keys(keys.clone())
                .build()
                .unwrap_err(),
            ConfigError::MissingIssuer
        );
        assert_eq!(
            Validator::builder()
                .issuer(ISSUER)
                .keys(keys.clone())
                .build()
                .unwrap_err(),
            ConfigError::MissingAudience
        );
        assert_eq!(
            Validator::builder()
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .build()
                .unwrap_err(),
            ConfigError::MissingKeys
        );
        assert_eq!(
            b().leeway(std::time::Duration::from_secs(301))
                .build()
                .unwrap_err(),
            ConfigError::LeewayTooLarge {
                requested: 301,
                max: 300
            }
        );
        assert!(matches!(
            b().realm("a\"b").build(),
            Err(ConfigError::InvalidHeaderValue("realm"))
        ));
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let shown = format!("{:?}", RequireScope::all(&validator(), ["read"]));
        assert!(shown.contains("ec-1") && shown.contains(ISSUER), "{shown}");
        let pem_line = std::str::from_utf8(mint::EC256_PUBLIC)
            .expect("pem")
            .lines()
            .nth(1)
            .expect("line");
        assert!(!shown.contains(&pem_line[..20]));
    }
}
