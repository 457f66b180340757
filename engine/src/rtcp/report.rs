//! Periodic SR/RR generation and round-trip time from report blocks, and
//! when to send them: RFC 3550 §6.3 / Appendix A.7's randomised interval
//! with timer reconsideration.

use super::{RtcpError, RtcpItem, encode};
use crate::rtp::{ReceiverStats, RtpSender};
use bytes::Bytes;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use std::time::{Duration, Instant};

/// Share of the session bandwidth RTCP may use (RFC 3550 §6.2).
const RTCP_BANDWIDTH_FRACTION: f64 = 0.05;
/// When senders are at most this share of the members, they get this share
/// of the RTCP bandwidth (RFC 3550 §6.2, A.7).
const SENDER_FRACTION: f64 = 0.25;
/// e − 3/2: timer reconsideration converges below the intended bandwidth;
/// dividing the randomised interval by this restores the mean (RFC 3550 A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// IPv4 + UDP octets counted in an RTCP packet's size (RFC 3550 §6.2: the
/// average size includes lower-layer headers).
pub const UDP_IP_OVERHEAD: usize = 28;
/// Average compound packet size assumed before any was sent or received:
/// an SRTCP SR with one report block (8 + 20 + 24 + 4 + 10) plus UDP/IP.
const INITIAL_AVG_RTCP_SIZE: f64 = 94.0;

/// RFC 3550 §6.2's reduced minimum interval between reports: 360 s
/// divided by the session bandwidth in kbit/s (under 5 s above 72 kbit/s).
pub fn reduced_minimum(session_bandwidth: u32) -> Duration {
    Duration::from_secs_f64(360.0 / (f64::from(session_bandwidth.max(1)) / 1000.0))
}

/// Converts `now` to a 64-bit NTP timestamp given one anchor pair (an
/// `Instant` and the NTP time it corresponds to). The core never reads the
/// wall clock; the driver supplies the anchor once.
pub fn ntp_from(anchor: (Instant, u64), now: Instant) -> u64 {
    let d = now.saturating_duration_since(anchor.0);
    let frac = (u128::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    anchor.1.wrapping_add((d.as_secs() << 32) | frac as u64)
}

/// Source of the interval's random factor: SplitMix64, seeded from the OS
/// in production and from a fixed seed in tests. Not for secrets: it only
/// de-synchronises report timers.
#[derive(Debug, Clone)]
pub struct IntervalRng(u64);

impl IntervalRng {
    /// Seeded from the operating system's RNG.
    pub fn from_os() -> Self {
        Self(u64::from_be_bytes(crate::zrtp::crypto::random()))
    }

    /// Seeded with `seed`: the same seed gives the same intervals.
    pub fn from_seed(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits: every value exactly representable.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Who the session holds as RTCP counts them (RFC 3550 A.7 inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// Participants, ourselves included.
    pub members: u32,
    /// Participants that sent RTP, ourselves included.
    pub senders: u32,
    /// Whether we sent RTP.
    pub we_sent: bool,
}

/// When to send the next SR/RR: RFC 3550 §6.3 with Appendix A.7's
/// algorithm. The deterministic interval is the larger of the bandwidth
/// share (5% of the session bandwidth split among members, senders getting
/// a quarter when few) and the minimum `T_min`, halved before the first
/// report (§6.2 "initial"). Each interval is that times a uniform factor in
/// [0.5, 1.5], divided by e − 3/2, and reconsidered when the timer fires
/// (§6.3.6): the report goes out only if the freshly drawn interval since
/// the last one has elapsed, else the timer moves there. With constant
/// membership the mean interval is then the deterministic one.
///
/// `T_min` is 5 s for RTP/AVP (RFC 3550 §6.2); RFC 4585 lets an AVPF
/// session use a smaller minimum, which is what a shorter configured
/// interval means here.
#[derive(Debug, Clone)]
pub struct ReportSchedule {
    min_interval: Duration,
    /// RTCP bandwidth in octets per second.
    rtcp_bw: f64,
    avg_rtcp_size: f64,
    initial: bool,
    last_sent: Instant,
    next: Instant,
    rng: IntervalRng,
}

impl ReportSchedule {
    /// A schedule starting at `now` for a session of `session_bandwidth`
    /// bit/s (media plus lower-layer headers) with minimum interval
    /// `min_interval`; the first report is due after about half of it.
    pub fn new(
        now: Instant,
        min_interval: Duration,
        session_bandwidth: u32,
        rng: IntervalRng,
    ) -> Self {
        let mut s = Self {
            min_interval,
            rtcp_bw: f64::from(session_bandwidth) / 8.0 * RTCP_BANDWIDTH_FRACTION,
            avg_rtcp_size: INITIAL_AVG_RTCP_SIZE,
            initial: true,
            last_sent: now,
            next: now,
            rng,
        };
        // Alone until the peer is heard from (A.7: members starts at 1).
        let alone = Membership {
            members: 1,
            senders: 0,
            we_sent: false,
        };
        s.next = now + s.randomised(alone);
        s
    }

    /// The interval before randomisation for `m` (RFC 3550 A.7 up to the
    /// random factor): the nominal interval the mean converges to.
    pub fn deterministic_interval(&self, m: Membership) -> Duration {
        let mut t_min = self.min_interval.as_secs_f64();
        if self.initial {
            t_min /= 2.0;
        }
        let members = f64::from(m.members.max(1));
        let senders = f64::from(m.senders.min(m.members));
        let (mut n, mut bw) = (members, self.rtcp_bw);
        if senders <= members * SENDER_FRACTION {
            if m.we_sent {
                bw *= SENDER_FRACTION;
                n = senders;
            } else {
                bw *= 1.0 - SENDER_FRACTION;
                n -= senders;
            }
        }
        let t = if bw > 0.0 {
            self.avg_rtcp_size * n / bw
        } else {
            0.0
        };
        Duration::from_secs_f64(t.max(t_min))
    }

    fn randomised(&mut self, m: Membership) -> Duration {
        let t = self.deterministic_interval(m).as_secs_f64();
        Duration::from_secs_f64(t * (self.rng.unit() + 0.5) / COMPENSATION)
    }

    /// When the timer fires next.
    pub fn next_report(&self) -> Instant {
        self.next
    }

    /// Whether a report is due at `now` (A.7 OnExpire with reconsideration).
    /// When it is, build and send it, then call [`ReportSchedule::on_sent`].
    pub fn is_due(&mut self, now: Instant, m: Membership) -> bool {
        if now < self.next {
            return false;
        }
        let t = self.randomised(m);
        if self.last_sent + t > now {
            // Reconsidered: not yet, the membership or draw says later.
            self.next = self.last_sent + t;
            return false;
        }
        true
    }

    /// Records the report sent at `now` (`size` octets of SRTCP, without
    /// UDP/IP; `None` if it could not be built: the timer moves on all the
    /// same) and schedules the next.
    pub fn on_sent(&mut self, now: Instant, size: Option<usize>, m: Membership) {
        if let Some(size) = size {
            self.update_avg(size);
        }
        self.initial = false;
        self.last_sent = now;
        self.next = now + self.randomised(m);
    }

    /// Records a received RTCP compound packet of `size` octets (RTCP,
    /// without UDP/IP): it counts in the average size.
    pub fn on_received(&mut self, size: usize) {
        self.update_avg(size);
    }

    fn update_avg(&mut self, size: usize) {
        let size = (size + UDP_IP_OVERHEAD) as f64;
        self.avg_rtcp_size += (size - self.avg_rtcp_size) / 16.0;
    }
}

/// Builds SR/RR for our streams and learns RTT from the peer's reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    ssrc: u32,
    ntp_anchor: (Instant, u64),
    rtt: Option<Duration>,
    /// Our CNAME: random for each call (RFC 7022), the same for all our
    /// SSRCs, which is how a receiver knows to line them up (RFC 3550
    /// §6.5.1).
    cname: Bytes,
}

impl Reporter {
    /// A reporter for local SSRC `ssrc`; `ntp_anchor` maps an `Instant` to NTP time.
    pub fn new(ssrc: u32, ntp_anchor: (Instant, u64)) -> Self {
        // 96 random bits (RFC 7022 §4.2), in hex.
        let id: [u8; 12] = crate::zrtp::crypto::random();
        let cname = id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Self {
            ssrc,
            ntp_anchor,
            rtt: None,
            cname: Bytes::from(cname),
        }
    }

    /// Latest RTT measured from an RR/SR block about our stream (RFC 3550 §6.4.1).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Builds a compound packet: an SR for each of `senders` (the report
    /// blocks, one for each remote stream that has sent, go in the first),
    /// or an RR when we have sent nothing, then an SDES with our CNAME for
    /// each of those SSRCs (RFC 3550 §6.1: in every compound packet). Each
    /// SR pairs one NTP instant with that stream's RTP time (§6.4.1), so
    /// the peer can line our audio and video up.
    pub fn build<'a, 's>(
        &self,
        now: Instant,
        senders: impl IntoIterator<Item = &'s RtpSender>,
        remotes: impl IntoIterator<Item = &'a mut ReceiverStats>,
    ) -> Result<Vec<u8>, RtcpError> {
        let mut reports: Vec<_> = remotes
            .into_iter()
            .filter_map(|r| r.report_block(now))
            .collect();
        let ntp_time = ntp_from(self.ntp_anchor, now);
        let mut packets: Vec<Box<dyn rtc_rtcp::packet::Packet>> = Vec::new();
        let mut sources = Vec::new();
        for s in senders {
            sources.push(s.ssrc());
            packets.push(Box::new(SenderReport {
                ssrc: s.ssrc(),
                ntp_time,
                rtp_time: s.rtp_time_at(now),
                packet_count: s.packets_sent(),
                octet_count: s.octets_sent(),
                reports: std::mem::take(&mut reports),
                profile_extensions: Bytes::new(),
            }));
        }
        if packets.is_empty() {
            sources.push(self.ssrc);
            packets.push(Box::new(ReceiverReport {
                ssrc: self.ssrc,
                reports,
                profile_extensions: Bytes::new(),
            }));
        }
        let chunks = sources
            .into_iter()
            .map(|source| SourceDescriptionChunk {
                source,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: self.cname.clone(),
                }],
            })
            .collect();
        packets.push(Box::new(SourceDescription { chunks }));
        encode(&packets)
    }

    /// Feeds parsed RTCP: each SR goes to the one of `remotes` it is from
    /// (LSR/DLSR, and its clock for lip sync), blocks about our SSRC update
    /// the RTT.
    pub fn on_rtcp<'a>(
        &mut self,
        now: Instant,
        items: &[RtcpItem],
        remotes: impl IntoIterator<Item = &'a mut ReceiverStats>,
    ) {
        let mut remotes: Vec<_> = remotes.into_iter().collect();
        for item in items {
            match item {
                RtcpItem::SenderInfo {
                    ssrc,
                    ntp_time,
                    rtp_time,
                    ..
                } => {
                    if let Some(r) = remotes.iter_mut().find(|r| r.ssrc() == Some(*ssrc)) {
                        r.on_sender_report(now, *ntp_time, *rtp_time);
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
    fn the_reduced_minimum_is_under_five_seconds_above_72_kbits() {
        assert_eq!(reduced_minimum(72_000), Duration::from_secs(5));
        assert_eq!(reduced_minimum(360_000), Duration::from_secs(1));
        assert!(reduced_minimum(44_000) > Duration::from_secs(8));
        assert!(reduced_minimum(0) > Duration::from_secs(3600));
    }

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
            a_send.on_captured(sent, a_send.next_timestamp());
            let n = a_send
                .packetize(&[0; 80], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            if i % 10 != 5 {
                let p = crate::rtp::parse(&buf[..n]).unwrap();
                b_stats.on_packet(sent + one_way, &p.header);
            }
        }
        let t_sr = t0 + Duration::from_millis(2005);
        let sr = a_rep.build(t_sr, [&a_send], []).unwrap();
        let items = parse(&sr).unwrap();
        assert!(matches!(
            items[0],
            RtcpItem::SenderInfo {
                ssrc: 0xA,
                packet_count: 100,
                octet_count: 8000,
                // Packet 99 (timestamp 99 × 960) left at 1.98 s, 25 ms earlier.
                rtp_time: 96_240,
                ..
            }
        ));
        b_rep.on_rtcp(t_sr + one_way, &items, [&mut b_stats]);
        // B holds the SR for 250 ms before reporting.
        let t_rr = t_sr + one_way + Duration::from_millis(250);
        let rr = b_rep.build(t_rr, [], [&mut b_stats]).unwrap();
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
        a_rep.on_rtcp(t_rr + one_way, &items, []);
        let rtt = a_rep.rtt().unwrap();
        let err = rtt.as_secs_f64() - 0.120;
        assert!(err.abs() < 0.001, "rtt {rtt:?}");
    }

    /// RFC 3550 §6.1: every compound packet starts with an SR or RR and
    /// carries an SDES with the CNAME, one for all of a participant's SSRCs.
    #[test]
    fn compound_packets_name_every_ssrc_with_one_cname() {
        let t0 = Instant::now();
        let rep = Reporter::new(0xA, (t0, 1 << 32));
        let audio = RtpSender::new(0xA, OPUS_PAYLOAD_TYPE, 1, 0).unwrap();
        let video = RtpSender::new(0xB, 96, 1, 0).unwrap();
        let cnames = |pkt: Vec<u8>| {
            let packets = rtc_rtcp::packet::unmarshal(&mut pkt.as_slice()).unwrap();
            assert!(
                packets[0].as_any().is::<SenderReport>()
                    || packets[0].as_any().is::<ReceiverReport>()
            );
            let sdes = packets
                .iter()
                .find_map(|p| p.as_any().downcast_ref::<SourceDescription>().cloned())
                .expect("an SDES");
            sdes.chunks
                .iter()
                .map(|c| (c.source, c.items[0].sdes_type, c.items[0].text.clone()))
                .collect::<Vec<_>>()
        };
        let both = cnames(rep.build(t0, [&audio, &video], []).unwrap());
        assert_eq!(both.len(), 2);
        assert_eq!((both[0].0, both[1].0), (0xA, 0xB));
        assert!(both.iter().all(|c| c.1 == SdesType::SdesCname));
        assert_eq!(both[0].2, both[1].2);
        assert_eq!(both[0].2.len(), 24, "96 random bits in hex");
        let rr = cnames(rep.build(t0, [], []).unwrap());
        assert_eq!((rr[0].0, &rr[0].2), (0xA, &both[0].2));
        // Another call, another name.
        let other = Reporter::new(0xA, (t0, 1 << 32));
        assert_ne!(cnames(other.build(t0, [], []).unwrap())[0].2, rr[0].2);
    }

    const TWO_SENDERS: Membership = Membership {
        members: 2,
        senders: 2,
        we_sent: true,
    };

    /// Runs `s` in virtual time for `n` reports of `size` octets; returns
    /// the intervals between reports (the first from the start).
    fn intervals(s: &mut ReportSchedule, t0: Instant, n: usize, size: usize) -> Vec<f64> {
        let (mut last, mut out) = (t0, Vec::with_capacity(n));
        while out.len() < n {
            let now = s.next_report();
            if s.is_due(now, TWO_SENDERS) {
                out.push((now - last).as_secs_f64());
                last = now;
                s.on_sent(now, Some(size), TWO_SENDERS);
            }
        }
        out
    }

    /// RFC 3550 §6.3 / A.7: each interval is the deterministic one times
    /// [0.5, 1.5] / (e − 3/2); the first uses half the minimum; with timer
    /// reconsideration the mean comes back to the deterministic interval.
    #[test]
    fn report_intervals_are_randomised_around_the_nominal() {
        let t0 = Instant::now();
        let min = Duration::from_secs(5);
        let mut s = ReportSchedule::new(t0, min, 64_000, IntervalRng::from_seed(7));
        // 5% of 64 kbit/s shared by two senders is 0.47 s: the minimum rules.
        assert_eq!(s.deterministic_interval(TWO_SENDERS), min / 2);
        let iv = intervals(&mut s, t0, 4000, 66);
        assert_eq!(s.deterministic_interval(TWO_SENDERS), min);
        let (lo, hi) = (0.5 / COMPENSATION, 1.5 / COMPENSATION);
        assert!((2.5 * lo..=2.5 * hi).contains(&iv[0]), "first {}", iv[0]);
        let rest = &iv[1..];
        for &t in rest {
            assert!((5.0 * lo..=5.0 * hi).contains(&t), "{t}");
        }
        let mean = rest.iter().sum::<f64>() / rest.len() as f64;
        let (min_t, max_t) = rest
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), &t| (a.min(t), b.max(t)));
        println!("4000 intervals: mean {mean:.3} s, range {min_t:.3}..{max_t:.3} s");
        // Without reconsideration the mean would be 5 / 1.218 = 4.10 s.
        assert!((mean - 5.0).abs() < 0.1, "mean {mean}");
        // They spread over most of the allowed range.
        assert!(min_t < 5.0 * lo + 0.2 && max_t > 5.0 * hi - 0.2);
    }

    #[test]
    fn report_intervals_follow_the_seed_and_the_bandwidth() {
        let t0 = Instant::now();
        let run = |seed, bw| {
            let mut s = ReportSchedule::new(
                t0,
                Duration::from_millis(500),
                bw,
                IntervalRng::from_seed(seed),
            );
            (intervals(&mut s, t0, 200, 66), s)
        };
        assert_eq!(run(1, 64_000).0, run(1, 64_000).0);
        assert_ne!(run(1, 64_000).0, run(2, 64_000).0);
        // At 8 kbit/s RTCP has 50 octets/s: two members sending 94-octet
        // packets (66 + UDP/IP) need 3.76 s, far above the 0.5 s minimum.
        let (iv, s) = run(3, 8_000);
        let nominal = s.deterministic_interval(TWO_SENDERS).as_secs_f64();
        assert!((nominal - 3.76).abs() < 0.01, "{nominal}");
        let mean = iv[1..].iter().sum::<f64>() / (iv.len() - 1) as f64;
        assert!(
            (mean - nominal).abs() < 0.1 * nominal,
            "{mean} vs {nominal}"
        );
        // When senders are few (1 of 8 here), the 7 others share 3/4 of
        // the bandwidth (A.7).
        let m = Membership {
            members: 8,
            senders: 1,
            we_sent: false,
        };
        let t = s.deterministic_interval(m).as_secs_f64();
        assert!((t - 94.0 * 7.0 / (50.0 * 0.75)).abs() < 0.01, "{t}");
    }

    /// Reconsideration (RFC 3550 §6.3.6): when the timer fires early for
    /// the membership now known, the report waits.
    #[test]
    fn growing_membership_postpones_the_report() {
        let t0 = Instant::now();
        let mut s =
            ReportSchedule::new(t0, Duration::from_secs(5), 8_000, IntervalRng::from_seed(9));
        let due = s.next_report();
        let crowd = Membership {
            members: 50,
            senders: 50,
            we_sent: true,
        };
        assert!(!s.is_due(due, crowd));
        assert!(s.next_report() > due);
    }
}
