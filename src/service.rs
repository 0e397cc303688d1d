//! The service [`RequireScope`](crate::RequireScope) wraps around the inner one,
//! [`RequireScopeService`], and its [`ResponseFuture`]. You seldom name them: they are what
//! `.layer(RequireScope::..)` makes.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Version};
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

pub use crate::future::ResponseFuture;

use crate::authorize::{Decision, Route};
use crate::future::with_dpop_nonce;
use crate::response::{self, Challenges, Refusal, Rejection};
use crate::verified::{Verified, VerifiedToken};

/// The layer's state, shared by its services: the route, and how it answers.
pub(crate) struct State<T, R> {
    pub(crate) route: Route<T>,
    /// The guard's challenges, which this route's are built from.
    pub(crate) base: Arc<Challenges>,
    /// This route's: its scopes, and DPoP when accepted.
    challenges: Arc<Challenges>,
    pub(crate) rejection: Arc<R>,
}

impl<T, R> State<T, R> {
    pub(crate) fn new(route: Route<T>, base: Arc<Challenges>, rejection: Arc<R>) -> Self {
        let mut challenges = base.for_scopes(route.policy.scopes.iter());
        if let Some(dpop) = &route.binding.dpop {
            challenges = challenges.with_dpop(dpop.algs_param(), route.binding.dpop_required);
        }
        State {
            route,
            base,
            challenges: Arc::new(challenges),
            rejection,
        }
    }

    /// The response to `refusal` for a request of `version` with `headers`, logged.
    pub(crate) fn reject<B>(
        &self,
        refusal: Refusal,
        version: Version,
        headers: &HeaderMap,
    ) -> Response<B>
    where
        R: Rejection<B>,
    {
        let refusal = refusal.answering(Some(&self.challenges), version, headers);
        response::answer(&*self.rejection, &refusal)
    }
}

/// Decides on the request, then calls the inner service with the claims in the request's
/// extensions, or answers with the rejection. Built by [`RequireScope`](crate::RequireScope).
pub struct RequireScopeService<S, T = crate::AccessClaims, R = crate::response::StandardRejection> {
    inner: S,
    state: Arc<State<T, R>>,
}

impl<S, T, R> RequireScopeService<S, T, R> {
    pub(crate) fn new(inner: S, state: Arc<State<T, R>>) -> Self {
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

impl<S: Clone, T, R> Clone for RequireScopeService<S, T, R> {
    fn clone(&self) -> Self {
        RequireScopeService {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S: fmt::Debug, T, R> fmt::Debug for RequireScopeService<S, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopeService<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    T: DeserializeOwned + Send + Sync + 'static,
    R: Rejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.state.route.decide(&mut req) {
            Decision::Admit(admitted) => {
                admit(req.extensions_mut(), admitted.verified, admitted.cache_hit);
                let future = self.inner.call(req);
                match admitted.renew_nonce {
                    false => ResponseFuture::inner(future),
                    true => ResponseFuture::renew(future, self.state.route.binding.next_nonce()),
                }
            }
            Decision::Deny(refusal) => {
                ResponseFuture::reject(self.state.reject(refusal, req.version(), req.headers()))
            }
            Decision::Wait(pending) => {
                // The inner service is ready now; take that instance into the future and
                // leave a clone behind (tower-service: "be careful when cloning inner
                // services").
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = Arc::clone(&self.state);
                let (mut parts, body) = req.into_parts();
                ResponseFuture::wait(Box::pin(async move {
                    match state.route.resume(pending, &parts).await {
                        Ok(admitted) => {
                            admit(&mut parts.extensions, admitted.verified, admitted.cache_hit);
                            let response = inner.call(Request::from_parts(parts, body)).await;
                            let nonce = admitted
                                .renew_nonce
                                .then(|| state.route.binding.next_nonce())
                                .flatten();
                            response.map(|r| with_dpop_nonce(r, nonce))
                        }
                        Err(refusal) => Ok(state.reject(refusal, parts.version, &parts.headers)),
                    }
                }))
            }
        }
    }
}

/// Puts what was verified into the request: one record, the
/// [`VerifiedToken`], which holds the typed claims too (one extension: a second one costs a
/// box, its free, and often the growth of http's extension map). The record is the
/// verification itself, moved in: no copy, no reference count taken.
#[inline(always)]
fn admit<T: Send + Sync + 'static>(
    extensions: &mut http::Extensions,
    verified: Option<Arc<Verified<T>>>,
    cache_hit: bool,
) {
    if let Some(verified) = verified {
        extensions.insert(VerifiedToken::of(verified));
    }
    crate::metrics::admitted(cache_hit);
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::CONTENT_TYPE;
    use http::{Request, Response, StatusCode};
    use serde_json::json;
    use tower::{ServiceExt, service_fn};

    use crate::testkit::layer::{self, bearer, challenge, kind, send};
    use crate::testkit::{self as mint, ISSUER, now, token};
    use crate::{AccessClaims, ErrorKind, RequireScope, Validator, VerifiedToken};

    fn validator() -> Validator {
        mint::builder().build().expect("validator")
    }

    #[tokio::test]
    async fn accepts_valid_token_of_every_algorithm_and_inserts_claims() {
        for (kid, ..) in mint::KEYS {
            let res = send(
                RequireScope::all(&validator(), ["read"]).expect("scopes"),
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
        layer::assert_invalid_token(&validator(), &huge, ErrorKind::TokenTooLarge).await;
    }

    #[tokio::test]
    async fn insufficient_scope_is_403_naming_the_required_scopes() {
        let t = token("ec-1", json!({"scope": "read"}));
        let res = send(
            RequireScope::all(&validator(), ["read", "write:transactions"]).expect("scopes"),
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
            RequireScope::any(&validator(), ["admin", "read"]).expect("scopes"),
            Some(&bearer(&t)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn scp_array_grants_scopes() {
        let t = token("ec-1", json!({"scope": null, "scp": ["reports:read"]}));
        let res = send(
            RequireScope::any(&validator(), ["reports:read", "admin"]).expect("scopes"),
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
        let scoped = RequireScope::all(&validator(), ["admin"])
            .expect("scopes")
            .optional();
        let res = send(scoped, Some(&bearer(&token("ec-1", json!({}))))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn grpc_requests_get_grpc_status_with_http_200() {
        let svc = RequireScope::all(&validator(), ["admin"])
            .expect("scopes")
            .layer_fn_wrap();
        let req = |auth: Option<String>| {
            let mut r = Request::builder()
                .version(http::Version::HTTP_2)
                .header(CONTENT_TYPE, "application/grpc");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.body(()).expect("request")
        };
        let res = svc.oneshot(req(None)).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        let svc = RequireScope::all(&validator(), ["admin"])
            .expect("scopes")
            .layer_fn_wrap();
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
            .expect("scopes")
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
    async fn a_custom_rejection_answers_a_named_requirement_its_own_way() {
        let guard = crate::Guard::new(&validator()).rejection(
            |refusal: &crate::response::Refusal| -> Response<String> {
                if refusal.requirement() == Some("tenant") {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .header("x-reason", "no tenant")
                        .body(String::new())
                        .expect("response")
                } else {
                    refusal.to_response()
                }
            },
        );
        let layer = RequireScope::authenticated(&guard)
            .require_named("tenant", |c: &AccessClaims| c.extra.contains_key("tenant"));
        let send = |auth: Option<String>| {
            let svc = tower_layer::Layer::layer(
                &layer,
                service_fn(|_req: Request<()>| async {
                    Ok::<_, Infallible>(Response::new("ok".to_owned()))
                }),
            );
            let mut req = Request::builder();
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            svc.oneshot(req.body(()).expect("request"))
        };
        let res = send(Some(bearer(&token("ec-1", json!({})))))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["x-reason"], "no tenant");
        assert_eq!(kind(&res), Some(ErrorKind::Forbidden));
        let res = send(Some(bearer(&token("ec-1", json!({"tenant": "t"})))))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::OK);
        // Other refusals keep their standard answer, with the error in the extensions.
        let res = send(None).await.expect("ok");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&res), "Bearer");
        assert_eq!(kind(&res), Some(ErrorKind::MissingToken));
    }

    #[tokio::test]
    async fn a_grpc_content_type_over_http1_gets_http_statuses() {
        let svc = RequireScope::all(&validator(), ["admin"])
            .expect("scopes")
            .layer_fn_wrap();
        let req = Request::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().get("grpc-status").is_none());
        assert_eq!(challenge(&res), "Bearer scope=\"admin\"");
        assert_eq!(kind(&res), Some(ErrorKind::MissingToken));
    }

    #[tokio::test]
    async fn whitespace_other_than_spaces_is_invalid_request_also_on_optional_routes() {
        let t = token("ec-1", json!({}));
        for layer in [
            RequireScope::authenticated(&validator()),
            RequireScope::authenticated(&validator()).optional(),
        ] {
            for auth in [
                format!("Bearer\t{t}"),
                format!("Bearer \t{t}"),
                format!("bearer\t\t{t}"),
            ] {
                let res = send(layer.clone(), Some(&auth)).await;
                assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{auth:?}");
                assert_eq!(challenge(&res), r#"Bearer error="invalid_request""#);
                assert_eq!(kind(&res), Some(ErrorKind::InvalidRequest));
            }
        }
    }

    #[tokio::test]
    async fn a_sender_constrained_token_sent_as_bearer_is_invalid_token() {
        let bound = token(
            "ec-1",
            json!({"cnf": {"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}),
        );
        for layer in [
            RequireScope::authenticated(&validator()),
            RequireScope::authenticated(&validator()).optional(),
        ] {
            // Twice: the second time from the verified-token cache.
            for _ in 0..2 {
                let res = send(layer.clone(), Some(&bearer(&bound))).await;
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
                assert_eq!(challenge(&res), r#"Bearer error="invalid_token""#);
                assert_eq!(kind(&res), Some(ErrorKind::SenderConstrained));
            }
        }
    }

    #[tokio::test]
    async fn the_layer_records_a_claims_independent_verified_token() {
        #[derive(serde::Deserialize)]
        struct Mine {
            #[allow(dead_code)]
            sub: String,
        }
        let v = crate::testkit::builder()
            .claims::<Mine>()
            .build()
            .expect("validator");
        let svc = tower_layer::Layer::layer(
            &RequireScope::authenticated(&v),
            service_fn(|req: Request<()>| async move {
                let token = req.extensions().get::<crate::VerifiedToken>().cloned();
                let typed = req
                    .extensions()
                    .get::<VerifiedToken>()
                    .and_then(VerifiedToken::claims::<Mine>)
                    .is_some();
                Ok::<_, Infallible>(Response::new((token, typed)))
            }),
        );
        let req = Request::builder()
            .header(
                "authorization",
                bearer(&token(
                    "ec-1",
                    json!({"client_id": "billing", "sub": "svc"}),
                )),
            )
            .body(())
            .expect("request");
        let (token, typed) = svc.oneshot(req).await.expect("ok").into_body();
        let token = token.expect("verified token");
        assert!(typed);
        assert_eq!(token.client_id(), Some("billing"));
        assert_eq!(token.subject(), Some("svc"));
        assert_eq!(token.issuer(), ISSUER);
        assert!(token.has_scope("read") && token.has_scope("write"));
        assert!(token.jti().is_some_and(|j| j.starts_with("jti-")));
    }

    #[test]
    fn empty_or_invalid_scope_lists_are_refused_when_the_layer_is_built() {
        use crate::ConfigError;
        let v = validator();
        assert_eq!(
            RequireScope::any(&v, Vec::<String>::new()).map(drop),
            Err(ConfigError::EmptyScopes)
        );
        assert_eq!(
            RequireScope::all(&v, Vec::<String>::new()).map(drop),
            Err(ConfigError::EmptyScopes)
        );
        assert_eq!(
            RequireScope::all(&v, ["two words"]).map(drop),
            Err(ConfigError::InvalidScope("two words".into()))
        );
        // `authenticated` is the way to ask for a valid token only.
        assert!(RequireScope::authenticated(&v).required_scopes().is_empty());
        // Challenge settings are checked when the guard is built.
        assert!(matches!(
            crate::Guard::new(&v).realm("a\"b").map(drop),
            Err(ConfigError::InvalidHeaderValue("realm"))
        ));
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

    #[test]
    fn debug_output_holds_no_key_material() {
        let shown = format!(
            "{:?}",
            RequireScope::all(&validator(), ["read"]).expect("scopes")
        );
        assert!(shown.contains("ec-1") && shown.contains(ISSUER), "{shown}");
        let pem_line = std::str::from_utf8(mint::EC256_PUBLIC)
            .expect("pem")
            .lines()
            .nth(1)
            .expect("line");
        assert!(!shown.contains(&pem_line[..20]));
    }
}
