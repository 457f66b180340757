//! The jitter buffer's insert/pull path on arbitrary packet sequences
//! and payloads (see `sotto_jitter::fuzz_insert_pull`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_jitter::fuzz_insert_pull(data));
