//! The audio pipeline of a secured call: PCM -> Opus (FEC, DTX, loss hint
//! from RTCP) -> RTP -> SRTP on the way out; SRTP -> RTP -> jitter buffer
//! -> Opus decode / FEC / PLC -> 10 ms PCM on the way in.
//!
//! When both sides set video up, the same SRTP session also carries it
//! (see `call::video`).
//!
//! It exists only once ZRTP is Secure (it is built from the SRTP keys), so
//! no RTP can leave before then.

use super::stats::{InboundRtp, OutboundRtp, VideoStats};
use super::sync::AvSync;
use super::video::{LossOf, Video};
use crate::rtcp::{IntervalRng, ReportSchedule, RtcpItem, reduced_minimum};
use crate::rtp::nack::recovery_wait;
use crate::rtp::retransmit::history_for;
use crate::rtp::{MediaStream, OPUS_PAYLOAD_TYPE, Received, ReceiverStats, RtpSender, StreamError};
use crate::srtp::{self, SrtpContext};
use crate::video::VideoConfig;
use crate::video::vp8::{VIDEO_CLOCK_RATE, VP8_PAYLOAD_TYPE};
use crate::zrtp::SecureInfo;
use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::video::VideoFrame;
use sotto_codecs::{CodecError, Encoder, FrameDuration};
use sotto_jitter::{
    Event as JitterEvent, JitterBuffer, JitterConfig, JitterError, Operation, RtpPacket,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Audio sample rate in and out of the pipeline (mono).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one encoded frame (20 ms).
pub const FRAME_SAMPLES: usize = 960;
/// The duration of one such frame.
const FRAME: Duration = Duration::from_millis(20);
/// The duration of one pull.
const PULL: Duration = Duration::from_millis(10);
/// Samples in one pull (10 ms).
pub const PULL_SAMPLES: usize = 480;
/// Largest SRTP datagram we build: RTP header, Opus payload, tag.
const MAX_DATAGRAM: usize = 1500;
/// Outgoing datagrams held until polled (video waits in its pacer first).
const MAX_OUTBOX: usize = 64;
/// Encoder packet-loss hint before the first RTCP report (%).
const INITIAL_LOSS_HINT: u8 = 5;
/// The encoder's next packet-loss hint (%) after a report of
/// `fraction_lost` (in 1/256, RFC 3550 §6.4.1) for the last interval:
/// up at once to the loss reported, rounded up, but down by at most half
/// a report (about 5 s). Loss on mobile links comes in bursts, and a
/// report of a quiet interval is no sign the next will be: at a hint of 0
/// libopus stops sending FEC altogether, so a burst just after would find
/// none. Halving rather than a point a report: on a clean link FEC (which
/// costs encoder time and bits of the primary encoding) is off within a
/// few reports. Capped at 50: past that FEC cannot keep up anyway, and
/// the bits are better left to the primary encoding.
fn loss_hint(previous_pct: u8, fraction_lost: u8) -> u8 {
    let reported = (u32::from(fraction_lost) * 100).div_ceil(256) as u8;
    reported.max(previous_pct / 2).min(50)
}

/// Header bits per second on top of the Opus bitrate: IPv4 + UDP + RTP +
/// SRTP tag (20 + 8 + 12 + 10 octets) 50 times a second. The RTCP share is
/// computed from the whole session bandwidth (RFC 3550 §6.2).
const HEADER_BITRATE: u32 = (20 + 8 + 12 + 10) * 8 * 50;

/// Why the pipeline could not be built or refused input.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The negotiated cipher/tag pair has no SRTP profile here.
    #[error("no SRTP profile for the negotiated ZRTP suite")]
    NoProfile,
    /// SRTP rejected the keys.
    #[error("SRTP: {0}")]
    Srtp(crate::srtp::Error),
    /// Building a packet failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// RTP setup failed.
    #[error(transparent)]
    Rtp(#[from] crate::rtp::RtpError),
    /// The codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The jitter buffer refused its configuration.
    #[error(transparent)]
    Jitter(#[from] JitterError),
    /// PCM frames must be 10 or 20 ms at 48 kHz mono.
    #[error("PCM frame of {0} samples: expected 480 or 960")]
    FrameSize(usize),
    /// The video settings were refused.
    #[error(transparent)]
    VideoConfig(#[from] crate::video::VideoConfigError),
    /// Video could not be packetized.
    #[error("video payload: {0}")]
    Video(crate::video::vp8::Vp8PayloadError),
    /// A camera frame larger than `VideoConfig::max_pixels`.
    #[error("video frame {width}x{height}: over {max_pixels} pixels (VideoConfig::max_pixels)")]
    FrameTooLarge {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The limit.
        max_pixels: u32,
    },
}

shown_from!(MediaError, MediaError::Srtp, crate::srtp::Error);
shown_from!(
    MediaError,
    MediaError::Video,
    crate::video::vp8::Vp8PayloadError
);

/// Audio settings of a call.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// Opus bitrate in bit/s.
    pub bitrate: u32,
    /// Opus complexity 0-10.
    pub complexity: u8,
    /// In-band FEC.
    pub fec: bool,
    /// Discontinuous transmission.
    pub dtx: bool,
    /// Jitter buffer tuning.
    pub jitter: JitterConfig,
    /// Seed of the RTCP report-interval randomisation (RFC 3550 §6.3.1);
    /// `None` seeds it from the OS. The simulator fixes it so that a
    /// seeded call repeats exactly.
    pub rtcp_seed: Option<u64>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            bitrate: 24_000,
            complexity: 9,
            fec: true,
            dtx: true,
            jitter: JitterConfig::default(),
            rtcp_seed: None,
        }
    }
}

impl AudioConfig {
    /// Checks the codec and jitter buffer settings, so that a call whose
    /// audio could not be built is refused when it is created, not once it
    /// is Secure.
    pub fn validate(&self) -> Result<(), MediaError> {
        OpusEncoder::new(self.opus_config())?;
        self.jitter.validate()?;
        Ok(())
    }

    /// The encoder settings at the start of a call: 20 ms mono frames at
    /// 48 kHz, and the loss hint RTCP will correct.
    fn opus_config(&self) -> OpusConfig {
        OpusConfig {
            frame: FrameDuration::Ms20,
            bitrate: self.bitrate,
            complexity: self.complexity,
            fec: self.fec,
            dtx: self.dtx,
            packet_loss_pct: INITIAL_LOSS_HINT,
            ..OpusConfig::default()
        }
    }
}

/// Both directions of audio over one SRTP stream.
pub(crate) struct Media {
    stream: MediaStream,
    encoder: OpusEncoder,
    /// The encoder's algorithmic delay: what the peer decodes at a
    /// packet's timestamp was captured this much before its first sample.
    lookahead: Duration,
    jitter: JitterBuffer,
    ssrc: u32,
    pending: Vec<i16>,
    payload: Vec<u8>,
    prev_dtx: bool,
    outbox: VecDeque<Vec<u8>>,
    outbound: OutboundRtp,
    /// Authenticated RTP packets, for the whole call (the RFC 3550
    /// counters restart with a new source).
    packets_received: u64,
    bytes_received: u64,
    dropped_out: u64,
    video: Option<Video>,
    /// When the peer's video frames are due against its audio.
    sync: AvSync,
    /// The latest time the call gave us. PCM arrives without a time; its
    /// packets are stamped with this for the SR's RTP/NTP mapping. Drivers
    /// pull every 10 ms, so it trails by at most one pull, the same for
    /// every packet.
    clock: Instant,
}

impl Media {
    /// Builds the pipeline from ZRTP's keys; `ssrc` is ours (also in ZRTP
    /// packets). With `video`, video goes on a random SSRC of its own.
    pub(crate) fn new(
        now: Instant,
        info: &SecureInfo,
        ssrc: u32,
        audio: &AudioConfig,
        video: Option<&VideoConfig>,
        rtcp_interval: Duration,
        ntp_anchor: (Instant, u64),
    ) -> Result<Self, MediaError> {
        let profile = info.srtp_profile().ok_or(MediaError::NoProfile)?;
        let (lk, ls) = info.local_key_salt();
        let (rk, rs) = info.remote_key_salt();
        let tx = SrtpContext::new(profile, lk, ls)?;
        // Packets kept to be sent again: a second's worth at most bitrate.
        let nack_history = video
            .filter(|v| v.nack)
            .map(|v| history_for(v.max_bitrate, v.max_payload));
        // A retransmitted video packet comes after the packets sent since
        // it: a window of 64 would refuse it after a key frame's burst
        // (libwebrtc opens 1024 for the same reason), so the window covers
        // the history. A larger window costs more only when the index jumps.
        let window = nack_history.map_or(srtp::Config::default().replay_window, |h| {
            h.next_power_of_two().max(1024)
        });
        let rx = SrtpContext::with_config(
            profile,
            rk,
            rs,
            srtp::Config {
                replay_window: window,
                ..srtp::Config::default()
            },
        )?;
        let sender = RtpSender::new(
            ssrc,
            OPUS_PAYLOAD_TYPE,
            first_sequence_number(),
            u32::from_be_bytes(crate::zrtp::crypto::random()),
        )?;
        let bandwidth = audio
            .bitrate
            .saturating_add(HEADER_BITRATE)
            .saturating_add(video.map_or(0, |v| v.start_bitrate));
        // With video, RFC 3550's reduced minimum (about a second at the
        // default bitrates): the video's bitrate follows its loss, NACK
        // learns the RTT and lip sync starts within the first second.
        // Audio alone keeps the configured interval.
        let min_interval = video.map_or(rtcp_interval, |_| {
            rtcp_interval.min(reduced_minimum(bandwidth))
        });
        let schedule = ReportSchedule::new(
            now,
            min_interval,
            bandwidth,
            audio
                .rtcp_seed
                .map_or_else(IntervalRng::from_os, IntervalRng::from_seed),
        );
        let mut stream =
            MediaStream::new(now, sender, tx, rx, ntp_anchor).with_rtcp_schedule(schedule);
        let mut video = video.map(Video::new).transpose()?;
        if let Some(v) = video.as_mut().filter(|_| nack_history.is_some()) {
            v.set_recovery_wait(recovery_wait(None));
        }
        if video.is_some() {
            let video_ssrc = loop {
                let s = u32::from_be_bytes(crate::zrtp::crypto::random());
                // Our two SSRCs share keys: with one SSRC they would share
                // keystream too (the SSRC is in the IV, RFC 3711 §4.1.1).
                if s != ssrc {
                    break s;
                }
            };
            let sender = RtpSender::new(
                video_ssrc,
                VP8_PAYLOAD_TYPE,
                first_sequence_number(),
                0, // each frame carries its own capture timestamp
            )?
            .with_clock_rate(VIDEO_CLOCK_RATE);
            stream = stream.with_video(sender, nack_history);
        }
        let mut encoder = OpusEncoder::new(audio.opus_config())?;
        let lookahead = encoder.lookahead()? as u64 * 1_000_000 / u64::from(SAMPLE_RATE);
        let decoder = OpusDecoder::new(SAMPLE_RATE, 1)?;
        let jitter = JitterBuffer::new(audio.jitter.clone(), Box::new(decoder))?;
        Ok(Self {
            stream,
            encoder,
            lookahead: Duration::from_micros(lookahead),
            jitter,
            ssrc,
            pending: Vec::with_capacity(FRAME_SAMPLES),
            payload: Vec::new(),
            prev_dtx: false,
            outbox: VecDeque::new(),
            outbound: OutboundRtp {
                loss_hint_pct: INITIAL_LOSS_HINT,
                target_bitrate: audio.bitrate,
                ..OutboundRtp::default()
            },
            packets_received: 0,
            bytes_received: 0,
            dropped_out: 0,
            video,
            sync: AvSync::new(SAMPLE_RATE, VIDEO_CLOCK_RATE),
            clock: now,
        })
    }

    /// Whether this call carries video.
    pub(crate) fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Encodes and sends one camera frame captured at `now`; `Ok(false)`
    /// when the call carries no video.
    pub(crate) fn push_video(
        &mut self,
        now: Instant,
        frame: &VideoFrame,
    ) -> Result<bool, MediaError> {
        let Some(video) = self.video.as_mut() else {
            return Ok(false);
        };
        self.clock = self.clock.max(now);
        let Some(f) = video.encode(now, frame)? else {
            return Ok(true);
        };
        let last = f.payloads.len().saturating_sub(1);
        for (i, p) in f.payloads.iter().enumerate() {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            let n = self
                .stream
                .send_video(now, p, f.timestamp, i == last, &mut buf)?;
            buf.truncate(n);
            video.pace(now, buf, p.len());
        }
        self.release_video(now);
        Ok(true)
    }

    /// Moves the video datagrams the pacer lets go at `now` to the outbox.
    fn release_video(&mut self, now: Instant) {
        let Some(video) = self.video.as_mut() else {
            return;
        };
        while let Some((d, resent)) = video.poll_transmit(now) {
            if let Some(seq) = resent {
                self.stream.on_retransmitted(now, seq);
            }
            enqueue(&mut self.outbox, &mut self.dropped_out, d);
        }
    }

    /// The oldest received video frame not yet taken.
    pub(crate) fn poll_video(&mut self) -> Option<VideoFrame> {
        self.video.as_mut()?.poll_frame()
    }

    /// Feedback on the peer's video: stops asking for packets the frame
    /// assembler has given up (a key frame went past them), and sends a key
    /// frame request when the receiver wants one.
    fn video_feedback(&mut self, now: Instant) {
        let Some(v) = self.video.as_mut() else {
            return;
        };
        if let Some(seq) = v.given_up_through() {
            self.stream.forget_missing_video_through(seq);
        }
        if v.take_keyframe_request(now) {
            let _ = self.stream.request_pli();
            while let Some(d) = self.stream.poll_transmit() {
                self.queue(d);
            }
        }
    }

    /// Takes 10 or 20 ms of PCM; every 20 ms gathered becomes one packet.
    pub(crate) fn push_audio(
        &mut self,
        now: Instant,
        pcm: &[i16],
        muted: bool,
    ) -> Result<(), MediaError> {
        if pcm.len() != PULL_SAMPLES && pcm.len() != FRAME_SAMPLES {
            return Err(MediaError::FrameSize(pcm.len()));
        }
        // Frames are stamped with the time they were captured at, which
        // the SR's (NTP, RTP) pair extrapolates from.
        self.tick(now);
        for chunk in pcm.chunks(PULL_SAMPLES) {
            if muted {
                // Silence, not nothing: DTX then carries comfort noise.
                self.pending.resize(self.pending.len() + chunk.len(), 0);
            } else {
                self.pending.extend_from_slice(chunk);
            }
            if self.pending.len() >= FRAME_SAMPLES {
                self.encode_frame()?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    fn encode_frame(&mut self) -> Result<(), MediaError> {
        self.encoder.encode(&self.pending, &mut self.payload)?;
        self.outbound.frames_encoded += 1;
        let dtx = self.encoder.is_dtx(&self.payload);
        // The first DTX frame goes out (it tells the receiver to play
        // comfort noise); the rest of the pause is skipped.
        let send = !dtx || !self.prev_dtx;
        self.prev_dtx = dtx;
        if !send {
            self.stream.skip(FRAME_SAMPLES as u32);
            return Ok(());
        }
        // Its first sample was captured a frame before the latest PCM; what
        // the peer hears at its timestamp, the lookahead before that
        // (GStreamer's opusenc shifts its timestamps to the same end).
        let captured = self
            .clock
            .checked_sub(FRAME + self.lookahead)
            .unwrap_or(self.clock);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let n = self
            .stream
            .send_audio(captured, &self.payload, FRAME_SAMPLES as u32, &mut buf)?;
        buf.truncate(n);
        self.outbound.packets_sent += 1;
        self.outbound.bytes_sent += self.payload.len() as u64;
        self.queue(buf);
        Ok(())
    }

    fn queue(&mut self, d: Vec<u8>) {
        enqueue(&mut self.outbox, &mut self.dropped_out, d);
    }

    /// One RTP or RTCP datagram from the path. Rejections are counted
    /// by the SRTP context and the jitter buffer; the error says why.
    pub(crate) fn receive(&mut self, now: Instant, data: &[u8]) -> Result<(), StreamError> {
        self.tick(now);
        let mut buf = data.to_vec();
        let len = buf.len();
        match self.stream.receive(now, &mut buf, len)? {
            Received::Audio(p) => {
                self.sync
                    .on_audio_received(now, p.header.timestamp, p.header.marker);
                self.packets_received += 1;
                self.bytes_received += p.payload.len() as u64;
                let pkt = RtpPacket {
                    seq: p.header.sequence_number,
                    timestamp: p.header.timestamp,
                    ssrc: p.header.ssrc,
                    marker: p.header.marker,
                    payload: p.payload.to_vec(),
                };
                // Late, duplicate and undecodable packets are counted in
                // the buffer's packetsDiscarded.
                let _ = self.jitter.insert(now, pkt);
            }
            Received::Video(p) => {
                if let Some(v) = self.video.as_mut() {
                    let h = &p.header;
                    let sync = &self.sync;
                    v.receive(
                        now,
                        h.sequence_number,
                        h.timestamp,
                        h.marker,
                        p.payload,
                        sync,
                    );
                }
                self.video_feedback(now);
            }
            Received::Control(items) => self.on_rtcp(now, &items),
        }
        // An SR may have paired the peer's clocks anew, and a new SSRC
        // unpaired them.
        self.sync.set_clocks(
            self.stream.remote_stats().sender_clock(),
            self.stream
                .remote_video_stats()
                .and_then(ReceiverStats::sender_clock),
        );
        Ok(())
    }

    /// Feeds the peer's loss reports about us to the encoder's FEC and to
    /// the video bitrate, its key frame requests to the video encoder and
    /// its NACKs to the pacer (as retransmissions).
    fn on_rtcp(&mut self, now: Instant, items: &[RtcpItem]) {
        let video_ssrc = self.stream.video_ssrc();
        for item in items {
            match item {
                RtcpItem::Report { block, .. } if block.ssrc == self.ssrc => {
                    let pct = loss_hint(self.outbound.loss_hint_pct, block.fraction_lost);
                    if self.encoder.set_packet_loss_pct(pct).is_ok() {
                        self.outbound.loss_hint_pct = pct;
                    }
                    if let Some(v) = self.video.as_mut() {
                        v.on_loss(block.fraction_lost, LossOf::Audio);
                    }
                }
                RtcpItem::Report { block, .. } if Some(block.ssrc) == video_ssrc => {
                    if let Some(v) = self.video.as_mut() {
                        v.on_loss(block.fraction_lost, LossOf::Video);
                    }
                }
                RtcpItem::Pli { media_ssrc } if Some(*media_ssrc) == video_ssrc => {
                    if let Some(v) = self.video.as_mut() {
                        v.on_pli();
                    }
                }
                RtcpItem::Nack { media_ssrc, lost } if Some(*media_ssrc) == video_ssrc => {
                    if let Some(v) = self.video.as_mut() {
                        let allowance = v.resend_allowance(now);
                        v.resend(now, self.stream.retransmissions(now, lost, allowance));
                    }
                }
                _ => {}
            }
        }
        // A report may have moved the round-trip time a retransmission takes.
        if let Some(v) = self.video.as_mut()
            && self.stream.video_nack_counts().is_some()
        {
            v.set_recovery_wait(recovery_wait(self.stream.rtt()));
        }
        self.release_video(now);
    }

    /// 10 ms of received audio.
    pub(crate) fn pull(&mut self, now: Instant, out: &mut Vec<i16>) {
        self.tick(now);
        let pulled = self.jitter.pull(now, out);
        let mut started = false;
        // Lip sync takes the audio as heard when pulled: the device's own
        // latency is not known here (in the simulator, a sound card taking
        // 40 or 100 ms at a time moved the beeps by 10 ms at most).
        let heard = now;
        while let Some(e) = self.jitter.poll_event() {
            match e {
                // Where a packet's audio begins in this block: the one
                // place its RTP timestamp is heard (stretching moves the rest).
                JitterEvent::Played {
                    timestamp, offset, ..
                } => {
                    let into =
                        Duration::from_micros(offset as u64 * 1_000_000 / u64::from(SAMPLE_RATE));
                    self.sync.on_audio_played(heard + into, timestamp);
                    started = true;
                }
                JitterEvent::Reset { .. } => self.sync.on_audio_reset(),
                _ => {}
            }
        }
        if !started && pulled.operation == Operation::Expand {
            self.sync.on_audio_stalled(heard, PULL);
        }
        self.sync.on_pull(now);
        out.resize(PULL_SAMPLES, 0);
        // Frames wait for this audio (lip sync).
        if let Some(v) = self.video.as_mut() {
            v.release(now, &self.sync);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Instant {
        let video = self.video.as_ref().and_then(|v| v.poll_timeout(&self.sync));
        let rtcp = self.stream.poll_timeout();
        video.map_or(rtcp, |v| v.min(rtcp))
    }

    /// Advances the clock that stamps outgoing frames (never backwards).
    fn tick(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if let Some(v) = self.video.as_mut() {
            v.handle_timeout(now, &self.sync);
        }
        self.release_video(now);
        self.video_feedback(now);
        self.stream.handle_timeout(now);
        while let Some(d) = self.stream.poll_transmit() {
            self.queue(d);
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.stream.rtt()
    }

    pub(crate) fn inbound(&self) -> InboundRtp {
        let r = self.stream.remote_stats();
        let s = self.stream.srtp_stats();
        InboundRtp {
            packets_received: self.packets_received,
            packets_lost: r.cumulative_lost(),
            bytes_received: self.bytes_received,
            jitter: f64::from(r.jitter()) / f64::from(SAMPLE_RATE),
            srtp_rejected: s.auth_failures
                + s.replays
                + s.malformed
                + s.stream_limit_drops
                + s.key_limit_drops,
            jitter_buffer: self.jitter.stats().clone(),
        }
    }

    pub(crate) fn outbound(&self) -> OutboundRtp {
        self.outbound.clone()
    }

    pub(crate) fn video_stats(&self) -> Option<VideoStats> {
        let (mut inbound, outbound) = self.video.as_ref()?.stats();
        if let Some(r) = self.stream.remote_video_stats() {
            inbound.packets_lost = r.cumulative_lost();
        }
        if let Some(n) = self.stream.video_nack_counts() {
            inbound.nack_count = n.nacks_sent;
            inbound.packets_repaired = n.repaired;
            // W3C counts a packet that came again as received (RFC 3550
            // §6.4.1); the RTCP reports to the sender do not, so that its
            // rate follows what the network lost.
            inbound.packets_lost -= n.repaired as i64;
        }
        Some(VideoStats { inbound, outbound })
    }
}

/// Queues `d` to be sent, or counts it in `dropped` when `outbox` is full.
fn enqueue(outbox: &mut VecDeque<Vec<u8>>, dropped: &mut u64, d: Vec<u8>) {
    if outbox.len() < MAX_OUTBOX {
        outbox.push_back(d);
    } else {
        *dropped += 1;
    }
}

/// A random first RTP sequence number below 2^15 (as libwebrtc picks it).
/// A receiver that missed the first packets (the ZRTP responder is Secure,
/// and sends, half a round trip before the initiator) guesses the rollover
/// counter as 0 (RFC 3711 §3.3.1); a start near 65535 would make that
/// guess wrong after a few losses and fail every packet's authentication.
fn first_sequence_number() -> u16 {
    u16::from_be_bytes(crate::zrtp::crypto::random()) & 0x7FFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sequence_number_leaves_2_15_packets_before_the_wrap() {
        assert!((0..1000).all(|_| first_sequence_number() < 0x8000));
    }

    #[test]
    fn the_loss_hint_rises_at_once_and_falls_by_half_a_report() {
        // 1/256 is 0.4 %: still loss, so still FEC.
        assert_eq!(loss_hint(0, 1), 1);
        assert_eq!(loss_hint(0, 7), 3);
        assert_eq!(loss_hint(3, 64), 25);
        // Quiet intervals after a burst: FEC stays on for a few.
        let quiet: Vec<u8> = (0..6)
            .scan(20, |hint, _| {
                *hint = loss_hint(*hint, 0);
                Some(*hint)
            })
            .collect();
        assert_eq!(quiet, [10, 5, 2, 1, 0, 0]);
        assert_eq!(loss_hint(0, 255), 50, "capped");
    }
}
