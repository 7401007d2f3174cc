//! One segment: a `.log` file of frames plus its in-memory sparse index, and the scanner that walks its frames.
//!
//! A segment is named by its base offset (the offset of its first record), zero-padded to 20 digits so that names
//! sort in offset order: `00000000000000001234.log`, `.index`, `.timeindex`. Only the last segment of a log (the
//! *active* one) is written to; the others are *sealed*: fsynced, immutable, and deleted only whole by retention.
//!
//! Positions in a segment are byte offsets in its `.log` file. `size` counts only bytes of complete frames, so a
//! reader that stays below a snapshot of `size` never sees a frame that is still being written.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{self, DecodeError, Frame, FrameHeader, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::fileio::{read_exact_at, write_all_at, write_all_vectored_at};
use crate::index::{self, IndexEntry, IndexWriter};

/// Largest allowed `segment_max_bytes`. Index entries store positions as `u32`, and a segment can exceed its limit
/// by at most one frame, so 2 GiB keeps every position representable.
pub const MAX_SEGMENT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// How much a scanner reads at a time when frames are small.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Log,
    OffsetIndex,
    TimeIndex,
    /// A temporary file from an index rewrite interrupted by a crash.
    Temp,
}

pub fn log_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

/// Recognises the log's own files: a 20-digit base offset and a known extension.
pub fn parse_file_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, kind) = if let Some(s) = name.strip_suffix(".tmp") {
        (s.split('.').next()?, FileKind::Temp)
    } else if let Some(s) = name.strip_suffix(".log") {
        (s, FileKind::Log)
    } else if let Some(s) = name.strip_suffix(".index") {
        (s, FileKind::OffsetIndex)
    } else if let Some(s) = name.strip_suffix(".timeindex") {
        (s, FileKind::TimeIndex)
    } else {
        return None;
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, kind))
}

/// A write of a frame failed.
pub struct AppendError {
    pub error: io::Error,
    /// Whether the file was cut back to its previous size. If not, the segment may end in a partial frame and must
    /// not be appended to again until recovery has run.
    pub rewound: bool,
}

pub struct Segment {
    pub base_offset: u64,
    /// Offset after the last record. For a sealed segment this is the next segment's base offset.
    pub next_offset: u64,
    /// Bytes of the `.log` file that hold the header and complete frames.
    pub size: u64,
    /// Largest record timestamp, `None` while the segment has no records.
    pub max_timestamp: Option<i64>,
    pub file: Arc<File>,
    pub path: Arc<Path>,
    /// The sparse index, shared by offset and time lookups.
    pub entries: Vec<IndexEntry>,
    /// Frame bytes written since the last index entry.
    pub bytes_since_index: u64,
    /// Handles on the index files; only the active segment has them.
    pub index: Option<IndexWriter>,
}

impl Segment {
    /// Creates a new, empty active segment and makes its header durable. The caller fsyncs the directory.
    ///
    /// Refuses to overwrite an existing file: a segment with this base offset would have been found by recovery and
    /// made the active one, so finding one here means something else is writing to the directory.
    pub fn create(dir: &Path, base_offset: u64) -> io::Result<Segment> {
        let path = log_path(dir, base_offset);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let finish = || -> io::Result<IndexWriter> {
            write_all_at(&file, &SegmentHeader::new(base_offset).encode(), 0)?;
            file.sync_data()?;
            IndexWriter::create(dir, base_offset)
        };
        let index = match finish() {
            Ok(index) => index,
            Err(e) => {
                // Leave nothing half-made behind (recovery would cope, but the log keeps running meanwhile and
                // would retry this roll on the next append).
                for leftover in
                    [path.clone(), index::offset_index_path(dir, base_offset), index::time_index_path(dir, base_offset)]
                {
                    let _ = std::fs::remove_file(leftover);
                }
                return Err(e);
            }
        };
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: SEGMENT_HEADER_LEN as u64,
            max_timestamp: None,
            file: Arc::new(file),
            path: path.into(),
            entries: Vec::new(),
            bytes_since_index: 0,
            index: Some(index),
        })
    }

    pub fn record_count(&self) -> u64 {
        self.next_offset - self.base_offset
    }

    /// Writes one finished frame (`frame_len` bytes, in pieces) at the end of the segment and records an index entry
    /// for it when `index_interval` bytes have been written since the last one.
    pub fn append(
        &mut self,
        frame: &mut [IoSlice<'_>],
        frame_len: u64,
        record_count: u32,
        max_timestamp: i64,
        index_interval: u64,
    ) -> Result<(), AppendError> {
        let position = self.size;
        if let Err(error) = write_all_vectored_at(&self.file, frame, position) {
            // A partial frame would be harmless to recovery (its CRC fails) but would make the next frame start at
            // the wrong place if we appended after it, so cut it off.
            let rewound = self.file.set_len(position).is_ok();
            return Err(AppendError { error, rewound });
        }
        if self.bytes_since_index >= index_interval {
            let entry = (u32::try_from(self.next_offset - self.base_offset), u32::try_from(position));
            if let (Ok(relative_offset), Ok(position)) = entry {
                let entry = IndexEntry {
                    relative_offset,
                    position,
                    max_timestamp_before: self.max_timestamp.unwrap_or(i64::MIN),
                };
                self.entries.push(entry);
                if let Some(writer) = &mut self.index {
                    writer.append(&entry);
                }
                self.bytes_since_index = 0;
            }
        }
        self.bytes_since_index += frame_len;
        self.size += frame_len;
        self.next_offset += u64::from(record_count);
        self.max_timestamp = Some(self.max_timestamp.map_or(max_timestamp, |m| m.max(max_timestamp)));
        Ok(())
    }

    /// Makes the data and the index durable before the segment stops being active.
    pub fn seal(&mut self, dir: &Path) -> io::Result<()> {
        self.file.sync_data()?;
        if let Some(writer) = &mut self.index {
            writer.seal(dir, self.base_offset, &self.entries)?;
        }
        Ok(())
    }

    /// Where to start scanning for `offset`: the file position of a frame and that frame's base offset.
    pub fn seek_hint(&self, offset: u64) -> (u64, u64) {
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        self.hint_from(index::lookup_offset(&self.entries, relative))
    }

    /// Where to start scanning for the first record with a timestamp `>= ts`.
    pub fn time_hint(&self, ts: i64) -> (u64, u64) {
        self.hint_from(index::lookup_time(&self.entries, ts))
    }

    fn hint_from(&self, entry: Option<&IndexEntry>) -> (u64, u64) {
        match entry {
            Some(e) if u64::from(e.position) < self.size => {
                (u64::from(e.position), self.base_offset + u64::from(e.relative_offset))
            }
            _ => (SEGMENT_HEADER_LEN as u64, self.base_offset),
        }
    }

    /// A snapshot for reading outside the log's lock, starting at `(position, offset)`.
    pub fn view(&self, start: (u64, u64)) -> SegmentView {
        SegmentView {
            file: Arc::clone(&self.file),
            path: Arc::clone(&self.path),
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size: self.size,
            start,
        }
    }
}

/// What a reader needs from a segment, copied under the lock so the I/O can happen without it. The bytes below
/// `size` never change while the file is open (sealed segments are immutable and the active one only grows), and
/// an unlinked file stays readable through its handle, so the view remains valid even if retention deletes the
/// segment meanwhile.
pub struct SegmentView {
    pub file: Arc<File>,
    pub path: Arc<Path>,
    pub base_offset: u64,
    pub next_offset: u64,
    pub size: u64,
    /// Position of a frame boundary to start at, and the base offset the frame there should have.
    pub start: (u64, u64),
}

/// What the scanner found at its current position.
pub enum Step<'a> {
    /// A valid frame at `position`; its values borrow from `chunk`, which can hand out zero-copy `Bytes`.
    Frame { position: u64, frame: Frame<'a>, chunk: &'a Bytes },
    /// The scan reached its end position exactly at a frame boundary.
    End,
    /// A frame starts at `position` but runs past the end: a torn write, if this is the end of the file.
    Incomplete { position: u64, header: Option<FrameHeader> },
    /// The bytes at `position` are not a valid frame.
    Corrupt { position: u64, error: DecodeError, header: Option<FrameHeader> },
}

/// Walks the frames of a file between two positions, reading in chunks.
pub struct FrameScanner<'f> {
    file: &'f File,
    /// Bytes of the file starting at `chunk_position`.
    chunk: Bytes,
    chunk_position: u64,
    /// Start of the next frame within `chunk`.
    cursor: usize,
    end: u64,
}

enum Outcome {
    Complete(FrameHeader, usize),
    NeedMore(usize),
    Incomplete(Option<FrameHeader>),
    Corrupt(DecodeError, Option<FrameHeader>),
}

impl<'f> FrameScanner<'f> {
    pub fn new(file: &'f File, start: u64, end: u64) -> Self {
        FrameScanner { file, chunk: Bytes::new(), chunk_position: start, cursor: 0, end }
    }

    pub fn position(&self) -> u64 {
        self.chunk_position + self.cursor as u64
    }

    pub fn next_step(&mut self) -> io::Result<Step<'_>> {
        loop {
            let position = self.position();
            if position >= self.end {
                return Ok(Step::End);
            }
            let available = &self.chunk[self.cursor..];
            let reaches_end = position + available.len() as u64 >= self.end;
            // Decide what to do without keeping a borrow of the chunk, so the chunk can be refilled below.
            let outcome = match codec::decode_frame(available) {
                Ok(Some((frame, used))) => Outcome::Complete(frame.header, used),
                Ok(None) if reaches_end => Outcome::Incomplete(codec::peek_header(available).ok().flatten()),
                Ok(None) => Outcome::NeedMore(match codec::peek_header(available) {
                    Ok(Some(h)) => h.total_len(),
                    _ => codec::FRAME_HEADER_LEN,
                }),
                Err(error) => Outcome::Corrupt(error, codec::peek_header(available).ok().flatten()),
            };
            match outcome {
                Outcome::Complete(header, used) => {
                    let start = self.cursor;
                    self.cursor += used;
                    let frame = Frame::from_validated(header, &self.chunk[start..start + used]);
                    return Ok(Step::Frame { position, frame, chunk: &self.chunk });
                }
                Outcome::NeedMore(need) => self.refill(need)?,
                Outcome::Incomplete(header) => return Ok(Step::Incomplete { position, header }),
                Outcome::Corrupt(error, header) => {
                    return Ok(Step::Corrupt { position, error, header });
                }
            }
        }
    }

    /// Replaces the chunk with one starting at the current position and holding at least `need` bytes (or up to
    /// the end). Each call makes more bytes available, so the loop in `next_step` terminates.
    fn refill(&mut self, need: usize) -> io::Result<()> {
        let position = self.position();
        let remaining = usize::try_from(self.end - position).unwrap_or(usize::MAX);
        let want = need.max(READ_CHUNK).min(remaining);
        let have = self.chunk.len() - self.cursor;
        let mut buf = vec![0u8; want];
        buf[..have].copy_from_slice(&self.chunk[self.cursor..]);
        read_exact_at(self.file, &mut buf[have..], position + have as u64)?;
        self.chunk = Bytes::from(buf);
        self.chunk_position = position;
        self.cursor = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{NewRecord, encode_frame};

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("00000000000000000042.log"), Some((42, FileKind::Log)));
        assert_eq!(parse_file_name("00000000000000000042.index"), Some((42, FileKind::OffsetIndex)));
        assert_eq!(parse_file_name("00000000000000000042.timeindex"), Some((42, FileKind::TimeIndex)));
        assert_eq!(parse_file_name("00000000000000000042.index.tmp"), Some((42, FileKind::Temp)));
        assert_eq!(parse_file_name("42.log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_file_name("99999999999999999999.log"), None); // above u64::MAX
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(log_path(Path::new("d"), 7), Path::new("d/00000000000000000007.log"));
    }

    #[test]
    fn scanner_walks_frames_and_reports_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 10).unwrap();
        let big = vec![7u8; READ_CHUNK * 2]; // forces a refill larger than one chunk
        for (i, value) in [&b"a"[..], &big, b"c"].iter().enumerate() {
            let mut buf = Vec::new();
            let base = seg.next_offset;
            encode_frame(base, &[NewRecord { timestamp: i as i64, prefix: &[], value }], &mut buf).unwrap();
            seg.append(&mut [IoSlice::new(&buf)], buf.len() as u64, 1, i as i64, 0).ok().unwrap();
        }
        assert_eq!(seg.entries.len(), 3);

        let mut scanner = FrameScanner::new(&seg.file, SEGMENT_HEADER_LEN as u64, seg.size);
        let mut offsets = Vec::new();
        while let Step::Frame { frame, .. } = scanner.next_step().unwrap() {
            offsets.push(frame.base_offset());
        }
        assert_eq!(offsets, [10, 11, 12]);

        // Stop the scan one byte short of the end: the last frame is incomplete.
        let mut scanner = FrameScanner::new(&seg.file, SEGMENT_HEADER_LEN as u64, seg.size - 1);
        let last = loop {
            match scanner.next_step().unwrap() {
                Step::Frame { .. } => {}
                Step::Incomplete { position, header } => {
                    break (position, header.map(|h| h.base_offset));
                }
                _ => panic!("expected an incomplete frame"),
            }
        };
        assert_eq!(last, (u64::from(seg.entries[2].position), Some(12)));
    }
}
