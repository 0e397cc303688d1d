//! An introspection response (RFC 7662 §2.2), read strictly and checked by the validator's
//! rules into an [`Answer`]: what the decision path acts on.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::checks::{Checks, actor, check_audience, client, confirmation, optional_str};
use crate::claims::Claims;
use crate::error::{AuthError, ErrorKind};
use crate::fetch::FetchErrorKind;
use crate::json::{self, Value};
use crate::scope::Granted;
use crate::verified::{Facts, VerifiedToken};

/// What the issuer says about a token, as the rules judge it.
#[derive(Clone)]
pub(crate) enum Answer {
    /// `active: true`, and the rules accept it.
    Active(Arc<Introspected>),
    /// `active: false`: unknown, expired, revoked, or not for us (401 `invalid_token`).
    Inactive,
    /// `active: true`, but the rules refuse it (`iss`, `aud`, times, a claim's type): 401
    /// with this error's kind.
    Refused(AuthError),
    /// No answer could be had: 503. Never cached.
    Unavailable(Unavailable),
}

/// Why no answer could be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The request failed: connect, TLS, timeout, an HTTP status (401/403: the endpoint
    /// refused our client credentials), the size cap, the body.
    Fetch(FetchErrorKind),
    /// The endpoint answered something that is not an RFC 7662 response; says what.
    InvalidResponse(&'static str),
    /// Too many tokens waiting, or no free slot within the timeout.
    Overloaded,
    /// The endpoint could not be discovered.
    Discovery,
    /// No Tokio runtime to send the request on.
    NoRuntime,
    /// The task asking the endpoint ended without an answer (its runtime shut down).
    Aborted,
}

impl Answer {
    /// The `result` label of the introspection metric: `active`, `inactive`, `refused`, or
    /// why there was no answer.
    pub(crate) fn result(&self) -> &'static str {
        match self {
            Answer::Active(_) => "active",
            Answer::Inactive => "inactive",
            Answer::Refused(_) => "refused",
            Answer::Unavailable(why) => why.reason(),
        }
    }
}

impl Unavailable {
    /// The stable `reason` logged.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Unavailable::Fetch(FetchErrorKind::Status(s)) if s == 401 || s == 403 => {
                "client_refused"
            }
            Unavailable::Fetch(kind) => kind.as_str(),
            Unavailable::InvalidResponse(_) => "invalid_response",
            Unavailable::Overloaded => "overloaded",
            Unavailable::Discovery => "discovery_failed",
            Unavailable::NoRuntime => "no_runtime",
            Unavailable::Aborted => "aborted",
        }
    }
}

/// An active token: what it grants, and the answer's JSON for the application's claims.
pub(crate) struct Introspected {
    /// The facts, as for a JWT; `exp` is the answer's, or (without one) the end of the
    /// answer's ttl.
    pub(crate) token: VerifiedToken,
    /// Which of the rules' issuers vouched for it.
    pub(crate) issuer: usize,
    /// The answer's JSON object (with `iss`, `exp` and `aud` added when it had none: see
    /// [`Added`]), for `Claims<T>`.
    pub(crate) json: Box<RawValue>,
    /// Estimated bytes held, for the cache's memory bound.
    pub(crate) size: u64,
    /// The claims deserialized once, as the validator's `T`.
    claims: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Introspected {
    pub(crate) fn facts(&self) -> &Facts {
        self.token.facts()
    }

    /// The answer's JSON as the claims type `T`, deserialized on the first call and shared
    /// by the later ones (a cached answer costs no parsing).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidClaims`] when the JSON does not deserialize into `T`.
    pub(crate) fn claims<T>(&self) -> Result<Claims<T>, AuthError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(memo) = self.claims.get()
            && let Ok(claims) = Arc::clone(memo).downcast::<T>()
        {
            return Ok(Claims(claims));
        }
        let claims: Arc<T> = Arc::new(
            serde_json::from_str(self.json.get())
                .map_err(|_| AuthError::new(ErrorKind::InvalidClaims))?,
        );
        let _ = self
            .claims
            .set(Arc::clone(&claims) as Arc<dyn Any + Send + Sync>);
        Ok(Claims(claims))
    }
}

impl fmt::Debug for Introspected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspected")
            .field("token", &self.token)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Active(i) => f.debug_tuple("Active").field(i).finish(),
            Answer::Inactive => f.write_str("Inactive"),
            Answer::Refused(e) => f.debug_tuple("Refused").field(e).finish(),
            Answer::Unavailable(u) => f.debug_tuple("Unavailable").field(u).finish(),
        }
    }
}

/// The members read from an answer.
const MEMBERS: [&str; 16] = [
    "active",
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "sub",
    "client_id",
    "azp",
    "jti",
    "scope",
    "scp",
    "cnf",
    "act",
    "acr",
    "auth_time",
];
/// Read as raw JSON text: `active` (its value), `cnf` and `act` (objects).
const RAW: [bool; 16] = [
    true, false, false, false, false, false, false, false, false, false, false, false, true, true,
    false, false,
];

/// Reads the answer `body`, checked by `rules` at `now`. `issuer` is the endpoint's own
/// issuer, when known; `ttl` how long an active answer may be cached (an answer without
/// `exp` is taken to expire then).
pub(crate) fn read(
    body: &[u8],
    rules: &[Checks],
    issuer: Option<&str>,
    now: i64,
    ttl: Duration,
) -> Answer {
    let Ok(members) = json::read_object_raw(body, MEMBERS, RAW) else {
        return Answer::Unavailable(Unavailable::InvalidResponse(
            "not a JSON object without repeated members",
        ));
    };
    let [
        active,
        iss,
        aud,
        exp,
        nbf,
        iat,
        sub,
        client_id,
        azp,
        jti,
        scope,
        scp,
        cnf,
        act,
        acr,
        auth_time,
    ] = members;
    match active {
        Some(Value::Raw("true")) => {}
        Some(Value::Raw("false")) => return Answer::Inactive,
        _ => {
            return Answer::Unavailable(Unavailable::InvalidResponse("no boolean `active` member"));
        }
    }
    let (no_exp, no_aud) = (exp.is_none(), aud.is_none());
    let checked = (|| {
        let (index, named) = select_issuer(iss.as_ref(), rules, issuer)?;
        let checks = &rules[index];
        if let Some(aud) = &aud {
            check_audience(Some(aud), &checks.audiences)?;
        }
        let exp = date(exp.as_ref(), "exp")?;
        let nbf = date(nbf.as_ref(), "nbf")?;
        let iat = date(iat.as_ref(), "iat")?;
        // Without `exp` there is no expiry to check, and the ttl is not the token's
        // lifetime: the times are checked as for a token expiring at the earliest second
        // the leeway admits. `nbf` and `iat` still count, and so does the lifetime cap
        // where `iat` shows the token has already lived longer than it.
        let earliest = now.saturating_sub(checks.leeway).saturating_add(1);
        checks.check_times(exp.unwrap_or(earliest), nbf, iat, now)?;
        // For the cache and the facts, an answer without `exp` lasts the ttl.
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = exp.unwrap_or(now.saturating_add(ttl_secs));
        let jti = optional_str(jti, "jti")?;
        if checks.require_jti && jti.is_none() {
            return Err(AuthError::claim(ErrorKind::MissingClaim, "jti"));
        }
        let facts = Facts {
            issuer: checks.issuer.clone(),
            client_id: client(client_id, azp)?,
            subject: optional_str(sub, "sub")?,
            scopes: Granted::from_claims(scope.as_ref(), scp.as_ref())?,
            jti,
            exp,
            nbf,
            iat,
            cnf: cnf.map(|c| confirmation(&c)).transpose()?,
            act: act.map(|a| actor(&a)).transpose()?,
            acr: optional_str(acr, "acr")?,
            auth_time: date(auth_time.as_ref(), "auth_time")?,
        };
        Ok((index, named, facts))
    })();
    let (index, named, facts) = match checked {
        Ok(checked) => checked,
        Err(err) => return Answer::Refused(err),
    };
    let added = Added {
        iss: (!named).then_some(&*rules[index].issuer),
        exp: no_exp.then_some(facts.exp),
        aud: no_aud,
    };
    let Some(json) = claims_json(body, &added) else {
        return Answer::Unavailable(Unavailable::InvalidResponse("not a JSON object"));
    };
    // The JSON kept, and about as much again for the facts and the claims read from it.
    let size = 2 * json.get().len() as u64 + facts.scopes.size() + 256;
    Answer::Active(Arc::new(Introspected {
        token: VerifiedToken::new(facts),
        issuer: index,
        json,
        size,
        claims: OnceLock::new(),
    }))
}

/// Which rule applies: the one of the answer's `iss` (which must be the endpoint's issuer
/// when that is known), else the endpoint's issuer's, else the only one. Also whether the
/// answer named its issuer.
fn select_issuer(
    iss: Option<&Value<'_>>,
    rules: &[Checks],
    endpoint_issuer: Option<&str>,
) -> Result<(usize, bool), AuthError> {
    let invalid = AuthError::claim(ErrorKind::InvalidIssuer, "iss");
    let position = |name: &str| rules.iter().position(|c| *c.issuer == *name).ok_or(invalid);
    match (iss, endpoint_issuer) {
        (Some(Value::Str(iss)), Some(ours)) if **iss != *ours => Err(invalid),
        (Some(Value::Str(iss)), _) => Ok((position(iss)?, true)),
        (Some(_), _) => Err(AuthError::claim(ErrorKind::InvalidClaimType, "iss")),
        (None, Some(ours)) => Ok((position(ours)?, false)),
        (None, None) if rules.len() == 1 => Ok((0, false)),
        (None, None) => Err(AuthError::claim(ErrorKind::MissingClaim, "iss")),
    }
}

/// An RFC 7662 date: an integer number of seconds since the epoch.
fn date(value: Option<&Value<'_>>, claim: &'static str) -> Result<Option<i64>, AuthError> {
    match value {
        None => Ok(None),
        Some(Value::Int(n)) => Ok(Some(*n)),
        Some(Value::Float(_)) => Err(AuthError::claim(ErrorKind::Malformed, claim)),
        Some(_) => Err(AuthError::claim(ErrorKind::InvalidClaimType, claim)),
    }
}

/// The members added to an answer's JSON for the claims type, each only where the answer has
/// none (so never a repeated member).
///
/// RFC 7662 §2.2 makes every member but `active` optional, while a claims type may require
/// what an RFC 9068 JWT always has: [`AccessClaims`](crate::AccessClaims) requires `iss`,
/// `exp` and `aud`. Rather than a claims conversion that tolerates their absence (which a
/// caller's own `T` would not get), the JSON it reads is completed with what is known, the
/// same for every `T`:
///
/// - `iss`: the issuer the answer was judged for (the endpoint's, or the only trusted one);
/// - `exp`: the end of the answer's ttl, which is also the token's
///   [`expires_at`](crate::VerifiedToken::expires_at) and when the cached answer is asked
///   again: no later than that is the token known to be active;
/// - `aud`: `[]`, no audience: the answer named none, and none is made up (the checks
///   found nothing to refuse; an application that tests `aud` for its own finds nothing).
///
/// Members the claims type has as optional (`sub`, `client_id`, `iat`, `jti`, `scope` ...)
/// stay absent. The members the answer does give are left exactly as given.
struct Added<'a> {
    iss: Option<&'a str>,
    exp: Option<i64>,
    aud: bool,
}

/// The answer's JSON object for the claims type, with the [`Added`] members first. `body`
/// is known to be a JSON object with at least one member (`active`).
fn claims_json(body: &[u8], added: &Added<'_>) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let mut json = String::with_capacity(text.len() + 64);
    json.push('{');
    if let Some(iss) = added.iss {
        json.push_str("\"iss\":");
        json.push_str(&serde_json::to_string(iss).ok()?);
        json.push(',');
    }
    if let Some(exp) = added.exp {
        json.push_str(&format!("\"exp\":{exp},"));
    }
    if added.aud {
        json.push_str("\"aud\":[],");
    }
    json.push_str(text.strip_prefix('{')?);
    RawValue::from_string(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Profile;
    use crate::claims::AccessClaims;
    use crate::verified::Confirmation;

    const ISS: &str = "https://issuer.example";
    const NOW: i64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(60);

    fn rules() -> Box<[Checks]> {
        let rule = |iss: &str, aud: &str| {
            Checks::new(
                iss.into(),
                Box::new([aud.into()]),
                Duration::from_secs(60),
                Profile::Jwt,
                None,
                false,
            )
        };
        Box::new([
            rule(ISS, "https://api.example"),
            rule("https://other.example", "https://other-api.example"),
        ])
    }

    fn answer(body: serde_json::Value, endpoint_issuer: Option<&str>) -> Answer {
        read(
            body.to_string().as_bytes(),
            &rules(),
            endpoint_issuer,
            NOW,
            TTL,
        )
    }

    fn active(body: serde_json::Value) -> Arc<Introspected> {
        match answer(body, Some(ISS)) {
            Answer::Active(i) => i,
            other => panic!("not active: {other:?}"),
        }
    }

    fn refused(body: serde_json::Value, endpoint_issuer: Option<&str>) -> (ErrorKind, String) {
        match answer(body, endpoint_issuer) {
            Answer::Refused(e) => (e.kind(), e.claim_name().unwrap_or_default().to_owned()),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_active_answer_maps_to_the_facts_of_a_jwt() {
        let i = active(serde_json::json!({
            "active": true, "scope": "read write", "client_id": "svc", "sub": "alice",
            "aud": ["https://x.example", "https://api.example"], "iss": ISS,
            "exp": NOW + 600, "iat": NOW - 10, "nbf": NOW - 10, "jti": "j-1",
            "token_type": "Bearer", "cnf": {"jkt": "thumb"}
        }));
        let t = &i.token;
        assert_eq!(t.issuer(), ISS);
        assert_eq!(t.client_id(), Some("svc"));
        assert_eq!(t.subject(), Some("alice"));
        assert_eq!(t.scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert_eq!(t.jti(), Some("j-1"));
        assert_eq!(t.expires_at(), NOW + 600);
        assert_eq!(t.issued_at(), Some(NOW - 10));
        assert_eq!(t.confirmation(), Some(&Confirmation::Jkt("thumb".into())));
        assert_eq!(i.issuer, 0);
        let claims: Claims<AccessClaims> = i.claims().expect("claims");
        assert_eq!(claims.0.iss, ISS);
        assert_eq!(claims.0.client_id.as_deref(), Some("svc"));
        assert_eq!(claims.0.extra["token_type"], "Bearer");
        // Deserialized once: the second call shares it.
        let again: Claims<AccessClaims> = i.claims().expect("claims");
        assert!(Arc::ptr_eq(&claims.0, &again.0));
    }

    #[test]
    fn azp_stands_in_for_client_id_as_in_the_claims() {
        // One rule for the VerifiedToken and AccessClaims::client_id: `client_id`, else `azp`.
        let i = active(serde_json::json!({
            "active": true, "azp": "web", "iss": ISS, "exp": NOW + 600
        }));
        assert_eq!(i.token.client_id(), Some("web"));
        let claims: Claims<AccessClaims> = i.claims().expect("claims");
        assert_eq!(claims.client_id(), Some("web"));
        let both = active(serde_json::json!({
            "active": true, "client_id": "svc", "azp": "web", "iss": ISS, "exp": NOW + 600
        }));
        assert_eq!(both.token.client_id(), Some("svc"));
        assert_eq!(
            refused(serde_json::json!({"active": true, "azp": 1}), Some(ISS)),
            (ErrorKind::InvalidClaimType, "azp".to_owned())
        );
    }

    #[test]
    fn the_issuer_comes_from_iss_or_from_the_endpoint() {
        // No `iss`: the endpoint's issuer, added to the claims JSON.
        let i = match answer(
            serde_json::json!({"active": true, "exp": NOW + 60, "aud": "https://other-api.example"}),
            Some("https://other.example"),
        ) {
            Answer::Active(i) => i,
            other => panic!("{other:?}"),
        };
        assert_eq!(i.issuer, 1);
        let claims: Claims<AccessClaims> = i.claims().expect("claims with iss");
        assert_eq!(claims.0.iss, "https://other.example");
        // An `iss` that is not the endpoint's, or not trusted, or not a string.
        let other = serde_json::json!({"active": true, "iss": "https://other.example"});
        assert_eq!(refused(other, Some(ISS)).0, ErrorKind::InvalidIssuer);
        let unknown = serde_json::json!({"active": true, "iss": "https://evil.example"});
        assert_eq!(refused(unknown, None).0, ErrorKind::InvalidIssuer);
        let typed = serde_json::json!({"active": true, "iss": 7});
        assert_eq!(refused(typed, None).0, ErrorKind::InvalidClaimType);
        // No `iss`, no known endpoint issuer, several trusted: which one is unknowable.
        let bare = serde_json::json!({"active": true});
        assert_eq!(refused(bare, None), (ErrorKind::MissingClaim, "iss".into()));
        // With a single rule it is that one.
        let single = read(br#"{"active":true}"#, &rules()[..1], None, NOW, TTL);
        assert!(matches!(single, Answer::Active(_)), "{single:?}");
        // The endpoint's issuer must be trusted.
        let bare = serde_json::json!({"active": true});
        assert_eq!(
            refused(bare, Some("https://evil.example")).0,
            ErrorKind::InvalidIssuer
        );
    }

    #[test]
    fn aud_and_times_are_checked_when_present() {
        let base = |extra: serde_json::Value| {
            let mut body = serde_json::json!({"active": true, "iss": ISS});
            body.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            body
        };
        // Absent `aud`, absent `exp`: accepted; `exp` is then the end of the ttl.
        let i = active(base(serde_json::json!({})));
        assert_eq!(i.token.expires_at(), NOW + 60);
        for (extra, kind, claim) in [
            (
                serde_json::json!({"aud": "https://x.example"}),
                ErrorKind::InvalidAudience,
                "aud",
            ),
            (
                serde_json::json!({"aud": ["https://api.example", 1]}),
                ErrorKind::InvalidClaimType,
                "aud",
            ),
            (
                serde_json::json!({"exp": NOW - 61}),
                ErrorKind::Expired,
                "exp",
            ),
            (
                serde_json::json!({"nbf": NOW + 61}),
                ErrorKind::NotYetValid,
                "nbf",
            ),
            (
                serde_json::json!({"iat": NOW + 61}),
                ErrorKind::IssuedInFuture,
                "iat",
            ),
            (
                serde_json::json!({"exp": "soon"}),
                ErrorKind::InvalidClaimType,
                "exp",
            ),
            (serde_json::json!({"exp": 1.5}), ErrorKind::Malformed, "exp"),
            (
                serde_json::json!({"scope": ["read"]}),
                ErrorKind::InvalidClaimType,
                "scope",
            ),
            (
                serde_json::json!({"client_id": 1}),
                ErrorKind::InvalidClaimType,
                "client_id",
            ),
            (
                serde_json::json!({"cnf": "jkt"}),
                ErrorKind::InvalidClaimType,
                "cnf",
            ),
        ] {
            let shown = extra.to_string();
            assert_eq!(
                refused(base(extra), Some(ISS)),
                (kind, claim.to_owned()),
                "{shown}"
            );
        }
        // Within the leeway.
        active(base(serde_json::json!({"exp": NOW - 59})));
    }

    #[test]
    fn the_claims_type_reads_an_answer_without_exp_or_aud() {
        // RFC 7662 §2.2: only `active` is required. `AccessClaims` requires `exp` and `aud`.
        let i = active(serde_json::json!({"active": true}));
        let claims: Claims<AccessClaims> = i.claims().expect("claims without exp and aud");
        assert_eq!(claims.0.iss, ISS);
        assert_eq!(claims.0.exp, NOW + 60, "the end of the ttl, as the token's");
        assert_eq!(i.token.expires_at(), NOW + 60);
        assert_eq!(claims.0.aud, crate::claims::Audience::Many(Vec::new()));
        assert!(claims.0.sub.is_none() && claims.0.jti.is_none() && claims.0.iat.is_none());
        // What the answer gives is what the claims say, nothing added.
        let given = active(serde_json::json!({
            "active": true, "exp": NOW + 600, "aud": "https://api.example"
        }));
        let claims: Claims<AccessClaims> = given.claims().expect("claims");
        assert_eq!(claims.0.exp, NOW + 600);
        assert_eq!(
            claims.0.aud,
            crate::claims::Audience::One("https://api.example".into())
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(given.json.get()).expect("json"),
            serde_json::json!({
                "iss": ISS, "active": true, "exp": NOW + 600, "aud": "https://api.example"
            })
        );
    }

    #[test]
    fn without_exp_no_exp_is_checked() {
        let bare = br#"{"active":true}"#;
        // No leeway and no ttl: nothing has expired (an answer not to cache, not a refusal).
        let mut strict = rules();
        strict[0].leeway = 0;
        let read_strict = read(bare, &strict[..1], None, NOW, Duration::ZERO);
        assert!(matches!(read_strict, Answer::Active(_)), "{read_strict:?}");
        // A lifetime cap shorter than the ttl: the ttl is not the token's lifetime.
        let mut capped = rules();
        capped[0].max_lifetime = Some(30);
        let read_capped = read(bare, &capped[..1], None, NOW, TTL);
        assert!(matches!(read_capped, Answer::Active(_)), "{read_capped:?}");
        // But a token that has already lived longer than the cap is refused.
        let old = format!(r#"{{"active":true,"iat":{}}}"#, NOW - 3600);
        let read_old = read(old.as_bytes(), &capped[..1], None, NOW, TTL);
        assert!(
            matches!(&read_old, Answer::Refused(e) if e.kind() == ErrorKind::LifetimeTooLong),
            "{read_old:?}"
        );
    }

    #[test]
    fn only_a_boolean_active_counts() {
        let inactive = answer(serde_json::json!({"active": false}), Some(ISS));
        assert!(matches!(inactive, Answer::Inactive));
        for body in [
            r#"{"scope":"read"}"#,
            r#"{"active":"true"}"#,
            r#"{"active":1}"#,
            r#"{"active":null}"#,
            r#"{"active":true,"active":false}"#,
            r#"{"active":false,"active":true}"#,
            r#"[{"active":true}]"#,
            "true",
            "<html>",
            "",
        ] {
            let read = read(body.as_bytes(), &rules(), Some(ISS), NOW, TTL);
            assert!(
                matches!(read, Answer::Unavailable(Unavailable::InvalidResponse(_))),
                "{body}: {read:?}"
            );
        }
    }

    #[test]
    fn jti_is_required_when_revocation_is_on() {
        let mut rules = rules();
        rules[0].require_jti = true;
        let read = read(br#"{"active":true}"#, &rules, Some(ISS), NOW, TTL);
        assert!(
            matches!(read, Answer::Refused(e) if e.claim_name() == Some("jti")),
            "{read:?}"
        );
    }

    #[test]
    fn acr_and_auth_time_are_read_as_from_a_jwt() {
        let i = active(serde_json::json!({
            "active": true, "iss": ISS, "exp": NOW + 600,
            "acr": "urn:bearer-guard:acr:mfa", "auth_time": NOW - 30
        }));
        assert_eq!(i.token.acr(), Some("urn:bearer-guard:acr:mfa"));
        assert_eq!(i.token.auth_time(), Some(NOW - 30));
        let claims: Claims<AccessClaims> = i.claims().expect("claims");
        assert_eq!(claims.acr.as_deref(), Some("urn:bearer-guard:acr:mfa"));
        assert_eq!(claims.auth_time, Some(NOW - 30));
        let none = active(serde_json::json!({"active": true, "iss": ISS}));
        assert_eq!((none.token.acr(), none.token.auth_time()), (None, None));
        for (wrong, kind, claim) in [
            (
                serde_json::json!({"acr": 2}),
                ErrorKind::InvalidClaimType,
                "acr",
            ),
            (
                serde_json::json!({"acr": ["a"]}),
                ErrorKind::InvalidClaimType,
                "acr",
            ),
            (
                serde_json::json!({"auth_time": "1700000000"}),
                ErrorKind::InvalidClaimType,
                "auth_time",
            ),
            (
                serde_json::json!({"auth_time": 1.5}),
                ErrorKind::Malformed,
                "auth_time",
            ),
        ] {
            let mut body = serde_json::json!({"active": true, "iss": ISS});
            body.as_object_mut()
                .expect("object")
                .extend(wrong.as_object().expect("object").clone());
            assert_eq!(
                refused(body, Some(ISS)),
                (kind, claim.to_owned()),
                "{wrong}"
            );
        }
    }

    #[test]
    fn reasons_are_stable() {
        let status = |s: u16| {
            Unavailable::Fetch(FetchErrorKind::Status(
                http::StatusCode::from_u16(s).expect("status"),
            ))
        };
        assert_eq!(status(401).reason(), "client_refused");
        assert_eq!(status(403).reason(), "client_refused");
        assert_eq!(status(500).reason(), "http_status");
        assert_eq!(
            Unavailable::Fetch(FetchErrorKind::Connect).reason(),
            "connect"
        );
        assert_eq!(Unavailable::Overloaded.reason(), "overloaded");
    }
}
