//! Rate conversion of 10 ms mono frames between a sound device's rate and
//! the engine's 48 kHz, one frame at a time, for an audio tick (the
//! softphone's sound cards, the SDK's audio port). Every buffer is made
//! when the bridge is, so a conversion never allocates
//! (`tests/bridge_alloc.rs` counts).

use crate::CodecError;
use crate::resample::StreamResampler;
use crate::samples::{f32_to_i16_into, i16_to_f32_into};

/// Converts 10 ms frames of mono audio from one rate to another (a
/// multiple of 100 Hz each, see [`StreamResampler::new`]).
pub struct RateBridge {
    resampler: StreamResampler,
    /// One frame at the input rate, to convert.
    frame: Vec<i16>,
    /// `frame` as `f32`, the resampler's input.
    samples: Vec<f32>,
    /// The resampler's output.
    resampled: Vec<f32>,
    /// The converted frame at the output rate.
    converted: Vec<i16>,
}

impl std::fmt::Debug for RateBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateBridge")
            .field("resampler", &self.resampler)
            .finish_non_exhaustive()
    }
}

impl RateBridge {
    /// A bridge from `from` to `to` Hz; `None` when they are equal.
    pub fn new(from: u32, to: u32) -> Result<Option<Self>, CodecError> {
        if from == to {
            return Ok(None);
        }
        let resampler = StreamResampler::new(from, to, 1)?;
        Ok(Some(Self {
            frame: vec![0; from as usize / 100],
            samples: vec![0.0; from as usize / 100],
            // Room for what `process` appends, so that it never grows.
            resampled: Vec::with_capacity(resampler.output_frames().max(to as usize / 100)),
            converted: vec![0; to as usize / 100],
            resampler,
        }))
    }

    /// The frame to convert next (10 ms at the input rate).
    pub fn frame(&mut self) -> &mut [i16] {
        &mut self.frame
    }

    /// Resamples [`RateBridge::frame`]; one frame at the output rate.
    pub fn convert(&mut self) -> &[i16] {
        i16_to_f32_into(&self.frame, &mut self.samples);
        self.resampled.clear();
        match self.resampler.process(&self.samples, &mut self.resampled) {
            Ok(_) => {
                let n = self.resampled.len().min(self.converted.len());
                f32_to_i16_into(&self.resampled[..n], &mut self.converted[..n]);
                self.converted[n..].fill(0);
            }
            // Cannot happen with whole frames; silence rather than noise.
            Err(_) => self.converted.fill(0),
        }
        &self.converted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{f32_to_i16, i16_to_f32};

    /// The bridge's conversion as it was before it kept its buffers (a
    /// `Vec` made for each direction of each frame): what it must still
    /// produce, sample for sample.
    fn convert_as_before(r: &mut StreamResampler, frame: &[i16], out_len: usize) -> Vec<i16> {
        let mut resampled = Vec::new();
        r.process(&i16_to_f32(frame), &mut resampled).unwrap();
        let pcm = f32_to_i16(&resampled);
        let mut out = vec![0; out_len];
        let n = pcm.len().min(out_len);
        out[..n].copy_from_slice(&pcm[..n]);
        out
    }

    #[test]
    fn the_rate_bridge_converts_as_it_did_when_it_allocated() {
        assert!(RateBridge::new(48_000, 48_000).unwrap().is_none());
        assert!(RateBridge::new(44_123, 48_000).is_err());
        for (from, to) in [
            (44_100, 48_000),
            (48_000, 44_100),
            (8_000, 48_000),
            (48_000, 96_000),
        ] {
            let mut bridge = RateBridge::new(from, to).unwrap().unwrap();
            let mut before = StreamResampler::new(from, to, 1).unwrap();
            // A full-scale square wave, whose resampled edges overshoot
            // (and are clipped), then a tone with noise.
            let n = from as usize / 4;
            let mut noise = 1u32;
            let input: Vec<i16> = (0..n)
                .map(|i| {
                    if i < n / 2 {
                        return if (i / 40) % 2 == 0 {
                            i16::MAX
                        } else {
                            i16::MIN
                        };
                    }
                    noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let t = i as f64 / f64::from(from);
                    let s = 12_000.0 * (2.0 * std::f64::consts::PI * 997.0 * t).sin();
                    (s + f64::from((noise >> 20) as i32 - 2048)) as i16
                })
                .collect();
            for f in input.chunks_exact(from as usize / 100) {
                bridge.frame().copy_from_slice(f);
                let want = convert_as_before(&mut before, f, to as usize / 100);
                assert_eq!(bridge.convert(), want.as_slice(), "{from} -> {to} Hz");
            }
        }
    }
}
