//! Feeds arbitrary bytes to the NATS client-protocol parser, in one read and split into two reads.
//!
//! `fuzz_parse` panics only when the parser panics or when the result depends on how the input was split, so any
//! crash here is a real bug.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald_server::nats::codec::fuzz_parse(data);
});
