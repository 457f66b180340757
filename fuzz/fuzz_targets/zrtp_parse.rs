//! ZRTP packet framing and message codecs on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::zrtp::fuzz_parse(data));
