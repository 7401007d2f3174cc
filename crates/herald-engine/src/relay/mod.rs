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

/// Walks the `relay_expiry` entries of `kind` that are due at `now`, in time order. For each, `reclaim` gets the
/// batch and the record's key and removes the record if it is really past its time (it may have been renewed since),
/// returning whether it did; the expiry entry itself is always removed. Commits every [`REAP_BATCH`] removals.
/// Returns how many records were removed. The caller holds the lock that serialises writers of these records.
fn reap_due(
    store: &crate::store::Store,
    kind: records::ExpiryKind,
    now: api::Micros,
    context: &'static str,
    mut reclaim: impl FnMut(&mut fjall::OwnedWriteBatch, &[u8]) -> herald_types::Result<bool>,
) -> herald_types::Result<usize> {
    let ks = &store.relay;
    let mut removed = 0;
    let mut batch = store.batch();
    for item in ks.expiry.range(kind.start()..records::expiry_due_end(kind, now)) {
        let k = item.key().map_err(crate::store::fjall_err(context))?;
        if let Some((_, key)) = records::parse_expiry_key(&k)
            && reclaim(&mut batch, key)?
        {
            removed += 1;
        }
        batch.remove(&ks.expiry, k.to_vec());
        if batch.len() >= REAP_BATCH {
            store.commit(std::mem::replace(&mut batch, store.batch()))?;
        }
    }
    if !batch.is_empty() {
        store.commit(batch)?;
    }
    Ok(removed)
}

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
