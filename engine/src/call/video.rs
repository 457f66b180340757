//! The video half of a secured call: frames -> VP8 (rate from the peer's
//! loss reports, key frames on request) -> RFC 7741 payloads on the way
//! out; payloads -> whole frames -> VP8 decode on the way in. The RTP and
//! SRTP around it are the audio stream's ([`super::media`]), on a video
//! SSRC of its own.

use super::media::MediaError;
use super::stats::{InboundVideo, OutboundVideo};
use super::sync::{AvSync, Due};
use crate::rtp::retransmit::Retransmission;
use crate::video::VideoConfig;
use crate::video::assembler::{
    AssembledFrame, AssemblerLimits, FrameAssembler, KEYFRAME_REQUEST_INTERVAL,
};
use crate::video::pace::VideoPacer;
use crate::video::vp8::{VIDEO_CLOCK_RATE, Vp8Packetizer};
use sotto_codecs::video::{VideoDecoder, VideoEncoder, VideoFrame};
use sotto_codecs::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder, keyframe_dimensions};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Decoded frames kept for the application; it shows the newest, so the
/// oldest goes when it falls behind.
const MAX_DECODED: usize = 3;
/// Video datagrams the pacer holds: a few key frames at the highest bitrate.
const MAX_PACED: usize = 1024;
/// Shortest time between two key frames we send: a key frame costs
/// several inter frames' bits. A request inside it is served when it ends.
const MIN_KEYFRAME_GAP: Duration = Duration::from_millis(200);
/// Longest a whole frame waits for the audio captured with it: beyond
/// that the audio is working off an outage's backlog, and a picture out
/// of step is better than a frozen one.
const MAX_SYNC_HOLD: Duration = Duration::from_secs(1);
/// Most frames, and bytes of them, waiting for their audio (a second at
/// 120 fps, or at 32 Mbit/s); past either the oldest is shown early.
const MAX_HELD: usize = 120;
const MAX_HELD_BYTES: usize = 4 << 20;

/// Caps retransmissions at the encoder's bitrate over any second, as
/// libwebrtc's retransmission rate limiter does: on a congested link NACKs
/// must not add more than the video itself, and a peer asking for every
/// packet it can name, over and over, gets no more than that.
#[derive(Debug, Default)]
struct RetransmitBudget {
    /// Bytes that may be sent again now.
    bytes: f64,
    last: Option<Instant>,
}

impl RetransmitBudget {
    /// Bytes of datagrams that may be sent again at `now`, at `bitrate`.
    fn available(&mut self, now: Instant, bitrate: u32) -> usize {
        let per_second = f64::from(bitrate) / 8.0;
        let dt = self
            .last
            .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.bytes = (self.bytes + dt * per_second).min(per_second);
        self.last = Some(now);
        self.bytes as usize
    }

    fn spend(&mut self, bytes: usize) {
        self.bytes -= bytes as f64;
    }
}

/// The encoder bitrate after a loss report of `fraction_lost` (1/256,
/// RFC 3550 §6.4.1), following the loss-based controller of Google
/// Congestion Control (draft-ietf-rmcat-gcc-02 §6): over 10 % loss cut by
/// half the loss, under 2 % grow by 5 %, in between hold.
fn next_bitrate(current: u32, fraction_lost: u8, cfg: &VideoConfig) -> u32 {
    let p = f64::from(fraction_lost) / 256.0;
    let next = if p > 0.10 {
        f64::from(current) * (1.0 - 0.5 * p)
    } else if p < 0.02 {
        f64::from(current) * 1.05
    } else {
        f64::from(current)
    };
    (next as u32).clamp(cfg.min_bitrate, cfg.max_bitrate)
}

/// Pixels in a picture of `(width, height)`.
fn pixels((w, h): (u32, u32)) -> u64 {
    u64::from(w) * u64::from(h)
}

/// Which of our streams a loss report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossOf {
    /// Our audio, which shares the path: used until the peer reports on
    /// the video itself.
    Audio,
    /// Our video.
    Video,
}

/// What the pacer carries with each datagram, for the statistics.
#[derive(Debug, Clone, Copy)]
struct Paced {
    /// RTP payload bytes.
    payload: usize,
    /// The sequence number of a retransmission the peer asked for.
    resent: Option<u16>,
}

/// A whole received frame waiting for the audio captured with it.
struct Held {
    frame: AssembledFrame,
    /// When it came out of the assembler.
    since: Instant,
}

/// One encoded frame, split into payloads, at its RTP timestamp.
pub(crate) struct OutgoingFrame {
    pub timestamp: u32,
    pub payloads: Vec<Vec<u8>>,
}

/// The capture clock of the video SSRC: 90 kHz from the first frame, from
/// a random start (RFC 3550 §5.1), strictly rising so that two frames
/// never share a timestamp (the receiver would take them for one).
struct CaptureClock {
    base: u32,
    start: Option<Instant>,
    last: Option<u64>,
}

impl CaptureClock {
    /// Capture time of a frame taken at `now`, from the first frame.
    fn captured(&mut self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.start.get_or_insert(now))
    }

    fn stamp(&mut self, now: Instant) -> u32 {
        let start = *self.start.get_or_insert(now);
        let ticks = (now.saturating_duration_since(start).as_nanos() * u128::from(VIDEO_CLOCK_RATE)
            / 1_000_000_000) as u64;
        let ticks = self.last.map_or(ticks, |l| ticks.max(l + 1));
        self.last = Some(ticks);
        self.base.wrapping_add(ticks as u32)
    }
}

/// Both directions of a call's video.
pub(crate) struct Video {
    cfg: VideoConfig,
    encoder: Option<Vp8Encoder>,
    packetizer: Vp8Packetizer,
    clock: CaptureClock,
    bitrate: u32,
    /// Whether the peer reports on our video (then its reports alone move
    /// the bitrate: a link can drop video's bursts and let audio through).
    video_reported: bool,
    pacer: VideoPacer<Paced>,
    resend_budget: RetransmitBudget,
    /// When the next frame may be encoded (a faster camera is thinned).
    next_due: Option<Instant>,
    key_wanted: bool,
    last_key: Option<Instant>,
    assembler: FrameAssembler,
    /// Whole frames, oldest first, not yet due (lip sync).
    held: VecDeque<Held>,
    held_bytes: usize,
    decoder: Vp8Decoder,
    /// The decoder failed on a frame since the last key frame request.
    decode_failed: bool,
    last_request: Option<Instant>,
    decoded: VecDeque<VideoFrame>,
    out: OutboundVideo,
    inbound: InboundVideo,
}

impl Video {
    pub(crate) fn new(cfg: &VideoConfig) -> Result<Self, MediaError> {
        cfg.validate()?;
        let random = || u32::from_be_bytes(crate::zrtp::crypto::random());
        Ok(Self {
            cfg: cfg.clone(),
            encoder: None,
            packetizer: Vp8Packetizer::new(random() as u16),
            clock: CaptureClock {
                base: random(),
                start: None,
                last: None,
            },
            bitrate: cfg.start_bitrate,
            video_reported: false,
            pacer: VideoPacer::new(cfg.start_bitrate, MAX_PACED),
            resend_budget: RetransmitBudget::default(),
            next_due: None,
            key_wanted: false,
            last_key: None,
            assembler: FrameAssembler::new(AssemblerLimits::default()),
            held: VecDeque::new(),
            held_bytes: 0,
            decoder: Vp8Decoder::new()?,
            decode_failed: false,
            last_request: None,
            decoded: VecDeque::new(),
            out: OutboundVideo {
                target_bitrate: cfg.start_bitrate,
                ..OutboundVideo::default()
            },
            inbound: InboundVideo::default(),
        })
    }

    /// Whether a frame captured at `now` is encoded: at most
    /// [`VideoConfig::fps`] a second. Every frame costs bits at any
    /// quality, so a camera faster than that would overshoot the bitrate
    /// (a 60 fps camera sent twice the target); its frames are thinned
    /// evenly. A little early is on time: capture times jitter.
    fn admit(&mut self, now: Instant) -> bool {
        let interval = Duration::from_secs(1) / self.cfg.fps;
        if self.next_due.is_some_and(|due| now + interval / 6 < due) {
            return false;
        }
        // Keeps the cadence, unless the camera paused for longer.
        let base = self
            .next_due
            .filter(|due| *due + interval >= now)
            .unwrap_or(now);
        self.next_due = Some(base + interval);
        true
    }

    /// Encodes one camera frame captured at `now`. A frame of a new size
    /// starts a new encoder (and so a key frame).
    pub(crate) fn encode(
        &mut self,
        now: Instant,
        frame: &VideoFrame,
    ) -> Result<Option<OutgoingFrame>, MediaError> {
        let size = (frame.width(), frame.height());
        if pixels(size) > u64::from(self.cfg.max_pixels) {
            self.out.frames_skipped += 1;
            return Err(MediaError::FrameTooLarge {
                width: size.0,
                height: size.1,
                max_pixels: self.cfg.max_pixels,
            });
        }
        if !self.admit(now) {
            self.out.frames_skipped += 1;
            return Ok(None);
        }
        if (self.out.frame_width, self.out.frame_height) != size || self.encoder.is_none() {
            self.encoder = Some(Vp8Encoder::new(Vp8Config {
                width: size.0,
                height: size.1,
                fps: self.cfg.fps,
                bitrate: self.bitrate,
                ..Vp8Config::default()
            })?);
            (self.out.frame_width, self.out.frame_height) = size;
        }
        let key_due = self.key_wanted
            && self
                .last_key
                .is_none_or(|t| now.saturating_duration_since(t) >= MIN_KEYFRAME_GAP);
        let Some(enc) = self.encoder.as_mut() else {
            return Ok(None);
        };
        let captured = self.clock.captured(now);
        let Some(encoded) = enc
            .encode(frame, captured, key_due)
            .inspect_err(|_| self.out.frames_skipped += 1)?
        else {
            self.out.frames_skipped += 1;
            return Ok(None);
        };
        let timestamp = self.clock.stamp(now);
        self.out.frames_encoded += 1;
        if encoded.keyframe {
            self.out.key_frames_encoded += 1;
            self.key_wanted = false;
            self.last_key = Some(now);
        }
        let payloads = self
            .packetizer
            .packetize(&encoded.data, self.cfg.max_payload)?;
        Ok(Some(OutgoingFrame {
            timestamp,
            payloads,
        }))
    }

    /// One video RTP packet from the peer (after SRTP). Malformed, late
    /// and duplicate packets are counted by the assembler.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        sync: &AvSync,
    ) {
        self.inbound.packets_received += 1;
        self.inbound.bytes_received += payload.len() as u64;
        let _ = self.assembler.insert(now, seq, timestamp, marker, payload);
        self.take_assembled(now, sync);
        self.release(now, sync);
    }

    /// Moves whole frames from the assembler to wait for their audio; past
    /// the bounds on what waits, the oldest are shown at once.
    fn take_assembled(&mut self, now: Instant, sync: &AvSync) {
        while let Some(frame) = self.assembler.poll_frame() {
            self.inbound.frames_received += 1;
            // Refused before libvpx sizes its buffers for it (and before it
            // waits); the inter frames after it then fail for want of a
            // reference.
            if keyframe_dimensions(&frame.data)
                .is_some_and(|size| pixels(size) > u64::from(self.cfg.max_pixels))
            {
                self.inbound.frames_dropped += 1;
                continue;
            }
            self.held_bytes += frame.data.len();
            self.held.push_back(Held { frame, since: now });
            while self.held.len() > MAX_HELD || self.held_bytes > MAX_HELD_BYTES {
                let Some(h) = self.held.pop_front() else {
                    break;
                };
                self.held_bytes -= h.frame.data.len();
                let audio_at = sync.render_at(h.frame.timestamp);
                self.decode(now, h, audio_at);
            }
        }
    }

    /// When a waiting frame is due: when the audio captured with it plays
    /// (or, after a talkspurt's start, once that plays), but not later
    /// than [`MAX_SYNC_HOLD`] after it was whole; at once while the peer's
    /// clocks are unknown.
    fn due(h: &Held, sync: &AvSync) -> Instant {
        let latest = h.since + MAX_SYNC_HOLD;
        match sync.due(h.frame.timestamp) {
            Due::Now => h.since,
            Due::At(t) => t.clamp(h.since, latest),
            // Looked at again as the audio plays.
            Due::AfterAudio => latest,
        }
    }

    /// Decodes the waiting frames that are due at `now`, in order.
    pub(crate) fn release(&mut self, now: Instant, sync: &AvSync) {
        while self.held.front().is_some_and(|h| Self::due(h, sync) <= now) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= h.frame.data.len();
            let audio_at = sync.render_at(h.frame.timestamp);
            self.decode(now, h, audio_at);
        }
    }

    /// Decodes a frame shown at `now` that the audio captured with it
    /// plays at `audio_at` (if known).
    fn decode(&mut self, now: Instant, h: Held, audio_at: Option<Instant>) {
        let f = h.frame;
        match self.decoder.decode(&f.data) {
            Ok(Some(frame)) => {
                // A good frame: the decoder is back (a key frame came).
                self.decode_failed = false;
                self.inbound.frames_decoded += 1;
                self.inbound.key_frames_decoded += u64::from(f.keyframe);
                (self.inbound.frame_width, self.inbound.frame_height) =
                    (frame.width(), frame.height());
                self.inbound.total_sync_delay +=
                    now.saturating_duration_since(h.since).as_secs_f64();
                if let Some(at) = audio_at {
                    let late = now.saturating_duration_since(at).as_secs_f64()
                        - at.saturating_duration_since(now).as_secs_f64();
                    self.inbound.av_offset_ms = Some(late * 1000.0);
                }
                if self.decoded.len() >= MAX_DECODED {
                    self.decoded.pop_front();
                    self.inbound.frames_dropped += 1;
                }
                self.decoded.push_back(frame);
            }
            Ok(None) => {}
            Err(_) => {
                // The frames after it refer to a picture we do not
                // have: only a key frame gets us back.
                self.inbound.frames_dropped += 1;
                self.decode_failed = true;
            }
        }
    }

    /// Whether to send the peer a key frame request (PLI) now. The
    /// assembler paces its own; after a decoder failure every following
    /// frame fails too until the key frame comes, so those are paced here.
    pub(crate) fn take_keyframe_request(&mut self, now: Instant) -> bool {
        let decoder_wants = self.decode_failed
            && self
                .last_request
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        let want = self.assembler.take_keyframe_request() || decoder_wants;
        if want {
            self.decode_failed = false;
            self.last_request = Some(now);
            self.inbound.pli_count += 1;
        }
        want
    }

    /// The peer asked for a key frame.
    pub(crate) fn on_pli(&mut self) {
        self.out.pli_count += 1;
        self.key_wanted = true;
    }

    /// A loss report of the peer's: moves the encoder's bitrate. Reports
    /// on the audio count only while none has come on the video.
    pub(crate) fn on_loss(&mut self, fraction_lost: u8, of: LossOf) {
        match of {
            LossOf::Video => self.video_reported = true,
            LossOf::Audio if self.video_reported => return,
            LossOf::Audio => {}
        }
        let next = next_bitrate(self.bitrate, fraction_lost, &self.cfg);
        if next == self.bitrate {
            return;
        }
        if let Some(enc) = self.encoder.as_mut()
            && enc.set_bitrate(next).is_err()
        {
            return;
        }
        self.bitrate = next;
        self.pacer.set_bitrate(next);
        self.out.target_bitrate = next;
    }

    /// Queues an SRTP datagram of ours, carrying `payload` bytes of
    /// video, for the pacer.
    pub(crate) fn pace(&mut self, now: Instant, datagram: Vec<u8>, payload: usize) {
        let tag = Paced {
            payload,
            resent: None,
        };
        self.pacer.push(now, datagram, tag);
    }

    /// Bytes of datagrams that may be sent again at `now` (see
    /// [`RetransmitBudget`]).
    pub(crate) fn resend_allowance(&mut self, now: Instant) -> usize {
        self.resend_budget.available(now, self.bitrate)
    }

    /// Queues the retransmissions a NACK of the peer's asked for (within
    /// [`resend_allowance`](Self::resend_allowance)) ahead of new video:
    /// the peer's picture waits for them.
    pub(crate) fn resend(&mut self, now: Instant, packets: Vec<Retransmission>) {
        self.out.nack_count += 1;
        self.resend_budget
            .spend(packets.iter().map(|r| r.datagram.len()).sum());
        // In reverse, so that they leave in the order asked for.
        for r in packets.into_iter().rev() {
            let tag = Paced {
                payload: r.payload,
                resent: Some(r.seq),
            };
            self.pacer.push_first(now, r.datagram, tag);
        }
    }

    /// Waits this long for a missing packet before giving its frame up
    /// (longer with NACK: the retransmission takes a round trip).
    pub(crate) fn set_recovery_wait(&mut self, wait: Duration) {
        self.assembler.set_max_wait(wait);
    }

    /// The peer's sequence number up to which the assembler has handed out
    /// or given up packets: none of them is worth asking for.
    pub(crate) fn given_up_through(&self) -> Option<u16> {
        self.assembler.given_up_through()
    }

    /// The next paced datagram due at `now`, counted as sent, and its
    /// sequence number if it is a retransmission.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<(Vec<u8>, Option<u16>)> {
        let (d, tag) = self.pacer.poll(now)?;
        self.out.packets_sent += 1;
        self.out.bytes_sent += tag.payload as u64;
        if tag.resent.is_some() {
            self.out.retransmitted_packets_sent += 1;
            self.out.retransmitted_bytes_sent += tag.payload as u64;
        }
        Some((d, tag.resent))
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, sync: &AvSync) {
        self.assembler.handle_timeout(now);
        self.take_assembled(now, sync);
        self.release(now, sync);
    }

    pub(crate) fn poll_timeout(&self, sync: &AvSync) -> Option<Instant> {
        // A decoder failure not yet answered with a request (paced) asks
        // again when its pace allows, frames or not.
        let retry = self
            .last_request
            .filter(|_| self.decode_failed)
            .map(|t| t + KEYFRAME_REQUEST_INTERVAL);
        [
            self.assembler.poll_timeout(),
            self.pacer.poll_timeout(),
            retry,
            self.held.front().map(|h| Self::due(h, sync)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The oldest decoded frame not yet taken.
    pub(crate) fn poll_frame(&mut self) -> Option<VideoFrame> {
        self.decoded.pop_front()
    }

    pub(crate) fn stats(&self) -> (InboundVideo, OutboundVideo) {
        let mut inbound = self.inbound.clone();
        let a = self.assembler.stats();
        inbound.frames_dropped += a.frames_dropped;
        (inbound, self.out.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::SenderClock;

    #[test]
    fn the_bitrate_falls_with_heavy_loss_and_climbs_back_slowly() {
        let cfg = VideoConfig::default();
        // 25 % loss: cut by 12.5 %.
        assert_eq!(next_bitrate(400_000, 64, &cfg), 350_000);
        // 5 % (13/256): held.
        assert_eq!(next_bitrate(400_000, 13, &cfg), 400_000);
        assert_eq!(next_bitrate(400_000, 0, &cfg), 420_000);
        assert_eq!(next_bitrate(cfg.max_bitrate, 0, &cfg), cfg.max_bitrate);
        assert_eq!(next_bitrate(cfg.min_bitrate, 255, &cfg), cfg.min_bitrate);
    }

    #[test]
    fn retransmissions_get_at_most_the_bitrate_over_a_second() {
        let mut b = RetransmitBudget::default();
        let t0 = Instant::now();
        // 300 kbit/s: 37 500 bytes a second, and no more saved up.
        assert_eq!(b.available(t0, 300_000), 37_500);
        b.spend(37_000);
        assert_eq!(b.available(t0, 300_000), 500);
        assert_eq!(b.available(t0 + Duration::from_millis(100), 300_000), 4_250);
        assert_eq!(b.available(t0 + Duration::from_secs(10), 300_000), 37_500);
    }

    #[test]
    fn frames_the_decoder_refuses_ask_for_a_key_frame_at_most_every_interval() {
        let mut v = Video::new(&VideoConfig::default()).unwrap();
        let mut pk = Vp8Packetizer::new(1);
        // A key frame header (P bit 0, start code, 64x48) over noise.
        let mut bad = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 64, 0, 48, 0];
        bad.extend((0..200u32).map(|i| (i * 7919 % 251) as u8));
        let t0 = Instant::now();
        let mut send = |v: &mut Video, seq: u16, at: Duration| {
            let p = pk.packetize(&bad, 1_100).unwrap();
            v.receive(
                t0 + at,
                seq,
                u32::from(seq) * 3000,
                true,
                &p[0],
                &unsynced(),
            );
        };
        send(&mut v, 1, Duration::ZERO);
        assert_eq!(v.poll_frame(), None);
        assert!(v.take_keyframe_request(t0), "asked at once");
        send(&mut v, 2, Duration::from_millis(33));
        assert!(!v.take_keyframe_request(t0 + Duration::from_millis(33)));
        assert!(v.take_keyframe_request(t0 + KEYFRAME_REQUEST_INTERVAL));
        let (inbound, _) = v.stats();
        assert_eq!((inbound.frames_received, inbound.frames_decoded), (2, 0));
        assert_eq!((inbound.frames_dropped, inbound.pli_count), (2, 2));
    }

    #[test]
    fn pictures_over_the_size_limit_are_refused_both_ways() {
        let cfg = VideoConfig {
            max_pixels: 640 * 480,
            ..VideoConfig::default()
        };
        let mut v = Video::new(&cfg).unwrap();
        let t0 = Instant::now();
        let big = VideoFrame::black(800, 600).unwrap();
        assert!(matches!(
            v.encode(t0, &big),
            Err(MediaError::FrameTooLarge { width: 800, .. })
        ));
        // A peer's key frame declaring 4000x3000 is dropped undecoded: no
        // decoder failure, so no key frame request for more of the same.
        let mut header = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        header.extend(4000u16.to_le_bytes());
        header.extend(3000u16.to_le_bytes());
        header.extend([0u8; 100]);
        let p = Vp8Packetizer::new(1).packetize(&header, 1_100).unwrap();
        v.receive(t0, 1, 3000, true, &p[0], &unsynced());
        assert_eq!(v.poll_frame(), None);
        let (inbound, _) = v.stats();
        assert_eq!((inbound.frames_received, inbound.frames_dropped), (1, 1));
        assert!(!v.take_keyframe_request(t0));
    }

    /// No reports from the peer yet: frames are shown once whole.
    fn unsynced() -> AvSync {
        AvSync::new(48_000, 90_000)
    }

    /// Feeds a whole frame of the sender's to the receiver at `at`.
    fn deliver(rx: &mut Video, f: &OutgoingFrame, seq: &mut u16, at: Instant, sync: &AvSync) {
        let last = f.payloads.len() - 1;
        for (i, p) in f.payloads.iter().enumerate() {
            rx.receive(at, *seq, f.timestamp, i == last, p, sync);
            *seq = seq.wrapping_add(1);
        }
    }

    #[test]
    fn frames_wait_for_the_audio_captured_with_them_but_not_past_the_hold() {
        let cfg = VideoConfig::default();
        let (mut tx, mut rx) = (Video::new(&cfg).unwrap(), Video::new(&cfg).unwrap());
        let t0 = Instant::now();
        let frames: Vec<_> = (0..4u32)
            .map(|n| {
                let at = t0 + Duration::from_millis(33) * n;
                let pic = VideoFrame::test_pattern(160, 120, n).unwrap();
                tx.encode(at, &pic).unwrap().expect("encoded")
            })
            .collect();
        // The peer's SRs: its audio's RTP 0 and the first frame were
        // captured at the same wallclock instant.
        let mut sync = unsynced();
        let ntp = 1000u64 << 32;
        sync.set_clocks(
            Some(SenderClock {
                ntp_time: ntp,
                rtp_time: 0,
            }),
            Some(SenderClock {
                ntp_time: ntp,
                rtp_time: frames[0].timestamp,
            }),
        );
        // At t0 the speaker gets audio captured 100 ms before that.
        sync.on_audio_played(t0, 0u32.wrapping_sub(4_800));
        let mut seq = 1;
        deliver(&mut rx, &frames[0], &mut seq, t0, &sync);
        assert!(rx.poll_frame().is_none(), "waits for its audio");
        let due = t0 + Duration::from_millis(100);
        assert_eq!(rx.poll_timeout(&sync), Some(due));
        rx.release(due - Duration::from_millis(1), &sync);
        assert!(rx.poll_frame().is_none());
        rx.release(due, &sync);
        assert!(rx.poll_frame().is_some());
        let (inbound, _) = rx.stats();
        assert_eq!(inbound.av_offset_ms, Some(0.0));
        assert!((inbound.total_sync_delay - 0.1).abs() < 1e-9);
        // The audio falls 2.5 s behind (an outage's backlog): the next
        // frame waits a second at most, and is shown 1.5 s ahead of its audio.
        sync.on_audio_played(due, 0u32.wrapping_sub(120_000));
        deliver(&mut rx, &frames[1], &mut seq, due, &sync);
        assert_eq!(rx.poll_timeout(&sync), Some(due + MAX_SYNC_HOLD));
        rx.handle_timeout(due + MAX_SYNC_HOLD, &sync);
        assert!(rx.poll_frame().is_some());
        let offset = rx.stats().0.av_offset_ms.unwrap();
        assert!((offset + 1_533.0).abs() < 1.0, "{offset}");
        // Past 3 s behind, or without the peer's clocks, a frame is shown
        // as soon as it is whole.
        let later = due + MAX_SYNC_HOLD;
        sync.on_audio_played(later, 0u32.wrapping_sub(5 * 48_000));
        deliver(&mut rx, &frames[2], &mut seq, later, &sync);
        assert!(rx.poll_frame().is_some());
        deliver(&mut rx, &frames[3], &mut seq, later, &unsynced());
        assert!(rx.poll_frame().is_some());
        assert_eq!(rx.stats().0.frames_decoded, 4);
    }

    #[test]
    fn reports_on_the_video_take_over_from_those_on_the_audio() {
        let mut v = Video::new(&VideoConfig::default()).unwrap();
        v.on_loss(0, LossOf::Audio);
        assert_eq!(v.bitrate, 315_000, "audio's report, while none on video");
        v.on_loss(64, LossOf::Video);
        assert_eq!(v.bitrate, 275_625);
        v.on_loss(0, LossOf::Audio);
        assert_eq!(v.bitrate, 275_625, "audio's reports no longer count");
    }

    #[test]
    fn capture_timestamps_follow_the_clock_and_never_repeat() {
        let t0 = Instant::now();
        let mut c = CaptureClock {
            base: u32::MAX - 1000,
            start: None,
            last: None,
        };
        let a = c.stamp(t0);
        let b = c.stamp(t0 + Duration::from_millis(33));
        assert_eq!(b.wrapping_sub(a), 2970);
        assert_eq!(c.stamp(t0 + Duration::from_millis(33)).wrapping_sub(b), 1);
    }
}
