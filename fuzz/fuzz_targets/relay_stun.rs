//! sotto-relay's STUN/TURN codec and allocation core on arbitrary client input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_relay::fuzz_input(data));
