//! The byte format of segment headers and batch frames, with no I/O.
//!
//! Everything the log writes to a `.log` file goes through this module, and everything it reads back comes out of
//! it. Keeping the codec free of files means it can be tested on byte slices cut at every position, fuzzed, and
//! reasoned about on its own (see `docs/storage-format.md` for the layout tables).
//!
//! Decoding follows the "check, then parse" shape of a network protocol codec:
//!
//! * [`peek_header`] looks at the fixed-size frame header and bounds-checks it, without touching the body.
//! * [`decode_frame`] verifies the CRC and the record structure and returns a borrowed [`Frame`] plus the number of
//!   bytes it used.
//!
//! Both return `Ok(None)` when the buffer holds only the beginning of a frame: that is "read more bytes", which is
//! ordinary control flow for a reader and the signature of a torn write for recovery. It is deliberately distinct
//! from `Err(DecodeError)`, which means the bytes can never become a valid frame. A valid frame's every strict
//! prefix decodes to `Ok(None)`; the fuzz harness checks that property.
//!
//! No function here panics, whatever the input: lengths are bounded before they are used and all arithmetic on
//! values read from the input is checked.

use crc32fast::Hasher;
use std::io::IoSlice;

/// Magic bytes at the start of every `.log` segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HRLDSEG\0";
/// The segment format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment file header; the first frame starts at this position.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// Bytes in a frame before its first record: length, CRC, base offset, record count.
pub const FRAME_HEADER_LEN: usize = 20;
/// Bytes of a record before its value: timestamp and value length.
pub const RECORD_HEADER_LEN: usize = 12;
/// Bytes covered by the frame's length field that come before the records (CRC, base offset, record count).
const FRAME_LEN_FIXED: u32 = (FRAME_HEADER_LEN - 4) as u32;
/// The smallest legal value of the length field: one record with an empty value.
pub const MIN_FRAME_LEN: u32 = FRAME_LEN_FIXED + RECORD_HEADER_LEN as u32;
/// The largest legal value of the length field (64 MiB). Anything larger is treated as corruption rather than as
/// a reason to allocate: a flipped bit in a length must not make recovery try to read gigabytes.
pub const MAX_FRAME_LEN: u32 = 64 * 1024 * 1024;
/// The largest encoded frame, length field included.
pub const MAX_FRAME_BYTES: usize = MAX_FRAME_LEN as usize + 4;

/// One record to append: a producer timestamp (Unix nanoseconds) and an opaque value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRecord<'a> {
    pub timestamp: i64,
    /// Bytes stored in front of `value`, as part of the same record value. Lets a caller put its own small header
    /// before a large payload without first copying both into one buffer. Usually empty.
    pub prefix: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> NewRecord<'a> {
    pub fn new(timestamp: i64, value: &'a [u8]) -> Self {
        NewRecord { timestamp, prefix: &[], value }
    }

    /// The stored value's length: prefix and value together.
    pub fn len(&self) -> usize {
        self.prefix.len() + self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a byte sequence is not (and can never become) a valid frame.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame length {0} is below the minimum {MIN_FRAME_LEN}")]
    LengthTooSmall(u32),
    #[error("frame length {0} exceeds the maximum {MAX_FRAME_LEN}")]
    LengthTooLarge(u32),
    #[error("frame declares zero records")]
    NoRecords,
    #[error("frame declares {count} records, which cannot fit in {frame_len} bytes")]
    TooManyRecords { count: u32, frame_len: u32 },
    #[error("frame base offset {base_offset} plus {count} records overflows u64")]
    OffsetOverflow { base_offset: u64, count: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("record {index} runs past the end of the frame")]
    RecordOverrun { index: u32 },
    #[error("{0} bytes left over after the last record")]
    TrailingBytes(usize),
}

/// Why a batch cannot be encoded.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    #[error("a batch must contain at least one record")]
    Empty,
    #[error("batch encodes to {bytes} bytes, above the frame limit of {MAX_FRAME_BYTES}")]
    TooLarge { bytes: u64 },
    #[error("base offset {base_offset} plus {count} records overflows u64")]
    OffsetOverflow { base_offset: u64, count: usize },
}

/// Why a segment header is unusable.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("segment header is {0} bytes, need {SEGMENT_HEADER_LEN}")]
    Short(usize),
    #[error("bad segment magic")]
    BadMagic,
    #[error("segment header length field is {0}")]
    BadLength(u32),
    #[error("segment header checksum mismatch")]
    ChecksumMismatch,
    #[error("unsupported segment format version {0}")]
    UnsupportedVersion(u32),
}

// ---------------------------------------------------------------------------------------------------------------
// Little-endian field access. `get` returns None instead of panicking, so every caller handles short input.

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn le_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn le_i64(buf: &[u8], at: usize) -> Option<i64> {
    le_u64(buf, at).map(|v| v as i64)
}

// ---------------------------------------------------------------------------------------------------------------
// Segment header

/// The header at the start of every `.log` file.
///
/// Layout (little-endian): magic `[u8; 8]`, version `u32`, header length `u32`, base offset `u64`, reserved `u32`
/// (zero), CRC32 of the preceding 28 bytes `u32`. The magic, version and length are in the first 16 bytes and will
/// stay there in every future version, so an older build can recognise a newer file and refuse it instead of
/// "repairing" it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub base_offset: u64,
}

impl SegmentHeader {
    pub fn new(base_offset: u64) -> Self {
        SegmentHeader { version: FORMAT_VERSION, base_offset }
    }

    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        // 24..28 reserved, zero.
        let crc = crc32fast::hash(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header from the first bytes of a segment file.
    ///
    /// The checksum is verified before the version is looked at, so a bit flip in the version field reads as
    /// corruption, not as "written by a newer Herald".
    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if buf.len() < SEGMENT_HEADER_LEN {
            return Err(HeaderError::Short(buf.len()));
        }
        if buf[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let header_len = le_u32(buf, 12).ok_or(HeaderError::Short(buf.len()))?;
        if header_len as usize != SEGMENT_HEADER_LEN {
            // Only version 1 exists; its header is exactly 32 bytes.
            return Err(HeaderError::BadLength(header_len));
        }
        let stored = le_u32(buf, 28).ok_or(HeaderError::Short(buf.len()))?;
        if crc32fast::hash(&buf[0..28]) != stored {
            return Err(HeaderError::ChecksumMismatch);
        }
        let version = le_u32(buf, 8).ok_or(HeaderError::Short(buf.len()))?;
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let base_offset = le_u64(buf, 16).ok_or(HeaderError::Short(buf.len()))?;
        Ok(SegmentHeader { version, base_offset })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Batch frames

/// The fixed-size start of a frame, readable before the rest has arrived.
///
/// Its fields are bounds-checked but not covered by a verified checksum yet: recovery uses them only to estimate how
/// many records a torn or corrupt frame held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Value of the length field: bytes after the field itself (CRC through the last record).
    pub frame_len: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub record_count: u32,
}

impl FrameHeader {
    /// Total bytes the frame occupies, length field included.
    pub fn total_len(&self) -> usize {
        self.frame_len as usize + 4
    }

    /// The offset after the frame's last record. Cannot overflow: [`peek_header`] rejects frames where it would.
    pub fn next_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.record_count))
    }
}

/// A decoded, checksum-verified frame borrowing its records from the input buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    /// The record area: `record_count` records, structure already validated.
    records: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Re-creates a frame from bytes that [`decode_frame`] accepted earlier (`buf` starts at the frame). Used by the
    /// file scanner to hand out a borrow without decoding twice.
    pub(crate) fn from_validated(header: FrameHeader, buf: &'a [u8]) -> Frame<'a> {
        let end = header.total_len().min(buf.len());
        let records = buf.get(FRAME_HEADER_LEN..end).unwrap_or(&[]);
        Frame { header, records }
    }

    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// The offset after this frame's last record.
    pub fn next_offset(&self) -> u64 {
        self.header.next_offset()
    }

    pub fn encoded_len(&self) -> usize {
        self.header.total_len()
    }

    pub fn records(&self) -> RecordIter<'a> {
        RecordIter { rest: self.records, next_offset: self.header.base_offset, remaining: self.header.record_count }
    }

    /// The largest record timestamp in the frame.
    pub fn max_timestamp(&self) -> i64 {
        self.records().map(|r| r.timestamp).max().unwrap_or(i64::MIN)
    }
}

/// One record inside a decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub value: &'a [u8],
}

/// Iterator over a frame's records, in offset order.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    next_offset: u64,
    remaining: u32,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The structure was validated by decode_frame; stay defensive anyway and end the iteration rather than
        // panic if that ever stops being true.
        let (timestamp, value, rest) = split_record(self.rest)?;
        let item = RecordRef { offset: self.next_offset, timestamp, value };
        self.rest = rest;
        self.remaining -= 1;
        self.next_offset = self.next_offset.saturating_add(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// Splits one record off the front of `buf`: its timestamp, its value, and the bytes after it.
fn split_record(buf: &[u8]) -> Option<(i64, &[u8], &[u8])> {
    let timestamp = le_i64(buf, 0)?;
    let value_len = le_u32(buf, 8)? as usize;
    let end = RECORD_HEADER_LEN.checked_add(value_len)?;
    let value = buf.get(RECORD_HEADER_LEN..end)?;
    let rest = buf.get(end..)?;
    Some((timestamp, value, rest))
}

/// Reads and bounds-checks a frame header ("check" step).
///
/// `Ok(None)`: fewer than [`FRAME_HEADER_LEN`] bytes, or only the length field and it is plausible. `Err`: the
/// bytes present already rule out a valid frame.
pub fn peek_header(buf: &[u8]) -> Result<Option<FrameHeader>, DecodeError> {
    let Some(frame_len) = le_u32(buf, 0) else {
        return Ok(None);
    };
    if frame_len < MIN_FRAME_LEN {
        return Err(DecodeError::LengthTooSmall(frame_len));
    }
    if frame_len > MAX_FRAME_LEN {
        return Err(DecodeError::LengthTooLarge(frame_len));
    }
    let (Some(crc), Some(base_offset), Some(record_count)) = (le_u32(buf, 4), le_u64(buf, 8), le_u32(buf, 16)) else {
        return Ok(None);
    };
    if record_count == 0 {
        return Err(DecodeError::NoRecords);
    }
    let min_len = u64::from(FRAME_LEN_FIXED) + u64::from(record_count) * RECORD_HEADER_LEN as u64;
    if min_len > u64::from(frame_len) {
        return Err(DecodeError::TooManyRecords { count: record_count, frame_len });
    }
    if base_offset.checked_add(u64::from(record_count)).is_none() {
        return Err(DecodeError::OffsetOverflow { base_offset, count: record_count });
    }
    Ok(Some(FrameHeader { frame_len, crc, base_offset, record_count }))
}

/// Decodes the frame at the start of `buf`.
///
/// Returns the frame and the number of bytes it occupies, `Ok(None)` if `buf` holds only part of a frame, or an
/// error if the bytes are not a valid frame (bad length, checksum mismatch, inconsistent record structure).
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    let Some(header) = peek_header(buf)? else {
        return Ok(None);
    };
    let total = header.total_len();
    let Some(frame) = buf.get(..total) else {
        return Ok(None);
    };
    let computed = crc32fast::hash(&frame[8..]);
    if computed != header.crc {
        return Err(DecodeError::ChecksumMismatch { stored: header.crc, computed });
    }
    let records = &frame[FRAME_HEADER_LEN..];
    let mut rest = records;
    for index in 0..header.record_count {
        let Some((_, _, after)) = split_record(rest) else {
            return Err(DecodeError::RecordOverrun { index });
        };
        rest = after;
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(Some((Frame { header, records }, total)))
}

/// The encoded size of a frame holding `records`, or why it cannot be encoded.
pub fn encoded_len(records: &[NewRecord<'_>]) -> Result<usize, EncodeError> {
    if records.is_empty() {
        return Err(EncodeError::Empty);
    }
    let mut total = FRAME_HEADER_LEN as u64;
    for r in records {
        total = total.saturating_add(RECORD_HEADER_LEN as u64).saturating_add(r.len() as u64);
    }
    if total > MAX_FRAME_BYTES as u64 {
        return Err(EncodeError::TooLarge { bytes: total });
    }
    Ok(total as usize)
}

/// Values at least this long are written to the file straight from the caller's buffer (one more slice for the
/// vectored write); shorter ones are copied into the frame's own buffer, where copying is cheaper than a slice.
const BORROW_VALUE_BYTES: usize = 512;

/// A piece of a prepared frame, in file order.
enum Piece<'a> {
    /// A range of the frame's own buffer (headers, prefixes and short values).
    Own(std::ops::Range<usize>),
    /// A record value written from the caller's buffer.
    Borrowed(&'a [u8]),
}

/// A frame encoded except for its base offset and checksum.
///
/// The append path builds this before taking the log's lock and finishes it under the lock, where the base offset
/// becomes known. The record bytes are hashed up front and the hash is combined with the 12 header bytes later,
/// so the lock is never held while checksumming a large batch.
///
/// Large record values are not copied: the frame keeps the headers (and short values) in a buffer of its own and
/// refers to the caller's values, and the segment writes all the pieces with one vectored write. A 256 KiB batch
/// thus reaches the page cache with one copy (the kernel's) instead of two.
pub struct PreparedFrame<'a> {
    own: Vec<u8>,
    pieces: Vec<Piece<'a>>,
    len: usize,
    records_crc: Hasher,
    record_count: u32,
    max_timestamp: i64,
}

impl<'a> PreparedFrame<'a> {
    pub fn new(records: &[NewRecord<'a>]) -> Result<PreparedFrame<'a>, EncodeError> {
        let total = encoded_len(records)?;
        // encoded_len bounds the total to MAX_FRAME_BYTES, so the count and lengths below fit in u32.
        let record_count = records.len() as u32;
        let borrowed: usize =
            records.iter().filter(|r| r.value.len() >= BORROW_VALUE_BYTES).map(|r| r.value.len()).sum();
        let mut own = Vec::with_capacity(total - borrowed);
        own.extend_from_slice(&((total - 4) as u32).to_le_bytes());
        own.extend_from_slice(&[0u8; 4]); // CRC, filled in by finish()
        own.extend_from_slice(&[0u8; 8]); // base offset, filled in by finish()
        own.extend_from_slice(&record_count.to_le_bytes());
        let mut pieces = Vec::new();
        let mut records_crc = Hasher::new();
        // Start of the part of `own` not yet covered by a piece (and not yet hashed).
        let mut open = 0;
        // Ends the open part of `own` as a piece; the frame header in it is hashed later, by finish().
        let close = |own: &[u8], open: usize, pieces: &mut Vec<Piece<'a>>, crc: &mut Hasher| {
            crc.update(&own[open.max(FRAME_HEADER_LEN)..]);
            pieces.push(Piece::Own(open..own.len()));
        };
        let mut max_timestamp = i64::MIN;
        for r in records {
            own.extend_from_slice(&r.timestamp.to_le_bytes());
            own.extend_from_slice(&(r.len() as u32).to_le_bytes());
            own.extend_from_slice(r.prefix);
            if r.value.len() >= BORROW_VALUE_BYTES {
                close(&own, open, &mut pieces, &mut records_crc);
                records_crc.update(r.value);
                pieces.push(Piece::Borrowed(r.value));
                open = own.len();
            } else {
                own.extend_from_slice(r.value);
            }
            max_timestamp = max_timestamp.max(r.timestamp);
        }
        if open < own.len() {
            close(&own, open, &mut pieces, &mut records_crc);
        }
        Ok(PreparedFrame { own, pieces, len: total, records_crc, record_count, max_timestamp })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Stamps the base offset and checksum and returns the finished frame as slices to write in order.
    pub fn finish(&mut self, base_offset: u64) -> Result<Vec<IoSlice<'_>>, EncodeError> {
        if base_offset.checked_add(u64::from(self.record_count)).is_none() {
            return Err(EncodeError::OffsetOverflow { base_offset, count: self.record_count as usize });
        }
        self.own[8..16].copy_from_slice(&base_offset.to_le_bytes());
        let mut crc = Hasher::new();
        crc.update(&self.own[8..FRAME_HEADER_LEN]);
        crc.combine(&self.records_crc);
        self.own[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        let own = &self.own;
        Ok(self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Own(range) => IoSlice::new(&own[range.clone()]),
                Piece::Borrowed(value) => IoSlice::new(value),
            })
            .collect())
    }
}

/// Encodes a complete frame and appends it to `out`; returns the number of bytes written.
pub fn encode_frame(base_offset: u64, records: &[NewRecord<'_>], out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let mut frame = PreparedFrame::new(records)?;
    let len = frame.len();
    out.reserve(len);
    for piece in frame.finish(base_offset)? {
        out.extend_from_slice(&piece);
    }
    Ok(len)
}

// ---------------------------------------------------------------------------------------------------------------
// Fuzzing

/// Feeds arbitrary bytes to every decoder in the crate and checks the properties the log relies on.
///
/// Used by the cargo-fuzz target `log_frame_decode` and by a deterministic unit test. It panics only if a property
/// is violated (which is a bug), never because the input is garbage:
///
/// * decoding never panics, and walking the buffer frame by frame (skipping one byte after an error, as a scanner
///   hunting for the next frame would) terminates;
/// * a frame that decodes re-encodes to exactly the same bytes and yields `record_count` records with consecutive
///   offsets;
/// * every strict prefix of a decodable frame is reported as incomplete (`Ok(None)`), never as corrupt, because
///   recovery relies on that to tell a torn tail from a damaged one.
pub fn fuzz_decode(data: &[u8]) {
    let mut pos = 0;
    while pos < data.len() {
        let buf = &data[pos..];
        match decode_frame(buf) {
            Ok(Some((frame, used))) => {
                assert!(used >= MIN_FRAME_LEN as usize + 4 && used <= buf.len());
                check_decoded_frame(&frame, &buf[..used]);
                for cut in [0, 1, 3, 4, 19, 20, 21, used / 2, used - 1] {
                    if cut < used {
                        assert!(matches!(decode_frame(&buf[..cut]), Ok(None)), "prefix {cut} of {used} not incomplete");
                    }
                }
                pos += used;
            }
            Ok(None) => break,
            Err(_) => pos += 1,
        }
    }
    let _ = SegmentHeader::decode(data);
    crate::index::fuzz_parse(data);
}

fn check_decoded_frame(frame: &Frame<'_>, bytes: &[u8]) {
    let records: Vec<RecordRef<'_>> = frame.records().collect();
    assert_eq!(records.len(), frame.record_count() as usize);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, frame.base_offset() + i as u64);
    }
    let new: Vec<NewRecord<'_>> =
        records.iter().map(|r| NewRecord { timestamp: r.timestamp, prefix: &[], value: r.value }).collect();
    let mut out = Vec::new();
    let written = encode_frame(frame.base_offset(), &new, &mut out).expect("a decoded frame re-encodes");
    assert_eq!(written, bytes.len());
    assert_eq!(out, bytes, "re-encoding differs from the decoded bytes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn sample_frame(base: u64) -> Vec<u8> {
        let values: [&[u8]; 3] = [b"alpha", b"", b"gamma-gamma"];
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| NewRecord { timestamp: 1_000 + i as i64, prefix: &[], value: v })
            .collect();
        let mut out = Vec::new();
        encode_frame(base, &records, &mut out).unwrap();
        out
    }

    #[test]
    fn round_trip() {
        let bytes = sample_frame(42);
        let (frame, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.base_offset(), 42);
        assert_eq!(frame.next_offset(), 45);
        assert_eq!(frame.max_timestamp(), 1_002);
        let recs: Vec<_> = frame.records().collect();
        assert_eq!(recs[0], RecordRef { offset: 42, timestamp: 1_000, value: b"alpha" });
        assert_eq!(recs[1], RecordRef { offset: 43, timestamp: 1_001, value: b"" });
        assert_eq!(recs[2].value, b"gamma-gamma");
    }

    #[test]
    fn a_prefix_is_stored_in_front_of_the_value() {
        let records = [
            NewRecord { timestamp: 1, prefix: b"head:", value: b"body" },
            NewRecord { timestamp: 2, prefix: b"only-prefix", value: b"" },
            NewRecord::new(3, b"plain"),
        ];
        assert_eq!(encoded_len(&records).unwrap(), FRAME_HEADER_LEN + 3 * 12 + 9 + 11 + 5);
        let mut bytes = Vec::new();
        encode_frame(7, &records, &mut bytes).unwrap();
        let (frame, _) = decode_frame(&bytes).unwrap().unwrap();
        let values: Vec<&[u8]> = frame.records().map(|r| r.value).collect();
        assert_eq!(values, [&b"head:body"[..], b"only-prefix", b"plain"]);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let bytes = sample_frame(7);
        for cut in 0..bytes.len() {
            assert!(matches!(decode_frame(&bytes[..cut]), Ok(None)), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_data_after_frame_is_left_alone() {
        let mut bytes = sample_frame(0);
        let len = bytes.len();
        bytes.extend_from_slice(&sample_frame(3));
        let (_, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, len);
        let (second, _) = decode_frame(&bytes[used..]).unwrap().unwrap();
        assert_eq!(second.base_offset(), 3);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample_frame(9);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                match decode_frame(&damaged) {
                    Err(_) | Ok(None) => {}
                    Ok(Some(_)) => panic!("flip of bit {bit} in byte {i} went unnoticed"),
                }
            }
        }
    }

    #[test]
    fn rejects_bad_lengths_and_counts() {
        let mut zero = vec![0u8; 64];
        assert_eq!(decode_frame(&zero).unwrap_err(), DecodeError::LengthTooSmall(0));
        zero[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_frame(&zero).unwrap_err(), DecodeError::LengthTooLarge(u32::MAX));

        let mut bytes = sample_frame(0);
        bytes[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(peek_header(&bytes).unwrap_err(), DecodeError::NoRecords);
        bytes[16..20].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(matches!(peek_header(&bytes), Err(DecodeError::TooManyRecords { .. })));

        let mut bytes = sample_frame(0);
        bytes[8..16].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert!(matches!(peek_header(&bytes), Err(DecodeError::OffsetOverflow { .. })));
    }

    #[test]
    fn structural_errors_behind_a_valid_checksum() {
        // A frame whose CRC is right but whose record lengths disagree with the frame length: only a buggy writer
        // produces this, and the decoder must still refuse it without panicking.
        let mut bytes = sample_frame(0);
        let first_value_len_at = FRAME_HEADER_LEN + 8;
        bytes[first_value_len_at..first_value_len_at + 4].copy_from_slice(&1_000u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_frame(&bytes), Err(DecodeError::RecordOverrun { .. })));

        let mut bytes = Vec::new();
        encode_frame(0, &[NewRecord { timestamp: 0, prefix: &[], value: b"alpha" }], &mut bytes).unwrap();
        bytes[first_value_len_at..first_value_len_at + 4].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_frame(&bytes), Err(DecodeError::TrailingBytes(3))));
    }

    #[test]
    fn encode_limits() {
        assert_eq!(encoded_len(&[]), Err(EncodeError::Empty));
        let big = vec![0u8; MAX_FRAME_BYTES];
        assert!(matches!(
            encoded_len(&[NewRecord { timestamp: 0, prefix: &[], value: &big }]),
            Err(EncodeError::TooLarge { .. })
        ));
        let mut out = Vec::new();
        let r = [NewRecord { timestamp: 0, prefix: &[], value: b"x" }];
        assert!(matches!(encode_frame(u64::MAX, &r, &mut out), Err(EncodeError::OffsetOverflow { .. })));
        assert!(encode_frame(u64::MAX - 1, &r, &mut out).is_ok());
    }

    #[test]
    fn prepared_frame_matches_direct_hash() {
        let records = [
            NewRecord { timestamp: -5, prefix: &[], value: b"combine me" },
            NewRecord { timestamp: 5, prefix: &[], value: b"!" },
        ];
        let mut prepared = PreparedFrame::new(&records).unwrap();
        let bytes = joined(&prepared.finish(1234).unwrap());
        assert_eq!(crc32fast::hash(&bytes[8..]), u32::from_le_bytes(bytes[4..8].try_into().unwrap()));
        assert!(decode_frame(&bytes).unwrap().is_some());
    }

    fn joined(pieces: &[IoSlice<'_>]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    /// Large values are written from the caller's buffers and short ones copied; either way the pieces make up
    /// exactly the frame a single buffer would hold, checksum included.
    #[test]
    fn prepared_frame_borrows_large_values() {
        let big: Vec<u8> = (0..BORROW_VALUE_BYTES as u32 * 3).map(|i| (i % 251) as u8).collect();
        let small = b"short value";
        let records = [
            NewRecord { timestamp: 1, prefix: b"hdr", value: &big },
            NewRecord { timestamp: 2, prefix: &[], value: small },
            NewRecord { timestamp: 3, prefix: &[], value: small },
            NewRecord { timestamp: 4, prefix: b"h", value: &big[..BORROW_VALUE_BYTES] },
            NewRecord { timestamp: 5, prefix: &[], value: &big[..BORROW_VALUE_BYTES - 1] },
        ];
        let mut prepared = PreparedFrame::new(&records).unwrap();
        assert_eq!(prepared.len(), encoded_len(&records).unwrap());
        let pieces = prepared.finish(77).unwrap();
        // [frame header, record 1's header and prefix], big, [records 2 and 3, record 4's header and prefix],
        // big[..512], [record 5, copied since it is one byte short of the threshold].
        assert_eq!(pieces.len(), 5);
        assert_eq!(pieces[1].as_ptr(), big.as_ptr(), "the large value is not copied");
        assert_eq!(pieces[3].as_ptr(), big.as_ptr());
        let bytes = joined(&pieces);
        assert_eq!(bytes.len(), encoded_len(&records).unwrap());
        let (frame, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.base_offset(), 77);
        let decoded: Vec<_> = frame.records().map(|r| (r.timestamp, r.value.to_vec())).collect();
        let expected: Vec<_> = records.iter().map(|r| (r.timestamp, [r.prefix, r.value].concat())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn segment_header_round_trip_and_damage() {
        let h = SegmentHeader::new(123_456);
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        assert_eq!(SegmentHeader::decode(&bytes[..10]), Err(HeaderError::Short(10)));
        for i in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[i] ^= 0x10;
            assert!(SegmentHeader::decode(&damaged).is_err(), "byte {i}");
        }
        // A newer version with a valid checksum is reported as such, so the log refuses to touch it.
        let mut newer = bytes;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&newer[0..28]);
        newer[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&newer), Err(HeaderError::UnsupportedVersion(2)));
    }

    /// Thousands of deterministic random, truncated and mutated buffers through every decoder: none may panic.
    #[test]
    fn fuzz_decode_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x4845_5241_4c44);
        let mut valid = Vec::new();
        for base in [0u64, 17, 1 << 40] {
            valid.extend_from_slice(&sample_frame(base));
        }
        for _ in 0..4_000 {
            let kind = rng.random_range(0..5);
            let input: Vec<u8> = match kind {
                // Pure noise of random length.
                0 => (0..rng.random_range(0..256)).map(|_| rng.random()).collect(),
                // Valid frames, truncated anywhere.
                1 => valid[..rng.random_range(0..=valid.len())].to_vec(),
                // Valid frames with a few random bytes overwritten.
                2 => {
                    let mut v = valid.clone();
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(0..v.len());
                        v[i] = rng.random();
                    }
                    v
                }
                // Noise that starts with a plausible length field, to get past the first check.
                3 => {
                    let len = rng.random_range(MIN_FRAME_LEN..MIN_FRAME_LEN + 200);
                    let mut v = len.to_le_bytes().to_vec();
                    v.extend((0..rng.random_range(0..260)).map(|_| rng.random::<u8>()));
                    v
                }
                // Garbage between and around valid frames.
                _ => {
                    let mut v: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
                    v.extend_from_slice(&valid);
                    v.extend((0..rng.random_range(0..40)).map(|_| rng.random::<u8>()));
                    v
                }
            };
            fuzz_decode(&input);
        }
    }
}
