//! The replay file's journal (`a <ts> <from> <id>`, `f <from> <id>`) on
//! arbitrary bytes, read through buffers of every size and written back
//! (see `sotto_signalling::replay_file::fuzz_load`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_signalling::replay_file::fuzz_load(data));
