//! Datagrams from the network into a Secure call exchanging audio (ZRTP,
//! SRTP/SRTCP, jitter buffer, Opus): see `sotto_engine::call::fuzz_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::call::fuzz_input(data));
