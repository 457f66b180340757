//! Moves audio between an [`AudioPort`] and a [`Call`] at each 10 ms tick.
//!
//! One piece of code for the driver (real devices, the system clock) and
//! the simulator (virtual time, simulated devices), so that what the
//! simulator shows of a device's clock is what a real call does.

use super::Call;
use super::pacer::PlayoutPacer;
use super::wav::{AudioPort, FRAME};
use std::time::Instant;

/// Most microphone frames taken at one tick: a late tick catches up, a
/// flood from a port cannot hold the caller.
const MAX_FRAMES_PER_TICK: usize = 5;

/// Takes the microphone's frames into a call and plays the call's audio,
/// paced to the port's device clock ([`PlayoutPacer`]).
#[derive(Debug, Clone)]
pub struct AudioPump {
    frame: Vec<i16>,
    pacer: PlayoutPacer,
}

impl Default for AudioPump {
    fn default() -> Self {
        Self {
            frame: vec![0; FRAME],
            pacer: PlayoutPacer::default(),
        }
    }
}

impl AudioPump {
    /// One tick at `now`: every captured frame (up to a bound) goes to the
    /// call, which drops and counts them until it is Secure; then as many
    /// frames as the pacer says are pulled from the call and played.
    pub fn tick(&mut self, now: Instant, call: &mut Call, port: &mut dyn AudioPort) {
        // At least one try per tick: a port may do its housekeeping there
        // (the softphone's switches to other devices).
        for _ in 0..port.captured_frames().clamp(1, MAX_FRAMES_PER_TICK) {
            if !port.capture(&mut self.frame) {
                break;
            }
            // A frame of the right size: only refused for its size.
            let _ = call.push_audio(now, &self.frame);
        }
        for _ in 0..self.pacer.frames_to_play(port.queued_playout_frames()) {
            call.pull_audio(now, &mut self.frame);
            port.play(&self.frame);
        }
    }
}
