//! The WAV reader (RIFF chunks, fmt, a data chunk of any declared length)
//! on arbitrary files (see `sotto_codecs::wav::fuzz_read`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_codecs::wav::fuzz_read(data));
