//! The few RTP/RTCP header fields SRTP needs, read without trusting any
//! length field.

use super::Error;

/// Fixed RTP header length (RFC 3550 §5.1).
const RTP_FIXED: usize = 12;

/// SSRC, sequence number and header length of an RTP packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpHeader {
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    /// Bytes up to the payload: fixed header, CSRCs and header extension.
    pub(crate) len: usize,
}

impl RtpHeader {
    /// Parses the header of `packet`, whose first `body` bytes are the RTP
    /// packet (the rest is the SRTP trailer).
    pub(crate) fn parse(packet: &[u8], body: usize) -> Result<Self, Error> {
        let p = &packet[..body];
        if p.len() < RTP_FIXED {
            return Err(Error::Malformed);
        }
        if p[0] >> 6 != 2 {
            return Err(Error::BadVersion);
        }
        let mut len = RTP_FIXED + 4 * usize::from(p[0] & 0x0f);
        if p[0] & 0x10 != 0 {
            let ext = p.get(len..len + 4).ok_or(Error::Malformed)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        if len > p.len() {
            return Err(Error::Malformed);
        }
        Ok(RtpHeader {
            seq: u16::from_be_bytes([p[2], p[3]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            len,
        })
    }
}

/// The sender SSRC of an RTCP packet with at least 8 bytes (RFC 3550 §6.4).
pub(crate) fn rtcp_ssrc(packet: &[u8]) -> Result<u32, Error> {
    if packet.len() < 8 {
        return Err(Error::Malformed);
    }
    if packet[0] >> 6 != 2 {
        return Err(Error::BadVersion);
    }
    Ok(u32::from_be_bytes([
        packet[4], packet[5], packet[6], packet[7],
    ]))
}
