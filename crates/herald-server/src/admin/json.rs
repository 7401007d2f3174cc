//! The admin API's JSON answers: how a body is written, and the object shapes of compat/flowmesh.md §5.1 (Message,
//! Job, ConsumerGroupState, QueueStats, RetryPolicy, ResourceConfig), the Schema object of §5.6 and the HTTP form
//! of a ReplaySession (§5.7).
//!
//! FlowMesh writes with Go's `json.Encoder`, and the bytes are kept the same here: one object followed by a newline,
//! keys in the order the contract lists them, 64-bit integers as JSON numbers, whole floats without a fraction
//! (`2`, not `2.0`), and `<`, `>`, `&`, U+2028 and U+2029 escaped inside strings.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use herald_engine::replay::ReplaySession;
use herald_engine::schemas::Schema;
use herald_engine::{ConsumerGroupState, Headers, Job, QueueStats, ResourceConfig, RetryPolicy, StreamMessage};
use serde::Serialize;
use serde_json::{Map, Number, Value, json};
use std::io;

/// A 200 answer with `body`.
pub fn ok(body: Value) -> Response {
    encode(StatusCode::OK, &body)
}

/// `status` with `body` written as Go writes it, plus the trailing newline.
pub fn encode(status: StatusCode, body: &Value) -> Response {
    let mut body = body.clone();
    go_numbers(&mut body);
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    if let Err(e) = body.serialize(&mut ser) {
        // A `Value` always serializes; this only guards against a broken writer.
        tracing::error!(error = %e, "could not encode an admin API answer");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    out.push(b'\n');
    let mut resp = (status, out).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Go formats a float64 that holds a whole number without a fraction; serde_json would write `2.0`.
fn go_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e18
            {
                *n = Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(go_numbers),
        Value::Object(map) => map.values_mut().for_each(go_numbers),
        _ => {}
    }
}

/// serde_json's compact output plus Go's HTML-safe escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

// ---------------------------------------------------------------- shapes

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn put_headers(obj: &mut Map<String, Value>, headers: Headers) {
    // `omitempty` in FlowMesh: no `headers` key at all when there are none.
    if !headers.is_empty() {
        obj.insert("headers".into(), json!(headers));
    }
}

/// Message: `{"id","resource_path","partition","offset","payload","headers","created_at","schema_version"}`.
pub fn message(m: StreamMessage) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(m.id));
    o.insert("resource_path".into(), json!(m.resource_path));
    o.insert("partition".into(), json!(m.partition));
    o.insert("offset".into(), json!(m.offset));
    o.insert("payload".into(), json!(b64(&m.payload)));
    put_headers(&mut o, m.headers);
    o.insert("created_at".into(), json!(m.created_at));
    o.insert("schema_version".into(), json!(m.schema_version));
    Value::Object(o)
}

/// Job: `{"id","resource_path","seq","payload","headers","created_at","visible_at","reserve_until","attempts"}`,
/// `reserve_until` omitted when 0.
pub fn job(j: Job) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(j.id));
    o.insert("resource_path".into(), json!(j.resource_path));
    o.insert("seq".into(), json!(j.seq));
    o.insert("payload".into(), json!(b64(&j.payload)));
    put_headers(&mut o, j.headers);
    o.insert("created_at".into(), json!(j.created_at));
    o.insert("visible_at".into(), json!(j.visible_at));
    if j.reserve_until != 0 {
        o.insert("reserve_until".into(), json!(j.reserve_until));
    }
    o.insert("attempts".into(), json!(j.attempts));
    Value::Object(o)
}

pub fn jobs(jobs: Vec<Job>) -> Value {
    Value::Array(jobs.into_iter().map(job).collect())
}

/// ConsumerGroupState: `{"stream","group","partition","committed_offset","latest_offset","lag"}`.
pub fn group_state(s: ConsumerGroupState) -> Value {
    json!({
        "stream": s.stream,
        "group": s.group,
        "partition": s.partition,
        "committed_offset": s.committed_offset,
        "latest_offset": s.latest_offset,
        "lag": s.lag,
    })
}

/// One entry of a stream's consumer-group listing: the state without `stream`.
pub fn group_entry(s: ConsumerGroupState) -> Value {
    json!({
        "group": s.group,
        "partition": s.partition,
        "committed_offset": s.committed_offset,
        "latest_offset": s.latest_offset,
        "lag": s.lag,
    })
}

/// QueueStats: the six counters in the contract's order.
pub fn stats(s: QueueStats) -> Value {
    json!({
        "total_jobs": s.total_jobs,
        "pending_jobs": s.pending_jobs,
        "in_flight_jobs": s.in_flight_jobs,
        "completed_jobs": s.completed_jobs,
        "failed_jobs": s.failed_jobs,
        "oldest_job_age_seconds": s.oldest_job_age_seconds,
    })
}

/// RetryPolicy: `{"max_attempts","initial_backoff_seconds","max_backoff_seconds","backoff_multiplier","backoff_strategy"}`.
pub fn policy(p: RetryPolicy) -> Value {
    json!({
        "max_attempts": p.max_attempts,
        "initial_backoff_seconds": p.initial_backoff_seconds,
        "max_backoff_seconds": p.max_backoff_seconds,
        "backoff_multiplier": p.backoff_multiplier,
        "backoff_strategy": p.backoff_strategy,
    })
}

/// ResourceConfig objects: the engine keeps them in the exact `resources.json` shape (§1.2), so they go out as is.
pub fn resources(list: Vec<ResourceConfig>) -> Value {
    Value::Array(list.into_iter().filter_map(|c| serde_json::to_value(c).ok()).collect())
}

/// Schema: `{"id","type","version","definition","created_at"}` with the definition as its JSON text in a string
/// (not base64, §5.6) and `created_at` in Unix ns. A stored definition is UTF-8 whenever it was checked as JSON;
/// other schema types are stored unchecked, and their invalid bytes show as U+FFFD.
pub fn schema(s: Schema) -> Value {
    json!({
        "id": s.id,
        "type": s.schema_type,
        "version": s.version,
        "definition": String::from_utf8_lossy(&s.definition),
        "created_at": s.created_at,
    })
}

/// ReplaySession in its HTTP form (§5.7): unlike gRPC, unset values are left out rather than sent as 0 / −1 —
/// `start_timestamp` for an offset start, `end_offset` unless the end is an offset (an end at offset 0 is set and
/// shown), `end_timestamp` unless the end is a time, and the progress times while they are 0.
pub fn replay_session(s: &ReplaySession) -> Value {
    use herald_engine::replay::{ReplayEnd, ReplayStart};
    let mut o = Map::new();
    o.insert("session_id".into(), json!(s.id));
    o.insert("stream".into(), json!(s.stream));
    o.insert("partition".into(), json!(s.partition));
    o.insert("start_offset".into(), json!(s.start_offset()));
    if let ReplayStart::Timestamp(t) = s.start {
        o.insert("start_timestamp".into(), json!(t));
    }
    match s.end {
        ReplayEnd::Offset(e) => {
            o.insert("end_offset".into(), json!(e));
        }
        ReplayEnd::Timestamp(t) => {
            o.insert("end_timestamp".into(), json!(t));
        }
        ReplayEnd::Open => {}
    }
    o.insert("sandbox_consumer_group".into(), json!(s.sandbox_group));
    o.insert("status".into(), json!(s.status.as_str()));
    let p = &s.progress;
    let mut progress = Map::new();
    progress.insert("current_offset".into(), json!(p.current_offset));
    progress.insert("messages_replayed".into(), json!(p.messages_replayed));
    progress.insert("errors".into(), json!(p.errors));
    for (key, at) in [("started_at", p.started_at), ("paused_at", p.paused_at), ("completed_at", p.completed_at)] {
        if at != 0 {
            progress.insert(key.into(), json!(at));
        }
    }
    o.insert("progress".into(), Value::Object(progress));
    o.insert("created_at".into(), json!(s.created_at));
    o.insert("updated_at".into(), json!(s.updated_at));
    Value::Object(o)
}

/// D19: the session object with a `session` member holding the same object, which FlowMesh's clients (the bare
/// object) and its web UI (`response.session.…`) can both read. Create, get-one and the `replay.session` event
/// send this.
pub fn replay_session_superset(s: &ReplaySession) -> Value {
    let bare = replay_session(s);
    let mut out = bare.clone();
    if let Value::Object(o) = &mut out {
        o.insert("session".into(), bare);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn writes_like_go() {
        let r = ok(json!({"status": "ok", "m": 2.0, "f": 1.5, "s": "<a&b>\u{2028}", "n": [1, -1]}));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            text(r).await,
            "{\"status\":\"ok\",\"m\":2,\"f\":1.5,\"s\":\"\\u003ca\\u0026b\\u003e\\u2028\",\"n\":[1,-1]}\n"
        );
    }

    #[test]
    fn job_omits_empty_headers_and_zero_reservation() {
        let j = Job {
            id: "a".into(),
            resource_path: "t/n/queue/q".into(),
            seq: 3,
            payload: bytes::Bytes::from_static(b"job"),
            headers: Headers::new(),
            created_at: 1,
            visible_at: 2,
            reserve_until: 0,
            attempts: 0,
        };
        assert_eq!(
            serde_json::to_string(&job(j)).unwrap(),
            r#"{"id":"a","resource_path":"t/n/queue/q","seq":3,"payload":"am9i","created_at":1,"visible_at":2,"attempts":0}"#
        );
    }

    #[test]
    fn replay_session_omits_unset_values_and_nests_itself() {
        use herald_engine::replay::{ReplayEnd, ReplayProgress, ReplayStart, ReplayStatus};
        let s = ReplaySession {
            id: "ab".into(),
            stream: "t/n/stream/s".into(),
            partition: 0,
            start: ReplayStart::Offset(1),
            end: ReplayEnd::Open,
            sandbox_group: "_replay_x".into(),
            status: ReplayStatus::Active,
            progress: ReplayProgress { current_offset: 1, started_at: 5, ..ReplayProgress::default() },
            created_at: 2,
            updated_at: 3,
        };
        let bare = r#"{"session_id":"ab","stream":"t/n/stream/s","partition":0,"start_offset":1,"sandbox_consumer_group":"_replay_x","status":"active","progress":{"current_offset":1,"messages_replayed":0,"errors":0,"started_at":5},"created_at":2,"updated_at":3}"#;
        assert_eq!(serde_json::to_string(&replay_session(&s)).unwrap(), bare);
        let both = replay_session_superset(&s);
        assert_eq!(both["session"], replay_session(&s));
        assert_eq!(both["session_id"], "ab");
        let s = ReplaySession { start: ReplayStart::Timestamp(9), end: ReplayEnd::Offset(0), ..s };
        let v = replay_session(&s);
        assert_eq!(
            (v["start_offset"].clone(), v["start_timestamp"].clone(), v["end_offset"].clone()),
            (json!(0), json!(9), json!(0))
        );
        assert!(v.get("end_timestamp").is_none());
    }
}
