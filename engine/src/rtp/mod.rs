//! RTP (RFC 3550) for Opus audio (RFC 7587) and VP8 video (RFC 7741):
//! packet building, parsing, receiver statistics and the two ends of
//! generic NACK (RFC 4585). Wire format comes from `rtc-rtp`.

pub mod nack;
pub mod retransmit;
mod sender;
mod stats;
mod stream;

pub use sender::RtpSender;
pub use stats::{ReceiverStats, SenderClock};
pub use stream::{DEFAULT_SESSION_BANDWIDTH, MediaStream, RTCP_INTERVAL, Received, StreamError};

use rtc_rtp::header::Header;
use rtc_shared::marshal::Unmarshal;

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

/// The extended (64-bit) sequence number nearest `highest` whose low 16
/// bits are `seq`, either side of it: how a receiver places a packet that
/// may be late, reordered or across a wrap. Keep `highest` well above
/// 2^16 so that it cannot underflow.
pub(crate) fn extend_seq(highest: u64, seq: u16) -> u64 {
    highest.wrapping_add_signed(i64::from(seq.wrapping_sub(highest as u16) as i16))
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
    // The payload starts where the header's own length fields put it (RFC
    // 3550 §5.1, §5.3.1), not at rtc-rtp's re-marshalled size, which counts
    // only the RFC 8285 elements it kept: an element with ID 15 ends element
    // parsing but not the block, and would have left extension bytes in the
    // payload.
    let hlen = wire_header_len(buf)
        .ok_or_else(|| RtpError::Malformed("header longer than datagram".into()))?;
    if buf.len() - rd.len() > hlen {
        return Err(RtpError::Malformed(
            "header extension element runs past its block".into(),
        ));
    }
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

/// Length of the RTP header of `buf` as its CC and extension length fields
/// give it; `None` if the datagram is shorter.
fn wire_header_len(buf: &[u8]) -> Option<usize> {
    let b0 = *buf.first()?;
    let mut len = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let words = buf.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= buf.len()).then_some(len)
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

    /// The payload starts where RFC 3550 §5.3.1's extension length says,
    /// whatever the RFC 8285 elements inside claim: an element with the
    /// reserved ID 15 ends element parsing but not the block, and an
    /// element running past the block does not eat into the payload.
    #[test]
    fn payload_starts_after_the_declared_extension_block() {
        let fixed = [0x90, 111, 0, 1, 0, 0, 0, 5, 0, 0, 0, 9];
        let packet = |block: [u8; 8]| {
            let mut pkt = fixed.to_vec();
            pkt.extend_from_slice(&block);
            pkt.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            pkt
        };
        // One-byte profile: ID 15 stops element parsing (RFC 8285 §4.2).
        let pkt = packet([0xBE, 0xDE, 0, 1, 0xF0, 0xAA, 0xBB, 0xCC]);
        let p = parse(&pkt).unwrap();
        assert_eq!(p.payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(p.header.extensions.is_empty());
        for block in [
            // One-byte element of 4 data bytes in a 4-byte block.
            [0xBE, 0xDE, 0, 1, 0x13, 0xAA, 0xBB, 0xCC],
            // Two-byte element of 3 data bytes in a 4-byte block.
            [0x10, 0x00, 0, 1, 0x01, 3, 0xBB, 0xCC],
        ] {
            assert!(
                matches!(parse(&packet(block)), Err(RtpError::Malformed(_))),
                "{block:x?}"
            );
        }
        // A well-formed one-byte block still parses, elements and all.
        let mut pkt = fixed.to_vec();
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x10, 0xAA, 0x22, 1, 2, 3, 0, 0]);
        pkt.extend_from_slice(&[9, 9]);
        let p = parse(&pkt).unwrap();
        assert_eq!(p.payload, &[9, 9]);
        assert_eq!(p.header.extensions.len(), 2);
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
