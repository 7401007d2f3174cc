//! The stored form of a replay session, keyspace `replay_sessions`.
//!
//! Key: the session id's 16 raw bytes (the id is their 32-character hex form). Value: the version byte `1`, then
//! the [`Record`] as JSON. JSON because a record is small, is rewritten at most once per replayed batch, and is worth
//! being able to read when debugging; the version byte leaves room for a binary form later.

use super::{ReplayEnd, ReplayProgress, ReplaySession, ReplayStart, ReplayStatus};
use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    /// The stream's joined resource path.
    pub stream: String,
    pub start: ReplayStart,
    pub end: ReplayEnd,
    pub sandbox_group: String,
    pub status: ReplayStatus,
    pub progress: ReplayProgress,
    pub created_at: i64,
    pub updated_at: i64,
    /// Whether the replay has reached its start: always for an offset start; for a timestamp start, once the first
    /// message at or after the time has been found (until then `progress.current_offset` only skips older ones).
    pub start_found: bool,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        serde_json::to_writer(&mut out, self).expect("a replay record always serializes");
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        match bytes.split_first() {
            Some((&VERSION, json)) => serde_json::from_slice(json).ok(),
            _ => None,
        }
    }

    pub fn to_session(&self, id: &str) -> ReplaySession {
        ReplaySession {
            id: id.to_owned(),
            stream: self.stream.clone(),
            partition: 0,
            start: self.start,
            end: self.end,
            sandbox_group: self.sandbox_group.clone(),
            status: self.status,
            progress: self.progress,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_versions() {
        let rec = Record {
            stream: "t1/ns1/stream/s".into(),
            start: ReplayStart::Timestamp(5),
            end: ReplayEnd::Offset(9),
            sandbox_group: "_replay_g".into(),
            status: ReplayStatus::Paused,
            progress: ReplayProgress {
                current_offset: 3,
                messages_replayed: 2,
                errors: 1,
                started_at: 7,
                paused_at: 8,
                completed_at: 0,
            },
            created_at: 1,
            updated_at: 2,
            start_found: true,
        };
        let bytes = rec.encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(Record::decode(&bytes), Some(rec));
        let json = std::str::from_utf8(&bytes[1..]).unwrap();
        assert!(json.contains(r#""start":{"timestamp":5}"#), "{json}");
        assert!(json.contains(r#""status":"paused""#), "{json}");
        assert_eq!(Record::decode(&[2, b'{', b'}']), None);
        assert_eq!(Record::decode(&[]), None);
    }
}
