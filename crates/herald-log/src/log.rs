//! [`Log`]: the segments of one directory behind a lock, with segment roll and group commit.
//!
//! Locks, in the only order they may be taken:
//!
//! 1. `sync_lock`, held by one `sync()` at a time for the duration of its fsync, so concurrent callers queue
//!    behind it and then find their records already covered;
//! 2. `inner`, the append lock: the segment list and the active segment's write position. Held for one positional
//!    write per append, and briefly by readers, `sync()` and retention to take a snapshot. Never held while
//!    waiting for `sync_lock`.
//!
//! Nothing fsyncs under `inner` except a segment roll, which must make the old segment durable before the new one
//! exists (so that only the active segment can ever be torn) and happens once per `segment_max_bytes`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::codec::PreparedFrame;
use crate::fileio::{drop_cache, sync_dir};
use crate::index::{offset_index_path, time_index_path};
use crate::read::{ReadBatch, find_timestamp, read_segment};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self, RetentionOutcome, SegmentStat};
use crate::segment::{Segment, log_path};
use crate::{AppendOutcome, LogError, LogOptions, NewRecord, Record};

/// A segmented append-only log in one directory. `Send + Sync`; every method takes `&self`.
///
/// One `Log` per directory: two instances writing the same directory would corrupt it, and nothing here prevents
/// that (the engine owns each directory).
pub struct Log {
    dir: PathBuf,
    opts: LogOptions,
    inner: Mutex<Inner>,
    sync_lock: Mutex<()>,
    /// Offsets below this are durable. Only grows.
    synced_offset: AtomicU64,
    /// fdatasync calls made by `sync()`, for metrics and for tests of group commit.
    sync_calls: AtomicU64,
    /// (base offset of the active segment, byte position below which its pages were dropped from the cache).
    cache_dropped: Mutex<(u64, u64)>,
}

struct Inner {
    /// Immutable, fsynced segments in offset order.
    sealed: Vec<Segment>,
    /// The segment appends go to; always present, possibly empty.
    active: Segment,
    /// Sum of the segments' data sizes.
    total_bytes: u64,
    /// Set when a failure leaves the on-disk state uncertain; appends and syncs are refused from then on.
    poisoned: Option<String>,
}

impl Inner {
    fn start_offset(&self) -> u64 {
        self.sealed.first().map_or(self.active.base_offset, |s| s.base_offset)
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    /// The segment that holds `offset`, which must be `>= start_offset()`.
    fn segment_for(&self, offset: u64) -> &Segment {
        if offset >= self.active.base_offset {
            return &self.active;
        }
        let after = self.sealed.partition_point(|s| s.base_offset <= offset);
        after.checked_sub(1).and_then(|i| self.sealed.get(i)).unwrap_or(&self.active)
    }

    fn check_usable(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(why) => Err(LogError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, why: String) {
        self.poisoned.get_or_insert(why);
    }
}

impl Log {
    /// Opens or creates the log in `dir`, running crash recovery (see [`RecoveryReport`]).
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> Result<(Log, RecoveryReport), LogError> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let (sealed, active, report) = recovery::recover(&dir, &opts)?;
        let total_bytes = sealed.iter().map(|s| s.size).sum::<u64>() + active.size;
        // Recovery fsynced the active segment, and sealed ones were fsynced when they were sealed.
        let synced = active.next_offset;
        let log = Log {
            dir,
            opts,
            inner: Mutex::new(Inner { sealed, active, total_bytes, poisoned: None }),
            sync_lock: Mutex::new(()),
            synced_offset: AtomicU64::new(synced),
            sync_calls: AtomicU64::new(0),
            cache_dropped: Mutex::new((u64::MAX, 0)),
        };
        Ok((log, report))
    }

    /// Appends a batch atomically, giving its records consecutive offsets starting at [`next_offset`].
    ///
    /// The batch is one frame with one checksum, so after a crash it is either entirely present or entirely gone.
    /// The data is handed to the OS (page cache) and is visible to reads at once, but is not durable until a
    /// [`sync`](Self::sync) that starts after this call returns.
    ///
    /// [`next_offset`]: Self::next_offset
    pub fn append(&self, batch: &[NewRecord<'_>]) -> Result<AppendOutcome, LogError> {
        // Encode and checksum the records before taking the lock; only the base offset is stamped under it.
        let mut frame = PreparedFrame::new(batch)?;
        let count = frame.record_count();
        let max_timestamp = frame.max_timestamp();
        let len = frame.len() as u64;

        let mut inner = self.inner.lock();
        inner.check_usable()?;
        let base = inner.active.next_offset;
        let mut pieces = frame.finish(base)?;
        if inner.active.record_count() > 0 && inner.active.size + len > self.opts.segment_max_bytes {
            self.roll_locked(&mut inner)?;
        }
        if let Err(e) = inner.active.append(&mut pieces, len, count, max_timestamp, self.opts.index_interval_bytes) {
            if !e.rewound {
                inner.poison(format!("append failed and the partial frame could not be removed: {}", e.error));
            }
            return Err(e.error.into());
        }
        inner.total_bytes += len;
        Ok(AppendOutcome { first_offset: base, last_offset: base + u64::from(count) - 1 })
    }

    /// Seals the active segment and starts a new one at the next offset. Lock: `inner` held.
    fn roll_locked(&self, inner: &mut Inner) -> Result<(), LogError> {
        let base = inner.active.next_offset;
        if let Err(e) = inner.active.seal(&self.dir) {
            inner.poison(format!("fsync failed while sealing a segment: {e}"));
            return Err(e.into());
        }
        let new = Segment::create(&self.dir, base)?;
        // The new file's directory entry must be durable before any record in it is reported durable by sync(),
        // which fsyncs only the file.
        if let Err(e) = sync_dir(&self.dir) {
            inner.poison(format!("fsync of the log directory failed: {e}"));
            return Err(e.into());
        }
        let mut old = std::mem::replace(&mut inner.active, new);
        old.index = None; // sealed segments keep no index handles open
        if self.opts.cache_window_bytes.is_some() {
            // Sealed and fsynced: its pages can go (readers this far behind read from disk).
            drop_cache(&old.file, 0, old.size);
        }
        inner.total_bytes += inner.active.size;
        inner.sealed.push(old);
        // Everything before the new segment was fsynced by seal().
        self.synced_offset.fetch_max(base, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every record appended before this call durable (fdatasync of the active segment).
    ///
    /// Group commit: the fsync runs without the append lock, so appends continue meanwhile, and callers queue on a
    /// separate lock. A caller that gets the lock after someone else's fsync that covered its records returns
    /// without an fsync of its own; one fsync thus serves every append that finished before it started. A cheap
    /// no-op when nothing is unsynced.
    pub fn sync(&self) -> Result<(), LogError> {
        let target = {
            let inner = self.inner.lock();
            inner.check_usable()?;
            inner.active.next_offset
        };
        if self.synced_offset.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _turn = self.sync_lock.lock();
        if self.synced_offset.load(Ordering::Acquire) >= target {
            return Ok(()); // covered by the fsync we waited behind
        }
        // Cover everything appended up to now, not just up to `target`: later callers then need no fsync.
        let (file, upto, segment_base, synced_bytes) = {
            let inner = self.inner.lock();
            inner.check_usable()?;
            (Arc::clone(&inner.active.file), inner.active.next_offset, inner.active.base_offset, inner.active.size)
        };
        self.sync_calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages; nothing written since the last
            // good fsync can be trusted, so stop accepting work until recovery has looked at the files.
            self.inner.lock().poison(format!("fsync failed: {e}"));
            return Err(e.into());
        }
        // Records older than the active segment were fsynced when their segment rolled, so everything below
        // `upto` is now durable even if a roll happened since the snapshot.
        self.synced_offset.fetch_max(upto, Ordering::AcqRel);
        self.trim_cache(&file, segment_base, synced_bytes);
        Ok(())
    }

    /// Drops durable data of the active segment older than the cache window from the page cache (see
    /// `LogOptions::cache_window_bytes`). `synced_bytes` must be covered by a finished fsync.
    fn trim_cache(&self, file: &std::fs::File, segment_base: u64, synced_bytes: u64) {
        const PAGE: u64 = 4096;
        let Some(window) = self.opts.cache_window_bytes else { return };
        let keep_from = synced_bytes.saturating_sub(window) & !(PAGE - 1);
        let mut dropped = self.cache_dropped.lock();
        let from = if dropped.0 == segment_base { dropped.1 } else { 0 };
        if keep_from > from {
            drop_cache(file, from, keep_from - from);
            *dropped = (segment_base, keep_from);
        }
    }

    /// Offsets below this are durable.
    pub fn synced_offset(&self) -> u64 {
        self.synced_offset.load(Ordering::Acquire)
    }

    /// Number of fdatasync calls `sync()` has made (group commit makes this smaller than the number of calls).
    pub fn sync_count(&self) -> u64 {
        self.sync_calls.load(Ordering::Relaxed)
    }

    /// Reads records with offsets `>= from` in ascending order: at most `max_records`, and stopping before the
    /// values would exceed `max_bytes` in total, except that the first record is always returned if one exists.
    ///
    /// `from` below [`start_offset`](Self::start_offset) starts at the start; `from` at or past
    /// [`next_offset`](Self::next_offset) returns nothing. Sees every appended record, synced or not.
    ///
    /// If damaged data is reached after some records were collected, those records are returned; the next read,
    /// starting at the damage, returns [`LogError::Corrupt`].
    pub fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> Result<Vec<Record>, LogError> {
        let mut batch = ReadBatch { records: Vec::new(), value_bytes: 0, max_records, max_bytes };
        if max_records == 0 {
            return Ok(batch.records);
        }
        let mut cursor = from;
        loop {
            let (view, log_end) = {
                let inner = self.inner.lock();
                cursor = cursor.max(inner.start_offset());
                let log_end = inner.active.next_offset;
                if cursor >= log_end {
                    break;
                }
                let segment = inner.segment_for(cursor);
                (segment.view(segment.seek_hint(cursor)), log_end)
            };
            match read_segment(&view, cursor, &mut batch) {
                Ok(true) => break,
                Ok(false) => {}
                Err(LogError::Corrupt { .. }) if !batch.records.is_empty() => break,
                Err(e) => return Err(e),
            }
            // Stop at the end as it was when this segment was looked up, rather than chase a busy producer.
            if view.next_offset >= log_end {
                break;
            }
            cursor = view.next_offset;
        }
        Ok(batch.records)
    }

    /// The first offset still stored; moves forward as retention deletes segments.
    pub fn start_offset(&self) -> u64 {
        self.inner.lock().start_offset()
    }

    /// The offset the next appended record will get; 0 for a new log.
    pub fn next_offset(&self) -> u64 {
        self.inner.lock().active.next_offset
    }

    /// The first offset whose record has a timestamp `>= ts`, or `None` if there is none.
    ///
    /// Segments whose newest record is older than `ts` are skipped; in the first other segment, the time index
    /// gives a starting point and a scan finds the record.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>, LogError> {
        let mut after = None;
        loop {
            let view = {
                let inner = self.inner.lock();
                let candidate = inner
                    .segments()
                    .find(|s| after.is_none_or(|a| s.base_offset > a) && s.max_timestamp.is_some_and(|m| m >= ts));
                match candidate {
                    Some(s) => s.view(s.time_hint(ts)),
                    None => return Ok(None),
                }
            };
            if let Some(offset) = find_timestamp(&view, ts)? {
                return Ok(Some(offset));
            }
            // Only possible if the segment's data is shorter than recorded; try the next one.
            after = Some(view.base_offset);
        }
    }

    /// Deletes whole sealed segments, oldest first, while a retention limit is exceeded (see
    /// [`Retention`](crate::Retention)). `now_ns` is the current time in Unix nanoseconds, passed in so tests
    /// control the clock. The active segment is never deleted.
    pub fn enforce_retention(&self, now_ns: i64) -> Result<RetentionOutcome, LogError> {
        let removed: Vec<Segment> = {
            let mut inner = self.inner.lock();
            let stats: Vec<SegmentStat> = inner
                .segments()
                .map(|s| SegmentStat { records: s.record_count(), bytes: s.size, max_timestamp: s.max_timestamp })
                .collect();
            let n = retention::segments_to_remove(&stats, &self.opts.retention, now_ns);
            let removed: Vec<Segment> = inner.sealed.drain(..n).collect();
            inner.total_bytes -= removed.iter().map(|s| s.size).sum::<u64>();
            removed
        };
        let mut outcome = RetentionOutcome::default();
        if removed.is_empty() {
            return Ok(outcome);
        }
        // Files are deleted outside the lock. A reader that looked a segment up before it was removed keeps
        // reading through its open handle. Oldest first, and the `.log` before its indexes, so a crash here
        // leaves a contiguous suffix of segments and at worst orphaned index files, which recovery removes.
        let mut first_error = None;
        for segment in &removed {
            outcome.segments_removed += 1;
            outcome.records_removed += segment.record_count();
            outcome.bytes_removed += segment.size;
            for path in [
                log_path(&self.dir, segment.base_offset),
                offset_index_path(&self.dir, segment.base_offset),
                time_index_path(&self.dir, segment.base_offset),
            ] {
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        sync_dir(&self.dir)?;
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(outcome),
        }
    }

    /// Bytes in the log's `.log` files (indexes not included).
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().total_bytes
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().sealed.len() + 1
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("start_offset", &inner.start_offset())
            .field("next_offset", &inner.active.next_offset)
            .field("synced_offset", &self.synced_offset())
            .field("segments", &(inner.sealed.len() + 1))
            .field("poisoned", &inner.poisoned)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::testutil::*;
    use crate::{MAX_SEGMENT_BYTES, Retention};

    const _: () = {
        const fn send_sync<T: Send + Sync>() {}
        send_sync::<Log>();
    };

    #[test]
    fn append_and_read_across_segment_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let (log, report) = Log::open(dir.path(), small_opts(600)).unwrap();
        assert!(report.created && !report.lost_anything());
        assert_eq!((log.start_offset(), log.next_offset()), (0, 0));
        assert!(log.read(0, 10, 1_000).unwrap().is_empty());

        fill(&log, 150);
        let next = log.next_offset();
        assert_eq!(next, 50 * (1 + 2 + 3));
        assert!(log.segment_count() > 5, "only {} segments", log.segment_count());
        assert_eq!(segment_files(dir.path()).len(), log.segment_count());
        let on_disk: u64 = segment_files(dir.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        assert_eq!(log.size_bytes(), on_disk);

        let all = read_all(&log);
        assert_eq!(all.len() as u64, next);
        assert_filled(&all, 0);

        // Every starting offset, with a record limit that crosses segment boundaries.
        for from in 0..next {
            let got = log.read(from, 7, usize::MAX).unwrap();
            assert_eq!(got.len() as u64, 7.min(next - from));
            assert_filled(&got, from);
        }
        // Byte limit: stop before exceeding it, but always return one record.
        let got = log.read(10, 100, 30).unwrap();
        assert!(got.iter().map(|r| r.value.len()).sum::<usize>() <= 30);
        assert!(got.len() >= 2);
        assert_filled(&got, 10);
        let got = log.read(10, 100, 0).unwrap();
        assert_eq!(got.len(), 1);
        assert_filled(&got, 10);
        // Past the end, and no records requested.
        assert!(log.read(next, 10, 1_000).unwrap().is_empty());
        assert!(log.read(u64::MAX, 10, 1_000).unwrap().is_empty());
        assert!(log.read(0, 0, 1_000).unwrap().is_empty());
    }

    #[test]
    fn reopen_after_clean_close_continues() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (log, _) = Log::open(dir.path(), small_opts(700)).unwrap();
            fill(&log, 60);
            (read_all(&log), log.next_offset(), log.size_bytes(), log.segment_count())
        };
        let (log, report) = Log::open(dir.path(), small_opts(700)).unwrap();
        assert!(!report.lost_anything(), "{report}");
        assert_eq!(report.indexes_rebuilt, 0, "{report}");
        assert_eq!((report.segments, report.start_offset, report.next_offset), (before.3, 0, before.1));
        assert_eq!(read_all(&log), before.0);
        assert_eq!((log.next_offset(), log.size_bytes(), log.segment_count()), (before.1, before.2, before.3));
        assert_eq!(log.synced_offset(), log.next_offset());

        fill(&log, 10);
        assert_filled(&read_all(&log), 0);
        assert_eq!(log.offset_for_timestamp(ts_for(before.1 + 1)).unwrap(), Some(before.1 + 1));
    }

    #[test]
    fn reads_see_unsynced_appends_and_sync_tracks_durability() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(log.synced_offset(), 0);
        log.sync().unwrap();
        assert_eq!(log.sync_count(), 0, "nothing to sync is a no-op");

        log.append(&[
            NewRecord { timestamp: 1, prefix: &[], value: b"a" },
            NewRecord { timestamp: 2, prefix: &[], value: b"b" },
        ])
        .unwrap();
        assert_eq!(log.read(0, 10, 100).unwrap().len(), 2);
        assert_eq!(log.synced_offset(), 0);
        log.sync().unwrap();
        assert_eq!((log.synced_offset(), log.sync_count()), (2, 1));
        log.sync().unwrap();
        assert_eq!(log.sync_count(), 1, "already synced");
    }

    #[test]
    fn reads_are_complete_after_synced_data_leaves_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions { segment_max_bytes: 64 * 1024, cache_window_bytes: Some(0), ..LogOptions::default() };
        let (log, _) = Log::open(dir.path(), opts).unwrap();
        let value = vec![7u8; 3000];
        for _ in 0..100 {
            log.append(&[NewRecord::new(1, &value)]).unwrap();
            log.sync().unwrap();
        }
        assert!(log.segment_count() > 1, "rolled, so sealed segments were dropped from the cache too");
        let all = log.read(0, 1000, usize::MAX).unwrap();
        assert_eq!(all.len(), 100);
        assert!(all.iter().all(|r| r.value[..] == value[..]));
    }

    #[test]
    fn roll_makes_old_segments_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), small_opts(300)).unwrap();
        fill(&log, 40);
        assert!(log.segment_count() > 2);
        let active_base = log.inner.lock().active.base_offset;
        assert!(log.synced_offset() >= active_base);
        assert_eq!(log.sync_count(), 0);
    }

    #[test]
    fn rejects_bad_batches_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert!(matches!(log.append(&[]), Err(LogError::EmptyBatch)));
        let mib = vec![0u8; 1 << 20];
        let huge: Vec<NewRecord<'_>> = (0..65).map(|_| NewRecord { timestamp: 0, prefix: &[], value: &mib }).collect();
        assert!(matches!(log.append(&huge), Err(LogError::BatchTooLarge { .. })));
        assert_eq!(log.next_offset(), 0);

        // A batch larger than a segment gets a segment of its own.
        let (small, _) = Log::open(dir.path().join("small"), small_opts(200)).unwrap();
        let big = vec![1u8; 1_000];
        small.append(&[NewRecord { timestamp: 0, prefix: &[], value: b"x" }]).unwrap();
        small.append(&[NewRecord { timestamp: 0, prefix: &[], value: &big }]).unwrap();
        small.append(&[NewRecord { timestamp: 0, prefix: &[], value: b"y" }]).unwrap();
        assert_eq!(small.segment_count(), 3);
        assert_eq!(small.read(1, 1, 0).unwrap()[0].value.len(), 1_000);

        for bad in [10, MAX_SEGMENT_BYTES + 1] {
            let opts = LogOptions { segment_max_bytes: bad, ..Default::default() };
            assert!(matches!(Log::open(dir.path().join("bad"), opts), Err(LogError::InvalidOptions(_))));
        }
    }

    #[test]
    fn offset_for_timestamp_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), small_opts(500)).unwrap();
        fill(&log, 90);
        let next = log.next_offset();
        assert!(log.segment_count() > 4);
        assert_eq!(log.offset_for_timestamp(i64::MIN).unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(ts_for(0)).unwrap(), Some(0));
        for offset in 0..next {
            // Exact timestamps, and timestamps between two records.
            assert_eq!(log.offset_for_timestamp(ts_for(offset)).unwrap(), Some(offset));
            assert_eq!(log.offset_for_timestamp(ts_for(offset) - 5).unwrap(), Some(offset));
        }
        assert_eq!(log.offset_for_timestamp(ts_for(next - 1) + 1).unwrap(), None);
    }

    #[test]
    fn offset_for_timestamp_with_out_of_order_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), LogOptions { index_interval_bytes: 0, ..small_opts(400) }).unwrap();
        // Producer clocks disagree: timestamps jump around.
        let stamps: Vec<i64> = (0..200).map(|i: i64| (i * 7_919) % 1_000).collect();
        for ts in &stamps {
            log.append(&[NewRecord { timestamp: *ts, prefix: &[], value: b"v" }]).unwrap();
        }
        assert!(log.segment_count() > 3);
        for target in [0, 1, 17, 500, 998, 999, 1_000, -3] {
            let expected = stamps.iter().position(|&t| t >= target).map(|p| p as u64);
            assert_eq!(log.offset_for_timestamp(target).unwrap(), expected, "target {target}");
        }
    }

    #[test]
    fn retention_by_records_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention { max_records: Some(100), ..Default::default() };
        let (log, _) = Log::open(dir.path(), LogOptions { retention, ..small_opts(500) }).unwrap();
        fill(&log, 120);
        let next = log.next_offset();
        let before_segments = log.segment_count();
        let before_bytes = log.size_bytes();

        let outcome = log.enforce_retention(0).unwrap();
        assert!(outcome.segments_removed > 0);
        assert_eq!(log.segment_count(), before_segments - outcome.segments_removed);
        assert_eq!(log.start_offset(), outcome.records_removed);
        assert_eq!(log.size_bytes(), before_bytes - outcome.bytes_removed);
        let kept = next - log.start_offset();
        assert!(kept <= 100, "kept {kept}");
        // Whole segments only: keeping one more segment would have exceeded the limit... or it is the active one.
        assert!(kept > 100 - 60, "kept only {kept}");
        assert_eq!(segment_files(dir.path()).len(), log.segment_count());

        // Reads below the start begin at the start.
        let got = log.read(0, 5, usize::MAX).unwrap();
        assert_eq!(got[0].offset, log.start_offset());
        assert_filled(&got, log.start_offset());
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(log.start_offset()));
        // Nothing more to do; and the state survives a reopen.
        assert_eq!(log.enforce_retention(0).unwrap(), RetentionOutcome::default());
        let start = log.start_offset();
        drop(log);
        let (log, report) = Log::open(dir.path(), small_opts(500)).unwrap();
        assert!(!report.lost_anything(), "{report}");
        assert_eq!((log.start_offset(), log.next_offset()), (start, next));
        assert!(fs::read_dir(dir.path()).unwrap().count() == 3 * log.segment_count());

        // By bytes: the active segment always stays.
        let retention = Retention { max_bytes: Some(1), ..Default::default() };
        let (log, _) = Log::open(dir.path(), LogOptions { retention, ..small_opts(500) }).unwrap();
        log.enforce_retention(0).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.next_offset(), next);
        assert_filled(&read_all(&log), log.start_offset());
    }

    #[test]
    fn retention_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention { max_age: Some(Duration::from_nanos(1_000)), ..Default::default() };
        let (log, _) = Log::open(dir.path(), LogOptions { retention, ..small_opts(400) }).unwrap();
        fill(&log, 60); // timestamps ts_for(offset) = 1_000_000 + 10 * offset
        let next = log.next_offset();

        // Nothing is older than max_age yet.
        assert_eq!(log.enforce_retention(ts_for(0) + 1_000).unwrap().segments_removed, 0);
        // Records older than 1_000_000 + 10 * 50 go, in whole segments.
        let outcome = log.enforce_retention(ts_for(50) + 1_000).unwrap();
        assert!(outcome.segments_removed > 0);
        let start = log.start_offset();
        assert!(start <= 51 && start > 20, "start {start}");
        // The first remaining segment holds a record at or after the cutoff.
        let remaining = log.inner.lock().sealed.first().map(|s| s.max_timestamp);
        if let Some(max) = remaining {
            assert!(max.unwrap() >= ts_for(50));
        }
        // Far in the future everything sealed goes, never the active segment.
        log.enforce_retention(i64::MAX).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.next_offset(), next);
        assert!(!log.read(0, 1, 1).unwrap().is_empty());
    }

    #[test]
    fn group_commit_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), small_opts(4_096)).unwrap();
        let log = Arc::new(log);
        let threads = 4;
        let per_thread = 150;
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = Arc::clone(&log);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let value = format!("{t}:{i}");
                        let out =
                            log.append(&[NewRecord { timestamp: i, prefix: &[], value: value.as_bytes() }]).unwrap();
                        log.sync().unwrap();
                        assert!(log.synced_offset() > out.last_offset, "sync returned before covering the append");
                    }
                });
            }
        });
        let total = (threads * per_thread) as u64;
        assert_eq!(log.next_offset(), total);
        assert_eq!(log.synced_offset(), total);
        assert!(log.sync_count() <= total);

        // Every thread's records are there, each thread's in its own order.
        let mut seen: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        let all = read_all(&log);
        assert_eq!(all.len() as u64, total);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            let text = std::str::from_utf8(&r.value).unwrap();
            let (t, n) = text.split_once(':').unwrap();
            assert_eq!(n.parse::<i64>().unwrap(), r.timestamp);
            seen.entry(t.parse().unwrap()).or_default().push(r.timestamp);
        }
        for stamps in seen.values() {
            assert_eq!(stamps, &(0..per_thread).collect::<Vec<_>>());
        }
    }

    /// Appenders that queue behind an fsync in progress are all covered by the next single fsync.
    #[test]
    fn one_fsync_covers_every_waiting_appender() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
        let n = 6;
        let (appended_tx, appended_rx) = std::sync::mpsc::channel();
        let in_progress = log.sync_lock.lock(); // stands for a slow fsync someone else is doing
        std::thread::scope(|s| {
            for i in 0..n {
                let log = &log;
                let appended_tx = appended_tx.clone();
                s.spawn(move || {
                    log.append(&[NewRecord { timestamp: i, prefix: &[], value: b"v" }]).unwrap();
                    appended_tx.send(()).unwrap();
                    log.sync().unwrap();
                });
            }
            for _ in 0..n {
                appended_rx.recv().unwrap();
            }
            // Appends are not blocked by the fsync; now let it "finish".
            assert_eq!(log.next_offset(), n as u64);
            drop(in_progress);
        });
        assert_eq!(log.synced_offset(), n as u64);
        assert_eq!(log.sync_count(), 1);
    }

    #[test]
    fn readers_and_retention_alongside_appends() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention { max_records: Some(200), ..Default::default() };
        let (log, _) = Log::open(dir.path(), LogOptions { retention, ..small_opts(800) }).unwrap();
        let log = Arc::new(log);
        std::thread::scope(|s| {
            let writer = Arc::clone(&log);
            s.spawn(move || {
                fill(&writer, 400);
                writer.sync().unwrap();
            });
            let cleaner = Arc::clone(&log);
            s.spawn(move || {
                for _ in 0..200 {
                    cleaner.enforce_retention(0).unwrap();
                    std::thread::yield_now();
                }
            });
            for _ in 0..2 {
                let reader = Arc::clone(&log);
                s.spawn(move || {
                    let mut from = 0;
                    for _ in 0..500 {
                        let got = reader.read(from, 13, 400).unwrap();
                        if let Some(first) = got.first() {
                            assert!(first.offset >= from);
                            assert_filled(&got, first.offset);
                            from = got.last().unwrap().offset + 1;
                        }
                    }
                });
            }
        });
        log.enforce_retention(0).unwrap();
        assert!(log.next_offset() - log.start_offset() <= 200);
        assert_filled(&read_all(&log), log.start_offset());
    }
}
