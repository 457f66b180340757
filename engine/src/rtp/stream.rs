//! One secured audio stream, both directions: RTP numbering + SRTP on the
//! way out; demux, SRTP, RTP parsing and statistics on the way in; RTCP
//! (SR/RR, NACK, PLI) over SRTCP on the same port. Sans-IO: datagrams in,
//! datagrams out, time passed in.

use super::{ReceiverStats, RtpError, RtpPacket, RtpSender, parse};
use crate::demux::{PacketKind, classify};
use crate::rtcp::{self, Reporter, RtcpError, RtcpItem};
use crate::srtp::{self, SrtpContext};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RTCP report interval: RFC 3550 §6.2's 5 s minimum, fixed (one stream, two parties).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Outgoing RTCP datagrams held until polled.
const MAX_QUEUED_RTCP: usize = 16;

/// Why an incoming datagram was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// SRTP/SRTCP refused it (authentication, replay, malformed).
    #[error("SRTP: {0}")]
    Srtp(#[from] srtp::Error),
    /// It decrypted but is not valid RTP.
    #[error(transparent)]
    Rtp(#[from] RtpError),
    /// It decrypted but is not valid RTCP.
    #[error(transparent)]
    Rtcp(#[from] RtcpError),
    /// Not RTP or RTCP (the caller routes STUN/ZRTP elsewhere).
    #[error("not media: {0:?}")]
    NotMedia(PacketKind),
}

/// An accepted incoming datagram.
#[derive(Debug)]
pub enum Received<'a> {
    /// An audio packet, decrypted in the caller's buffer.
    Audio(RtpPacket<'a>),
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
    next_rtcp: Instant,
    rtcp_interval: Duration,
    outbox: VecDeque<Vec<u8>>,
}

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
            next_rtcp: now + RTCP_INTERVAL,
            rtcp_interval: RTCP_INTERVAL,
            outbox: VecDeque::new(),
        }
    }

    /// Uses `interval` between RTCP reports instead of [`RTCP_INTERVAL`]
    /// (tests and short calls).
    pub fn with_rtcp_interval(mut self, now: Instant, interval: Duration) -> Self {
        self.rtcp_interval = interval;
        self.next_rtcp = now + interval;
        self
    }

    /// Builds and protects one audio packet covering `duration` RTP ticks
    /// into `out` (which needs room for header, payload and tag); returns its length.
    pub fn send_audio(
        &mut self,
        payload: &[u8],
        duration: u32,
        out: &mut [u8],
    ) -> Result<usize, StreamError> {
        let n = self.sender.packetize(payload, duration, out)?;
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
                self.remote.on_packet(now, &p.header);
                Ok(Received::Audio(p))
            }
            PacketKind::Rtcp => {
                let n = self.rx.unprotect_rtcp_in_place(buf, len)?;
                let items = rtcp::parse(&buf[..n])?;
                self.reporter.on_rtcp(now, &items, Some(&mut self.remote));
                Ok(Received::Control(items))
            }
            other => Err(StreamError::NotMedia(other)),
        }
    }

    /// When the next RTCP report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_rtcp
    }

    /// Queues an SR (or RR before we have sent) when one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_rtcp {
            return;
        }
        self.next_rtcp = now + self.rtcp_interval;
        let sender = (self.sender.packets_sent() > 0).then_some(&self.sender);
        if let Ok(report) = self.reporter.build(now, sender, Some(&mut self.remote)) {
            self.queue_rtcp(report);
        }
    }

    /// Asks the remote sender to retransmit `lost` (RFC 4585 generic NACK).
    pub fn request_nack(&mut self, lost: &[u16]) -> Result<(), StreamError> {
        let media = self.remote.ssrc().unwrap_or(0);
        let pkt = rtcp::build_nack(self.sender.ssrc(), media, lost)?;
        self.queue_rtcp(pkt);
        Ok(())
    }

    /// Asks the remote sender for a key frame (RFC 4585 PLI).
    pub fn request_pli(&mut self) -> Result<(), StreamError> {
        let media = self.remote.ssrc().unwrap_or(0);
        let pkt = rtcp::build_pli(self.sender.ssrc(), media)?;
        self.queue_rtcp(pkt);
        Ok(())
    }

    fn queue_rtcp(&mut self, mut pkt: Vec<u8>) {
        if self.outbox.len() < MAX_QUEUED_RTCP && self.tx.protect_rtcp(&mut pkt).is_ok() {
            self.outbox.push_back(pkt);
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

    /// SRTP counters of the incoming direction (rejections by cause).
    pub fn srtp_stats(&self) -> srtp::Stats {
        self.rx.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OPUS_20MS_TICKS, OPUS_PAYLOAD_TYPE};
    use super::*;
    use crate::srtp::Profile;

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
        );
        let b = MediaStream::new(
            now,
            RtpSender::new(0xB, OPUS_PAYLOAD_TYPE, 9, 7).unwrap(),
            ctx(&k2, &s2),
            ctx(&k1, &s1),
            (now, 99 << 32),
        );
        (a, b)
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
                .send_audio(&[i as u8; 90], OPUS_20MS_TICKS, &mut buf)
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
        let n = a.send_audio(&[1; 90], OPUS_20MS_TICKS, &mut buf).unwrap();
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

    #[test]
    fn nack_and_pli_reach_the_sender() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut buf = [0u8; 256];
        let n = a.send_audio(&[0; 90], OPUS_20MS_TICKS, &mut buf).unwrap();
        let _ = b.receive(t0, &mut buf, n);
        b.request_nack(&[101, 102]).unwrap();
        b.request_pli().unwrap();
        let mut got = vec![];
        while let Some(mut p) = b.poll_transmit() {
            let len = p.len();
            if let Received::Control(items) = a.receive(t0, &mut p, len).unwrap() {
                got.extend(items);
            }
        }
        assert_eq!(
            got,
            vec![
                RtcpItem::Nack {
                    media_ssrc: 0xA,
                    lost: vec![101, 102]
                },
                RtcpItem::Pli { media_ssrc: 0xA }
            ]
        );
    }
}
