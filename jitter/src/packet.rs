//! The RTP packet as the jitter buffer sees it, and what it reports back.

/// One received RTP packet (already authenticated and decrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp (48 kHz clock for Opus).
    pub timestamp: u32,
    /// Synchronisation source; a change starts a new stream.
    pub ssrc: u32,
    /// RTP marker bit (first packet of a talkspurt).
    pub marker: bool,
    /// Codec payload.
    pub payload: Vec<u8>,
}

/// Why a packet was dropped instead of played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// It came after its audio had already been played or concealed.
    Late,
    /// A packet with the same timestamp was already buffered or played.
    Duplicate,
    /// The buffer held `max_packets` and this was the oldest one.
    Overflow,
    /// Dropped to cut the delay after the buffer filled far above target
    /// (e.g. a burst after an outage).
    Flushed,
    /// The decoder could not read it.
    Undecodable,
}

/// How one packet's audio reached the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Decoded from the packet itself.
    Decoded,
    /// Rebuilt from the in-band FEC (LBRR) copy in the next packet.
    Fec,
}

/// Something the buffer reports through `poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The first sample of a packet's audio was emitted by a `pull`.
    Played {
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        timestamp: u32,
        /// Where it came from.
        recovery: Recovery,
        /// Index of its first sample in the 10 ms block just pulled.
        offset: usize,
    },
    /// A packet was dropped.
    Discarded {
        /// Its sequence number.
        seq: u16,
        /// Its RTP timestamp.
        timestamp: u32,
        /// Why.
        reason: DiscardReason,
    },
    /// A new SSRC or a timestamp jump restarted the stream.
    Reset {
        /// The SSRC now played.
        ssrc: u32,
    },
}

/// The playout operation behind one 10 ms block (what NetEq calls the
/// decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Nothing to play yet (before the first talkspurt starts): silence.
    Idle,
    /// Decoded audio played as is.
    Normal,
    /// Decoded audio with one pitch period removed.
    Accelerate,
    /// Decoded audio with one pitch period added.
    PreemptiveExpand,
    /// Concealment (codec PLC) for missing audio.
    Expand,
    /// The first decoded audio after concealment, cross-faded in.
    Merge,
    /// A lost packet rebuilt from the next packet's FEC data.
    FecRecovery,
    /// Comfort noise during discontinuous transmission.
    ComfortNoise,
}
