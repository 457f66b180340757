//! RFC 7983 first-byte demux, then the matching RTP/RTCP/STUN parser, on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_engine::demux::fuzz_demux(data));
