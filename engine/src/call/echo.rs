//! Acoustic echo cancellation for a device's audio. What a call plays on a
//! speaker (a laptop's, a desk phone's hands-free) comes back into its
//! microphone, and the peer hears themselves a round trip late. An
//! [`EchoCancelled`] port takes what is played as the far end and removes
//! its echo from what is captured, with WebRTC's AEC3 (the `aec3` crate's
//! port: a linear filter that finds the echo path's delay itself, and a
//! suppressor for what is left), and a high-pass filter before it.
//!
//! Not for a port whose audio never meets a room (WAV files), nor on a
//! phone whose OS cancels echo already (Android's `VOICE_COMMUNICATION`,
//! iOS's voice-processing I/O): there it only costs CPU and a frame.

use super::wav::{AudioPort, FRAME};
use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};
use std::sync::mpsc;

/// Why echo cancellation could not start.
#[derive(Debug, thiserror::Error)]
#[error("echo canceller: {0}")]
pub struct EchoError(String);

/// Counters of an [`EchoCancelled`] port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Captured frames that went through the canceller.
    pub frames: u64,
    /// Captured frames sent as they were, the canceller having refused
    /// them (counted, never expected).
    pub passed_through: u64,
}

/// What the canceller's thread is given, in the order the port saw it.
enum Job {
    /// 10 ms that were played.
    Far(Vec<f32>),
    /// 10 ms that were captured (the frame's number): sent back with the
    /// echo removed.
    Near(u64, Vec<f32>),
}

/// Longest a captured frame waits for the canceller before it is sent as
/// it was (the canceller takes about 0.2 ms; a stalled one must not stall
/// the call's driver). The unit tests, which count every frame, wait as
/// long as a loaded machine may need.
const WAIT: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_secs(30)
} else {
    std::time::Duration::from_millis(20)
};

/// The echo canceller: its own thread (the `aec3` pipeline may not move
/// between threads, and a call's port does), fed what is played and given
/// each captured frame there and back, which the driver's tick waits for
/// (about 0.2 ms). The thread ends when this is dropped.
pub struct EchoCanceller {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<(u64, Option<Vec<f32>>)>,
    /// The number of the next captured frame.
    next: u64,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller").finish_non_exhaustive()
    }
}

/// An [`AudioPort`] whose capture has the echo of its playout removed.
/// The capture is one 10 ms frame later than the inner port's.
#[derive(Debug)]
pub struct EchoCancelled<P> {
    inner: P,
    aec: EchoCanceller,
    stats: EchoStats,
}

/// The pipeline: AEC3 after a high-pass filter. The call's own jitter
/// buffer and Opus see to level and noise; only the echo (and the hum
/// under 100 Hz) is taken out here.
fn pipeline() -> Result<LinearPipeline, EchoError> {
    let format = AudioFormat::ten_ms(48_000, 1);
    linear::builder(format, format)
        .enable_noise_suppression(false)
        .enable_gain_controller2(false)
        .build()
        .map_err(|e| EchoError(format!("{e:?}")))
}

/// The canceller's thread: ends when the port is dropped.
fn run(
    mut aec: LinearPipeline,
    jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<(u64, Option<Vec<f32>>)>,
) {
    let mut out = vec![0.0; FRAME];
    for job in jobs {
        match job {
            // A refused far-end frame only leaves the filter a frame short.
            Job::Far(far) => drop(aec.handle_render_frame(&far)),
            Job::Near(n, mut near) => {
                let result = match aec.process_capture_frame(&near, &mut out) {
                    Ok(true) => {
                        near.copy_from_slice(&out);
                        Some(near)
                    }
                    // Its first frame, held for the one frame of delay.
                    Ok(false) => {
                        near.fill(0.0);
                        Some(near)
                    }
                    Err(_) => None,
                };
                if done.send((n, result)).is_err() {
                    return;
                }
            }
        }
    }
}

impl EchoCanceller {
    /// Starts the canceller's thread (48 kHz mono 10 ms frames, as every
    /// [`AudioPort`]).
    pub fn start() -> Result<Self, EchoError> {
        let (jobs, jobs_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        std::thread::Builder::new()
            .name("sotto-echo".into())
            .spawn(move || match pipeline() {
                Ok(aec) => {
                    let _ = ready_tx.send(Ok(()));
                    run(aec, jobs_rx, done_tx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| EchoError(e.to_string()))?;
        ready
            .recv()
            .map_err(|_| EchoError("its thread ended".into()))??;
        Ok(Self {
            jobs,
            done,
            next: 0,
        })
    }

    /// Removes the echo from a captured frame in place; `false` (the
    /// frame unchanged) if the canceller refused it or took longer than
    /// [`WAIT`] (its answer for that frame is then dropped when it comes).
    fn cancel(&mut self, frame: &mut [i16]) -> bool {
        let n = self.next;
        self.next += 1;
        if frame.len() != FRAME || self.jobs.send(Job::Near(n, to_f32(frame))).is_err() {
            return false;
        }
        let deadline = std::time::Instant::now() + WAIT;
        let out = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.done.recv_timeout(left) {
                Ok((m, out)) if m == n => break out,
                Ok(_) => continue,
                Err(_) => return false,
            }
        };
        let Some(out) = out else {
            return false;
        };
        for (o, s) in frame.iter_mut().zip(&out) {
            *o = (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
        }
        true
    }

    /// Takes a played frame as the far end.
    fn far_end(&self, frame: &[i16]) {
        if frame.len() == FRAME {
            let _ = self.jobs.send(Job::Far(to_f32(frame)));
        }
    }
}

impl<P: AudioPort> EchoCancelled<P> {
    /// Cancels the echo of `inner`'s playout in its capture with `aec`.
    pub fn new(inner: P, aec: EchoCanceller) -> Self {
        Self {
            inner,
            aec,
            stats: EchoStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// The port it wraps.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

fn to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|s| f32::from(*s) / 32_768.0).collect()
}

impl<P: AudioPort> AudioPort for EchoCancelled<P> {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        if !self.inner.capture(frame) {
            return false;
        }
        if self.aec.cancel(frame) {
            self.stats.frames += 1;
        } else {
            self.stats.passed_through += 1;
        }
        true
    }

    fn play(&mut self, frame: &[i16]) {
        self.aec.far_end(frame);
        self.inner.play(frame);
    }

    fn captured_frames(&self) -> usize {
        self.inner.captured_frames()
    }

    fn queued_playout_frames(&self) -> Option<usize> {
        self.inner.queued_playout_frames()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::wav::load_48k_mono;
    use crate::sim::room::{EchoRoom, correlation, erle_db};

    /// Speech from the test data, looped to `seconds`.
    fn speech(file: &str, seconds: usize) -> Vec<i16> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/speech");
        let one = load_48k_mono(dir.join(file)).unwrap();
        one.iter().copied().cycle().take(48_000 * seconds).collect()
    }

    /// Plays `far` and captures for as long, 10 ms at a time, through an
    /// echo-cancelled room; returns the room and what the call got.
    fn call_in_a_room(far: &[i16], room: EchoRoom) -> (EchoRoom, Vec<f32>) {
        let mut port = EchoCancelled::new(room, EchoCanceller::start().unwrap());
        let mut sent = Vec::with_capacity(far.len());
        let mut frame = [0i16; FRAME];
        for chunk in far.chunks_exact(FRAME) {
            port.play(chunk);
            assert!(port.capture(&mut frame));
            sent.extend(frame.iter().map(|s| f32::from(*s)));
        }
        assert_eq!(port.stats().passed_through, 0);
        assert_eq!(port.stats().frames as usize, far.len() / FRAME);
        (port.inner, sent)
    }

    /// The far end's echo is taken out of what the call sends: by more
    /// than 25 dB once the filter has converged (2 s in). While both
    /// talk, the near end's voice goes through, one frame late.
    #[test]
    fn the_echo_is_removed_and_the_near_end_kept() {
        let far = speech("pesq_repo/speech.wav", 12);
        let near = speech("alsa_48k/Front_Center.wav", 12);
        let (room, sent) = call_in_a_room(&far, EchoRoom::new(near, 48_000 * 8));
        let single = 48_000 * 2..48_000 * 8;
        let erle = erle_db(&room.echo()[single.clone()], &sent[single]);
        println!("echo return loss enhancement, far end alone: {erle:.1} dB");
        assert!(erle > 25.0, "{erle:.1} dB");

        let both = 48_000 * 8..48_000 * 12;
        let near: Vec<f32> = both.clone().map(|t| f32::from(room.near_at(t))).collect();
        let raw: Vec<f32> = (both.clone())
            .map(|t| room.echo()[t] + f32::from(room.near_at(t)))
            .collect();
        let kept = correlation(&sent[both.start + FRAME..], &near);
        println!(
            "double talk: the near end in what is sent {kept:.3} (in the raw capture {:.3})",
            correlation(&raw, &near)
        );
        assert!(kept > 0.7, "{kept:.3}");
    }

    /// Device buffers may hold far more than 60 ms: AEC3 finds the echo
    /// path's delay itself, up to 400 ms here.
    #[test]
    fn a_late_echo_is_removed_too() {
        let far = speech("pesq_repo/speech.wav", 8);
        for ms in [250, 400] {
            let room = EchoRoom::new(Vec::new(), usize::MAX).with_delay(48 * ms);
            let (room, sent) = call_in_a_room(&far, room);
            let single = 48_000 * 3..48_000 * 8;
            let erle = erle_db(&room.echo()[single.clone()], &sent[single]);
            println!("echo {ms} ms late: {erle:.1} dB removed");
            assert!(erle > 25.0, "{ms} ms: {erle:.1} dB");
        }
    }

    /// With nothing played there is no echo: the capture goes through
    /// unchanged but for the frame of delay.
    #[test]
    fn without_a_far_end_the_capture_passes() {
        let near = speech("alsa_48k/Front_Center.wav", 4);
        let silence = vec![0i16; near.len()];
        let (room, sent) = call_in_a_room(&silence, EchoRoom::new(near, 0));
        let near: Vec<f32> = (48_000..48_000 * 4)
            .map(|t| f32::from(room.near_at(t)))
            .collect();
        let kept = correlation(&sent[48_000 + FRAME..], &near);
        assert!(kept > 0.9, "{kept:.3}");
    }

    /// A canceller that answers too late leaves the frame as it was, and
    /// its late answer is not taken for the next frame's.
    #[test]
    fn a_late_answer_is_not_taken_for_the_next_frames() {
        let (jobs, _jobs_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let mut aec = EchoCanceller {
            jobs,
            done,
            next: 0,
        };
        // The answer to frame 0 comes only after frame 0 gave up waiting
        // (here: it is queued late, as frame 1 is asked for).
        let mut frame = [7i16; FRAME];
        done_tx.send((0, Some(vec![0.5; FRAME]))).unwrap();
        done_tx.send((1, Some(vec![0.25; FRAME]))).unwrap();
        aec.next = 1;
        assert!(aec.cancel(&mut frame));
        assert_eq!(frame[0], 8_192, "frame 1 got frame 1's answer");
    }

    /// A port with no microphone frame has none with the echo removed.
    #[test]
    fn no_capture_stays_no_capture() {
        struct Mute;
        impl AudioPort for Mute {
            fn capture(&mut self, _: &mut [i16]) -> bool {
                false
            }
            fn play(&mut self, _: &[i16]) {}
        }
        let mut port = EchoCancelled::new(Mute, EchoCanceller::start().unwrap());
        port.play(&[1; FRAME]);
        assert!(!port.capture(&mut [0; FRAME]));
        assert_eq!(port.stats(), EchoStats::default());
    }
}
