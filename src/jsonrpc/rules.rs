//! The rules: the scopes each method, and each tool of `tools/call`, needs; and the check
//! of a body's calls against a token's scopes.

use std::collections::HashMap;

use super::message::Call;
use crate::scope::RequiredScopes;
use crate::verified::VerifiedToken;

/// The method whose `params.name` is a tool (MCP).
pub(super) const TOOLS_CALL: &str = "tools/call";

/// The scopes per method and per tool.
#[derive(Clone, Debug, Default)]
pub(super) struct Rules {
    pub(super) methods: HashMap<Box<str>, RequiredScopes>,
    pub(super) tools: HashMap<Box<str>, RequiredScopes>,
}

/// Why a body is refused: the first operation refused, and what the refused calls need.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused<'r> {
    /// The method of the first refused call.
    pub(super) method: &'r str,
    /// Its tool, when the tool's scopes are among those it lacks.
    pub(super) tool: Option<&'r str>,
    /// The scopes of every refused call (all of each call's requirements, satisfied or
    /// not), each once, in the order met.
    pub(super) scopes: Vec<&'r str>,
}

/// One requirement a call meets: the method or tool it belongs to, and its scopes.
struct Requirement<'r> {
    method: &'r str,
    tool: Option<&'r str>,
    scopes: &'r RequiredScopes,
}

impl Rules {
    /// Whether any operation needs a scope.
    pub(super) fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.tools.is_empty()
    }

    /// Every scope of every rule, for RFC 9728 `scopes_supported`.
    pub(super) fn scopes(&self) -> impl Iterator<Item = &str> {
        self.methods
            .values()
            .chain(self.tools.values())
            .flat_map(RequiredScopes::iter)
    }

    /// Checks every call against the scopes `token` grants (`None`: no token, and every call
    /// that needs a scope is refused).
    ///
    /// # Errors
    /// [`Refused`] when a call needs a scope the token lacks.
    pub(super) fn check<'r>(
        &'r self,
        calls: &[Call<'_>],
        token: Option<&VerifiedToken>,
    ) -> Result<(), Refused<'r>> {
        let mut refused: Option<Refused<'r>> = None;
        let mut needs = Vec::new();
        for call in calls {
            needs.clear();
            self.requirements(call, &mut needs);
            let lacking = needs
                .iter()
                .find(|need| token.is_none_or(|token| need.scopes.check(token.scopes()).is_err()));
            let Some(lacking) = lacking else { continue };
            let refused = refused.get_or_insert_with(|| Refused {
                method: lacking.method,
                tool: lacking.tool,
                scopes: Vec::new(),
            });
            for scope in needs.iter().flat_map(|need| need.scopes.iter()) {
                if !refused.scopes.contains(&scope) {
                    refused.scopes.push(scope);
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// What `call` needs: each of its methods' scopes, and for `tools/call` each named
    /// tool's.
    fn requirements<'r>(&'r self, call: &Call<'_>, out: &mut Vec<Requirement<'r>>) {
        for method in &call.methods {
            if let Some((method, scopes)) = self.methods.get_key_value(&**method) {
                out.push(Requirement {
                    method,
                    tool: None,
                    scopes,
                });
            }
        }
        if call.methods.iter().any(|m| m == TOOLS_CALL) {
            for name in &call.names {
                if let Some((tool, scopes)) = self.tools.get_key_value(&**name) {
                    out.push(Requirement {
                        method: TOOLS_CALL,
                        tool: Some(&**tool),
                        scopes,
                    });
                }
            }
        }
    }
}
