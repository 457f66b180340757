//! Headless audio for a call: play a WAV file into it as the microphone
//! and record what it plays out, 10 ms at a time (48 kHz mono).

use super::media::{PULL_SAMPLES, SAMPLE_RATE};
use sotto_codecs::wav::{self, Clip};
use sotto_codecs::{CodecError, resample, samples};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Reads a WAV file as 48 kHz mono PCM (downmixed and resampled as needed).
pub fn load_48k_mono(path: impl AsRef<Path>) -> Result<Vec<i16>, CodecError> {
    clip_48k_mono(&wav::read(path)?)
}

/// Converts a clip to 48 kHz mono PCM.
pub fn clip_48k_mono(clip: &Clip) -> Result<Vec<i16>, CodecError> {
    let mono = match clip.channels {
        1 => clip.samples.clone(),
        2 => samples::stereo_to_mono(&clip.samples),
        n => {
            return Err(CodecError::Config(format!(
                "{n}-channel WAV: only mono and stereo are supported"
            )));
        }
    };
    if clip.sample_rate == SAMPLE_RATE {
        return Ok(mono);
    }
    let f = resample::resample_clip(
        &samples::i16_to_f32(&mono),
        1,
        clip.sample_rate,
        SAMPLE_RATE,
    )?;
    Ok(samples::f32_to_i16(&f))
}

/// Writes 48 kHz mono PCM as a 16-bit WAV file.
pub fn save_48k_mono(path: impl AsRef<Path>, pcm: &[i16]) -> Result<(), CodecError> {
    wav::write(
        path,
        &Clip {
            sample_rate: SAMPLE_RATE,
            channels: 1,
            samples: pcm.to_vec(),
        },
    )
}

/// Where a call's driver takes microphone audio from and plays received
/// audio to, 10 ms (480 samples) per call.
pub trait AudioPort: Send + 'static {
    /// Fills `frame` with the next 10 ms of microphone audio; `false` when
    /// there is none (nothing is sent).
    fn capture(&mut self, frame: &mut [i16]) -> bool;
    /// Plays 10 ms of received audio.
    fn play(&mut self, frame: &[i16]);
    /// Whole 10 ms frames of microphone audio ready now. A port fed by a
    /// device's clock reports its queue, and the driver takes them all at
    /// a tick (up to a bound), so that the device sets the pace and the
    /// queue does not grow; a port paced by the driver's tick has one (the
    /// default).
    fn captured_frames(&self) -> usize {
        1
    }
    /// Whole 10 ms frames queued for the device and not yet played, for a
    /// port played by a device's clock: the driver then plays one frame
    /// more or less at a tick to keep that queue short
    /// ([`super::pacer::PlayoutPacer`]). `None` (the default): one frame
    /// per tick.
    fn queued_playout_frames(&self) -> Option<usize> {
        None
    }
}

/// Appends one whole frame to a single-producer single-consumer ring, or
/// nothing if it does not fit (then `false`). For the audio side of an
/// [`AudioPort`] (device callbacks, an SDK's audio thread): wait-free, no
/// allocation, and a full ring drops the newest frame whole instead of
/// waiting or splitting it.
pub fn push_frame(ring: &mut rtrb::Producer<i16>, frame: &[i16]) -> bool {
    match ring.write_chunk_uninit(frame.len()) {
        Ok(chunk) => {
            chunk.fill_from_iter(frame.iter().copied());
            true
        }
        Err(_) => false,
    }
}

/// Takes one whole frame from a single-producer single-consumer ring into
/// `out`; `false` (and `out` untouched) while fewer samples are queued.
/// Wait-free, no allocation.
pub fn pop_frame(ring: &mut rtrb::Consumer<i16>, out: &mut [i16]) -> bool {
    let Ok(chunk) = ring.read_chunk(out.len()) else {
        return false;
    };
    let (a, b) = chunk.as_slices();
    out[..a.len()].copy_from_slice(a);
    out[a.len()..].copy_from_slice(b);
    chunk.commit_all();
    true
}

/// Whole frames of `frame_len` samples (10 ms at the ring's rate:
/// [`FRAME`] at 48 kHz) queued in a ring and not yet taken by its
/// consumer: for an [`AudioPort`] over rings to report to the driver
/// ([`AudioPort::captured_frames`], [`AudioPort::queued_playout_frames`]).
pub fn frames_in(ring: &rtrb::Producer<i16>, frame_len: usize) -> usize {
    (ring.buffer().capacity() - ring.slots()) / frame_len.max(1)
}

/// Whole frames of `frame_len` samples ready to be taken from a ring (see
/// [`frames_in`]).
pub fn frames_ready(ring: &rtrb::Consumer<i16>, frame_len: usize) -> usize {
    ring.slots() / frame_len.max(1)
}

/// A headless [`AudioPort`]: a WAV clip as the microphone (optionally
/// looped, silence after its end) and an in-memory recording of what the
/// call played, shared with the caller through [`HeadlessAudio::recording`].
#[derive(Debug)]
pub struct HeadlessAudio {
    source: Vec<i16>,
    pos: usize,
    looped: bool,
    recording: Arc<Mutex<Vec<i16>>>,
    max_recorded: usize,
}

impl HeadlessAudio {
    /// Plays `source` (48 kHz mono) once, then silence; records at most
    /// `max_seconds` of received audio.
    pub fn new(source: Vec<i16>, looped: bool, max_seconds: u32) -> Self {
        Self {
            source,
            pos: 0,
            looped,
            recording: Arc::new(Mutex::new(Vec::new())),
            max_recorded: SAMPLE_RATE as usize * max_seconds as usize,
        }
    }

    /// The recording so far (48 kHz mono), shared with the port.
    pub fn recording(&self) -> Arc<Mutex<Vec<i16>>> {
        Arc::clone(&self.recording)
    }

    /// The next 10 ms of the source (silence past its end unless looped).
    pub fn next_frame(&mut self, frame: &mut [i16]) {
        for s in frame.iter_mut() {
            if self.pos >= self.source.len() && self.looped {
                self.pos = 0;
            }
            *s = self.source.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
        }
    }
}

impl AudioPort for HeadlessAudio {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        self.next_frame(frame);
        true
    }

    fn play(&mut self, frame: &[i16]) {
        // A poisoned lock only means a reader panicked; keep recording.
        let mut r = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() + frame.len() <= self.max_recorded {
            r.extend_from_slice(frame);
        }
    }
}

/// Samples per [`AudioPort`] frame.
pub const FRAME: usize = PULL_SAMPLES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_loops_or_goes_silent_and_recording_is_bounded() {
        let mut a = HeadlessAudio::new(vec![1; 700], false, 0);
        let mut f = [0i16; FRAME];
        assert!(a.capture(&mut f));
        assert!(f.iter().all(|&s| s == 1));
        a.next_frame(&mut f);
        assert_eq!(f.iter().filter(|&&s| s == 1).count(), 220);
        a.play(&f);
        assert!(a.recording().lock().unwrap().is_empty(), "bounded at 0 s");

        let mut b = HeadlessAudio::new(vec![3; 500], true, 1);
        b.next_frame(&mut f);
        b.next_frame(&mut f);
        assert!(f.iter().all(|&s| s == 3), "looped");
        b.play(&f);
        assert_eq!(b.recording().lock().unwrap().len(), FRAME);
    }

    #[test]
    fn ring_frames_stay_whole_in_order_and_bounded() {
        // 2.5 frames of room: a frame that would not fit whole is dropped.
        let (mut tx, mut rx) = rtrb::RingBuffer::new(5 * FRAME / 2);
        let mut out = [7i16; FRAME];
        assert!(!pop_frame(&mut rx, &mut out));
        assert_eq!(out, [7; FRAME], "untouched while empty");
        assert!(push_frame(&mut tx, &[1; FRAME]));
        assert!(push_frame(&mut tx, &[2; FRAME]));
        assert!(
            !push_frame(&mut tx, &[3; FRAME]),
            "no room for a whole frame"
        );
        assert!(pop_frame(&mut rx, &mut out));
        assert_eq!(out, [1; FRAME]);
        // The next frame wraps around the end of the ring's storage.
        assert!(push_frame(&mut tx, &[4; FRAME]));
        for want in [2, 4] {
            assert!(pop_frame(&mut rx, &mut out));
            assert_eq!(out, [want; FRAME]);
        }
        assert!(!pop_frame(&mut rx, &mut out));
    }

    #[test]
    fn wav_round_trip_resamples_to_48k() {
        let dir = std::env::temp_dir().join(format!("sotto-call-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tone16k.wav");
        let tone: Vec<i16> = (0..16_000)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        wav::write(
            &p,
            &Clip {
                sample_rate: 16_000,
                channels: 1,
                samples: tone,
            },
        )
        .unwrap();
        let pcm = load_48k_mono(&p).unwrap();
        // One second at 16 kHz is about one second at 48 kHz.
        assert!((pcm.len() as i64 - 48_000).abs() < 2_000, "{}", pcm.len());
        let q = dir.join("out.wav");
        save_48k_mono(&q, &pcm).unwrap();
        assert_eq!(load_48k_mono(&q).unwrap(), pcm);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
