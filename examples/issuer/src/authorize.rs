//! `GET /oauth/authorize` shows the login-and-consent page; `POST /oauth/authorize` (the
//! page's form) checks the user's password and redirects back to the client with a code
//! (RFC 6749 §4.1, OAuth 2.1 §4.1, RFC 9207 `iss`).
//!
//! Errors about the client or the redirect URI are shown on a page, never redirected (an
//! attacker must not make this server redirect anywhere). Every other error goes back to the
//! registered redirect URI as `error`, `state` and `iss`. The redirect URI must be a
//! registered one exactly, except that a registered `http://127.0.0.1` or `http://[::1]` one
//! allows any port (RFC 8252 §7.3).
//!
//! `dpop_jkt` (RFC 9449 §10) binds the code to a DPoP key: redeeming it needs a proof of it.
//!
//! Authentication strength (RFC 9470, OpenID Connect `acr_values` and `max_age`): a sign-in
//! with the password is `urn:bearer-guard:acr:pwd`; asking for `urn:bearer-guard:acr:mfa`
//! (the first value of `acr_values` this server knows wins, in the client's order of
//! preference) adds a second step, the user's one-time code, kept between the two steps as
//! a short-lived single-use ticket in the store. The code's tokens carry the `acr` achieved
//! and the `auth_time` of the sign-in. There is no session to reuse: every authorization
//! request signs the user in again, so any `max_age` (`0` included) is met.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::clients::Client;
use super::dpop::is_thumbprint;
use super::error::OAuthError;
use super::form::{Params, Secret};
use super::grants::CodeRecord;
use super::limits::Refused;
use super::page::{Consent, SecondFactor, consent_page, error_page, second_factor_page};
use super::scope::{grant_audience, grant_scope, redirect_uri_matches};
use super::server::{Issuer, random_token, store_failed, unix_millis, unix_now};
use super::store::digest;
use super::tokens::{Authentication, Grant};
use super::users::{MAX_USERNAME, User};

/// Longest accepted `state`, in bytes.
const MAX_STATE: usize = 1024;

/// The `acr` of a sign-in with the password alone.
pub const ACR_PASSWORD: &str = "urn:bearer-guard:acr:pwd";
/// The `acr` of a sign-in with the password, then the user's one-time code.
pub const ACR_MFA: &str = "urn:bearer-guard:acr:mfa";
/// The `acr` values this server achieves (metadata `acr_values_supported`), weakest first.
pub const ACR_VALUES_SUPPORTED: [&str; 2] = [ACR_PASSWORD, ACR_MFA];

/// How long the second step of a sign-in waits for the code.
const SECOND_FACTOR_WINDOW: Duration = Duration::from_secs(300);

/// A sign-in between its two steps: the password was right, the code is to come. Stored
/// under the hash of the ticket the second step's form carries; bound to the authorization
/// request it belongs to.
#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    username: String,
    client_id: String,
    code_challenge: String,
}

/// Why an authorization request is refused.
enum Refusal {
    /// Shown on a page, never redirected: the client or the redirect URI is wrong.
    Page(StatusCode, &'static str),
    /// Sent back to the client's redirect URI: `error` and `error_description`.
    Redirect(Box<Checked>, &'static str, String),
}

/// An authorization request whose client and redirect URI are known good.
#[derive(Clone)]
struct Checked {
    client: Arc<Client>,
    redirect_uri: String,
    state: Option<String>,
    scope: Vec<String>,
    aud: Vec<String>,
    code_challenge: String,
    /// The DPoP key (thumbprint) the code is bound to.
    dpop_jkt: Option<String>,
    /// `acr_values` asks for `urn:bearer-guard:acr:mfa`: the password, then a code.
    second_factor: bool,
    /// The request's parameters, for the form's hidden fields.
    hidden: Vec<(&'static str, String)>,
}

impl Issuer {
    /// The page, or an error.
    pub(super) async fn authorize_page(&self, query: &str) -> Response {
        let params = match Params::from_form(query.as_bytes()) {
            Ok(params) => params,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.description),
        };
        match self.check_authorization(&params).await {
            Ok(request) => self.page(&request, StatusCode::OK, None, ""),
            Err(response) => response,
        }
    }

    /// The form: log in, then a code for the client, or the page again.
    pub(super) async fn authorize_submit(
        &self,
        peer: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let mut params = match Params::from_form_request(headers, body) {
            Ok(params) => params,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.description),
        };
        let request = match self.check_authorization(&params).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        if params.one("approve").ok().flatten() != Some("yes") {
            tracing::info!(client_id = %request.client.id, "the user denied the authorization request");
            return self.redirect_error(&request, "access_denied", "the user denied the request");
        }
        // The second step of a sign-in: its ticket and the code.
        if let Ok(Some(ticket)) = params.take_secret("login") {
            let code = params.take_secret("otp").ok().flatten();
            return self.second_step(peer, &request, &ticket, code).await;
        }
        let username = params
            .one("username")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_owned();
        let password = params.take_secret("password").ok().flatten();
        let (Some(password), false) = (password, username.is_empty()) else {
            let message = "Enter your username and password.";
            return self.page(&request, StatusCode::BAD_REQUEST, Some(message), &username);
        };

        let user = self.0.users.get(&username);
        let hash = user.map_or_else(|| self.0.user_dummy.clone(), |u| u.password_hash.clone());
        let name_key = if username.len() <= MAX_USERNAME {
            format!("user:{username}")
        } else {
            "user:(too long)".to_owned()
        };
        let verified = self.0.gate.verify(peer, &name_key, hash, password).await;
        let user = match (verified, user) {
            (Ok(true), Some(user)) => user,
            (Ok(_), _) => {
                tracing::warn!(
                    target: "issuer::security",
                    event = "login_failure",
                    client_id = %request.client.id,
                    username = user.map(|u| u.username.as_str()),
                    reason = if user.is_some() { "wrong_password" } else { "unknown_user" },
                    peer,
                    "login failed"
                );
                let message = "Wrong username or password.";
                return self.page(&request, StatusCode::OK, Some(message), &username);
            }
            (Err(refused @ Refused::TooManyAttempts { .. }), _) => {
                let refusal = self.refused(refused, "authorization", peer);
                let message = "Too many attempts: try again later.";
                let mut page = self.page(
                    &request,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(message),
                    &username,
                );
                page.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(refusal.retry_after.unwrap_or(1)),
                );
                return page;
            }
            (Err(Refused::Busy), _) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy: try again.",
                );
            }
        };
        if request.second_factor {
            return self.first_step_passed(&request, user).await;
        }
        self.signed_in(&request, username, ACR_PASSWORD).await
    }

    /// The password was right and the request asks for a second factor: a ticket for the
    /// second step, and its page. A user without a second factor cannot sign in that way:
    /// `unmet_authentication_requirements` (OpenID Connect).
    async fn first_step_passed(&self, request: &Checked, user: &User) -> Response {
        if user.second_factor_hash.is_none() {
            tracing::info!(client_id = %request.client.id, username = %user.username, "a second factor was asked for a user without one");
            return self.redirect_error(
                request,
                "unmet_authentication_requirements",
                "the user has no second factor",
            );
        }
        let pending = PendingSignIn {
            username: user.username.clone(),
            client_id: request.client.id.clone(),
            code_challenge: request.code_challenge.clone(),
        };
        let stored = async {
            let ticket = random_token(32)?;
            let json = serde_json::to_string(&pending).map_err(|_| OAuthError::server_error())?;
            let key = self.key("sign-in", &digest(&ticket));
            self.0
                .store
                .put(&key, &json, SECOND_FACTOR_WINDOW)
                .await
                .map_err(|e| store_failed(&e))?;
            Ok::<_, OAuthError>(ticket)
        };
        match stored.await {
            Ok(ticket) => {
                self.second_factor_page(request, &ticket, &user.username, StatusCode::OK, None)
            }
            Err(e) => self.redirect_error(request, "temporarily_unavailable", &e.description),
        }
    }

    /// The second step: the ticket of a first step that passed, and the user's code.
    async fn second_step(
        &self,
        peer: &str,
        request: &Checked,
        ticket: &Secret,
        code: Option<Secret>,
    ) -> Response {
        let key = self.key("sign-in", &digest(&ticket.0));
        let pending = match self.0.store.get(&key).await {
            Ok(json) => json.and_then(|j| serde_json::from_str::<PendingSignIn>(&j).ok()),
            Err(e) => {
                store_failed(&e);
                return error_page(StatusCode::SERVICE_UNAVAILABLE, "Try again later.");
            }
        };
        // Expired, used, or the ticket of another request: sign in again.
        let pending = pending.filter(|p| {
            p.client_id == request.client.id && p.code_challenge == request.code_challenge
        });
        let user = pending.as_ref().and_then(|p| self.0.users.get(&p.username));
        let (Some(pending), Some(hash)) =
            (&pending, user.and_then(|u| u.second_factor_hash.clone()))
        else {
            let message = "Your sign-in has expired: sign in again.";
            return self.page(request, StatusCode::BAD_REQUEST, Some(message), "");
        };
        let username = pending.username.as_str();
        let Some(code) = code else {
            let message = "Enter the code from your authenticator.";
            return self.second_factor_page(
                request,
                &ticket.0,
                username,
                StatusCode::BAD_REQUEST,
                Some(message),
            );
        };
        let name_key = format!("second-factor:{username}");
        match self.0.gate.verify(peer, &name_key, hash, code).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    target: "issuer::security",
                    event = "second_factor_failure",
                    client_id = %request.client.id,
                    username,
                    peer,
                    "second factor refused"
                );
                let message = "That code is not right. Check your authenticator and try again.";
                return self.second_factor_page(
                    request,
                    &ticket.0,
                    username,
                    StatusCode::OK,
                    Some(message),
                );
            }
            Err(refused @ Refused::TooManyAttempts { .. }) => {
                let refusal = self.refused(refused, "authorization", peer);
                let message = "Too many attempts: try again later.";
                let mut page = self.second_factor_page(
                    request,
                    &ticket.0,
                    username,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(message),
                );
                page.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(refusal.retry_after.unwrap_or(1)),
                );
                return page;
            }
            Err(Refused::Busy) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy: try again.",
                );
            }
        }
        // A ticket signs in once, also when two replicas get its code at the same time (its
        // entry is left to expire: the mark decides).
        let used = self.key("sign-in-used", &digest(&ticket.0));
        match self.0.store.put_new(&used, "1", SECOND_FACTOR_WINDOW).await {
            Ok(true) => {}
            Ok(false) => {
                let message = "Your sign-in has expired: sign in again.";
                return self.page(request, StatusCode::BAD_REQUEST, Some(message), "");
            }
            Err(e) => {
                store_failed(&e);
                return error_page(StatusCode::SERVICE_UNAVAILABLE, "Try again later.");
            }
        }
        self.signed_in(request, pending.username.clone(), ACR_MFA)
            .await
    }

    /// The user signed in (`acr`, now): a code for the client.
    async fn signed_in(&self, request: &Checked, username: String, acr: &str) -> Response {
        let record = CodeRecord {
            grant: Grant {
                client_id: request.client.id.clone(),
                sub: username,
                scope: request.scope.clone(),
                aud: request.aud.clone(),
                lifetime: request.client.lifetime,
                authentication: Some(Authentication {
                    acr: acr.to_owned(),
                    auth_time: unix_now(),
                }),
            },
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            expires_ms: unix_millis().saturating_add(
                u64::try_from(self.0.code_lifetime.as_millis()).unwrap_or(u64::MAX),
            ),
            dpop_jkt: request.dpop_jkt.clone(),
        };
        let code = match self.create_code(&record).await {
            Ok(code) => code,
            Err(e) => {
                return self.redirect_error(request, "temporarily_unavailable", &e.description);
            }
        };
        tracing::info!(
            client_id = %request.client.id,
            sub = %record.grant.sub,
            scope = %record.grant.scope.join(" "),
            acr,
            "authorization code issued"
        );
        self.redirect(request, &[("code", &code)])
    }

    /// Checks the request: `Err` is the answer (a page, or a redirect with an error).
    async fn check_authorization(&self, params: &Params) -> Result<Checked, Response> {
        self.check(params).await.map_err(|refusal| match refusal {
            Refusal::Page(status, message) => error_page(status, message),
            Refusal::Redirect(request, code, description) => {
                self.redirect_error(&request, code, &description)
            }
        })
    }

    async fn check(&self, params: &Params) -> Result<Checked, Refusal> {
        let page = |message| Refusal::Page(StatusCode::BAD_REQUEST, message);
        let (Ok(client_id), Ok(redirect_uri), Ok(state)) = (
            params.one("client_id"),
            params.one("redirect_uri"),
            params.one("state"),
        ) else {
            return Err(page("A parameter is repeated."));
        };
        let client_id = client_id.ok_or_else(|| page("client_id is missing."))?;
        // An https client_id: its metadata document first (client_metadata.rs).
        if let Err((status, message)) = self.client_metadata_check(client_id, redirect_uri).await {
            return Err(Refusal::Page(status, message));
        }
        let client = match self.client(client_id).await {
            Ok(Some(client)) if client.may_use_authorization_code() => client,
            Ok(_) => {
                return Err(page(
                    "Unknown client, or a client that may not use this flow.",
                ));
            }
            Err(_) => {
                return Err(Refusal::Page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later.",
                ));
            }
        };
        let redirect_uri = redirect_uri.ok_or_else(|| page("redirect_uri is missing."))?;
        if !client
            .redirect_uris
            .iter()
            .any(|r| redirect_uri_matches(r, redirect_uri))
        {
            tracing::warn!(target: "issuer::security", event = "redirect_uri_mismatch", client_id = %client.id, "authorization request with an unregistered redirect_uri");
            return Err(page("redirect_uri is not registered for this client."));
        }
        if state.is_some_and(|s| s.len() > MAX_STATE) {
            return Err(page("state is too long."));
        }
        let mut checked = Checked {
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            scope: Vec::new(),
            aud: Vec::new(),
            code_challenge: String::new(),
            dpop_jkt: None,
            second_factor: false,
            hidden: Vec::new(),
            client,
        };

        // From here on, errors go back to the client.
        let fail = |code, description: &str| {
            Err(Refusal::Redirect(
                Box::new(checked.clone()),
                code,
                description.to_owned(),
            ))
        };
        match params.one("response_type") {
            Ok(Some("code")) => {}
            _ => return fail("unsupported_response_type", "response_type must be code"),
        }
        let (Ok(challenge), Ok(method), Ok(scope), Ok(dpop_jkt), Ok(acr_values), Ok(max_age)) = (
            params.one("code_challenge"),
            params.one("code_challenge_method"),
            params.one("scope"),
            params.one("dpop_jkt"),
            params.one("acr_values"),
            params.one("max_age"),
        ) else {
            return fail("invalid_request", "a parameter is repeated");
        };
        // OpenID Connect: a number of seconds. Met whatever its value (see the module docs).
        let seconds = |m: &str| m.bytes().all(|b| b.is_ascii_digit()) && m.parse::<u64>().is_ok();
        if max_age.is_some_and(|m| !seconds(m)) {
            return fail("invalid_request", "max_age must be a number of seconds");
        }
        if dpop_jkt.is_some_and(|jkt| !is_thumbprint(jkt)) {
            return fail(
                "invalid_request",
                "dpop_jkt is not a base64url SHA-256 JWK thumbprint",
            );
        }
        let Some(challenge) = challenge else {
            tracing::warn!(target: "issuer::security", event = "pkce_missing", client_id = %checked.client.id, "authorization request without PKCE");
            return fail("invalid_request", "code_challenge is required (PKCE)");
        };
        if method != Some("S256") {
            tracing::warn!(target: "issuer::security", event = "pkce_method_refused", client_id = %checked.client.id, "authorization request without PKCE S256");
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return fail(
                "invalid_request",
                "code_challenge is not a base64url SHA-256",
            );
        }
        let client = &checked.client;
        let resources = params.all("resource");
        let scope = match grant_scope(&client.scopes, &client.default_scope, scope) {
            Ok(scope) => scope,
            Err(e) => return fail(e.code, &e.description),
        };
        let aud = match grant_audience(&client.resources, &resources) {
            Ok(aud) => aud,
            Err(e) => return fail(e.code, &e.description),
        };

        let mut hidden: Vec<(&'static str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", client.id.clone()),
            ("redirect_uri", checked.redirect_uri.clone()),
            ("code_challenge", challenge.to_owned()),
            ("code_challenge_method", "S256".into()),
        ];
        hidden.extend(
            params
                .one("scope")
                .ok()
                .flatten()
                .map(|s| ("scope", s.to_owned())),
        );
        hidden.extend(checked.state.clone().map(|s| ("state", s)));
        hidden.extend(dpop_jkt.map(|jkt| ("dpop_jkt", jkt.to_owned())));
        hidden.extend(acr_values.map(|v| ("acr_values", v.to_owned())));
        hidden.extend(max_age.map(|m| ("max_age", m.to_owned())));
        hidden.extend(resources.into_iter().map(|r| ("resource", r)));
        checked.second_factor = acr(acr_values) == ACR_MFA;
        checked.scope = scope;
        checked.aud = aud;
        checked.code_challenge = challenge.to_owned();
        checked.dpop_jkt = dpop_jkt.map(str::to_owned);
        checked.hidden = hidden;
        Ok(checked)
    }

    fn page(
        &self,
        request: &Checked,
        status: StatusCode,
        error: Option<&str>,
        username: &str,
    ) -> Response {
        let origin = redirect_origin(&request.redirect_uri);
        consent_page(
            status,
            &Consent {
                issuer: &self.0.issuer,
                client_name: request.client.display_name(),
                scope: &request.scope,
                resources: &request.aud,
                hidden: &request.hidden,
                redirect_origin: &origin,
                error,
                username,
                second_factor: request.second_factor,
            },
        )
    }

    /// The second step's page: the code of `username`, with the ticket of the first step.
    fn second_factor_page(
        &self,
        request: &Checked,
        ticket: &str,
        username: &str,
        status: StatusCode,
        error: Option<&str>,
    ) -> Response {
        let origin = redirect_origin(&request.redirect_uri);
        second_factor_page(
            status,
            &SecondFactor {
                issuer: &self.0.issuer,
                client_name: request.client.display_name(),
                username,
                hidden: &request.hidden,
                ticket,
                redirect_origin: &origin,
                error,
            },
        )
    }

    fn redirect_error(&self, request: &Checked, error: &str, description: &str) -> Response {
        self.redirect(
            request,
            &[("error", error), ("error_description", description)],
        )
    }

    /// 302 to the registered redirect URI with `pairs`, `state` and `iss` added to its query.
    fn redirect(&self, request: &Checked, pairs: &[(&str, &str)]) -> Response {
        let Ok(mut url) = url::Url::parse(&request.redirect_uri) else {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Bad redirect URI.");
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.0.issuer);
        }
        let Ok(location) = HeaderValue::from_str(url.as_str()) else {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Bad redirect URI.");
        };
        (
            StatusCode::FOUND,
            [
                (LOCATION, location),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response()
    }
}

/// The origin the form's answer redirects to (the page's `form-action` allows it).
fn redirect_origin(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The `acr` a sign-in for `acr_values` achieves: the first value this server knows, in the
/// client's order of preference (OpenID Connect Core §3.1.2.1); the password alone when it
/// knows none, or none is asked.
fn acr(acr_values: Option<&str>) -> &'static str {
    acr_values
        .into_iter()
        .flat_map(|v| v.split(' '))
        .find_map(|v| ACR_VALUES_SUPPORTED.into_iter().find(|known| *known == v))
        .unwrap_or(ACR_PASSWORD)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_first_known_acr_value_wins() {
        assert_eq!(acr(None), ACR_PASSWORD);
        assert_eq!(acr(Some(ACR_MFA)), ACR_MFA);
        assert_eq!(
            acr(Some(&format!("urn:other {ACR_MFA} {ACR_PASSWORD}"))),
            ACR_MFA
        );
        assert_eq!(
            acr(Some(&format!("{ACR_PASSWORD} {ACR_MFA}"))),
            ACR_PASSWORD
        );
        assert_eq!(acr(Some("urn:other")), ACR_PASSWORD);
    }
}
