//! Client commands for daily work: `herald stream|queue|kv …` over gRPC (flowmesh.v1), `herald pub|sub|request` over
//! the NATS protocol, and `herald relay publish` over the relay's HTTP API.
//!
//! Every command prints a human-readable answer by default and one JSON object per line with `--json`, for scripts.
//! Errors keep the server's own words: a gRPC failure is reported as `<CODE>: <message>` and the process exits 1.

pub mod kv;
pub mod nats;
pub mod queue;
pub mod relay;
pub mod stream;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;
use herald_proto::flowmesh::v1 as pb;
use std::collections::HashMap;
use tonic::transport::{Channel, Endpoint};

/// How to reach Herald's gRPC listener; shared by `stream`, `queue` and `kv`.
#[derive(Args, Clone, Debug)]
pub struct GrpcArgs {
    /// gRPC address of the server.
    #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:50051", global = true)]
    pub server: String,
    /// Bearer token (sent as `authorization: Bearer <token>`); not needed when the server runs without auth.
    #[arg(long, env = "HERALD_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A connected gRPC client: the channel, and the token every request carries.
pub struct Conn {
    pub channel: Channel,
    token: Option<String>,
    pub json: bool,
}

impl GrpcArgs {
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let url = if self.server.contains("://") { self.server.clone() } else { format!("http://{}", self.server) };
        let channel = Endpoint::from_shared(url.clone())
            .with_context(|| format!("invalid server address {url}"))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(Conn { channel, token: self.token.clone(), json: self.json })
    }
}

impl Conn {
    /// A request carrying the token, if any.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}").parse().expect("a token is a valid metadata value");
            req.metadata_mut().insert("authorization", value);
        }
        req
    }
}

/// A gRPC failure in the server's words.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// `tenant/namespace/name` (or the full `tenant/namespace/<type>/name`, whose type must then match) as a
/// `ResourcePath` of the command's type.
pub fn resource_path(text: &str, kind: &str) -> anyhow::Result<pb::ResourcePath> {
    let parts: Vec<&str> = text.split('/').collect();
    let (tenant, namespace, name) = match parts.as_slice() {
        [t, ns, n] => (*t, *ns, *n),
        [t, ns, k, n] if *k == kind => (*t, *ns, *n),
        [_, _, k, _] => bail!("{text}: this command works on a {kind}, not a {k}"),
        _ => bail!("{text}: expected <tenant>/<namespace>/<name>"),
    };
    if [tenant, namespace, name].iter().any(|p| p.is_empty()) {
        bail!("{text}: tenant, namespace and name must not be empty");
    }
    Ok(pb::ResourcePath {
        tenant: tenant.into(),
        namespace: namespace.into(),
        resource_type: kind.into(),
        name: name.into(),
    })
}

/// `key=value` pairs (headers, metadata).
pub fn parse_pairs(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{p}: expected key=value"),
        })
        .collect()
}

/// How a payload is shown: as text when it is UTF-8, as base64 otherwise.
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// The JSON fields of a payload: `payload_base64` always (scripts can rely on it), `payload` when it is UTF-8.
pub fn payload_json(bytes: &[u8], object: &mut serde_json::Map<String, serde_json::Value>) {
    object.insert("payload_base64".into(), base64::engine::general_purpose::STANDARD.encode(bytes).into());
    if let Ok(text) = std::str::from_utf8(bytes) {
        object.insert("payload".into(), text.into());
    }
}

/// Unix nanoseconds as RFC 3339 (UTC), for people.
pub fn nanos_text(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ns.to_string())
}

pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Runs an async client command on a small runtime.
pub fn run<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_short_and_full_form() {
        let p = resource_path("t1/ns1/orders", "stream").unwrap();
        assert_eq!((p.tenant.as_str(), p.namespace.as_str(), p.name.as_str()), ("t1", "ns1", "orders"));
        assert_eq!(p.resource_type, "stream");
        assert_eq!(resource_path("t1/ns1/stream/orders", "stream").unwrap().name, "orders");
        assert!(resource_path("t1/ns1/queue/orders", "stream").unwrap_err().to_string().contains("not a queue"));
        assert!(resource_path("t1/orders", "kv").is_err());
        assert!(resource_path("t1//orders", "kv").is_err());
    }

    #[test]
    fn pairs_and_payloads() {
        assert_eq!(parse_pairs(&["a=1".into(), "b=x=y".into()]).unwrap()["b"], "x=y");
        assert!(parse_pairs(&["novalue".into()]).is_err());
        assert_eq!(show_bytes(b"hi"), "hi");
        assert_eq!(show_bytes(&[0xff, 0x00]), "base64:/wA=");
        let mut m = serde_json::Map::new();
        payload_json(&[0xff], &mut m);
        assert!(m.get("payload").is_none() && m["payload_base64"] == "/w==");
    }
}
