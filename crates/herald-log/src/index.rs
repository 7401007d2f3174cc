//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Both files are *hints*: they let a read or a timestamp lookup start scanning near the right place instead of at
//! the start of a segment, and nothing is lost if they are wrong. That is why they carry no checksums, are not
//! fsynced on every append, and may lag the data. Recovery checks them against the data and rebuilds them when they
//! disagree, and every read verifies that the frame an entry points at really has the offset the entry claims,
//! falling back to a scan from the segment start if not.
//!
//! In memory a segment keeps one list of [`IndexEntry`]; the two files are two projections of it, written at the
//! same moments (one entry every ~`index_interval_bytes` of frames, pointing at the frame about to be written):
//!
//! * `.index` holds `(relative_offset, position)`, for reads by offset;
//! * `.timeindex` holds `(max_timestamp_before, relative_offset, position)`, for lookups by time. The timestamp is
//!   the largest record timestamp in the segment *before* the entry's offset, which makes the lookup exact even
//!   when producers' timestamps are not monotonic: if every record before an entry is older than `ts`, the first
//!   record at or after `ts` cannot be before that entry.
//!
//! Each file starts with a 16-byte header: magic `[u8; 8]`, version `u32`, entry size `u32`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::codec::{FORMAT_VERSION, SEGMENT_HEADER_LEN};
use crate::fileio::write_all_at;

pub const OFFSET_INDEX_MAGIC: [u8; 8] = *b"HRLDOIX\0";
pub const TIME_INDEX_MAGIC: [u8; 8] = *b"HRLDTIX\0";
pub const INDEX_HEADER_LEN: usize = 16;
pub const OFFSET_ENTRY_LEN: usize = 8;
pub const TIME_ENTRY_LEN: usize = 16;

/// One sparse index entry: the frame at file `position` starts with offset `base_offset + relative_offset`, and
/// every record of the segment before it has a timestamp `<= max_timestamp_before` (`i64::MIN` if there is none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
    pub max_timestamp_before: i64,
}

/// Why an index file cannot be used as it is.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    #[error("missing or unreadable")]
    Missing,
    #[error("bad header")]
    BadHeader,
    #[error("length {0} is not a whole number of entries")]
    PartialEntry(usize),
    #[error("entry {0} is out of order")]
    OutOfOrder(usize),
    #[error("offset and time index disagree")]
    Mismatch,
}

fn header(magic: &[u8; 8], entry_len: usize) -> [u8; INDEX_HEADER_LEN] {
    let mut out = [0u8; INDEX_HEADER_LEN];
    out[0..8].copy_from_slice(magic);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(entry_len as u32).to_le_bytes());
    out
}

fn entries_of<'a>(
    buf: &'a [u8],
    magic: &[u8; 8],
    entry_len: usize,
) -> Result<std::slice::ChunksExact<'a, u8>, IndexError> {
    let head = buf.get(..INDEX_HEADER_LEN).ok_or(IndexError::BadHeader)?;
    if head != header(magic, entry_len) {
        return Err(IndexError::BadHeader);
    }
    let body = &buf[INDEX_HEADER_LEN..];
    if !body.len().is_multiple_of(entry_len) {
        return Err(IndexError::PartialEntry(buf.len()));
    }
    Ok(body.chunks_exact(entry_len))
}

fn u32_at(chunk: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&chunk[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The version of an index file written by a newer format version, if `buf` starts like one. Recovery refuses to
/// open such a log instead of "rebuilding" the file in the old format.
pub fn newer_version(buf: &[u8]) -> Option<u32> {
    let magic = buf.get(..8)?;
    if magic != OFFSET_INDEX_MAGIC && magic != TIME_INDEX_MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(buf.get(8..12)?.try_into().ok()?);
    (version > FORMAT_VERSION).then_some(version)
}

/// Parses an `.index` file's bytes into `(relative_offset, position)` pairs.
pub fn parse_offset_index(buf: &[u8]) -> Result<Vec<(u32, u32)>, IndexError> {
    Ok(entries_of(buf, &OFFSET_INDEX_MAGIC, OFFSET_ENTRY_LEN)?.map(|c| (u32_at(c, 0), u32_at(c, 4))).collect())
}

/// Parses a `.timeindex` file's bytes into entries.
pub fn parse_time_index(buf: &[u8]) -> Result<Vec<IndexEntry>, IndexError> {
    Ok(entries_of(buf, &TIME_INDEX_MAGIC, TIME_ENTRY_LEN)?
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[0..8]);
            IndexEntry {
                max_timestamp_before: i64::from_le_bytes(ts),
                relative_offset: u32_at(c, 8),
                position: u32_at(c, 12),
            }
        })
        .collect())
}

/// Combines the two files' contents into one entry list and checks that it is internally consistent: same entries
/// in both files, offsets and positions strictly increasing, timestamps non-decreasing, positions after the
/// segment header. Whether the entries match the data is checked by the caller, which has the data.
pub fn combine(offsets: &[(u32, u32)], times: &[IndexEntry]) -> Result<Vec<IndexEntry>, IndexError> {
    if offsets.len() != times.len() {
        return Err(IndexError::Mismatch);
    }
    for (i, (o, t)) in offsets.iter().zip(times).enumerate() {
        if *o != (t.relative_offset, t.position) {
            return Err(IndexError::Mismatch);
        }
        if (t.position as usize) < SEGMENT_HEADER_LEN {
            return Err(IndexError::OutOfOrder(i));
        }
        if i > 0 {
            let p = &times[i - 1];
            if t.relative_offset <= p.relative_offset
                || t.position <= p.position
                || t.max_timestamp_before < p.max_timestamp_before
            {
                return Err(IndexError::OutOfOrder(i));
            }
        }
    }
    Ok(times.to_vec())
}

pub fn encode_offset_entry(e: &IndexEntry) -> [u8; OFFSET_ENTRY_LEN] {
    let mut out = [0u8; OFFSET_ENTRY_LEN];
    out[0..4].copy_from_slice(&e.relative_offset.to_le_bytes());
    out[4..8].copy_from_slice(&e.position.to_le_bytes());
    out
}

pub fn encode_time_entry(e: &IndexEntry) -> [u8; TIME_ENTRY_LEN] {
    let mut out = [0u8; TIME_ENTRY_LEN];
    out[0..8].copy_from_slice(&e.max_timestamp_before.to_le_bytes());
    out[8..12].copy_from_slice(&e.relative_offset.to_le_bytes());
    out[12..16].copy_from_slice(&e.position.to_le_bytes());
    out
}

/// The last entry whose offset is `<= relative_offset`: where a read for that offset should start scanning.
pub fn lookup_offset(entries: &[IndexEntry], relative_offset: u32) -> Option<&IndexEntry> {
    let n = entries.partition_point(|e| e.relative_offset <= relative_offset);
    n.checked_sub(1).and_then(|i| entries.get(i))
}

/// The last entry all of whose preceding records are older than `ts`: where a timestamp lookup should start.
pub fn lookup_time(entries: &[IndexEntry], ts: i64) -> Option<&IndexEntry> {
    let n = entries.partition_point(|e| e.max_timestamp_before < ts);
    n.checked_sub(1).and_then(|i| entries.get(i))
}

/// Runs the index parsers over arbitrary bytes (part of [`crate::codec::fuzz_decode`]).
pub(crate) fn fuzz_parse(data: &[u8]) {
    let offsets = parse_offset_index(data);
    let times = parse_time_index(data);
    if let (Ok(o), Ok(t)) = (&offsets, &times) {
        let _ = combine(o, t);
    }
    if let Ok(t) = times {
        let _ = lookup_offset(&t, 5);
        let _ = lookup_time(&t, 5);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

pub fn offset_index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

pub fn time_index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// Reads both index files of a segment. Any problem means "rebuild", so the error is only for the report.
pub fn load(dir: &Path, base_offset: u64) -> Result<Vec<IndexEntry>, IndexError> {
    let offsets = fs::read(offset_index_path(dir, base_offset)).map_err(|_| IndexError::Missing)?;
    let times = fs::read(time_index_path(dir, base_offset)).map_err(|_| IndexError::Missing)?;
    combine(&parse_offset_index(&offsets)?, &parse_time_index(&times)?)
}

/// Replaces both index files with `entries`, each through a temporary file and a rename so that a crash leaves
/// either the old file or the complete new one. The caller fsyncs the directory.
pub fn write_all(dir: &Path, base_offset: u64, entries: &[IndexEntry]) -> io::Result<()> {
    let mut offsets = header(&OFFSET_INDEX_MAGIC, OFFSET_ENTRY_LEN).to_vec();
    let mut times = header(&TIME_INDEX_MAGIC, TIME_ENTRY_LEN).to_vec();
    for e in entries {
        offsets.extend_from_slice(&encode_offset_entry(e));
        times.extend_from_slice(&encode_time_entry(e));
    }
    replace_file(&offset_index_path(dir, base_offset), &offsets)?;
    replace_file(&time_index_path(dir, base_offset), &times)
}

fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let file = File::create(&tmp)?;
        write_all_at(&file, contents, 0)?;
        file.sync_data()?;
    }
    fs::rename(&tmp, path)
}

/// Open handles on the active segment's index files, for appending entries as frames are written.
pub struct IndexWriter {
    offset_file: File,
    time_file: File,
    /// Entries known to be in the files.
    written: usize,
    /// A write failed: the files no longer match memory and must be rewritten whole before they are trusted.
    dirty: bool,
}

impl IndexWriter {
    /// Opens the existing files, which must contain exactly `entries_in_files` entries.
    pub fn open(dir: &Path, base_offset: u64, entries_in_files: usize) -> io::Result<IndexWriter> {
        let open = |p: PathBuf| OpenOptions::new().read(true).write(true).open(p);
        Ok(IndexWriter {
            offset_file: open(offset_index_path(dir, base_offset))?,
            time_file: open(time_index_path(dir, base_offset))?,
            written: entries_in_files,
            dirty: false,
        })
    }

    /// Creates empty index files for a new segment (overwriting leftovers from an earlier crash).
    pub fn create(dir: &Path, base_offset: u64) -> io::Result<IndexWriter> {
        write_all(dir, base_offset, &[])?;
        IndexWriter::open(dir, base_offset, 0)
    }

    /// Writes `entry` as entry number `self.written`. A failure is remembered instead of returned: the frame the
    /// entry points at is already in the log, so failing the append would misreport it, and a missing index entry
    /// costs only a longer scan (and a rebuild on the next open or at the segment's roll).
    pub fn append(&mut self, entry: &IndexEntry) {
        if self.dirty {
            return;
        }
        let n = self.written as u64;
        let at_offset = INDEX_HEADER_LEN as u64 + n * OFFSET_ENTRY_LEN as u64;
        let at_time = INDEX_HEADER_LEN as u64 + n * TIME_ENTRY_LEN as u64;
        let result = write_all_at(&self.offset_file, &encode_offset_entry(entry), at_offset)
            .and_then(|()| write_all_at(&self.time_file, &encode_time_entry(entry), at_time));
        match result {
            Ok(()) => self.written += 1,
            Err(_) => self.dirty = true,
        }
    }

    /// Makes the files durable and complete, as a roll requires: rewrites them from `entries` if an earlier write
    /// failed, then fsyncs both.
    pub fn seal(&mut self, dir: &Path, base_offset: u64, entries: &[IndexEntry]) -> io::Result<()> {
        if self.dirty || self.written != entries.len() {
            write_all(dir, base_offset, entries)?;
            *self = IndexWriter::open(dir, base_offset, entries.len())?;
        }
        self.offset_file.sync_data()?;
        self.time_file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel: u32, pos: u32, ts: i64) -> IndexEntry {
        IndexEntry { relative_offset: rel, position: pos, max_timestamp_before: ts }
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![e(3, 100, 10), e(9, 4_200, 10), e(20, 9_000, 55)];
        write_all(dir.path(), 77, &entries).unwrap();
        assert_eq!(load(dir.path(), 77).unwrap(), entries);

        let mut w = IndexWriter::open(dir.path(), 77, entries.len()).unwrap();
        w.append(&e(25, 10_000, 60));
        let mut more = entries.clone();
        more.push(e(25, 10_000, 60));
        assert_eq!(load(dir.path(), 77).unwrap(), more);
    }

    #[test]
    fn damaged_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), 0), Err(IndexError::Missing));
        write_all(dir.path(), 0, &[e(1, 40, 0), e(2, 80, 5)]).unwrap();

        let path = offset_index_path(dir.path(), 0);
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(matches!(load(dir.path(), 0), Err(IndexError::PartialEntry(_))));
        fs::write(&path, &good[..good.len() - OFFSET_ENTRY_LEN]).unwrap();
        assert_eq!(load(dir.path(), 0), Err(IndexError::Mismatch));
        let mut bad = good.clone();
        bad[0] = b'X';
        fs::write(&path, &bad).unwrap();
        assert_eq!(load(dir.path(), 0), Err(IndexError::BadHeader));
    }

    #[test]
    fn order_is_checked() {
        let times = vec![e(5, 100, 0), e(4, 200, 0)];
        let offsets: Vec<_> = times.iter().map(|t| (t.relative_offset, t.position)).collect();
        assert_eq!(combine(&offsets, &times), Err(IndexError::OutOfOrder(1)));
        let times = vec![e(5, 100, 9), e(6, 200, 8)];
        let offsets: Vec<_> = times.iter().map(|t| (t.relative_offset, t.position)).collect();
        assert_eq!(combine(&offsets, &times), Err(IndexError::OutOfOrder(1)));
    }

    #[test]
    fn lookups() {
        let entries = vec![e(0, 32, i64::MIN), e(10, 500, 100), e(20, 900, 300)];
        assert_eq!(lookup_offset(&entries, 0).unwrap().position, 32);
        assert_eq!(lookup_offset(&entries, 15).unwrap().position, 500);
        assert_eq!(lookup_offset(&entries, 99).unwrap().position, 900);
        assert!(lookup_offset(&entries[1..], 3).is_none());

        assert!(lookup_time(&entries, i64::MIN).is_none());
        assert_eq!(lookup_time(&entries, 50).unwrap().position, 32);
        assert_eq!(lookup_time(&entries, 100).unwrap().position, 32);
        assert_eq!(lookup_time(&entries, 101).unwrap().position, 500);
        assert_eq!(lookup_time(&entries, 1_000).unwrap().position, 900);
    }
}
