//! RTCP compound-packet parsing on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::rtcp::fuzz_parse(data));
