//! Typed errors of the SRTP context.

/// Which of the two protocols a packet or a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// SRTP (media).
    Rtp,
    /// SRTCP (control).
    Rtcp,
}

/// Why a packet could not be protected or unprotected, or a context not
/// built. Every rejected packet is also counted in [`super::Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The master key does not have the profile's length.
    #[error("master key is {got} bytes, the profile needs {expected}")]
    KeyLength {
        /// Bytes the profile needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The master salt does not have the profile's length.
    #[error("master salt is {got} bytes, the profile needs {expected}")]
    SaltLength {
        /// Bytes the profile needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The configuration is out of range (replay window, stream limit).
    #[error("invalid SRTP configuration: {0}")]
    Config(&'static str),
    /// Too short for its headers and tag, or a header length points past
    /// the end of the packet.
    #[error("packet truncated or malformed")]
    Malformed,
    /// Not RTP/RTCP version 2.
    #[error("not RTP version 2")]
    BadVersion,
    /// Longer than the configured maximum packet length.
    #[error("packet of {0} bytes exceeds the configured maximum")]
    Oversized(usize),
    /// The caller's buffer has no room for the tag (in-place protect).
    #[error("buffer has no room for the {needed}-byte SRTP trailer")]
    BufferTooSmall {
        /// Extra bytes needed after the packet.
        needed: usize,
    },
    /// The authentication tag did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// The packet index was already received (or, when protecting, already
    /// used: keystream must never be reused).
    #[error("replayed packet (index already seen)")]
    Replayed,
    /// The packet index is older than the replay window.
    #[error("packet older than the replay window")]
    TooOld,
    /// A new SSRC arrived but the context already tracks the maximum number
    /// of streams.
    #[error("stream limit reached; packet of a new SSRC dropped")]
    TooManyStreams,
    /// The master key has protected as many packets as it may (2^48 SRTP,
    /// 2^31 SRTCP) or an index would wrap: re-key before sending more.
    #[error("{0:?} key lifetime exhausted: rekey needed")]
    RekeyNeeded(PacketKind),
}
