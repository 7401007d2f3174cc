//! Crash recovery, run by `Log::open` before anything else touches the directory.
//!
//! What can be wrong after a crash, and what recovery does about it (the full case analysis is in
//! `docs/storage-format.md`):
//!
//! * **The active (last) segment ends in a torn or damaged frame.** It is the only segment written since its last
//!   fsync, so it is scanned in full, frame by frame. At the first frame that is incomplete, fails its CRC or
//!   breaks the offset sequence, the file is truncated and the truncation fsynced. Because a whole batch is one
//!   frame with one CRC, a torn batch disappears entirely: appends are all-or-nothing across crashes. What was cut
//!   off is reported (bytes exactly; records as counted from the frame headers that could still be read).
//! * **Index files are stale, short, missing or garbage.** They are hints. The active segment's index is compared
//!   with the one implied by its data and rewritten if different. A sealed segment's index is checked for internal
//!   consistency and its last entry against the data; the few frames after that entry are scanned to find the
//!   segment's end and any entries the index lacks. A full rebuild happens only when the index cannot be trusted.
//! * **A sealed segment is damaged.** Sealed segments were fsynced before the next one was created, so damage there
//!   is media or operator trouble, not a crash. Recovery never truncates them (that would throw away good records
//!   after the damage); it reports the problem and leaves reads that reach the damage to fail with `Corrupt`.
//! * **Leftovers of interrupted operations:** temporary index files, index files whose segment retention already
//!   deleted, a segment file created by a roll that crashed before its header was durable. They are removed or
//!   repaired.
//!
//! Recovery refuses to open files written by a newer format version instead of treating them as damage.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::LogOptions;
use crate::codec::{DecodeError, FrameHeader, HeaderError, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::error::LogError;
use crate::fileio::{read_exact_at, sync_dir, write_all_at};
use crate::index::{self, IndexEntry, IndexWriter};
use crate::segment::{FileKind, FrameScanner, Segment, Step, log_path, parse_file_name};

/// What `Log::open` found and did. Log it: `Display` gives one line, and [`lost_anything`](Self::lost_anything)
/// says whether it deserves a warning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub dir: PathBuf,
    /// The directory held no segments, so a new log was created.
    pub created: bool,
    /// Segment files found (after recovery this is also the number of segments).
    pub segments: usize,
    pub start_offset: u64,
    pub next_offset: u64,
    /// Segments whose index files were rebuilt or extended from the data.
    pub indexes_rebuilt: usize,
    /// Segment headers rewritten (a roll that crashed before its header was durable, or a damaged header on the
    /// active segment). No records are lost by this.
    pub headers_repaired: usize,
    /// Bytes cut from the end of the active segment.
    pub bytes_truncated: u64,
    /// Records in the bytes cut off, as far as their frame headers could still be read. A lower bound: a frame
    /// torn inside its header, or frames behind a damaged length field, cannot be counted.
    pub records_lost: u64,
    /// Where the active segment was cut, if it was.
    pub truncation: Option<Truncation>,
    /// Problems in sealed segments, which are reported but not modified.
    pub issues: Vec<RecoveryIssue>,
    /// Leftover files removed (temporary files, orphaned index files).
    pub files_removed: Vec<PathBuf>,
}

/// The point where recovery truncated the active segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// File position of the first byte removed.
    pub position: u64,
    /// The offset the first lost record had (now the log's next offset).
    pub offset: u64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryIssue {
    /// A sealed segment has a frame that cannot be read at `position`, where offset `offset` was expected. Reads
    /// that reach it return `LogError::Corrupt`.
    CorruptSegment { path: PathBuf, position: u64, offset: u64, reason: String },
    /// A sealed segment's records end at `from` but the next segment starts at `to`: offsets in between have no
    /// records and reads skip them.
    MissingRecords { path: PathBuf, from: u64, to: u64 },
    /// A sealed segment holds records up to `end`, past the next segment's base offset `next_base`. The next
    /// segment's records win; the extra ones are ignored.
    OverlappingRecords { path: PathBuf, next_base: u64, end: u64 },
    /// A segment header is damaged or names another base offset. The frames are still used (each has its own CRC)
    /// and the base offset is taken from the file name.
    BadHeader { path: PathBuf, reason: String },
}

impl RecoveryReport {
    /// Whether any stored record may have been lost or made unreadable.
    pub fn lost_anything(&self) -> bool {
        self.bytes_truncated > 0 || self.records_lost > 0 || !self.issues.is_empty()
    }

    /// Records in the log after recovery.
    pub fn records(&self) -> u64 {
        self.next_offset - self.start_offset
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log {}: {}{} segment(s), offsets {}..{} ({} records), {} index(es) rebuilt",
            self.dir.display(),
            if self.created { "created, " } else { "" },
            self.segments,
            self.start_offset,
            self.next_offset,
            self.records(),
            self.indexes_rebuilt,
        )?;
        if self.headers_repaired > 0 {
            write!(f, ", {} header(s) repaired", self.headers_repaired)?;
        }
        match &self.truncation {
            Some(t) => write!(
                f,
                "; TRUNCATED {} bytes (at least {} records from offset {}) at {}:{} ({})",
                self.bytes_truncated,
                self.records_lost,
                t.offset,
                t.path.display(),
                t.position,
                t.reason
            )?,
            None => write!(f, "; no truncation")?,
        }
        for issue in &self.issues {
            write!(f, "; {issue}")?;
        }
        if !self.files_removed.is_empty() {
            write!(f, "; removed {} leftover file(s)", self.files_removed.len())?;
        }
        Ok(())
    }
}

impl fmt::Display for RecoveryIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryIssue::CorruptSegment { path, position, offset, reason } => {
                write!(f, "CORRUPT sealed segment {} at byte {position} (offset {offset}): {reason}", path.display())
            }
            RecoveryIssue::MissingRecords { path, from, to } => {
                write!(f, "MISSING offsets {from}..{to} at the end of {}", path.display())
            }
            RecoveryIssue::OverlappingRecords { path, next_base, end } => {
                write!(
                    f,
                    "OVERLAP: {} has records up to {end}, past the next segment's base {next_base}",
                    path.display()
                )
            }
            RecoveryIssue::BadHeader { path, reason } => {
                write!(f, "bad header in {}: {reason}", path.display())
            }
        }
    }
}

/// Opens every segment in `dir` (creating the directory and a first segment if needed) and returns the sealed
/// segments in offset order, the active segment, and the report.
pub fn recover(dir: &Path, opts: &LogOptions) -> Result<(Vec<Segment>, Segment, RecoveryReport), LogError> {
    let mut ctx = Ctx {
        dir,
        interval: opts.index_interval_bytes,
        report: RecoveryReport { dir: dir.to_path_buf(), ..Default::default() },
        dir_changed: false,
    };
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }

    let mut bases = BTreeSet::new();
    let mut others = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        match parse_file_name(&name) {
            Some((base, FileKind::Log)) => {
                bases.insert(base);
            }
            Some((base, kind)) => others.push((base, kind, entry.path())),
            None => {}
        }
    }
    refuse_newer_versions(dir, &bases, &others)?;
    for (base, kind, path) in others {
        let leftover = kind == FileKind::Temp || !bases.contains(&base);
        if leftover {
            fs::remove_file(&path)?;
            ctx.report.files_removed.push(path);
            ctx.dir_changed = true;
        }
    }

    let bases: Vec<u64> = bases.into_iter().collect();
    ctx.report.segments = bases.len().max(1);
    let mut sealed = Vec::with_capacity(bases.len());
    let active = match bases.split_last() {
        None => {
            ctx.report.created = true;
            ctx.dir_changed = true;
            Segment::create(dir, 0)?
        }
        Some((&last, rest)) => {
            for (i, &base) in rest.iter().enumerate() {
                let next_base = bases[i + 1];
                sealed.push(ctx.open_sealed(base, next_base)?);
            }
            ctx.open_active(last)?
        }
    };
    if ctx.dir_changed {
        sync_dir(dir)?;
    }
    let mut report = ctx.report;
    report.start_offset = sealed.first().map_or(active.base_offset, |s| s.base_offset);
    report.next_offset = active.next_offset;
    Ok((sealed, active, report))
}

/// Fails if any segment or index file was written by a newer format version, before anything is modified: a newer
/// build's files must not be "repaired" into this version's idea of them.
fn refuse_newer_versions(
    dir: &Path,
    bases: &BTreeSet<u64>,
    others: &[(u64, FileKind, PathBuf)],
) -> Result<(), LogError> {
    let logs = bases.iter().map(|&b| log_path(dir, b));
    let indexes = others.iter().filter(|(_, kind, _)| *kind != FileKind::Temp).map(|(_, _, p)| p.clone());
    for path in logs.chain(indexes) {
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        let n = read_prefix(&path, &mut head)?;
        let version = match SegmentHeader::decode(&head[..n]) {
            Err(HeaderError::UnsupportedVersion(v)) => Some(v),
            _ => index::newer_version(&head[..n]),
        };
        if let Some(version) = version {
            return Err(LogError::UnsupportedVersion { path, version });
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes from the start of a file; returns how many there were.
fn read_prefix(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Ctx<'a> {
    dir: &'a Path,
    interval: u64,
    report: RecoveryReport,
    /// Files were created, renamed or removed: the directory must be fsynced before the log is used.
    dir_changed: bool,
}

/// Why a scan stopped before the end of the data.
struct Stop {
    position: u64,
    reason: String,
    /// The header of the frame at `position`, if it could be read.
    header: Option<FrameHeader>,
}

/// What a scan of (part of) a segment found.
struct Scan {
    /// Index entries the scan would have written, by the same rule the writer uses.
    entries: Vec<IndexEntry>,
    /// Offset after the last good frame.
    next_offset: u64,
    /// Position after the last good frame.
    end_position: u64,
    max_timestamp: Option<i64>,
    bytes_since_index: u64,
    stop: Option<Stop>,
    /// The scan stopped at its very first frame.
    stopped_at_start: bool,
}

impl Ctx<'_> {
    /// Reads and checks the segment header. `Ok(Some(reason))` means the header is unusable but the segment can
    /// still be read.
    fn check_header(&mut self, file: &File, len: u64, path: &Path, base: u64) -> Result<Option<String>, LogError> {
        let mut buf = vec![0u8; (len as usize).min(SEGMENT_HEADER_LEN)];
        read_exact_at(file, &mut buf, 0)?;
        match SegmentHeader::decode(&buf) {
            Ok(h) if h.base_offset == base => Ok(None),
            Ok(h) => Ok(Some(format!("header names base offset {}", h.base_offset))),
            Err(HeaderError::UnsupportedVersion(version)) => {
                Err(LogError::UnsupportedVersion { path: path.to_path_buf(), version })
            }
            Err(e) => Ok(Some(e.to_string())),
        }
    }

    fn open_sealed(&mut self, base: u64, next_base: u64) -> Result<Segment, LogError> {
        let path = log_path(self.dir, base);
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        if let Some(reason) = self.check_header(&file, len, &path, base)? {
            self.report.issues.push(RecoveryIssue::BadHeader { path: path.clone(), reason });
        }

        // Trust the index if it is consistent and the data after its last entry scans cleanly from there.
        let mut tail = None;
        if let Ok(entries) = index::load(self.dir, base) {
            let last = entries.last().copied();
            if last.is_none_or(|e| u64::from(e.position) < len) {
                let start = match last {
                    Some(e) => (u64::from(e.position), base + u64::from(e.relative_offset)),
                    None => (SEGMENT_HEADER_LEN as u64, base),
                };
                let before = last.filter(|e| e.relative_offset > 0).map(|e| e.max_timestamp_before);
                let scan = scan_segment(&file, base, start, len, self.interval, last.is_some(), before)?;
                if !(scan.stopped_at_start && last.is_some()) {
                    tail = Some((entries, scan));
                }
            }
        }
        let (entries, scan) = match tail {
            Some((mut entries, scan)) => {
                if !scan.entries.is_empty() {
                    entries.extend_from_slice(&scan.entries);
                    self.rewrite_index(base, &entries)?;
                }
                (entries, scan)
            }
            None => {
                let scan =
                    scan_segment(&file, base, (SEGMENT_HEADER_LEN as u64, base), len, self.interval, false, None)?;
                let entries = scan.entries.clone();
                self.rewrite_index(base, &entries)?;
                (entries, scan)
            }
        };

        match &scan.stop {
            Some(stop) => self.report.issues.push(RecoveryIssue::CorruptSegment {
                path: path.clone(),
                position: stop.position,
                offset: scan.next_offset,
                reason: stop.reason.clone(),
            }),
            None if scan.next_offset < next_base => self.report.issues.push(RecoveryIssue::MissingRecords {
                path: path.clone(),
                from: scan.next_offset,
                to: next_base,
            }),
            None => {}
        }
        if scan.next_offset > next_base {
            self.report.issues.push(RecoveryIssue::OverlappingRecords {
                path: path.clone(),
                next_base,
                end: scan.next_offset,
            });
        }
        Ok(Segment {
            base_offset: base,
            // The next segment's base is authoritative: it was fixed when this segment was sealed.
            next_offset: next_base,
            size: len,
            max_timestamp: scan.max_timestamp,
            file: Arc::new(file),
            path: path.into(),
            entries,
            bytes_since_index: scan.bytes_since_index,
            index: None,
        })
    }

    fn open_active(&mut self, base: u64) -> Result<Segment, LogError> {
        let path = log_path(self.dir, base);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut len = file.metadata()?.len();
        if let Some(reason) = self.check_header(&file, len, &path, base)? {
            // A roll writes and fsyncs the header before any frame, so a short or garbled header with no frames
            // behind it is a roll that crashed: nothing is lost. With frames behind it, it is damage; the frames
            // carry their own checksums and are still used. Either way the active segment gets a good header.
            if len > SEGMENT_HEADER_LEN as u64 {
                self.report.issues.push(RecoveryIssue::BadHeader { path: path.clone(), reason });
            }
            write_all_at(&file, &SegmentHeader::new(base).encode(), 0)?;
            len = len.max(SEGMENT_HEADER_LEN as u64);
            file.set_len(len)?;
            file.sync_all()?;
            self.report.headers_repaired += 1;
        }

        let scan = scan_segment(&file, base, (SEGMENT_HEADER_LEN as u64, base), len, self.interval, false, None)?;
        if let Some(stop) = &scan.stop {
            let lost = count_lost_records(&file, stop, len)?;
            file.set_len(stop.position)?;
            // sync_all, not sync_data: the new length is metadata, and it must be durable before new frames are
            // written over the cut, or a crash could bring back the damaged bytes behind the new ones.
            file.sync_all()?;
            self.report.bytes_truncated += len - stop.position;
            self.report.records_lost += lost;
            self.report.truncation = Some(Truncation {
                path: path.clone(),
                position: stop.position,
                offset: scan.next_offset,
                reason: stop.reason.clone(),
            });
            len = stop.position;
        }
        debug_assert_eq!(len, scan.end_position);

        if index::load(self.dir, base).ok().as_deref() != Some(&scan.entries[..]) {
            self.rewrite_index(base, &scan.entries)?;
        }
        let writer = IndexWriter::open(self.dir, base, scan.entries.len())?;
        // Everything the log now claims to hold must be durable: after a process crash (not a power loss) the
        // recovered frames may still be only in the page cache.
        file.sync_data()?;
        Ok(Segment {
            base_offset: base,
            next_offset: scan.next_offset,
            size: len,
            max_timestamp: scan.max_timestamp,
            file: Arc::new(file),
            path: path.into(),
            entries: scan.entries,
            bytes_since_index: scan.bytes_since_index,
            index: Some(writer),
        })
    }

    fn rewrite_index(&mut self, base: u64, entries: &[IndexEntry]) -> io::Result<()> {
        index::write_all(self.dir, base, entries)?;
        self.report.indexes_rebuilt += 1;
        self.dir_changed = true;
        Ok(())
    }
}

/// Scans frames from `start` (a position and the offset expected there) to `end`, stopping at the first frame
/// that is incomplete, corrupt, or out of sequence. Computes the index entries the writer would have made for the
/// scanned frames; `start_is_indexed` says the first frame already has one.
fn scan_segment(
    file: &File,
    base: u64,
    (position, offset): (u64, u64),
    end: u64,
    interval: u64,
    start_is_indexed: bool,
    max_timestamp_before: Option<i64>,
) -> io::Result<Scan> {
    let mut scan = Scan {
        entries: Vec::new(),
        next_offset: offset,
        end_position: position.min(end),
        max_timestamp: max_timestamp_before,
        bytes_since_index: 0,
        stop: None,
        stopped_at_start: false,
    };
    let mut scanner = FrameScanner::new(file, position, end);
    let mut first = true;
    loop {
        let stop = match scanner.next_step()? {
            Step::End => break,
            Step::Frame { position, frame, .. } => {
                if frame.base_offset() != scan.next_offset {
                    Stop {
                        position,
                        reason: format!("frame has base offset {}, expected {}", frame.base_offset(), scan.next_offset),
                        header: Some(frame.header),
                    }
                } else {
                    let indexed = first && start_is_indexed;
                    if !indexed && scan.bytes_since_index >= interval {
                        let entry = (u32::try_from(scan.next_offset - base), u32::try_from(position));
                        if let (Ok(relative_offset), Ok(position)) = entry {
                            scan.entries.push(IndexEntry {
                                relative_offset,
                                position,
                                max_timestamp_before: scan.max_timestamp.unwrap_or(i64::MIN),
                            });
                            scan.bytes_since_index = 0;
                        }
                    }
                    let len = frame.encoded_len() as u64;
                    scan.bytes_since_index += len;
                    let ts = frame.max_timestamp();
                    scan.max_timestamp = Some(scan.max_timestamp.map_or(ts, |m| m.max(ts)));
                    scan.next_offset = frame.next_offset();
                    scan.end_position = position + len;
                    first = false;
                    continue;
                }
            }
            Step::Incomplete { position, header } => {
                Stop { position, reason: "incomplete frame (torn write)".to_owned(), header }
            }
            Step::Corrupt { position, error, header } => Stop { position, reason: describe(&error), header },
        };
        scan.stopped_at_start = first;
        scan.stop = Some(stop);
        break;
    }
    Ok(scan)
}

fn describe(error: &DecodeError) -> String {
    format!("corrupt frame: {error}")
}

/// Counts the records in the bytes recovery is about to cut off: the damaged frame's own count if its header is
/// readable, plus every valid frame that follows it while the chain of lengths holds.
fn count_lost_records(file: &File, stop: &Stop, len: u64) -> io::Result<u64> {
    let Some(header) = stop.header else {
        return Ok(0);
    };
    let mut lost = u64::from(header.record_count);
    let next = stop.position + header.total_len() as u64;
    if next < len {
        let mut scanner = FrameScanner::new(file, next, len);
        while let Step::Frame { frame, .. } = scanner.next_step()? {
            lost += u64::from(frame.record_count());
        }
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::codec::{FORMAT_VERSION, SEGMENT_MAGIC};
    use crate::index::{offset_index_path, time_index_path};
    use crate::testutil::*;
    use crate::{Log, LogOptions, NewRecord};

    /// A log in one segment with batches at offsets 0, 1..=2, 3..=5.
    fn three_batches(dir: &Path) -> PathBuf {
        let (log, _) = Log::open(dir, LogOptions::default()).unwrap();
        fill(&log, 3);
        segment_files(dir).remove(0)
    }

    fn all_index_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "index" || e == "timeindex"))
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect()
    }

    fn check_everything_readable(log: &Log) {
        let next = log.next_offset();
        assert_filled(&read_all(log), log.start_offset());
        for from in log.start_offset()..next {
            assert_filled(&log.read(from, 3, usize::MAX).unwrap(), from);
            assert_eq!(log.offset_for_timestamp(ts_for(from) - 1).unwrap(), Some(from));
        }
    }

    #[test]
    fn torn_tail_at_every_kind_of_cut() {
        let probe = tempfile::tempdir().unwrap();
        let path = three_batches(probe.path());
        let (last_pos, last_base, last_count) = *frames(&path).last().unwrap();
        assert_eq!((last_base, last_count), (3, 3));
        let frame_len = fs::metadata(&path).unwrap().len() - last_pos;

        // Inside the length field, inside the rest of the header, just after it, in a value, one byte short.
        for cut in [1, 2, 3, 4, 10, 19, 20, 21, 33, frame_len - 1] {
            let dir = tempfile::tempdir().unwrap();
            let path = three_batches(dir.path());
            truncate(&path, last_pos + cut);

            let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
            assert!(report.lost_anything(), "cut {cut}: {report}");
            assert_eq!(report.bytes_truncated, cut);
            // Once the frame header is there, the lost records can be counted.
            assert_eq!(report.records_lost, if cut >= 20 { 3 } else { 0 }, "cut {cut}");
            let t = report.truncation.clone().unwrap();
            assert_eq!((t.path, t.position, t.offset), (path.clone(), last_pos, 3));
            assert!(report.to_string().contains("TRUNCATED"), "{report}");
            assert_eq!(fs::metadata(&path).unwrap().len(), last_pos);

            // The torn batch is gone entirely; the earlier ones are intact; appends continue from there.
            assert_eq!(log.next_offset(), 3);
            assert_filled(&read_all(&log), 0);
            let out = log.append(&[NewRecord { timestamp: ts_for(3), prefix: &[], value: &value_for(3) }]).unwrap();
            assert_eq!(out.first_offset, 3);
            drop(log);
            let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
            assert!(!report.lost_anything(), "{report}");
            assert_eq!(log.next_offset(), 4);
            check_everything_readable(&log);
        }
    }

    #[test]
    fn torn_tail_after_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let expected_next;
        {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 80);
            expected_next = log.next_offset();
        }
        let active = segment_files(dir.path()).pop().unwrap();
        let (pos, base, count) = *frames(&active).last().unwrap();
        assert_eq!(base + u64::from(count), expected_next);
        truncate(&active, pos + 25);

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert_eq!((report.bytes_truncated, report.records_lost), (25, u64::from(count)));
        assert!(report.issues.is_empty(), "{report}");
        assert_eq!(log.next_offset(), base);
        check_everything_readable(&log);
        fill(&log, 30);
        check_everything_readable(&log);
    }

    #[test]
    fn corrupt_last_frame_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = three_batches(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        let (pos, _, _) = *frames(&path).last().unwrap();
        flip_byte(&path, pos + 30);

        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!((report.bytes_truncated, report.records_lost), (len - pos, 3));
        assert!(report.truncation.as_ref().unwrap().reason.contains("checksum"), "{report}");
        assert_eq!(log.next_offset(), 3);
        assert_filled(&read_all(&log), 0);
    }

    #[test]
    fn corrupt_frame_in_the_middle_of_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
            fill(&log, 9); // 18 records in 9 frames
        }
        let path = segment_files(dir.path()).remove(0);
        let len = fs::metadata(&path).unwrap().len();
        let all = frames(&path);
        let (pos, base, _) = all[3];
        flip_byte(&path, pos + 22); // inside the first record's timestamp

        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        // Everything from the damaged frame on is cut; the records behind it are counted from their frames.
        assert_eq!(report.bytes_truncated, len - pos);
        assert_eq!(report.records_lost, 18 - base);
        assert_eq!(report.truncation.as_ref().unwrap().offset, base);
        assert_eq!(log.next_offset(), base);
        check_everything_readable(&log);
        fill(&log, 2);
        check_everything_readable(&log);

        // A damaged length field: the frames behind it cannot be found, but the cut is in the same place.
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
            fill(&log, 9);
        }
        let path = segment_files(dir.path()).remove(0);
        flip_byte(&path, pos + 3);
        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(report.bytes_truncated, len - pos);
        assert!(report.lost_anything());
        assert_eq!(log.next_offset(), base);
    }

    #[test]
    fn zero_filled_tail_is_truncated() {
        // What a filesystem can leave after a crash: the file grew, the data blocks did not make it.
        let dir = tempfile::tempdir().unwrap();
        let path = three_batches(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        truncate(&path, len + 4_096);
        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!((report.bytes_truncated, report.records_lost), (4_096, 0));
        assert_eq!(report.truncation.as_ref().unwrap().position, len);
        assert_eq!(log.next_offset(), 6);
        assert_filled(&read_all(&log), 0);
    }

    /// A sealed segment damaged before its last index entry: open does not scan that far, and reads that reach
    /// the damage fail with `Corrupt` while everything else stays readable.
    #[test]
    fn corrupt_byte_inside_a_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        let next = {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 80);
            log.next_offset()
        };
        let files = segment_files(dir.path());
        let sealed = &files[1];
        let seg_frames = frames(sealed);
        let seg_base = seg_frames[0].1;
        let next_base = frames(&files[2])[0].1;
        let (pos, bad_base, _) = seg_frames[1];
        flip_byte(sealed, pos + 25);

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert_eq!(report.bytes_truncated, 0, "sealed segments are never truncated: {report}");
        assert_eq!(log.next_offset(), next);

        // Reading at the damage fails, without panicking.
        match log.read(bad_base, 10, usize::MAX) {
            Err(LogError::Corrupt { path, position, .. }) => {
                assert_eq!((path, position), (sealed.clone(), pos))
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A read that starts before the damage returns the records before it; the next read reports it.
        let got = log.read(seg_base, 100, usize::MAX).unwrap();
        assert_eq!(got.last().unwrap().offset + 1, bad_base);
        assert_filled(&got, seg_base);
        // Other segments are fine.
        assert_filled(&log.read(0, usize::MAX, usize::MAX).unwrap(), 0);
        let rest = log.read(next_base, usize::MAX, usize::MAX).unwrap();
        assert_eq!(rest.len() as u64, next - next_base);
        assert_filled(&rest, next_base);
        assert_eq!(log.offset_for_timestamp(ts_for(next_base)).unwrap(), Some(next_base));
        // Appends still work.
        fill(&log, 1);
    }

    /// Damage in the part of a sealed segment that open does scan (after its last index entry) is reported.
    #[test]
    fn corrupt_tail_of_a_sealed_segment_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 80);
        }
        let files = segment_files(dir.path());
        let (pos, base, _) = *frames(&files[0]).last().unwrap();
        flip_byte(&files[0], pos + 25);
        let len_before = fs::metadata(&files[0]).unwrap().len();

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert!(report.lost_anything());
        match &report.issues[..] {
            [RecoveryIssue::CorruptSegment { path, position, offset, reason }] => {
                assert_eq!((path, *position, *offset), (&files[0], pos, base));
                assert!(reason.starts_with("corrupt frame: checksum mismatch"), "{reason}");
            }
            other => panic!("unexpected issues {other:?}"),
        }
        assert!(report.to_string().contains("CORRUPT sealed segment"), "{report}");
        assert_eq!(fs::metadata(&files[0]).unwrap().len(), len_before);
        assert!(matches!(log.read(base, 1, 1), Err(LogError::Corrupt { .. })));
        assert_eq!(log.read(0, usize::MAX, usize::MAX).unwrap().len() as u64, base);
    }

    #[test]
    fn damaged_indexes_are_rebuilt_byte_for_byte() {
        type Damage = fn(&Path, &[u8]);
        let damages: [(&str, Damage); 5] = [
            ("deleted", |p, _| fs::remove_file(p).unwrap()),
            ("emptied", |p, _| fs::write(p, b"").unwrap()),
            ("cut mid-entry", |p, b| fs::write(p, &b[..b.len() - 3]).unwrap()),
            ("garbled", |p, b| fs::write(p, vec![0xAB; b.len()]).unwrap()),
            ("header only", |p, b| fs::write(p, &b[..16]).unwrap()),
        ];
        for (what, damage) in damages {
            for kind in ["index", "timeindex"] {
                let dir = tempfile::tempdir().unwrap();
                let segments = {
                    let (log, _) = Log::open(dir.path(), small_opts(900)).unwrap();
                    fill(&log, 100);
                    log.segment_count()
                };
                let originals = all_index_files(dir.path());
                for (path, bytes) in &originals {
                    if path.extension().unwrap() == kind {
                        damage(path, bytes);
                    }
                }
                let (log, report) = Log::open(dir.path(), small_opts(900)).unwrap();
                assert_eq!(report.indexes_rebuilt, segments, "{what} {kind}: {report}");
                assert!(!report.lost_anything(), "{report}");
                assert_eq!(all_index_files(dir.path()), originals, "{what} {kind}");
                check_everything_readable(&log);
            }
        }
    }

    #[test]
    fn short_indexes_are_completed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), small_opts(900)).unwrap();
            fill(&log, 100);
        }
        let originals = all_index_files(dir.path());
        // Drop the last two entries of every index consistently, as if the index had lagged the data.
        for (path, bytes) in &originals {
            let entry = if path.extension().unwrap() == "index" { 8 } else { 16 };
            fs::write(path, &bytes[..(bytes.len() - 2 * entry).max(16)]).unwrap();
        }
        let (log, report) = Log::open(dir.path(), small_opts(900)).unwrap();
        assert!(report.indexes_rebuilt > 0, "{report}");
        assert_eq!(all_index_files(dir.path()), originals);
        check_everything_readable(&log);
    }

    /// An index that is well-formed but points at the wrong places is survived at read time.
    #[test]
    fn plausible_but_wrong_index_entries_fall_back_to_scanning() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), small_opts(900)).unwrap();
            fill(&log, 100);
        }
        let first = segment_files(dir.path()).remove(0);
        let mut entries = index::load(dir.path(), 0).unwrap();
        assert!(entries.len() >= 3);
        // Shift a middle entry by a few bytes: still ordered, so open keeps it; it points into a frame.
        entries[1].position += 3;
        index::write_all(dir.path(), 0, &entries).unwrap();
        let (log, report) = Log::open(dir.path(), small_opts(900)).unwrap();
        assert!(!report.lost_anything());
        check_everything_readable(&log);
        assert!(first.exists());
    }

    #[test]
    fn leftover_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        three_batches(dir.path());
        let orphan = offset_index_path(dir.path(), 999);
        let orphan_time = time_index_path(dir.path(), 999);
        let temp = dir.path().join("00000000000000000000.index.tmp");
        let unrelated = dir.path().join("README");
        for p in [&orphan, &orphan_time, &temp, &unrelated] {
            fs::write(p, b"junk").unwrap();
        }
        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert!(!report.lost_anything(), "{report}");
        assert_eq!(report.files_removed.len(), 3);
        assert!(!orphan.exists() && !orphan_time.exists() && !temp.exists() && unrelated.exists());
        assert_filled(&read_all(&log), 0);
    }

    #[test]
    fn crash_during_roll_leaves_a_repairable_segment() {
        for header_bytes in [0usize, 10, 31] {
            let dir = tempfile::tempdir().unwrap();
            let next = {
                let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
                fill(&log, 50);
                log.next_offset()
            };
            let segments = segment_files(dir.path()).len();
            // The new segment file exists but its header did not (fully) make it; its indexes were never created.
            let header = crate::codec::SegmentHeader::new(next).encode();
            fs::write(log_path(dir.path(), next), &header[..header_bytes]).unwrap();

            let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
            assert!(!report.lost_anything(), "{report}");
            assert_eq!((report.headers_repaired, report.segments), (1, segments + 1));
            assert_eq!(log.next_offset(), next);
            fill(&log, 5);
            check_everything_readable(&log);
            drop(log);
            let (_, report) = Log::open(dir.path(), small_opts(600)).unwrap();
            assert_eq!((report.headers_repaired, report.indexes_rebuilt), (0, 0), "{report}");
        }
    }

    #[test]
    fn crash_during_retention_delete() {
        let dir = tempfile::tempdir().unwrap();
        let next = {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 50);
            log.next_offset()
        };
        let files = segment_files(dir.path());
        let second_base = frames(&files[1])[0].1;
        // Retention removed the oldest `.log` and crashed before removing its index files.
        fs::remove_file(&files[0]).unwrap();

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert!(!report.lost_anything(), "{report}");
        assert_eq!(report.files_removed.len(), 2);
        assert_eq!((log.start_offset(), log.next_offset()), (second_base, next));
        check_everything_readable(&log);
    }

    #[test]
    fn missing_middle_segment_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let next = {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 60);
            log.next_offset()
        };
        let files = segment_files(dir.path());
        let gone_from = frames(&files[2])[0].1;
        let gone_to = frames(&files[3])[0].1;
        fs::remove_file(&files[2]).unwrap();

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert!(report.lost_anything());
        assert_eq!(
            report.issues,
            vec![RecoveryIssue::MissingRecords { path: files[1].clone(), from: gone_from, to: gone_to }]
        );
        assert_eq!(log.next_offset(), next);
        let got = log.read(gone_from - 1, 2, usize::MAX).unwrap();
        assert_eq!((got[0].offset, got[1].offset), (gone_from - 1, gone_to));
        assert_eq!(read_all(&log).len() as u64, next - (gone_to - gone_from));
    }

    #[test]
    fn newer_format_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = three_batches(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(b"future frames we do not understand");
        fs::write(&path, &bytes).unwrap();

        match Log::open(dir.path(), LogOptions::default()) {
            Err(LogError::UnsupportedVersion { version, .. }) => {
                assert_eq!(version, FORMAT_VERSION + 1)
            }
            other => panic!("expected UnsupportedVersion, got {:?}", other.map(|(_, r)| r)),
        }
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn newer_index_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        three_batches(dir.path());
        let path = time_index_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        bytes.push(7); // no longer a whole number of v1 entries either
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(Log::open(dir.path(), LogOptions::default()), Err(LogError::UnsupportedVersion { .. })));
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn damaged_headers() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path(), small_opts(600)).unwrap();
            fill(&log, 40);
        }
        let files = segment_files(dir.path());
        let (sealed, active) = (&files[0], files.last().unwrap());
        flip_byte(sealed, 2);
        flip_byte(active, 20);
        assert_ne!(fs::read(sealed).unwrap()[..8], SEGMENT_MAGIC);

        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert_eq!(report.issues.len(), 2, "{report}");
        assert!(report.issues.iter().all(|i| matches!(i, RecoveryIssue::BadHeader { .. })));
        assert_eq!(report.headers_repaired, 1, "only the active segment is rewritten");
        check_everything_readable(&log);
        drop(log);
        let (_, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert_eq!(report.issues.len(), 1, "{report}");
    }

    #[test]
    fn report_display_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = three_batches(dir.path());
        truncate(&path, fs::metadata(&path).unwrap().len() - 1);
        let (_, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        let line = report.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("offsets 0..3 (3 records)") && line.contains("at least 3 records"), "{line}");
    }
}
