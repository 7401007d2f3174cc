//! Positional file I/O and directory fsync, the only platform-specific code in the crate.
//!
//! The log writes and reads with explicit positions instead of a shared cursor: readers and the syncer can then use
//! the same `Arc<File>` as the writer without seeking, and without taking the writer's lock for their I/O.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::Path;

#[cfg(unix)]
pub fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
}

#[cfg(unix)]
pub fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
}

/// Writes `bufs` one after another at `pos`, all of them, with as few system calls as the kernel allows.
#[cfg(target_os = "linux")]
pub fn write_all_vectored_at(file: &File, mut bufs: &mut [IoSlice<'_>], mut pos: u64) -> io::Result<()> {
    /// Linux accepts at most this many buffers per call (IOV_MAX).
    const MAX_IOV: usize = 1024;
    IoSlice::advance_slices(&mut bufs, 0); // skip leading empty buffers
    while !bufs.is_empty() {
        let take = bufs.len().min(MAX_IOV);
        match rustix::io::pwritev(file, &bufs[..take], pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                pos += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Without a vectored positional write, the buffers are joined and written at once.
#[cfg(not(target_os = "linux"))]
pub fn write_all_vectored_at(file: &File, bufs: &mut [IoSlice<'_>], pos: u64) -> io::Result<()> {
    let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
    write_all_at(file, &joined, pos)
}

#[cfg(windows)]
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(windows)]
pub fn write_all_at(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes the directory's entries (created, renamed, removed files) durable. Without this a new segment could
/// vanish after a power loss even though its data was fsynced.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to fsync it; NTFS journals directory changes itself.
#[cfg(windows)]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Tells the kernel that `len` bytes of `file` from `offset` (whole pages within the range) will not be read soon, so
/// their page-cache pages can be reclaimed. Only call it on data that is already durable: the advice drops clean
/// pages, and for dirty ones it merely starts write-back. A hint: failures are ignored, and it does nothing on
/// platforms without `posix_fadvise`.
pub(crate) fn drop_cache(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More buffers than one system call takes, empty ones among them, at an offset: the file holds exactly their
    /// concatenation there.
    #[test]
    fn vectored_write_of_many_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let parts: Vec<Vec<u8>> = (0..3000u32).map(|i| vec![(i % 251) as u8; (i % 7) as usize]).collect();
        let expected: Vec<u8> = parts.concat();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored_at(&file, &mut slices, 100).unwrap();
        let mut back = vec![0u8; expected.len()];
        read_exact_at(&file, &mut back, 100).unwrap();
        assert_eq!(back, expected);
        assert_eq!(file.metadata().unwrap().len(), 100 + expected.len() as u64);
    }
}
