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
        if let Some(rtt) = self.remote_inbound.round_trip_time {
            v.push(("remote-inbound-rtp.roundTripTime".into(), rtt.as_secs_f64()));
        }
        v
    }
}
