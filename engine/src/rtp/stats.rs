//! Receiver statistics for one remote SSRC (RFC 3550 Appendix A.1, A.3, A.8).

use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtp::header::Header;
use std::time::{Duration, Instant};

/// RFC 3550 A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Tracks the extended sequence number, loss and interarrival jitter of one source.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, in RTP ticks, modulo
    /// 2^32 like the timestamps it comes from.
    transit: Option<u32>,
    /// Jitter estimate scaled by 16 (RFC 3550 A.8).
    jitter_q4: u64,
    epoch: Option<Instant>,
    /// Middle 32 bits of the last SR's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    /// The last SR's pairing of the sender's clocks.
    sender_clock: Option<SenderClock>,
}

/// One instant on a sender's two clocks, from its latest SR (RFC 3550
/// §6.4.1): its wallclock (NTP) and its RTP clock. A sender's SRs on two
/// streams share the wallclock, which is how a receiver lines the streams
/// up (lip sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    /// 64-bit NTP timestamp.
    pub ntp_time: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: u32,
}

impl ReceiverStats {
    /// A tracker for a stream with the given RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            ssrc: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
            sender_clock: None,
        }
    }

    /// The tracked SSRC, once a packet has been seen.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.1 `update_seq`; returns whether the packet is valid.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: the source restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted.
        self.received += 1;
        true
    }

    /// Feeds one received packet header, arriving at `now`; returns whether it
    /// counted as valid (RFC 3550 A.1 probation drops the first packet).
    pub fn on_packet(&mut self, now: Instant, header: &Header) -> bool {
        if self.ssrc != Some(header.ssrc) {
            // New or changed source: start over (RFC 3550 §8.2 collisions aside).
            *self = Self::new(self.clock_rate);
            self.ssrc = Some(header.ssrc);
            self.init_seq(header.sequence_number);
            self.max_seq = header.sequence_number.wrapping_sub(1);
        }
        let valid = self.update_seq(header.sequence_number);
        if valid {
            self.update_jitter(now, header.timestamp);
        }
        valid
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, kept scaled by 16.
    fn update_jitter(&mut self, now: Instant, rtp_ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = ticks(now.saturating_duration_since(epoch), self.clock_rate);
        // Transit and its change are taken modulo 2^32, so they stay
        // meaningful wherever the sender's random timestamp base puts them.
        let transit = arrival.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            let j = self.jitter_q4 as i64 + d as i64 - ((self.jitter_q4 as i64 + 8) >> 4);
            self.jitter_q4 = j.max(0) as u64;
        }
        self.transit = Some(transit);
    }

    /// Records a Sender Report from this source, arrived at `now`: for
    /// LSR/DLSR (RFC 3550 §6.4.1), and its clocks.
    pub fn on_sender_report(&mut self, now: Instant, ntp_time: u64, rtp_time: u32) {
        self.last_sr = Some(((ntp_time >> 16) as u32, now));
        self.sender_clock = Some(SenderClock { ntp_time, rtp_time });
    }

    /// The sender's clocks as its latest SR paired them.
    pub fn sender_clock(&self) -> Option<SenderClock> {
        self.sender_clock
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected so far (RFC 3550 A.3).
    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Valid packets received so far.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Cumulative packets lost (negative with duplicates), RFC 3550 A.3.
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Interarrival jitter in RTP ticks.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }

    /// Builds the reception report block for an SR/RR and starts a new
    /// loss-fraction interval (RFC 3550 A.3). `None` before any valid packet.
    pub fn report_block(&mut self, now: Instant) -> Option<ReceptionReport> {
        let ssrc = self.ssrc?;
        if self.received == 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        // 24-bit signed field: clamp (RFC 3550 §6.4.1). rtc-rtcp encodes the low 24 bits.
        let lost = self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF);
        let total_lost = (lost as i32 as u32) & 0x00FF_FFFF;
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                // DLSR in 1/65536 s.
                (
                    lsr,
                    (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        Some(ReceptionReport {
            ssrc,
            fraction_lost,
            total_lost,
            last_sequence_number: self.extended_max(),
            jitter: self.jitter(),
            last_sender_report: lsr,
            delay: dlsr,
        })
    }
}

fn ticks(d: Duration, clock_rate: u32) -> u32 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(seq: u16, ts: u32) -> Header {
        Header {
            version: 2,
            payload_type: 111,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 42,
            ..Header::default()
        }
    }

    #[test]
    fn counts_loss_across_wrap() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(48_000);
        let mut seq: u16 = 65530;
        let mut ts: u32 = 0;
        for i in 0..20u32 {
            // Drop packets 5 and 6 (which straddle the wrap).
            if i != 5 && i != 6 {
                s.on_packet(t0 + Duration::from_millis(20 * u64::from(i)), &hdr(seq, ts));
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        // RFC 3550 A.1 probation: the first packet only validates the source.
        assert_eq!(s.expected(), 19);
        assert_eq!(s.received(), 17);
        assert_eq!(s.cumulative_lost(), 2);
        assert_eq!(s.extended_max(), 65536 + 13);
        let rb = s.report_block(t0).unwrap();
        assert_eq!(rb.total_lost, 2);
        assert_eq!(rb.fraction_lost, (2 * 256 / 19) as u8);
        // Perfect pacing: zero jitter.
        assert_eq!(rb.jitter, 0);
        // A second interval with no loss reports fraction 0 but keeps the total.
        for i in 20..30u32 {
            s.on_packet(t0 + Duration::from_millis(20 * u64::from(i)), &hdr(seq, ts));
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        let rb = s.report_block(t0).unwrap();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.total_lost, 2);
    }

    /// RFC 3550 A.8 jitter of packets alternately 0 and 10 ms late
    /// (|D| = 480 ticks each step), from the first timestamp `ts0`, and
    /// the same computed here from the definition.
    fn alternating_delay_jitter(ts0: u32) -> (f64, f64) {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(48_000);
        let mut j_ref = 0f64;
        let mut prev_transit: Option<i64> = None;
        for i in 0..200u32 {
            let late = if i % 2 == 0 { 0 } else { 10 };
            let arr = t0 + Duration::from_millis(20 * u64::from(i) + late);
            s.on_packet(arr, &hdr(i as u16 + 1000, ts0.wrapping_add(i * 960)));
            if i == 0 {
                continue; // probation swallows the first packet
            }
            let transit = i64::from(late as u32 * 48) + 20 * 48 * i64::from(i) - i64::from(i * 960);
            if let Some(p) = prev_transit {
                j_ref += ((transit - p).abs() as f64 - j_ref) / 16.0;
            }
            prev_transit = Some(transit);
        }
        (f64::from(s.jitter()), j_ref)
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let (j, j_ref) = alternating_delay_jitter(0);
        assert!((j - j_ref).abs() <= 2.0, "jitter {j} vs reference {j_ref}");
        assert!(j > 400.0);
    }

    #[test]
    fn jitter_is_the_same_where_the_transit_crosses_the_i32_boundary() {
        // First timestamps around 2^31: for some of them the on-time and
        // the late transits fall on either side of i32::MIN.
        for k in 0..32 {
            let ts0 = 0x7FFF_F800 + k * 128;
            let (j, j_ref) = alternating_delay_jitter(ts0);
            assert!(
                (j - j_ref).abs() <= 2.0,
                "ts0 {ts0:#x}: jitter {j} vs {j_ref}"
            );
        }
    }

    #[test]
    fn lsr_dlsr_from_sender_report() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(48_000);
        s.on_packet(t0, &hdr(1, 0));
        s.on_packet(t0, &hdr(2, 960));
        s.on_sender_report(t0, 0x1234_5678_9ABC_DEF0, 0);
        let rb = s.report_block(t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(rb.last_sender_report, 0x5678_9ABC);
        assert_eq!(rb.delay, 32768);
    }

    #[test]
    fn source_restart_is_detected() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(48_000);
        for i in 0..10u16 {
            s.on_packet(t0, &hdr(i, 0));
        }
        // A jump far away is first treated as bad, then accepted when sequential.
        assert!(!s.on_packet(t0, &hdr(40_000, 0)));
        assert!(s.on_packet(t0, &hdr(40_001, 0)));
        assert_eq!(s.extended_max(), 40_001);
    }
}
