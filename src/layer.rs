//! [`RequireScope`], the per-route layer, and [`Guard`], the one home of what an API's routes
//! share (the validator, the rejection, DPoP, the challenges' realm and metadata).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
                authentication: None,
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
/// | `acr` or `auth_time` short of [`require_acr`](Self::require_acr), [`max_auth_age`](Self::max_auth_age) | 401, `error="insufficient_user_authentication", acr_values="..", max_age=".."` | 200, `grpc-status: 16` |
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

    /// Requires the user behind the token to have authenticated in one of the ways `acr`
    /// names (RFC 9470): the token's `acr` claim must be one of them (exactly; an absent
    /// `acr` never is). A token that falls short is refused with 401
    /// `insufficient_user_authentication`
    /// ([`ErrorKind::InsufficientUserAuthentication`](crate::ErrorKind::InsufficientUserAuthentication),
    /// claim `"acr"`), whose challenge names what the route asks, `acr_values="<acr>"` (and
    /// `max_age` with [`max_auth_age`](Self::max_auth_age)), for the client to send its
    /// user to the authorization server again with those parameters. Checked after the
    /// scopes and before [`require`](Self::require)'s predicates; cached tokens too. A second
    /// call replaces the set.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bearer_guard::RequireScope;
    /// # fn f(validator: &bearer_guard::Validator) -> Result<(), bearer_guard::ConfigError> {
    /// // Payments need a second factor, used within the last five minutes.
    /// let pay = RequireScope::all(validator, ["payments:write"])?
    ///     .require_acr(["urn:bearer-guard:acr:mfa"])?
    ///     .max_auth_age(Duration::from_secs(300));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidAcrValue`] for no value, or one that cannot be sent in
    /// `acr_values` (empty, whitespace, `"`, `\`, beyond printable ASCII).
    pub fn require_acr<I, S>(self, acr: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let demand = self.state.route.policy.authentication.clone();
        let demand = demand.unwrap_or_default().with_acr(acr)?;
        Ok(self.with_policy(|p| p.authentication = Some(demand)))
    }

    /// Requires the user behind the token to have authenticated at most `age` ago (whole
    /// seconds): `now - auth_time <= age` (RFC 9470). A token without `auth_time` cannot
    /// show its age and is refused too. A refusal is 401 `insufficient_user_authentication`
    /// (claim `"auth_time"`) with `max_age="<seconds>"` in the challenge, as
    /// [`require_acr`](Self::require_acr) describes. The age is measured on every request, a
    /// cached token's too, against this server's clock. A second call replaces the age.
    #[must_use]
    pub fn max_auth_age(self, age: Duration) -> Self {
        let demand = self.state.route.policy.authentication.clone();
        let demand = demand.unwrap_or_default().with_max_age(age);
        self.with_policy(|p| p.authentication = Some(demand))
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

/// Who may act for a token's subject on a route: see [`RequireScope::require_actor`].
#[derive(Clone, Copy)]
enum Actors {
    /// Only delegated tokens whose current actor is listed.
    Required,
    /// Direct tokens, and delegated ones whose current actor is listed.
    Allowed,
}

impl<R> RequireScope<AccessClaims, R> {
    /// Admits only delegated tokens (an `act` claim, RFC 8693 §4.1) whose **current** actor
    /// is one of `actors`, matched against the actor's `client_id`, else its `sub`
    /// ([`Actor::id`](crate::token::Actor::id)): "only these services may call this route for
    /// a user". A token without `act` is refused too. Earlier actors of the chain are not
    /// considered (§4.1: they are informational). A refusal is 403
    /// ([`ErrorKind::Forbidden`](crate::ErrorKind::Forbidden)) with the requirement name
    /// `"actor"`.
    ///
    /// ```
    /// use bearer_guard::RequireScope;
    /// # fn f(validator: &bearer_guard::Validator) -> Result<(), bearer_guard::ConfigError> {
    /// let for_users_via_billing = RequireScope::all(validator, ["invoices:read"])?
    ///     .require_actor(["billing-service"]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn require_actor<I, S>(self, actors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.with_actors(Actors::Required, actors)
    }

    /// As [`require_actor`](Self::require_actor), but tokens without `act` (used by their
    /// own client) pass as well: a delegated token passes only when its current actor is
    /// one of `actors`. Requirement name `"actor"`.
    #[must_use]
    pub fn allow_actors<I, S>(self, actors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.with_actors(Actors::Allowed, actors)
    }

    /// Refuses every delegated token (one with an `act` claim): the route is for clients
    /// acting on their own token only. Requirement name `"no_actor"`.
    #[must_use]
    pub fn forbid_actors(self) -> Self {
        self.require_named("no_actor", |claims: &AccessClaims| {
            matches!(current_actor(claims), Ok(None))
        })
    }

    fn with_actors<I, S>(self, mode: Actors, actors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let actors: Box<[Box<str>]> = actors.into_iter().map(|a| a.into().into()).collect();
        self.require_named("actor", move |claims: &AccessClaims| {
            match current_actor(claims) {
                Ok(None) => matches!(mode, Actors::Allowed),
                Ok(Some(actor)) => actor
                    .id()
                    .is_some_and(|id| actors.iter().any(|a| **a == *id)),
                Err(()) => false,
            }
        })
    }
}

/// The current actor of `claims`, read by the same rules as the verified token's
/// ([`VerifiedToken::actor`](crate::VerifiedToken::actor)); `Err` for an `act` that is not
/// one (which verification already refused).
fn current_actor(claims: &AccessClaims) -> Result<Option<crate::token::Actor>, ()> {
    let Some(act) = claims.extra.get("act") else {
        return Ok(None);
    };
    let text = serde_json::to_string(act).map_err(drop)?;
    crate::checks::actor(&crate::json::Value::Raw(&text))
        .map(Some)
        .map_err(drop)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
    use http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt as _;

    use crate::testkit::layer::{bearer, challenge, send};
    use crate::testkit::{now, token, validator};
    use crate::{AuthError, ErrorKind, Guard, RequireScope};

    const MFA: &str = "urn:bearer-guard:acr:mfa";
    const PWD: &str = "urn:bearer-guard:acr:pwd";

    /// The refusal's kind and the claim it names.
    fn refusal(res: &http::Response<String>) -> Option<(ErrorKind, Option<&'static str>)> {
        let err = res.extensions().get::<AuthError>()?;
        Some((err.kind(), err.claim_name()))
    }

    #[tokio::test]
    async fn a_token_without_an_accepted_acr_gets_401_naming_acr_values() {
        let route = RequireScope::all(&validator(), ["read"])
            .expect("scopes")
            .require_acr([MFA, "phr"])
            .expect("acr");
        let ok = token("ec-1", json!({"acr": MFA}));
        let res = send(route.clone(), Some(&bearer(&ok))).await;
        assert_eq!(
            (res.status(), res.body().as_str()),
            (StatusCode::OK, "client-a")
        );
        for changes in [json!({"acr": PWD}), json!({})] {
            let short = token("ec-1", changes.clone());
            let res = send(route.clone(), Some(&bearer(&short))).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{changes}");
            assert_eq!(
                challenge(&res),
                format!(
                    r#"Bearer error="insufficient_user_authentication", acr_values="{MFA} phr""#
                )
            );
            assert_eq!(
                refusal(&res),
                Some((ErrorKind::InsufficientUserAuthentication, Some("acr")))
            );
            assert!(res.body().is_empty());
        }
    }

    #[tokio::test]
    async fn a_token_whose_auth_time_is_too_old_or_absent_gets_401_naming_max_age() {
        let route =
            RequireScope::authenticated(&validator()).max_auth_age(Duration::from_secs(300));
        let fresh = token("ec-1", json!({"auth_time": now() - 10}));
        assert_eq!(
            send(route.clone(), Some(&bearer(&fresh))).await.status(),
            StatusCode::OK
        );
        for changes in [json!({"auth_time": now() - 3600}), json!({})] {
            let stale = token("ec-1", changes.clone());
            // Twice: the second time from the verified-token cache, checked all the same.
            for _ in 0..2 {
                let res = send(route.clone(), Some(&bearer(&stale))).await;
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{changes}");
                assert_eq!(
                    challenge(&res),
                    r#"Bearer error="insufficient_user_authentication", max_age="300""#
                );
                assert_eq!(
                    refusal(&res),
                    Some((ErrorKind::InsufficientUserAuthentication, Some("auth_time")))
                );
            }
        }
    }

    #[tokio::test]
    async fn both_demands_are_named_after_the_guard_s_params_and_scopes_come_first() {
        let guard = Guard::new(&validator())
            .realm("api")
            .expect("realm")
            .resource_metadata("https://api.test/.well-known/oauth-protected-resource")
            .expect("url");
        let route = RequireScope::all(&guard, ["read"])
            .expect("scopes")
            .max_auth_age(Duration::from_secs(60))
            .require_acr([MFA])
            .expect("acr");
        let weak = token("ec-1", json!({"acr": PWD, "auth_time": now()}));
        let res = send(route.clone(), Some(&bearer(&weak))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&res),
            format!(
                "Bearer realm=\"api\", resource_metadata=\"https://api.test/.well-known/\
                 oauth-protected-resource\", error=\"insufficient_user_authentication\", \
                 acr_values=\"{MFA}\", max_age=\"60\""
            )
        );
        let strong = token("ec-1", json!({"acr": MFA, "auth_time": now() - 5}));
        assert_eq!(
            send(route.clone(), Some(&bearer(&strong))).await.status(),
            StatusCode::OK
        );
        // A token short of both the scope and the authentication: the scope is named
        // first (403), without the step-up's parameters.
        let neither = token("ec-1", json!({"scope": "write"}));
        let res = send(route.clone(), Some(&bearer(&neither))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(
            !challenge(&res).contains("acr_values"),
            "{}",
            challenge(&res)
        );
        // Claims requirements come after it.
        let route = route.require(|_| false);
        let res = send(route.clone(), Some(&bearer(&weak))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = send(route, Some(&bearer(&strong))).await;
        assert_eq!(refusal(&res), Some((ErrorKind::Forbidden, None)));
        // Without a token, the 401 names the scopes only.
        let plain = RequireScope::all(&validator(), ["read"])
            .expect("scopes")
            .require_acr([MFA])
            .expect("acr");
        let res = send(plain, None).await;
        assert_eq!(challenge(&res), r#"Bearer scope="read""#);
    }

    #[tokio::test]
    async fn a_grpc_request_short_of_the_acr_gets_unauthenticated() {
        let svc = RequireScope::authenticated(&validator())
            .require_acr([MFA])
            .expect("acr")
            .layer_fn_wrap();
        let req = Request::builder()
            .version(http::Version::HTTP_2)
            .header(CONTENT_TYPE, "application/grpc")
            .header("authorization", bearer(&token("ec-1", json!({"acr": PWD}))))
            .body(())
            .expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_some());
    }

    #[test]
    fn acr_values_that_cannot_be_sent_are_refused_when_the_layer_is_built() {
        let route = RequireScope::authenticated(&validator());
        assert_eq!(
            route.clone().require_acr([MFA, "two words"]).map(|_| ()),
            Err(crate::ConfigError::InvalidAcrValue("two words".to_owned()))
        );
        assert_eq!(
            route.require_acr(Vec::<String>::new()).map(|_| ()),
            Err(crate::ConfigError::InvalidAcrValue(String::new()))
        );
    }
}
