//! RTP (RFC 3550) for Opus audio (RFC 7587): packet building, parsing and
//! receiver statistics. Wire format comes from `rtc-rtp`.

mod sender;
mod stats;
mod stream;

pub use sender::RtpSender;
pub use stats::ReceiverStats;
pub use stream::{DEFAULT_SESSION_BANDWIDTH, MediaStream, RTCP_INTERVAL, Received, StreamError};

use rtc_rtp::header::Header;
use rtc_shared::marshal::{MarshalSize, Unmarshal};

/// Opus always runs an RTP clock of 48 kHz whatever the coded bandwidth (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// Opus takes a dynamic payload type (RFC 7587 §7); this is the one we offer.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// RTP ticks in one 20 ms Opus frame at 48 kHz.
pub const OPUS_20MS_TICKS: u32 = OPUS_CLOCK_RATE / 50;

/// Errors from RTP parsing and building.
#[derive(Debug, thiserror::Error)]
pub enum RtpError {
    /// The datagram is not a well-formed RTP packet.
    #[error("malformed RTP packet: {0}")]
    Malformed(String),
    /// The output buffer is too small for the packet.
    #[error("output buffer too small: need {need} bytes")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
    },
    /// Payload type outside 0-127.
    #[error("payload type {0} out of range")]
    BadPayloadType(u8),
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone)]
pub struct RtpPacket<'a> {
    /// The fixed header plus CSRCs and extensions.
    pub header: Header,
    /// The payload, with padding removed.
    pub payload: &'a [u8],
}

/// Parses one RTP datagram without copying the payload. Never panics.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let mut rd = buf;
    let header = Header::unmarshal(&mut rd).map_err(|e| RtpError::Malformed(e.to_string()))?;
    if header.version != 2 {
        return Err(RtpError::Malformed(format!("version {}", header.version)));
    }
    let hlen = header.marshal_size();
    let mut payload = buf
        .get(hlen..)
        .ok_or_else(|| RtpError::Malformed("header longer than datagram".into()))?;
    if header.padding {
        // RFC 3550 §5.1: the last octet counts the padding, itself included.
        let pad = usize::from(
            *payload
                .last()
                .ok_or_else(|| RtpError::Malformed("padding without payload".into()))?,
        );
        if pad == 0 || pad > payload.len() {
            return Err(RtpError::Malformed("bad padding length".into()));
        }
        payload = &payload[..payload.len() - pad];
    }
    Ok(RtpPacket { header, payload })
}

/// Fuzz entry point for the RTP parser and the receiver statistics.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(p) = parse(data) {
        let mut stats = ReceiverStats::new(OPUS_CLOCK_RATE);
        let now = std::time::Instant::now();
        stats.on_packet(now, &p.header);
        let _ = stats.report_block(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_garbage_and_strips_padding() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x80, 111, 0, 1]).is_err());
        // Version 1.
        assert!(parse(&[0x40, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        // P bit set, 2 bytes payload + 2 bytes padding (0x00, 0x02).
        let pkt = [
            0xA0, 111, 0, 1, 0, 0, 0, 5, 0, 0, 0, 9, 0xAB, 0xCD, 0x00, 0x02,
        ];
        let p = parse(&pkt).unwrap();
        assert_eq!(p.payload, &[0xAB, 0xCD]);
        assert_eq!(p.header.ssrc, 9);
        // Padding longer than the payload.
        let bad = [0xA0, 111, 0, 1, 0, 0, 0, 5, 0, 0, 0, 9, 0xAB, 0x09];
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn fuzz_entry_survives_random_input() {
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        for len in 0..1000 {
            let mut buf = vec![0u8; len % 90];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if let Some(b) = buf.first_mut() {
                *b = 0x80 | (*b & 0x3F);
            }
            fuzz_parse(&buf);
        }
    }
}
