//! The claim checks of one issuer: the profile (RFC 9068 or a plain JWT), times, issuer,
//! audience, confirmation, and what the token grants. Configuration, not code paths: every
//! token of an issuer goes through the same [`Checks`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{AuthError, ErrorKind};
use crate::json::{self, Value};
use crate::jws::{self, Typ};
use crate::scope::Granted;
use crate::verified::{Actor, Confirmation, Facts, Window};

/// Which type a token must declare and which claims it must carry.
///
/// | | [`Rfc9068`](Profile::Rfc9068) (default) | [`Jwt`](Profile::Jwt) |
/// |---|---|---|
/// | `typ` | `at+jwt` / `application/at+jwt` | absent, `JWT`, or `at+jwt` |
/// | required claims | `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti` | `iss`, `exp`, `aud` |
/// | client | `client_id` | `client_id`, else `azp` |
///
/// Under both, `iss` must equal the configured issuer, `aud` must name a configured
/// audience, `exp`/`nbf`/`iat` must be plain numbers within range and are checked against
/// the clock with the leeway, and every claim that is present must have its JSON type.
/// `jti` is also required whenever [revocation](crate::ValidatorBuilder::revocation) is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// JWT access tokens per RFC 9068 §2: the profile for OAuth 2.0 authorization servers
    /// that follow it.
    #[default]
    Rfc9068,
    /// Plain RFC 7519 JWTs, for issuers that do not follow RFC 9068 (no `typ: at+jwt`, no
    /// `client_id`). Without the type check, an ID token or another JWT of the same issuer
    /// could pass for an access token when its `aud` matches: keep audiences distinct.
    Jwt,
}

/// RFC 9068 §2.2's required claims, in the order a missing one is reported.
const RFC_9068_REQUIRED: [&str; 7] = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"];

/// How one issuer's tokens are checked.
#[derive(Clone, Debug)]
pub(crate) struct Checks {
    pub(crate) issuer: Box<str>,
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) leeway: i64,
    pub(crate) profile: Profile,
    pub(crate) max_lifetime: Option<i64>,
    /// Revocation is on: `jti` is required whatever the profile.
    pub(crate) require_jti: bool,
}

/// The members read from a token's claims.
const MEMBERS: [&str; 15] = [
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
/// Read as raw JSON text: the dates (their exact digits, `auth_time` too), `cnf` and `act`
/// (objects).
const RAW: [bool; 15] = [
    false, false, true, true, true, false, false, false, false, false, false, true, true, false,
    true,
];

impl Checks {
    pub(crate) fn new(
        issuer: Box<str>,
        audiences: Box<[Box<str>]>,
        leeway: Duration,
        profile: Profile,
        max_lifetime: Option<Duration>,
        require_jti: bool,
    ) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Checks {
            issuer,
            audiences,
            leeway: secs(leeway),
            profile,
            max_lifetime: max_lifetime.map(secs),
            require_jti,
        }
    }

    /// Whether the header's `typ` is acceptable under the profile. Checked before the
    /// signature, so tokens of the wrong type cost no signature verification.
    pub(crate) fn check_typ(&self, typ: Typ) -> Result<(), AuthError> {
        match (typ, self.profile) {
            (Typ::AccessToken, _) | (Typ::Absent | Typ::Jwt, Profile::Jwt) => Ok(()),
            _ => Err(ErrorKind::InvalidType.into()),
        }
    }

    /// Checks the claims JSON against the profile, the clock at `now`, the issuer and the
    /// audiences, and returns what the token says about its client, scopes and binding.
    pub(crate) fn check(&self, payload: &[u8], now: i64) -> Result<Facts, AuthError> {
        let members = json::read_object_raw(payload, MEMBERS, RAW).map_err(jws::json_error)?;
        if self.profile == Profile::Rfc9068
            && let Some(missing) = RFC_9068_REQUIRED
                .iter()
                .find(|name| members[member(name)].is_none())
        {
            return Err(AuthError::claim(ErrorKind::MissingClaim, missing));
        }
        let [
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

        let exp = numeric_date(exp.as_ref(), "exp", Round::Down)?
            .ok_or(AuthError::claim(ErrorKind::MissingClaim, "exp"))?;
        let nbf = numeric_date(nbf.as_ref(), "nbf", Round::Up)?;
        let iat = numeric_date(iat.as_ref(), "iat", Round::Up)?;
        self.check_times(exp, nbf, iat, now)?;
        match &iss {
            Some(Value::Str(iss)) if **iss == *self.issuer => {}
            Some(Value::Str(_)) => return Err(AuthError::claim(ErrorKind::InvalidIssuer, "iss")),
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "iss")),
            None => return Err(AuthError::claim(ErrorKind::MissingClaim, "iss")),
        }
        check_audience(aud.as_ref(), &self.audiences)?;

        let client_id = client(client_id, azp)?;
        let jti = optional_str(jti, "jti")?;
        if self.require_jti && jti.is_none() {
            return Err(AuthError::claim(ErrorKind::MissingClaim, "jti"));
        }
        Ok(Facts {
            issuer: self.issuer.clone(),
            client_id,
            subject: optional_str(sub, "sub")?,
            scopes: Granted::from_claims(scope.as_ref(), scp.as_ref())?,
            jti,
            exp,
            nbf,
            iat,
            cnf: cnf.map(|c| confirmation(&c)).transpose()?,
            act: act.map(|a| actor(&a)).transpose()?,
            acr: optional_str(acr, "acr")?,
            // Rounded towards the past: an age is never understated.
            auth_time: numeric_date(auth_time.as_ref(), "auth_time", Round::Down)?,
        })
    }

    /// `exp`, `nbf`, `iat` against the clock (with the leeway) and the lifetime cap.
    pub(crate) fn check_times(
        &self,
        exp: i64,
        nbf: Option<i64>,
        iat: Option<i64>,
        now: i64,
    ) -> Result<(), AuthError> {
        if now.saturating_sub(self.leeway) >= exp {
            return Err(AuthError::claim(ErrorKind::Expired, "exp"));
        }
        let latest = now.saturating_add(self.leeway);
        if nbf.is_some_and(|nbf| nbf > latest) {
            return Err(AuthError::claim(ErrorKind::NotYetValid, "nbf"));
        }
        if iat.is_some_and(|iat| iat > latest) {
            return Err(AuthError::claim(ErrorKind::IssuedInFuture, "iat"));
        }
        if let Some(max) = self.max_lifetime {
            let too_long = |from: i64| exp.saturating_sub(from) > max;
            if iat.is_some_and(too_long) || too_long(now) {
                return Err(AuthError::claim(ErrorKind::LifetimeTooLong, "exp"));
            }
        }
        Ok(())
    }

    /// Whether a cached token is still within its times (`exp`, `nbf`) at `now`, in whole
    /// seconds: the rule [`window`](Self::window) answers on the clock's own type.
    #[cfg(test)]
    pub(crate) fn still_valid(&self, facts: &Facts, now: i64) -> bool {
        now.saturating_sub(self.leeway) < facts.exp
            && facts
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(self.leeway))
    }

    /// When a verified token may be served from the cache, as wall-clock instants: from
    /// `nbf - leeway` until `exp + leeway` (exclusive). For a time `t`, `window.contains(t)`
    /// is exactly `still_valid(facts, floor(t))` (tested), without turning the clock into
    /// seconds on every request: a hit compares two `SystemTime`s.
    pub(crate) fn window(&self, facts: &Facts) -> Window {
        let leeway = i128::from(self.leeway);
        let until = match instant(i128::from(facts.exp) + leeway) {
            At::Epoch => UNIX_EPOCH,
            At::Time(until) => until,
            // Past what the platform's clock can hold: its last representable second, so
            // that the window never ends late.
            At::Beyond => latest(),
        };
        let from = match facts.nbf.map(|nbf| instant(i128::from(nbf) - leeway)) {
            None | Some(At::Epoch) => None,
            Some(At::Time(from)) => Some(from),
            // Not before a time no clock reaches: never.
            Some(At::Beyond) => return Window::NEVER,
        };
        Window::new(from, until)
    }
}

/// A second since the epoch as a `SystemTime`.
enum At {
    /// At or before the epoch, which every clock reading is taken to be past (`now()`
    /// reads a clock before the epoch as 0).
    Epoch,
    Time(SystemTime),
    /// Later than the platform's `SystemTime` holds.
    Beyond,
}

fn instant(secs: i128) -> At {
    if secs <= 0 {
        return At::Epoch;
    }
    u64::try_from(secs)
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .map_or(At::Beyond, At::Time)
}

/// The platform's last representable whole second after the epoch.
fn latest() -> SystemTime {
    let (mut ok, mut beyond) = (0u64, u64::MAX);
    while beyond - ok > 1 {
        let mid = ok + (beyond - ok) / 2;
        match UNIX_EPOCH.checked_add(Duration::from_secs(mid)) {
            Some(_) => ok = mid,
            None => beyond = mid,
        }
    }
    UNIX_EPOCH + Duration::from_secs(ok)
}

fn member(name: &str) -> usize {
    MEMBERS
        .iter()
        .position(|m| *m == name)
        .unwrap_or_else(|| unreachable!("every required claim is read"))
}

/// An optional string claim: absent, or a JSON string (anything else is the wrong type).
/// The client a token was issued to, the one rule for JWTs, introspection answers and
/// [`AccessClaims::client_id`](crate::AccessClaims::client_id): `client_id`, else `azp`
/// (OpenID Connect issuers). Either must be a string when present.
pub(crate) fn client(
    client_id: Option<Value<'_>>,
    azp: Option<Value<'_>>,
) -> Result<Option<Box<str>>, AuthError> {
    match optional_str(client_id, "client_id")? {
        Some(id) => Ok(Some(id)),
        None => optional_str(azp, "azp"),
    }
}

pub(crate) fn optional_str(
    value: Option<Value<'_>>,
    claim: &'static str,
) -> Result<Option<Box<str>>, AuthError> {
    match value {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(Box::from(s.as_ref()))),
        Some(_) => Err(AuthError::claim(ErrorKind::InvalidClaimType, claim)),
    }
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate (RFC 7519 §2) from the claim's JSON text: a plain number
/// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?`) whose integer part fits an `i64` count of seconds.
/// Fractions are rounded in the direction that makes the check stricter. Other JSON types
/// are [`ErrorKind::InvalidClaimType`]; exponents and out-of-range numbers are
/// [`ErrorKind::Malformed`]: never "far future".
fn numeric_date(
    value: Option<&Value<'_>>,
    claim: &'static str,
    round: Round,
) -> Result<Option<i64>, AuthError> {
    let text = match value {
        None => return Ok(None),
        Some(Value::Raw(text)) => text.as_bytes(),
        Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, claim)),
    };
    let malformed = AuthError::claim(ErrorKind::Malformed, claim);
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'0'..=b'9', _)) => (false, text),
        _ => return Err(AuthError::claim(ErrorKind::InvalidClaimType, claim)),
    };
    let int_len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, rest) = digits.split_at(int_len);
    let fraction = match rest {
        [] => &[][..],
        [b'.', frac @ ..] if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => frac,
        _ => return Err(malformed),
    };
    if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
        return Err(malformed);
    }
    // At most 19 digits: i64::MAX has 19; parse with overflow checks.
    let mut value: i64 = 0;
    for &d in int {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or(malformed)?;
    }
    let value = if negative { -value } else { value };
    let has_fraction = fraction.iter().any(|&d| d != b'0');
    // Truncation went towards zero; step away from it when the rounding asks.
    let adjust = match (has_fraction, negative, round) {
        (true, false, Round::Up) => 1,
        (true, true, Round::Down) => -1,
        _ => 0,
    };
    value.checked_add(adjust).map(Some).ok_or(malformed)
}

/// `aud`: a string or an array of strings, one of which is ours.
pub(crate) fn check_audience(aud: Option<&Value<'_>>, ours: &[Box<str>]) -> Result<(), AuthError> {
    let is_ours = |a: &str| ours.iter().any(|o| **o == *a);
    let found = match aud {
        None => return Err(AuthError::claim(ErrorKind::MissingClaim, "aud")),
        Some(Value::Str(a)) => is_ours(a),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                match item {
                    Value::Str(a) => found |= is_ours(a),
                    _ => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "aud")),
                }
            }
            found
        }
        Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "aud")),
    };
    if found {
        Ok(())
    } else {
        Err(AuthError::claim(ErrorKind::InvalidAudience, "aud"))
    }
}

/// The `cnf` claim (RFC 7800): an object naming the key the presenter must prove. `jkt`
/// (DPoP) and `x5t#S256` (mTLS) are understood; any other confirmation method, or none, is
/// [`Confirmation::Other`], which no request can satisfy.
pub(crate) fn confirmation(value: &Value<'_>) -> Result<Confirmation, AuthError> {
    let invalid = || AuthError::claim(ErrorKind::InvalidClaimType, "cnf");
    let Value::Raw(text) = value else {
        return Err(invalid());
    };
    if !text.starts_with('{') {
        return Err(invalid());
    }
    let [jkt, x5t] =
        json::read_object(text.as_bytes(), ["jkt", "x5t#S256"]).map_err(jws::json_error)?;
    let thumbprint = |v: Value<'_>| match v {
        Value::Str(s) if !s.is_empty() => Ok(Box::<str>::from(s.as_ref())),
        _ => Err(invalid()),
    };
    Ok(match (jkt, x5t) {
        (Some(jkt), None) => Confirmation::Jkt(thumbprint(jkt)?),
        (None, Some(x5t)) => Confirmation::X5tS256(thumbprint(x5t)?),
        // Both, or neither: nothing this crate can prove as one binding.
        _ => Confirmation::Other,
    })
}

/// The `act` claim (RFC 8693 §4.1): an object with optional string `sub`, `client_id` and
/// `iss`, and optionally a nested `act` for the earlier actor, at most
/// [`Actor::MAX_DEPTH`] deep. Anything else is [`ErrorKind::InvalidClaimType`] (`act`).
pub(crate) fn actor(value: &Value<'_>) -> Result<Actor, AuthError> {
    actor_at(value, 1)
}

fn actor_at(value: &Value<'_>, depth: usize) -> Result<Actor, AuthError> {
    let invalid = || AuthError::claim(ErrorKind::InvalidClaimType, "act");
    let Value::Raw(text) = value else {
        return Err(invalid());
    };
    if depth > Actor::MAX_DEPTH || !text.starts_with('{') {
        return Err(invalid());
    }
    let [sub, client_id, iss, earlier] = json::read_object_raw(
        text.as_bytes(),
        ["sub", "client_id", "iss", "act"],
        [false, false, false, true],
    )
    .map_err(jws::json_error)?;
    let string = |v: Option<Value<'_>>| optional_str(v, "act");
    Ok(Actor {
        subject: string(sub)?,
        client_id: string(client_id)?,
        issuer: string(iss)?,
        earlier: earlier
            .map(|e| actor_at(&e, depth + 1).map(Box::new))
            .transpose()?,
    })
}

/// Default leeway for `exp`, `nbf` and `iat`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Largest leeway [`ValidatorBuilder::leeway`](crate::ValidatorBuilder::leeway) accepts.
pub(crate) const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Now, in whole seconds since the epoch (0 before it, `i64::MAX` past it).
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str, round: Round) -> Result<Option<i64>, ErrorKind> {
        numeric_date(Some(&Value::Raw(text)), "exp", round).map_err(|e| e.kind())
    }

    #[test]
    fn numeric_dates_are_plain_numbers_within_i64() {
        assert_eq!(date("1700000000", Round::Down), Ok(Some(1_700_000_000)));
        assert_eq!(date("10.5", Round::Down), Ok(Some(10)));
        assert_eq!(date("10.5", Round::Up), Ok(Some(11)));
        assert_eq!(date("10.000", Round::Up), Ok(Some(10)));
        assert_eq!(date("-10.5", Round::Down), Ok(Some(-11)));
        assert_eq!(date("-10.5", Round::Up), Ok(Some(-10)));
        assert_eq!(date("0", Round::Up), Ok(Some(0)));
        assert_eq!(date("9223372036854775807", Round::Down), Ok(Some(i64::MAX)));
        for bad in [
            "9223372036854775808",
            "99999999999999999999999",
            "1e10",
            "1E3",
            "1.5e300",
            "1e400",
            "01",
            "1.",
            "-",
            "9223372036854775807.5",
        ] {
            let kind = if bad == "9223372036854775807.5" {
                date(bad, Round::Up)
            } else {
                date(bad, Round::Down)
            };
            assert_eq!(kind, Err(ErrorKind::Malformed), "{bad}");
        }
        for wrong in ["\"1\"", "true", "null", "[1]", "{}"] {
            assert_eq!(
                date(wrong, Round::Down),
                Err(ErrorKind::InvalidClaimType),
                "{wrong}"
            );
        }
    }

    #[test]
    fn confirmation_methods() {
        let cnf = |t: &str| confirmation(&Value::Raw(t)).map_err(|e| e.kind());
        assert_eq!(cnf(r#"{"jkt":"abc"}"#), Ok(Confirmation::Jkt("abc".into())));
        assert_eq!(
            cnf(r#"{"x5t#S256":"xyz"}"#),
            Ok(Confirmation::X5tS256("xyz".into()))
        );
        assert_eq!(cnf(r#"{"jwk":{"kty":"EC"}}"#), Ok(Confirmation::Other));
        assert_eq!(cnf("{}"), Ok(Confirmation::Other));
        assert_eq!(
            cnf(r#"{"jkt":"a","x5t#S256":"b"}"#),
            Ok(Confirmation::Other)
        );
        assert_eq!(cnf(r#"{"jkt":1}"#), Err(ErrorKind::InvalidClaimType));
        assert_eq!(cnf(r#""jkt""#), Err(ErrorKind::InvalidClaimType));
        assert_eq!(
            cnf(r#"{"jkt":"a","jkt":"b"}"#),
            Err(ErrorKind::DuplicateMember)
        );
    }

    #[test]
    fn act_chains_are_typed_and_capped_at_max_depth() {
        let act = |t: &str| actor(&Value::Raw(t)).map_err(|e| (e.kind(), e.claim_name()));
        let chain = |depth: usize| {
            let mut text = String::from(r#"{"sub":"last"}"#);
            for i in 1..depth {
                text = format!(r#"{{"client_id":"c{i}","act":{text}}}"#);
            }
            text
        };
        let deepest = act(&chain(Actor::MAX_DEPTH)).expect("8 actors");
        assert_eq!(deepest.chain().count(), Actor::MAX_DEPTH);
        assert_eq!(deepest.id(), Some("c7"));
        assert_eq!(deepest.chain().last().and_then(Actor::id), Some("last"));
        let invalid = Err((ErrorKind::InvalidClaimType, Some("act")));
        assert_eq!(act(&chain(Actor::MAX_DEPTH + 1)), invalid);
        let full = act(r#"{"sub":"s","client_id":"c","iss":"i","extra":[1]}"#).expect("act");
        assert_eq!(
            (
                full.subject(),
                full.client_id(),
                full.issuer(),
                full.actor()
            ),
            (Some("s"), Some("c"), Some("i"), None)
        );
        for wrong in [
            r#""svc""#,
            "[]",
            r#"{"sub":1}"#,
            r#"{"client_id":null}"#,
            r#"{"act":"svc"}"#,
            r#"{"act":{"iss":false}}"#,
        ] {
            assert_eq!(act(wrong), invalid, "{wrong}");
        }
        assert_eq!(
            act(r#"{"sub":"a","sub":"b"}"#).map_err(|e| e.0),
            Err(ErrorKind::DuplicateMember)
        );
    }

    #[test]
    fn lifetime_cap_applies_to_exp_minus_iat_and_exp_minus_now() {
        let checks = Checks::new(
            "i".into(),
            Box::new(["a".into()]),
            Duration::ZERO,
            Profile::Rfc9068,
            Some(Duration::from_secs(600)),
            false,
        );
        let now = 1_000_000;
        assert!(checks.check_times(now + 600, None, Some(now), now).is_ok());
        let too_long = checks.check_times(now + 601, None, Some(now), now);
        assert_eq!(
            too_long.map_err(|e| e.kind()),
            Err(ErrorKind::LifetimeTooLong)
        );
        // An old `iat` with a far `exp`.
        assert!(
            checks
                .check_times(now + 300, None, Some(now - 400), now)
                .is_err()
        );
        // No `iat`: measured from now.
        assert!(checks.check_times(now + 601, None, None, now).is_err());
        assert!(checks.check_times(now + 599, None, None, now).is_ok());
    }

    /// The hit path's clock rule: for every instant, a cached token's window admits exactly
    /// when the whole-second rule the verification applied does, so a hit never admits a
    /// token at or past `exp + leeway` (nor before `nbf - leeway`), to the nanosecond.
    #[test]
    fn a_cached_token_s_window_is_the_whole_second_rule_at_every_instant() {
        let facts = |exp: i64, nbf: Option<i64>| Facts {
            issuer: "i".into(),
            client_id: None,
            subject: None,
            scopes: Granted::default(),
            jti: None,
            exp,
            nbf,
            iat: None,
            cnf: None,
            act: None,
            acr: None,
            auth_time: None,
        };
        let at = |secs: i64, nanos: u32| UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos);
        let base = 1_700_000_000;
        for leeway in [0, 1, 60] {
            let checks = Checks::new(
                "i".into(),
                Box::new([]),
                Duration::from_secs(leeway),
                Profile::Rfc9068,
                None,
                false,
            );
            for (exp, nbf) in [
                (base + 10, None),
                (base + 10, Some(base + 5)),
                (base + 10, Some(base + 10)),
                (base, Some(base + 20)),
            ] {
                let facts = facts(exp, nbf);
                let window = checks.window(&facts);
                for secs in base - 70..base + 80 {
                    for nanos in [0, 1, 500_000_000, 999_999_999] {
                        assert_eq!(
                            window.contains(at(secs, nanos)),
                            checks.still_valid(&facts, secs),
                            "leeway {leeway}, exp {exp}, nbf {nbf:?}, at {secs}.{nanos:09}"
                        );
                    }
                }
                // The last instant admitted, and the first refused.
                let end = exp + i64::try_from(leeway).expect("small");
                assert!(window.contains(at(end - 1, 999_999_999)) || nbf > Some(end - 1));
                assert!(!window.contains(at(end, 0)));
            }
        }
        // At and before the epoch, and past what the clock holds.
        let checks = Checks::new(
            "i".into(),
            Box::new([]),
            Duration::ZERO,
            Profile::Rfc9068,
            None,
            false,
        );
        assert!(!checks.window(&facts(0, None)).contains(SystemTime::now()));
        assert!(
            checks
                .window(&facts(i64::MAX, None))
                .contains(SystemTime::now())
        );
        assert!(
            !checks
                .window(&facts(i64::MAX, Some(i64::MAX)))
                .contains(SystemTime::now())
        );
        assert!(
            checks
                .window(&facts(i64::MAX, Some(-5)))
                .contains(SystemTime::now())
        );
    }
}
