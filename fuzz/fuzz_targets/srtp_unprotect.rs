//! SRTP/SRTCP unprotect over arbitrary bytes, every profile, plus a
//! protect -> unprotect round trip (see `sotto_engine::srtp::fuzz_unprotect`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::srtp::fuzz_unprotect(data));
