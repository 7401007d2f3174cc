//! Feeds arbitrary bytes to the log's frame, segment-header and index decoders.
//!
//! `fuzz_decode` panics only when a decoder property is violated (a decoded frame that does not re-encode to the
//! same bytes, a prefix of a valid frame reported as corrupt), so any crash here is a real bug.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_log::codec::fuzz_decode(data);
});
