//! Headless audio for the softphone: a WAV clip as the microphone and a
//! recording of what the call plays, both gated on ZRTP Secure so the
//! clip starts at its beginning once media may flow.

use sotto_engine::call::wav::AudioPort;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Opens the gate of a [`GatedAudio`] from another task.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Starts capture and recording.
    pub fn open(&self) {
        self.0.store(true, Ordering::Release);
    }
    fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A clip played once (silence after it) and a bounded recording.
#[derive(Debug)]
pub struct GatedAudio {
    source: Vec<i16>,
    pos: usize,
    gate: Gate,
    recording: Arc<Mutex<Vec<i16>>>,
    max_recorded: usize,
}

impl GatedAudio {
    /// Plays `source` (48 kHz mono) once the gate opens; records at most
    /// `max_samples` of what the call plays after that.
    pub fn new(source: Vec<i16>, max_samples: usize) -> Self {
        Self {
            source,
            pos: 0,
            gate: Gate::default(),
            recording: Arc::default(),
            max_recorded: max_samples,
        }
    }

    /// The gate.
    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// The recording, shared with the port.
    pub fn recording(&self) -> Arc<Mutex<Vec<i16>>> {
        Arc::clone(&self.recording)
    }
}

impl AudioPort for GatedAudio {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        if !self.gate.is_open() {
            return false;
        }
        for s in frame.iter_mut() {
            *s = self.source.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
        }
        true
    }

    fn play(&mut self, frame: &[i16]) {
        if !self.gate.is_open() {
            return;
        }
        let mut r = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() + frame.len() <= self.max_recorded {
            r.extend_from_slice(frame);
        }
    }
}

/// `clip` repeated (or cut) to exactly `samples` samples.
pub fn repeat_to(clip: &[i16], samples: usize) -> Vec<i16> {
    clip.iter().copied().cycle().take(samples).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_flows_before_the_gate_opens() {
        let mut a = GatedAudio::new(vec![5; 15], 10);
        let mut f = [1i16; 10];
        assert!(!a.capture(&mut f));
        a.play(&f);
        assert!(a.recording().lock().unwrap().is_empty());
        a.gate().open();
        assert!(a.capture(&mut f));
        assert_eq!(f, [5; 10]);
        assert!(a.capture(&mut f));
        assert_eq!(&f[..], &[5, 5, 5, 5, 5, 0, 0, 0, 0, 0]);
        a.play(&f);
        a.play(&f);
        assert_eq!(a.recording().lock().unwrap().len(), 10, "bounded");
        assert!(repeat_to(&[1, 2], 5) == [1, 2, 1, 2, 1]);
        assert!(repeat_to(&[], 5).is_empty());
    }
}
