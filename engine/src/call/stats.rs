//! Call statistics under W3C WebRTC names (webrtc-stats: `inbound-rtp`,
//! `outbound-rtp`, `remote-inbound-rtp`, `candidate-pair`), emitted once a
//! second.

use sotto_jitter::JitterStats;
use std::time::Duration;

/// `RTCInboundRtpStreamStats` for the received audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundRtp {
    /// `packetsReceived`: RTP packets that passed SRTP, over the whole call.
    pub packets_received: u64,
    /// `packetsLost`: expected minus received (RFC 3550 A.3), may be negative.
    pub packets_lost: i64,
    /// `bytesReceived`: payload bytes.
    pub bytes_received: u64,
    /// `jitter` in seconds (RFC 3550 interarrival jitter).
    pub jitter: f64,
    /// Datagrams SRTP/SRTCP refused (authentication, replay, malformed).
    pub srtp_rejected: u64,
    /// Jitter buffer lifetime statistics (`jitterBufferDelay`,
    /// `concealedSamples`, ...; see [`JitterStats::w3c`]).
    pub jitter_buffer: JitterStats,
}

/// `RTCOutboundRtpStreamStats` for the sent audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundRtp {
    /// `packetsSent`.
    pub packets_sent: u64,
    /// `bytesSent`: payload bytes.
    pub bytes_sent: u64,
    /// Frames the encoder produced, including DTX frames not sent.
    pub frames_encoded: u64,
    /// The packet-loss hint the encoder uses (%), from the peer's RTCP.
    pub loss_hint_pct: u8,
    /// `targetBitrate`: the encoder's bitrate, bit/s.
    pub target_bitrate: u32,
}

/// `RTCRemoteInboundRtpStreamStats`: what the peer's RTCP reports say of
/// the audio we send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteInboundRtp {
    /// `roundTripTime`, from the LSR/DLSR of the peer's reception reports
    /// (RFC 3550 §6.4.1), if measured.
    pub round_trip_time: Option<Duration>,
}

/// `RTCIceCandidatePairStats` for the selected pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidatePair {
    /// Whether a pair is selected.
    pub selected: bool,
    /// Whether our side of it goes through a TURN relay.
    pub relayed: bool,
}

/// `RTCOutboundRtpStreamStats` for the sent video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundVideo {
    /// `packetsSent`.
    pub packets_sent: u64,
    /// `bytesSent`: payload bytes.
    pub bytes_sent: u64,
    /// `framesEncoded`.
    pub frames_encoded: u64,
    /// `keyFramesEncoded`.
    pub key_frames_encoded: u64,
    /// Frames given to the call that were not sent: faster than
    /// `VideoConfig::fps`, skipped by the encoder's rate control, or not
    /// encodable.
    pub frames_skipped: u64,
    /// `pliCount`: key frame requests received from the peer.
    pub pli_count: u64,
    /// `nackCount`: NACK packets received from the peer.
    pub nack_count: u64,
    /// `retransmittedPacketsSent`: packets sent again on a NACK (also in
    /// `packets_sent`).
    pub retransmitted_packets_sent: u64,
    /// `retransmittedBytesSent`: their payload bytes (also in `bytes_sent`).
    pub retransmitted_bytes_sent: u64,
    /// `frameWidth` of the last encoded frame.
    pub frame_width: u32,
    /// `frameHeight` of the last encoded frame.
    pub frame_height: u32,
    /// `targetBitrate`, bit/s: where loss reports have put the encoder.
    pub target_bitrate: u32,
}

/// `RTCInboundRtpStreamStats` for the received video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundVideo {
    /// `packetsReceived`: video packets that passed SRTP.
    pub packets_received: u64,
    /// `packetsLost` (RFC 3550 A.3 over the video SSRC): packets lost and
    /// not repaired by a retransmission.
    pub packets_lost: i64,
    /// `bytesReceived`: payload bytes.
    pub bytes_received: u64,
    /// `framesReceived`: whole frames put together from packets.
    pub frames_received: u64,
    /// `framesDecoded`.
    pub frames_decoded: u64,
    /// `keyFramesDecoded`.
    pub key_frames_decoded: u64,
    /// `framesDropped`: frames lost to missing packets, to a decoder
    /// error, or left unread when the application fell behind.
    pub frames_dropped: u64,
    /// `pliCount`: key frame requests sent to the peer.
    pub pli_count: u64,
    /// `nackCount`: NACK packets sent to the peer.
    pub nack_count: u64,
    /// Packets the network lost that came again when asked for in a NACK
    /// (counted in `packets_received`, not in `packets_lost`; the loss the
    /// RTCP reports tell the sender still counts them). Not a W3C member:
    /// `retransmittedPacketsReceived` exists only with RTX.
    pub packets_repaired: u64,
    /// `frameWidth` of the last decoded frame.
    pub frame_width: u32,
    /// `frameHeight` of the last decoded frame.
    pub frame_height: u32,
    /// Seconds, summed over the frames decoded, that whole frames waited
    /// for the audio captured with them to play (lip sync). Not a W3C
    /// member.
    pub total_sync_delay: f64,
    /// How much later than the audio captured at the same instant the
    /// last decoded frame was shown, in ms: about 0 when in sync, above 0
    /// when the frame came too late to wait for, below when it could not
    /// wait longer. `None` before the peer's reports on both streams (RFC
    /// 3550 SRs) tell. Not a W3C member.
    pub av_offset_ms: Option<f64>,
}

/// Both directions of a call's video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoStats {
    /// Received video.
    pub inbound: InboundVideo,
    /// Sent video.
    pub outbound: OutboundVideo,
}

/// One snapshot of a call's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Received audio.
    pub inbound: InboundRtp,
    /// Sent audio.
    pub outbound: OutboundRtp,
    /// The peer's reports on the sent audio.
    pub remote_inbound: RemoteInboundRtp,
    /// The path.
    pub candidate_pair: CandidatePair,
    /// Video, when both sides set it up.
    pub video: Option<VideoStats>,
}

impl CallStats {
    /// Flat `(type.name, value)` pairs with W3C names, for logs and UIs.
    pub fn w3c(&self) -> Vec<(String, f64)> {
        let i = &self.inbound;
        let o = &self.outbound;
        let mut v = vec![
            (
                "inbound-rtp.packetsReceived".into(),
                i.packets_received as f64,
            ),
            ("inbound-rtp.packetsLost".into(), i.packets_lost as f64),
            ("inbound-rtp.bytesReceived".into(), i.bytes_received as f64),
            ("inbound-rtp.jitter".into(), i.jitter),
            ("outbound-rtp.packetsSent".into(), o.packets_sent as f64),
            ("outbound-rtp.bytesSent".into(), o.bytes_sent as f64),
            (
                "outbound-rtp.targetBitrate".into(),
                f64::from(o.target_bitrate),
            ),
        ];
        for (k, x) in i.jitter_buffer.w3c() {
            v.push((format!("inbound-rtp.{k}"), x));
        }
        if let Some(video) = &self.video {
            let (i, o) = (&video.inbound, &video.outbound);
            for (k, x) in [
                (
                    "inbound-rtp.video.packetsReceived",
                    i.packets_received as f64,
                ),
                ("inbound-rtp.video.packetsLost", i.packets_lost as f64),
                ("inbound-rtp.video.bytesReceived", i.bytes_received as f64),
                ("inbound-rtp.video.framesReceived", i.frames_received as f64),
                ("inbound-rtp.video.framesDecoded", i.frames_decoded as f64),
                (
                    "inbound-rtp.video.keyFramesDecoded",
                    i.key_frames_decoded as f64,
                ),
                ("inbound-rtp.video.framesDropped", i.frames_dropped as f64),
                ("inbound-rtp.video.pliCount", i.pli_count as f64),
                ("inbound-rtp.video.nackCount", i.nack_count as f64),
                ("inbound-rtp.video.frameWidth", f64::from(i.frame_width)),
                ("inbound-rtp.video.frameHeight", f64::from(i.frame_height)),
                ("outbound-rtp.video.packetsSent", o.packets_sent as f64),
                ("outbound-rtp.video.bytesSent", o.bytes_sent as f64),
                ("outbound-rtp.video.framesEncoded", o.frames_encoded as f64),
                (
                    "outbound-rtp.video.keyFramesEncoded",
                    o.key_frames_encoded as f64,
                ),
                ("outbound-rtp.video.pliCount", o.pli_count as f64),
                ("outbound-rtp.video.nackCount", o.nack_count as f64),
                (
                    "outbound-rtp.video.retransmittedPacketsSent",
                    o.retransmitted_packets_sent as f64,
                ),
                (
                    "outbound-rtp.video.retransmittedBytesSent",
                    o.retransmitted_bytes_sent as f64,
                ),
                ("outbound-rtp.video.frameWidth", f64::from(o.frame_width)),
                ("outbound-rtp.video.frameHeight", f64::from(o.frame_height)),
                (
                    "outbound-rtp.video.targetBitrate",
                    f64::from(o.target_bitrate),
                ),
            ] {
                v.push((k.into(), x));
            }
        }
        if let Some(rtt) = self.remote_inbound.round_trip_time {
            v.push(("remote-inbound-rtp.roundTripTime".into(), rtt.as_secs_f64()));
        }
        v
    }
}
