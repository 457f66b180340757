//! STUN decoding, and a fresh ICE session fed the bytes from a stranger.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::ice::fuzz_stun(data));
