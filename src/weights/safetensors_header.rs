//! The safetensors JSON header, read in one pass into exactly what the format allows: tensor
//! entries of `dtype`, `shape` and `data_offsets`, and `__metadata__` of string values. No
//! generic JSON tree is built, so a crafted header costs memory in proportion to the numbers it
//! holds (a 64 MiB `shape` of zeros is a vector of u64, not 32 million boxed values), and
//! duplicate keys and unknown fields stop the read where they appear.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One tensor entry as written; `None` where a field is missing or has the wrong JSON type.
pub(super) struct RawTensor {
    pub name: String,
    pub dtype: Option<String>,
    pub shape: Option<Vec<u64>>,
    pub offsets: Option<(u64, u64)>,
}

/// The whole header, in file order.
pub(super) struct Header {
    pub tensors: Vec<RawTensor>,
    pub metadata: Vec<(String, String)>,
}

/// A JSON value kept only when it is a string or an unsigned integer; anything else is skipped
/// without being built.
enum Scalar {
    Str(String),
    U64(u64),
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A list of unsigned integers: `Some` only when it is a list and every element is one.
struct Uints(Option<Vec<u64>>);

impl<'de> serde::Deserialize<'de> for Uints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Uints;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of non-negative integers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Uints, A::Error> {
                let mut out = Some(Vec::new());
                while let Some(x) = seq.next_element::<Scalar>()? {
                    match (&mut out, x) {
                        (Some(v), Scalar::U64(n)) => v.push(n),
                        _ => out = None,
                    }
                }
                Ok(Uints(out))
            }
        }
        // Anything but a list is "not a list": skipped, reported by the caller.
        match d.deserialize_any(OrSkip(V)) {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Ok(Uints(None)),
            Err(e) => Err(e),
        }
    }
}

/// Runs the inner visitor on lists and skips every other JSON type (`None`).
struct OrSkip<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for OrSkip<V> {
    type Value = Option<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(seq).map(Some)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ScalarVisitor.visit_map(map).map(|_| None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// One tensor entry, for the tensor `name`.
struct TensorSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = RawTensor;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawTensor, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorSeed<'_> {
    type Value = RawTensor;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object for tensor '{}'", self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTensor, A::Error> {
        let name = self.0;
        let mut t = RawTensor { name: name.to_string(), dtype: None, shape: None, offsets: None };
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "dtype" => {
                    t.dtype = match map.next_value::<Scalar>()? {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    }
                }
                "shape" => {
                    t.shape = Some(map.next_value::<Uints>()?.0.ok_or_else(|| {
                        de::Error::custom(format!("'{name}': shape is not a list of non-negative integers"))
                    })?)
                }
                "data_offsets" => {
                    t.offsets = match map.next_value::<Uints>()?.0.as_deref() {
                        Some(&[b, e]) => Some((b, e)),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "'{name}': data_offsets must be [begin, end]"
                            )))
                        }
                    }
                }
                other => return Err(de::Error::custom(format!("'{name}': unknown field '{other}'"))),
            }
        }
        Ok(t)
    }
}

/// `__metadata__`: string keys to string values.
struct MetaSeed;

impl<'de> DeserializeSeed<'de> for MetaSeed {
    type Value = Vec<(String, String)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetaSeed {
    type Value = Vec<(String, String)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings for __metadata__")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
            match v {
                Scalar::Str(v) => out.push((k, v)),
                _ => return Err(de::Error::custom(format!("__metadata__ value for '{k}' is not a string"))),
            }
        }
        Ok(out)
    }
}

impl<'de> serde::Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut seen = HashSet::new();
                let mut h = Header { tensors: Vec::new(), metadata: Vec::new() };
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(de::Error::custom(format!("duplicate key '{name}'")));
                    }
                    if name == "__metadata__" {
                        h.metadata = map.next_value_seed(MetaSeed)?;
                        continue;
                    }
                    if name.is_empty() {
                        return Err(de::Error::custom("empty tensor name"));
                    }
                    if name.contains('\0') {
                        return Err(de::Error::custom(format!("tensor name {name:?} contains NUL")));
                    }
                    h.tensors.push(map.next_value_seed(TensorSeed(&name))?);
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}
