//! What a JSON-RPC body asks for: the methods of its messages and the names in their
//! `params` (the tool of a `tools/call`). Parsed once, borrowing every string that needs no
//! unescaping; every other value is only scanned.
//!
//! The reading errs on the side of asking more, so that whatever the server makes of the
//! same bytes is among what was checked:
//!
//! - whether the body is JSON is decided by syntax alone (serde_json's raw values: no
//!   number range, no nesting limit): a body that is not JSON by that rule is not JSON to
//!   any server either;
//! - every occurrence of a repeated member counts (a server may keep the first or the last);
//! - positional `params` (an array) count each of their strings as a name;
//! - in a batch, every object is a message, whatever the other elements are;
//! - a string that must be read and cannot be (a lone surrogate escape) makes the body
//!   [`Unreadable`], never skipped.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One JSON-RPC message of a body (an object: a request, a notification, a response).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Call<'a> {
    /// Every string value of a `method` member: one, unless the object repeats the member.
    pub(super) methods: Vec<Cow<'a, str>>,
    /// Every string value of a `name` member of `params` (an object), or every string
    /// element of `params` (an array: positional parameters).
    pub(super) names: Vec<Cow<'a, str>>,
}

/// Why a body gave no calls.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotRead {
    /// Not JSON: no server can run anything from it.
    NotJson,
    /// JSON, with a member name, method or name this reading cannot decode.
    Unreadable,
}

/// The messages of `body`: one for an object, one per object of an array (a batch), none
/// for any other JSON value.
pub(super) fn calls(body: &[u8]) -> Result<Vec<Call<'_>>, NotRead> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| NotRead::NotJson)?;
    let text = raw.get().trim_start();
    let unreadable = |_| NotRead::Unreadable;
    match text.as_bytes().first() {
        Some(b'{') => Ok(vec![message(text).map_err(unreadable)?]),
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(unreadable)?;
            elements
                .into_iter()
                .filter(|e| e.get().starts_with('{'))
                .map(|e| message(e.get()).map_err(unreadable))
                .collect()
        }
        _ => Ok(Vec::new()),
    }
}

/// One object's methods and names.
fn message(object: &str) -> Result<Call<'_>, serde_json::Error> {
    serde_json::from_str::<Message<'_>>(object).map(|m| m.0)
}

struct Message<'a>(Call<'a>);

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut call = Call::default();
                while let Some(Str(key)) = map.next_key()? {
                    match &*key {
                        "method" => {
                            let raw = map.next_value::<&RawValue>()?;
                            call.methods.extend(text(raw).map_err(de::Error::custom)?);
                        }
                        "params" => {
                            let raw = map.next_value::<&RawValue>()?;
                            call.names.extend(names(raw).map_err(de::Error::custom)?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Message(call))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The names in `params`: its `name` members (an object), or its strings (an array).
fn names(params: &RawValue) -> Result<Vec<Cow<'_, str>>, serde_json::Error> {
    let text = params.get();
    match text.as_bytes().first() {
        Some(b'{') => serde_json::from_str::<Names<'_>>(text).map(|n| n.0),
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(text)?;
            let mut names = Vec::new();
            for element in elements {
                names.extend(self::text(element)?);
            }
            Ok(names)
        }
        _ => Ok(Vec::new()),
    }
}

struct Names<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Names<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Names<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON-RPC params")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(Str(key)) = map.next_key()? {
                    if key == "name" {
                        let raw = map.next_value::<&RawValue>()?;
                        names.extend(text(raw).map_err(de::Error::custom)?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Names(names))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The string `value` holds, unescaped; `None` for a value of another type.
fn text(value: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    let text = value.get();
    if text.starts_with('"') {
        serde_json::from_str::<Str<'_>>(text).map(|s| Some(s.0))
    } else {
        Ok(None)
    }
}

/// A string, borrowed when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(methods: &[&str], names: &[&str]) -> Call<'static> {
        Call {
            methods: methods
                .iter()
                .map(|m| Cow::Owned((*m).to_owned()))
                .collect(),
            names: names.iter().map(|n| Cow::Owned((*n).to_owned())).collect(),
        }
    }

    fn read(body: &str) -> Result<Vec<Call<'_>>, NotRead> {
        calls(body.as_bytes())
    }

    #[test]
    fn a_request_gives_its_method_and_tool() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"admin_stats","arguments":{"name":"not this one","x":[1,{"name":"nor this"}]}}}"#;
        assert_eq!(
            read(body),
            Ok(vec![call(&["tools/call"], &["admin_stats"])])
        );
        // Members in any order; a notification (no id) the same; whitespace around.
        let body =
            " \n{\"params\":{\"name\":\"echo\"},\"method\":\"tools/call\",\"jsonrpc\":\"2.0\"}\n";
        assert_eq!(read(body), Ok(vec![call(&["tools/call"], &["echo"])]));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped_and_compared_unescaped() {
        let body = r#"{"m\u0065thod":"tools\/call","params":{"n\u0061me":"admin\u005fstats"}}"#;
        assert_eq!(
            read(body),
            Ok(vec![call(&["tools/call"], &["admin_stats"])])
        );
        let calls = read(r#"{"method":"tools/list"}"#).expect("JSON");
        assert!(matches!(calls[0].methods[0], Cow::Borrowed("tools/list")));
    }

    #[test]
    fn repeated_members_and_positional_params_count_every_occurrence() {
        let body = r#"{"method":"tools/list","method":"tools/call",
            "params":{"name":"echo","name":"admin_stats"},"params":["whoami",7,{"name":"no"},"x"]}"#;
        assert_eq!(
            read(body),
            Ok(vec![call(
                &["tools/list", "tools/call"],
                &["echo", "admin_stats", "whoami", "x"]
            )])
        );
    }

    #[test]
    fn a_batch_gives_each_object_and_skips_anything_else() {
        let body = r#"[{"method":"a"}, 1e400, "b", null, [{"method":"nested"}],
            {"method":"c","params":{"name":"t"}}, {"result":{}}]"#;
        assert_eq!(
            read(body),
            Ok(vec![
                call(&["a"], &[]),
                call(&["c"], &["t"]),
                call(&[], &[])
            ])
        );
        assert_eq!(read("[]"), Ok(vec![]));
    }

    #[test]
    fn values_of_other_types_are_skipped_and_numbers_never_refused() {
        let body = r#"{"method":5,"params":"x","id":1e400}"#;
        assert_eq!(read(body), Ok(vec![call(&[], &[])]));
        let body = r#"{"method":{"m":"tools/call"},"params":{"name":{"n":"admin_stats"}}}"#;
        assert_eq!(read(body), Ok(vec![call(&[], &[])]));
        // A number out of f64's range beside the method: still read.
        let body = r#"{"method":"tools/call","params":{"name":"admin_stats","x":-1e999}}"#;
        assert_eq!(
            read(body),
            Ok(vec![call(&["tools/call"], &["admin_stats"])])
        );
        for scalar in ["1", "\"tools/call\"", "null", "true", "1e400"] {
            assert_eq!(read(scalar), Ok(vec![]), "{scalar}");
        }
    }

    #[test]
    fn what_is_not_json_is_told_apart_from_what_cannot_be_read() {
        for body in [
            "",
            "{",
            "{\"method\":\"a\"",
            "{\"method\":\"a\"} {}",
            "[{\"method\":\"a\"},]",
            "\u{feff}{}",
            "{'method':'a'}",
        ] {
            assert_eq!(read(body), Err(NotRead::NotJson), "{body:?}");
        }
        assert_eq!(calls(b"{\"method\":\"\xff\"}"), Err(NotRead::NotJson));
        // JSON by syntax, with a lone surrogate where a method, a name or a member name is.
        for body in [
            r#"{"method":"tools/call\ud800"}"#,
            r#"{"method":"tools/call","params":{"name":"\udc00"}}"#,
            r#"{"method":"tools/call","params":["\ud800"]}"#,
            r#"[{"\ud800":1,"method":"tools/call"}]"#,
        ] {
            assert_eq!(read(body), Err(NotRead::Unreadable), "{body}");
        }
        // Deeper than serde_json's nesting limit, where nothing is read: only scanned.
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(read(&deep).is_ok());
    }
}
