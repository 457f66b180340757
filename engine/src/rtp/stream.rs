//! One secured audio stream, both directions, and optionally a video
//! stream on an SSRC of its own under the same SRTP keys (the SSRC is in
//! every keystream's IV, RFC 3711 §4.1.1, so two never share one): RTP
//! numbering + SRTP on the way out; demux, SRTP, RTP parsing and
//! statistics on the way in; RTCP (SR/RR, NACK, PLI) over SRTCP on the
//! same port. Sans-IO: datagrams in,
//! datagrams out, time passed in.

use super::nack::{Arrival, DEFAULT_RTT, NackRequester, recovery_wait};
use super::retransmit::{Retransmission, RetransmitHistory};
use super::{ReceiverStats, RtpError, RtpPacket, RtpSender, parse};
use crate::demux::{PacketKind, classify};
use crate::rtcp::{self, IntervalRng, Membership, ReportSchedule, Reporter, RtcpError, RtcpItem};
use crate::srtp::{self, SrtpContext};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Minimum RTCP report interval: RFC 3550 §6.2's 5 s. Actual intervals
/// are randomised around it (see [`ReportSchedule`]).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Session bandwidth assumed for the RTCP share when none is given (bit/s):
/// Opus at up to ~40 kbit/s plus IP/UDP/RTP/SRTP headers every 20 ms.
pub const DEFAULT_SESSION_BANDWIDTH: u32 = 64_000;
/// Outgoing RTCP datagrams held until polled.
const MAX_QUEUED_RTCP: usize = 16;

/// Why an incoming datagram was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// SRTP/SRTCP refused it (authentication, replay, malformed).
    #[error("SRTP: {0}")]
    Srtp(srtp::Error),
    /// It decrypted but is not valid RTP.
    #[error(transparent)]
    Rtp(#[from] RtpError),
    /// It decrypted but is not valid RTCP.
    #[error(transparent)]
    Rtcp(#[from] RtcpError),
    /// Not RTP or RTCP (the caller routes STUN/ZRTP elsewhere).
    #[error("not media: {0:?}")]
    NotMedia(PacketKind),
    /// Video was sent on a stream that carries none.
    #[error("this stream carries no video")]
    NoVideo,
}

shown_from!(StreamError, StreamError::Srtp, srtp::Error);

/// An accepted incoming datagram.
#[derive(Debug)]
pub enum Received<'a> {
    /// An audio packet, decrypted in the caller's buffer.
    Audio(RtpPacket<'a>),
    /// A video packet (the video payload type), decrypted in the caller's buffer.
    Video(RtpPacket<'a>),
    /// RTCP items (reports are already applied to statistics and RTT).
    Control(Vec<RtcpItem>),
}

/// One bidirectional SRTP audio stream.
#[derive(Debug)]
pub struct MediaStream {
    sender: RtpSender,
    tx: SrtpContext,
    rx: SrtpContext,
    remote: ReceiverStats,
    reporter: Reporter,
    schedule: ReportSchedule,
    /// Whether anything authentic came from the peer (it counts as a member).
    peer_heard: bool,
    outbox: VecDeque<Vec<u8>>,
    video: Option<VideoTrack>,
}

/// The video half of a stream: our sender and what we receive of the peer's.
#[derive(Debug)]
struct VideoTrack {
    sender: RtpSender,
    remote: ReceiverStats,
    /// Generic NACK both ways, when both sides take it.
    nack: Option<Nack>,
}

/// Both ends of generic NACK on the video (RFC 4585 §6.2.1).
#[derive(Debug)]
struct Nack {
    /// The peer's packets we miss.
    requester: NackRequester,
    /// Our packets, to send again when the peer misses them.
    history: RetransmitHistory,
    /// NACK packets queued to the peer.
    sent: u64,
}

/// What generic NACK did on a stream's video.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackCounts {
    /// NACK packets sent to the peer (W3C inbound `nackCount`).
    pub nacks_sent: u64,
    /// The peer's packets that arrived after being asked for.
    pub repaired: u64,
    /// Our packets handed out to be sent again.
    pub resent: u64,
}

/// Least time between two retransmissions of one packet, however short
/// the round trip the peer's reports claim.
const MIN_RESEND_INTERVAL: Duration = Duration::from_millis(10);

impl MediaStream {
    /// A stream sending as `sender` with `tx` keys and receiving with `rx`
    /// keys; `ntp_anchor` maps an `Instant` to NTP time for SRs.
    pub fn new(
        now: Instant,
        sender: RtpSender,
        tx: SrtpContext,
        rx: SrtpContext,
        ntp_anchor: (Instant, u64),
    ) -> Self {
        let clock = sender.clock_rate();
        let reporter = Reporter::new(sender.ssrc(), ntp_anchor);
        Self {
            sender,
            tx,
            rx,
            remote: ReceiverStats::new(clock),
            reporter,
            schedule: ReportSchedule::new(
                now,
                RTCP_INTERVAL,
                DEFAULT_SESSION_BANDWIDTH,
                IntervalRng::from_os(),
            ),
            peer_heard: false,
            outbox: VecDeque::new(),
            video: None,
        }
    }

    /// Also carries video, sent as `sender` (its own SSRC and payload
    /// type, 90 kHz); received packets of that payload type are video.
    /// With `nack_history`, lost video packets are asked for, and that many
    /// of our last packets are kept to be sent again when the peer asks
    /// (see [`retransmissions`](Self::retransmissions)).
    pub fn with_video(mut self, sender: RtpSender, nack_history: Option<usize>) -> Self {
        let remote = ReceiverStats::new(sender.clock_rate());
        self.video = Some(VideoTrack {
            sender,
            remote,
            nack: nack_history.map(|packets| Nack {
                requester: NackRequester::new(),
                history: RetransmitHistory::new(packets),
                sent: 0,
            }),
        });
        self
    }

    /// Builds and protects one packet of a video frame captured at
    /// `captured` into `out` (see [`RtpSender::packetize_frame`]); returns
    /// its length.
    pub fn send_video(
        &mut self,
        captured: Instant,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
        out: &mut [u8],
    ) -> Result<usize, StreamError> {
        let v = self.video.as_mut().ok_or(StreamError::NoVideo)?;
        let seq = v.sender.next_sequence_number();
        let n = v.sender.packetize_frame(payload, timestamp, marker, out)?;
        v.sender.on_captured(captured, timestamp);
        let n = self.tx.protect_rtp_in_place(out, n)?;
        if let Some(nack) = v.nack.as_mut() {
            nack.history.store(seq, out[..n].to_vec(), payload.len());
        }
        Ok(n)
    }

    /// Our video packets the peer asked for in a NACK (`lost`) that are
    /// still kept, to be sent again at `now`, up to `max_bytes` of
    /// datagrams; report each with [`on_retransmitted`](Self::on_retransmitted)
    /// when it leaves. A packet is not handed out again while it waits to
    /// leave, nor within a round trip of leaving.
    pub fn retransmissions(
        &mut self,
        now: Instant,
        lost: &[u16],
        max_bytes: usize,
    ) -> Vec<Retransmission> {
        let min_interval = (self.reporter.rtt().unwrap_or(DEFAULT_RTT)).max(MIN_RESEND_INTERVAL);
        let Some(nack) = self.video.as_mut().and_then(|v| v.nack.as_mut()) else {
            return Vec::new();
        };
        let mut left = max_bytes;
        let mut out = Vec::new();
        for &seq in lost {
            if !nack.history.fits(seq, left) {
                break;
            }
            if let Some(r) = nack.history.resend(now, seq, min_interval) {
                left -= r.datagram.len();
                out.push(r);
            }
        }
        out
    }

    /// Uses `interval` as the minimum between RTCP reports instead of
    /// [`RTCP_INTERVAL`] (RFC 4585 AVPF, tests and short calls).
    pub fn with_rtcp_interval(self, now: Instant, interval: Duration) -> Self {
        self.with_rtcp_schedule(ReportSchedule::new(
            now,
            interval,
            DEFAULT_SESSION_BANDWIDTH,
            IntervalRng::from_os(),
        ))
    }

    /// Times RTCP reports with `schedule` (its bandwidth, minimum and RNG).
    pub fn with_rtcp_schedule(mut self, schedule: ReportSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Builds and protects one audio packet covering `duration` RTP ticks
    /// into `out` (which needs room for header, payload and tag); returns
    /// its length. `captured` is when its first sample was captured: SRs
    /// map it to their NTP time.
    pub fn send_audio(
        &mut self,
        captured: Instant,
        payload: &[u8],
        duration: u32,
        out: &mut [u8],
    ) -> Result<usize, StreamError> {
        let ts = self.sender.next_timestamp();
        let n = self.sender.packetize(payload, duration, out)?;
        self.sender.on_captured(captured, ts);
        Ok(self.tx.protect_rtp_in_place(out, n)?)
    }

    /// Skips `duration` ticks of silence (DTX); the next packet carries the marker.
    pub fn skip(&mut self, duration: u32) {
        self.sender.skip(duration);
    }

    /// Accepts one datagram of `buf[..len]`, decrypting it in place.
    pub fn receive<'a>(
        &mut self,
        now: Instant,
        buf: &'a mut [u8],
        len: usize,
    ) -> Result<Received<'a>, StreamError> {
        let len = len.min(buf.len());
        match classify(&buf[..len]) {
            PacketKind::Rtp => {
                let n = self.rx.unprotect_rtp_in_place(buf, len)?;
                let buf: &'a [u8] = buf;
                let p = parse(&buf[..n])?;
                self.peer_heard = true;
                // Video has its own sequence numbers and clock: kept apart
                // from the audio statistics that RTCP reports.
                match self.video.as_mut() {
                    Some(v) if p.header.payload_type == v.sender.payload_type() => {
                        let arrival = v.nack.as_mut().map_or(Arrival::New, |n| {
                            n.requester.on_packet(now, p.header.sequence_number)
                        });
                        // A retransmission repairs a loss; the reports
                        // still tell the sender the network lost it.
                        if arrival != Arrival::Recovered {
                            v.remote.on_packet(now, &p.header);
                        }
                        Ok(Received::Video(p))
                    }
                    _ => {
                        self.remote.on_packet(now, &p.header);
                        Ok(Received::Audio(p))
                    }
                }
            }
            PacketKind::Rtcp => {
                let n = self.rx.unprotect_rtcp_in_place(buf, len)?;
                let items = rtcp::parse(&buf[..n])?;
                let remotes = [
                    Some(&mut self.remote),
                    self.video.as_mut().map(|v| &mut v.remote),
                ];
                self.reporter
                    .on_rtcp(now, &items, remotes.into_iter().flatten());
                self.schedule.on_received(len);
                self.peer_heard = true;
                Ok(Received::Control(items))
            }
            other => Err(StreamError::NotMedia(other)),
        }
    }

    /// When the next RTCP report or NACK may be due.
    pub fn poll_timeout(&self) -> Instant {
        let report = self.schedule.next_report();
        self.video
            .as_ref()
            .and_then(|v| v.nack.as_ref()?.requester.poll_timeout())
            .map_or(report, |nack| nack.min(report))
    }

    /// Us and the peer as RTCP counts us (RFC 3550 A.7).
    fn membership(&self) -> Membership {
        let we_sent = self.sender.packets_sent() > 0;
        let peer_sent = self.remote.received() > 0;
        Membership {
            members: 1 + u32::from(self.peer_heard),
            senders: u32::from(we_sent) + u32::from(peer_sent),
            we_sent,
        }
    }

    /// Queues a NACK for the peer's video packets due to be asked for, and
    /// an SR (or RR before we have sent) when one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.request_missing_video(now);
        let m = self.membership();
        if !self.schedule.is_due(now, m) {
            return;
        }
        // An SR for our video too: the peer lines it up with the audio. A
        // block for the peer's video too: its sender learns its loss.
        let (video_sender, video_remote) = match self.video.as_mut() {
            Some(v) => (Some(&v.sender), Some(&mut v.remote)),
            None => (None, None),
        };
        let senders = [
            m.we_sent.then_some(&self.sender),
            video_sender.filter(|s| s.packets_sent() > 0),
        ];
        let remotes = [Some(&mut self.remote), video_remote];
        let size = match self.reporter.build(
            now,
            senders.into_iter().flatten(),
            remotes.into_iter().flatten(),
        ) {
            Ok(report) => self.queue_rtcp(report),
            Err(_) => None,
        };
        self.schedule.on_sent(now, size, m);
    }

    /// The frame assembler gave up the peer's video packets up to `seq`:
    /// they are no longer asked for.
    pub fn forget_missing_video_through(&mut self, seq: u16) {
        if let Some(nack) = self.video.as_mut().and_then(|v| v.nack.as_mut()) {
            nack.requester.forget_through(seq);
        }
    }

    /// Video packet `seq`, handed out by [`retransmissions`](Self::retransmissions),
    /// left at `now`.
    pub fn on_retransmitted(&mut self, now: Instant, seq: u16) {
        if let Some(nack) = self.video.as_mut().and_then(|v| v.nack.as_mut()) {
            nack.history.on_sent(now, seq);
        }
    }

    /// Asks the peer for its video packets that are due to be asked for
    /// (RFC 4585 generic NACK), giving up on those missing for longer than
    /// a receiver waits for them ([`recovery_wait`] at the current RTT).
    fn request_missing_video(&mut self, now: Instant) {
        let rtt = self.reporter.rtt();
        let Some(v) = self.video.as_mut() else {
            return;
        };
        let (Some(nack), Some(media)) = (v.nack.as_mut(), v.remote.ssrc()) else {
            return;
        };
        nack.requester.set_give_up_after(recovery_wait(rtt));
        let lost = nack.requester.take_due(now, rtt);
        if lost.is_empty() {
            return;
        }
        let Ok(pkt) = rtcp::build_nack(self.sender.ssrc(), media, &lost) else {
            return;
        };
        if self.queue_rtcp(pkt).is_some()
            && let Some(nack) = self.video.as_mut().and_then(|v| v.nack.as_mut())
        {
            nack.sent += 1;
        }
    }

    /// Asks the remote sender for a key frame of its video (RFC 4585 PLI).
    pub fn request_pli(&mut self) -> Result<(), StreamError> {
        let media = self
            .video
            .as_ref()
            .and_then(|v| v.remote.ssrc())
            .unwrap_or(0);
        let pkt = rtcp::build_pli(self.sender.ssrc(), media)?;
        let _ = self.queue_rtcp(pkt);
        Ok(())
    }

    /// Protects and queues `pkt`; its SRTCP size when queued.
    fn queue_rtcp(&mut self, mut pkt: Vec<u8>) -> Option<usize> {
        if self.outbox.len() < MAX_QUEUED_RTCP && self.tx.protect_rtcp(&mut pkt).is_ok() {
            let n = pkt.len();
            self.outbox.push_back(pkt);
            Some(n)
        } else {
            None
        }
    }

    /// Next SRTCP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Round-trip time from the peer's latest report about us.
    pub fn rtt(&self) -> Option<Duration> {
        self.reporter.rtt()
    }

    /// Statistics of the incoming stream.
    pub fn remote_stats(&self) -> &ReceiverStats {
        &self.remote
    }

    /// Our video SSRC, if this stream carries video.
    pub fn video_ssrc(&self) -> Option<u32> {
        self.video.as_ref().map(|v| v.sender.ssrc())
    }

    /// Statistics of the incoming video, if this stream carries video.
    pub fn remote_video_stats(&self) -> Option<&ReceiverStats> {
        self.video.as_ref().map(|v| &v.remote)
    }

    /// What generic NACK did on the video, if it uses NACK.
    pub fn video_nack_counts(&self) -> Option<NackCounts> {
        let n = self.video.as_ref()?.nack.as_ref()?;
        Some(NackCounts {
            nacks_sent: n.sent,
            repaired: n.requester.stats().recovered,
            resent: n.history.resent(),
        })
    }

    /// SRTP counters of the incoming direction (rejections by cause).
    pub fn srtp_stats(&self) -> srtp::Stats {
        self.rx.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::super::nack::REORDER_WAIT;
    use super::super::retransmit::MIN_HISTORY;
    use super::super::{OPUS_20MS_TICKS, OPUS_PAYLOAD_TYPE};
    use super::*;
    use crate::rtp::SenderClock;
    use crate::srtp::Profile;
    use crate::video::vp8::VP8_PAYLOAD_TYPE;

    /// A deterministic report schedule with a 1 s minimum.
    fn schedule(now: Instant, seed: u64) -> ReportSchedule {
        ReportSchedule::new(
            now,
            Duration::from_secs(1),
            DEFAULT_SESSION_BANDWIDTH,
            IntervalRng::from_seed(seed),
        )
    }

    fn pair(now: Instant) -> (MediaStream, MediaStream) {
        let (k1, s1, k2, s2) = ([1u8; 16], [2u8; 14], [3u8; 16], [4u8; 14]);
        let ctx =
            |k: &[u8], s: &[u8]| SrtpContext::new(Profile::AesCm128HmacSha1_80, k, s).unwrap();
        let a = MediaStream::new(
            now,
            RtpSender::new(0xA, OPUS_PAYLOAD_TYPE, 100, 5).unwrap(),
            ctx(&k1, &s1),
            ctx(&k2, &s2),
            (now, 10 << 32),
        )
        .with_rtcp_schedule(schedule(now, 1));
        let b = MediaStream::new(
            now,
            RtpSender::new(0xB, OPUS_PAYLOAD_TYPE, 9, 7).unwrap(),
            ctx(&k2, &s2),
            ctx(&k1, &s1),
            (now, 99 << 32),
        )
        .with_rtcp_schedule(schedule(now, 2));
        (a, b)
    }

    /// [`pair`] with video too: A's on SSRC 0xA1, B's on 0xB1.
    fn video_pair(now: Instant) -> (MediaStream, MediaStream) {
        let (a, b) = pair(now);
        let video = |ssrc| {
            RtpSender::new(ssrc, VP8_PAYLOAD_TYPE, 7, 9)
                .unwrap()
                .with_clock_rate(90_000)
        };
        (
            a.with_video(video(0xA1), Some(MIN_HISTORY)),
            b.with_video(video(0xB1), Some(MIN_HISTORY)),
        )
    }

    /// `from` sends its due RTCP at `at`; `to` receives it `delay` later.
    fn report(from: &mut MediaStream, to: &mut MediaStream, at: Instant, delay: Duration) {
        from.handle_timeout(at);
        while let Some(mut r) = from.poll_transmit() {
            let len = r.len();
            assert!(matches!(
                to.receive(at + delay, &mut r, len).unwrap(),
                Received::Control(_)
            ));
        }
    }

    #[test]
    fn audio_rtcp_and_rtt_over_srtp() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut buf = [0u8; 256];
        let delay = Duration::from_millis(40);
        let mut t = t0;
        for i in 0..600u32 {
            t = t0 + Duration::from_millis(20 * u64::from(i));
            let n = a
                .send_audio(t, &[i as u8; 90], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            assert_eq!(n, 12 + 90 + 10);
            if i % 50 == 7 {
                continue; // lost on the way
            }
            match b.receive(t + delay, &mut buf, n).unwrap() {
                Received::Audio(p) => assert_eq!(p.payload, &[i as u8; 90][..]),
                other => panic!("{other:?}"),
            }
            // RTCP each way whenever due, over the same one-way delay: A's
            // reports reach B at t + delay, B's reach A one delay later.
            report(&mut a, &mut b, t, delay);
            report(&mut b, &mut a, t + delay, delay);
        }
        assert_eq!(b.remote_stats().cumulative_lost(), 12);
        // A learnt the RTT from B's report block about its SR: 2 x 40 ms.
        let rtt = a.rtt().expect("rtt after an SR/RR round");
        assert!(
            (rtt.as_secs_f64() - 0.080).abs() < 0.002,
            "{rtt:?} at {t:?}"
        );
        // Tampering is refused and counted; the datagram is not media.
        let n = a
            .send_audio(t, &[1; 90], OPUS_20MS_TICKS, &mut buf)
            .unwrap();
        buf[20] ^= 1;
        assert!(matches!(
            b.receive(t, &mut buf, n),
            Err(StreamError::Srtp(srtp::Error::AuthFailed))
        ));
        assert!(matches!(
            b.receive(t, &mut [0u8, 1, 0, 0], 4),
            Err(StreamError::NotMedia(_))
        ));
    }

    /// Delivers what `from` has queued to `to` at `at`; the RTCP items.
    fn deliver_rtcp(from: &mut MediaStream, to: &mut MediaStream, at: Instant) -> Vec<RtcpItem> {
        let mut got = vec![];
        while let Some(mut p) = from.poll_transmit() {
            let len = p.len();
            if let Received::Control(items) = to.receive(at, &mut p, len).unwrap() {
                got.extend(items);
            }
        }
        got
    }

    #[test]
    fn a_lost_video_packet_is_asked_for_and_sent_again() {
        let t0 = Instant::now();
        let (mut a, mut b) = video_pair(t0);
        let mut buf = [0u8; 256];
        let n = a
            .send_audio(t0, &[0; 90], OPUS_20MS_TICKS, &mut buf)
            .unwrap();
        assert!(matches!(b.receive(t0, &mut buf, n), Ok(Received::Audio(_))));
        let mut sent = vec![];
        for i in 0..5u8 {
            let n = a
                .send_video(t0, &[0x90, i], 3000, i == 4, &mut buf)
                .unwrap();
            sent.push(buf[..n].to_vec());
        }
        // The middle one is lost.
        for i in [0, 1, 3, 4] {
            let mut d = sent[i].clone();
            let len = d.len();
            let Ok(Received::Video(p)) = b.receive(t0, &mut d, len) else {
                panic!("not video")
            };
            assert_eq!((p.header.ssrc, p.header.timestamp), (0xA1, 3000));
        }
        // Each kept in its own statistics.
        assert_eq!(b.remote_stats().ssrc(), Some(0xA));
        assert_eq!(b.remote_video_stats().and_then(|r| r.ssrc()), Some(0xA1));
        // B asks once reordering is ruled out; A sends the very datagram
        // again, half a round trip (the default 100 ms) later.
        let t1 = t0 + REORDER_WAIT;
        assert_eq!(b.poll_timeout(), t1);
        b.handle_timeout(t1);
        let missing = 7u16.wrapping_add(2);
        let got = deliver_rtcp(&mut b, &mut a, t1);
        assert_eq!(
            got,
            vec![RtcpItem::Nack {
                media_ssrc: 0xA1,
                lost: vec![missing]
            }]
        );
        let t2 = t1 + Duration::from_millis(50);
        assert!(
            a.retransmissions(t2, &[missing], 10).is_empty(),
            "over the byte budget"
        );
        let again = a.retransmissions(t2, &[missing, 500], usize::MAX);
        assert_eq!(
            again,
            vec![Retransmission {
                seq: missing,
                datagram: sent[2].clone(),
                payload: 2
            }],
            "500 was never sent"
        );
        assert!(
            a.retransmissions(t2, &[missing], usize::MAX).is_empty(),
            "on its way"
        );
        a.on_retransmitted(t2, missing);
        assert!(
            a.retransmissions(t2, &[missing], usize::MAX).is_empty(),
            "once a round trip"
        );
        let mut d = again[0].datagram.clone();
        let len = d.len();
        let Ok(Received::Video(p)) = b.receive(t2, &mut d, len) else {
            panic!("not video")
        };
        assert_eq!(p.payload, &[0x90, 2]);
        // Repaired, but still reported lost: the network lost it.
        assert_eq!(b.remote_video_stats().unwrap().cumulative_lost(), 1);
        let counts = |s: &MediaStream| s.video_nack_counts().unwrap();
        assert_eq!((counts(&b).nacks_sent, counts(&b).repaired), (1, 1));
        assert_eq!(counts(&a).resent, 1);
        b.request_pli().unwrap();
        assert_eq!(
            deliver_rtcp(&mut b, &mut a, t2),
            vec![RtcpItem::Pli { media_ssrc: 0xA1 }]
        );
    }

    #[test]
    fn without_nack_nothing_is_asked_for_or_kept() {
        let t0 = Instant::now();
        let (a, b) = pair(t0);
        let video = |ssrc| {
            RtpSender::new(ssrc, VP8_PAYLOAD_TYPE, 7, 9)
                .unwrap()
                .with_clock_rate(90_000)
        };
        let (mut a, mut b) = (
            a.with_video(video(0xA1), None),
            b.with_video(video(0xB1), None),
        );
        let mut buf = [0u8; 256];
        let mut sent = vec![];
        for i in 0..3u8 {
            let n = a
                .send_video(t0, &[0x90, i], 3000, i == 2, &mut buf)
                .unwrap();
            sent.push(buf[..n].to_vec());
        }
        for mut d in [sent[0].clone(), sent[2].clone()] {
            let len = d.len();
            b.receive(t0, &mut d, len).unwrap();
        }
        b.handle_timeout(t0 + REORDER_WAIT);
        assert!(
            deliver_rtcp(&mut b, &mut a, t0)
                .iter()
                .all(|i| !matches!(i, RtcpItem::Nack { .. }))
        );
        assert!(a.retransmissions(t0, &[8], usize::MAX).is_empty());
        assert_eq!(b.video_nack_counts(), None);
    }

    #[test]
    fn reports_carry_a_block_on_the_peers_video_with_its_loss() {
        let t0 = Instant::now();
        let (mut a, mut b) = video_pair(t0);
        let mut buf = [0u8; 256];
        for i in 0..40u32 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            let n = a
                .send_audio(t, &[1; 60], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            b.receive(t, &mut buf, n).unwrap();
            let n = a
                .send_video(t, &[0x90; 60], i * 1800, true, &mut buf)
                .unwrap();
            // One video packet in four is lost on the way.
            if i % 4 != 3 {
                b.receive(t, &mut buf, n).unwrap();
            }
        }
        let at = t0 + Duration::from_secs(10);
        b.handle_timeout(at);
        let mut blocks = vec![];
        while let Some(mut r) = b.poll_transmit() {
            let len = r.len();
            if let Received::Control(items) = a.receive(at, &mut r, len).unwrap() {
                for item in items {
                    if let RtcpItem::Report { block, .. } = item {
                        blocks.push((block.ssrc, block.fraction_lost));
                    }
                }
            }
        }
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0], (0xA, 0), "audio: nothing lost");
        // About a quarter (64/256) lost, counted from the first packet heard.
        assert_eq!(blocks[1].0, 0xA1);
        assert!((55..=70).contains(&blocks[1].1), "{blocks:?}");
    }

    /// The SRs on our audio and our video share one wallclock: from the
    /// peer's side, audio and a video frame captured at one instant map to
    /// one NTP time (what lip sync lines them up by).
    #[test]
    fn audio_and_video_sender_reports_share_the_wallclock() {
        let t0 = Instant::now();
        let (mut a, mut b) = video_pair(t0);
        let mut buf = [0u8; 256];
        let mut captures = vec![];
        for i in 0..300u32 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            let n = a
                .send_audio(t, &[1; 60], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            let Received::Audio(p) = b.receive(t, &mut buf, n).unwrap() else {
                panic!("not audio")
            };
            let audio_ts = p.header.timestamp;
            // A video frame every 40 ms, captured with the audio.
            if i % 2 == 0 {
                let ts = 77_000u32.wrapping_add(i * 1800);
                let n = a.send_video(t, &[0x90; 40], ts, true, &mut buf).unwrap();
                b.receive(t, &mut buf, n).unwrap();
                captures.push((audio_ts, ts));
            }
            let at = t + Duration::from_millis(3);
            a.handle_timeout(at);
            while let Some(mut r) = a.poll_transmit() {
                let len = r.len();
                b.receive(at, &mut r, len).unwrap();
            }
        }
        let audio = b.remote_stats().sender_clock().expect("an audio SR");
        let video = b
            .remote_video_stats()
            .and_then(ReceiverStats::sender_clock)
            .expect("a video SR");
        let wallclock = |c: SenderClock, ts: u32, rate: f64| {
            c.ntp_time as f64 / 4_294_967_296.0
                + f64::from(ts.wrapping_sub(c.rtp_time) as i32) / rate
        };
        for (audio_ts, video_ts) in captures {
            let skew = wallclock(video, video_ts, 90_000.0) - wallclock(audio, audio_ts, 48_000.0);
            assert!(skew.abs() < 0.000_1, "{skew} s apart");
        }
    }

    #[test]
    fn video_on_a_stream_without_it_is_refused() {
        let (mut a, _) = pair(Instant::now());
        let mut buf = [0u8; 64];
        assert!(matches!(
            a.send_video(Instant::now(), &[1], 0, true, &mut buf),
            Err(StreamError::NoVideo)
        ));
    }

    /// RFC 3550 §6.4.1: an SR's RTP timestamp is the instant of its NTP
    /// timestamp on the media clock. Every packet's timestamp, predicted
    /// from any SR's (NTP, RTP) pair and the packet's send time at 48 kHz,
    /// must be the one it carries, across a DTX pause too.
    #[test]
    fn sender_report_rtp_time_matches_the_media_clock() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut buf = [0u8; 256];
        let mut packets = vec![];
        let mut srs = vec![];
        for i in 0..500u32 {
            let t = t0 + Duration::from_millis(20 * u64::from(i));
            if (200..260).contains(&i) {
                a.skip(OPUS_20MS_TICKS); // DTX: time passes, nothing is sent
            } else {
                let n = a
                    .send_audio(t, &[1; 60], OPUS_20MS_TICKS, &mut buf)
                    .unwrap();
                let Received::Audio(p) = b.receive(t, &mut buf, n).unwrap() else {
                    panic!("not audio")
                };
                packets.push((t, p.header.timestamp));
            }
            // Reports fall between packets (7 ms after this one).
            let at = t + Duration::from_millis(7);
            a.handle_timeout(at);
            while let Some(mut r) = a.poll_transmit() {
                let len = r.len();
                if let Received::Control(items) = b.receive(at, &mut r, len).unwrap() {
                    for item in items {
                        if let RtcpItem::SenderInfo {
                            ntp_time, rtp_time, ..
                        } = item
                        {
                            srs.push((ntp_time, rtp_time));
                        }
                    }
                }
            }
        }
        assert!(srs.len() >= 5, "{} SRs in 10 s", srs.len());
        for &(ntp, rtp) in &srs {
            // A's NTP anchor is (t0, 10 << 32).
            let since_t0 = (ntp - (10 << 32)) as f64 / 4_294_967_296.0;
            for &(t, ts) in &packets {
                let dt = (t - t0).as_secs_f64() - since_t0;
                let predicted = (i64::from(rtp) + (dt * 48_000.0).round() as i64) as u32;
                let err = ts.wrapping_sub(predicted) as i32;
                assert!(
                    err.abs() <= 1,
                    "SR ({ntp:x}, {rtp}) vs packet {ts}: {err} ticks"
                );
            }
        }
    }
}
