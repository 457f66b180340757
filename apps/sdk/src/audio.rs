//! The call's audio port for the C API: the application pushes microphone
//! frames and pulls speaker frames; the call's driver takes what the
//! application pushed and keeps the speaker queue short
//! ([`sotto_engine::call::pacer`]), so the application's audio clock, not
//! the driver's tick, sets the pace. Each direction is a wait-free single-producer
//! single-consumer ring (rtrb), so neither the application's audio thread
//! nor the driver ever waits for the other or allocates. A full ring drops
//! the newest frame; frames are never split (the engine's `push_frame` and
//! `pop_frame`, which the softphone's sound-card callbacks use too).
//!
//! **Device rates.** The application's frames are 10 ms at the call's
//! `audio_sample_rate`; the engine's are 48 kHz. The conversion runs in
//! the driver, on the [`Port`] side, not in the application's push and
//! pull: those are called from the app's real-time audio thread (a
//! CoreAudio or AAudio callback with a deadline of a few ms), which should
//! only copy, as the softphone's sound-card callbacks only copy and its
//! call's tick resamples. The driver already encodes and decodes each
//! frame on its tick, and one 10 ms FFT per direction is small next to
//! that. So the rings hold audio at the device rate, and the driver's
//! pacer ([`sotto_engine::call::pacer`]) counts the speaker ring in
//! 10 ms frames of that rate, which is what the application pulls: it
//! sees the queue exactly as at 48 kHz. The resamplers' buffers are made
//! with the call ([`RateBridge`]), so a tick never allocates, and each
//! adds 5 ms of delay.

use rtrb::{Consumer, Producer, RingBuffer};
use sotto_codecs::CodecError;
use sotto_codecs::bridge::RateBridge;
use sotto_engine::call::wav::{AudioPort, frames_in, frames_ready, pop_frame, push_frame};
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

/// The engine's rate, which needs no conversion.
pub(crate) const ENGINE_RATE: u32 = 48_000;

/// The application's ends of the two rings.
pub struct AppAudio {
    /// Samples in one 10 ms frame at the application's rate.
    frame: usize,
    mic: Exclusive<Producer<i16>>,
    speaker: Exclusive<Consumer<i16>>,
}

/// The driver's ends of the two rings, and the conversions between the
/// application's rate and the engine's.
pub struct Port {
    /// Samples in one 10 ms frame at the application's rate.
    frame: usize,
    mic: Consumer<i16>,
    speaker: Producer<i16>,
    /// The application's rate to 48 kHz (`None` at 48 kHz).
    from_mic: Option<RateBridge>,
    /// 48 kHz to the application's rate (`None` at 48 kHz).
    to_speaker: Option<RateBridge>,
}

/// Two empty rings of [`MAX_FRAMES`] frames each, of 10 ms at `rate` Hz
/// (a multiple of 100 that the resampler takes, else an error).
pub fn pair(rate: u32) -> Result<(AppAudio, Port), CodecError> {
    let frame = rate as usize / 100;
    let from_mic = RateBridge::new(rate, ENGINE_RATE)?;
    let to_speaker = RateBridge::new(ENGINE_RATE, rate)?;
    let (mic_tx, mic_rx) = RingBuffer::new(MAX_FRAMES * frame);
    let (spk_tx, spk_rx) = RingBuffer::new(MAX_FRAMES * frame);
    Ok((
        AppAudio {
            frame,
            mic: Exclusive::new(mic_tx),
            speaker: Exclusive::new(spk_rx),
        },
        Port {
            frame,
            mic: mic_rx,
            speaker: spk_tx,
            from_mic,
            to_speaker,
        },
    ))
}

impl AppAudio {
    /// Samples in one 10 ms frame at the application's rate.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Queues microphone audio, a whole number of frames (checked by the
    /// caller); returns how many frames did not fit and were dropped, or
    /// `None` if another thread is pushing right now.
    pub fn push_mic(&self, pcm: &[i16]) -> Option<usize> {
        self.mic.try_with(|ring| {
            pcm.chunks_exact(self.frame)
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
        match &mut self.from_mic {
            None => pop_frame(&mut self.mic, frame),
            Some(bridge) => {
                if !pop_frame(&mut self.mic, bridge.frame()) {
                    return false;
                }
                frame.copy_from_slice(bridge.convert());
                true
            }
        }
    }

    fn play(&mut self, frame: &[i16]) {
        // The application is not pulling: drop rather than wait.
        match &mut self.to_speaker {
            None => push_frame(&mut self.speaker, frame),
            Some(bridge) => {
                bridge.frame().copy_from_slice(frame);
                push_frame(&mut self.speaker, bridge.convert())
            }
        };
    }

    fn captured_frames(&self) -> usize {
        frames_ready(&self.mic, self.frame)
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        Some(frames_in(&self.speaker, self.frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_engine::call::wav::FRAME;

    #[test]
    fn the_port_reports_its_queues_to_the_driver() {
        // What the driver paces by: frames the application pushed and not
        // yet taken, frames played and not yet pulled.
        let (app, mut port) = pair(ENGINE_RATE).unwrap();
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
        let (app, mut port) = pair(ENGINE_RATE).unwrap();
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
        let (app, _port) = pair(ENGINE_RATE).unwrap();
        let inner = app.mic.try_with(|_| app.push_mic(&[0; FRAME]));
        assert_eq!(inner, Some(None), "refused while the first is inside");
        assert_eq!(app.push_mic(&[0; FRAME]), Some(0), "free again afterwards");
    }

    #[test]
    fn at_a_device_rate_the_app_moves_its_frames_and_the_driver_48_khz_ones() {
        for rate in [44_100u32, 16_000, 8_000, 96_000] {
            let n = rate as usize / 100;
            let (app, mut port) = pair(rate).unwrap();
            assert_eq!(app.frame_samples(), n);
            // Three 10 ms frames pushed are three for the driver to take.
            assert_eq!(app.push_mic(&vec![4_000; 3 * n]), Some(0));
            assert_eq!(port.captured_frames(), 3, "{rate} Hz");
            let mut f = vec![0i16; FRAME];
            for _ in 0..3 {
                assert!(port.capture(&mut f), "{rate} Hz");
            }
            assert!(!port.capture(&mut f));
            // Past the resampler's 5 ms delay the level comes through.
            assert!((f[FRAME - 1] - 4_000).abs() < 200, "{rate} Hz: {f:?}");
            // Three played are three 10 ms frames queued for the app.
            for _ in 0..3 {
                port.play(&[-4_000; FRAME]);
            }
            assert_eq!(port.queued_playout_frames(), Some(3), "{rate} Hz");
            let mut out = vec![0i16; n];
            for left in (0..3).rev() {
                assert_eq!(app.pull_speaker(&mut out), Some(true));
                assert_eq!(port.queued_playout_frames(), Some(left));
            }
            assert!((out[n - 1] + 4_000).abs() < 200, "{rate} Hz: {out:?}");
        }
    }

    /// How far behind (ms, the worst after the first 500 ms) an app at
    /// `rate` hears the call when it starts pulling 1 s after the driver
    /// started ticking: the driver ticks every 10 ms from the call's
    /// creation, paced as the call's AudioPump paces it; the app then
    /// pulls a frame every 10 ms.
    fn late_puller_lag_ms(rate: u32) -> i32 {
        let (app, mut port) = pair(rate).unwrap();
        let n = rate as usize / 100;
        let mut pacer = sotto_engine::call::pacer::PlayoutPacer::default();
        let mut out = vec![0i16; n];
        let (mut produced, mut worst) = (0i32, 0i32);
        for tick in 0..600 {
            if tick >= 100 {
                assert_eq!(app.pull_speaker(&mut out), Some(true), "tick {tick}");
                // Frame k carries 50 k: the lag is how many were played
                // since. Read 7.5 ms in, past the resampler's 5 ms delay:
                // 2.5 ms into the frame it came from.
                let k = (f64::from(out[3 * n / 4]) / 50.0).round() as i32;
                let lag_ms = (produced - 1 - k) * 10;
                if tick >= 150 {
                    worst = worst.max(lag_ms);
                }
            }
            for _ in 0..pacer.frames_to_play(port.queued_playout_frames()) {
                port.play(&[(produced * 50) as i16; FRAME]);
                produced += 1;
            }
        }
        worst
    }

    #[test]
    fn an_app_that_starts_pulling_late_hears_the_call_live_within_half_a_second() {
        // The review's case. Before, it heard everything 180 ms late for
        // 18 s. At a device rate the pacer counts the app's frames.
        for rate in [48_000, 44_100, 16_000] {
            let worst = late_puller_lag_ms(rate);
            // Not below 0 either: a misread frame number would say so.
            assert!((0..=30).contains(&worst), "{rate} Hz: {worst} ms behind");
        }
    }
}
