//! RFC 7741 VP8 payload descriptor parsing on arbitrary payloads.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::video::vp8::fuzz_parse(data));
