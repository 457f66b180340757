//! The VP8 decoder on arbitrary frames (see `sotto_codecs::vp8::fuzz_decode`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_codecs::vp8::fuzz_decode(data));
