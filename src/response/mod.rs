//! How refusals are answered: every refusal the crate makes (authentication, scope, rate
//! limit, unavailable) is a [`Refusal`], answered by a [`Rejection`]
//! ([`StandardRejection`] by default: RFC 6750 statuses and `WWW-Authenticate`, or gRPC
//! trailers with a [`GrpcCode`]). Give your own to [`Guard::rejection`](crate::Guard::rejection).
//
// Inside: the per-kind table (`table`), the `WWW-Authenticate` challenges (`challenge`), the
// gRPC trailers-only answer and the security event.

mod challenge;
mod table;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};

pub(crate) use self::challenge::{Challenges, StepUp};

/// The scheme an access token came with in the `Authorization` header: which challenge a
/// refusal's error goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1).
    Dpop,
}
use crate::error::{AuthError, ErrorKind};
use crate::verified::VerifiedToken;

/// The gRPC status codes the crate answers with (on real gRPC requests: HTTP/2 with an
/// `application/grpc` content type), always with HTTP 200 and no body (trailers-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 7: the token is valid but not allowed here.
    PermissionDenied,
    /// 8: over the rate limit.
    ResourceExhausted,
    /// 14: a dependency (keys, revocation store, quota store) is unavailable.
    Unavailable,
    /// 16: no valid token.
    Unauthenticated,
}

impl GrpcCode {
    /// The numeric code sent in `grpc-status`.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        match self {
            GrpcCode::PermissionDenied => 7,
            GrpcCode::ResourceExhausted => 8,
            GrpcCode::Unavailable => 14,
            GrpcCode::Unauthenticated => 16,
        }
    }
}

#[cfg(feature = "tonic")]
impl From<GrpcCode> for tonic::Code {
    fn from(code: GrpcCode) -> Self {
        match code {
            GrpcCode::PermissionDenied => tonic::Code::PermissionDenied,
            GrpcCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            GrpcCode::Unavailable => tonic::Code::Unavailable,
            GrpcCode::Unauthenticated => tonic::Code::Unauthenticated,
        }
    }
}

/// Whether a request is gRPC: HTTP/2 with `content-type: application/grpc` or
/// `application/grpc+..`. Anything else (gRPC-Web, an HTTP/1.1 request that only claims the
/// content type) gets HTTP statuses.
pub(crate) fn is_grpc(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_2
        && headers.get(CONTENT_TYPE).is_some_and(|ct| {
            let ct = ct.as_bytes();
            ct.len() >= 16
                && ct[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(ct.get(16), None | Some(b'+' | b';'))
        })
}

/// Why a request was refused, and everything the standard answer is built from. A
/// [`Rejection`] turns it into the response.
#[derive(Clone)]
pub struct Refusal {
    error: AuthError,
    grpc: bool,
    retry_after: Option<Duration>,
    requirement: Option<&'static str>,
    token: Option<VerifiedToken>,
    challenges: Option<Arc<Challenges>>,
    scheme: Option<Scheme>,
    dpop_nonce: Option<Box<HeaderValue>>,
    /// What the route asks of the user's authentication, for an
    /// `insufficient_user_authentication` challenge.
    step_up: Option<Arc<StepUp>>,
}

impl Refusal {
    pub(crate) fn new(error: impl Into<AuthError>) -> Self {
        Refusal {
            error: error.into(),
            grpc: false,
            retry_after: None,
            requirement: None,
            token: None,
            challenges: None,
            scheme: None,
            dpop_nonce: None,
            step_up: None,
        }
    }

    /// What the route asks of the user's authentication (`acr_values`, `max_age`), named
    /// in the challenge of an `insufficient_user_authentication` refusal (RFC 9470 §3).
    pub(crate) fn with_step_up(mut self, step_up: &Arc<StepUp>) -> Self {
        self.step_up = Some(Arc::clone(step_up));
        self
    }

    /// A fresh `DPoP-Nonce` to send with the answer (`use_dpop_nonce`).
    pub(crate) fn with_dpop_nonce(mut self, nonce: Option<HeaderValue>) -> Self {
        self.dpop_nonce = nonce.map(Box::new);
        self
    }

    /// The scheme the token came with.
    pub(crate) fn with_scheme(mut self, scheme: Option<Scheme>) -> Self {
        self.scheme = scheme;
        self
    }

    /// The token the refusal concerns, when it was valid (revoked, out of scope, over its
    /// quota ...).
    pub(crate) fn with_token(mut self, token: Option<&VerifiedToken>) -> Self {
        self.token = token.cloned();
        self
    }

    pub(crate) fn with_requirement(mut self, name: Option<&'static str>) -> Self {
        self.requirement = name;
        self
    }

    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    pub(crate) fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Fills in how the request is answered: the route's challenges, and whether it is gRPC.
    pub(crate) fn answering(
        mut self,
        challenges: Option<&Arc<Challenges>>,
        version: Version,
        headers: &HeaderMap,
    ) -> Self {
        self.challenges = challenges.cloned();
        self.grpc = is_grpc(version, headers);
        self
    }

    /// The error: its [`kind`](AuthError::kind) is the reason.
    #[must_use]
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// The reason.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// Whether the request is a gRPC request (answered with a `grpc-status`).
    #[must_use]
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// How long the client should wait before trying again, for rate limits: exact (the
    /// `Retry-After` header carries it rounded up to whole seconds).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The name of the failed claims requirement, for [`ErrorKind::Forbidden`] refusals by
    /// a [`require_named`](crate::RequireScope::require_named) requirement.
    #[must_use]
    pub fn requirement(&self) -> Option<&'static str> {
        self.requirement
    }

    /// What was verified about the token, when the token itself was valid.
    #[must_use]
    pub fn token(&self) -> Option<&VerifiedToken> {
        self.token.as_ref()
    }

    /// The standard answer: RFC 6750 (status, `WWW-Authenticate`, `Retry-After` on 503 and
    /// 429), or for gRPC a trailers-only response with HTTP 200, `grpc-status` and
    /// `grpc-message` (and `grpc-retry-pushback-ms` over a rate limit). The [`AuthError`] is
    /// in its extensions. The body is empty.
    #[must_use]
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let kind = self.kind();
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        let challenges = self
            .challenges
            .as_deref()
            .unwrap_or_else(|| Challenges::plain());
        let values = challenges.values(kind, self.scheme, self.step_up.as_deref());
        for challenge in values.into_iter().flatten() {
            headers.append(WWW_AUTHENTICATE, challenge);
        }
        if let Some(nonce) = &self.dpop_nonce {
            headers.insert(crate::dpop::DPOP_NONCE, HeaderValue::clone(nonce));
        }
        let wait = match (kind, self.retry_after) {
            (_, Some(wait)) => Some(wait),
            (kind, None) if kind.is_unavailable() => Some(Duration::from_secs(1)),
            _ => None,
        };
        if let Some(wait) = wait {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        }
        if self.grpc {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from(kind.grpc_code().as_u16()));
            // Descriptions are fixed ASCII without `%`: valid grpc-message values as they are.
            headers.insert("grpc-message", HeaderValue::from_static(grpc_message(kind)));
            if let (ErrorKind::RateLimited, Some(wait)) = (kind, wait) {
                let ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
                headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
            }
            *res.status_mut() = StatusCode::OK;
        } else {
            *res.status_mut() = kind.status();
        }
        res.extensions_mut().insert(self.error);
        res
    }

    /// One `tracing` event per refusal, with its stable `reason`, the failed proof check
    /// (`proof`, for DPoP and mTLS), the client when the token was valid, and never any token
    /// material.
    pub(crate) fn log(&self) {
        let err = &self.error;
        let reason = err.kind().as_str();
        let claim = err.claim_name();
        let proof = err.proof_detail();
        let client_id = self.token.as_ref().and_then(VerifiedToken::client_id);
        match err.kind() {
            ErrorKind::MissingToken => {
                tracing::debug!(target: "bearer_guard", reason, "request without bearer token refused");
            }
            ErrorKind::RateLimited => tracing::info!(
                target: "bearer_guard::rate_limit",
                reason,
                client_id,
                retry_after_secs = self.retry_after.map(retry_after_secs),
                "request refused: client over its rate limit"
            ),
            kind if kind.is_unavailable() => {
                tracing::warn!(target: "bearer_guard", reason, proof, client_id, "request refused: server-side dependency unavailable");
            }
            _ => {
                tracing::info!(target: "bearer_guard", reason, claim, proof, client_id, requirement = self.requirement, "request refused")
            }
        }
        crate::metrics::refused(err.kind());
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("error", &self.error)
            .field("grpc", &self.grpc)
            .field("retry_after", &self.retry_after)
            .field("requirement", &self.requirement)
            .field("scheme", &self.scheme)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The `grpc-message`: as vague as the HTTP answer, which tells only `invalid_token`.
fn grpc_message(kind: ErrorKind) -> &'static str {
    match kind.oauth_error() {
        Some("invalid_token") => "invalid token",
        _ => kind.description(),
    }
}

/// `Retry-After` seconds: rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Turns a [`Refusal`] into the response the client gets.
///
/// The default, [`StandardRejection`], answers per RFC 6750 or with a gRPC status
/// ([`Refusal::to_response`]). Bring your own to add a JSON body, answer a failed
/// requirement with 404, or anything else; closures `Fn(&Refusal) -> Response<B>` implement
/// it. Whatever it returns, the layer inserts the [`AuthError`] into the response's
/// extensions.
///
/// ```
/// use bearer_guard::{ErrorKind, response::Refusal};
/// use http::{Response, StatusCode};
///
/// // Hide the routes of other tenants: a failed "tenant" requirement answers 404.
/// let rejection = |refusal: &Refusal| -> Response<String> {
///     if refusal.requirement() == Some("tenant") {
///         let mut res = Response::new(String::new());
///         *res.status_mut() = StatusCode::NOT_FOUND;
///         return res;
///     }
///     refusal.to_response()
/// };
/// # let _ = rejection;
/// ```
pub trait Rejection<B>: Send + Sync + 'static {
    /// The response for `refusal`.
    fn reject(&self, refusal: &Refusal) -> Response<B>;
}

/// The standard answer: [`Refusal::to_response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StandardRejection;

impl<B: Default> Rejection<B> for StandardRejection {
    fn reject(&self, refusal: &Refusal) -> Response<B> {
        refusal.to_response()
    }
}

impl<B, F> Rejection<B> for F
where
    F: Fn(&Refusal) -> Response<B> + Send + Sync + 'static,
{
    fn reject(&self, refusal: &Refusal) -> Response<B> {
        self(refusal)
    }
}

/// `rejection`'s answer to `refusal`, with the [`AuthError`] in its extensions, logged.
pub(crate) fn answer<B, R: Rejection<B> + ?Sized>(rejection: &R, refusal: &Refusal) -> Response<B> {
    refusal.log();
    let mut res = rejection.reject(refusal);
    if res.extensions().get::<AuthError>() != Some(&refusal.error) {
        res.extensions_mut().insert(refusal.error);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http2_requests_with_a_grpc_content_type_are_grpc() {
        let mut h = HeaderMap::new();
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/grpcx", false),
            ("application/json", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(Version::HTTP_2, &h), grpc, "{ct}");
            assert!(!is_grpc(Version::HTTP_11, &h), "{ct} over HTTP/1.1");
        }
    }

    #[test]
    fn standard_answers_follow_the_table() {
        let scoped = Arc::new(Challenges::default().for_scopes(["read"].into_iter()));
        let http = |kind: ErrorKind| {
            Refusal::new(kind)
                .answering(Some(&scoped), Version::HTTP_11, &HeaderMap::new())
                .to_response::<()>()
        };
        let res = http(ErrorKind::InsufficientScope);
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", scope=\"read\""
        );
        let res = http(ErrorKind::KeysUnavailable);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());

        let mut grpc = HeaderMap::new();
        grpc.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let res = Refusal::new(ErrorKind::RateLimited)
            .with_retry_after(Duration::from_millis(1500))
            .answering(None, Version::HTTP_2, &grpc)
            .to_response::<()>();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1500");
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(ErrorKind::RateLimited)
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(720)), 720);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
