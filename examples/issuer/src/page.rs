//! The pages a person sees at `/oauth/authorize`: the sign-in-and-consent page, its second
//! step (the one-time code, when a client asks for `urn:bearer-guard:acr:mfa`), and the error
//! page. Plain HTML from `format!`, every reflected value escaped. One stylesheet, inline,
//! allowed by its SHA-256 in the `Content-Security-Policy` (no `'unsafe-inline'`, no
//! external asset, no script); headers that forbid framing, sniffing, referrers and caching.
//! Labelled fields stacked in one column, the client's name, what each scope and resource
//! means, a visible message after a wrong password or code; one column at phone width too.

use std::sync::LazyLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, PRAGMA, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

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

/// What the sign-in-and-consent page shows and carries.
pub struct Consent<'a> {
    /// This server (`iss`): its host is shown, for the user to see where they sign in.
    pub issuer: &'a str,
    pub client_name: &'a str,
    pub scope: &'a [String],
    pub resources: &'a [String],
    /// The authorization request, repeated as hidden fields (names and values as received).
    pub hidden: &'a [(&'static str, String)],
    /// The origin the form's answer redirects to (allowed by `form-action`).
    pub redirect_origin: &'a str,
    /// A failed sign-in's message.
    pub error: Option<&'a str>,
    pub username: &'a str,
    /// A one-time code will be asked after the password.
    pub second_factor: bool,
}

/// What the second step of a sign-in shows and carries.
pub struct SecondFactor<'a> {
    pub issuer: &'a str,
    pub client_name: &'a str,
    /// Whose code: the user of the first step.
    pub username: &'a str,
    /// The authorization request, as on the first page.
    pub hidden: &'a [(&'static str, String)],
    /// The first step's ticket.
    pub ticket: &'a str,
    pub redirect_origin: &'a str,
    /// A wrong code's message.
    pub error: Option<&'a str>,
}

/// The sign-in-and-consent form; it posts back to the same path.
pub fn consent_page(status: StatusCode, page: &Consent<'_>) -> Response {
    let client = html_escape(page.client_name);
    let scopes: String = if page.scope.is_empty() {
        "<li class=\"scope\"><code>(none)</code><span>Only that you signed in: no access \
         to your data</span></li>"
            .to_owned()
    } else {
        page.scope
            .iter()
            .map(|s| {
                format!(
                    "<li class=\"scope\"><code>{}</code><span>{}</span></li>",
                    html_escape(s),
                    html_escape(&scope_meaning(s))
                )
            })
            .collect()
    };
    let resources: String = page
        .resources
        .iter()
        .map(|r| {
            format!(
                "<li class=\"resource\"><span class=\"name\">{}</span><code>{}</code></li>",
                html_escape(&resource_name(r)),
                html_escape(r)
            )
        })
        .collect();
    let invalid = invalid_attributes(page.error);
    let second_factor = if page.second_factor {
        "<p class=\"note\" id=\"second-factor-note\">This app asks for a stronger sign-in: \
         after your password, you will enter a one-time code.</p>\n"
    } else {
        ""
    };
    let main = format!(
        "<h1 id=\"title\">Sign in to continue to <span id=\"client\">{client}</span></h1>\n\
         {return_to}{error}\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">\n{hidden}\
         <div class=\"field\"><label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" value=\"{username}\" required{invalid}></div>\n\
         <div class=\"field\"><label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required{invalid}></div>\n{second_factor}\
         <section class=\"access\" aria-labelledby=\"scopes-title\">\n\
         <h2 id=\"scopes-title\">{client} will be able to</h2>\n\
         <ul id=\"scopes\" class=\"list\">{scopes}</ul>\n\
         <h2 id=\"resources-title\">Only at</h2>\n\
         <ul id=\"resources\" class=\"list\" aria-labelledby=\"resources-title\">{resources}</ul>\n\
         </section>\n\
         <div class=\"actions\">\
         <button id=\"approve\" class=\"primary\" type=\"submit\" name=\"approve\" value=\"yes\">Sign in and allow</button>\
         <button id=\"deny\" class=\"secondary\" type=\"submit\" name=\"approve\" value=\"no\" formnovalidate>Deny</button>\
         </div>\n</form>\n",
        return_to = return_to(page.redirect_origin),
        error = alert(page.error),
        hidden = hidden_fields(page.hidden),
        username = html_escape(page.username),
    );
    let title = format!("Sign in to {client}");
    let body = document(&title, page.issuer, &main);
    html(status, body, &csp(page.redirect_origin))
}

/// The second step: the user's one-time code; it posts back to the same path with the
/// first step's ticket.
pub fn second_factor_page(status: StatusCode, page: &SecondFactor<'_>) -> Response {
    let main = format!(
        "<p class=\"step\">Step 2 of 2</p>\n\
         <h1 id=\"title\">Enter your one-time code</h1>\n\
         <p class=\"lead\"><span id=\"client\">{client}</span> asks for a second factor. \
         Enter the code from your authenticator app for <strong id=\"user\">{username}</strong>.</p>\n\
         {error}<form method=\"post\" action=\"{AUTHORIZE_PATH}\">\n{hidden}\
         <input type=\"hidden\" name=\"login\" value=\"{ticket}\">\n\
         <div class=\"field\"><label for=\"otp\">One-time code</label>\
         <input id=\"otp\" name=\"otp\" class=\"code\" inputmode=\"numeric\" \
         autocomplete=\"one-time-code\" maxlength=\"12\" spellcheck=\"false\" required autofocus \
         aria-describedby=\"otp-hint\"{invalid}>\
         <p class=\"hint\" id=\"otp-hint\">The 6 digits your authenticator shows. In this demo, \
         each user's code is documented in <code>examples/users.toml</code>.</p></div>\n\
         <div class=\"actions\">\
         <button id=\"verify\" class=\"primary\" type=\"submit\" name=\"approve\" value=\"yes\">Verify</button>\
         <button id=\"cancel\" class=\"secondary\" type=\"submit\" name=\"approve\" value=\"no\" formnovalidate>Cancel</button>\
         </div>\n</form>\n",
        client = html_escape(page.client_name),
        username = html_escape(page.username),
        error = alert(page.error),
        hidden = hidden_fields(page.hidden),
        ticket = html_escape(page.ticket),
        invalid = invalid_attributes(page.error),
    );
    let body = document("Enter your one-time code", page.issuer, &main);
    html(status, body, &csp(page.redirect_origin))
}

/// An error about the client or the redirect URI: shown, never redirected (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let main = format!(
        "<h1 id=\"title\">Authorization request refused</h1>\n{}",
        alert(Some(message))
    );
    html(
        status,
        document("Error", "", &main),
        &format!(
            "default-src 'none'; style-src {}; form-action 'none'; frame-ancestors 'none'; \
             base-uri 'none'",
            *STYLE_SOURCE
        ),
    )
}

/// The page around `main`: the stylesheet, the issuer's host, the demo notice.
fn document(title: &str, issuer: &str, main: &str) -> String {
    let brand = url::Url::parse(issuer)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .map(|host| {
            format!(
                "<p class=\"brand\">{SHIELD}<span>Signing in at <strong id=\"issuer\">{}</strong>\
                 </span></p>\n",
                html_escape(&host)
            )
        })
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body>\n\
         <main class=\"card\" aria-labelledby=\"title\">\n{brand}{main}</main>\n\
         <p class=\"foot\">The companion issuer of bearer-guard: a demo. Never enter a real \
         password here.</p>\n</body></html>\n"
    )
}

fn hidden_fields(hidden: &[(&'static str, String)]) -> String {
    hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                html_escape(value)
            )
        })
        .collect()
}

/// Where the answer goes: the user sees it before allowing.
fn return_to(origin: &str) -> String {
    if origin.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"lead\">You will then return to <strong id=\"return-to\">{}</strong>.</p>\n",
        html_escape(origin)
    )
}

/// The visible message of a failed step, announced to screen readers.
fn alert(message: Option<&str>) -> String {
    message.map_or_else(String::new, |message| {
        format!(
            "<div id=\"error\" class=\"alert\" role=\"alert\">{WARNING}<p>{}</p></div>\n",
            html_escape(message)
        )
    })
}

/// The fields of a failed step: marked invalid, described by the message.
fn invalid_attributes(error: Option<&str>) -> &'static str {
    match error {
        Some(_) => " aria-invalid=\"true\" aria-describedby=\"error\"",
        None => "",
    }
}

/// What a scope lets the client do, in words a person reads.
fn scope_meaning(scope: &str) -> String {
    match scope {
        "read" => "Read your data".to_owned(),
        "write" => "Create and change your data".to_owned(),
        "admin" => "Administer the service: full control".to_owned(),
        "offline_access" => "Keep access while you are away (a refresh token)".to_owned(),
        "mcp:tools" => "Use the server's tools for you".to_owned(),
        "mcp:admin" => "Use the server's administrative tools".to_owned(),
        other => match other.rsplit_once(':') {
            Some((what, "read")) => format!("Read your {what}"),
            Some((what, "write")) => format!("Create and change your {what}"),
            _ => format!("The permission \u{201c}{other}\u{201d} of this service"),
        },
    }
}

/// A resource (RFC 8707 URI) as a person knows it: its host, else the URI itself.
fn resource_name(resource: &str) -> String {
    url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(|h| format!("The API at {h}")))
        .unwrap_or_else(|| "An API".to_owned())
}

/// The CSP of a page with the form: its stylesheet by hash, the form to this server and to
/// the client's redirect origin (where the answer redirects).
fn csp(redirect_origin: &str) -> String {
    format!(
        "default-src 'none'; style-src {}; form-action 'self' {redirect_origin}; \
         frame-ancestors 'none'; base-uri 'none'",
        *STYLE_SOURCE
    )
}

/// `'sha256-…'` of [`STYLE`]: the one style the pages may apply.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// A shield, the brand mark (inline SVG: no request, nothing for the CSP to allow).
const SHIELD: &str = "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\" focusable=\"false\">\
<path d=\"M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3Zm-1.2 14.2-3.5-3.5 1.4-1.4 \
2.1 2.1 4.6-4.6 1.4 1.4-6 6Z\"/></svg>";

/// The alert's icon.
const WARNING: &str = "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\" focusable=\"false\">\
<path d=\"M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm1 15h-2v-2h2v2Zm0-4h-2V7h2v6Z\"/></svg>";

/// The stylesheet: system fonts, one card, stacked fields; one full-width column at phone
/// width; dark when the system is.
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f2f4f7;--card:#fff;--text:#18202b;--muted:#556070;\
--line:#d0d6de;--accent:#2453d4;--on-accent:#fff;--focus:#1d4ed8;--chip:#eef2f9;\
--error-bg:#fdeeee;--error-line:#d23b3b;--error-text:#8c1c1c}\
@media (prefers-color-scheme:dark){:root{--bg:#0e131a;--card:#17202b;--text:#e7ecf3;\
--muted:#a1adbd;--line:#2e3a48;--accent:#6b96ff;--on-accent:#0b1020;--focus:#9dbaff;\
--chip:#1f2a37;--error-bg:#3b1819;--error-line:#f07070;--error-text:#ffd0d0}}\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;\
justify-content:center;padding:40px 16px;background:var(--bg);color:var(--text);\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\
.card{width:100%;max-width:448px;background:var(--card);border:1px solid var(--line);\
border-radius:16px;padding:32px;box-shadow:0 1px 2px rgba(16,24,40,.05),0 12px 32px rgba(16,24,40,.08)}\
.brand{display:flex;align-items:center;gap:8px;margin:0 0 24px;color:var(--muted);font-size:14px}\
.brand svg{width:24px;height:24px;fill:var(--accent);flex:none}\
.brand strong{color:var(--text);font-weight:600}\
h1{font-size:24px;line-height:1.25;margin:0 0 8px;font-weight:650;overflow-wrap:anywhere}\
h2{font-size:14px;font-weight:600;color:var(--muted);margin:20px 0 8px}\
.lead{margin:0 0 24px;color:var(--muted);overflow-wrap:anywhere}\
.lead strong{color:var(--text)}\
.step{margin:0 0 4px;font-size:13px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;color:var(--accent)}\
.field{margin:0 0 18px}\
label{display:block;margin:0 0 6px;font-size:15px;font-weight:600}\
input{display:block;width:100%;min-height:46px;padding:10px 12px;font:inherit;color:var(--text);\
background:var(--card);border:1px solid var(--line);border-radius:10px}\
input:focus{outline:3px solid var(--focus);outline-offset:1px;border-color:var(--focus)}\
input[aria-invalid=true]{border-color:var(--error-line)}\
input.code{font-size:24px;letter-spacing:.4em;text-align:center;font-variant-numeric:tabular-nums}\
.hint{margin:8px 0 0;font-size:14px;color:var(--muted)}\
code{font:600 14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}\
.hint code{font-weight:500}\
.alert{display:flex;gap:10px;align-items:flex-start;margin:0 0 20px;padding:12px 14px;\
border:1px solid var(--error-line);border-left-width:4px;border-radius:10px;\
background:var(--error-bg);color:var(--error-text);font-weight:600}\
.alert p{margin:0}\
.alert svg{flex:none;width:20px;height:20px;margin-top:2px;fill:currentColor}\
.note{margin:0 0 18px;padding:10px 12px;border-radius:10px;background:var(--chip);font-size:14px}\
.access{margin-top:6px;padding-top:2px;border-top:1px solid var(--line)}\
.list{list-style:none;margin:0;padding:0}\
.list li{display:flex;flex-direction:column;gap:2px;margin:0 0 8px;padding:10px 12px;\
border:1px solid var(--line);border-radius:10px;background:var(--chip)}\
.list li span{font-size:14px;color:var(--muted)}\
.list li.resource .name{font-size:15px;color:var(--text);font-weight:600}\
.list li.resource code{font-weight:500;color:var(--muted)}\
.actions{display:flex;flex-direction:row-reverse;gap:12px;margin-top:24px}\
button{flex:1 1 0;min-height:46px;padding:10px 16px;font:inherit;font-weight:600;border-radius:10px;cursor:pointer}\
.primary{flex-grow:2;color:var(--on-accent);background:var(--accent);border:1px solid var(--accent)}\
.primary:hover{filter:brightness(1.1)}\
.secondary{color:var(--text);background:transparent;border:1px solid var(--line)}\
.secondary:hover{background:var(--chip)}\
button:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
.foot{max-width:448px;margin:20px 0 0;font-size:13px;color:var(--muted);text-align:center}\
@media (max-width:520px){body{padding:0;justify-content:flex-start}\
.card{max-width:none;min-height:100vh;border:0;border-radius:0;box-shadow:none;padding:24px 20px}\
h1{font-size:22px}.actions{flex-direction:column}.foot{display:none}}";

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
    // The origin is a parsed URL's ASCII serialisation; a failure falls back to 'self' only
    // (unstyled, still usable).
    let csp = HeaderValue::from_str(csp).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'")
    });
    headers.insert(CONTENT_SECURITY_POLICY, csp);
    response
}

#[cfg(test)]
mod unit {
    use super::*;
    use http_body_util::BodyExt as _;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            html_escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(html_escape("plain é"), "plain é");
    }

    fn text(response: Response) -> (String, String) {
        let csp = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = futures_ready(response.into_body().collect())
            .expect("body")
            .to_bytes();
        (String::from_utf8(body.to_vec()).expect("utf-8"), csp)
    }

    /// The body of a page in memory: ready at once.
    fn futures_ready<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    fn pages() -> Vec<Response> {
        let hidden = [("state", "\"><b>".to_owned())];
        let scope = ["read".to_owned(), "reports:read".to_owned(), "x".to_owned()];
        let resources = ["https://api.test/v1".to_owned()];
        let consent = Consent {
            issuer: "http://127.0.0.1:8000",
            client_name: "An <App>",
            scope: &scope,
            resources: &resources,
            hidden: &hidden,
            redirect_origin: "http://127.0.0.1:9999",
            error: Some("Wrong username or password."),
            username: "al\"ice",
            second_factor: true,
        };
        let second = SecondFactor {
            issuer: "http://127.0.0.1:8000",
            client_name: "An <App>",
            username: "alice",
            hidden: &hidden,
            ticket: "t-1",
            redirect_origin: "http://127.0.0.1:9999",
            error: None,
        };
        vec![
            consent_page(StatusCode::OK, &consent),
            second_factor_page(StatusCode::OK, &second),
            error_page(StatusCode::BAD_REQUEST, "bad <client>"),
        ]
    }

    /// The CSP admits the page's one stylesheet by its hash, and nothing else: no inline
    /// script, no style attribute (a hash does not allow those), no external asset.
    #[test]
    fn the_one_inline_stylesheet_is_allowed_by_its_hash_and_nothing_else_is_inline() {
        for page in pages() {
            let (html, csp) = text(page);
            let style = html
                .split_once("<style>")
                .and_then(|(_, rest)| rest.split_once("</style>"))
                .map(|(style, _)| style)
                .expect("a stylesheet");
            let digest =
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
            assert!(
                csp.contains(&format!("style-src 'sha256-{digest}';")),
                "{csp}"
            );
            assert!(csp.starts_with("default-src 'none';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert_eq!(html.matches("<style>").count(), 1);
            for banned in [
                "<script", " style=", "<link", "<img", "src=", "@import", "url(",
            ] {
                assert!(!html.contains(banned), "{banned} in {html}");
            }
            assert!(html.contains("name=\"viewport\""), "phone width: {html}");
        }
    }

    #[test]
    fn the_page_explains_scopes_and_resources_and_shows_the_error() {
        let (html, _) = text(pages().remove(0));
        assert!(
            html.contains("<span id=\"client\">An &lt;App&gt;</span>"),
            "{html}"
        );
        assert!(
            html.contains("<code>read</code><span>Read your data</span>"),
            "{html}"
        );
        assert!(html.contains("<code>reports:read</code><span>Read your reports</span>"));
        assert!(html.contains("<code>x</code><span>The permission \u{201c}x\u{201d}"));
        assert!(html.contains("The API at api.test</span><code>https://api.test/v1</code>"));
        assert!(html.contains("<div id=\"error\" class=\"alert\" role=\"alert\">"));
        assert!(html.contains("Wrong username or password."));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("<label for=\"username\">Username</label>"));
        assert!(html.contains("<label for=\"password\">Password</label>"));
        assert!(html.contains("id=\"second-factor-note\""));
        assert!(html.contains("value=\"al&quot;ice\""));
        assert!(html.contains("value=\"&quot;&gt;&lt;b&gt;\""));
        assert!(html.contains("<strong id=\"issuer\">127.0.0.1:8000</strong>"));
        assert!(html.contains("<strong id=\"return-to\">http://127.0.0.1:9999</strong>"));
        let (second, _) = text(pages().remove(1));
        assert!(second.contains("<label for=\"otp\">One-time code</label>"));
        assert!(second.contains("<input type=\"hidden\" name=\"login\" value=\"t-1\">"));
        assert!(!second.contains("id=\"error\""));
        assert!(!second.contains("aria-invalid=\"true\""));
    }
}
