//! Request-body validation with the real server's 422 shapes (FastAPI/Pydantic v2, contract §2.1).
//!
//! Bodies are parsed field by field from raw JSON, so a payload keeps its exact text (key order, number spelling)
//! and every problem gets the `type`/`loc`/`msg`/`input` the reference reports.

use super::wire::ApiError;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The topic-name rule (§1.3): 1..255 characters; with `-` and `_` removed, what remains is non-empty and
/// alphanumeric (Python's `str.isalnum`, Unicode letters and digits included).
pub fn topic_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("Topic name must not be empty");
    }
    if name.chars().count() > 255 {
        return Some("Topic name must be at most 255 characters");
    }
    let mut rest = name.chars().filter(|c| *c != '-' && *c != '_').peekable();
    if rest.peek().is_none() || !rest.all(char::is_alphanumeric) {
        return Some("Topic must contain only alphanumeric characters, hyphens, and underscores");
    }
    None
}

pub fn is_valid_topic(name: &str) -> bool {
    topic_name_error(name).is_none()
}

// ---------------------------------------------------------------- error items

pub fn err(kind: &str, loc: &[Value], msg: &str, input: Value) -> Value {
    json!({ "type": kind, "loc": loc, "msg": msg, "input": input })
}

pub fn err_ctx(kind: &str, loc: &[Value], msg: &str, input: Value, ctx: Value) -> Value {
    json!({ "type": kind, "loc": loc, "msg": msg, "input": input, "ctx": ctx })
}

pub fn missing(loc: &[Value], whole: &Value) -> Value {
    err("missing", loc, "Field required", whole.clone())
}

fn value_of(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// A parsed JSON object body: its fields as raw JSON (last occurrence wins, as in Python).
pub struct Body<'a> {
    fields: HashMap<String, &'a RawValue>,
    text: &'a str,
}

impl<'a> Body<'a> {
    /// Parses an object body. Empty → `missing ["body"]`; malformed → `json_invalid`; not an object →
    /// `model_attributes_type` (the shapes FastAPI gives).
    pub fn parse(bytes: &'a [u8]) -> Result<Body<'a>, ApiError> {
        let text = std::str::from_utf8(bytes).map_err(|_| json_invalid(bytes, 0, "invalid UTF-8"))?;
        if text.trim().is_empty() {
            return Err(ApiError::one(err("missing", &[json!("body")], "Field required", Value::Null)));
        }
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| json_error(text, &e))?;
        if !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::one(err(
                "model_attributes_type",
                &[json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
                value_of(raw),
            )));
        }
        let pairs: Vec<(String, &RawValue)> =
            serde_json::from_str::<ObjectPairs<'a>>(raw.get()).map_err(|e| json_error(text, &e))?.0;
        Ok(Body { fields: pairs.into_iter().collect(), text })
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.get(key).copied()
    }

    /// The whole body as a value (the `input` of a `missing` error).
    pub fn whole(&self) -> Value {
        serde_json::from_str(self.text).unwrap_or(Value::Null)
    }
}

/// The (key, raw value) pairs of a JSON object in order, duplicates kept; `None` if it is not an object.
pub fn object_pairs(raw: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    if !raw.get().trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<ObjectPairs<'_>>(raw.get()).ok().map(|p| p.0)
}

/// Deserializes a JSON object into its (key, raw value) pairs in order, keeping duplicates.
struct ObjectPairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for ObjectPairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ObjectPairs<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(ObjectPairs(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn json_invalid(_bytes: &[u8], pos: usize, msg: &str) -> ApiError {
    ApiError::one(err_ctx(
        "json_invalid",
        &[json!("body"), json!(pos)],
        "JSON decode error",
        json!({}),
        json!({ "error": msg }),
    ))
}

/// `json_invalid` with the character offset of the problem (serde_json reports line and column).
fn json_error(text: &str, e: &serde_json::Error) -> ApiError {
    let (line, col) = (e.line(), e.column());
    let mut offset = 0usize;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            offset += l.chars().take(col.saturating_sub(1)).count();
            break;
        }
        offset += l.chars().count() + 1;
    }
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    json_invalid(text.as_bytes(), offset, &msg)
}

// ---------------------------------------------------------------- field checks

/// A required string field.
pub fn string(raw: &RawValue, loc: &[Value]) -> Result<String, Value> {
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| err("string_type", loc, "Input should be a valid string", value_of(raw)))
}

/// A topic name field.
pub fn topic(raw: &RawValue, loc: &[Value]) -> Result<String, Value> {
    let s = string(raw, loc)?;
    match topic_name_error(&s) {
        None => Ok(s),
        Some(msg) => Err(err_ctx("value_error", loc, &format!("Value error, {msg}"), json!(s), json!({"error": {}}))),
    }
}

/// An integer field, lax like Pydantic: integers, floats without a fraction and numeric strings.
pub fn integer(raw: &RawValue, loc: &[Value]) -> Result<i64, Value> {
    let v = value_of(raw);
    match &v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                return Ok(f as i64);
            }
            Err(err("int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", v))
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            err("int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", v.clone())
        }),
        Value::Bool(b) => Ok(i64::from(*b)),
        _ => Err(err("int_type", loc, "Input should be a valid integer", v)),
    }
}

/// A JSON object field kept as compact text.
pub fn object_text(raw: &RawValue, loc: &[Value]) -> Result<String, Value> {
    if raw.get().trim_start().starts_with('{') {
        Ok(super::wire::minify(raw.get()))
    } else {
        Err(err("dict_type", loc, "Input should be a valid dictionary", value_of(raw)))
    }
}

/// `metadata`: null, or an object whose values are all strings. Returns the compact text (`None` for null).
pub fn metadata(raw: &RawValue, loc: &[Value]) -> Result<Option<String>, Vec<Value>> {
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    let text = object_text(raw, loc).map_err(|e| vec![e])?;
    let pairs = object_pairs(raw).unwrap_or_default();
    let mut errors = Vec::new();
    for (k, v) in pairs {
        let mut l = loc.to_vec();
        l.push(json!(k));
        if let Err(e) = string(v, &l) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(Some(text)) } else { Err(errors) }
}

/// A list field with a length range; returns the raw items.
pub fn list<'a>(raw: &'a RawValue, loc: &[Value], min: usize, max: usize) -> Result<Vec<&'a RawValue>, Value> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| err("list_type", loc, "Input should be a valid list", value_of(raw)))?;
    let n = items.len();
    if n < min {
        let s = if min == 1 { "item" } else { "items" };
        return Err(err_ctx(
            "too_short",
            loc,
            &format!("List should have at least {min} {s} after validation, not {n}"),
            value_of(raw),
            json!({"field_type": "List", "min_length": min, "actual_length": n}),
        ));
    }
    if n > max {
        return Err(err_ctx(
            "too_long",
            loc,
            &format!("List should have at most {max} items after validation, not {n}"),
            value_of(raw),
            json!({"field_type": "List", "max_length": max, "actual_length": n}),
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rule_matches_the_reference() {
        for ok in ["jobs", "a-b_c", "é", "X9", "a-"] {
            assert!(is_valid_topic(ok), "{ok}");
        }
        for bad in ["", "bad topic!", "a/b", "a.b", "a:b", "*", "@", "---", "_"] {
            assert!(!is_valid_topic(bad), "{bad}");
        }
        assert!(!is_valid_topic(&"a".repeat(256)));
        assert!(is_valid_topic(&"a".repeat(255)));
    }

    #[test]
    fn bodies_report_pydantic_shapes() {
        let ApiError::Validation(e) = Body::parse(b"{\"a\": ").err().unwrap() else { panic!() };
        assert_eq!(e[0]["type"], "json_invalid");
        let ApiError::Validation(e) = Body::parse(b"[1]").err().unwrap() else { panic!() };
        assert_eq!(e[0]["type"], "model_attributes_type");
        let b = Body::parse(br#"{"topic":"x","topic":"y","payload":{"k": 1.50}}"#).unwrap();
        assert_eq!(string(b.get("topic").unwrap(), &[]).unwrap(), "y");
        assert_eq!(object_text(b.get("payload").unwrap(), &[]).unwrap(), "{\"k\":1.50}");
        let e = metadata(serde_json::from_str(r#"{"a":1}"#).unwrap(), &[json!("body"), json!("metadata")]).unwrap_err();
        assert_eq!(e[0]["loc"], json!(["body", "metadata", "a"]));
    }
}
