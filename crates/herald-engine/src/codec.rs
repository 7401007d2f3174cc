//! Byte encodings of the records the engine stores (stream message values in the log, queue jobs and KV entries in
//! fjall). Each starts with a version byte so the format can evolve; every decoder checks lengths and returns `None`
//! on malformed input instead of panicking. Layouts are in docs/storage-format.md.

use crate::api::Headers;
use bytes::Bytes;

pub(crate) const VERSION: u8 = 1;

/// Appends length-prefixed headers.
pub(crate) fn put_headers(out: &mut Vec<u8>, headers: &Headers) {
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// A bounds-checked reader over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    pub fn headers(&mut self) -> Option<Headers> {
        let n = self.u32()? as usize;
        let mut h = Headers::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
            h.insert(k, v);
        }
        Some(h)
    }
    pub fn rest(self) -> &'a [u8] {
        self.buf
    }
}

/// A stream message as stored in the log record's value (the log record carries offset and timestamp).
pub(crate) struct StoredMessage {
    pub id: [u8; 16],
    pub schema_version: i32,
    pub headers: Headers,
    pub payload: Bytes,
}

/// Everything of a stored message but its payload, which follows it in the record value. The log writes the two
/// parts back to back (`NewRecord::prefix`), so the payload is never copied into an intermediate buffer.
pub(crate) fn encode_message_header(id: &[u8; 16], schema_version: i32, headers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 16 + 4 + 4 + headers.len() * 16);
    out.push(VERSION);
    out.extend_from_slice(id);
    out.extend_from_slice(&schema_version.to_be_bytes());
    put_headers(&mut out, headers);
    out
}

#[cfg(test)]
pub(crate) fn encode_message(id: &[u8; 16], schema_version: i32, headers: &Headers, payload: &[u8]) -> Vec<u8> {
    let mut out = encode_message_header(id, schema_version, headers);
    out.extend_from_slice(payload);
    out
}

pub(crate) fn decode_message(value: &Bytes) -> Option<StoredMessage> {
    let mut r = Reader::new(value);
    if r.u8()? != VERSION {
        return None;
    }
    let id: [u8; 16] = r.take(16)?.try_into().ok()?;
    let schema_version = r.i32()?;
    let headers = r.headers()?;
    let consumed = value.len() - r.rest().len();
    Some(StoredMessage { id, schema_version, headers, payload: value.slice(consumed..) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip_and_garbage() {
        let mut h = Headers::new();
        h.insert("k".into(), "v".into());
        let enc = Bytes::from(encode_message(&[7; 16], 3, &h, b"payload"));
        let m = decode_message(&enc).unwrap();
        assert_eq!(m.id, [7; 16]);
        assert_eq!(m.schema_version, 3);
        assert_eq!(m.headers, h);
        assert_eq!(&m.payload[..], b"payload");
        for cut in 0..enc.len() - 7 {
            assert!(decode_message(&enc.slice(..cut)).is_none(), "cut at {cut}");
        }
        assert!(decode_message(&Bytes::from_static(&[9, 9, 9])).is_none());
    }
}
