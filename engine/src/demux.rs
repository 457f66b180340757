//! First-byte demultiplexing of every datagram on the media 5-tuple.
//!
//! RFC 7983 §7 (updating RFC 5764 §5.1.2) assigns first-byte ranges:
//! 0-3 STUN, 16-19 ZRTP, 20-63 DTLS, 64-79 TURN ChannelData, 128-191 RTP/RTCP.
//! A ZRTP packet (RFC 6189 §5) starts with 0x10, inside 16-19. RTP and RTCP
//! sharing one port are told apart by the second byte (RFC 5761 §4): RTCP
//! packet types 192-223 fall where RTP's marker bit plus a payload type of
//! 64-95 would be, which RTP/AVP must not use.

/// What a datagram is, judged by its first (and for RTP/RTCP, second) byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// STUN (connectivity checks, consent, TURN control).
    Stun,
    /// ZRTP key agreement.
    Zrtp,
    /// DTLS: not used by Sotto; counted and dropped.
    Dtls,
    /// TURN ChannelData (RFC 8656 §12.4).
    TurnChannel,
    /// RTP media.
    Rtp,
    /// RTCP (multiplexed on the RTP port, RFC 5761).
    Rtcp,
    /// Anything else; counted and dropped.
    Unknown,
}

/// Smallest datagrams that can be the kind in question: anything shorter is
/// `Unknown` (STUN header 20 B, RTP fixed header 12 B, RTCP header 8 B,
/// ChannelData header 4 B, ZRTP header 12 B).
const MIN_STUN: usize = 20;
const MIN_RTP: usize = 12;
const MIN_RTCP: usize = 8;
const MIN_CHANNEL: usize = 4;
const MIN_ZRTP: usize = 12;

/// Classifies one datagram (RFC 7983 + RFC 5761). Never panics.
pub fn classify(buf: &[u8]) -> PacketKind {
    let Some(&b0) = buf.first() else {
        return PacketKind::Unknown;
    };
    let kind = match b0 {
        0..=3 => PacketKind::Stun,
        16..=19 => PacketKind::Zrtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::TurnChannel,
        128..=191 => match buf.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    };
    let min = match kind {
        PacketKind::Stun => MIN_STUN,
        PacketKind::Zrtp => MIN_ZRTP,
        PacketKind::TurnChannel => MIN_CHANNEL,
        PacketKind::Rtp => MIN_RTP,
        PacketKind::Rtcp => MIN_RTCP,
        PacketKind::Dtls | PacketKind::Unknown => 0,
    };
    if buf.len() < min {
        PacketKind::Unknown
    } else {
        kind
    }
}

/// Per-kind counters of what arrived, including what was dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DemuxStats {
    /// STUN datagrams.
    pub stun: u64,
    /// ZRTP datagrams.
    pub zrtp: u64,
    /// TURN ChannelData datagrams.
    pub turn_channel: u64,
    /// RTP datagrams.
    pub rtp: u64,
    /// RTCP datagrams.
    pub rtcp: u64,
    /// DTLS datagrams, dropped (Sotto keys media with ZRTP).
    pub dtls_dropped: u64,
    /// Datagrams of no known kind, dropped.
    pub unknown_dropped: u64,
}

impl DemuxStats {
    /// Classifies `buf` and counts it; returns the kind.
    pub fn count(&mut self, buf: &[u8]) -> PacketKind {
        let kind = classify(buf);
        let slot = match kind {
            PacketKind::Stun => &mut self.stun,
            PacketKind::Zrtp => &mut self.zrtp,
            PacketKind::TurnChannel => &mut self.turn_channel,
            PacketKind::Rtp => &mut self.rtp,
            PacketKind::Rtcp => &mut self.rtcp,
            PacketKind::Dtls => &mut self.dtls_dropped,
            PacketKind::Unknown => &mut self.unknown_dropped,
        };
        *slot += 1;
        kind
    }
}

/// Fuzz entry point: classify, then run the matching parser. Must never panic.
pub fn fuzz_demux(data: &[u8]) {
    match classify(data) {
        PacketKind::Rtp => {
            let _ = crate::rtp::parse(data);
        }
        PacketKind::Rtcp => {
            let _ = crate::rtcp::parse(data);
        }
        PacketKind::Stun => {
            let _ = crate::ice::stun_peek(data);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_first(b0: u8, b1: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[0] = b0;
        v[1] = b1;
        v
    }

    #[test]
    fn rfc7983_ranges() {
        assert_eq!(classify(&with_first(0x00, 0x01, 20)), PacketKind::Stun);
        assert_eq!(classify(&with_first(0x03, 0x01, 20)), PacketKind::Stun);
        assert_eq!(classify(&with_first(0x04, 0x01, 20)), PacketKind::Unknown);
        // ZRTP packets begin 0x10 (RFC 6189 §5).
        assert_eq!(classify(&with_first(0x10, 0x00, 40)), PacketKind::Zrtp);
        assert_eq!(classify(&with_first(0x13, 0x00, 40)), PacketKind::Zrtp);
        assert_eq!(classify(&with_first(20, 0, 40)), PacketKind::Dtls);
        assert_eq!(classify(&with_first(63, 0, 40)), PacketKind::Dtls);
        assert_eq!(classify(&with_first(0x40, 0, 8)), PacketKind::TurnChannel);
        assert_eq!(classify(&with_first(79, 0, 8)), PacketKind::TurnChannel);
        assert_eq!(classify(&with_first(80, 0, 40)), PacketKind::Unknown);
        assert_eq!(classify(&with_first(0x80, 111, 40)), PacketKind::Rtp);
        assert_eq!(classify(&with_first(0x80, 111 | 0x80, 40)), PacketKind::Rtp);
        assert_eq!(classify(&with_first(0x80, 200, 28)), PacketKind::Rtcp);
        assert_eq!(classify(&with_first(0x81, 201, 32)), PacketKind::Rtcp);
        assert_eq!(classify(&with_first(0x81, 205, 16)), PacketKind::Rtcp);
        assert_eq!(classify(&with_first(0x81, 206, 12)), PacketKind::Rtcp);
        assert_eq!(classify(&with_first(0xC0, 0, 40)), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
    }

    #[test]
    fn short_datagrams_are_unknown() {
        assert_eq!(classify(&with_first(0x00, 0x01, 19)), PacketKind::Unknown);
        assert_eq!(classify(&with_first(0x80, 111, 11)), PacketKind::Unknown);
        assert_eq!(classify(&with_first(0x80, 200, 7)), PacketKind::Unknown);
    }

    #[test]
    fn stats_count_drops() {
        let mut s = DemuxStats::default();
        s.count(&with_first(22, 0, 40));
        s.count(&with_first(0xff, 0, 40));
        s.count(&with_first(0x80, 111, 40));
        assert_eq!(s.dtls_dropped, 1);
        assert_eq!(s.unknown_dropped, 1);
        assert_eq!(s.rtp, 1);
    }

    #[test]
    fn fuzz_entry_survives_random_input() {
        // Deterministic xorshift so the test is repeatable.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..600 {
            let mut buf = vec![0u8; len % 200];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // Force interesting first bytes.
            if let Some(b) = buf.first_mut() {
                *b = [0x00, 0x01, 0x10, 0x40, 0x80, 0x81, 0xA0][len % 7];
            }
            if buf.len() > 1 && len % 3 == 0 {
                buf[1] = 200 + (len % 8) as u8;
            }
            fuzz_demux(&buf);
        }
    }
}
