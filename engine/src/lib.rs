//! `sotto-engine`: one encrypted call.
//!
//! Every protocol here is a sans-IO state machine (see `DESIGN.md`): it owns
//! no socket, thread or clock; a thin driver feeds it datagrams and the time.
#![forbid(unsafe_code)]

pub mod srtp;

// HMAC-SHA1 for SRTP's packet authentication and TURN REST passwords.
mod hmac_sha1;

// ZRTP key agreement (RFC 6189).
pub mod zrtp;

// Media transport: first-byte demux, RTP/RTCP, ICE + TURN client, tokio driver.
pub mod demux;
pub mod driver;
pub mod ice;
pub mod rtcp;
pub mod rtp;

// One call end to end (signalling, ZRTP, SRTP, audio) and its simulator.
pub mod call;
pub mod sim;
