//! The adaptive jitter buffer: a sans-IO core that takes packets with
//! their arrival time and gives back 10 ms of 48 kHz PCM per pull.
//!
//! Each pull that needs audio picks one operation (NetEq style): play the
//! next packet (normally, accelerated or stretched, or merged in after
//! concealment), rebuild a lost packet from the next packet's FEC, conceal
//! with the codec's PLC (waiting for a late packet, or replacing a lost
//! one), or play comfort noise during DTX. The buffer level is steered
//! towards a target derived from the [`DelayEstimator`]. The delay is
//! changed in pauses, where an edit is inaudible: excess is cut there (the
//! cut also puts the next packet on a pull boundary) and a shortfall is
//! made up there, and only in pauses long enough to end a phrase, so the
//! words of a phrase keep their timing. Speech is accelerated only when
//! the excess is large, and stretched only when no pause has come for a
//! while.
//!
//! The buffer works at 48 kHz through any [`Decoder`]: a codec at a lower
//! rate plays through [`sotto_codecs::resampled::Resampled`], and packet
//! timestamps are read on the decoder's RTP clock (8 kHz for G.711), so a
//! codec is added without changing the buffer.

use std::collections::VecDeque;
use std::time::Instant;

use sotto_codecs::Decoder;

pub use crate::config::JitterConfig;
use crate::error::JitterError;
use crate::estimator::DelayEstimator;
use crate::packet::{DiscardReason, Event, Operation, Recovery, RtpPacket};
use crate::packet_buffer::{PacketBuffer, Stored};
use crate::stats::JitterStats;
use crate::stretch;

/// Output sample rate (and the RTP clock of Opus).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one pull (10 ms).
pub const PULL_SAMPLES: usize = 480;
/// Samples per ms.
const PER_MS: f64 = SAMPLE_RATE as f64 / 1000.0;
/// Duration of one pull, ms: the playout device plays what the buffer
/// holds at these instants.
pub const PULL_MS: f64 = PULL_SAMPLES as f64 / PER_MS;
/// Window over which a backlog coming in is told from live packets, ms:
/// after an outage a mobile link delivers its queue in pieces (ATT LTE
/// up: 240 frames in 220 ms, 13 or 14 at a time, the first two pieces
/// 58 ms apart), while live 20 ms frames, even in clumps, bring about as
/// much audio as the time they span.
const BURST_WINDOW_MS: f64 = 100.0;
/// Codec PLC works in 2.5 ms steps.
const PLC_QUANTUM: usize = 120;
/// Longest packet accepted: 120 ms (RFC 6716 §3.2.5).
const MAX_PACKET_SAMPLES: usize = 5_760;
/// Output kept for merges (cross-fade after concealment).
const HISTORY: usize = 960;
/// Length of the merge cross-fade (5 ms).
const MERGE_SAMPLES: usize = 240;
/// Cross-fade at the ends of a cut in near silence (2.5 ms).
const QUIET_FADE: usize = 120;
/// Events kept when the caller does not poll them.
const MAX_EVENTS: usize = 4_096;
/// A sequence number this far behind the highest is out of order only
/// while its timestamp is older too (RFC 3550 A.1's `MAX_MISORDER`).
const MAX_MISORDER: i64 = 100;

/// Where the player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not started: waiting for enough audio.
    Idle,
    /// Playing decoded audio.
    Normal,
    /// Concealing.
    Expand,
    /// In a DTX pause, playing comfort noise.
    Dtx,
}

/// One 10 ms block returned by [`JitterBuffer::pull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulled {
    /// The main operation behind the block (the last decision made).
    pub operation: Operation,
    /// RTP timestamp of the first sample (monotonic within one stream),
    /// or `None` while idle.
    pub timestamp: Option<u32>,
}

/// The adaptive jitter buffer. See the module documentation.
pub struct JitterBuffer {
    config: JitterConfig,
    decoder: Box<dyn Decoder>,
    estimator: DelayEstimator,
    packets: PacketBuffer,
    /// Decoded audio waiting to be pulled.
    sync: VecDeque<i16>,
    /// The last [`HISTORY`] samples appended to `sync`.
    history: VecDeque<i16>,
    /// Playout timestamp of the first sample in `sync` (unwrapped).
    sync_ts: i64,
    /// Unwrapped timestamp of the next audio to decode.
    play_ts: i64,
    mode: Mode,
    ssrc: Option<u32>,
    /// Samples (48 kHz) per tick of the RTP clock (6 for G.711's 8 kHz).
    clock_scale: i64,
    /// Highest RTP timestamp seen, unwrapped, in RTP ticks: the reference
    /// for unwrapping the next one.
    last_ts: Option<i64>,
    highest_seq: Option<i64>,
    epoch: Option<Instant>,
    /// Tells the decoded frames that are pauses.
    pauses: stretch::PauseDetector,
    /// When a pause was last played (a near-silent frame decoded, or
    /// comfort noise in DTX), ms.
    last_pause_ms: Option<f64>,
    /// How long the pause being decoded has lasted before this frame, ms.
    pause_run_ms: f64,
    /// Smoothed buffering of decoded packets relative to the fastest
    /// recent packet (their wait plus their relative delay), ms.
    level_filter: f64,
    /// A backlog is being caught up (see `JitterConfig::catch_up_excess_ms`).
    catching_up: bool,
    /// Stream positions (samples appended so far) where packets start.
    markers: VecDeque<(u64, u16, u32, Recovery)>,
    appended: u64,
    emitted: u64,
    events: VecDeque<Event>,
    stats: JitterStats,
    last_op: Operation,
    /// When a packet last arrived after a newer one, ms.
    last_reorder_ms: Option<f64>,
    /// Samples concealed waiting since audio was last decoded.
    waited: i64,
    /// Lag of the last packet played: when its first sample plays less
    /// its timestamp (ms on the buffer's clock less ms of the sender's).
    /// A packet played now that would lag by far more was held up by an
    /// outage (see [`JitterBuffer::held_up`]).
    last_lag_ms: Option<f64>,
    /// Samples in the packet last taken: `max_packets` of them are the
    /// most audio the buffer can hold, and so the highest target it can
    /// reach.
    frame_samples: usize,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("mode", &self.mode)
            .field("packets", &self.packets.len())
            .field("sync", &self.sync.len())
            .finish_non_exhaustive()
    }
}

fn unwrap16(last: Option<i64>, v: u16) -> i64 {
    match last {
        None => i64::from(v),
        Some(l) => l + i64::from(v.wrapping_sub(l as u16) as i16),
    }
}

fn unwrap32(last: Option<i64>, v: u32) -> i64 {
    match last {
        None => i64::from(v),
        Some(l) => l + i64::from(v.wrapping_sub(l as u32) as i32),
    }
}

impl JitterBuffer {
    /// A buffer decoding through `decoder`, which must produce 48 kHz mono
    /// (a codec at a lower rate plays through
    /// [`sotto_codecs::resampled::Resampled`]) from payloads whose RTP
    /// clock divides 48 kHz.
    pub fn new(config: JitterConfig, decoder: Box<dyn Decoder>) -> Result<Self, JitterError> {
        config.validate()?;
        if decoder.sample_rate() != SAMPLE_RATE || decoder.channels() != 1 {
            return Err(JitterError::Undecodable(format!(
                "decoder must give 48 kHz mono, not {} Hz x{}",
                decoder.sample_rate(),
                decoder.channels()
            )));
        }
        let clock = decoder.clock_rate();
        if clock == 0 || !SAMPLE_RATE.is_multiple_of(clock) {
            return Err(JitterError::Undecodable(format!(
                "an RTP clock of {clock} Hz does not divide 48 kHz"
            )));
        }
        Ok(Self {
            clock_scale: i64::from(SAMPLE_RATE / clock),
            estimator: DelayEstimator::new(config.estimator.clone()),
            config,
            decoder,
            packets: PacketBuffer::default(),
            sync: VecDeque::new(),
            history: VecDeque::new(),
            sync_ts: 0,
            play_ts: 0,
            mode: Mode::Idle,
            ssrc: None,
            last_ts: None,
            highest_seq: None,
            epoch: None,
            level_filter: 0.0,
            catching_up: false,
            pauses: stretch::PauseDetector::default(),
            last_pause_ms: None,
            pause_run_ms: 0.0,
            markers: VecDeque::new(),
            appended: 0,
            emitted: 0,
            events: VecDeque::new(),
            stats: JitterStats::default(),
            last_op: Operation::Idle,
            last_reorder_ms: None,
            waited: 0,
            last_lag_ms: None,
            frame_samples: MAX_PACKET_SAMPLES,
            scratch: Vec::new(),
        })
    }

    /// Lifetime statistics.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Packets currently held (bounded by `max_packets`).
    pub fn packets_held(&self) -> usize {
        self.packets.len()
    }

    /// Decoded samples waiting to be pulled (bounded by one packet plus a
    /// stretch period plus one pull).
    pub fn samples_held(&self) -> usize {
        self.sync.len()
    }

    /// The current target delay in ms (network target plus margin).
    pub fn target_delay_ms(&self, now: Instant) -> f64 {
        let now_ms = self.ms(now);
        self.target_ms(now_ms)
    }

    /// The next event (played packets, discards, resets), if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn ms(&self, now: Instant) -> f64 {
        self.epoch.map_or(0.0, |e| {
            now.saturating_duration_since(e).as_secs_f64() * 1000.0
        })
    }

    fn target_ms(&self, now_ms: f64) -> f64 {
        let net = if !self.estimator.has_history() && self.mode == Mode::Idle {
            self.config.initial_target_ms
        } else {
            self.estimator.target_ms(now_ms)
        };
        (net + self.margin_ms(net))
            .clamp(self.config.min_target_ms, self.config.max_target_ms)
            .min(self.capacity_ms())
    }

    /// The highest target the buffer can reach: the audio of
    /// `max_packets` less one packets (of the duration of the last one
    /// taken), less the pull on top of the target. A target above it (a
    /// lowest target an application chose, short frames from the sender)
    /// would never be reached: playout would never start, nor resume
    /// after a DTX pause, and a hole would be waited for for ever, while
    /// the packets behind it overflow.
    fn capacity_ms(&self) -> f64 {
        let room = self
            .config
            .max_packets
            .saturating_sub(1)
            .saturating_mul(self.frame_samples);
        room.saturating_sub(PULL_SAMPLES) as f64 / PER_MS
    }

    /// Slack above the network target. Playout moves in 10 ms pulls, so
    /// jitter below one pull is absorbed by the pull grid; above that the
    /// slack grows with the jitter, up to `margin_ms` (a fixed slack would
    /// be most of a steady link's delay).
    fn margin_ms(&self, net_ms: f64) -> f64 {
        (net_ms - PULL_MS).clamp(0.0, self.config.margin_ms)
    }

    /// The RTP timestamp of unwrapped sample position `ts`.
    fn rtp_timestamp(&self, ts: i64) -> u32 {
        ts.div_euclid(self.clock_scale) as u32
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn discard(&mut self, seq: u16, ts: i64, reason: DiscardReason) {
        self.stats.packets_discarded += 1;
        self.push_event(Event::Discarded {
            seq,
            timestamp: self.rtp_timestamp(ts),
            reason,
        });
    }

    fn drop_stored(&mut self, ts: i64, p: &Stored, reason: DiscardReason) {
        if p.has_fec && !p.fec_used {
            self.stats.fec_packets_discarded += 1;
        }
        self.discard(p.seq, ts, reason);
    }

    /// Restarts on a new stream: drops packets and decoded audio, forgets
    /// the network history. Statistics are kept.
    fn reset(&mut self, ssrc: u32) {
        for (ts, p) in self.packets.clear() {
            self.drop_stored(ts, &p, DiscardReason::Flushed);
        }
        self.sync.clear();
        self.markers.clear();
        self.appended = self.emitted;
        self.estimator.reset();
        self.mode = Mode::Idle;
        self.last_ts = None;
        self.highest_seq = None;
        self.level_filter = 0.0;
        self.catching_up = false;
        self.pauses = stretch::PauseDetector::default();
        self.last_pause_ms = None;
        self.pause_run_ms = 0.0;
        self.last_reorder_ms = None;
        self.waited = 0;
        self.last_lag_ms = None;
        self.ssrc = Some(ssrc);
        self.push_event(Event::Reset { ssrc });
    }

    /// Takes one packet that arrived at `now`.
    ///
    /// Late, duplicate and undecodable packets are counted in
    /// `packetsDiscarded`; the latter two also return an error.
    pub fn insert(&mut self, now: Instant, packet: RtpPacket) -> Result<(), JitterError> {
        let epoch = *self.epoch.get_or_insert(now);
        let now_ms = now.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        let len = packet.payload.len();
        if len == 0 || len > self.config.max_payload {
            self.stats.packets_discarded += 1;
            return Err(JitterError::PayloadSize {
                len,
                max: self.config.max_payload,
            });
        }
        let samples = match self.decoder.payload_samples(&packet.payload) {
            Ok(n) if n > 0 && n <= MAX_PACKET_SAMPLES && n.is_multiple_of(PLC_QUANTUM) => n,
            Ok(n) => {
                self.discard(
                    packet.seq,
                    i64::from(packet.timestamp) * self.clock_scale,
                    DiscardReason::Undecodable,
                );
                return Err(JitterError::Undecodable(format!("{n} samples")));
            }
            Err(e) => {
                self.discard(
                    packet.seq,
                    i64::from(packet.timestamp) * self.clock_scale,
                    DiscardReason::Undecodable,
                );
                return Err(e.into());
            }
        };
        self.frame_samples = samples;
        if self.ssrc != Some(packet.ssrc) {
            self.reset(packet.ssrc);
        }
        let mut rtp = unwrap32(self.last_ts, packet.timestamp);
        let mut ts = rtp * self.clock_scale;
        let seq = unwrap16(self.highest_seq, packet.seq);
        let jump = (self.config.reset_jump_ms * PER_MS) as i64;
        // Far behind the highest number, yet stamped after every packet
        // seen: the sender's numbering restarted (or jumped by more than
        // half its range). Taken as out of order, every packet would be
        // for thousands of packets, and missing ones would be waited for.
        let renumbered = self.highest_seq.is_some_and(|h| h - seq > MAX_MISORDER)
            && self.last_ts.is_some_and(|l| rtp > l);
        let newer = renumbered || self.highest_seq.is_none_or(|h| seq > h);
        // Numbered after every packet seen, yet stamped behind the playout
        // point by more than a hole that is concealed: the playout moved
        // onto a packet stamped ahead of the stream (a sender's bug), or
        // the sender's clock stepped back. Either way every packet that
        // follows would be dropped as late until the stream caught up with
        // the playout point, seconds later.
        let back = (self.config.max_conceal_gap_ms * PER_MS) as i64;
        // Before playout starts, the newest timestamp seen stands for the
        // playout point: packets held further apart than a jump would be
        // played in turn, and the output timestamp would jump as far (by
        // 2^31 or more: backwards in RTP arithmetic) without a reset.
        let (point, behind) = match self.mode {
            Mode::Idle => (self.last_ts.map(|l| l * self.clock_scale), jump),
            _ => (Some(self.play_ts), back.min(jump)),
        };
        let mut stale = false;
        if let Some(point) = point {
            if ts - point > jump || (newer && point - ts > behind) {
                // The sender's timestamp jumped: start over at the new
                // position.
                self.reset(packet.ssrc);
                rtp = i64::from(packet.timestamp);
                ts = rtp * self.clock_scale;
            } else if self.mode == Mode::Idle && point - ts > jump {
                // Older in number and a jump behind the newest: late.
                stale = true;
            }
        }
        self.last_ts = Some(self.last_ts.map_or(rtp, |l| l.max(rtp)));
        if newer {
            self.highest_seq = Some(seq);
        }
        if !newer {
            // Out of order (or a duplicate, which is treated alike).
            self.last_reorder_ms = Some(now_ms);
        }
        let relative_ms = self.estimator.update(now_ms, ts as f64 / PER_MS);
        let has_fec = self.decoder.has_fec(&packet.payload);
        if has_fec {
            self.stats.fec_packets_received += 1;
        }
        if stale || (self.mode != Mode::Idle && ts < self.play_ts) {
            if has_fec {
                self.stats.fec_packets_discarded += 1;
            }
            self.discard(packet.seq, ts, DiscardReason::Late);
            return Ok(());
        }
        if self.packets.contains(ts) {
            if has_fec {
                self.stats.fec_packets_discarded += 1;
            }
            self.discard(packet.seq, ts, DiscardReason::Duplicate);
            return Ok(());
        }
        if self.packets.len() >= self.config.max_packets.max(1)
            && let Some((old_ts, old)) = self.packets.pop_first()
        {
            self.drop_stored(old_ts, &old, DiscardReason::Overflow);
        }
        self.packets.insert(
            ts,
            Stored {
                seq: packet.seq,
                payload: packet.payload,
                samples,
                arrival_ms: now_ms,
                relative_ms,
                has_fec,
                fec_used: false,
            },
        );
        Ok(())
    }

    /// Pulls the next 10 ms (480 samples at 48 kHz) into `out`, which is
    /// cleared first.
    pub fn pull(&mut self, now: Instant, out: &mut Vec<i16>) -> Pulled {
        let epoch = *self.epoch.get_or_insert(now);
        let now_ms = now.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        out.clear();
        let mut op = None;
        let mut guard = 0;
        while self.sync.len() < PULL_SAMPLES && guard < 64 {
            guard += 1;
            let step = self.step(now_ms);
            op = Some(match (op, step) {
                // Report the most telling operation of the block.
                (Some(prev), Operation::Normal) => prev,
                (_, s) => s,
            });
            if step == Operation::Idle {
                break;
            }
        }
        let timestamp = (self.mode != Mode::Idle || !self.sync.is_empty())
            .then(|| self.rtp_timestamp(self.sync_ts));
        let n = self.sync.len().min(PULL_SAMPLES);
        out.extend(self.sync.drain(..n));
        out.resize(PULL_SAMPLES, 0);
        self.sync_ts += n as i64;
        self.emitted += PULL_SAMPLES as u64;
        if n < PULL_SAMPLES {
            // Idle silence also advances the stream position.
            self.appended += (PULL_SAMPLES - n) as u64;
        }
        self.stats.total_samples_pulled += PULL_SAMPLES as u64;
        let block_start = self.emitted - PULL_SAMPLES as u64;
        while let Some(&(pos, seq, ts, recovery)) = self.markers.front() {
            if pos >= self.emitted {
                break;
            }
            self.markers.pop_front();
            self.push_event(Event::Played {
                seq,
                timestamp: ts,
                recovery,
                offset: pos.saturating_sub(block_start) as usize,
            });
        }
        let operation = op.unwrap_or(self.last_op);
        self.last_op = operation;
        Pulled {
            operation,
            timestamp,
        }
    }

    /// Audio buffered from the playout point on, in samples.
    fn level(&self) -> usize {
        self.sync.len() + self.packets.samples()
    }

    /// Appends decoded audio to `sync`, keeping the history.
    fn append(&mut self, pcm: &[i16]) {
        if self.sync.is_empty() {
            // Never backwards: after a wait the audio resumes where it was.
            self.sync_ts = self.sync_ts.max(self.play_ts);
        }
        self.sync.extend(pcm.iter().copied());
        self.history.extend(pcm.iter().copied());
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
        self.appended += pcm.len() as u64;
    }

    /// One decision: adds some audio to `sync` (or none when idle).
    fn step(&mut self, now_ms: f64) -> Operation {
        let target = self.target_ms(now_ms);
        let target_level = ((target * PER_MS) as usize).saturating_add(PULL_SAMPLES);
        // Packets whose time has passed (the playout point moved on).
        while let Some((ts, p)) = self.packets.first() {
            if self.mode == Mode::Idle || ts >= self.play_ts {
                break;
            }
            let (ts, p) = (ts, p.clone());
            self.packets.pop_first();
            self.drop_stored(ts, &p, DiscardReason::Late);
        }
        match self.mode {
            Mode::Idle => {
                let Some((first_ts, first)) = self.packets.first() else {
                    return Operation::Idle;
                };
                if !self.may_start(now_ms, target, target_level) {
                    return Operation::Idle;
                }
                let offset = first.buffering_ms(now_ms);
                self.play_ts = first_ts;
                self.sync_ts = first_ts;
                self.mode = Mode::Normal;
                self.level_filter = offset;
                self.play_next(now_ms, target, false)
            }
            Mode::Normal | Mode::Expand | Mode::Dtx => {
                let Some((first_ts, first)) = self.packets.first() else {
                    return self.conceal(now_ms, PULL_SAMPLES, false);
                };
                let (first_samples, has_fec) = (first.samples, first.has_fec);
                if self.mode != Mode::Normal
                    && self.config.outage_hold_ms > 0.0
                    && self.held_up(now_ms, first_ts)
                {
                    let held_ms = now_ms - first.arrival_ms;
                    return self.after_outage(now_ms, held_ms, target, target_level);
                }
                let level = self.level();
                // A backlog far above target: drop the oldest audio.
                let flush_level =
                    target_level.saturating_add((self.config.flush_excess_ms * PER_MS) as usize);
                if level > flush_level {
                    self.flush_to(target_level);
                    return self.resync(now_ms, target);
                }
                let recoverable = if has_fec { first_samples } else { 0 };
                let gap = self.credit_wait(now_ms, first_ts - self.play_ts, recoverable);
                if gap == 0 {
                    return self.play_next(now_ms, target, self.mode == Mode::Expand);
                }
                if self.mode == Mode::Dtx {
                    if self.may_start(now_ms, target, target_level) {
                        return self.resync(now_ms, target);
                    }
                    return self.conceal(now_ms, PULL_SAMPLES, false);
                }
                // A hole at the playout point.
                let gap = gap as usize;
                if gap == first_samples && has_fec {
                    return self.recover_fec(now_ms);
                }
                if level < target_level && self.reordering(now_ms) {
                    // The missing packet may still come: wait, concealing.
                    return self.conceal(now_ms, PULL_SAMPLES, false);
                }
                if gap > (self.config.max_conceal_gap_ms * PER_MS) as usize
                    || !gap.is_multiple_of(PLC_QUANTUM)
                {
                    return self.resync(now_ms, target);
                }
                // Declare the packet lost and conceal its slot.
                let n = if gap > first_samples {
                    gap - first_samples
                } else {
                    gap
                };
                self.conceal(now_ms, n.min(MAX_PACKET_SAMPLES / 2), true)
            }
        }
    }

    /// Whether playout may start, or the next talkspurt after a DTX pause,
    /// with the packets buffered: enough audio is buffered *and* the first
    /// packet has waited as long as a packet that came at the fastest
    /// recent transit would wait; or the audio behind the first packet
    /// alone covers the target; or all of the talkspurt is here.
    ///
    /// The level alone is not enough: one 20 ms frame fills a target under
    /// 10 ms, and a talkspurt started at the pull after its first packet
    /// came then waits for every later packet slower than that one (on a
    /// 5G link with 3-11 ms of delay, a wait in speech every few
    /// talkspurts). Nor is the wait alone: a talkspurt whose head was
    /// queued has waited long enough at once, while the packets behind it
    /// are still on their way. But a backlog that came after an outage
    /// covers the target by itself, while its head's relative delay is 0
    /// (nothing older is left in the estimator's window): waiting on top
    /// would only add to it. And a talkspurt that is all here, up to the
    /// DTX frame that ends it, has nothing left to protect: a reply
    /// shorter than the target would otherwise wait for the next packets
    /// of the pause, and so would the comfort-noise refreshes of a long
    /// pause (a coded frame and a DTX frame about every 400 ms from
    /// Opus), which were all held until the next talkspurt came.
    fn may_start(&self, now_ms: f64, target: f64, target_level: usize) -> bool {
        let Some((_, first)) = self.packets.first() else {
            return false;
        };
        let offset = first.buffering_ms(now_ms);
        let level = self.level();
        (offset >= target && level >= target_level)
            || level >= target_level.saturating_add(first.samples)
            || self.talkspurt_is_complete()
    }

    /// Whether the packets from the head on run without a gap into a DTX
    /// frame: all of the talkspurt at the head (or a comfort-noise frame)
    /// is buffered.
    fn talkspurt_is_complete(&self) -> bool {
        let mut next = None;
        for (ts, p) in self.packets.iter() {
            if next.is_some_and(|n| n != ts) {
                return false;
            }
            if self.decoder.is_dtx(&p.payload) {
                return true;
            }
            next = Some(ts + p.samples as i64);
        }
        false
    }

    /// Takes the wait just ended by a packet `gap` samples past the
    /// playout point as the concealment of the packets missing before it
    /// when they are lost (no reordering lately): the playout point moves
    /// over them instead of the delay growing by the wait. The last
    /// `recoverable` samples (a frame the packet's FEC rebuilds) are left
    /// to it. Returns the gap that remains.
    fn credit_wait(&mut self, now_ms: f64, gap: i64, recoverable: usize) -> i64 {
        if gap <= 0 || self.mode != Mode::Expand || self.waited == 0 || self.reordering(now_ms) {
            return gap;
        }
        let quantum = PLC_QUANTUM as i64;
        let credit = self.waited.min(gap - recoverable as i64).max(0) / quantum * quantum;
        self.play_ts += credit;
        self.waited -= credit;
        self.stats.waiting_concealed_samples = self
            .stats
            .waiting_concealed_samples
            .saturating_sub(credit as u64);
        gap - credit
    }

    /// Whether packets may still come out of order (see
    /// `JitterConfig::reorder_window_ms`).
    fn reordering(&self, now_ms: f64) -> bool {
        self.config.reorder_window_ms.is_infinite()
            || self
                .last_reorder_ms
                .is_some_and(|t| now_ms - t <= self.config.reorder_window_ms)
    }

    /// Whether the packet at `ts`, played now, would lag more than
    /// `flush_excess_ms` behind the last packet played: an outage held it
    /// up, and what was sent after it is queued behind it.
    fn held_up(&self, now_ms: f64, ts: i64) -> bool {
        let lag = now_ms + self.sync.len() as f64 / PER_MS - ts as f64 / PER_MS;
        self.last_lag_ms
            .is_some_and(|last| lag - last > self.config.flush_excess_ms)
    }

    /// After an outage: the head is held up by seconds. Mobile links
    /// deliver the backlog in pieces, over a few hundred ms; played as it
    /// comes, its first pieces would play seconds stale and the flush
    /// would catch only part of it, leaving what came after to play
    /// seconds behind too. So the head waits (concealing) while packets
    /// come in faster than real time, up to `outage_hold_ms`; then the
    /// backlog is flushed to target, and the call is back to live. A path
    /// whose delay stepped up and stays so brings no backlog: its head
    /// waits one burst window and plays, nothing dropped. `held_ms`: how
    /// long ago the head came.
    fn after_outage(
        &mut self,
        now_ms: f64,
        held_ms: f64,
        target: f64,
        target_level: usize,
    ) -> Operation {
        if held_ms < self.config.outage_hold_ms
            && (held_ms < BURST_WINDOW_MS || self.backlog_coming(now_ms))
        {
            return self.conceal(now_ms, PULL_SAMPLES, false);
        }
        // More audio than twice the time waited came in: a backlog.
        if self.level() > target_level.saturating_add((2.0 * held_ms * PER_MS) as usize) {
            self.flush_to(target_level);
        }
        self.resync(now_ms, target)
    }

    /// Whether packets are coming in faster than real time: those that
    /// came in the last [`BURST_WINDOW_MS`] hold more than twice as much
    /// audio.
    fn backlog_coming(&self, now_ms: f64) -> bool {
        let recent: usize = self
            .packets
            .iter()
            .filter(|(_, p)| now_ms - p.arrival_ms < BURST_WINDOW_MS)
            .map(|(_, p)| p.samples)
            .sum();
        recent as f64 / PER_MS > 2.0 * BURST_WINDOW_MS
    }

    /// Drops the oldest packets until the level is about `target_level`.
    fn flush_to(&mut self, target_level: usize) {
        while self.packets.len() > 1 && self.level() > target_level {
            if let Some((ts, p)) = self.packets.pop_first() {
                self.drop_stored(ts, &p, DiscardReason::Flushed);
            }
        }
    }

    /// Jumps the playout point to the first buffered packet and plays it.
    fn resync(&mut self, now_ms: f64, target: f64) -> Operation {
        let Some((ts, _)) = self.packets.first() else {
            return self.conceal(now_ms, PULL_SAMPLES, false);
        };
        let merge = self.mode == Mode::Expand;
        // The output timestamp follows in `append`, forward only.
        self.play_ts = ts;
        self.play_next(now_ms, target, merge)
    }

    /// Decodes the packet at the playout point.
    fn play_next(&mut self, now_ms: f64, target: f64, merge: bool) -> Operation {
        let Some((ts, p)) = self.packets.pop_first() else {
            return self.conceal(now_ms, PULL_SAMPLES, false);
        };
        if p.has_fec && !p.fec_used {
            self.stats.fec_packets_discarded += 1;
        }
        let dtx = self.decoder.is_dtx(&p.payload);
        self.scratch.clear();
        let mut pcm = std::mem::take(&mut self.scratch);
        if self.decoder.decode_into(&p.payload, &mut pcm).is_err() || pcm.is_empty() {
            self.scratch = pcm;
            self.discard(p.seq, ts, DiscardReason::Undecodable);
            return self.conceal(now_ms, p.samples, true);
        }
        let wait_ms = now_ms - p.arrival_ms + self.sync.len() as f64 / PER_MS;
        let decoded = pcm.len();
        self.waited = 0;
        if dtx {
            self.played_comfort_noise(decoded, now_ms);
        } else {
            self.account(decoded, wait_ms, target);
        }
        self.mark_played(now_ms, ts, p.seq, Recovery::Decoded);
        let mut op = Operation::Normal;
        if merge && !dtx {
            self.merge_into(&mut pcm);
            op = Operation::Merge;
        } else if !dtx && self.mode == Mode::Normal {
            // Buffering that protects this packet: its wait until the pull
            // that decodes it, plus its relative delay. Audio still queued
            // from the previous packet delays it further without protecting
            // it (it had to be here for this pull either way).
            let offset_ms = p.buffering_ms(now_ms);
            op = self.stretch(&mut pcm, now_ms, offset_ms, target);
        }
        self.append(&pcm);
        self.play_ts = ts + decoded as i64;
        self.scratch = pcm;
        self.mode = if dtx { Mode::Dtx } else { Mode::Normal };
        if dtx { Operation::ComfortNoise } else { op }
    }

    /// Counts `samples` of DTX comfort noise, and marks them as a pause:
    /// the talkspurt after a long DTX pause keeps the bands of speech
    /// while pauses come.
    fn played_comfort_noise(&mut self, samples: usize, now_ms: f64) {
        self.stats.comfort_noise_samples += samples as u64;
        self.last_pause_ms = Some(now_ms);
    }

    /// Marks where the packet at `ts` starts in the output, and its lag.
    fn mark_played(&mut self, now_ms: f64, ts: i64, seq: u16, recovery: Recovery) {
        let plays_at = now_ms + self.sync.len() as f64 / PER_MS;
        self.last_lag_ms = Some(plays_at - ts as f64 / PER_MS);
        self.markers
            .push_back((self.appended, seq, self.rtp_timestamp(ts), recovery));
    }

    /// W3C delay counters for `samples` decoded samples.
    fn account(&mut self, samples: usize, wait_ms: f64, target: f64) {
        let n = samples as f64;
        self.stats.jitter_buffer_delay += wait_ms.max(0.0) / 1000.0 * n;
        self.stats.jitter_buffer_target_delay += target / 1000.0 * n;
        self.stats.jitter_buffer_minimum_delay += (self.estimator.histogram_target_ms()
            + self.margin_ms(self.estimator.histogram_target_ms()))
            / 1000.0
            * n;
        self.stats.jitter_buffer_emitted_count += samples as u64;
    }

    /// Accelerates `pcm` when the smoothed buffering (of `offset_ms`: the
    /// buffering that protects this packet) is over target (up to twice as
    /// fast from `catch_up_excess_ms` over it until the backlog is gone),
    /// stretches it when that and this packet's own are under; in a pause,
    /// also cuts what delays the next packet for nothing.
    fn stretch(
        &mut self,
        pcm: &mut Vec<i16>,
        now_ms: f64,
        offset_ms: f64,
        target: f64,
    ) -> Operation {
        self.level_filter += (offset_ms - self.level_filter) / 4.0;
        // Every decoded frame's level starts or ends a catch-up, pauses
        // too: a backlog cut back in a pause is gone all the same.
        if self.level_filter > target + self.config.catch_up_excess_ms {
            self.catching_up = true;
        } else if self.level_filter <= target + self.config.high_band_ms {
            self.catching_up = false;
        }
        let quiet = self.pauses.is_pause(pcm);
        if quiet {
            self.last_pause_ms = Some(now_ms);
        }
        let pauses_come = self
            .last_pause_ms
            .is_some_and(|t| now_ms - t < self.config.pause_window_ms);
        let low_band = self.config.low_band_ms;
        let (speech_band, speech_low_band) = if pauses_come {
            (
                self.config.speech_high_band_ms,
                self.config.speech_low_band_ms,
            )
        } else {
            (self.config.high_band_ms, low_band)
        };
        // Only a pause that has lasted a while is edited, unless the
        // excess is so large that speech would be accelerated.
        let edit_after_ms = if self.pauses.over_noise() {
            self.config.noisy_pause_edit_after_ms
        } else {
            self.config.pause_edit_after_ms
        };
        let pause = quiet
            && (self.pause_run_ms >= edit_after_ms || self.level_filter > target + speech_band);
        self.pause_run_ms = if quiet {
            self.pause_run_ms + pcm.len() as f64 / PER_MS
        } else {
            0.0
        };
        let low = target - if pause { low_band } else { speech_low_band };
        if pause {
            let excess = if self.level_filter > target + self.config.high_band_ms {
                ((self.level_filter - target) * PER_MS) as usize
            } else {
                0
            };
            let (n, pulls) = pause_cut(self.sync.len(), pcm.len(), excess);
            let removed = stretch::cut(pcm, QUIET_FADE, n, QUIET_FADE);
            if removed > 0 {
                self.stats.removed_samples_for_acceleration += removed as u64;
                // Only whole pulls change when the next packet is decoded.
                self.level_filter -= (pulls * PULL_SAMPLES) as f64 / PER_MS;
                return Operation::Accelerate;
            }
        }
        if !quiet && self.catching_up {
            let removed = stretch::catch_up(pcm);
            if removed > 0 {
                return self.accelerated(removed);
            }
        }
        if !quiet && self.level_filter > target + speech_band {
            if let Some(j) = stretch::find_join(pcm, 0) {
                let removed = stretch::accelerate(pcm, 0, j.period);
                return self.accelerated(removed);
            }
        } else if self.level_filter < low
            // This packet's own buffering must be short too: after a wait
            // the packets come buffered as far as the wait, and slowing
            // them while the filter catches up only adds to the backlog.
            && offset_ms < low
            && let Some(j) = stretch::find_join(pcm, 0)
        {
            let added = stretch::preemptive_expand(pcm, 0, j.period);
            self.stats.inserted_samples_for_deceleration += added as u64;
            self.level_filter += added as f64 / PER_MS;
            return Operation::PreemptiveExpand;
        }
        Operation::Normal
    }

    /// Counts `removed` samples of speech taken out by acceleration; the
    /// smoothed level falls by as much.
    fn accelerated(&mut self, removed: usize) -> Operation {
        self.stats.removed_samples_for_acceleration += removed as u64;
        self.level_filter -= removed as f64 / PER_MS;
        Operation::Accelerate
    }

    /// Cross-fades the start of `pcm` from a pitch-periodic continuation of
    /// the audio played so far (the merge after concealment), unless the
    /// decoder joins its concealment by itself: then `pcm` already
    /// continues what was played, and a fade from a guess would only blur
    /// (or, where the guess is off, click) the join.
    fn merge_into(&mut self, pcm: &mut [i16]) {
        if self.decoder.joins_after_concealment() {
            return;
        }
        let hist: Vec<i16> = self.history.iter().copied().collect();
        let n = MERGE_SAMPLES.min(pcm.len());
        let ext = stretch::periodic_extension(&hist, n);
        if ext.len() < n {
            return;
        }
        let mut faded = Vec::with_capacity(n);
        stretch::crossfade(&ext, &pcm[..n], &mut faded);
        pcm[..n].copy_from_slice(&faded);
    }

    /// Rebuilds the packet before the first buffered one from its FEC data.
    fn recover_fec(&mut self, now_ms: f64) -> Operation {
        let target = self.target_ms(now_ms);
        let Some((next_ts, next)) = self.packets.first_mut() else {
            return self.conceal(now_ms, PULL_SAMPLES, false);
        };
        next.fec_used = true;
        let payload = next.payload.clone();
        let (next_seq, arrival) = (next.seq, next.arrival_ms);
        self.scratch.clear();
        let mut pcm = std::mem::take(&mut self.scratch);
        match self.decoder.decode_fec_into(&payload, &mut pcm) {
            Ok(Some(n)) if n > 0 => {
                self.stats.fec_packets_used += 1;
                self.waited = 0;
                let wait_ms = now_ms - arrival + self.sync.len() as f64 / PER_MS;
                self.account(n, wait_ms, target);
                let lost_ts = next_ts - n as i64;
                self.mark_played(now_ms, lost_ts, next_seq.wrapping_sub(1), Recovery::Fec);
                if self.mode == Mode::Expand {
                    self.merge_into(&mut pcm);
                }
                self.append(&pcm);
                self.play_ts = next_ts;
                self.scratch = pcm;
                self.mode = Mode::Normal;
                Operation::FecRecovery
            }
            _ => {
                self.scratch = pcm;
                if let Some((_, next)) = self.packets.first_mut() {
                    next.fec_used = false;
                }
                self.conceal(now_ms, PULL_SAMPLES, true)
            }
        }
    }

    /// Conceals `samples` (rounded to the PLC step); `advance` moves the
    /// playout point over a lost packet, otherwise the buffer waits (its
    /// delay grows by the concealed time). In DTX it is comfort noise.
    fn conceal(&mut self, now_ms: f64, samples: usize, advance: bool) -> Operation {
        let n = (samples / PLC_QUANTUM).max(1) * PLC_QUANTUM;
        self.scratch.clear();
        let mut pcm = std::mem::take(&mut self.scratch);
        if self.decoder.conceal_into(n, &mut pcm).is_err() {
            pcm.clear();
            pcm.resize(n, 0);
        }
        let dtx = self.mode == Mode::Dtx;
        if dtx {
            self.played_comfort_noise(pcm.len(), now_ms);
        } else {
            if self.mode != Mode::Expand {
                self.stats.concealment_events += 1;
            }
            self.stats.concealed_samples += pcm.len() as u64;
            if !advance {
                self.stats.waiting_concealed_samples += pcm.len() as u64;
                self.waited += pcm.len() as i64;
            }
            let power = pcm
                .iter()
                .map(|&s| f64::from(s) * f64::from(s))
                .sum::<f64>()
                / pcm.len().max(1) as f64;
            if power < 100.0 * 100.0 {
                self.stats.silent_concealed_samples += pcm.len() as u64;
            }
            self.mode = Mode::Expand;
        }
        let len = pcm.len() as i64;
        let keep_ts = self.play_ts;
        self.append(&pcm);
        self.scratch = pcm;
        if advance {
            self.play_ts = keep_ts + len;
        } else {
            // Waiting: the concealed audio does not use up timestamps, so
            // the output timestamp stands still while the delay grows.
            self.play_ts = keep_ts;
        }
        if dtx {
            Operation::ComfortNoise
        } else {
            Operation::Expand
        }
    }
}

/// How much to cut from a paused frame of `frame` samples decoded behind
/// `queued` samples: `(samples, whole pulls of excess among them)`. The
/// cut takes out what would be left of the frame after its last pull (so
/// the next packet starts on a pull boundary: that remainder delays it
/// without protecting it, as it must be there for that pull anyway), plus
/// as many whole pulls of `excess` as fit between the cut's fades.
fn pause_cut(queued: usize, frame: usize, excess: usize) -> (usize, usize) {
    let align = (queued + frame) % PULL_SAMPLES;
    let room = frame.saturating_sub(2 * QUIET_FADE);
    if align > room {
        return (0, 0);
    }
    let pulls = (excess.saturating_sub(align) / PULL_SAMPLES).min((room - align) / PULL_SAMPLES);
    (align + pulls * PULL_SAMPLES, pulls)
}

/// Drives a buffer from arbitrary bytes (5 bytes per step: an insert or a
/// pull, with sequence/timestamp deltas, wait and payload drawn from the
/// input); the fuzz target `jitter_insert` calls this. Never panics.
pub fn fuzz_insert_pull(data: &[u8]) {
    let Ok(decoder) = sotto_codecs::opus::OpusDecoder::new(48_000, 1) else {
        return;
    };
    // Catch-up from 40 ms over target, and a flush and an outage's hold
    // from 100 ms, so that the few packets held reach them too.
    let config = JitterConfig {
        max_packets: 32,
        catch_up_excess_ms: 40.0,
        flush_excess_ms: 100.0,
        outage_hold_ms: 60.0,
        ..JitterConfig::default()
    };
    let Ok(mut jb) = JitterBuffer::new(config, Box::new(decoder)) else {
        return;
    };
    let t0 = Instant::now();
    let (mut now, mut seq, mut ts) = (0u64, 0u16, 0u32);
    let mut out = Vec::new();
    let mut rest = data;
    while let [op, a, b, c, len, tail @ ..] = rest {
        let n = usize::from(*len % 64).min(tail.len());
        let (payload, after) = tail.split_at(n);
        rest = after;
        now += u64::from(*c % 30);
        let at = t0 + std::time::Duration::from_millis(now);
        if op % 3 == 0 {
            jb.pull(at, &mut out);
            while jb.poll_event().is_some() {}
        } else {
            seq = seq.wrapping_add(u16::from(*a % 5)).wrapping_sub(1);
            ts = ts.wrapping_add((u32::from(*b % 7)).wrapping_sub(2).wrapping_mul(960));
            let ssrc = u32::from(op % 7 == 1);
            // Garbage payloads are fine: the buffer must reject them cleanly.
            let _ = jb.insert(
                at,
                RtpPacket {
                    seq,
                    timestamp: ts,
                    ssrc,
                    marker: false,
                    payload: payload.to_vec(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{JitterConfig, JitterError, pause_cut};
    use crate::estimator::EstimatorConfig;

    #[test]
    fn a_configuration_out_of_range_is_refused_with_a_typed_error() {
        let d = JitterConfig::default();
        assert!(d.validate().is_ok());
        let bad = [
            JitterConfig {
                max_packets: 0,
                ..d.clone()
            },
            JitterConfig {
                margin_ms: f64::NAN,
                ..d.clone()
            },
            JitterConfig {
                flush_excess_ms: -1.0,
                ..d.clone()
            },
            JitterConfig {
                max_target_ms: f64::INFINITY,
                ..d.clone()
            },
            JitterConfig {
                min_target_ms: 500.0,
                max_target_ms: 100.0,
                ..d.clone()
            },
            JitterConfig {
                reorder_window_ms: f64::NAN,
                ..d.clone()
            },
            JitterConfig {
                reset_jump_ms: d.max_target_ms + d.flush_excess_ms,
                ..d.clone()
            },
            JitterConfig {
                speech_low_band_ms: -1.0,
                ..d.clone()
            },
            JitterConfig {
                estimator: EstimatorConfig {
                    quantile: 1.0,
                    ..EstimatorConfig::default()
                },
                ..d.clone()
            },
            JitterConfig {
                estimator: EstimatorConfig {
                    quantile_max: 0.9,
                    ..EstimatorConfig::default()
                },
                ..d.clone()
            },
            JitterConfig {
                estimator: EstimatorConfig {
                    late_cost_ms: f64::INFINITY,
                    ..EstimatorConfig::default()
                },
                ..d.clone()
            },
            JitterConfig {
                estimator: EstimatorConfig {
                    buckets: 1 << 40,
                    ..EstimatorConfig::default()
                },
                ..d.clone()
            },
            JitterConfig {
                estimator: EstimatorConfig {
                    bucket_ms: 0.0,
                    ..EstimatorConfig::default()
                },
                ..d.clone()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(JitterError::Config(_))), "{c:?}");
            let decoder = sotto_codecs::opus::OpusDecoder::new(48_000, 1).unwrap();
            assert!(matches!(
                super::JitterBuffer::new(c, Box::new(decoder)),
                Err(JitterError::Config(_))
            ));
        }
        // Waiting for every missing packet, whatever the link, is allowed.
        let always = JitterConfig {
            reorder_window_ms: f64::INFINITY,
            ..d
        };
        assert!(always.validate().is_ok());
    }

    #[test]
    fn pause_cut_aligns_then_takes_whole_pulls_that_fit() {
        // Aligned already, nothing in excess: no cut.
        assert_eq!(pause_cut(0, 960, 0), (0, 0));
        // 200 samples would be left after the frame's last pull: cut them.
        assert_eq!(pause_cut(200, 960, 0), (200, 0));
        // Plus one whole pull of a 700-sample excess (a second would not
        // fit between the 2.5 ms fades of a 20 ms frame).
        assert_eq!(pause_cut(200, 960, 700), (680, 1));
        assert_eq!(pause_cut(0, 960, 5_000), (480, 1));
        // A 10 ms frame has no room to align 300 samples.
        assert_eq!(pause_cut(300, 480, 0), (0, 0));
    }
}
