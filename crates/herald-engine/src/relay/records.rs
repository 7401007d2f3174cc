//! How the relay service's state is laid out on disk: the fjall keyspaces, the JSON and binary records in them, and
//! the value of a topic-history record in `herald-log`. This is the one place that knows these bytes.
//!
//! # fjall keyspaces
//!
//! Strings are UTF-8; `\0` is a single zero byte; integers are big-endian; times are Unix microseconds (`i64`).
//! User ids are engine-generated UUIDs and owner ids are user ids, so neither contains `\0` (the engine refuses
//! one that does), which makes every `a \0 b` key unambiguous and lets a prefix scan of `a \0` find a's records.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `relay_users` | user_id | JSON [`UserRecord`] |
//! | `relay_usernames` | username | user_id |
//! | `relay_topics` | owner_id `\0` topic name | JSON [`TopicRecord`] |
//! | `relay_streams` | owner_id `\0` topic name | stream id (u64). Assigned on the first publish and never removed, so a deleted and re-created topic finds its old history (contract §1.6) |
//! | `relay_refresh` | jti | JSON [`RefreshRecordJson`] |
//! | `relay_refresh_user` | user_id `\0` jti | empty (the user's tokens, for `sessions`) |
//! | `relay_refresh_children` | parent jti `\0` child jti | empty (walking a chain down from its root) |
//! | `relay_deny` | access-token jti | until (i64) |
//! | `relay_idem` | user_id `\0` key | [`IdemRecord`]: version `1`, state (`0` in flight, `1` done), endpoint (`0` single, `1` bulk), expires_at (i64), then the stored response body (done only) |
//! | `relay_expiry` | kind (`d` deny, `i` idem, `r` refresh) \| at (i64) \| the record's key | empty. The reaper walks one kind in time order and deletes records whose time has come; a record's entry is replaced in the same batch as the record |
//!
//! Refresh tokens are reclaimed one hour after they expire (as the real server's Valkey TTL does); until then a
//! revoked token still revokes its chain when presented.
//!
//! # Topic history
//!
//! One `herald-log` per stream id in `<data>/relay/<stream id>/`. A record's offset is the message id's `seq`, its
//! timestamp (nanoseconds) is the message timestamp in microseconds × 1000 (never decreasing within a log), and its
//! value is: version `1`, flags (bit 0: has metadata), metadata length (u32), metadata bytes, then the payload bytes
//! to the end. The payload goes last so that it is handed to the log as a separate slice (`NewRecord::prefix`
//! carries the rest) and comes back as a slice of the read buffer, never copied.

use super::api::{IdemEndpoint, Micros, RefreshRecord, RelayTopic, RelayUser};
use crate::codec::Reader;
use bytes::Bytes;
use herald_types::{HeraldError, Result};
use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;

/// `a \0 b`.
pub(crate) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `a \0`: the prefix of every `pair_key(a, _)`.
pub(crate) fn pair_prefix(a: &str) -> Vec<u8> {
    pair_key(a, "")
}

/// The part of a `pair_key` after the first `\0`.
pub(crate) fn pair_second(key: &[u8]) -> Option<&str> {
    let at = key.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&key[at + 1..]).ok()
}

/// Ids used as the first half of a pair key must not contain `\0` (see the module docs).
pub(crate) fn check_key_part(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(HeraldError::invalid(format!("{what} cannot contain a NUL character")));
    }
    Ok(())
}

// ---------------------------------------------------------------- expiry index

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExpiryKind {
    Deny,
    Idem,
    Refresh,
}

impl ExpiryKind {
    fn byte(self) -> u8 {
        match self {
            ExpiryKind::Deny => b'd',
            ExpiryKind::Idem => b'i',
            ExpiryKind::Refresh => b'r',
        }
    }

    /// The first key of this kind's entries.
    pub fn start(self) -> Vec<u8> {
        expiry_key(self, i64::MIN, &[])
    }
}

pub(crate) fn expiry_key(kind: ExpiryKind, at: Micros, record_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + record_key.len());
    k.push(kind.byte());
    // Offset so that negative times (never expected) still sort before positive ones.
    k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(record_key);
    k
}

/// The end (exclusive) of the range of `kind`'s entries due at or before `now`.
pub(crate) fn expiry_due_end(kind: ExpiryKind, now: Micros) -> Vec<u8> {
    expiry_key(kind, now.saturating_add(1), &[])
}

/// (at, record key) of an expiry entry.
pub(crate) fn parse_expiry_key(key: &[u8]) -> Option<(Micros, &[u8])> {
    let at = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?) ^ (1 << 63);
    Some((at as i64, &key[9..]))
}

// ---------------------------------------------------------------- JSON records

#[derive(Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub created_at: Micros,
    pub permissions: Vec<String>,
}

impl From<&RelayUser> for UserRecord {
    fn from(u: &RelayUser) -> Self {
        UserRecord {
            user_id: u.user_id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            password_hash: u.password_hash.clone(),
            is_active: u.is_active,
            created_at: u.created_at,
            permissions: u.permissions.clone(),
        }
    }
}

impl From<UserRecord> for RelayUser {
    fn from(u: UserRecord) -> Self {
        RelayUser {
            user_id: u.user_id,
            username: u.username,
            email: u.email,
            password_hash: u.password_hash,
            is_active: u.is_active,
            created_at: u.created_at,
            permissions: u.permissions,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub topic_id: String,
    pub topic_name: String,
    pub owner_id: String,
    pub created_at: Micros,
    pub description: Option<String>,
}

impl From<&RelayTopic> for TopicRecord {
    fn from(t: &RelayTopic) -> Self {
        TopicRecord {
            topic_id: t.topic_id.clone(),
            topic_name: t.topic_name.clone(),
            owner_id: t.owner_id.clone(),
            created_at: t.created_at,
            description: t.description.clone(),
        }
    }
}

impl From<TopicRecord> for RelayTopic {
    fn from(t: TopicRecord) -> Self {
        RelayTopic {
            topic_id: t.topic_id,
            topic_name: t.topic_name,
            owner_id: t.owner_id,
            created_at: t.created_at,
            description: t.description,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RefreshRecordJson {
    pub jti: String,
    pub user_id: String,
    pub secret_hash: String,
    pub parent_jti: Option<String>,
    pub issued_at: Micros,
    pub expires_at: Micros,
    pub last_used_at: Option<Micros>,
    pub revoked: Option<String>,
    pub client_hint: Option<String>,
}

impl From<&RefreshRecord> for RefreshRecordJson {
    fn from(r: &RefreshRecord) -> Self {
        RefreshRecordJson {
            jti: r.jti.clone(),
            user_id: r.user_id.clone(),
            secret_hash: r.secret_hash.clone(),
            parent_jti: r.parent_jti.clone(),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked: r.revoked.clone(),
            client_hint: r.client_hint.clone(),
        }
    }
}

impl From<RefreshRecordJson> for RefreshRecord {
    fn from(r: RefreshRecordJson) -> Self {
        RefreshRecord {
            jti: r.jti,
            user_id: r.user_id,
            secret_hash: r.secret_hash,
            parent_jti: r.parent_jti,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked: r.revoked,
            client_hint: r.client_hint,
        }
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("relay records always serialize")
}

pub(crate) fn from_json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| HeraldError::internal(format!("corrupt relay {what} record: {e}")))
}

// ---------------------------------------------------------------- idempotency records

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdemRecord {
    pub endpoint: IdemEndpoint,
    pub expires_at: Micros,
    /// `None` while the claim is in flight.
    pub body: Option<Bytes>,
}

impl IdemRecord {
    pub fn encode(&self) -> Vec<u8> {
        let body = self.body.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(11 + body.len());
        out.push(VERSION);
        out.push(u8::from(self.body.is_some()));
        out.push(match self.endpoint {
            IdemEndpoint::Single => 0,
            IdemEndpoint::Bulk => 1,
        });
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    pub fn decode(value: &[u8]) -> Option<IdemRecord> {
        let mut r = Reader::new(value);
        if r.u8()? != VERSION {
            return None;
        }
        let done = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let endpoint = match r.u8()? {
            0 => IdemEndpoint::Single,
            1 => IdemEndpoint::Bulk,
            _ => return None,
        };
        let expires_at = r.i64()?;
        let rest = r.rest();
        if !done && !rest.is_empty() {
            return None;
        }
        Some(IdemRecord { endpoint, expires_at, body: done.then(|| Bytes::copy_from_slice(rest)) })
    }
}

// ---------------------------------------------------------------- topic-history records

const HAS_METADATA: u8 = 1;

/// Everything of a message's record value but the payload, which follows it (see the module docs).
pub(crate) fn encode_message_head(metadata: Option<&[u8]>) -> Vec<u8> {
    let meta = metadata.unwrap_or_default();
    let mut out = Vec::with_capacity(6 + meta.len());
    out.push(VERSION);
    out.push(if metadata.is_some() { HAS_METADATA } else { 0 });
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta);
    out
}

/// (payload, metadata), both slices of `value`.
pub(crate) fn decode_message(value: &Bytes) -> Option<(Bytes, Option<Bytes>)> {
    let mut r = Reader::new(value);
    if r.u8()? != VERSION {
        return None;
    }
    let flags = r.u8()?;
    if flags & !HAS_METADATA != 0 {
        return None;
    }
    let meta_len = r.u32()? as usize;
    let start = value.len() - r.rest().len();
    let payload_at = start.checked_add(meta_len).filter(|end| *end <= value.len())?;
    let metadata = (flags & HAS_METADATA != 0).then(|| value.slice(start..payload_at));
    if metadata.is_none() && meta_len != 0 {
        return None;
    }
    Some((value.slice(payload_at..), metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_values_round_trip() {
        for meta in [None, Some(&b""[..]), Some(&b"{\"k\":\"v\"}"[..])] {
            let mut v = encode_message_head(meta);
            v.extend_from_slice(b"{\"a\":1}");
            let v = Bytes::from(v);
            let (payload, metadata) = decode_message(&v).unwrap();
            assert_eq!(&payload[..], b"{\"a\":1}");
            assert_eq!(metadata.as_deref(), meta);
        }
        let v = Bytes::from(encode_message_head(Some(b"meta")));
        for cut in 0..v.len() {
            assert!(decode_message(&v.slice(..cut)).is_none(), "cut at {cut}");
        }
        assert!(decode_message(&Bytes::from_static(&[2, 0, 0, 0, 0, 0])).is_none());
        assert!(decode_message(&Bytes::from_static(&[1, 4, 0, 0, 0, 0])).is_none());
    }

    #[test]
    fn idem_records_round_trip() {
        let in_flight = IdemRecord { endpoint: IdemEndpoint::Bulk, expires_at: 123, body: None };
        assert_eq!(IdemRecord::decode(&in_flight.encode()), Some(in_flight.clone()));
        let done = IdemRecord { endpoint: IdemEndpoint::Single, expires_at: -5, body: Some(Bytes::from_static(b"{}")) };
        assert_eq!(IdemRecord::decode(&done.encode()), Some(done));
        let empty_body = IdemRecord { endpoint: IdemEndpoint::Single, expires_at: 1, body: Some(Bytes::new()) };
        assert_eq!(IdemRecord::decode(&empty_body.encode()), Some(empty_body));
        let mut bad = in_flight.encode();
        bad.push(1);
        assert_eq!(IdemRecord::decode(&bad), None);
        assert_eq!(IdemRecord::decode(&[1, 0, 0]), None);
    }

    #[test]
    fn expiry_keys_sort_by_time_within_a_kind() {
        let a = expiry_key(ExpiryKind::Idem, -1, b"zz");
        let b = expiry_key(ExpiryKind::Idem, 5, b"aa");
        let c = expiry_key(ExpiryKind::Idem, 6, b"");
        assert!(ExpiryKind::Idem.start() <= a && a < b && b < c);
        assert!(b < expiry_due_end(ExpiryKind::Idem, 5) && c >= expiry_due_end(ExpiryKind::Idem, 5));
        assert!(expiry_key(ExpiryKind::Deny, i64::MAX, b"x") < ExpiryKind::Idem.start());
        assert_eq!(parse_expiry_key(&b), Some((5, &b"aa"[..])));
        assert_eq!(parse_expiry_key(&a), Some((-1, &b"zz"[..])));
    }

    #[test]
    fn pair_keys() {
        let k = pair_key("owner", "name");
        assert!(k.starts_with(&pair_prefix("owner")));
        assert!(!k.starts_with(&pair_prefix("own")));
        assert_eq!(pair_second(&k), Some("name"));
        assert!(check_key_part("owner id", "a\0b").is_err());
    }
}
