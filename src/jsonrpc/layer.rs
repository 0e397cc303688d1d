//! [`OperationScopes`] and its builder.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::decide::Shared;
use super::rules::Rules;
use super::service::OperationScopesService;
use crate::error::ConfigError;
use crate::metadata::ProtectedResource;
use crate::response::{Challenges, StandardRejection};
use crate::scope::RequiredScopes;

/// The largest body read by default, in bytes: 4 MiB, rmcp's own default.
const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A [`Layer`] that reads a JSON-RPC request body (up to a bound), and lets the request
/// through only when the verified token grants the scopes of every operation in it: per
/// method, and for MCP's `tools/call` per tool. See the [module docs](super).
///
/// Place it inside [`RequireScope`](crate::RequireScope), which leaves the
/// [`VerifiedToken`](crate::VerifiedToken) it reads. Cloning the layer or its service is one reference-count
/// increment.
pub struct OperationScopes<R = StandardRejection> {
    shared: Arc<Shared<R>>,
}

impl OperationScopes {
    /// Starts a layer with no rule, the standard answers and a 4 MiB body limit.
    pub fn builder() -> OperationScopesBuilder {
        OperationScopesBuilder {
            rules: Rules::default(),
            error: None,
            max_body: DEFAULT_MAX_BODY,
            realm: None,
            resource_metadata: None,
            resource: None,
            rejection: StandardRejection,
        }
    }
}

/// Configures an [`OperationScopes`]; from [`OperationScopes::builder`].
#[must_use]
pub struct OperationScopesBuilder<R = StandardRejection> {
    rules: Rules,
    /// The first rule refused, reported by `build`.
    error: Option<ConfigError>,
    max_body: usize,
    realm: Option<String>,
    resource_metadata: Option<String>,
    resource: Option<ProtectedResource>,
    rejection: R,
}

impl<R> OperationScopesBuilder<R> {
    /// Requires every one of `scopes` for calls (and notifications) of the JSON-RPC method
    /// `method`, beyond the route's own scopes. Setting a method twice keeps the last list.
    /// A mistake in the list (an empty list, a scope that is not an RFC 6749 `scope-token`,
    /// `offline_access`) is reported by [`build`](Self::build).
    pub fn method<I, S>(mut self, method: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(scopes) = self.scopes(scopes) {
            self.rules.methods.insert(method.into().into(), scopes);
        }
        self
    }

    /// Requires every one of `scopes` for MCP `tools/call` calls of the tool `name` (the
    /// call's `params.name`), beyond the route's and the `tools/call` method's own. Setting
    /// a tool twice keeps the last list; mistakes are reported as [`method`](Self::method)'s.
    pub fn tool<I, S>(mut self, name: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(scopes) = self.scopes(scopes) {
            self.rules.tools.insert(name.into().into(), scopes);
        }
        self
    }

    fn scopes<I, S>(&mut self, scopes: I) -> Option<RequiredScopes>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match RequiredScopes::all(scopes) {
            Ok(scopes) => Some(scopes),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// The largest body read, in bytes: a request whose `Content-Length` says more is
    /// answered `413 Payload Too Large` before any byte is read, and one whose body grows
    /// past it (chunked) as soon as it does. Default: 4 MiB, rmcp's own limit; set it to the
    /// limit of the server behind the layer.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// A `realm` for the challenges (as [`Guard::realm`](crate::Guard::realm)).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The RFC 9728 metadata URL sent as `resource_metadata` in the challenges (as
    /// [`Guard::resource_metadata`](crate::Guard::resource_metadata)).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Points the challenges at `resource`'s RFC 9728 metadata (`resource_metadata`), and
    /// adds the scopes of every rule to its `scopes_supported` when the layer is built (as
    /// [`Guard::protected_resource`](crate::Guard::protected_resource) does for routes).
    pub fn protected_resource(mut self, resource: &ProtectedResource) -> Self {
        self.resource_metadata = Some(resource.metadata_url().to_owned());
        self.resource = Some(resource.clone());
        self
    }

    /// Answers refusals with `rejection` instead of the standard answers: give it the
    /// [`Rejection`](crate::response::Rejection) the [`Guard`](crate::Guard) has, so that every refusal of the API is
    /// answered one way. It gets a [`Refusal`](crate::response::Refusal) of kind
    /// [`InsufficientScope`](crate::ErrorKind::InsufficientScope) (or
    /// [`MissingToken`](crate::ErrorKind::MissingToken), without a verified token).
    pub fn rejection<R2>(self, rejection: R2) -> OperationScopesBuilder<R2> {
        OperationScopesBuilder {
            rules: self.rules,
            error: self.error,
            max_body: self.max_body,
            realm: self.realm,
            resource_metadata: self.resource_metadata,
            resource: self.resource,
            rejection,
        }
    }

    /// Builds the layer, and registers its scopes with the
    /// [`protected_resource`](Self::protected_resource), if any.
    ///
    /// # Errors
    /// The first mistake in a rule's scopes ([`ConfigError::EmptyScopes`],
    /// [`ConfigError::InvalidScope`], [`ConfigError::OfflineAccessRequired`]), or
    /// [`ConfigError::InvalidHeaderValue`] for a realm or metadata URL that cannot be sent in
    /// a challenge.
    pub fn build(self) -> Result<OperationScopes<R>, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let challenges = Challenges::new(self.realm.as_deref(), self.resource_metadata.as_deref())?;
        if let Some(resource) = &self.resource {
            resource.register_scopes(self.rules.scopes());
        }
        Ok(OperationScopes {
            shared: Arc::new(Shared {
                rules: self.rules,
                max_body: self.max_body,
                challenges,
                rejection: self.rejection,
            }),
        })
    }
}

impl<R> fmt::Debug for OperationScopesBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationScopesBuilder")
            .field("methods", &self.rules.methods)
            .field("tools", &self.rules.tools)
            .field("max_body", &self.max_body)
            .field("realm", &self.realm)
            .field("resource_metadata", &self.resource_metadata)
            .finish_non_exhaustive()
    }
}

impl<R> Clone for OperationScopes<R> {
    fn clone(&self) -> Self {
        OperationScopes {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R> fmt::Debug for OperationScopes<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<S, R> Layer<S> for OperationScopes<R> {
    type Service = OperationScopesService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        OperationScopesService::new(inner, Arc::clone(&self.shared))
    }
}
