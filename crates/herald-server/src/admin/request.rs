//! Reading an admin API request the way FlowMesh does (compat/flowmesh.md §5.1): path segments (percent-decoded),
//! query parameters (first value wins, empty counts as absent), and JSON bodies (the first JSON value only, unknown
//! fields ignored, `null` = no fields, Content-Type not checked, bytes as padded standard base64).

use super::errors::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use herald_engine::Headers;
use herald_types::{HeraldError, ResourceKind, ResourcePath};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The matched route's path parameters and the query string.
pub struct Target {
    params: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))?
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        // A malformed query string reads as no parameters, as Go's `URL.Query()` drops what it cannot parse.
        let query = parts.uri.query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        Ok(Target { params, query })
    }
}

impl Target {
    /// A path parameter of the route (always present: the route names it).
    pub fn segment(&self, name: &str) -> &str {
        self.params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// `{tenant}/{namespace}/{name}` as a path of `kind`, checked with the contract's texts (§3.1 step 4, D22).
    pub fn resource(&self, kind: ResourceKind) -> Result<ResourcePath, ApiError> {
        Ok(ResourcePath::new(self.segment("tenant"), self.segment("namespace"), kind, self.segment("name"))?)
    }

    /// The first value of a query parameter; an empty value counts as absent (Go's `Query().Get(..) == ""`).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// An integer query parameter: `None` when absent, `Some(Err)` when it is not an integer.
    pub fn int(&self, name: &str) -> Option<Result<i64, ()>> {
        self.query(name).map(|v| v.parse::<i64>().map_err(drop))
    }

    /// An integer query parameter that overrides a body field when it parses and is ignored when it does not.
    pub fn int_override(&self, name: &str) -> Option<i64> {
        self.int(name).and_then(Result::ok)
    }

    /// `?partition=`: 0 by default, 400 `invalid partition parameter` when not an integer; negative means 0, as
    /// over gRPC (§3.1).
    pub fn partition(&self) -> Result<i32, ApiError> {
        match self.query("partition") {
            None => Ok(0),
            Some(v) => v.parse::<i32>().map(|p| p.max(0)).map_err(|_| ApiError::invalid("invalid partition parameter")),
        }
    }
}

/// The request body, whatever its Content-Type and transfer encoding.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError(HeraldError::new(herald_types::ErrorCode::ResourceExhausted, "request body too large")))
            }
            Err(e) => Err(ApiError::invalid(format!("invalid request body: {}", e.body_text()))),
        }
    }
}

impl Body {
    /// A body the route needs: an empty one fails as Go's decoder does (`invalid request body: EOF`).
    pub fn required<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        self.decode()?.ok_or_else(|| ApiError::invalid("invalid request body: EOF"))
    }

    /// A body the route may do without (`reserve`, `receive`, `nack`): read whenever one is present.
    pub fn optional<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        Ok(self.decode()?.unwrap_or_default())
    }

    /// The first JSON value of the body (trailing bytes are ignored, as by Go's `json.Decoder`); `None` when the
    /// body is empty or blank.
    fn decode<T: DeserializeOwned + Default>(&self) -> Result<Option<T>, ApiError> {
        // serde would read a JSON array into a struct field by field; Go refuses anything but an object (or null).
        if let Some(first) = self.0.iter().find(|b| !b.is_ascii_whitespace())
            && !matches!(first, b'{' | b'n')
        {
            return Err(ApiError::invalid("invalid request body: expected a JSON object"));
        }
        let mut values = serde_json::Deserializer::from_slice(&self.0).into_iter::<Option<T>>();
        match values.next() {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v.unwrap_or_default())),
            Some(Err(e)) => Err(ApiError::invalid(format!("invalid request body: {e}"))),
        }
    }
}

/// A base64 byte field: absent or `null` is empty; otherwise padded standard base64, with Go's error text.
pub fn bytes_field(field: Option<String>) -> Result<Bytes, ApiError> {
    let Some(text) = field else { return Ok(Bytes::new()) };
    STANDARD.decode(text.as_bytes()).map(Bytes::from).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            base64::DecodeError::InvalidLength(len) => len,
            base64::DecodeError::InvalidPadding => text.len(),
        };
        ApiError::invalid(format!("invalid request body: illegal base64 data at input byte {at}"))
    })
}

/// A `headers` object as Go decodes it into `map[string]string`: absent or `null` is empty, a `null` value is "".
pub type HeadersField = Option<HashMap<String, Option<String>>>;

pub fn headers_field(h: HeadersField) -> Headers {
    h.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct B {
        offset: i64,
    }

    fn body(s: &str) -> Body {
        Body(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn bodies_decode_like_go() {
        assert_eq!(body(r#"{"offset":3,"x":[1]}"#).required::<B>().unwrap(), B { offset: 3 });
        assert_eq!(body(r#"{"offset":3} trailing"#).required::<B>().unwrap(), B { offset: 3 });
        assert_eq!(body("null").required::<B>().unwrap(), B::default());
        assert_eq!(body("{}").required::<B>().unwrap(), B::default());
        assert_eq!(body("").required::<B>().unwrap_err().0.message, "invalid request body: EOF");
        assert_eq!(body("  \n").optional::<B>().unwrap(), B::default());
        let e = body("[1]").optional::<B>().unwrap_err().0.message;
        assert_eq!(e, "invalid request body: expected a JSON object");
        let e = body(r#"{"offset":"x"}"#).optional::<B>().unwrap_err().0.message;
        assert!(e.starts_with("invalid request body: "), "{e}");
    }

    #[test]
    fn base64_fields() {
        assert_eq!(bytes_field(None).unwrap(), Bytes::new());
        assert_eq!(bytes_field(Some("aGVsbG8=".into())).unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(
            bytes_field(Some("aGV*bG8=".into())).unwrap_err().0.message,
            "invalid request body: illegal base64 data at input byte 3"
        );
        assert!(bytes_field(Some("aGVsbG8".into())).is_err(), "padding is required");
    }
}
