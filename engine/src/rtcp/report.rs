//! Periodic SR/RR generation and round-trip time from report blocks.

use super::{RtcpError, RtcpItem, encode};
use crate::rtp::{ReceiverStats, RtpSender};
use bytes::Bytes;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::sender_report::SenderReport;
use std::time::{Duration, Instant};

/// Converts `now` to a 64-bit NTP timestamp given one anchor pair (an
/// `Instant` and the NTP time it corresponds to). The core never reads the
/// wall clock; the driver supplies the anchor once.
pub fn ntp_from(anchor: (Instant, u64), now: Instant) -> u64 {
    let d = now.saturating_duration_since(anchor.0);
    let frac = (u128::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    anchor.1.wrapping_add((d.as_secs() << 32) | frac as u64)
}

/// Builds SR/RR for our stream and learns RTT from the peer's reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    ssrc: u32,
    ntp_anchor: (Instant, u64),
    rtt: Option<Duration>,
}

impl Reporter {
    /// A reporter for local SSRC `ssrc`; `ntp_anchor` maps an `Instant` to NTP time.
    pub fn new(ssrc: u32, ntp_anchor: (Instant, u64)) -> Self {
        Self {
            ssrc,
            ntp_anchor,
            rtt: None,
        }
    }

    /// Latest RTT measured from an RR/SR block about our stream (RFC 3550 §6.4.1).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Builds an SR (if we send) or RR, with a block for the remote stream if any.
    pub fn build(
        &self,
        now: Instant,
        sender: Option<&RtpSender>,
        remote: Option<&mut ReceiverStats>,
    ) -> Result<Vec<u8>, RtcpError> {
        let reports: Vec<_> = remote
            .and_then(|r| r.report_block(now))
            .into_iter()
            .collect();
        match sender {
            Some(s) => {
                let sr = SenderReport {
                    ssrc: self.ssrc,
                    ntp_time: ntp_from(self.ntp_anchor, now),
                    // Not exact (the next packet's timestamp), but within one frame.
                    rtp_time: s.next_timestamp(),
                    packet_count: s.packets_sent(),
                    octet_count: s.octets_sent(),
                    reports,
                    profile_extensions: Bytes::new(),
                };
                encode(&[Box::new(sr)])
            }
            None => encode(&[Box::new(ReceiverReport {
                ssrc: self.ssrc,
                reports,
                profile_extensions: Bytes::new(),
            })]),
        }
    }

    /// Feeds parsed RTCP: SRs go to `remote` (for LSR/DLSR), blocks about
    /// our SSRC update the RTT.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        items: &[RtcpItem],
        remote: Option<&mut ReceiverStats>,
    ) {
        let mut remote = remote;
        for item in items {
            match item {
                RtcpItem::SenderInfo { ssrc, ntp_time, .. } => {
                    if let Some(r) = remote.as_deref_mut()
                        && r.ssrc() == Some(*ssrc)
                    {
                        r.on_sender_report(now, *ntp_time);
                    }
                }
                RtcpItem::Report { block, .. }
                    if block.ssrc == self.ssrc && block.last_sender_report != 0 =>
                {
                    // RTT = A - LSR - DLSR in 1/65536 s (RFC 3550 §6.4.1).
                    let a = (ntp_from(self.ntp_anchor, now) >> 16) as u32;
                    let rtt = a
                        .wrapping_sub(block.last_sender_report)
                        .wrapping_sub(block.delay);
                    // A negative result (clock skew, forged block) wraps huge: ignore it.
                    if rtt < 0x8000_0000 {
                        self.rtt =
                            Some(Duration::from_nanos(u64::from(rtt) * 1_000_000_000 / 65536));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::rtp::{OPUS_20MS_TICKS, OPUS_CLOCK_RATE, OPUS_PAYLOAD_TYPE};

    #[test]
    fn ntp_conversion() {
        let t0 = Instant::now();
        assert_eq!(
            ntp_from((t0, 5 << 32), t0 + Duration::from_millis(1500)),
            (6 << 32) | 0x8000_0000
        );
    }

    /// Two endpoints exchange media and reports over a virtual 60 ms one-way
    /// path with 10% loss; the receiver's report and the sender's RTT must match.
    #[test]
    fn sr_rr_loss_jitter_and_rtt() {
        let t0 = Instant::now();
        let one_way = Duration::from_millis(60);
        let mut a_send = RtpSender::new(0xA, OPUS_PAYLOAD_TYPE, 1, 0).unwrap();
        let mut a_rep = Reporter::new(0xA, (t0, 1000 << 32));
        // B's NTP clock is unrelated to A's: RTT must not depend on it.
        let mut b_rep = Reporter::new(0xB, (t0, 77 << 32));
        let mut b_stats = ReceiverStats::new(OPUS_CLOCK_RATE);
        let mut buf = [0u8; 200];
        for i in 0..100u32 {
            let sent = t0 + Duration::from_millis(20 * u64::from(i));
            let n = a_send
                .packetize(&[0; 80], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            if i % 10 != 5 {
                let p = crate::rtp::parse(&buf[..n]).unwrap();
                b_stats.on_packet(sent + one_way, &p.header);
            }
        }
        let t_sr = t0 + Duration::from_secs(2);
        let sr = a_rep.build(t_sr, Some(&a_send), None).unwrap();
        let items = parse(&sr).unwrap();
        assert!(matches!(
            items[0],
            RtcpItem::SenderInfo {
                ssrc: 0xA,
                packet_count: 100,
                octet_count: 8000,
                ..
            }
        ));
        b_rep.on_rtcp(t_sr + one_way, &items, Some(&mut b_stats));
        // B holds the SR for 250 ms before reporting.
        let t_rr = t_sr + one_way + Duration::from_millis(250);
        let rr = b_rep.build(t_rr, None, Some(&mut b_stats)).unwrap();
        let items = parse(&rr).unwrap();
        let RtcpItem::Report {
            reporter: 0xB,
            block,
        } = &items[0]
        else {
            panic!("{items:?}")
        };
        assert_eq!(block.ssrc, 0xA);
        assert_eq!(block.total_lost, 10);
        assert_eq!(block.fraction_lost, (10 * 256 / 99) as u8);
        assert_eq!(block.jitter, 0);
        a_rep.on_rtcp(t_rr + one_way, &items, None);
        let rtt = a_rep.rtt().unwrap();
        let err = rtt.as_secs_f64() - 0.120;
        assert!(err.abs() < 0.001, "rtt {rtt:?}");
    }
}
