//! Video frame assembly on arbitrary packet sequences (see
//! `sotto_engine::video::assembler::fuzz_assemble`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::video::assembler::fuzz_assemble(data));
