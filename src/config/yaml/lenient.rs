//! Reading `metadata.name` from whatever `metadata` is, as `Value::get` would.

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// `metadata.name` if it is a string, from whatever `metadata` is (as
/// `Value::get("name").and_then(Value::as_str)` reads it).
pub(crate) struct NameOnly(pub Option<String>);

impl<'de> Deserialize<'de> for NameOnly {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<NameOnly, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NameOnly;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<NameOnly, A::Error> {
                let mut name = None;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "name" {
                        name = m.next_value::<MaybeStr>()?.0;
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(NameOnly(name))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<NameOnly, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NameOnly(None))
            }
            fn visit_unit<E>(self) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<NameOnly, E> {
                Ok(NameOnly(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string, or `None` for any other node.
struct MaybeStr(Option<String>);

impl<'de> Deserialize<'de> for MaybeStr {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<MaybeStr, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_str<E>(self, s: &str) -> Result<MaybeStr, E> {
                Ok(MaybeStr(Some(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<MaybeStr, E> {
                Ok(MaybeStr(Some(s)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<MaybeStr, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<MaybeStr, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}
