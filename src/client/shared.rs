//! The state every clone of a layer and of its services shares (the configuration, the token
//! cache, the DPoP key and nonces), and the two decisions of a request: whether it gets a
//! token, and which token, or which place in the queue for one. Token requests run here, in
//! their own tasks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use tokio::time::Instant;

use super::cache::{Lookup, Refresh, Slot, Token, Tokens, Wait};
use super::credentials::{ClientCredentials, TokenTarget};
use super::dpop::{DPOP, DpopState};
use super::endpoint::{self, Exchange, Issued, TokenExchange, TokenKey};
use super::error::{TokenError, TokenErrorKind};
use super::origin::{Origin, Origins};
use super::subject::SubjectToken;
use crate::dpop::DpopKey;
use crate::fetch::HttpService;

/// The layer's settings (see its builder).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) refresh_ahead: Duration,
    pub(crate) token_timeout: Duration,
    pub(crate) max_cached_tokens: usize,
    pub(crate) min_token_lifetime: Duration,
}

/// The configuration and the token cache, behind one `Arc`.
pub(crate) struct Shared {
    pub(crate) credentials: ClientCredentials,
    pub(crate) settings: Settings,
    /// Where tokens may go.
    origins: Origins,
    pub(crate) tokens: Tokens,
    /// The DPoP key, when tokens are to be DPoP-bound.
    pub(crate) dpop: Option<DpopState>,
    /// Tokens are obtained by token exchange (RFC 8693) of each request's subject token,
    /// not by the client-credentials grant: the `audience` asked for, if any.
    pub(crate) exchange: Option<ExchangeSettings>,
}

/// What a token-exchange layer asks for beside the credentials' scope and resource.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExchangeSettings {
    pub(crate) audience: Option<String>,
}

/// Whether a request gets a token.
pub(crate) enum Decision {
    /// Its origin is not one the layer sends tokens to: it goes on as it is.
    Untouched,
    /// It gets the token of this key.
    Token(TokenKey),
    /// It must not be sent: its target names a resource on another origin.
    Refuse(TokenError),
}

/// A request's token now, or its place in the queue for one.
pub(crate) enum Ticket {
    Ready(Arc<Token>),
    Wait(Wait),
}

impl Ticket {
    pub(crate) async fn token(self) -> Result<Arc<Token>, TokenError> {
        match self {
            Ticket::Ready(token) => Ok(token),
            Ticket::Wait(wait) => wait.wait().await,
        }
    }
}

impl Shared {
    pub(crate) fn new(
        credentials: ClientCredentials,
        settings: Settings,
        origins: Origins,
        dpop: Option<DpopKey>,
    ) -> Self {
        if origins.is_empty() {
            tracing::warn!(
                target: "bearer_guard::client",
                reason = "no_origin",
                client_id = %credentials.client_id,
                "this layer sends no token: its resource is not an https URL (or loopback http) \
                 and no origin was allowed"
            );
        }
        Shared {
            tokens: Tokens::new(settings.max_cached_tokens),
            credentials,
            settings,
            origins,
            dpop: dpop.map(DpopState::new),
            exchange: None,
        }
    }

    /// A token-exchange layer's state: no DPoP, tokens from the exchange of each request's
    /// subject token.
    pub(crate) fn exchanging(
        credentials: ClientCredentials,
        settings: Settings,
        origins: Origins,
        exchange: ExchangeSettings,
    ) -> Self {
        Shared {
            exchange: Some(exchange),
            ..Shared::new(credentials, settings, origins, None)
        }
    }

    /// Whether requests to `uri` get tokens: its origin is an allowed one.
    pub(crate) fn serves(&self, uri: &Uri) -> bool {
        Origin::of(uri).is_some_and(|origin| self.origins.contains(&origin))
    }

    /// The cache key of the token exchanged from `subject`: the credentials' scope and
    /// resource, and the subject token's digest.
    pub(crate) fn exchange_key(&self, subject: &SubjectToken) -> TokenKey {
        TokenKey {
            scope: self.credentials.scope.clone(),
            resource: self.credentials.resource.clone(),
            subject: Some(subject.digest()),
        }
    }

    /// Sets `token` as the request's `Authorization` and, for a DPoP-bound token, a fresh
    /// proof for this request (with `ath`) as its `DPoP` header.
    ///
    /// # Errors
    /// [`TokenErrorKind::Proof`] when the proof cannot be made: the request must not go.
    pub(crate) fn authorize<B>(
        &self,
        token: &Token,
        req: &mut Request<B>,
    ) -> Result<(), TokenError> {
        if token.is_dpop() {
            let Some(dpop) = &self.dpop else {
                // Only a layer with a key accepts DPoP tokens.
                return Err(TokenError::new(TokenErrorKind::Proof)
                    .with_detail("a DPoP token without a DPoP key"));
            };
            let proof = dpop.proof(req.method(), req.uri(), Some(token.access_token()))?;
            req.headers_mut().insert(DPOP, proof);
        }
        token.authorize(req);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn origins(&self) -> &Origins {
        &self.origins
    }

    /// Whether (and which) token goes with a request to `uri`: one only to an allowed origin
    /// (the resource's, or one allowed explicitly), and a [`TokenTarget`]'s resource only to
    /// its own origin when it is an `http(s)` URL.
    pub(crate) fn decide(&self, uri: &Uri, target: Option<TokenTarget>) -> Decision {
        let origin = match Origin::of(uri) {
            Some(origin) if self.origins.contains(&origin) => origin,
            other => {
                tracing::debug!(
                    target: "bearer_guard::client",
                    reason = "origin_not_allowed",
                    origin = %other.map_or_else(|| "none".to_owned(), |o| o.to_string()),
                    "request sent without a token: its origin is not one this layer sends \
                     tokens to"
                );
                return Decision::Untouched;
            }
        };
        let target = target.unwrap_or_default();
        if let Some(resource) = target.resource.as_deref()
            && let Some(theirs) = Origin::of_str(resource)
            && theirs != origin
        {
            let detail = format!(
                "a TokenTarget asks for a token for a resource on {theirs} in a request to \
                 {origin}; such a token is only sent to its resource's origin, so the request \
                 was not sent"
            );
            return Decision::Refuse(
                TokenError::new(TokenErrorKind::ResourceMismatch).with_detail(detail),
            );
        }
        Decision::Token(TokenKey {
            scope: target.scope.or_else(|| self.credentials.scope.clone()),
            resource: target
                .resource
                .or_else(|| self.credentials.resource.clone()),
            subject: None,
        })
    }

    /// The token of `slot`, or the place in the queue for it. When a token request is due,
    /// it starts here, in the background, through a clone of `inner`: the one place where
    /// "use the token, or wait for the refresh" is decided.
    pub(crate) fn ticket<S, B>(self: &Arc<Self>, slot: &Arc<Slot>, inner: &S) -> Ticket
    where
        S: HttpService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let (ticket, refresh) = match slot.lookup(Instant::now()) {
            Lookup::Ready(token, refresh) => (Ticket::Ready(token), refresh),
            Lookup::Wait(wait, refresh) => (Ticket::Wait(wait), refresh),
        };
        if let Some(refresh) = refresh {
            self.spawn_refresh(inner.clone(), refresh);
        }
        ticket
    }

    /// Runs the token request of `refresh` in its own task, so that no caller's
    /// cancellation stops it.
    fn spawn_refresh<S, B>(self: &Arc<Self>, inner: S, refresh: Refresh)
    where
        S: HttpService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let err = TokenError::new(TokenErrorKind::Unavailable)
                .with_detail("no Tokio runtime to run the token request on");
            return self.finish(refresh, Err(err));
        };
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            let token_exchange = match (&shared.exchange, refresh.subject()) {
                (Some(settings), Some(subject)) => Some(TokenExchange {
                    subject,
                    audience: settings.audience.as_deref(),
                }),
                _ => None,
            };
            let exchange = Exchange {
                timeout: shared.settings.token_timeout,
                floor: shared.settings.min_token_lifetime,
                dpop: shared.dpop.as_ref(),
                token_exchange,
            };
            let (credentials, key) = (&shared.credentials, refresh.key());
            let issued = endpoint::fetch_token(inner, credentials, key, &exchange).await;
            shared.finish(refresh, issued);
        });
    }

    fn finish(&self, refresh: Refresh, issued: Result<Issued, TokenError>) {
        let key = refresh.key();
        let scope = key.scope.as_deref().unwrap_or("");
        let resource = key.resource.as_deref().unwrap_or("");
        let client_id = &self.credentials.client_id;
        let grant = if self.exchange.is_some() {
            "token_exchange"
        } else {
            "client_credentials"
        };
        match &issued {
            Ok(token) => {
                if let Some(expires_in) = token.raised_from {
                    tracing::warn!(
                        target: "bearer_guard::client",
                        reason = "short_lifetime",
                        client_id = %client_id,
                        scope,
                        resource,
                        expires_in,
                        used_for = token.expires_in.as_secs(),
                        "the token endpoint's expires_in is below the floor; the token is kept \
                         that long (or until the upstream refuses it) instead"
                    );
                }
                if self.dpop.is_some() && !token.dpop {
                    tracing::warn!(
                        target: "bearer_guard::client",
                        reason = "bearer_despite_dpop",
                        client_id = %client_id,
                        scope,
                        resource,
                        "the token endpoint answered a request with a DPoP proof with a Bearer \
                         token; it is sent as Bearer (RFC 9449 §5: the endpoint does not bind \
                         tokens)"
                    );
                }
                tracing::debug!(
                    target: "bearer_guard::client",
                    client_id = %client_id,
                    scope,
                    resource,
                    grant,
                    token_type = if token.dpop { "DPoP" } else { "Bearer" },
                    expires_in = token.expires_in.as_secs(),
                    "access token obtained"
                );
            }
            Err(err) => tracing::warn!(
                target: "bearer_guard::client",
                client_id = %client_id,
                scope,
                resource,
                grant,
                reason = err.kind().as_str(),
                status = err.status().map(|s| s.as_u16()),
                oauth_error = err.oauth_error(),
                error = %err,
                "token request failed"
            ),
        }
        refresh.complete(issued, self.settings.refresh_ahead, Instant::now());
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.exchange.is_some() {
            "ExchangeTokenLayer"
        } else {
            "AddAccessTokenLayer"
        };
        f.debug_struct(name)
            .field("credentials", &self.credentials)
            .field("refresh_ahead", &self.settings.refresh_ahead)
            .field("token_timeout", &self.settings.token_timeout)
            .field("max_cached_tokens", &self.settings.max_cached_tokens)
            .field("min_token_lifetime", &self.settings.min_token_lifetime)
            .field("origins", &self.origins)
            .field("dpop", &self.dpop.as_ref().map(DpopState::key))
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}
