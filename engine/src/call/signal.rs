//! The messages one [`Call`](super::Call) sends to the other through
//! whatever signalling the application uses. The engine knows no server:
//! it emits [`Event::Signal`](super::Event::Signal) and takes
//! [`Input::Signal`](super::Input::Signal).

use crate::ice::SignalMessage;

/// Codec parameters carried in an offer or answer (Opus, RFC 7587).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecParams {
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP clock rate (48 kHz for Opus whatever the coded bandwidth).
    pub clock_rate: u32,
    /// Packet duration in ms.
    pub ptime_ms: u32,
    /// Whether the sender uses in-band FEC.
    pub fec: bool,
    /// Whether the sender uses DTX.
    pub dtx: bool,
}

impl Default for CodecParams {
    fn default() -> Self {
        Self {
            payload_type: crate::rtp::OPUS_PAYLOAD_TYPE,
            clock_rate: crate::rtp::OPUS_CLOCK_RATE,
            ptime_ms: 20,
            fec: true,
            dtx: true,
        }
    }
}

/// Video parameters carried in an offer or answer: VP8 (RFC 7741) at
/// 90 kHz. Present when the side sends and receives video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// RTP payload type.
    pub payload_type: u8,
    /// The side asks for lost packets and sends them again when asked
    /// (RFC 4585 generic NACK); used when both sides say so. Absent from
    /// the descriptions of peers that predate it.
    pub nack: bool,
}

impl Default for VideoParams {
    fn default() -> Self {
        Self {
            payload_type: crate::video::vp8::VP8_PAYLOAD_TYPE,
            nack: true,
        }
    }
}

/// What each side tells the other to set up media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// ICE username fragment.
    pub ice_ufrag: String,
    /// ICE password.
    pub ice_pwd: String,
    /// Candidates known when the description was made (more trickle later).
    pub candidates: Vec<String>,
    /// The sender's `a=zrtp-hash` (RFC 6189 §8.1): `"1.10 <hex>"`.
    pub zrtp_hash: String,
    /// The audio codec.
    pub codec: CodecParams,
    /// Video, if the sender sends and takes it.
    pub video: Option<VideoParams>,
}

/// One signalling message between the two calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    /// The caller's offer.
    Offer(SessionDescription),
    /// The callee's device is ringing.
    Ringing,
    /// The callee answered.
    Answer(SessionDescription),
    /// The callee declined.
    Decline,
    /// Either side hung up (or the call failed on its side).
    Hangup,
    /// A trickled candidate or an ICE restart's credentials.
    Ice(SignalMessage),
}

/// Bound on signalled candidates kept from one description or queued before answering.
pub(crate) const MAX_CANDIDATES: usize = 32;
