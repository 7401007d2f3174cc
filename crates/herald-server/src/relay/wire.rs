//! The relay's wire details in one place: timestamp forms (§4.9), message envelopes by channel (§4.10), error bodies
//! (§2.1) and the one mapping from Herald's error codes to relay HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_engine::relay::api::{Micros, RelayMessage};
use herald_types::{ErrorCode, HeraldError};
use serde_json::{Value, json};
use std::fmt::Write;

// ---------------------------------------------------------------- time

/// Microseconds since the epoch, now.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn format_time(us: Micros, suffix: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut s = String::with_capacity(32);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    // Python's isoformat: six digits of fraction, or none at all when the microseconds are zero.
    let micro = t.microsecond();
    if micro != 0 {
        let _ = write!(s, ".{micro:06}");
    }
    s.push_str(suffix);
    s
}

/// `2026-05-13T14:33:07.412345Z`
pub fn z_form(us: Micros) -> String {
    format_time(us, "Z")
}

/// `2026-05-13T14:33:07.412345+00:00`
pub fn offset_form(us: Micros) -> String {
    format_time(us, "+00:00")
}

// ---------------------------------------------------------------- message envelopes

fn json_str(out: &mut String, s: &str) {
    // serde_json writes non-ASCII raw, as the contract wants.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn raw(b: &[u8]) -> &str {
    // Payloads and metadata were validated as JSON text before they were stored.
    std::str::from_utf8(b).unwrap_or("null")
}

/// The WebSocket `message` frame, also the live long-poll item:
/// `{"type":"message","message_id":..,"topic":..,"payload":..,"timestamp":"<Z>","metadata":null|{..}}`.
pub fn live_frame(topic: &str, m: &RelayMessage) -> Bytes {
    let mut s = String::with_capacity(96 + topic.len() + m.payload.len());
    s.push_str("{\"type\":\"message\",\"message_id\":\"");
    let _ = write!(s, "{}", m.id);
    s.push_str("\",\"topic\":");
    json_str(&mut s, topic);
    s.push_str(",\"payload\":");
    s.push_str(raw(&m.payload));
    s.push_str(",\"timestamp\":\"");
    s.push_str(&z_form(m.timestamp));
    s.push_str("\",\"metadata\":");
    s.push_str(m.metadata.as_deref().map_or("null", raw));
    s.push('}');
    Bytes::from(s)
}

/// A catch-up poll item: `{"topic","message_id","payload","timestamp":"<offset>","metadata":{}|{..},"stream_id"}`.
pub fn catchup_item(out: &mut String, topic: &str, m: &RelayMessage) {
    out.push_str("{\"topic\":");
    json_str(out, topic);
    let _ = write!(out, ",\"message_id\":\"{}\",\"payload\":", m.id);
    out.push_str(raw(&m.payload));
    out.push_str(",\"timestamp\":\"");
    out.push_str(&offset_form(m.timestamp));
    out.push_str("\",\"metadata\":");
    out.push_str(m.metadata.as_deref().map_or("{}", raw));
    let _ = write!(out, ",\"stream_id\":\"{}\"}}", m.id);
}

/// A history item: `{"message_id","topic","payload","timestamp":"<offset>","metadata":{}|{..}}`.
pub fn history_item(out: &mut String, topic: &str, m: &RelayMessage) {
    let _ = write!(out, "{{\"message_id\":\"{}\",\"topic\":", m.id);
    json_str(out, topic);
    out.push_str(",\"payload\":");
    out.push_str(raw(&m.payload));
    out.push_str(",\"timestamp\":\"");
    out.push_str(&offset_form(m.timestamp));
    out.push_str("\",\"metadata\":");
    out.push_str(m.metadata.as_deref().map_or("{}", raw));
    out.push('}');
}

/// Removes insignificant whitespace from valid JSON text, keeping everything else byte for byte (key order, number
/// spelling, escapes), so stored payloads are compact like the real server's output.
pub fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- responses

/// A JSON response with the contract's content type.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn json_value(status: StatusCode, v: &Value) -> Response {
    json_response(status, serde_json::to_vec(v).unwrap_or_default())
}

/// Everything a relay route can answer with other than success (§2.1).
#[derive(Debug)]
pub enum ApiError {
    /// `{"detail": "<text>"}`; `bearer` adds `WWW-Authenticate: Bearer`.
    Detail { status: StatusCode, detail: String, bearer: bool },
    /// 422 `{"detail": [ {type, loc, msg, input, ctx?}, ... ]}`.
    Validation(Vec<Value>),
    /// 429 `{"error": "Rate limit exceeded: <n> per 1 minute"}`.
    RateLimited(u32),
    /// 413 `{"error":"PAYLOAD_TOO_LARGE",...}`.
    TooLarge,
    /// 500 `{"error":"INTERNAL_ERROR",...}`; the cause is logged, never sent.
    Internal,
    /// A body of another shape (device flow's `{"error": ...}`).
    Raw(StatusCode, Value),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError::Detail { status, detail: detail.into(), bearer: false }
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Detail { status: StatusCode::UNAUTHORIZED, detail: detail.into(), bearer: true }
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::detail(StatusCode::FORBIDDEN, detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::detail(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::detail(StatusCode::NOT_FOUND, detail)
    }
    pub fn one(e: Value) -> Self {
        ApiError::Validation(vec![e])
    }
}

/// The one mapping from engine errors to relay responses. Engine messages are written to be shown as they are.
impl From<HeraldError> for ApiError {
    fn from(e: HeraldError) -> Self {
        let status = match e.code {
            ErrorCode::InvalidArgument | ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthenticated => return ApiError::unauthorized(e.message),
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable | ErrorCode::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => {
                tracing::error!(error = %e.message, "relay request failed");
                return ApiError::Internal;
            }
        };
        ApiError::detail(status, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Detail { status, detail, bearer } => {
                let mut r = json_value(status, &json!({ "detail": detail }));
                if bearer {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                r
            }
            ApiError::Validation(errors) => json_value(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "detail": errors })),
            ApiError::RateLimited(n) => json_value(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({ "error": format!("Rate limit exceeded: {n} per 1 minute") }),
            ),
            ApiError::TooLarge => json_value(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "PAYLOAD_TOO_LARGE", "message": "request body exceeds configured limit"}),
            ),
            ApiError::Internal => json_value(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": "INTERNAL_ERROR", "message": "An internal error occurred"}),
            ),
            ApiError::Raw(status, v) => json_value(status, &v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_pythons_isoformat() {
        assert_eq!(z_form(1_778_683_987_412_345), "2026-05-13T14:53:07.412345Z");
        assert_eq!(offset_form(1_778_683_987_000_000), "2026-05-13T14:53:07+00:00");
        assert_eq!(z_form(1_778_683_987_000_001), "2026-05-13T14:53:07.000001Z");
    }

    #[test]
    fn minify_keeps_strings_and_numbers() {
        assert_eq!(minify("{ \"a b\" : [1.50, 2e3 ,\"x \\\" y\"] }"), "{\"a b\":[1.50,2e3,\"x \\\" y\"]}");
    }
}
