//! The Opus decoder (decode, FEC check and recovery, PLC) on arbitrary
//! payloads (see `sotto_codecs::opus::fuzz_decode`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_codecs::opus::fuzz_decode(data));
