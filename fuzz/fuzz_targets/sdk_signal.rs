#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto::signal::fuzz_signal(data));
