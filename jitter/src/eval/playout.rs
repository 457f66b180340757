//! The buffers under evaluation behind one interface, so the same arrival
//! sequence drives each of them in virtual time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sotto_codecs::Decoder;
use sotto_codecs::opus::OpusDecoder;

use crate::buffer::{JitterBuffer, JitterConfig, PULL_SAMPLES};
use crate::packet::{Event, RtpPacket};
use crate::stats::JitterStats;

use super::{EvalError, FRAME_MS, Slot};

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;

/// A playout buffer driven on a 10 ms tick in virtual time.
pub trait Playout {
    /// Short name used in reports (`sotto`, `speex`, `fixed_80`).
    fn name(&self) -> String;
    /// A packet arrives at `now_ms`.
    fn insert(&mut self, now_ms: f64, packet: &RtpPacket);
    /// Pulls 10 ms at `now_ms` into `out` and appends to `played` the
    /// frame index (RTP timestamp / 960) and sample offset of every frame
    /// whose audio started in this block.
    fn pull(&mut self, now_ms: f64, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>);
    /// Samples removed and inserted so far: by time stretching, and by
    /// concealment played while waiting (which slows playout down).
    fn stretched(&self) -> (u64, u64);
    /// W3C statistics, for buffers that keep them.
    fn w3c(&self) -> Option<JitterStats> {
        None
    }
}

fn decoder() -> Result<OpusDecoder, EvalError> {
    Ok(OpusDecoder::new(48_000, 1)?)
}

/// Sotto's adaptive buffer.
pub struct SottoPlayout {
    jb: JitterBuffer,
    epoch: Instant,
}

impl SottoPlayout {
    /// A buffer with `config`.
    pub fn new(config: JitterConfig) -> Result<Self, EvalError> {
        Ok(Self {
            jb: JitterBuffer::new(config, Box::new(decoder()?))?,
            epoch: Instant::now(),
        })
    }

    /// The wrapped buffer (for its W3C statistics).
    pub fn buffer(&self) -> &JitterBuffer {
        &self.jb
    }

    fn at(&self, ms: f64) -> Instant {
        self.epoch + Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

impl Playout for SottoPlayout {
    fn name(&self) -> String {
        "sotto".into()
    }

    fn insert(&mut self, now_ms: f64, packet: &RtpPacket) {
        // Refused packets are counted in the statistics.
        let _ = self.jb.insert(self.at(now_ms), packet.clone());
    }

    fn pull(&mut self, now_ms: f64, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>) {
        self.jb.pull(self.at(now_ms), out);
        while let Some(e) = self.jb.poll_event() {
            if let Event::Played {
                timestamp, offset, ..
            } = e
            {
                played.push((u64::from(timestamp) / FRAME as u64, offset));
            }
        }
    }

    fn stretched(&self) -> (u64, u64) {
        let s = self.jb.stats();
        // Waiting with PLC slows playout like Speex's insertions do.
        (
            s.removed_samples_for_acceleration,
            s.inserted_samples_for_deceleration + s.waiting_concealed_samples,
        )
    }

    fn w3c(&self) -> Option<JitterStats> {
        Some(self.jb.stats().clone())
    }
}

/// Decoded audio waiting to be pulled, with frame start markers.
#[derive(Default)]
pub(super) struct Sync {
    pub(super) pcm: VecDeque<i16>,
    /// (position in the stream, frame index).
    marks: VecDeque<(u64, u64)>,
    appended: u64,
    emitted: u64,
}

impl Sync {
    pub(super) fn push(&mut self, frame: Option<u64>, pcm: &[i16]) {
        if let Some(f) = frame {
            self.marks.push_back((self.appended, f));
        }
        self.pcm.extend(pcm.iter().copied());
        self.appended += pcm.len() as u64;
    }

    pub(super) fn pull(&mut self, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>) {
        out.clear();
        let n = self.pcm.len().min(PULL_SAMPLES);
        out.extend(self.pcm.drain(..n));
        out.resize(PULL_SAMPLES, 0);
        let start = self.emitted;
        self.emitted += n as u64;
        self.appended = self.appended.max(self.emitted);
        while let Some(&(pos, f)) = self.marks.front() {
            if pos >= self.emitted {
                break;
            }
            self.marks.pop_front();
            played.push((f, (pos - start) as usize));
        }
    }
}

/// The frames received and not yet played, decoded one at a time into
/// a [`Sync`]: the part of a fixed-timeline player that does not depend
/// on when it plays.
struct FrameQueue {
    dec: OpusDecoder,
    received: HashMap<u64, Vec<u8>>,
    sync: Sync,
    pcm: Vec<i16>,
}

impl FrameQueue {
    fn new() -> Result<Self, EvalError> {
        Ok(Self {
            dec: decoder()?,
            received: HashMap::new(),
            sync: Sync::default(),
            pcm: Vec::new(),
        })
    }

    /// Plays frame `f` next: the packet, else the next one's FEC, else PLC;
    /// only its first `keep` samples.
    fn play(&mut self, f: u64, keep: usize) {
        let own = self.received.remove(&f);
        let next = self.received.get(&(f + 1)).cloned();
        let mut pcm = std::mem::take(&mut self.pcm);
        let real = decode_frame(&mut self.dec, own.as_deref(), next.as_deref(), &mut pcm);
        pcm.truncate(keep);
        self.sync.push(real.then_some(f), &pcm);
        self.pcm = pcm;
    }
}

/// Decodes one frame: the packet, else the next packet's FEC, else PLC.
/// Returns whether real audio (packet or FEC) was produced.
pub(super) fn decode_frame(
    dec: &mut OpusDecoder,
    own: Option<&[u8]>,
    next: Option<&[u8]>,
    pcm: &mut Vec<i16>,
) -> bool {
    pcm.clear();
    if let Some(p) = own
        && dec.decode_into(p, pcm).is_ok()
    {
        return true;
    }
    pcm.clear();
    if let Some(n) = next
        && let Ok(Some(_)) = dec.decode_fec_into(n, pcm)
    {
        return true;
    }
    pcm.clear();
    if dec.conceal_into(FRAME, pcm).is_err() {
        pcm.clear();
        pcm.resize(FRAME, 0);
    }
    false
}

/// A fixed-delay buffer: frame `k` (sent at `20k` ms) plays at
/// `20k + delay` ms if it (or the next packet, for FEC) has arrived by then.
pub struct FixedPlayout {
    delay_ms: f64,
    frames: FrameQueue,
    next_frame: u64,
}

impl FixedPlayout {
    /// A buffer holding every frame for `delay_ms` after it was sent.
    pub fn new(delay_ms: f64) -> Result<Self, EvalError> {
        Ok(Self {
            delay_ms,
            frames: FrameQueue::new()?,
            next_frame: 0,
        })
    }
}

impl Playout for FixedPlayout {
    fn name(&self) -> String {
        format!("fixed_{}", self.delay_ms as u64)
    }

    fn insert(&mut self, _now_ms: f64, packet: &RtpPacket) {
        let f = u64::from(packet.timestamp) / FRAME as u64;
        if f >= self.next_frame {
            self.frames.received.insert(f, packet.payload.clone());
        }
    }

    fn pull(&mut self, now_ms: f64, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>) {
        // The media time this block starts at.
        let media_ms = now_ms - self.delay_ms;
        while self.frames.sync.pcm.len() < PULL_SAMPLES && media_ms >= 0.0 {
            self.frames.play(self.next_frame, FRAME);
            self.next_frame += 1;
        }
        self.frames.sync.pull(out, played);
    }

    fn stretched(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// Plays an offline schedule (an oracle's): each frame starts at its
/// slot. Frames are decoded, rebuilt from FEC or concealed on that
/// timeline, as a fixed buffer would; the time before a slot (a pause the
/// schedule made longer) is silence, and a cuttable frame (a pause the
/// schedule made shorter) is cut so that the next frame of speech starts
/// at its slot. A talkspurt scheduled to start before the previous one has
/// finished (the per-talkspurt oracle does not forbid it) starts right
/// after it.
pub struct SchedulePlayout {
    name: String,
    /// Every frame to play, in sending order.
    slots: Vec<Slot>,
    next: usize,
    frames: FrameQueue,
    silence: Vec<i16>,
}

impl SchedulePlayout {
    /// A player for `slots` (in sending order), reported as `name`.
    pub fn new(name: &str, slots: Vec<Slot>) -> Result<Self, EvalError> {
        Ok(Self {
            name: name.into(),
            slots,
            next: 0,
            frames: FrameQueue::new()?,
            silence: Vec::new(),
        })
    }

    /// The next frame's slot, and for a cuttable one the time the pause
    /// it starts must end: its next frame of speech's slot.
    fn next_slot(&self) -> Option<(Slot, Option<f64>)> {
        let slot = *self.slots.get(self.next)?;
        if !slot.cuttable {
            return Some((slot, None));
        }
        let pause = self.slots[self.next..]
            .iter()
            .take_while(|s| s.cuttable)
            .count();
        let end = self
            .slots
            .get(self.next + pause)
            .map(|speech| speech.at_ms - (pause - 1) as f64 * FRAME_MS);
        Some((slot, end))
    }
}

impl Playout for SchedulePlayout {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn insert(&mut self, _now_ms: f64, packet: &RtpPacket) {
        let f = u64::from(packet.timestamp) / FRAME as u64;
        if self
            .slots
            .get(self.next)
            .is_some_and(|next| f >= next.frame)
        {
            self.frames.received.insert(f, packet.payload.clone());
        }
    }

    fn pull(&mut self, now_ms: f64, out: &mut Vec<i16>, played: &mut Vec<(u64, usize)>) {
        while self.frames.sync.pcm.len() < PULL_SAMPLES {
            let Some((slot, pause_end)) = self.next_slot() else {
                break;
            };
            // When the next sample appended will be played.
            let queued = self.frames.sync.pcm.len();
            let at_ms = now_ms + queued as f64 / 48.0;
            // A pause that must end sooner than its slot says is cut: it
            // starts now, as long as the rest of it allows.
            let start_ms = pause_end.map_or(slot.at_ms, |end| slot.at_ms.min(end - FRAME_MS));
            if start_ms > at_ms + 1e-6 {
                let n =
                    (((start_ms - at_ms) * 48.0).round() as usize).clamp(1, PULL_SAMPLES - queued);
                self.silence.resize(n, 0);
                self.frames.sync.push(None, &self.silence[..n]);
                continue;
            }
            let keep = pause_end.map_or(FRAME, |end| {
                (((end - at_ms) * 48.0).round().max(0.0) as usize).min(FRAME)
            });
            self.frames.play(slot.frame, keep);
            self.next += 1;
        }
        self.frames.sync.pull(out, played);
    }

    fn stretched(&self) -> (u64, u64) {
        (0, 0)
    }
}
