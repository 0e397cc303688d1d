//! [`RequireScope`]: the per-route layer.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response};
use serde::de::DeserializeOwned;
use tower_layer::Layer;

use crate::bearer;
use crate::claims::{AccessClaims, Claims};
use crate::error::{AuthError, ErrorKind};
use crate::scope::RequiredScopes;
use crate::service::RequireScopeService;
use crate::validator::{Refused, Step, Validator, Verified, insufficient_scope_challenge};

/// A [`Layer`] that admits a request only with a valid bearer token granting the route's
/// scopes, and puts the token's [`Claims`] into the request's extensions.
///
/// Failures are answered by the layer itself, never passed on as an `Err`:
///
/// | failure | HTTP | gRPC (`content-type: application/grpc`) |
/// |---|---|---|
/// | no `Authorization: Bearer` | 401, `WWW-Authenticate: Bearer` | 200, `grpc-status: 16` |
/// | malformed header | 400, `error="invalid_request"` | 200, `grpc-status: 16` |
/// | invalid token, revoked token | 401, `error="invalid_token"` | 200, `grpc-status: 16` |
/// | missing scope, failed [`require`](Self::require) | 403, `error="insufficient_scope", scope=".."` | 200, `grpc-status: 7` |
/// | keys or revocation store unavailable | 503, `Retry-After` | 200, `grpc-status: 14` |
///
/// The [`AuthError`] is in each rejection's extensions. Cloning the layer or its service is
/// one reference-count increment.
///
/// # Example
/// ```
/// use bearer_guard::{KeySet, RequireScope, Validator};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
///
/// let validator = Validator::builder()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .keys(KeySet::from_jwks_json(jwks)?)
///     .build()?;
///
/// let svc = ServiceBuilder::new()
///     .layer(RequireScope::all(&validator, ["read:transactions"]))
///     .service(service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(()))
///     }));
///
/// # tokio_test_block_on(async {
/// let res = svc.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RequireScope<T = AccessClaims> {
    state: Arc<State<T>>,
}

pub(crate) struct State<T> {
    validator: Validator<T>,
    required: RequiredScopes,
    optional: bool,
    insufficient_scope: HeaderValue,
    checks: Vec<ClaimCheck<T>>,
}

/// A requirement on the claims beyond scopes, and what to answer when it fails.
struct ClaimCheck<T> {
    predicate: Arc<dyn Fn(&T) -> bool + Send + Sync>,
    deny: Option<DenyFn<T>>,
}

type DenyFn<T> = Arc<dyn Fn(&T) -> Response<()> + Send + Sync>;

impl<T> Clone for ClaimCheck<T> {
    fn clone(&self) -> Self {
        ClaimCheck {
            predicate: Arc::clone(&self.predicate),
            deny: self.deny.clone(),
        }
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State {
            validator: self.validator.clone(),
            required: self.required.clone(),
            optional: self.optional,
            insufficient_scope: self.insufficient_scope.clone(),
            checks: self.checks.clone(),
        }
    }
}

/// Why the layer refused a request: the error, the client when known (for the security
/// event), and a custom answer from [`RequireScope::require_or`].
pub(crate) struct Denial {
    pub(crate) error: AuthError,
    pub(crate) client_id: Option<Box<str>>,
    custom: Option<Box<Response<()>>>,
}

impl From<AuthError> for Denial {
    fn from(error: AuthError) -> Self {
        Denial {
            error,
            client_id: None,
            custom: None,
        }
    }
}

impl From<Refused> for Denial {
    fn from(refused: Refused) -> Self {
        Denial {
            error: refused.error,
            client_id: refused.client_id,
            custom: None,
        }
    }
}

impl<T> RequireScope<T> {
    /// Requires a valid token granting the given scopes.
    pub fn new(validator: &Validator<T>, required: RequiredScopes) -> Self {
        let insufficient_scope = insufficient_scope_challenge(validator, &required);
        RequireScope {
            state: Arc::new(State {
                validator: validator.clone(),
                required,
                optional: false,
                insufficient_scope,
                checks: Vec::new(),
            }),
        }
    }

    /// Requires a valid token granting every one of `scopes`.
    pub fn all<I, S>(validator: &Validator<T>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(validator, RequiredScopes::all(scopes))
    }

    /// Requires a valid token granting at least one of `scopes`.
    pub fn any<I, S>(validator: &Validator<T>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(validator, RequiredScopes::any(scopes))
    }

    /// Requires a valid token, whatever its scopes.
    pub fn authenticated(validator: &Validator<T>) -> Self {
        Self::new(validator, RequiredScopes::none())
    }

    /// Lets requests without a bearer token through, without claims (the handler sees
    /// `Option<Claims<T>>` as `None`). A token that is present is still checked in full: an
    /// invalid one, or one without the required scopes, is refused as usual.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with_state(|s| s.optional = true)
    }

    /// Also requires `predicate` to hold for the token's claims: a claim value, a "trusted
    /// client" flag, anything. When it does not, the answer is 403 `insufficient_scope`
    /// ([`ErrorKind::Forbidden`]). Several requirements must all hold.
    ///
    /// ```
    /// use bearer_guard::{AccessClaims, RequireScope};
    /// # fn f(validator: &bearer_guard::Validator) {
    /// let billing_only = RequireScope::all(validator, ["invoices:write"])
    ///     .require(|c: &AccessClaims| c.client_id() == Some("billing-service"));
    /// # }
    /// ```
    pub fn require<F>(self, predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.with_state(|s| {
            s.checks.push(ClaimCheck {
                predicate: Arc::new(predicate),
                deny: None,
            })
        })
    }

    /// As [`require`](Self::require), answering with `deny(claims)` instead: its status and
    /// headers, with an empty body (the [`AuthError`] is in its extensions).
    pub fn require_or<F, D>(self, predicate: F, deny: D) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
        D: Fn(&T) -> Response<()> + Send + Sync + 'static,
    {
        self.with_state(|s| {
            s.checks.push(ClaimCheck {
                predicate: Arc::new(predicate),
                deny: Some(Arc::new(deny)),
            });
        })
    }

    fn with_state(self, change: impl FnOnce(&mut State<T>)) -> Self {
        let mut state = State::clone(&self.state);
        change(&mut state);
        RequireScope {
            state: Arc::new(state),
        }
    }

    /// The scopes this layer requires.
    #[must_use]
    pub fn required_scopes(&self) -> &RequiredScopes {
        &self.state.required
    }
}

/// The outcome of checking a request without waiting.
pub(crate) enum Authz<T> {
    /// `Ok(None)`: no token, and the layer is optional.
    Done(Result<Option<Claims<T>>, Denial>),
    /// The keys or the revocation status must be fetched first: call
    /// [`State::authorize_async`].
    Wait,
}

impl<T> State<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    fn token<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthError> {
        match bearer::extract(headers, self.validator.max_token_len())? {
            Some(token) => Ok(Some(token)),
            None if self.optional => Ok(None),
            None => Err(ErrorKind::MissingToken.into()),
        }
    }

    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Authz<T> {
        let token = match self.token(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Authz::Done(Ok(None)),
            Err(err) => return Authz::Done(Err(err.into())),
        };
        match self.validator.verify(token, true) {
            Step::Done(Ok(verified)) => Authz::Done(self.admit(&verified)),
            Step::Done(Err(err)) => Authz::Done(Err(err.into())),
            Step::Wait(_) => Authz::Wait,
        }
    }

    /// As [`authorize`](Self::authorize), waiting for what it asked for.
    pub(crate) async fn authorize_async(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Claims<T>>, Denial> {
        let Some(token) = self.token(headers)? else {
            return Ok(None);
        };
        let verified = self.validator.verify_async(token).await?;
        self.admit(&verified)
    }

    /// The route's own checks on a valid token: scopes, then claim requirements.
    fn admit(&self, verified: &Verified<T>) -> Result<Option<Claims<T>>, Denial> {
        let deny = |error: AuthError, custom| Denial {
            error,
            client_id: verified.client_id.clone(),
            custom,
        };
        if let Err(err) = self.required.check(verified.scopes.iter()) {
            return Err(deny(err, None));
        }
        let claims = &*verified.claims;
        if let Some(check) = self.checks.iter().find(|c| !(c.predicate)(claims)) {
            let custom = check.deny.as_ref().map(|deny| Box::new(deny(claims)));
            return Err(deny(ErrorKind::Forbidden.into(), custom));
        }
        Ok(Some(verified.claims.clone()))
    }

    pub(crate) fn reject<B: Default>(&self, denial: Denial, grpc: bool) -> Response<B> {
        match denial.custom {
            Some(custom) => {
                let (mut parts, ()) = (*custom).into_parts();
                parts.extensions.insert(denial.error);
                Response::from_parts(parts, B::default())
            }
            None => crate::challenge::reject(
                denial.error,
                self.validator.challenges(),
                &self.insufficient_scope,
                grpc,
            ),
        }
    }
}

impl<T> Clone for RequireScope<T> {
    fn clone(&self) -> Self {
        RequireScope {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> fmt::Debug for RequireScope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("required", &self.state.required)
            .field("optional", &self.state.optional)
            .field("claim_requirements", &self.state.checks.len())
            .field("validator", &self.state.validator)
            .finish()
    }
}

impl<S, T> Layer<S> for RequireScope<T> {
    type Service = RequireScopeService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService::new(inner, Arc::clone(&self.state))
    }
}
