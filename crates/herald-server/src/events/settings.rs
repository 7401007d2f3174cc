//! The `[events]` table of herald.toml: who may connect (identities) and the delivery tuning of compat/ensync.md §7.

use crate::config::parse_duration;
use herald_engine::events::api::IdentityConfig;
use herald_engine::events::{EventsOptions, access_key_digest, decode_public_key};
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How long a delivered event may stay unacknowledged before it is delivered again.
    pub ack_timeout: String,
    /// A gRPC session with no stream and no calls for this long ends.
    pub session_idle_ttl: String,
    /// Largest `len(payload) + len(metadata)` accepted.
    pub max_event_bytes: usize,
    /// Events in flight per subscription.
    pub grpc_window: usize,
    pub ws_window: usize,
    /// Events older than this are deleted.
    pub retention: String,
    pub identities: Vec<IdentityEntry>,
}

/// One identity. Exactly one of `access_key_sha256` (what `herald identity create` prints) and `access_key` (the key
/// itself; convenient in development, but then the file holds a secret).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityEntry {
    pub name: String,
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub access_key_sha256: Option<String>,
    pub access_key: Option<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            ack_timeout: "60s".into(),
            session_idle_ttl: "24h".into(),
            max_event_bytes: 1_000_000,
            grpc_window: 1,
            ws_window: 1,
            retention: "168h".into(),
            identities: Vec::new(),
        }
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

impl EventsConfig {
    /// Checks every key, reporting problems into `errors`, and returns the engine's options.
    pub fn options(&self, errors: &mut Vec<String>) -> EventsOptions {
        let mut dur = |key: &str, v: &str, min: Duration| {
            let d = parse_duration(v).unwrap_or_else(|e| {
                errors.push(format!("events.{key}: {e}"));
                min
            });
            if d < min {
                errors.push(format!("events.{key}: must be at least {} ms", min.as_millis()));
            }
            d
        };
        let ack_timeout = dur("ack_timeout", &self.ack_timeout, Duration::from_millis(100));
        let session_idle_ttl = dur("session_idle_ttl", &self.session_idle_ttl, Duration::from_secs(90));
        let retention = dur("retention", &self.retention, Duration::from_secs(60));
        // The real WebSocket client refuses frames over 1 MiB, and a record carries some JSON around the event.
        if self.max_event_bytes == 0 || self.max_event_bytes > 1_040_000 {
            errors.push(
                "events.max_event_bytes: must be between 1 and 1040000 (WebSocket clients accept 1 MiB frames)".into(),
            );
        }
        if self.grpc_window == 0 || self.ws_window == 0 {
            errors.push("events.grpc_window / events.ws_window: must be at least 1".into());
        }
        let mut identities = Vec::new();
        for (i, id) in self.identities.iter().enumerate() {
            let at = format!("events.identities[{i}]");
            let Some(public_key) = decode_public_key(&id.public_key) else {
                errors.push(format!("{at}.public_key: not the base64 of a 32-byte Ed25519 public key"));
                continue;
            };
            let digest = match (&id.access_key_sha256, &id.access_key) {
                (Some(h), None) => match hex32(h) {
                    Some(d) => d,
                    None => {
                        errors.push(format!("{at}.access_key_sha256: not 64 hex digits"));
                        continue;
                    }
                },
                (None, Some(k)) if !k.is_empty() => access_key_digest(k),
                _ => {
                    errors.push(format!("{at}: set exactly one of access_key_sha256 and access_key"));
                    continue;
                }
            };
            if identities.iter().any(|x: &IdentityConfig| x.access_key_sha256 == digest) {
                errors.push(format!("{at}: the same access key is configured twice"));
                continue;
            }
            let name = if id.name.is_empty() { format!("identity-{i}") } else { id.name.clone() };
            identities.push(IdentityConfig { name, access_key_sha256: digest, public_key });
        }
        EventsOptions {
            identities,
            ack_timeout,
            session_idle_ttl,
            max_event_bytes: self.max_event_bytes,
            grpc_window: self.grpc_window.max(1),
            ws_window: self.ws_window.max(1),
            retention,
            ..EventsOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "pj7Uy88U0Y/mvNuTu/wpNHSjSzhvAcc3mpR6o9RWZ6A=";

    #[test]
    fn identities_are_checked() {
        let mut c = EventsConfig { identities: Vec::new(), ..Default::default() };
        c.identities.extend([
            IdentityEntry {
                name: "a".into(),
                public_key: PK.into(),
                access_key: Some("key-A".into()),
                ..Default::default()
            },
            IdentityEntry {
                public_key: PK.into(),
                access_key_sha256: Some(hex_of(&access_key_digest("key-B"))),
                ..Default::default()
            },
        ]);
        let mut errors = Vec::new();
        let o = c.options(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.identities.len(), 2);
        assert_eq!(o.identities[1].access_key_sha256, access_key_digest("key-B"));
        assert_eq!(o.identities[1].name, "identity-1");

        c.identities.push(IdentityEntry {
            public_key: "short".into(),
            access_key: Some("k".into()),
            ..Default::default()
        });
        c.identities.push(IdentityEntry { public_key: PK.into(), ..Default::default() });
        c.identities.push(IdentityEntry {
            public_key: PK.into(),
            access_key: Some("key-A".into()),
            ..Default::default()
        });
        c.ack_timeout = "soon".into();
        c.session_idle_ttl = "10s".into();
        c.max_event_bytes = 5_000_000;
        let mut errors = Vec::new();
        c.options(&mut errors);
        assert_eq!(errors.len(), 6, "{errors:?}");
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
