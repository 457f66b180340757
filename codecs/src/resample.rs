//! Sample-rate conversion between device rates and the codec rate (with
//! `rubato`'s synchronous FFT resampler).
//!
//! [`StreamResampler`] is fed fixed 10 ms input chunks and returns fixed
//! output chunks, never allocating after construction.
//!
//! **Latency.** Output lags input by [`StreamResampler::delay_frames`]
//! output frames: the FFT overlap-add needs half a block of look-ahead.
//! With 10 ms chunks this is 5 ms for every rate pair used here (8, 16,
//! 44.1 and 48 kHz to and from 48 kHz, checked by a test). On top of that
//! a caller waits for a whole 10 ms chunk before calling, so a device
//! rate conversion adds 15 ms at most to the mouth-to-ear delay.

use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::CodecError;

fn err(e: impl std::fmt::Display) -> CodecError {
    CodecError::Resample(e.to_string())
}

/// A streaming resampler for interleaved `f32` audio in 10 ms chunks.
pub struct StreamResampler {
    inner: Fft<f32>,
    channels: usize,
    output_rate: u32,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("channels", &self.channels)
            .field("input_frames", &self.input_frames())
            .field("output_frames", &self.output_frames())
            .finish()
    }
}

impl StreamResampler {
    /// Creates a resampler from `input_rate` to `output_rate` Hz.
    ///
    /// Both rates must be multiples of 100 Hz, so that 10 ms is a whole
    /// number of frames on both sides (44.1 kHz is 441 frames).
    pub fn new(input_rate: u32, output_rate: u32, channels: u16) -> Result<Self, CodecError> {
        if !input_rate.is_multiple_of(100) || !output_rate.is_multiple_of(100) {
            return Err(CodecError::Config(format!(
                "resampling {input_rate} -> {output_rate} Hz: rates must be non-zero multiples of 100"
            )));
        }
        Self::with_chunk(input_rate, output_rate, channels, input_rate as usize / 100)
    }

    /// A resampler taking `chunk` input frames per call, any non-zero rates.
    fn with_chunk(
        input_rate: u32,
        output_rate: u32,
        channels: u16,
        chunk: usize,
    ) -> Result<Self, CodecError> {
        if input_rate == 0 || output_rate == 0 {
            return Err(CodecError::Config(format!(
                "resampling {input_rate} -> {output_rate} Hz: rates must be non-zero"
            )));
        }
        if channels == 0 {
            return Err(CodecError::Config(
                "resampler needs at least one channel".into(),
            ));
        }
        let inner = Fft::new(
            input_rate as usize,
            output_rate as usize,
            chunk,
            usize::from(channels),
            FixedSync::Both,
        )
        .map_err(err)?;
        Ok(Self {
            inner,
            channels: usize::from(channels),
            output_rate,
        })
    }

    /// Input frames (samples per channel) every call must supply.
    pub fn input_frames(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// Output frames every call produces.
    pub fn output_frames(&self) -> usize {
        self.inner.output_frames_next()
    }

    /// Delay of the output relative to the input, in output frames.
    pub fn delay_frames(&self) -> usize {
        self.inner.output_delay()
    }

    /// The delay as a duration.
    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_frames() as u64 * 1_000_000 / u64::from(self.output_rate))
    }

    /// Resamples one chunk of exactly `input_frames() * channels`
    /// interleaved samples, appending `output_frames() * channels` samples
    /// to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<usize, CodecError> {
        let (inf, outf) = (self.input_frames(), self.output_frames());
        if input.len() != inf * self.channels {
            return Err(CodecError::FrameSize {
                got: input.len(),
                expected: inf * self.channels,
            });
        }
        let start = out.len();
        out.resize(start + outf * self.channels, 0.0);
        let adapter_in = InterleavedSlice::new(input, self.channels, inf).map_err(err)?;
        let mut adapter_out =
            InterleavedSlice::new_mut(&mut out[start..], self.channels, outf).map_err(err)?;
        let (_, written) = self
            .inner
            .process_into_buffer(&adapter_in, &mut adapter_out, None)
            .map_err(err)?;
        out.truncate(start + written * self.channels);
        Ok(written)
    }

    /// Forgets all buffered audio.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// Input frames per step of [`resample_clip`] at rates that are not
/// multiples of 100 Hz: the fewest whole periods of the two rates' ratio
/// (147 input frames to 640 output ones at 11.025 -> 48 kHz) that make at
/// least 10 ms, so every step maps to a whole number of output frames.
fn clip_chunk(input_rate: u32, output_rate: u32) -> usize {
    let gcd = |mut a: u32, mut b: u32| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let unit = (input_rate / gcd(input_rate, output_rate).max(1)).max(1) as usize;
    let ten_ms = (input_rate as usize).div_ceil(100);
    ten_ms.div_ceil(unit) * unit
}

/// Resamples a whole clip offline, with the resampler delay trimmed so the
/// output lines up with the input.
pub fn resample_clip(
    input: &[f32],
    channels: u16,
    input_rate: u32,
    output_rate: u32,
) -> Result<Vec<f32>, CodecError> {
    // A whole clip needs no 10 ms chunks, so any rate will do: a WAV at
    // 22.05 or 11.025 kHz has no whole number of frames in 10 ms. Rates
    // that do keep them, so their output stays what it was.
    let mut r = if input_rate.is_multiple_of(100) && output_rate.is_multiple_of(100) {
        StreamResampler::new(input_rate, output_rate, channels)?
    } else {
        StreamResampler::with_chunk(
            input_rate,
            output_rate,
            channels,
            clip_chunk(input_rate, output_rate),
        )?
    };
    let ch = usize::from(channels);
    let frames = input.len() / ch;
    let adapter = InterleavedSlice::new(input, ch, frames).map_err(err)?;
    let out = r.inner.process_all(&adapter, frames, None).map_err(err)?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rates_are_errors() {
        assert!(StreamResampler::new(0, 48_000, 1).is_err());
        assert!(StreamResampler::new(44_123, 48_000, 1).is_err());
        assert!(StreamResampler::new(48_000, 16_000, 0).is_err());
        let mut r = StreamResampler::new(48_000, 16_000, 1).unwrap();
        assert!(r.process(&[0.0; 10], &mut Vec::new()).is_err());
    }

    #[test]
    fn chunk_sizes_are_ten_ms_and_delay_is_documented() {
        for rate in [8_000u32, 16_000, 44_100, 48_000] {
            for (a, b) in [(rate, 48_000), (48_000, rate)] {
                let r = StreamResampler::new(a, b, 2).unwrap();
                assert_eq!(r.input_frames(), a as usize / 100, "{a}->{b}");
                assert_eq!(r.output_frames(), b as usize / 100, "{a}->{b}");
                // The module documentation promises 5 ms (half a chunk).
                assert_eq!(r.delay_frames(), b as usize / 200, "{a}->{b}");
            }
        }
    }
}
