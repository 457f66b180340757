//! RTCP (RFC 3550 §6) multiplexed on the RTP port (RFC 5761): SR/RR with
//! loss, jitter and RTT, and the RFC 4585 feedback NACK and PLI. Wire format
//! comes from `rtc-rtcp`.

mod report;

pub use report::{
    IntervalRng, Membership, ReportSchedule, Reporter, UDP_IP_OVERHEAD, ntp_from, reduced_minimum,
};

use bytes::Bytes;
use rtc_rtcp::packet::Packet;
use rtc_rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};

/// Most NACKed sequence numbers reported from one datagram; bounds memory
/// on hostile input (a full 64 KiB datagram of NACK pairs could name ~280k).
pub const MAX_NACK_SEQS: usize = 4096;

/// Errors from RTCP parsing and building.
#[derive(Debug, thiserror::Error)]
pub enum RtcpError {
    /// The datagram is not a well-formed RTCP compound packet.
    #[error("malformed RTCP: {0}")]
    Malformed(String),
    /// Building a packet failed.
    #[error("cannot encode RTCP: {0}")]
    Encode(String),
}

/// One RTCP item of interest to a call, flattened from a compound packet.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcpItem {
    /// Sender info from an SR.
    SenderInfo {
        /// Sender SSRC.
        ssrc: u32,
        /// 64-bit NTP timestamp.
        ntp_time: u64,
        /// Matching RTP timestamp.
        rtp_time: u32,
        /// Packets sent.
        packet_count: u32,
        /// Payload octets sent.
        octet_count: u32,
    },
    /// A reception report block (from an SR or RR) sent by `reporter`.
    Report {
        /// SSRC of the report's sender.
        reporter: u32,
        /// The block.
        block: ReceptionReport,
    },
    /// Generic NACK (RFC 4585 §6.2.1): `media_ssrc` lost these sequence numbers.
    Nack {
        /// Stream the loss concerns.
        media_ssrc: u32,
        /// Lost sequence numbers (at most [`MAX_NACK_SEQS`]).
        lost: Vec<u16>,
    },
    /// Picture Loss Indication (RFC 4585 §6.3.1).
    Pli {
        /// Stream that needs a key frame.
        media_ssrc: u32,
    },
    /// Any other packet type (SDES, BYE, XR, ...), counted by type.
    Other(u8),
}

/// Parses one (compound) RTCP datagram. Never panics.
pub fn parse(buf: &[u8]) -> Result<Vec<RtcpItem>, RtcpError> {
    let unpadded = strip_padding(buf)?;
    let mut rd: &[u8] = &unpadded;
    let packets =
        rtc_rtcp::packet::unmarshal(&mut rd).map_err(|e| RtcpError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(packets.len());
    let mut nack_budget = MAX_NACK_SEQS;
    for p in &packets {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            out.push(RtcpItem::SenderInfo {
                ssrc: sr.ssrc,
                ntp_time: sr.ntp_time,
                rtp_time: sr.rtp_time,
                packet_count: sr.packet_count,
                octet_count: sr.octet_count,
            });
            out.extend(sr.reports.iter().map(|b| RtcpItem::Report {
                reporter: sr.ssrc,
                block: b.clone(),
            }));
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            out.extend(rr.reports.iter().map(|b| RtcpItem::Report {
                reporter: rr.ssrc,
                block: b.clone(),
            }));
        } else if let Some(n) = any.downcast_ref::<TransportLayerNack>() {
            let mut lost = Vec::new();
            for pair in &n.nacks {
                for seq in pair.packet_list() {
                    if nack_budget == 0 {
                        break;
                    }
                    nack_budget -= 1;
                    lost.push(seq);
                }
            }
            out.push(RtcpItem::Nack {
                media_ssrc: n.media_ssrc,
                lost,
            });
        } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            out.push(RtcpItem::Pli {
                media_ssrc: pli.media_ssrc,
            });
        } else {
            out.push(RtcpItem::Other(p.header().packet_type as u8));
        }
    }
    Ok(out)
}

/// Checks the padding of a compound packet (RFC 3550 §6.4.1, A.2): only
/// the last packet may have the P bit, and its last octet counts the
/// padding, itself included, in whole 32-bit words within that packet.
/// Returns the compound without the padding (rtc-rtcp does not remove it,
/// and an SDES chunk parser then reads it as a chunk and fails).
fn strip_padding(buf: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, RtcpError> {
    let malformed = |why: &str| RtcpError::Malformed(why.into());
    let mut at = 0;
    while at < buf.len() {
        let header = buf
            .get(at..at + 4)
            .ok_or_else(|| malformed("truncated header"))?;
        let len = 4 + 4 * usize::from(u16::from_be_bytes([header[2], header[3]]));
        let end = at + len;
        if end > buf.len() {
            return Err(malformed("length beyond the datagram"));
        }
        if header[0] & 0x20 != 0 {
            if end != buf.len() {
                return Err(malformed("padding before the last packet"));
            }
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || !pad.is_multiple_of(4) || pad > len - 4 {
                return Err(malformed("bad padding length"));
            }
            let mut out = buf[..end - pad].to_vec();
            out[at] &= !0x20;
            // pad <= 4 * words, checked above.
            let words = u16::from_be_bytes([header[2], header[3]]) - (pad / 4) as u16;
            out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
            return Ok(std::borrow::Cow::Owned(out));
        }
        at = end;
    }
    Ok(std::borrow::Cow::Borrowed(buf))
}

fn encode(packets: &[Box<dyn Packet>]) -> Result<Vec<u8>, RtcpError> {
    rtc_rtcp::packet::marshal(packets)
        .map(|b| b.to_vec())
        .map_err(|e| RtcpError::Encode(e.to_string()))
}

/// Encodes a generic NACK for `lost` sequence numbers of `media_ssrc`.
pub fn build_nack(sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Result<Vec<u8>, RtcpError> {
    let nack = TransportLayerNack {
        sender_ssrc,
        media_ssrc,
        nacks: nack_pairs_from_sequence_numbers(lost),
    };
    encode(&[Box::new(nack)])
}

/// Encodes a Picture Loss Indication asking `media_ssrc` for a key frame.
pub fn build_pli(sender_ssrc: u32, media_ssrc: u32) -> Result<Vec<u8>, RtcpError> {
    encode(&[Box::new(PictureLossIndication {
        sender_ssrc,
        media_ssrc,
    })])
}

/// Encodes an RR carrying `reports` (when we send no media).
pub fn build_rr(ssrc: u32, reports: Vec<ReceptionReport>) -> Result<Vec<u8>, RtcpError> {
    encode(&[Box::new(ReceiverReport {
        ssrc,
        reports,
        profile_extensions: Bytes::new(),
    })])
}

/// Fuzz entry point for the RTCP parser.
pub fn fuzz_parse(data: &[u8]) {
    let _ = parse(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_round_trip() {
        let lost = [100u16, 101, 103, 116, 117, 500, 65535, 0];
        let wire = build_nack(1, 2, &lost).unwrap();
        assert_eq!(
            crate::demux::classify(&wire),
            crate::demux::PacketKind::Rtcp
        );
        let items = parse(&wire).unwrap();
        let RtcpItem::Nack {
            media_ssrc,
            lost: got,
        } = &items[0]
        else {
            panic!("{items:?}")
        };
        assert_eq!(*media_ssrc, 2);
        let mut got = got.clone();
        got.sort_unstable();
        let mut want = lost.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn pli_round_trip_matches_rfc4585_layout() {
        let wire = build_pli(0x0102_0304, 0x0506_0708).unwrap();
        // RFC 4585 §6.1: V=2, FMT=1, PT=206 (PSFB), length 2, then the two SSRCs.
        assert_eq!(wire, [0x81, 206, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            parse(&wire).unwrap(),
            vec![RtcpItem::Pli {
                media_ssrc: 0x0506_0708
            }]
        );
    }

    /// RFC 3550 §6.4.1, A.2: padding only on the last packet of a
    /// compound, counted by its last octet; a padded SDES still parses.
    #[test]
    fn padding_is_checked_and_removed() {
        let rr = |p_bit: u8| {
            let mut p = vec![0x81 | p_bit, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2];
            p.extend_from_slice(&[0; 20]);
            p
        };
        let sdes = |p_bit: u8, pad: &[u8]| {
            let words = 3 + pad.len() as u8 / 4;
            let mut p = vec![0x81 | p_bit, 202, 0, words, 0, 0, 0, 1];
            p.extend_from_slice(&[1, 3, b'a', b'b', b'c', 0, 0, 0]);
            p.extend_from_slice(pad);
            p
        };
        let mut ok = rr(0);
        ok.extend(sdes(0x20, &[0, 0, 0, 4]));
        let items = parse(&ok).unwrap();
        assert!(matches!(items[0], RtcpItem::Report { reporter: 1, .. }));
        assert_eq!(items[1], RtcpItem::Other(202));
        for bad in [
            [rr(0), sdes(0x20, &[0, 0, 0, 0])].concat(),  // count 0
            [rr(0), sdes(0x20, &[0, 0, 0, 3])].concat(),  // not whole words
            [rr(0), sdes(0x20, &[0, 0, 0, 40])].concat(), // longer than the packet
            [rr(0x20), sdes(0, &[])].concat(),            // not the last packet
        ] {
            assert!(
                matches!(parse(&bad), Err(RtcpError::Malformed(_))),
                "{bad:x?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x80, 200, 0xFF, 0xFF, 0, 0, 0, 0]).is_err());
        let mut x: u64 = 0xA5A5_5A5A_0F0F_F0F0;
        for len in 0..1500 {
            let mut buf = vec![0u8; len % 120];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if buf.len() >= 4 {
                buf[0] = 0x80 | (buf[0] & 0x1F);
                buf[1] = 200 + (buf[1] % 8);
                let words = (buf.len() / 4 - 1) as u16;
                buf[2..4].copy_from_slice(&words.to_be_bytes());
            }
            fuzz_parse(&buf);
        }
    }
}
