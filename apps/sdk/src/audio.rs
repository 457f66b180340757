//! The call's audio port for the C API: the application pushes microphone
//! frames and pulls speaker frames; the call's driver takes what the
//! application pushed and keeps the speaker queue short
//! ([`sotto_engine::call::pacer`]), so the application's audio clock, not
//! the driver's tick, sets the pace. Each direction is a wait-free single-producer
//! single-consumer ring (rtrb), so neither the application's audio thread
//! nor the driver ever waits for the other or allocates. A full ring drops
//! the newest frame; frames are never split (the engine's `push_frame` and
//! `pop_frame`, which the softphone's sound-card callbacks use too).

use rtrb::{Consumer, Producer, RingBuffer};
use sotto_engine::call::wav::{AudioPort, FRAME, frames_in, frames_ready, pop_frame, push_frame};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Frames each ring holds at most (200 ms).
const MAX_FRAMES: usize = 20;

/// A value one thread at a time may use. A second thread that comes while
/// the first is inside gets `None` at once instead of waiting: the C API's
/// "one pushing thread, one pulling thread" contract is then reported as
/// `SOTTO_STATUS_BUSY` rather than being undefined behaviour.
struct Exclusive<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only through `try_with`, whose flag admits
// one thread at a time; the value itself only needs to move between
// threads (`Send`).
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    fn new(value: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        let _release = Release(&self.busy);
        // SAFETY: the flag was clear and is now ours until `_release` drops,
        // so no other reference to `value` exists meanwhile.
        Some(f(unsafe { &mut *self.value.get() }))
    }
}

/// The application's ends of the two rings.
pub struct AppAudio {
    mic: Exclusive<Producer<i16>>,
    speaker: Exclusive<Consumer<i16>>,
}

/// The driver's ends of the two rings.
pub struct Port {
    mic: Consumer<i16>,
    speaker: Producer<i16>,
}

/// Two empty rings of [`MAX_FRAMES`] frames each.
pub fn pair() -> (AppAudio, Port) {
    let (mic_tx, mic_rx) = RingBuffer::new(MAX_FRAMES * FRAME);
    let (spk_tx, spk_rx) = RingBuffer::new(MAX_FRAMES * FRAME);
    (
        AppAudio {
            mic: Exclusive::new(mic_tx),
            speaker: Exclusive::new(spk_rx),
        },
        Port {
            mic: mic_rx,
            speaker: spk_tx,
        },
    )
}

impl AppAudio {
    /// Queues microphone audio, a whole number of frames (checked by the
    /// caller); returns how many frames did not fit and were dropped, or
    /// `None` if another thread is pushing right now.
    pub fn push_mic(&self, pcm: &[i16]) -> Option<usize> {
        self.mic.try_with(|ring| {
            pcm.chunks_exact(FRAME)
                .filter(|f| !push_frame(ring, f))
                .count()
        })
    }

    /// Takes the oldest received frame into `out`; silence and `false` when
    /// none is queued; `None` if another thread is pulling right now.
    pub fn pull_speaker(&self, out: &mut [i16]) -> Option<bool> {
        self.speaker.try_with(|ring| {
            let got = pop_frame(ring, out);
            if !got {
                out.fill(0);
            }
            got
        })
    }
}

impl AudioPort for Port {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        pop_frame(&mut self.mic, frame)
    }

    fn play(&mut self, frame: &[i16]) {
        // The application is not pulling: drop rather than wait.
        push_frame(&mut self.speaker, frame);
    }

    fn captured_frames(&self) -> usize {
        frames_ready(&self.mic, FRAME)
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        Some(frames_in(&self.speaker, FRAME))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_reports_its_queues_to_the_driver() {
        // What the driver paces by: frames the application pushed and not
        // yet taken, frames played and not yet pulled.
        let (app, mut port) = pair();
        assert_eq!(port.captured_frames(), 0);
        assert_eq!(app.push_mic(&[7; 3 * FRAME]), Some(0));
        assert_eq!(port.captured_frames(), 3);
        let mut f = vec![0i16; FRAME];
        assert!(port.capture(&mut f));
        assert_eq!(port.captured_frames(), 2);
        assert_eq!(port.queued_playout_frames(), Some(0));
        port.play(&[1; FRAME]);
        port.play(&[2; FRAME]);
        assert_eq!(port.queued_playout_frames(), Some(2));
        assert_eq!(app.pull_speaker(&mut f), Some(true));
        assert_eq!(port.queued_playout_frames(), Some(1));
    }

    #[test]
    fn frames_pass_in_order_and_rings_stay_bounded() {
        let (app, mut port) = pair();
        let mut f = vec![0i16; FRAME];
        assert!(!port.capture(&mut f), "nothing pushed yet");
        for i in 0..(MAX_FRAMES + 5) {
            let dropped = app.push_mic(&vec![i as i16; FRAME]);
            assert_eq!(dropped, Some(usize::from(i >= MAX_FRAMES)));
            port.play(&vec![i as i16; FRAME]);
        }
        assert!(port.capture(&mut f));
        assert_eq!(
            f[0], 0,
            "the oldest frame comes first; the newest were dropped"
        );
        let mut out = vec![1i16; FRAME];
        assert_eq!(app.pull_speaker(&mut out), Some(true));
        assert_eq!(out[FRAME - 1], 0);
        for i in 1..MAX_FRAMES {
            assert_eq!(app.pull_speaker(&mut out), Some(true));
            assert_eq!(out[0], i as i16);
        }
        assert_eq!(app.pull_speaker(&mut out), Some(false));
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn a_second_thread_inside_is_refused_not_blocked() {
        let (app, _port) = pair();
        let inner = app.mic.try_with(|_| app.push_mic(&[0; FRAME]));
        assert_eq!(inner, Some(None), "refused while the first is inside");
        assert_eq!(app.push_mic(&[0; FRAME]), Some(0), "free again afterwards");
    }

    #[test]
    fn an_app_that_starts_pulling_late_hears_the_call_live_within_half_a_second() {
        // The review's case: the driver ticks every 10 ms from the call's
        // creation, paced as the call's AudioPump paces it; the app opens
        // its audio device 1 s later (on SecureUp) and then pulls a frame
        // every 10 ms. Before, it heard everything 180 ms late for 18 s.
        let (app, mut port) = pair();
        let mut pacer = sotto_engine::call::pacer::PlayoutPacer::default();
        let mut out = vec![0i16; FRAME];
        let (mut produced, mut worst) = (0i32, 0i32);
        for tick in 0..600 {
            if tick >= 100 {
                assert_eq!(app.pull_speaker(&mut out), Some(true), "tick {tick}");
                // Frame k carries k: the lag is how many were played since.
                let lag_ms = (produced - 1 - i32::from(out[0])) * 10;
                if tick >= 150 {
                    worst = worst.max(lag_ms);
                }
            }
            for _ in 0..pacer.frames_to_play(port.queued_playout_frames()) {
                port.play(&[produced as i16; FRAME]);
                produced += 1;
            }
        }
        assert!(worst <= 30, "{worst} ms behind");
    }
}
