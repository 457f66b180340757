//! Client and server signalling frames from untrusted bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_signalling::protocol::fuzz_parse(data));
