//! Video frame assembly on arbitrary packet sequences (see `sotto_engine
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| :video::assembler::fuzz_assemble`).:sotto_engine::video::assembler::fuzz_assemble(data));
