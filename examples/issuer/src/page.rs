//! The login-and-consent page of `GET /oauth/authorize`, and its error page: plain HTML from
//! `format!`, every reflected value escaped, headers that forbid framing, scripts and caching.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, PRAGMA, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AUTHORIZE_PATH;

/// Escapes `& < > " '` for HTML text and double-quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the consent page shows and carries.
pub struct Consent<'a> {
    pub client_name: &'a str,
    pub scope: &'a [String],
    pub resources: &'a [String],
    /// The authorization request, repeated as hidden fields (names and values as received).
    pub hidden: &'a [(&'static str, String)],
    /// The origin the form's answer redirects to (allowed by `form-action`).
    pub redirect_origin: &'a str,
    /// A failed login's message.
    pub error: Option<&'a str>,
    pub username: &'a str,
}

/// The login-and-consent form; it posts back to the same path.
pub fn consent_page(status: StatusCode, page: &Consent<'_>) -> Response {
    let hidden: String = page
        .hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                html_escape(value)
            )
        })
        .collect();
    let list = |items: &[String]| -> String {
        items
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", html_escape(s)))
            .collect()
    };
    let error = page.error.map_or_else(String::new, |e| {
        format!(
            "<p id=\"error\" role=\"alert\"><strong>{}</strong></p>\n",
            html_escape(e)
        )
    });
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sign in</title></head><body>\n\
         <h1>Sign in to authorize <em id=\"client\">{client}</em></h1>\n{error}\
         <p>It asks for the scopes</p><ul id=\"scopes\">{scopes}</ul>\n\
         <p>for the resources</p><ul id=\"resources\">{resources}</ul>\n\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">\n{hidden}\
         <label>Username <input id=\"username\" name=\"username\" autocomplete=\"username\" \
         value=\"{username}\" required></label>\n\
         <label>Password <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required></label>\n\
         <button id=\"approve\" type=\"submit\" name=\"approve\" value=\"yes\">Allow</button>\n\
         <button id=\"deny\" type=\"submit\" name=\"approve\" value=\"no\" formnovalidate>Deny</button>\n\
         </form></body></html>\n",
        client = html_escape(page.client_name),
        scopes = list(page.scope),
        resources = list(page.resources),
        username = html_escape(page.username),
    );
    let csp = format!(
        "default-src 'none'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        page.redirect_origin
    );
    html(status, body, &csp)
}

/// An error about the client or the redirect URI: shown, never redirected (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>\
         </head><body><h1>Authorization request refused</h1>\
         <p id=\"error\">{}</p></body></html>\n",
        html_escape(message)
    );
    html(
        status,
        body,
        "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    )
}

fn html(status: StatusCode, body: String, csp: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The origin is a parsed URL's ASCII serialisation; a failure falls back to 'self' only.
    let csp = HeaderValue::from_str(csp).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'")
    });
    headers.insert(CONTENT_SECURITY_POLICY, csp);
    response
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            html_escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(html_escape("plain é"), "plain é");
    }
}
