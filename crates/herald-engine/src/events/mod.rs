//! Addressed events (EnSync, compat/ensync.md): the service trait in [`api`], the embedded backend in `embedded`.
//!
//! Each event is stored once, in one `herald-log` under `<data>/events/` (block = offset + 1). What changes after
//! the publish is kept in fjall: acks and discards (`event_closed`), deferrals (`event_deferred`), a watermark below
//! which every event is closed, and gRPC sessions. Who holds which event right now (in flight, to whom, until when)
//! is in memory (`dispatch`): after a restart every open event is pending again, which is what the contract asks.

pub mod api;
mod dispatch;
mod embedded;
mod records;

pub(crate) use embedded::EmbeddedEvents;

use std::time::Duration;

/// Tuning of the addressed-events service (`[events]` in herald.toml).
#[derive(Clone, Debug)]
pub struct EventsOptions {
    /// Identities that may connect.
    pub identities: Vec<api::IdentityConfig>,
    /// How long a delivered event may stay unacknowledged before it is delivered again (§7.3; default 60 s).
    pub ack_timeout: Duration,
    /// A gRPC session without a stream and without calls for this long ends (§7.11; default 24 h, at least 90 s).
    pub session_idle_ttl: Duration,
    /// Largest `len(payload) + len(metadata)` accepted (§7.10; default 1,000,000 bytes).
    pub max_event_bytes: usize,
    /// Events in flight per subscription, per transport (§7.5; default 1).
    pub grpc_window: usize,
    pub ws_window: usize,
    /// Events older than this are deleted, whatever their state (default 7 days).
    pub retention: Duration,
    /// Bytes of recently published events kept in memory for delivery without a log read.
    pub hot_bytes: usize,
}

impl Default for EventsOptions {
    fn default() -> Self {
        EventsOptions {
            identities: Vec::new(),
            ack_timeout: Duration::from_secs(60),
            session_idle_ttl: Duration::from_secs(24 * 3600),
            max_event_bytes: 1_000_000,
            grpc_window: 1,
            ws_window: 1,
            retention: Duration::from_secs(7 * 24 * 3600),
            hot_bytes: 64 << 20,
        }
    }
}

/// Longest event name accepted (§7.9).
pub const MAX_NAME_BYTES: usize = 256;
/// Longest delay accepted by defer (§3.7).
pub const MAX_DEFER_MS: i64 = 86_400_000;

/// The WebSocket grammar's keys (§4.3): a name containing `;KEY=:` could not be carried in a `SUB` frame.
const WIRE_KEYS: [&str; 12] = [
    "ACCESS_KEY",
    "CLIENT_ID",
    "EVENT_NAME",
    "PAYLOAD",
    "DELIVERY_TO",
    "METADATA",
    "PAYLOAD_METADATA",
    "EVENT_IDEM",
    "BLOCK",
    "PARTITION_BLOCK",
    "DELAY",
    "REASON",
];

/// Checks an event name (§7.9): non-empty UTF-8, at most 256 bytes, no control characters, and nothing the
/// WebSocket grammar would split.
pub fn check_name(name: &str) -> herald_types::Result<()> {
    use herald_types::HeraldError;
    if name.is_empty() {
        return Err(HeraldError::invalid("event name must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(HeraldError::invalid(format!("event name longer than {MAX_NAME_BYTES} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(HeraldError::invalid("event name contains a control character"));
    }
    if name.match_indices(';').any(|(i, _)| WIRE_KEYS.iter().any(|k| name[i + 1..].starts_with(&format!("{k}=:")))) {
        return Err(HeraldError::invalid("event name contains a WebSocket field separator"));
    }
    Ok(())
}

/// Decodes a recipient: standard base64 of 32 bytes, padding optional (§3.3).
pub fn decode_public_key(s: &str) -> Option<api::PublicKey> {
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s.trim()).ok()?.try_into().ok()
}

/// The standard, padded base64 form of a public key (44 characters), as `client_hash` and `sender` carry it.
pub fn encode_public_key(k: &api::PublicKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// SHA-256 of an access key: how identities are looked up (keys are never stored in clear).
pub fn access_key_digest(access_key: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(access_key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("orders/status/updated").is_ok());
        assert!(check_name("a;b=:c").is_ok(), "not a known key");
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(257)).is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name("a;REASON=:b").is_err());
    }

    #[test]
    fn keys() {
        let k = [0xab; 32];
        let s = encode_public_key(&k);
        assert_eq!(s.len(), 44);
        assert_eq!(decode_public_key(&s), Some(k));
        assert_eq!(decode_public_key(s.trim_end_matches('=')), Some(k), "padding optional");
        assert_eq!(decode_public_key("abc"), None);
        assert_eq!(decode_public_key(&encode_public_key(&[1; 32])[..40]), None);
    }
}
