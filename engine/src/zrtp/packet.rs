//! ZRTP packet framing (RFC 6189 §5): the 12-byte header, the message and
//! the CRC-32C trailer.
//!
//! ```text
//! 0x10 0x00 | sequence number (16) | magic cookie 'ZRTP' | source id (SSRC)
//! message (preamble 0x505a, length in words, 8-byte type, body)
//! CRC-32C (RFC 3309) over everything before it
//! ```
//!
//! The CRC byte order follows bzrtp (and the RFC's reference code, which
//! stores the reflected CRC register as is): the standard CRC-32C value is
//! written least-significant byte first. The interop tests check this
//! against packets bzrtp produces.

use super::error::PacketError;

/// First byte of every (unfragmented) ZRTP packet.
pub const HEADER_BYTE: u8 = 0x10;
/// The magic cookie `'ZRTP'`.
pub const MAGIC_COOKIE: u32 = 0x5a52_5450;
/// Header bytes before the message.
pub const HEADER_LEN: usize = 12;
/// CRC bytes after the message.
pub const CRC_LEN: usize = 4;
/// Largest packet we accept (bzrtp's limit too); keeps memory bounded.
pub const MAX_PACKET_LEN: usize = 3072;
/// Smallest possible packet: header, a 12-byte message, CRC.
pub const MIN_PACKET_LEN: usize = HEADER_LEN + 12 + CRC_LEN;

/// A framed packet with its message still raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Sequence number (must increase on every packet a sender emits).
    pub seq: u16,
    /// Source identifier (the sender's SSRC).
    pub ssrc: u32,
    /// The ZRTP message, from its preamble to its last byte.
    pub message: &'a [u8],
}

/// Whether a datagram looks like ZRTP (RFC 7983 first-byte rule plus the
/// cookie), so a demultiplexer can route it here.
pub fn is_zrtp(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram[0] == HEADER_BYTE
        && datagram[4..8] == MAGIC_COOKIE.to_be_bytes()
}

fn crc(bytes: &[u8]) -> [u8; 4] {
    crc32c::crc32c(bytes).to_le_bytes()
}

/// Checks the frame and the CRC; never panics.
pub fn parse(datagram: &[u8]) -> Result<RawPacket<'_>, PacketError> {
    if datagram.len() < MIN_PACKET_LEN || datagram.len() > MAX_PACKET_LEN {
        return Err(PacketError::Length(datagram.len()));
    }
    if datagram[0] != HEADER_BYTE || datagram[1] != 0 {
        return Err(PacketError::Header);
    }
    if datagram[4..8] != MAGIC_COOKIE.to_be_bytes() {
        return Err(PacketError::Cookie);
    }
    let (body, trailer) = datagram.split_at(datagram.len() - CRC_LEN);
    if crc(body) != trailer {
        return Err(PacketError::Crc);
    }
    Ok(RawPacket {
        seq: u16::from_be_bytes([datagram[2], datagram[3]]),
        ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
        message: &body[HEADER_LEN..],
    })
}

/// Frames an encoded message.
pub fn build(seq: u16, ssrc: u32, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + message.len() + CRC_LEN);
    out.extend_from_slice(&[HEADER_BYTE, 0]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(message);
    let c = crc(&out);
    out.extend_from_slice(&c);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // RFC 3720 B.4 / the CRC catalogue check value for CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let msg = [
            0x50, 0x5a, 0, 3, b'H', b'e', b'l', b'l', b'o', b'A', b'C', b'K',
        ];
        let pkt = build(7, 0xdead_beef, &msg);
        let raw = parse(&pkt).unwrap();
        assert_eq!((raw.seq, raw.ssrc, raw.message), (7, 0xdead_beef, &msg[..]));
        assert!(is_zrtp(&pkt));
        for i in 0..pkt.len() {
            let mut bad = pkt.clone();
            bad[i] ^= 0x01;
            assert!(parse(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(parse(&pkt[..10]).is_err());
    }
}
