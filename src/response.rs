//! Every refusal the crate answers (authentication, scope, rate limit, unavailable), in one
//! place: the per-kind table, the RFC 6750 challenges, the gRPC trailers-only answer, the
//! security event, and the pluggable [`Rejection`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};

use crate::dpop::Scheme;
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::token::VerifiedToken;

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

/// One row of the table: everything a kind of refusal is answered and logged with.
struct Row {
    status: StatusCode,
    /// RFC 6750 §3.1 `error` code, if any.
    error: Option<&'static str>,
    grpc: GrpcCode,
    /// The log and metrics `reason`.
    reason: &'static str,
    /// The `Display` text and the `grpc-message`.
    description: &'static str,
}

const fn row(
    status: StatusCode,
    error: Option<&'static str>,
    grpc: GrpcCode,
    reason: &'static str,
    description: &'static str,
) -> Row {
    Row {
        status,
        error,
        grpc,
        reason,
        description,
    }
}

const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const UNAUTHENTICATED: GrpcCode = GrpcCode::Unauthenticated;

/// A 401 `invalid_token` row.
const fn invalid(reason: &'static str, description: &'static str) -> Row {
    row(
        UNAUTHORIZED,
        Some("invalid_token"),
        UNAUTHENTICATED,
        reason,
        description,
    )
}

impl ErrorKind {
    /// The table. Adding a kind is adding a row.
    #[rustfmt::skip]
    const fn row(self) -> Row {
        use ErrorKind as K;
        use GrpcCode::{PermissionDenied, ResourceExhausted, Unavailable};
        const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
        const DOWN: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
        match self {
            K::MissingToken => row(UNAUTHORIZED, None, UNAUTHENTICATED, "missing_token", "no bearer token"),
            K::InvalidRequest => row(StatusCode::BAD_REQUEST, Some("invalid_request"), UNAUTHENTICATED, "invalid_request", "malformed Authorization header"),
            K::TokenTooLarge => invalid("token_too_large", "token exceeds the size limit"),
            K::Malformed => invalid("malformed", "token is not a well-formed compact JWS"),
            K::DuplicateMember => invalid("duplicate_member", "token repeats a JSON member name"),
            K::UnsupportedAlgorithm => invalid("unsupported_algorithm", "token algorithm is not accepted"),
            K::AlgorithmMismatch => invalid("algorithm_mismatch", "token algorithm differs from the key's algorithm"),
            K::UnknownKey => invalid("unknown_key", "no key matches the token"),
            K::UnsupportedCritical => invalid("unsupported_critical", "token has critical header parameters"),
            K::InvalidSignature => invalid("invalid_signature", "token signature is invalid"),
            K::InvalidType => invalid("invalid_type", "token type is not at+jwt"),
            K::MissingClaim => invalid("missing_claim", "token lacks a required claim"),
            K::InvalidClaimType => invalid("invalid_claim_type", "token claim has the wrong type"),
            K::Expired => invalid("expired", "token has expired"),
            K::NotYetValid => invalid("not_yet_valid", "token is not valid yet"),
            K::IssuedInFuture => invalid("issued_in_future", "token is issued in the future"),
            K::LifetimeTooLong => invalid("lifetime_too_long", "token lifetime exceeds the maximum"),
            K::InvalidIssuer => invalid("invalid_issuer", "token issuer is not accepted"),
            K::InvalidAudience => invalid("invalid_audience", "token audience is not accepted"),
            K::InvalidClaims => invalid("invalid_claims", "token claims do not match the expected shape"),
            K::SenderConstrained => invalid("sender_constrained", "token is bound to a key and needs proof of possession"),
            K::BindingMismatch => invalid("binding_mismatch", "token binding does not hold"),
            K::DpopRequired => invalid("dpop_required", "this resource requires DPoP"),
            K::InvalidDpopProof => row(UNAUTHORIZED, Some("invalid_dpop_proof"), UNAUTHENTICATED, "invalid_dpop_proof", "DPoP proof is invalid"),
            K::UseDpopNonce => row(UNAUTHORIZED, Some("use_dpop_nonce"), UNAUTHENTICATED, "use_dpop_nonce", "DPoP proof needs a server nonce"),
            K::Revoked => invalid("revoked", "token has been revoked"),
            K::InsufficientScope => row(FORBIDDEN, Some("insufficient_scope"), PermissionDenied, "insufficient_scope", "token lacks the required scope"),
            K::Forbidden => row(FORBIDDEN, Some("insufficient_scope"), PermissionDenied, "forbidden", "token is not allowed here"),
            K::KeysUnavailable => row(DOWN, None, Unavailable, "keys_unavailable", "verification keys are unavailable"),
            K::RevocationUnavailable => row(DOWN, None, Unavailable, "revocation_unavailable", "revocation status is unavailable"),
            K::ProofReplayUnavailable => row(DOWN, None, Unavailable, "proof_replay_unavailable", "DPoP replay store is unavailable"),
            K::RateLimited => row(StatusCode::TOO_MANY_REQUESTS, None, ResourceExhausted, "rate_limited", "rate limit exceeded"),
            K::QuotaUnavailable => row(DOWN, None, Unavailable, "quota_unavailable", "quota store is unavailable"),
        }
    }

    /// A stable, short, lower-case name for logs and metrics (`"expired"`, `"unknown_key"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.row().reason
    }

    /// The HTTP status this failure is answered with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        self.row().status
    }

    /// The RFC 6750 §3.1 `error` code, if the failure has one.
    #[must_use]
    pub const fn oauth_error(self) -> Option<&'static str> {
        self.row().error
    }

    /// The gRPC status code this failure is answered with on a gRPC request.
    #[must_use]
    pub const fn grpc_code(self) -> GrpcCode {
        self.row().grpc
    }

    pub(crate) const fn description(self) -> &'static str {
        self.row().description
    }

    /// Whether the refusal is the server's fault (a dependency down): answered 503 with
    /// `Retry-After`, logged as a warning.
    pub(crate) const fn is_unavailable(self) -> bool {
        self.row().status.as_u16() == 503
    }
}

/// The `WWW-Authenticate` challenges of a route, built once (RFC 6750 §3).
#[derive(Clone, Debug)]
pub(crate) struct Challenges {
    /// `realm=".."` and `resource_metadata=".."` (or empty): the auth-params every
    /// challenge starts with.
    params: Box<str>,
    missing: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
    insufficient_scope: HeaderValue,
    /// `scope="..."` of the route (or empty).
    scope: Box<str>,
    /// The route accepts DPoP: the `DPoP` challenge goes beside (or, where only DPoP is
    /// accepted, instead of) the `Bearer` one.
    dpop: Option<DpopChallenge>,
}

/// The `DPoP` challenge of a route (RFC 9449 §7.1).
#[derive(Clone, Debug)]
struct DpopChallenge {
    /// `algs="ES256 .."`.
    algs: Box<str>,
    /// Plain bearer tokens are accepted too.
    bearer: bool,
}

impl Challenges {
    /// The challenges for `realm` and an RFC 9728 `resource_metadata` URL.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] for a value that cannot be a quoted string.
    pub(crate) fn new(
        realm: Option<&str>,
        resource_metadata: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut params = Vec::new();
        if let Some(realm) = realm {
            params.push(format!("realm={}", quoted(realm, "realm")?));
        }
        if let Some(url) = resource_metadata {
            params.push(format!(
                "resource_metadata={}",
                quoted(url, "resource_metadata")?
            ));
        }
        let params = params.join(", ");
        let with_error = |error: &str| header(&params, &[format!("error=\"{error}\"")]);
        Ok(Challenges {
            missing: header(&params, &[]),
            invalid_request: with_error("invalid_request"),
            invalid_token: with_error("invalid_token"),
            insufficient_scope: with_error("insufficient_scope"),
            params: params.into(),
            scope: "".into(),
            dpop: None,
        })
    }

    /// These challenges, with the `insufficient_scope` one naming `scopes` (RFC 6750 §3.1).
    /// Scope tokens never hold `"`, `\` or spaces.
    pub(crate) fn for_scopes<'a>(&self, scopes: impl Iterator<Item = &'a str>) -> Self {
        let scopes: Vec<&str> = scopes.collect();
        let scope = if scopes.is_empty() {
            String::new()
        } else {
            format!("scope=\"{}\"", scopes.join(" "))
        };
        let mut params = vec!["error=\"insufficient_scope\"".to_owned()];
        if !scope.is_empty() {
            params.push(scope.clone());
        }
        Challenges {
            insufficient_scope: header(&self.params, &params),
            scope: scope.into(),
            ..self.clone()
        }
    }

    /// These challenges for a route that accepts DPoP proofs of `algs` (`algs=".."`), and
    /// plain bearer tokens unless `dpop_only`.
    pub(crate) fn with_dpop(&self, algs: &str, dpop_only: bool) -> Self {
        Challenges {
            dpop: Some(DpopChallenge {
                algs: algs.into(),
                bearer: !dpop_only,
            }),
            ..self.clone()
        }
    }

    /// The `WWW-Authenticate` values for a refusal of `kind` of a token that came with
    /// `scheme` (`None`: no credentials). Without DPoP, one prebuilt `Bearer` challenge.
    /// With DPoP, the challenge of the scheme used carries the error, and the other is
    /// offered beside it (RFC 9449 §7.1).
    fn values(&self, kind: ErrorKind, scheme: Option<Scheme>) -> [Option<HeaderValue>; 2] {
        let Some(dpop) = &self.dpop else {
            return [self.get(kind).cloned(), None];
        };
        let Some(error) = kind
            .oauth_error()
            .or((kind == ErrorKind::MissingToken).then_some(""))
        else {
            return [None, None]; // 503, 429: no challenge
        };
        let proof_error = matches!(kind, ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce);
        let dpop_has_error = !error.is_empty() && (scheme == Some(Scheme::Dpop) || proof_error);
        // The challenge of the scheme the token came with carries the error; with no token,
        // both are offered.
        let bearer = match scheme {
            Some(Scheme::Bearer) if !proof_error => self.get(kind).cloned(),
            None if dpop.bearer => self.get(kind).cloned(),
            _ => None,
        };
        let mut params: Vec<&str> = Vec::new();
        if !self.params.is_empty() {
            params.push(&self.params);
        }
        let error_param = format!("error=\"{error}\"");
        if dpop_has_error {
            params.push(&error_param);
            if kind.oauth_error() == Some("insufficient_scope") && !self.scope.is_empty() {
                params.push(&self.scope);
            }
        }
        params.push(&dpop.algs);
        let value = format!("DPoP {}", params.join(", "));
        let dpop = HeaderValue::try_from(value).ok();
        [bearer, dpop]
    }

    fn get(&self, kind: ErrorKind) -> Option<&HeaderValue> {
        match (kind, kind.oauth_error()) {
            (ErrorKind::MissingToken, _) => Some(&self.missing),
            (_, Some("invalid_request")) => Some(&self.invalid_request),
            (_, Some("insufficient_scope")) => Some(&self.insufficient_scope),
            (_, Some(_)) => Some(&self.invalid_token),
            (_, None) => None,
        }
    }
}

impl Default for Challenges {
    fn default() -> Self {
        Challenges::new(None, None).unwrap_or_else(|_| unreachable!("no value to refuse"))
    }
}

/// `Bearer` followed by comma-separated auth-params. The parts are built from validated
/// quoted strings and fixed text, so the value is always valid.
fn header(base: &str, more: &[String]) -> HeaderValue {
    let params: Vec<&str> = std::iter::once(base)
        .filter(|p| !p.is_empty())
        .chain(more.iter().map(String::as_str))
        .collect();
    let value = if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    };
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A quoted-string whose content needs no escaping: visible ASCII and space, without `"`
/// and `\`.
fn quoted(value: &str, what: &'static str) -> Result<String, ConfigError> {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        Ok(format!("\"{value}\""))
    } else {
        Err(ConfigError::InvalidHeaderValue(what))
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
    /// The finer reason of a DPoP or mTLS refusal (a `DpopErrorKind` name).
    detail: Option<&'static str>,
    token: Option<VerifiedToken>,
    challenges: Option<Arc<Challenges>>,
    scheme: Option<Scheme>,
    dpop_nonce: Option<Box<HeaderValue>>,
}

impl Refusal {
    pub(crate) fn new(error: impl Into<AuthError>) -> Self {
        Refusal {
            error: error.into(),
            grpc: false,
            retry_after: None,
            requirement: None,
            detail: None,
            token: None,
            challenges: None,
            scheme: None,
            dpop_nonce: None,
        }
    }

    /// The finer reason of a DPoP or mTLS refusal, for logs and [`detail`](Self::detail).
    pub(crate) fn with_detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
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

    /// The finer reason of a DPoP or mTLS refusal: the failed proof check
    /// ([`DpopErrorKind::as_str`](crate::dpop::DpopErrorKind::as_str), such as `"replayed"`,
    /// `"uri_mismatch"`) or the certificate problem (`"certificate_mismatch"`).
    #[must_use]
    pub fn detail(&self) -> Option<&'static str> {
        self.detail
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
        let challenges = self.challenges.as_deref().unwrap_or(default_challenges());
        for challenge in challenges.values(kind, self.scheme).into_iter().flatten() {
            headers.append(WWW_AUTHENTICATE, challenge);
        }
        if let Some(nonce) = &self.dpop_nonce {
            headers.insert("dpop-nonce", HeaderValue::clone(nonce));
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

    /// One `tracing` event per refusal, with its stable `reason`, the client when the token
    /// was valid, and never any token material.
    pub(crate) fn log(&self) {
        let err = &self.error;
        let reason = err.kind().as_str();
        let claim = err.claim_name();
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
                tracing::warn!(target: "bearer_guard", reason, client_id, "request refused: server-side dependency unavailable");
            }
            _ => {
                tracing::info!(target: "bearer_guard", reason, claim, client_id, requirement = self.requirement, "request refused")
            }
        }
        crate::metrics::refused(err.kind());
    }
}

fn default_challenges() -> &'static Challenges {
    static DEFAULT: std::sync::OnceLock<Challenges> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(Challenges::default)
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("error", &self.error)
            .field("grpc", &self.grpc)
            .field("retry_after", &self.retry_after)
            .field("requirement", &self.requirement)
            .field("detail", &self.detail)
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
/// use bearer_guard::{ErrorKind, Refusal};
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
    fn challenges_carry_realm_and_resource_metadata() {
        let c = Challenges::new(
            Some("api"),
            Some("https://api.example/.well-known/oauth-protected-resource"),
        )
        .expect("valid");
        assert_eq!(
            c.missing,
            "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\""
        );
        assert!(
            c.invalid_token
                .to_str()
                .expect("ascii")
                .ends_with(", error=\"invalid_token\"")
        );
        let plain = Challenges::new(None, None).expect("valid");
        assert_eq!(plain.missing, "Bearer");
        assert_eq!(plain.invalid_request, "Bearer error=\"invalid_request\"");
        assert_eq!(
            plain
                .for_scopes(["a", "b:c"].into_iter())
                .insufficient_scope,
            "Bearer error=\"insufficient_scope\", scope=\"a b:c\""
        );
        assert_eq!(
            c.for_scopes(["a"].into_iter()).insufficient_scope,
            "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\", error=\"insufficient_scope\", scope=\"a\""
        );
    }

    #[test]
    fn header_injection_in_realm_is_refused() {
        assert_eq!(
            Challenges::new(Some("a\", error=\"x"), None).expect_err("quote"),
            ConfigError::InvalidHeaderValue("realm")
        );
        assert!(Challenges::new(Some("a\r\nb"), None).is_err());
    }

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
    fn every_kind_has_one_consistent_row() {
        use ErrorKind as K;
        let all = [
            K::MissingToken,
            K::InvalidRequest,
            K::TokenTooLarge,
            K::Malformed,
            K::DuplicateMember,
            K::UnsupportedAlgorithm,
            K::AlgorithmMismatch,
            K::UnknownKey,
            K::UnsupportedCritical,
            K::InvalidSignature,
            K::InvalidType,
            K::MissingClaim,
            K::InvalidClaimType,
            K::Expired,
            K::NotYetValid,
            K::IssuedInFuture,
            K::LifetimeTooLong,
            K::InvalidIssuer,
            K::InvalidAudience,
            K::InvalidClaims,
            K::SenderConstrained,
            K::BindingMismatch,
            K::DpopRequired,
            K::InvalidDpopProof,
            K::UseDpopNonce,
            K::InsufficientScope,
            K::Forbidden,
            K::Revoked,
            K::KeysUnavailable,
            K::RevocationUnavailable,
            K::ProofReplayUnavailable,
            K::RateLimited,
            K::QuotaUnavailable,
        ];
        let mut reasons = std::collections::HashSet::new();
        for kind in all {
            assert!(reasons.insert(kind.as_str()), "{kind:?}: reason repeated");
            let status = kind.status();
            match kind.oauth_error() {
                Some("invalid_token") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
                    assert_eq!(kind.grpc_code(), GrpcCode::Unauthenticated, "{kind:?}");
                }
                Some("insufficient_scope") => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{kind:?}");
                    assert_eq!(kind.grpc_code(), GrpcCode::PermissionDenied, "{kind:?}");
                }
                Some("invalid_dpop_proof" | "use_dpop_nonce") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?}");
                }
                Some(other) => assert_eq!(other, "invalid_request"),
                None => assert!(
                    matches!(status.as_u16(), 401 | 429 | 503),
                    "{kind:?}: {status}"
                ),
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(kind.grpc_code(), GrpcCode::Unavailable, "{kind:?}");
            }
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
