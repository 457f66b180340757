//! Rate conversion of 10 ms mono frames between a sound device's rate and
//! the engine's 48 kHz, on the call's audio tick. Every buffer is made
//! when the bridge is, so a tick never allocates (`tests/bridge_alloc.rs`
//! counts).

use cpal::FromSample;
use sotto_codecs::resample::StreamResampler;

/// Converts 10 ms frames of mono audio between a device's rate and 48 kHz,
/// on the call's audio tick.
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

impl RateBridge {
    /// A bridge from `from` to `to` Hz; `None` when they are equal.
    pub fn new(from: u32, to: u32) -> anyhow::Result<Option<Self>> {
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
        // As `sotto_codecs::samples::i16_to_f32` converts, in place.
        for (f, &s) in self.samples.iter_mut().zip(&self.frame) {
            *f = f32::from_sample_(s);
        }
        self.resampled.clear();
        match self.resampler.process(&self.samples, &mut self.resampled) {
            Ok(_) => {
                // As `sotto_codecs::samples::f32_to_i16` converts, in place.
                let n = self.resampled.len().min(self.converted.len());
                for (s, &f) in self.converted.iter_mut().zip(&self.resampled[..n]) {
                    *s = i16::from_sample_(f.clamp(-1.0, 1.0));
                }
                self.converted[n..].fill(0);
            }
            // Cannot happen with whole frames; silence rather than noise.
            Err(e) => {
                tracing::warn!("resampling device audio: {e}");
                self.converted.fill(0);
            }
        }
        &self.converted
    }
}
