//! Herald's segmented append-only log: the store for stream records, relay topic history and event bodies.
//!
//! A [`Log`] is one directory of segments. Records are appended in batches and get consecutive `u64` offsets;
//! they are read back by offset or located by timestamp, and old segments are deleted by retention. The design is
//! the one shared by Kafka, NATS JetStream and Iggy, kept small:
//!
//! * [`codec`]: the byte format, with no I/O. One batch is one *frame* with one CRC, which is what makes a batch
//!   all-or-nothing across a crash.
//! * `segment`: a `.log` file plus its sparse index, and a scanner over its frames.
//! * `index`: the sparse offset and time indexes, which are hints that recovery rebuilds when they are wrong.
//! * `recovery`: what `Log::open` does to a directory after a crash: truncate the torn tail, rebuild indexes,
//!   report what was lost ([`RecoveryReport`]).
//! * `read`: reads and timestamp lookups, done without holding the append lock.
//! * `retention`: which whole segments to delete for age, size and count limits.
//! * `log`: [`Log`] itself: locking, segment roll, and group commit.
//!
//! Durability is explicit: [`Log::append`] hands data to the OS and [`Log::sync`] makes it durable, with group
//! commit so that many appenders share one fsync. The engine decides when to call `sync` (its `fsync` policy).
//! The byte layout and a crash analysis are in `docs/storage-format.md`.
//!
//! ```
//! use herald_log::{Log, LogOptions, NewRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let (log, report) = Log::open(dir.path(), LogOptions::default())?;
//! assert!(!report.lost_anything());
//! let out = log.append(&[
//!     NewRecord { timestamp: 1_700_000_000_000_000_000, prefix: &[], value: b"hello" },
//!     NewRecord { timestamp: 1_700_000_000_000_000_001, prefix: &[], value: b"world" },
//! ])?;
//! log.sync()?; // durable from here on
//! let records = log.read(out.first_offset, 10, 1 << 20)?;
//! assert_eq!(&records[1].value[..], b"world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Plain `std` I/O, no async runtime: the engine calls this from a blocking thread pool.
//!
//! Not provided, on purpose: a directory lock (the engine owns each log directory and opens it once), compaction by
//! key (keyed state lives in fjall), and memory-mapped indexes (the sparse index of every segment is kept in memory,
//! about 16 bytes per `index_interval_bytes` of data).

pub mod codec;
mod error;
mod fileio;
mod index;
mod log;
mod read;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod testutil;

use std::time::Duration;

use bytes::Bytes;

pub use crate::codec::NewRecord;
pub use crate::error::LogError;
pub use crate::log::Log;
pub use crate::recovery::{RecoveryIssue, RecoveryReport, Truncation};
pub use crate::retention::RetentionOutcome;
pub use crate::segment::MAX_SEGMENT_BYTES;

/// Tuning and limits of one log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Roll to a new segment when appending a batch would make the active one larger than this. A segment holds at
    /// least one batch, so a single batch larger than this gets a segment of its own. At most
    /// [`MAX_SEGMENT_BYTES`]. Default 128 MiB.
    pub segment_max_bytes: u64,
    /// Write one sparse index entry (offset and time) every this many bytes of frames. Smaller means faster
    /// positioned reads and more memory; 0 indexes every batch. Default 4 KiB.
    pub index_interval_bytes: u64,
    pub retention: Retention,
    /// How much of the newest durable data stays in the page cache. After each [`Log::sync`], durable data of the
    /// active segment older than this window is dropped from the cache (`posix_fadvise(DONTNEED)`), and a segment
    /// leaves the cache entirely when it is sealed. Tailing readers read from the window; readers far behind read
    /// from disk. This keeps a log's cache footprint bounded instead of growing with everything ever written, which
    /// keeps the kernel recycling the same pages. `None` leaves caching to the kernel. Default 64 MiB.
    pub cache_window_bytes: Option<u64>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_max_bytes: 128 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention: Retention::default(),
            cache_window_bytes: Some(64 * 1024 * 1024),
        }
    }
}

impl LogOptions {
    fn validate(&self) -> Result<(), LogError> {
        let min = (codec::SEGMENT_HEADER_LEN + codec::MIN_FRAME_LEN as usize + 4) as u64;
        if self.segment_max_bytes < min || self.segment_max_bytes > MAX_SEGMENT_BYTES {
            return Err(LogError::InvalidOptions(format!(
                "segment_max_bytes must be between {min} and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_max_bytes
            )));
        }
        Ok(())
    }
}

/// Retention limits; `None` means no limit. Enforced by [`Log::enforce_retention`] on whole sealed segments, so
/// every limit is approximate by up to one segment.
#[derive(Default, Clone, Debug)]
pub struct Retention {
    /// Delete a segment once its newest record is older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while the log's data files exceed this many bytes.
    pub max_bytes: Option<u64>,
    /// Delete the oldest segments while the log holds more than this many records.
    pub max_records: Option<u64>,
}

/// A stored record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub offset: u64,
    /// Producer timestamp, Unix nanoseconds.
    pub timestamp: i64,
    /// The value, sharing the buffer it was read into with the other records of the same read.
    pub value: Bytes,
}

/// Offsets given to an appended batch (both inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_offset: u64,
    pub last_offset: u64,
}
