//! A side's microphone and speaker in the simulation.
//!
//! By default they are paced by the 10 ms tick itself: one frame captured
//! and one played per tick, as the WAV ports do. With a [`DeviceClock`]
//! they are a sound card's: every `period` samples of *its* clock, a
//! callback captures into a queue and plays from another, as the
//! softphone's and the SDK's ports do with their rings. The call then sees
//! the card's clock only through those queues, as a real call does.

use crate::call::wav::{AudioPort, FRAME};
use std::collections::VecDeque;
use std::time::Duration;

/// Samples each queue holds: 200 ms, as the softphone's and the SDK's
/// rings.
const QUEUE: usize = 48_000 / 5;

/// A sound card's clock (see [`super::Sim::set_device`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceClock {
    /// How much slower than the system clock the card runs, ppm
    /// (negative: faster).
    pub slow_ppm: f64,
    /// Samples at 48 kHz the card captures and plays per callback.
    pub period: usize,
}

impl DeviceClock {
    /// Checks that the card runs at all (within 10 % of the system clock)
    /// and calls back at least once a second.
    pub fn validate(&self) -> Result<(), String> {
        if self.slow_ppm.is_nan() || self.slow_ppm.abs() > 100_000.0 {
            return Err(format!(
                "slow_ppm {} must be within +-100 000",
                self.slow_ppm
            ));
        }
        if !(1..=48_000).contains(&self.period) {
            return Err(format!("period {} must be 1..=48 000 samples", self.period));
        }
        Ok(())
    }
}

/// What a simulated sound card saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Callbacks that found less than a period queued for playout, once
    /// the call had queued some (part of the period is then silent).
    pub underruns: u64,
    /// Frames from the call that the full playout queue refused.
    pub playout_overflows: u64,
    /// Captured samples the full microphone queue refused.
    pub capture_overflows: u64,
    /// Most samples queued for playout at a callback.
    pub most_queued: usize,
}

/// The card's state.
#[derive(Debug, Clone)]
struct Device {
    clock: DeviceClock,
    /// Callbacks so far.
    callbacks: u64,
    mic: VecDeque<i16>,
    speaker: VecDeque<i16>,
    /// Whether the call has queued anything to play yet.
    playing: bool,
    stats: DeviceStats,
}

/// A side's audio: what it says, what it captured and what it played.
#[derive(Debug, Clone, Default)]
pub struct SimAudio {
    /// Speech to say, looped (silence if empty).
    source: Vec<i16>,
    /// Microphone audio captured, one sample per 1/48 000 s (of the card's
    /// clock, if it has one) from the start.
    pub sent: Vec<i16>,
    /// Audio played, aligned the same way.
    pub received: Vec<i16>,
    device: Option<Device>,
}

impl SimAudio {
    /// Says `pcm` (looped) from now on.
    pub(super) fn set_source(&mut self, pcm: Vec<i16>) {
        self.source = pcm;
    }

    /// From now on a sound card with `clock` captures and plays.
    pub(super) fn set_device(&mut self, clock: DeviceClock) {
        self.device = Some(Device {
            clock,
            callbacks: 0,
            mic: VecDeque::with_capacity(QUEUE),
            speaker: VecDeque::with_capacity(QUEUE),
            playing: false,
            stats: DeviceStats::default(),
        });
    }

    /// What the sound card saw, if there is one.
    pub fn device_stats(&self) -> Option<DeviceStats> {
        self.device.as_ref().map(|d| d.stats)
    }

    /// Runs the card's callbacks due by `elapsed` on the system clock.
    pub(super) fn advance(&mut self, elapsed: Duration) {
        let Some(d) = self.device.as_mut() else {
            return;
        };
        let period = d.clock.period;
        // Samples of the card's clock by now.
        let card = elapsed.as_secs_f64() * 48_000.0 / (1.0 + d.clock.slow_ppm * 1e-6);
        while ((d.callbacks + 1) * period as u64) as f64 <= card {
            d.callbacks += 1;
            for _ in 0..period {
                let s = next_sample(&self.source, self.sent.len());
                self.sent.push(s);
                if d.mic.len() < QUEUE {
                    d.mic.push_back(s);
                } else {
                    d.stats.capture_overflows += 1;
                }
            }
            d.stats.most_queued = d.stats.most_queued.max(d.speaker.len());
            if d.playing && d.speaker.len() < period {
                d.stats.underruns += 1;
            }
            let played = d.speaker.len().min(period);
            self.received.extend(d.speaker.drain(..played));
            self.received
                .resize(self.received.len() + period - played, 0);
        }
    }
}

/// Sample `at` of the looped `source` (silence if empty).
fn next_sample(source: &[i16], at: usize) -> i16 {
    if source.is_empty() {
        0
    } else {
        source[at % source.len()]
    }
}

impl AudioPort for SimAudio {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        match self.device.as_mut() {
            None => {
                for s in frame.iter_mut() {
                    *s = next_sample(&self.source, self.sent.len());
                    self.sent.push(*s);
                }
                true
            }
            Some(d) if d.mic.len() >= frame.len() => {
                let n = frame.len();
                for (s, m) in frame.iter_mut().zip(d.mic.drain(..n)) {
                    *s = m;
                }
                true
            }
            Some(_) => false,
        }
    }

    fn play(&mut self, frame: &[i16]) {
        match self.device.as_mut() {
            None => self.received.extend_from_slice(frame),
            Some(d) if d.speaker.len() + frame.len() <= QUEUE => {
                d.speaker.extend(frame);
                d.playing = true;
            }
            Some(d) => d.stats.playout_overflows += 1,
        }
    }

    fn captured_frames(&self) -> usize {
        self.device.as_ref().map_or(1, |d| d.mic.len() / FRAME)
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        self.device.as_ref().map(|d| d.speaker.len() / FRAME)
    }
}
