//! Lenient readers for JSON written by PowerShell's `ConvertTo-Json`.
//!
//! The same cmdlet output takes several shapes: a list of one is often
//! written as the object itself, an empty list as `null`; enumerations are
//! numbers in Windows PowerShell and with a plain `ConvertTo-Json`, names
//! with `-EnumsAsStrings` or after remoting; 64-bit numbers sometimes come
//! as strings. These helpers accept every shape and leave the meaning to
//! the caller.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

/// An enumeration value as PowerShell wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumValue {
    /// The numeric value.
    Number(i64),
    /// The name.
    Name(String),
}

impl EnumValue {
    /// Whether this is `number` or `name` (names compare ignoring case).
    pub fn is(&self, number: i64, name: &str) -> bool {
        match self {
            EnumValue::Number(n) => *n == number,
            EnumValue::Name(s) => s.trim().eq_ignore_ascii_case(name),
        }
    }

    /// Reads a number, a numeric string, a name, or an object carrying
    /// `value`/`Value` (how some serialisers write enumerations).
    pub fn from_value(v: &Value) -> Option<EnumValue> {
        match v {
            Value::Number(n) => n.as_i64().map(EnumValue::Number),
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    None
                } else if let Ok(n) = t.parse::<i64>() {
                    Some(EnumValue::Number(n))
                } else {
                    Some(EnumValue::Name(t.to_string()))
                }
            }
            Value::Object(m) => m
                .get("value")
                .or_else(|| m.get("Value"))
                .and_then(EnumValue::from_value),
            _ => None,
        }
    }
}

/// `serde(deserialize_with)`: an optional enumeration value.
pub fn enum_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EnumValue>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(EnumValue::from_value(&v))
}

/// `serde(deserialize_with)`: `null`, one object, or a list of them.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    let items = match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        // Windows PowerShell 5.1 writes an array wrapped in a PSObject as
        // `{"value": [...], "Count": n}` (the Count of types.ps1xml).
        Value::Object(mut m)
            if m.len() == 2
                && m.contains_key("Count")
                && m.get("value").is_some_and(Value::is_array) =>
        {
            match m.remove("value") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        other => vec![other],
    };
    items
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
        .collect()
}

/// `serde(deserialize_with)`: an optional whole number, written as a number
/// or as a numeric string; negative values and fractions are refused.
pub fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a whole number, got {n}"
            ))),
        },
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            s.trim().parse::<u64>().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("expected a whole number, got `{s}`"))
            })
        }
        other => Err(serde::de::Error::custom(format!(
            "expected a whole number, got {other}"
        ))),
    }
}

/// `serde(deserialize_with)`: an optional text; numbers and booleans are
/// written out, empty text is `None`, a GUID object gives its value.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(text_of(&v))
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(m) => m
            .get("Guid")
            .or_else(|| m.get("value"))
            .or_else(|| m.get("Value"))
            .and_then(text_of),
        Value::Array(_) => None,
    }
}

/// `serde(deserialize_with)`: an optional boolean, also from `"True"`,
/// `"false"`, `1` and `0`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// Bytes to MiB, rounding down.
pub fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// Bytes to MiB, rounding up (space to reserve).
pub fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "one_or_many")]
        list: Vec<u32>,
        #[serde(default, deserialize_with = "uint")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "enum_value")]
        e: Option<EnumValue>,
    }

    #[test]
    fn shapes() {
        let t: T = serde_json::from_str(r#"{"list":3,"n":"42","e":"Running"}"#).unwrap();
        assert_eq!(t.list, vec![3]);
        assert_eq!(t.n, Some(42));
        assert!(t.e.unwrap().is(2, "running"));
        let t: T = serde_json::from_str(r#"{"list":null,"n":null,"e":2}"#).unwrap();
        assert!(t.list.is_empty());
        assert_eq!(t.n, None);
        assert!(t.e.unwrap().is(2, "Running"));
        let t: T = serde_json::from_str(r#"{"list":[1,null,2]}"#).unwrap();
        assert_eq!(t.list, vec![1, 2]);
        let t: T = serde_json::from_str(r#"{"list":{"value":[4,5],"Count":2}}"#).unwrap();
        assert_eq!(
            t.list,
            vec![4, 5],
            "an array wrapped by Windows PowerShell 5.1"
        );
        assert!(serde_json::from_str::<T>(r#"{"n":-1}"#).is_err());
    }
}
