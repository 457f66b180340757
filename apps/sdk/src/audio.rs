//! The call's audio port for the C API: the application pushes microphone
//! frames and pulls speaker frames; the call's driver takes and gives one
//! 10 ms frame per tick. Both queues are bounded and drop the oldest audio
//! when the other side does not keep up.

use sotto_engine::call::wav::{AudioPort, FRAME};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// Frames each queue holds at most (200 ms).
const MAX_FRAMES: usize = 20;

/// Audio between the application and the call's driver.
#[derive(Debug, Default)]
pub struct Queues {
    mic: VecDeque<i16>,
    speaker: VecDeque<i16>,
}

/// Shared by the [`Port`] (driver side) and the C API (application side).
pub type Shared = Arc<Mutex<Queues>>;

fn lock(q: &Shared) -> MutexGuard<'_, Queues> {
    // A poisoned lock only means a panic elsewhere; the queues stay usable.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

fn push_bounded(q: &mut VecDeque<i16>, pcm: &[i16]) {
    q.extend(pcm.iter().copied());
    let excess = q.len().saturating_sub(MAX_FRAMES * FRAME);
    q.drain(..excess);
}

/// Queues microphone audio (whole 10 ms frames, checked by the caller).
pub fn push_mic(q: &Shared, pcm: &[i16]) {
    push_bounded(&mut lock(q).mic, pcm);
}

/// Takes the oldest received frame into `out`; silence and `false` when
/// none is queued.
pub fn pull_speaker(q: &Shared, out: &mut [i16]) -> bool {
    let mut g = lock(q);
    if g.speaker.len() < out.len() {
        out.fill(0);
        return false;
    }
    let n = out.len();
    for (o, s) in out.iter_mut().zip(g.speaker.drain(..n)) {
        *o = s;
    }
    true
}

/// The driver's side of the queues.
#[derive(Debug)]
pub struct Port(pub Shared);

impl AudioPort for Port {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        let mut g = lock(&self.0);
        if g.mic.len() < frame.len() {
            return false;
        }
        let n = frame.len();
        for (o, s) in frame.iter_mut().zip(g.mic.drain(..n)) {
            *o = s;
        }
        true
    }

    fn play(&mut self, frame: &[i16]) {
        push_bounded(&mut lock(&self.0).speaker, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_in_order_and_queues_stay_bounded() {
        let q = Shared::default();
        let mut port = Port(Arc::clone(&q));
        let mut f = vec![0i16; FRAME];
        assert!(!port.capture(&mut f), "nothing pushed yet");
        for i in 0..(MAX_FRAMES + 5) {
            push_mic(&q, &vec![i as i16; FRAME]);
            port.play(&vec![i as i16; FRAME]);
        }
        assert!(port.capture(&mut f));
        assert_eq!(f[0], 5, "the five oldest frames were dropped");
        let mut out = vec![1i16; FRAME];
        assert!(pull_speaker(&q, &mut out));
        assert_eq!(out[FRAME - 1], 5);
        for _ in 1..MAX_FRAMES {
            assert!(pull_speaker(&q, &mut out));
        }
        assert!(!pull_speaker(&q, &mut out));
        assert!(out.iter().all(|&s| s == 0));
    }
}
