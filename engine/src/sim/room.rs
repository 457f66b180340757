//! A room for echo cancellation: what a port plays comes back into its
//! microphone 60 ms later (or as late as asked) through an echo path (a
//! speaker and a wall),
//! with the near-end talker's voice on top. Deterministic; the echo alone
//! is kept so that what a canceller left of it can be measured.

use crate::call::wav::AudioPort;

/// The echo path: (delay after the first, in 48 kHz samples; gain) of
/// each reflection.
pub const ECHO_PATH: [(usize, f32); 4] = [(0, 0.5), (96, 0.25), (240, -0.12), (480, 0.06)];

/// When the first reflection comes by default: 60 ms (device buffers).
pub const ECHO_DELAY: usize = 2_880;

/// A room as an [`AudioPort`]: plays into the echo path, captures echo
/// plus the near-end voice.
#[derive(Debug)]
pub struct EchoRoom {
    played: Vec<i16>,
    near: Vec<i16>,
    near_from: usize,
    /// When the first reflection comes, in samples.
    delay: usize,
    captured: usize,
    echo: Vec<f32>,
}

impl EchoRoom {
    /// A room whose near-end talker says `near` (from its sample
    /// `near_from` on; silent before).
    pub fn new(near: Vec<i16>, near_from: usize) -> Self {
        Self {
            played: Vec::new(),
            near,
            near_from,
            delay: ECHO_DELAY,
            captured: 0,
            echo: Vec::new(),
        }
    }

    /// The same room with its first reflection `delay` samples after the
    /// sound was played (longer device buffers).
    pub fn with_delay(mut self, delay: usize) -> Self {
        self.delay = delay;
        self
    }

    /// The echo in each sample captured so far (without the near end).
    pub fn echo(&self) -> &[f32] {
        &self.echo
    }

    /// The near-end talker's voice at sample `t` of the capture.
    pub fn near_at(&self, t: usize) -> i16 {
        if t >= self.near_from {
            self.near.get(t).copied().unwrap_or(0)
        } else {
            0
        }
    }
}

impl AudioPort for EchoRoom {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        for (i, s) in frame.iter_mut().enumerate() {
            let t = self.captured + i;
            let echo: f32 = (ECHO_PATH.iter())
                .map(|(d, h)| (self.delay + d, h))
                .filter(|(d, _)| t >= *d && t - d < self.played.len())
                .map(|(d, h)| h * f32::from(self.played[t - d]))
                .sum();
            self.echo.push(echo);
            *s = (echo + f32::from(self.near_at(t))).clamp(-32_768.0, 32_767.0) as i16;
        }
        self.captured += frame.len();
        true
    }

    fn play(&mut self, frame: &[i16]) {
        self.played.extend_from_slice(frame);
    }
}

/// Root mean square.
pub fn rms(x: &[f32]) -> f64 {
    let sum: f64 = x.iter().map(|v| f64::from(*v).powi(2)).sum();
    (sum / x.len().max(1) as f64).sqrt()
}

/// Echo return loss enhancement, dB: how much weaker `sent` (what a
/// canceller let through while only the far end talked) is than `echo`.
pub fn erle_db(echo: &[f32], sent: &[f32]) -> f64 {
    20.0 * (rms(echo) / rms(sent).max(f64::MIN_POSITIVE)).log10()
}

/// Normalised correlation of `a` and `b` at lag 0.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}
