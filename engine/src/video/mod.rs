//! Video over the call's SRTP session: VP8 frames carried in RTP as
//! RFC 7741 describes, on an SSRC of their own, and put back together
//! into whole frames on the way in.

pub mod assembler;
pub mod vp8;
