//! Call statistics under W3C WebRTC names (webrtc-stats: `inbound-rtp`,
//! `outbound-rtp`, `candidate-pair`), emitted once a second.

use sotto_jitter::JitterStats;
use std::time::Duration;

/// `RTCInboundRtpStreamStats` for the received audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundRtp {
    /// `packetsReceived`: packets that passed SRTP.
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

/// `RTCIceCandidatePairStats` for the selected pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidatePair {
    /// Whether a pair is selected.
    pub selected: bool,
    /// Whether our side of it goes through a TURN relay.
    pub relayed: bool,
    /// `currentRoundTripTime` (from RTCP SR/RR), if measured.
    pub current_round_trip_time: Option<Duration>,
}

/// One snapshot of a call's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Received audio.
    pub inbound: InboundRtp,
    /// Sent audio.
    pub outbound: OutboundRtp,
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
        if let Some(rtt) = self.candidate_pair.current_round_trip_time {
            v.push((
                "candidate-pair.currentRoundTripTime".into(),
                rtt.as_secs_f64(),
            ));
        }
        v
    }
}
