//! The byte layout of addressed events (also in docs/storage-format.md, "Addressed events").
//!
//! **Events log** (`<data>/events/`, one `herald-log`): one record per event, at offset `block - 1`; the record's
//! timestamp is `logged_at` in nanoseconds (age retention). Value:
//!
//! ```text
//! version u8 (=1) | idem_len u8 | idem | recipient [32] | sender [32] | logged_at_ms i64 BE
//! | name_len u16 BE | name | metadata_len u32 BE | metadata | pm_flag u8 (0/1) | [pm_len u32 BE | pm] | payload (rest)
//! ```
//!
//! **fjall keyspaces**:
//! - `event_closed`: block u64 BE → `A` (acked) or `D` (discarded).
//! - `event_deferred`: block u64 BE → until_ms i64 BE. Removed with the event's closing.
//! - `event_meta`: `watermark` → u64 BE: every block below it is closed (recovery scans the log from there).
//! - `event_sessions`: client id → identity [32] | last_seen_ms i64 BE (gRPC sessions only).

use super::api::{EpochMs, PublicKey, StoredEvent};
use herald_types::{HeraldError, Result};

const VERSION: u8 = 1;

pub(crate) const ACKED: u8 = b'A';
pub(crate) const DISCARDED: u8 = b'D';
pub(crate) const WATERMARK: &[u8] = b"watermark";

pub(crate) fn encode_event(e: &StoredEvent) -> Vec<u8> {
    let pm = e.payload_metadata.as_deref();
    let mut out = Vec::with_capacity(
        1 + 1
            + e.idem.len()
            + 64
            + 8
            + 2
            + e.name.len()
            + 4
            + e.metadata.len()
            + 5
            + pm.map_or(0, str::len)
            + e.payload.len(),
    );
    out.push(VERSION);
    out.push(e.idem.len() as u8);
    out.extend_from_slice(e.idem.as_bytes());
    out.extend_from_slice(&e.recipient);
    out.extend_from_slice(&e.sender);
    out.extend_from_slice(&e.logged_at.to_be_bytes());
    out.extend_from_slice(&(e.name.len() as u16).to_be_bytes());
    out.extend_from_slice(e.name.as_bytes());
    out.extend_from_slice(&(e.metadata.len() as u32).to_be_bytes());
    out.extend_from_slice(e.metadata.as_bytes());
    match pm {
        None => out.push(0),
        Some(pm) => {
            out.push(1);
            out.extend_from_slice(&(pm.len() as u32).to_be_bytes());
            out.extend_from_slice(pm.as_bytes());
        }
    }
    out.extend_from_slice(e.payload.as_bytes());
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(corrupt)?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn key(&mut self) -> Result<PublicKey> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
    fn string(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt())
    }
}

fn corrupt() -> HeraldError {
    HeraldError::internal("corrupt event record")
}

pub(crate) fn decode_event(block: u64, value: &[u8]) -> Result<StoredEvent> {
    let mut r = Reader { buf: value, at: 0 };
    if r.u8()? != VERSION {
        return Err(corrupt());
    }
    let n = r.u8()? as usize;
    let idem = r.string(n)?;
    let recipient = r.key()?;
    let sender = r.key()?;
    let logged_at = i64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let n = r.u16()?;
    let name = r.string(n)?;
    let n = r.u32()?;
    let metadata = r.string(n)?;
    let payload_metadata = match r.u8()? {
        0 => None,
        _ => {
            let n = r.u32()?;
            Some(r.string(n)?)
        }
    };
    let rest = value.len() - r.at;
    let payload = r.string(rest)?;
    Ok(StoredEvent { idem, block, name, recipient, sender, payload, metadata, payload_metadata, logged_at })
}

pub(crate) fn session_value(identity: &PublicKey, last_seen: EpochMs) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(identity);
    v.extend_from_slice(&last_seen.to_be_bytes());
    v
}

pub(crate) fn parse_session_value(v: &[u8]) -> Option<(PublicKey, EpochMs)> {
    let identity: PublicKey = v.get(..32)?.try_into().ok()?;
    let seen = i64::from_be_bytes(v.get(32..40)?.try_into().ok()?);
    Some((identity, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        for pm in [None, Some("{\"byte_size\": 3}".to_string())] {
            let e = StoredEvent {
                idem: "12-00ff00ff00ff00ff".into(),
                block: 12,
                name: "orders/créé".into(),
                recipient: [1; 32],
                sender: [2; 32],
                payload: "eyJub25jZSI6".into(),
                metadata: "{\"k\": \"v\"}".into(),
                payload_metadata: pm,
                logged_at: 1_732_291_200_123,
            };
            let bytes = encode_event(&e);
            assert_eq!(decode_event(12, &bytes).unwrap(), e);
            for cut in 0..bytes.len() - e.payload.len() {
                assert!(decode_event(12, &bytes[..cut]).is_err(), "truncated at {cut}");
            }
        }
    }

    #[test]
    fn sessions_round_trip() {
        let v = session_value(&[9; 32], -5);
        assert_eq!(parse_session_value(&v), Some(([9; 32], -5)));
        assert_eq!(parse_session_value(&v[..39]), None);
    }
}
