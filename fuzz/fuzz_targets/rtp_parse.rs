//! RTP parsing and receiver statistics on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::rtp::fuzz_parse(data));
