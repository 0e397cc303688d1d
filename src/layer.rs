//! [`RequireScope`], the per-route layer, and [`Guard`], the one home of what an API's routes
//! share (the validator, the rejection, DPoP, the challenges' realm and metadata).

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::authorize::Binding;
use crate::authorize::{Policy, Requirement, Route};
use crate::claims::AccessClaims;
use crate::dpop::Dpop;
use crate::error::ConfigError;
use crate::metadata::ProtectedResource;
use crate::response::{Challenges, StandardRejection};
use crate::scope::RequiredScopes;
use crate::service::{RequireScopeService, State};
use crate::validator::Validator;

/// What the routes of one API share: the [`Validator`], the `WWW-Authenticate` `realm`, the
/// RFC 9728 `resource_metadata` URL, DPoP, and the [`Rejection`](crate::response::Rejection)
/// that builds the responses. The validator knows tokens; the guard knows HTTP. Each route's
/// [`RequireScope`] is built from it (or from a bare `&Validator`, for a guard with the
/// defaults).
///
/// ```
/// use bearer_guard::{Guard, KeySet, RequireScope, Validator};
/// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
/// let validator = Validator::builder()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .keys(KeySet::from_jwks_json(jwks)?)
///     .build()?;
/// let guard = Guard::new(&validator)
///     .realm("transactions")?
///     .resource_metadata("https://api.example/.well-known/oauth-protected-resource")?;
/// let read = RequireScope::all(&guard, ["read:transactions"])?;
/// let any_token = RequireScope::authenticated(&guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Guard<T = AccessClaims, R = StandardRejection> {
    validator: Validator<T>,
    realm: Option<String>,
    resource_metadata: Option<String>,
    challenges: Arc<Challenges>,
    rejection: Arc<R>,
    dpop: Option<Dpop>,
    /// Where the routes' scopes are collected (RFC 9728 `scopes_supported`).
    resource: Option<ProtectedResource>,
}

impl<T> Guard<T> {
    /// A guard for `validator`'s tokens, with plain `Bearer` challenges and the standard
    /// answers.
    pub fn new(validator: &Validator<T>) -> Self {
        Guard {
            validator: validator.clone(),
            realm: None,
            resource_metadata: None,
            challenges: Arc::new(Challenges::default()),
            rejection: Arc::new(StandardRejection),
            dpop: None,
            resource: None,
        }
    }
}

impl<T> From<&Validator<T>> for Guard<T> {
    fn from(validator: &Validator<T>) -> Self {
        Guard::new(validator)
    }
}

impl<T, R> From<&Guard<T, R>> for Guard<T, R> {
    fn from(guard: &Guard<T, R>) -> Self {
        guard.clone()
    }
}

impl<T, R> Guard<T, R> {
    /// A `realm` for every challenge.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] for a value that cannot be sent as a quoted string.
    pub fn realm(mut self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        self.realm = Some(realm.into());
        self.rebuild()
    }

    /// The URL of this resource's RFC 9728 Protected Resource Metadata, sent as
    /// `resource_metadata` in every challenge so that clients (MCP clients, agents) can
    /// discover the authorization server.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] for a value that cannot be sent as a quoted string.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        self.resource_metadata = Some(url.into());
        self.rebuild()
    }

    /// Points the challenges at this resource's RFC 9728 metadata (`resource_metadata`, as
    /// [`resource_metadata`](Self::resource_metadata) does), and collects the scopes of the
    /// routes built from this guard into its `scopes_supported`.
    ///
    /// ```
    /// use bearer_guard::metadata::ProtectedResource;
    /// use bearer_guard::{Guard, KeySet, RequireScope, Validator};
    /// # let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    /// #   "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
    /// # let validator = Validator::builder().issuer("https://issuer.example")
    /// #     .audience("https://api.example").keys(KeySet::from_jwks_json(jwks)?).build()?;
    /// let resource = ProtectedResource::builder("https://api.example")
    ///     .authorization_server("https://issuer.example")
    ///     .build()?;
    /// let guard = Guard::new(&validator).protected_resource(&resource)?;
    /// let _read = RequireScope::all(&guard, ["read"])?;
    /// assert!(resource.document().contains(r#""scopes_supported":["read"]"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] for a metadata URL that cannot be sent in a
    /// challenge.
    pub fn protected_resource(mut self, resource: &ProtectedResource) -> Result<Self, ConfigError> {
        self.resource = Some(resource.clone());
        self.resource_metadata(resource.metadata_url())
    }

    fn rebuild(mut self) -> Result<Self, ConfigError> {
        self.challenges = Arc::new(Challenges::new(
            self.realm.as_deref(),
            self.resource_metadata.as_deref(),
        )?);
        Ok(self)
    }

    /// Answers refusals with `rejection` instead of the standard answers.
    pub fn rejection<R2>(self, rejection: R2) -> Guard<T, R2> {
        Guard {
            validator: self.validator,
            realm: self.realm,
            resource_metadata: self.resource_metadata,
            challenges: self.challenges,
            rejection: Arc::new(rejection),
            dpop: self.dpop,
            resource: self.resource,
        }
    }

    /// Accepts DPoP-bound tokens (RFC 9449) on the routes of this guard: `Authorization:
    /// DPoP <token>` with a `DPoP` proof, checked by `dpop` on every request (cached tokens
    /// included). Plain `Bearer` tokens are still accepted, unless a route
    /// [requires DPoP](RequireScope::require_dpop); a DPoP-bound token sent as `Bearer` is
    /// always refused. Challenges then offer `DPoP algs=".."` beside `Bearer`.
    #[must_use]
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// The validator.
    #[must_use]
    pub fn validator(&self) -> &Validator<T> {
        &self.validator
    }

    /// The layer of one route: this guard's settings, `scopes` and nothing else yet.
    fn route(&self, scopes: RequiredScopes) -> RequireScope<T, R> {
        if let Some(resource) = &self.resource {
            resource.register_scopes(scopes.iter());
        }
        let route = Route {
            validator: self.validator.clone(),
            binding: Binding {
                dpop: self.dpop.clone(),
                dpop_required: false,
            },
            policy: Policy {
                scopes,
                requirements: Vec::new(),
                optional: false,
            },
        };
        RequireScope {
            state: Arc::new(State::new(
                route,
                Arc::clone(&self.challenges),
                Arc::clone(&self.rejection),
            )),
        }
    }
}

impl<T, R> Clone for Guard<T, R> {
    fn clone(&self) -> Self {
        Guard {
            validator: self.validator.clone(),
            realm: self.realm.clone(),
            resource_metadata: self.resource_metadata.clone(),
            challenges: Arc::clone(&self.challenges),
            rejection: Arc::clone(&self.rejection),
            dpop: self.dpop.clone(),
            resource: self.resource.clone(),
        }
    }
}

impl<T, R> fmt::Debug for Guard<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("realm", &self.realm)
            .field("resource_metadata", &self.resource_metadata)
            .field("dpop", &self.dpop)
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

/// A [`Layer`] that admits a request only with a valid bearer token granting the route's
/// scopes, and puts the token's [`Claims`](crate::Claims) and [`VerifiedToken`] into the
/// request's extensions.
///
/// Failures are answered by the layer itself, never passed on as an `Err`:
///
/// | failure | HTTP | gRPC (HTTP/2, `content-type: application/grpc`) |
/// |---|---|---|
/// | no `Authorization: Bearer` | 401, `WWW-Authenticate: Bearer scope=".."` | 200, `grpc-status: 16` |
/// | malformed header | 400, `error="invalid_request"` | 200, `grpc-status: 16` |
/// | invalid, inactive or revoked token | 401, `error="invalid_token"` | 200, `grpc-status: 16` |
/// | missing scope, failed [`require`](Self::require) | 403, `error="insufficient_scope", scope=".."` | 200, `grpc-status: 7` |
/// | keys, introspection or a store unavailable | 503, `Retry-After` | 200, `grpc-status: 14` |
///
/// The [`AuthError`](crate::AuthError) is in each rejection's extensions; a
/// [`Rejection`](crate::response::Rejection) given to the [`Guard`] can answer differently.
/// Cloning the layer or its service is one reference-count increment.
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
///     .layer(RequireScope::all(&validator, ["read:transactions"])?)
///     .service(service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(()))
///     }));
///
/// # tokio_test_block_on(async {
/// let res = svc.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// // The first 401 names the route's scopes, for the client to ask for.
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer scope="read:transactions""#);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`VerifiedToken`]: crate::VerifiedToken
pub struct RequireScope<T = AccessClaims, R = StandardRejection> {
    state: Arc<State<T, R>>,
}

impl<T, R> RequireScope<T, R> {
    /// Requires a valid token granting `scopes`. `guard` is a [`&Guard`](Guard) (the API's
    /// shared settings) or a [`&Validator`](Validator) (a guard with the defaults).
    pub fn new(guard: impl Into<Guard<T, R>>, scopes: RequiredScopes) -> Self {
        guard.into().route(scopes)
    }

    /// Requires a valid token granting every one of `scopes`. `guard` is a
    /// [`&Guard`](Guard) or a [`&Validator`](Validator).
    ///
    /// # Errors
    /// [`ConfigError::EmptyScopes`] for an empty list (use
    /// [`authenticated`](Self::authenticated) to require only a valid token),
    /// [`ConfigError::InvalidScope`] for a scope no token could be granted.
    pub fn all<I, S>(guard: impl Into<Guard<T, R>>, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(Self::new(guard, RequiredScopes::all(scopes)?))
    }

    /// Requires a valid token granting at least one of `scopes`.
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn any<I, S>(guard: impl Into<Guard<T, R>>, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(Self::new(guard, RequiredScopes::any(scopes)?))
    }

    /// Requires a valid token, whatever its scopes.
    pub fn authenticated(guard: impl Into<Guard<T, R>>) -> Self {
        Self::new(guard, RequiredScopes::none())
    }
}

impl<T, R> RequireScope<T, R> {
    /// Lets requests without credentials through, without claims (the handler sees
    /// `Option<Claims<T>>` as `None`). Credentials that are present are still checked in
    /// full: a malformed header, an invalid token, or one without the required scopes is
    /// refused as usual.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with_policy(|p| p.optional = true)
    }

    /// Also requires `predicate` to hold for the token's claims: a claim value, a "trusted
    /// client" flag, anything. When it does not, the answer is 403 `insufficient_scope`
    /// ([`ErrorKind::Forbidden`](crate::ErrorKind::Forbidden)). Several requirements must
    /// all hold; they are checked after the scopes.
    ///
    /// ```
    /// use bearer_guard::{AccessClaims, RequireScope};
    /// # fn f(validator: &bearer_guard::Validator) -> Result<(), bearer_guard::ConfigError> {
    /// let billing_only = RequireScope::all(validator, ["invoices:write"])?
    ///     .require(|c: &AccessClaims| c.client_id() == Some("billing-service"));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn require<F>(self, predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.with_requirement(None, Arc::new(predicate))
    }

    /// As [`require`](Self::require), naming the requirement: a failure's [`Refusal`](crate::response::Refusal)
    /// carries the name ([`Refusal::requirement`](crate::response::Refusal::requirement)), for a [`Rejection`](crate::response::Rejection) that answers it in
    /// its own way, and for the log.
    #[must_use]
    pub fn require_named<F>(self, name: &'static str, predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.with_requirement(Some(name), Arc::new(predicate))
    }

    fn with_requirement(
        self,
        name: Option<&'static str>,
        predicate: Arc<dyn Fn(&T) -> bool + Send + Sync>,
    ) -> Self {
        self.with_policy(|p| p.requirements.push(Requirement { name, predicate }))
    }

    /// Requires DPoP on this route: only DPoP-bound tokens with a valid proof (checked by
    /// `dpop`, which replaces the guard's [`dpop`](Guard::dpop) for this route) pass; a plain `Bearer` token is refused with
    /// [`ErrorKind::DpopRequired`](crate::ErrorKind::DpopRequired), and the challenges offer
    /// only `DPoP`.
    #[must_use]
    pub fn require_dpop(self, dpop: Dpop) -> Self {
        self.with_route(|route| {
            route.binding.dpop = Some(dpop);
            route.binding.dpop_required = true;
        })
    }

    fn with_policy(self, change: impl FnOnce(&mut Policy<T>)) -> Self {
        self.with_route(|route| change(&mut route.policy))
    }

    fn with_route(self, change: impl FnOnce(&mut Route<T>)) -> Self {
        let state = &self.state;
        let mut route = Route {
            validator: state.route.validator.clone(),
            binding: state.route.binding.clone(),
            policy: state.route.policy.clone(),
        };
        change(&mut route);
        RequireScope {
            state: Arc::new(State::new(
                route,
                Arc::clone(&state.base),
                Arc::clone(&state.rejection),
            )),
        }
    }

    /// The scopes this layer requires.
    #[must_use]
    pub fn required_scopes(&self) -> &RequiredScopes {
        &self.state.route.policy.scopes
    }
}

impl<T, R> Clone for RequireScope<T, R> {
    fn clone(&self) -> Self {
        RequireScope {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T, R> fmt::Debug for RequireScope<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("policy", &self.state.route.policy)
            .field("binding", &self.state.route.binding)
            .field("validator", &self.state.route.validator)
            .finish_non_exhaustive()
    }
}

impl<S, T, R> Layer<S> for RequireScope<T, R> {
    type Service = RequireScopeService<S, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService::new(inner, Arc::clone(&self.state))
    }
}
