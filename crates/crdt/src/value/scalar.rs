//! Scalar leaves: the values inside registers, sets and map keys.

use std::fmt;

/// A scalar leaf of a [`Value`](crate::Value): bytes, a string, or an integer.
///
/// Scalars of different types are ordered by type (bytes < string < int < uint), then by value,
/// so that sets of scalars have one canonical order.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scalar {
    /// Raw bytes (hex in JSON).
    Bytes(#[serde(with = "hex_bytes")] Vec<u8>),
    /// A UTF-8 string.
    String(String),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    #[serde(rename = "uint")]
    UInt(u64),
}

impl Scalar {
    /// Returns the tag of the scalar's type in the encoding (0 to 3).
    pub const fn tag(&self) -> u8 {
        match self {
            Scalar::Bytes(_) => 0,
            Scalar::String(_) => 1,
            Scalar::Int(_) => 2,
            Scalar::UInt(_) => 3,
        }
    }

    /// Returns the name of the scalar's type, as in JSON.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Scalar::Bytes(_) => "bytes",
            Scalar::String(_) => "string",
            Scalar::Int(_) => "int",
            Scalar::UInt(_) => "uint",
        }
    }

    /// Returns the string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bytes(b) => write!(f, "Bytes({})", hex_bytes::to_hex(b)),
            Scalar::String(s) => write!(f, "{s:?}"),
            Scalar::Int(i) => write!(f, "{i}i"),
            Scalar::UInt(u) => write!(f, "{u}u"),
        }
    }
}

impl fmt::Display for Scalar {
    /// Formats the scalar plainly: strings unquoted, integers in decimal, bytes in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bytes(b) => f.write_str(&hex_bytes::to_hex(b)),
            Scalar::String(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::UInt(u) => write!(f, "{u}"),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::String(s.to_owned())
    }
}

/// Bytes as lowercase hex in JSON.
mod hex_bytes {
    use serde::de::Error as _;

    pub(super) fn to_hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for &b in bytes {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        out
    }

    fn from_hex(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        text.as_bytes()
            .chunks_exact(2)
            .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect()
    }

    pub(super) fn serialize<S: serde::Serializer>(
        bytes: &[u8],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&to_hex(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        from_hex(&text).ok_or_else(|| D::Error::custom("bytes are an even number of hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_order_by_type_then_value() {
        let mut v = [
            Scalar::UInt(0),
            Scalar::Int(-5),
            Scalar::from("a"),
            Scalar::Bytes(vec![9]),
        ];
        v.sort();
        assert_eq!(v.iter().map(Scalar::tag).collect::<Vec<_>>(), [0, 1, 2, 3]);
    }

    #[test]
    fn json_form_is_tagged() {
        let json = serde_json::to_string(&vec![
            Scalar::Bytes(vec![0xab, 1]),
            Scalar::UInt(7),
            Scalar::Int(-1),
        ])
        .unwrap();
        assert_eq!(json, r#"[{"bytes":"ab01"},{"uint":7},{"int":-1}]"#);
        let back: Vec<Scalar> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0], Scalar::Bytes(vec![0xab, 1]));
        assert!(serde_json::from_str::<Scalar>(r#"{"bytes":"abc"}"#).is_err());
        assert!(serde_json::from_str::<Scalar>(r#"{"bytes":"zz"}"#).is_err());
    }
}
