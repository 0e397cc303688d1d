//! Strict JSON reading for JOSE headers, claims and key sets.
//!
//! `serde_json` resolves duplicate object members by keeping the last one, and a derived
//! `Deserialize` only notices duplicates of the fields it names. A JWT whose payload says
//! `"aud":"a"` and then `"aud":"b"` means different things to different parsers, so this
//! module rejects duplicate member names at every depth, and reads the members we validate
//! into a small value type so that a wrongly typed claim (a string `exp`) is reported as such
//! instead of being skipped.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Message prefix of the serde error raised for a duplicate member; see [`is_duplicate`].
const DUPLICATE_MEMBER: &str = "duplicate member name";

/// Whether a `serde_json` error was raised because of a duplicate member name.
pub(crate) fn is_duplicate(err: &serde_json::Error) -> bool {
    err.is_data() && err.to_string().starts_with(DUPLICATE_MEMBER)
}

/// A JSON value with the shape we need to validate, borrowed from the input where possible.
///
/// Objects are checked (duplicates, nesting) but not kept: no claim we validate is an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool,
    /// An integer that fits in `i64`.
    Int(i64),
    /// Any other number (fractional, or an integer outside `i64`).
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object,
    /// A member's JSON text, from [`read_object_raw`].
    Raw(&'a str),
}

impl<'a> Value<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value<'de>>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        visit_object(map, |_, map| map.next_value::<Value<'de>>().map(drop))?;
        Ok(Value::Object)
    }
}

/// An object member name, borrowed when the input has no escapes in it.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// Walks an object's members, failing on a repeated name, and hands each name to `member`,
/// which must consume the value.
pub(crate) fn visit_object<'de, A, F>(mut map: A, mut member: F) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(Cow<'de, str>, &mut A) -> Result<(), A::Error>,
{
    // JOSE objects are small: a linear search, without allocating a hash table, until an
    // object grows past `LINEAR` members (a hostile key set, say), then a hash set.
    const LINEAR: usize = 16;
    let mut seen: Vec<Cow<'de, str>> = Vec::new();
    let mut many: Option<std::collections::HashSet<Cow<'de, str>>> = None;
    while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
        let repeated = match &mut many {
            Some(set) => !set.insert(name.clone()),
            None if seen.len() < LINEAR => {
                let repeated = seen.contains(&name);
                seen.push(name.clone());
                repeated
            }
            None => {
                let mut set: std::collections::HashSet<_> = seen.drain(..).collect();
                let repeated = !set.insert(name.clone());
                many = Some(set);
                repeated
            }
        };
        if repeated {
            return Err(de::Error::custom(DUPLICATE_MEMBER));
        }
        member(name, &mut map)?;
    }
    Ok(())
}

/// Reads a top-level JSON object, keeping the members named in `wanted` and checking the rest.
///
/// Fails when the input is not an object, is not valid JSON, or repeats a member name at any
/// depth. The returned slots line up with `wanted`.
pub(crate) fn read_object<'de, const N: usize>(
    input: &'de [u8],
    wanted: [&str; N],
) -> Result<[Option<Value<'de>>; N], serde_json::Error> {
    read_object_raw(input, wanted, [false; N])
}

/// As [`read_object`], but the members whose `raw` flag is set come back as
/// [`Value::Raw`]: their JSON text (a number's exact digits, an object's members), checked
/// as strictly as the rest.
pub(crate) fn read_object_raw<'de, const N: usize>(
    input: &'de [u8],
    wanted: [&str; N],
    raw: [bool; N],
) -> Result<[Option<Value<'de>>; N], serde_json::Error> {
    struct Seed<'w, const N: usize>(&'w [&'w str; N], [bool; N]);

    impl<'de, const N: usize> DeserializeSeed<'de> for Seed<'_, N> {
        type Value = [Option<Value<'de>>; N];
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for Seed<'_, N> {
        type Value = [Option<Value<'de>>; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let mut slots: [Option<Value<'de>>; N] = std::array::from_fn(|_| None);
            visit_object(map, |name, map| {
                match self.0.iter().position(|w| *w == name) {
                    Some(i) if self.1[i] => {
                        let text: &'de serde_json::value::RawValue = map.next_value()?;
                        // As strict as the rest: no duplicates inside, the same depth limit.
                        check_strict(text.get().as_bytes()).map_err(de::Error::custom)?;
                        slots[i] = Some(Value::Raw(text.get()));
                    }
                    Some(i) => slots[i] = Some(map.next_value::<Value<'de>>()?),
                    None => map.next_value::<Value<'de>>().map(drop)?,
                }
                Ok(())
            })?;
            Ok(slots)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(input);
    let slots = Seed(&wanted, raw).deserialize(&mut de)?;
    de.end()?;
    Ok(slots)
}

/// Checks that `input` is one JSON value with no duplicate member names anywhere.
pub(crate) fn check_strict(input: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(input);
    Value::deserialize(&mut de)?;
    de.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_wanted_members_and_borrows_plain_strings() {
        let [a, b, c] = read_object(
            br#"{"a":"x","b":[1,2.5,"y"],"z":{"n":null}}"#,
            ["a", "b", "c"],
        )
        .expect("valid");
        assert!(matches!(a, Some(Value::Str(Cow::Borrowed("x")))));
        assert_eq!(
            b,
            Some(Value::Array(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Str("y".into())
            ]))
        );
        assert_eq!(c, None);
    }

    #[test]
    fn rejects_duplicate_members_at_any_depth() {
        for input in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"a":1,"b":{"c":1,"c":1}}"#,
            br#"{"a":[{"x":1,"x":1}]}"#,
            br#"{"a":1,"\u0061":2}"#,
        ] {
            let err = read_object(input, ["a"]).expect_err("duplicate must fail");
            assert!(is_duplicate(&err), "{err}");
            assert!(is_duplicate(&check_strict(input).expect_err("strict")));
        }
    }

    #[test]
    fn large_objects_are_checked_completely() {
        let members: Vec<String> = (0..20_000).map(|i| format!("\"m{i}\":{i}")).collect();
        let doc = format!("{{{}}}", members.join(","));
        check_strict(doc.as_bytes()).expect("distinct members");
        for dup in ["m3", "m19999"] {
            let doc = format!("{{{},\"{dup}\":0}}", members.join(","));
            assert!(is_duplicate(&check_strict(doc.as_bytes()).expect_err(dup)));
        }
    }

    #[test]
    fn rejects_non_objects_trailing_data_and_bad_json() {
        for input in [&b"[1]"[..], b"\"a\"", b"{} {}", b"{", b"", b"{\"a\":01}"] {
            let err = read_object(input, ["a"]).expect_err("must fail");
            assert!(!is_duplicate(&err));
        }
    }

    #[test]
    fn raw_members_keep_their_text() {
        let [a, b] = read_object_raw(
            br#"{"a": 1.5e3 , "b":{"x":[1]},"c":1}"#,
            ["a", "b"],
            [true, true],
        )
        .expect("valid");
        assert_eq!(a, Some(Value::Raw("1.5e3")));
        assert_eq!(b, Some(Value::Raw(r#"{"x":[1]}"#)));
        let err = read_object_raw(br#"{"a":1,"a":2}"#, ["a"], [true]).expect_err("dup");
        assert!(is_duplicate(&err));
        let err = read_object_raw(br#"{"a":{"b":1,"b":2}}"#, ["a"], [true]).expect_err("inner");
        assert!(is_duplicate(&err), "{err}");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let err = read_object_raw(deep.as_bytes(), ["a"], [true]).expect_err("deep");
        assert!(!is_duplicate(&err));
    }

    #[test]
    fn large_integers_become_floats_not_wrapped() {
        let [a] = read_object(br#"{"a":18446744073709551615}"#, ["a"]).expect("valid");
        assert!(matches!(a, Some(Value::Float(f)) if f > 1e19));
    }
}
