//! Helpers shared by the tests: building logs with known contents and poking at their files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::codec::{self, SEGMENT_HEADER_LEN};
use crate::{Log, LogOptions, NewRecord, Record};

/// Small segments and a dense index, so a few hundred records exercise rolls and index lookups.
pub fn small_opts(segment_max_bytes: u64) -> LogOptions {
    LogOptions { segment_max_bytes, index_interval_bytes: 100, ..Default::default() }
}

/// The value stored at `offset` by [`fill`]; its length varies so frames differ in size.
pub fn value_for(offset: u64) -> Vec<u8> {
    let mut v = format!("record-{offset}-").into_bytes();
    v.resize(v.len() + (offset % 7) as usize, b'x');
    v
}

/// The timestamp stored at `offset` by [`fill`].
pub fn ts_for(offset: u64) -> i64 {
    1_000_000 + offset as i64 * 10
}

/// Appends `batches` batches of 1..=3 records whose values and timestamps are derived from their offsets.
pub fn fill(log: &Log, batches: usize) {
    for i in 0..batches {
        let base = log.next_offset();
        let n = 1 + (i % 3) as u64;
        let values: Vec<Vec<u8>> = (base..base + n).map(value_for).collect();
        let batch: Vec<NewRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(j, v)| NewRecord { timestamp: ts_for(base + j as u64), prefix: &[], value: v })
            .collect();
        let out = log.append(&batch).unwrap();
        assert_eq!((out.first_offset, out.last_offset), (base, base + n - 1));
    }
}

/// Checks that `records` are exactly the `fill` records for consecutive offsets from `first`.
pub fn assert_filled(records: &[Record], first: u64) {
    for (i, r) in records.iter().enumerate() {
        let offset = first + i as u64;
        assert_eq!(r.offset, offset);
        assert_eq!(r.timestamp, ts_for(offset));
        assert_eq!(&r.value[..], &value_for(offset)[..], "value at offset {offset}");
    }
}

pub fn read_all(log: &Log) -> Vec<Record> {
    log.read(0, usize::MAX, usize::MAX).unwrap()
}

/// The `.log` files in `dir`, in offset order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// `(position, base_offset, record_count)` of every frame in a segment file.
pub fn frames(path: &Path) -> Vec<(u64, u64, u32)> {
    let bytes = fs::read(path).unwrap();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while let Ok(Some((frame, used))) = codec::decode_frame(&bytes[pos..]) {
        out.push((pos as u64, frame.base_offset(), frame.record_count()));
        pos += used;
    }
    out
}

pub fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}
