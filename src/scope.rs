//! Scopes: what a route requires ([`RequiredScopes`]) and what a token grants.
//!
//! Granted scopes are the union of the RFC 6749 / RFC 9068 `scope` claim (a space-delimited
//! string) and the `scp` claim many issuers use instead (an array of strings, or a
//! space-delimited string).

use std::fmt;

use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// The scopes a route requires: all of a list, any of a list, or none at all
/// ("authenticated only").
///
/// Each scope must be a valid RFC 6749 §3.3 `scope-token` (printable ASCII without space,
/// `"` or `\`), and a list must not be empty: such a requirement is refused when it is
/// built, never turned into a route that refuses every request or none.
///
/// ```
/// use bearer_guard::{ConfigError, RequiredScopes};
/// let reports = RequiredScopes::any(["reports:read", "admin"])?;
/// assert_eq!(reports.iter().count(), 2);
/// assert!(RequiredScopes::all(["two words"]).is_err());
/// assert_eq!(RequiredScopes::any(Vec::<String>::new()), Err(ConfigError::EmptyScopes));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RequiredScopes {
    mode: Mode,
    scopes: Box<[Box<str>]>,
}

/// The scope a client asks for to get a refresh token (OpenID Connect, OAuth 2.1): never a
/// route's requirement, never named in a challenge or in RFC 9728 `scopes_supported`.
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

impl RequiredScopes {
    /// Every one of `scopes` must be granted.
    ///
    /// # Errors
    /// [`ConfigError::EmptyScopes`] for an empty list, [`ConfigError::InvalidScope`] for a
    /// scope that is not a `scope-token`, [`ConfigError::OfflineAccessRequired`] for
    /// `offline_access` (a request for a refresh token, not a permission a route can need).
    pub fn all<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Mode::All, scopes)
    }

    /// At least one of `scopes` must be granted.
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub fn any<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Mode::Any, scopes)
    }

    /// No scope is required: any valid token passes.
    #[must_use]
    pub fn none() -> Self {
        RequiredScopes {
            mode: Mode::All,
            scopes: Box::new([]),
        }
    }

    fn new<I, S>(mode: Mode, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Box<[Box<str>]> = scopes
            .into_iter()
            .map(|s| s.into().into_boxed_str())
            .collect();
        if scopes.is_empty() {
            return Err(ConfigError::EmptyScopes);
        }
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError::InvalidScope(bad.to_string()));
        }
        if scopes.iter().any(|s| **s == *OFFLINE_ACCESS) {
            return Err(ConfigError::OfflineAccessRequired);
        }
        Ok(RequiredScopes { mode, scopes })
    }

    /// Whether nothing beyond a valid token is required.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The required scopes.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }

    /// Checks a token's granted scopes against this requirement.
    ///
    /// # Errors
    /// [`ErrorKind::InsufficientScope`] when the requirement is not met.
    pub fn check<'a>(
        &self,
        granted: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), AuthError> {
        self.met(|want| granted.clone().into_iter().any(|g| same_word(g, want)))
    }

    /// [`check`](Self::check) on a token's granted scopes as the validator keeps them.
    #[inline(always)]
    pub(crate) fn check_granted(&self, granted: &Granted) -> Result<(), AuthError> {
        self.met(|want| granted.0.iter().any(|g| same_word(g, want)))
    }

    #[inline(always)]
    fn met(&self, has: impl Fn(&str) -> bool) -> Result<(), AuthError> {
        let ok = self.scopes.is_empty()
            || match self.mode {
                Mode::All => self.scopes.iter().all(|s| has(s)),
                Mode::Any => self.scopes.iter().any(|s| has(s)),
            };
        if ok {
            Ok(())
        } else {
            Err(ErrorKind::InsufficientScope.into())
        }
    }
}

/// `a == b`, for scope words: most are a few bytes, which two overlapping word loads from
/// each end compare without a call to `memcmp`.
#[inline(always)]
fn same_word(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // Bytes 0, n/2 and n-1 are all the bytes there are.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=8 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        9..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        _ => a == b,
    }
}

impl fmt::Debug for RequiredScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.mode {
            Mode::All => "all",
            Mode::Any => "any",
        };
        f.debug_tuple(name).field(&self.scopes).finish()
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// The scopes a token grants, read from `scope` and `scp`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Granted(Box<[Box<str>]>);

impl Granted {
    pub(crate) fn from_claims(
        scope: Option<&Value<'_>>,
        scp: Option<&Value<'_>>,
    ) -> Result<Granted, AuthError> {
        let mut out: Vec<Box<str>> = Vec::new();
        let mut push_words =
            |s: &str| out.extend(s.split(' ').filter(|w| !w.is_empty()).map(Into::into));
        match scope {
            None => {}
            Some(Value::Str(s)) => push_words(s),
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "scope")),
        }
        match scp {
            None => {}
            Some(Value::Str(s)) => push_words(s),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Str(s) => push_words(s),
                        _ => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "scp")),
                    }
                }
            }
            Some(_) => return Err(AuthError::claim(ErrorKind::InvalidClaimType, "scp")),
        }
        Ok(Granted(out.into_boxed_slice()))
    }

    /// Bytes held, for the token cache's memory bound.
    pub(crate) fn size(&self) -> u64 {
        self.0.iter().map(|s| s.len() as u64 + 16).sum::<u64>() + 16
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.iter().map(|s| &**s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(scope: &str) -> Granted {
        Granted::from_claims(Some(&Value::Str(scope.into())), None).expect("scope")
    }

    fn all<const N: usize>(scopes: [&str; N]) -> RequiredScopes {
        RequiredScopes::all(scopes).expect("valid")
    }

    fn any<const N: usize>(scopes: [&str; N]) -> RequiredScopes {
        RequiredScopes::any(scopes).expect("valid")
    }

    /// Every length class of the word comparison, against `==`: equal words, and words that
    /// differ in any one byte.
    #[test]
    fn same_word_is_equality() {
        for n in 0..40 {
            let word: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_word(&word, &word.clone()));
            for at in 0..n {
                let mut other = word.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).expect("ASCII");
                assert!(!same_word(&word, &other), "{word} vs {other}");
            }
            assert!(!same_word(&word, &format!("{word}x")));
        }
    }

    #[test]
    fn all_any_and_none() {
        let g = granted("read  write");
        assert!(all(["read", "write"]).check(g.iter()).is_ok());
        assert!(all(["read", "admin"]).check(g.iter()).is_err());
        assert!(any(["admin", "write"]).check(g.iter()).is_ok());
        assert!(any(["admin"]).check(g.iter()).is_err());
        assert!(RequiredScopes::none().check(granted("").iter()).is_ok());
        assert!(RequiredScopes::none().check(g.iter()).is_ok());
    }

    #[test]
    fn scope_prefixes_do_not_match() {
        let g = granted("read:transactions");
        assert!(all(["read"]).check(g.iter()).is_err());
        assert!(all(["read:transaction"]).check(g.iter()).is_err());
    }

    #[test]
    fn offline_access_is_never_a_requirement() {
        for scopes in [&["offline_access"][..], &["read", "offline_access"]] {
            assert_eq!(
                RequiredScopes::all(scopes.iter().copied()),
                Err(ConfigError::OfflineAccessRequired)
            );
            assert_eq!(
                RequiredScopes::any(scopes.iter().copied()),
                Err(ConfigError::OfflineAccessRequired)
            );
        }
        // Through the layer's constructors too: no route can be built that needs it.
        let v = crate::testkit::validator();
        assert_eq!(
            crate::RequireScope::any(&v, ["mcp:tools", "offline_access"]).map(|_| ()),
            Err(ConfigError::OfflineAccessRequired)
        );
        // A scope that merely contains the words is an ordinary scope.
        assert!(RequiredScopes::all(["offline_access:read"]).is_ok());
    }

    #[test]
    fn invalid_or_empty_requirements_are_refused_when_built() {
        assert_eq!(
            RequiredScopes::all(["a\"b"]),
            Err(ConfigError::InvalidScope("a\"b".into()))
        );
        assert_eq!(
            RequiredScopes::any(["ok", ""]),
            Err(ConfigError::InvalidScope(String::new()))
        );
        assert_eq!(
            RequiredScopes::all(["two words"]),
            Err(ConfigError::InvalidScope("two words".into()))
        );
        assert_eq!(
            RequiredScopes::any(Vec::<String>::new()),
            Err(ConfigError::EmptyScopes)
        );
        assert_eq!(
            RequiredScopes::all(Vec::<String>::new()),
            Err(ConfigError::EmptyScopes)
        );
    }

    #[test]
    fn scp_array_or_string_is_merged_with_scope() {
        let scp = Value::Array(vec![Value::Str("b".into()), Value::Str("c d".into())]);
        let g = Granted::from_claims(Some(&Value::Str("a".into())), Some(&scp)).expect("ok");
        assert_eq!(g.iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let err = Granted::from_claims(Some(&Value::Int(1)), None).expect_err("int scope");
        assert_eq!(err.claim_name(), Some("scope"));
        let bad = Value::Array(vec![Value::Int(1)]);
        assert!(Granted::from_claims(None, Some(&bad)).is_err());
    }
}
