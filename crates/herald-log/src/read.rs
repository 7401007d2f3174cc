//! Reads by offset and lookups by timestamp within one segment, done on a [`SegmentView`] without the log's lock.
//!
//! The index only says where to *start*; the data says what is true. A scan that starts at an index entry first
//! checks that the frame there really has the offset the entry promised. If not (a stale or damaged index that
//! recovery did not catch), the scan silently restarts from the segment header, so a bad index costs time, never a
//! wrong answer. Damage found after the first frame is real data corruption and is returned as
//! [`LogError::Corrupt`].

use std::io;
use std::ops::ControlFlow;

use bytes::Bytes;

use crate::codec::{Frame, SEGMENT_HEADER_LEN};
use crate::segment::{FrameScanner, SegmentView, Step};
use crate::{LogError, Record};

enum ScanFailure {
    /// The first frame did not match the starting point; carries the error to report if the start was the header.
    BadStart(LogError),
    Failed(LogError),
}

fn corrupt(view: &SegmentView, position: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt { path: view.path.to_path_buf(), position, reason: reason.into() }
}

fn io_error(view: &SegmentView, position: u64, e: io::Error) -> LogError {
    // The file is shorter than the size we recorded: someone truncated it under us.
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt(view, position, "segment file is shorter than expected")
    } else {
        LogError::Io(e)
    }
}

/// Calls `visit` for each frame of the segment from the view's starting point, until it breaks or the data ends.
fn scan(view: &SegmentView, visit: &mut dyn FnMut(&Frame<'_>, &Bytes) -> ControlFlow<()>) -> Result<(), LogError> {
    let from_header = (SEGMENT_HEADER_LEN as u64, view.base_offset);
    if view.start != from_header {
        match scan_from(view, view.start, visit) {
            Ok(()) => return Ok(()),
            Err(ScanFailure::Failed(e)) => return Err(e),
            Err(ScanFailure::BadStart(_)) => {} // the index hint was wrong; fall back to the full scan
        }
    }
    scan_from(view, from_header, visit).map_err(|f| match f {
        ScanFailure::BadStart(e) | ScanFailure::Failed(e) => e,
    })
}

fn scan_from(
    view: &SegmentView,
    (position, offset): (u64, u64),
    visit: &mut dyn FnMut(&Frame<'_>, &Bytes) -> ControlFlow<()>,
) -> Result<(), ScanFailure> {
    let mut scanner = FrameScanner::new(&view.file, position, view.size);
    let mut expected = offset;
    let mut first = true;
    loop {
        let at = scanner.position();
        let step = scanner.next_step().map_err(|e| ScanFailure::Failed(io_error(view, at, e)))?;
        let problem = match step {
            Step::End => return Ok(()),
            Step::Frame { frame, chunk, position } => {
                if frame.base_offset() == expected {
                    first = false;
                    expected = frame.next_offset();
                    if visit(&frame, chunk).is_break() {
                        return Ok(());
                    }
                    continue;
                }
                corrupt(view, position, format!("frame has base offset {}, expected {expected}", frame.base_offset()))
            }
            Step::Incomplete { position, .. } => corrupt(view, position, "frame runs past the end of the segment data"),
            Step::Corrupt { position, error, .. } => corrupt(view, position, error.to_string()),
        };
        return Err(if first { ScanFailure::BadStart(problem) } else { ScanFailure::Failed(problem) });
    }
}

/// Limits and output of one `Log::read` call, carried across segments.
pub struct ReadBatch {
    pub records: Vec<Record>,
    pub value_bytes: usize,
    pub max_records: usize,
    pub max_bytes: usize,
}

impl ReadBatch {
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records
    }

    /// Adds a record unless a limit forbids it; returns false when the read is complete.
    fn offer(&mut self, offset: u64, timestamp: i64, value: &[u8], chunk: &Bytes) -> bool {
        if self.is_full() {
            return false;
        }
        // Always return at least one record, even one larger than max_bytes, or a consumer could never get past it.
        if !self.records.is_empty() && self.value_bytes.saturating_add(value.len()) > self.max_bytes {
            return false;
        }
        self.value_bytes += value.len();
        let value = if value.is_empty() { Bytes::new() } else { chunk.slice_ref(value) };
        self.records.push(Record { offset, timestamp, value });
        true
    }
}

/// Appends the segment's records with offsets `>= from` to `batch`. Returns true if a limit was reached (the read
/// is complete), false if the segment ran out first.
pub fn read_segment(view: &SegmentView, from: u64, batch: &mut ReadBatch) -> Result<bool, LogError> {
    let mut limit_reached = false;
    scan(view, &mut |frame, chunk| {
        if frame.next_offset() <= from {
            return ControlFlow::Continue(());
        }
        for r in frame.records() {
            if r.offset < from {
                continue;
            }
            // A sealed segment can hold records the next segment also claims (reported at open); the next
            // segment wins, so stop here.
            if r.offset >= view.next_offset {
                return ControlFlow::Break(());
            }
            if !batch.offer(r.offset, r.timestamp, r.value, chunk) {
                limit_reached = true;
                return ControlFlow::Break(());
            }
        }
        if batch.is_full() {
            limit_reached = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(limit_reached)
}

/// The offset of the segment's first record with a timestamp `>= ts`, if any.
pub fn find_timestamp(view: &SegmentView, ts: i64) -> Result<Option<u64>, LogError> {
    let mut found = None;
    scan(view, &mut |frame, _| match frame.records().find(|r| r.timestamp >= ts && r.offset < view.next_offset) {
        Some(r) => {
            found = Some(r.offset);
            ControlFlow::Break(())
        }
        None => ControlFlow::Continue(()),
    })?;
    Ok(found)
}
