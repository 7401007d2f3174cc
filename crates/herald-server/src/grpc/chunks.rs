//! A request body kept as the HTTP/2 DATA frames it arrived in, decoded without joining them.
//!
//! A large request can arrive as several HTTP/2 DATA frames (a client may send frames of up to 1 MiB, see
//! `listener`, but it may also send smaller ones, and a request over 1 MiB always spans several), each already a
//! [`Bytes`] slice of the connection's read buffer. Joining them into one buffer before decoding would copy every
//! byte once more; [`Cursor`] instead lets prost decode straight from the frames, and hands out `bytes` fields
//! (event payloads) as slices of them, so only a field that straddles two frames is copied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The body bytes read so far, in arrival order.
#[derive(Default)]
pub(super) struct Chunks {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push(data);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The first `N` bytes, once that many have arrived (wherever the frame boundaries fall).
    pub fn first<const N: usize>(&self) -> Option<[u8; N]> {
        if self.len < N {
            return None;
        }
        let mut out = [0u8; N];
        let mut cursor = self.cursor(0);
        cursor.copy_to_slice(&mut out);
        Some(out)
    }

    /// A reader over the bytes from `skip` on.
    pub fn cursor(&self, skip: usize) -> Cursor<'_> {
        let mut cursor = Cursor { chunks: &self.chunks, index: 0, pos: 0, remaining: self.len };
        cursor.advance(skip.min(self.len));
        cursor
    }

    /// All of it as one buffer: the frame itself when there is only one, otherwise a copy (used only when the
    /// request is handed on instead of decoded here).
    pub fn into_bytes(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.chunks) {
            Ok([one]) => one,
            Err(chunks) => {
                let mut all = BytesMut::with_capacity(self.len);
                for c in chunks {
                    all.put(c);
                }
                all.freeze()
            }
        }
    }
}

/// A [`Buf`] over [`Chunks`]: `copy_to_bytes` returns a slice of a frame whenever the bytes lie within one.
pub(super) struct Cursor<'a> {
    chunks: &'a [Bytes],
    /// The chunk being read and the position in it; `pos` is always short of the chunk's end unless all is read.
    index: usize,
    pos: usize,
    remaining: usize,
}

impl Buf for Cursor<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.get(self.index).map_or(&[], |c| &c[self.pos..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the body");
        self.remaining -= cnt;
        while cnt > 0 {
            let left = self.chunks[self.index].len() - self.pos;
            if cnt < left {
                self.pos += cnt;
                return;
            }
            cnt -= left;
            self.index += 1;
            self.pos = 0;
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining, "copy_to_bytes past the end of the body");
        if let Some(c) = self.chunks.get(self.index)
            && c.len() - self.pos >= len
        {
            let slice = c.slice(self.pos..self.pos + len);
            self.advance(len);
            return slice;
        }
        let mut out = BytesMut::with_capacity(len);
        out.put((&mut *self).take(len));
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8], sizes: &[usize]) -> Chunks {
        let all = Bytes::copy_from_slice(data);
        let mut chunks = Chunks::default();
        let mut at = 0;
        for &n in sizes {
            chunks.push(all.slice(at..at + n));
            at += n;
        }
        chunks.push(all.slice(at..));
        chunks
    }

    #[test]
    fn reads_across_frame_boundaries() {
        let data: Vec<u8> = (0..=255u8).collect();
        let chunks = split(&data, &[3, 0, 1, 100, 50]);
        assert_eq!(chunks.len(), 256);
        assert_eq!(chunks.first::<5>(), Some([0, 1, 2, 3, 4]));
        let mut cursor = chunks.cursor(2);
        assert_eq!(cursor.remaining(), 254);
        let mut out = Vec::new();
        while cursor.has_remaining() {
            let n = cursor.chunk().len().min(7);
            out.extend_from_slice(&cursor.chunk()[..n]);
            cursor.advance(n);
        }
        assert_eq!(out, &data[2..]);
        assert_eq!(chunks.into_bytes(), Bytes::from(data));
    }

    #[test]
    fn copy_to_bytes_slices_within_a_frame_and_copies_across() {
        let data: Vec<u8> = (0..100u8).collect();
        let chunks = split(&data, &[40]);
        let frame_start = chunks.chunks[0].as_ptr();
        let mut cursor = chunks.cursor(5);
        let inside = cursor.copy_to_bytes(30);
        assert_eq!(&inside[..], &data[5..35]);
        assert_eq!(inside.as_ptr(), frame_start.wrapping_add(5), "a slice of the frame, not a copy");
        let across = cursor.copy_to_bytes(10);
        assert_eq!(&across[..], &data[35..45]);
        assert_eq!(cursor.remaining(), 55);
        assert_eq!(cursor.copy_to_bytes(55), &data[45..]);
        assert_eq!(cursor.remaining(), 0);
        assert!(cursor.chunk().is_empty());
    }

    #[test]
    fn short_bodies_have_no_prefix_and_one_frame_is_not_copied() {
        let chunks = split(b"abc", &[1]);
        assert_eq!(chunks.first::<5>(), None);
        let one = split(b"hello world", &[]);
        let ptr = one.chunks[0].as_ptr();
        assert_eq!(one.into_bytes().as_ptr(), ptr);
        assert_eq!(Chunks::default().into_bytes(), Bytes::new());
    }

    #[test]
    fn prost_decodes_payloads_as_slices_of_the_frames() {
        use herald_proto::flowmesh::v1 as pb;
        use prost::Message;
        let events = (0..20).map(|i| pb::Event { payload: Bytes::from(vec![i as u8; 1000]), ..Default::default() });
        let request = pb::WriteEventsRequest { events: events.collect(), ..Default::default() };
        let encoded = request.encode_to_vec();
        let sizes = vec![4096; encoded.len() / 4096];
        let chunks = split(&encoded, &sizes);
        let decoded = pb::WriteEventsRequest::decode(chunks.cursor(0)).unwrap();
        assert_eq!(decoded, request);
        let frames: Vec<_> = chunks.chunks.iter().map(|c| c.as_ptr_range()).collect();
        let sliced = decoded.events.iter().filter(|e| frames.iter().any(|r| r.contains(&e.payload.as_ptr()))).count();
        // Payloads that straddle a 4 KiB boundary are copied; every other one points into a frame.
        assert!(sliced >= 15, "{sliced} of 20 payloads decoded without a copy");
    }
}
