//! The ZRTP state machine fed arbitrary datagrams.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::zrtp::fuzz_endpoint(data));
