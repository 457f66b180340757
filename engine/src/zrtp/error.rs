//! Error types of the ZRTP module.

use super::algo::NegotiationError;

/// A datagram that is not a well-framed ZRTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than a minimal packet or longer than we accept.
    #[error("bad ZRTP packet length {0}")]
    Length(usize),
    /// First bytes are not `0x10 0x00`.
    #[error("bad ZRTP packet header")]
    Header,
    /// Magic cookie is not `'ZRTP'`.
    #[error("bad ZRTP magic cookie")]
    Cookie,
    /// CRC-32C mismatch.
    #[error("ZRTP CRC mismatch")]
    Crc,
}

/// A message that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Ran out of bytes.
    #[error("truncated ZRTP message")]
    Truncated,
    /// Missing 0x505a preamble.
    #[error("bad ZRTP message preamble")]
    Preamble,
    /// Length field disagrees with the bytes or the type.
    #[error("bad ZRTP message length")]
    Length,
    /// Unknown message type block.
    #[error("unknown ZRTP message type")]
    UnknownType,
    /// More than 7 algorithms of one kind in a Hello.
    #[error("too many algorithms in Hello")]
    AlgorithmCount,
}

/// Why `handle_input` refused a datagram. The endpoint counts these as
/// drops; the ones that end the session also raise an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad framing or CRC.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// Bad message syntax.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Sequence number not newer than the last accepted one (replay or
    /// reordering).
    #[error("stale sequence number {0}")]
    Replay(u16),
    /// The message is not expected in the current state.
    #[error("unexpected {0} in state {1}")]
    Unexpected(&'static str, &'static str),
    /// A MAC or hash-chain check failed: the packet is dropped.
    #[error("authentication failed: {0}")]
    Auth(&'static str),
    /// Violation that ends the session (an Error message was sent).
    #[error("protocol failure: {0}")]
    Protocol(ProtocolError),
    /// The endpoint already failed or finished.
    #[error("ZRTP endpoint is closed")]
    Closed,
}

shown_from!(Error, Error::Protocol, ProtocolError);

/// A fatal violation with its RFC 6189 §5.9 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// 0x10 malformed packet.
    #[error("malformed packet")]
    Malformed,
    /// 0x30 unsupported ZRTP version.
    #[error("unsupported ZRTP version")]
    Version,
    /// 0x40 Hello components mismatch.
    #[error("Hello components mismatch")]
    HelloMismatch,
    /// A Commit or DHPart whose MAC fails under the key its sender's hash
    /// chain revealed later (§9): it was altered in transit. Sent as 0x10
    /// (malformed packet), §5.9 having no closer code; a Hello altered in
    /// this way is reported as [`ProtocolError::HelloMismatch`].
    #[error("message altered in transit (MAC under the hash chain fails)")]
    MessageMac,
    /// 0x51–0x55 negotiation failure.
    #[error("negotiation: {0}")]
    Negotiation(NegotiationError),
    /// 0x61 bad DH public value.
    #[error("bad DH public value")]
    BadPublicValue,
    /// 0x62 hvi mismatch.
    #[error("hvi does not match DHPart2")]
    HviMismatch,
    /// 0x63 relayed SAS from an untrusted MiTM.
    #[error("SAS relay from untrusted MiTM")]
    UntrustedRelay,
    /// 0x70 bad Confirm MAC.
    #[error("bad Confirm MAC")]
    ConfirmMac,
    /// 0x80 nonce reuse.
    #[error("nonce reuse")]
    NonceReuse,
    /// 0x90 equal ZIDs.
    #[error("peer uses our ZID")]
    EqualZid,
    /// 0xB0 protocol timeout.
    #[error("protocol timeout")]
    Timeout,
    /// 0x100 GoClear not allowed.
    #[error("GoClear not allowed")]
    GoClear,
}

impl ProtocolError {
    /// The §5.9 error code.
    pub fn code(self) -> u32 {
        match self {
            ProtocolError::Malformed => 0x10,
            ProtocolError::Version => 0x30,
            ProtocolError::HelloMismatch => 0x40,
            ProtocolError::MessageMac => 0x10,
            ProtocolError::Negotiation(n) => n.code(),
            ProtocolError::BadPublicValue => 0x61,
            ProtocolError::HviMismatch => 0x62,
            ProtocolError::UntrustedRelay => 0x63,
            ProtocolError::ConfirmMac => 0x70,
            ProtocolError::NonceReuse => 0x80,
            ProtocolError::EqualZid => 0x90,
            ProtocolError::Timeout => 0xB0,
            ProtocolError::GoClear => 0x100,
        }
    }
}
