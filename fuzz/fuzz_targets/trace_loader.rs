//! Mahimahi and CICV5G trace loaders on arbitrary bytes, and a short
//! stream through whatever parses (see `sotto_jitter::link::fuzz_trace_loaders`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_jitter::link::fuzz_trace_loaders(data));
