//! Relay topics (Pulsar Relay, compat/pulsar-relay.md): the service trait in [`api`], the embedded backend in
//! `embedded` (topic history in one `herald-log` per topic with an in-memory hot tier of the newest messages; users,
//! topics, refresh tokens, deny-list and idempotency records in fjall). The on-disk layout is in `records`.

pub mod api;
mod embedded;
mod idem;
mod messages;
mod records;
mod tokens;
mod topics;
mod users;

pub(crate) use embedded::EmbeddedRelay;

/// Tuning of the relay service.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Messages kept per topic: reads see exactly the newest this many (`PULSAR_MAX_MESSAGES_PER_TOPIC`).
    pub max_messages_per_topic: u64,
    /// Newest messages of each open topic kept in memory and served without reading the log (0: none).
    pub hot_messages: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions { max_messages_per_topic: 1_000_000, hot_messages: 1024 }
    }
}

/// Expired records reclaimed per fjall batch.
const REAP_BATCH: usize = 1024;

/// A random UUID v4, lowercase with hyphens (user, topic and refresh-token ids).
pub(crate) fn uuid_v4() -> String {
    let mut b = herald_types::id::new_id_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = herald_types::id::to_hex(&b);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_version_4() {
        let u = super::uuid_v4();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(u.bytes().all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(u, super::uuid_v4());
    }
}
