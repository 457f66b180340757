//! A decoder whose output is resampled to a higher rate, so that a codec at
//! 8 or 16 kHz (G.711, say) plays through a jitter buffer that works at
//! 48 kHz.
//!
//! Every call hands out exactly `factor` output samples per decoded one,
//! as the buffer's timing needs. The resampler works in 10 ms chunks, so
//! the adapter starts with one chunk of silence queued and keeps whatever
//! part of a chunk is still to come: 10 ms of latency, plus the 5 ms of the
//! resampler itself.

use std::collections::VecDeque;

use crate::CodecError;
use crate::codec::Decoder;
use crate::resample::StreamResampler;
use crate::samples::{f32_to_i16, i16_to_f32};

/// `inner`'s audio at `rate` Hz, a whole multiple of `inner`'s rate.
pub struct Resampled<D> {
    inner: D,
    rate: u32,
    factor: usize,
    resampler: StreamResampler,
    /// Decoded samples (inner rate) short of a whole chunk.
    pending: Vec<f32>,
    /// Resampled samples not handed out yet.
    ready: VecDeque<i16>,
    /// Reused buffers.
    decoded: Vec<i16>,
    chunk: Vec<f32>,
}

impl<D: Decoder> Resampled<D> {
    /// Wraps `inner`, whose rate must divide `rate` (8 or 16 kHz into
    /// 48 kHz, for instance).
    pub fn new(inner: D, rate: u32) -> Result<Self, CodecError> {
        let from = inner.sample_rate();
        if from == 0 || rate < from || !rate.is_multiple_of(from) {
            return Err(CodecError::Config(format!(
                "cannot resample a {from} Hz decoder to {rate} Hz: need a whole multiple"
            )));
        }
        let resampler = StreamResampler::new(from, rate, inner.channels())?;
        let ready = vec![0; resampler.output_frames() * usize::from(inner.channels())];
        Ok(Self {
            factor: (rate / from) as usize,
            rate,
            resampler,
            pending: Vec::new(),
            ready: ready.into(),
            decoded: Vec::new(),
            chunk: Vec::new(),
            inner,
        })
    }

    /// Resamples `self.decoded` and appends as many samples to `out`, times
    /// the factor. Returns the samples per channel appended.
    fn hand_out(&mut self, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.pending.extend(i16_to_f32(&self.decoded));
        let step = self.resampler.input_frames() * usize::from(self.inner.channels());
        let whole = self.pending.len() / step * step;
        for input in self.pending[..whole].chunks_exact(step) {
            self.chunk.clear();
            self.resampler.process(input, &mut self.chunk)?;
            self.ready.extend(f32_to_i16(&self.chunk));
        }
        self.pending.drain(..whole);
        // One chunk was queued at the start and every chunk in is one out,
        // so the queue always holds what is owed.
        let n = (self.decoded.len() * self.factor).min(self.ready.len());
        out.extend(self.ready.drain(..n));
        Ok(n / usize::from(self.inner.channels()))
    }
}

impl<D: Decoder> Decoder for Resampled<D> {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn channels(&self) -> u16 {
        self.inner.channels()
    }

    fn clock_rate(&self) -> u32 {
        self.inner.clock_rate()
    }

    fn payload_samples(&self, payload: &[u8]) -> Result<usize, CodecError> {
        Ok(self.inner.payload_samples(payload)? * self.factor)
    }

    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.decoded.clear();
        self.inner.decode_into(payload, &mut self.decoded)?;
        self.hand_out(out)
    }

    fn conceal_into(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if !samples.is_multiple_of(self.factor) {
            return Err(CodecError::Config(format!(
                "cannot conceal {samples} samples at {} Hz in whole samples at {} Hz",
                self.rate,
                self.inner.sample_rate()
            )));
        }
        self.decoded.clear();
        self.inner
            .conceal_into(samples / self.factor, &mut self.decoded)?;
        self.hand_out(out)
    }

    fn joins_after_concealment(&self) -> bool {
        self.inner.joins_after_concealment()
    }

    fn has_fec(&self, payload: &[u8]) -> bool {
        self.inner.has_fec(payload)
    }

    fn decode_fec_into(
        &mut self,
        next_payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<Option<usize>, CodecError> {
        self.decoded.clear();
        if self
            .inner
            .decode_fec_into(next_payload, &mut self.decoded)?
            .is_none()
        {
            return Ok(None);
        }
        self.hand_out(out).map(Some)
    }

    fn is_dtx(&self, payload: &[u8]) -> bool {
        self.inner.is_dtx(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Encoder, FrameDuration};
    use crate::g711::{MuLawDecoder, MuLawEncoder};

    #[test]
    fn g711_comes_out_at_48_khz_sample_for_sample_late_by_the_latency() {
        // A 400 Hz tone at 8 kHz, G.711 in 20 ms packets.
        let tone = |rate: f32, n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| {
                    (8000.0 * (2.0 * std::f32::consts::PI * 400.0 * i as f32 / rate).sin()) as i16
                })
                .collect()
        };
        let mut enc = MuLawEncoder::new(FrameDuration::Ms20).unwrap();
        let mut dec = Resampled::new(MuLawDecoder::new(), 48_000).unwrap();
        assert_eq!((dec.sample_rate(), dec.clock_rate()), (48_000, 8_000));
        let mut out = Vec::new();
        let mut payload = Vec::new();
        for frame in tone(8_000.0, 8_000).chunks_exact(160) {
            enc.encode(frame, &mut payload).unwrap();
            assert_eq!(dec.payload_samples(&payload).unwrap(), 960);
            assert_eq!(dec.decode_into(&payload, &mut out).unwrap(), 960);
        }
        // Concealment in the jitter buffer's 2.5 ms steps comes out whole.
        assert_eq!(dec.conceal_into(120, &mut out).unwrap(), 120);
        assert!(dec.conceal_into(121, &mut out).is_err());
        assert_eq!(out.len(), 48_000 + 120);
        // 15 ms late (a queued chunk and the resampler's half chunk), the
        // output is the tone at 48 kHz, within G.711's quantisation.
        let expected = tone(48_000.0, 48_000 - 720);
        let worst = out[720 + 4_800..48_000]
            .iter()
            .zip(&expected[4_800..])
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap();
        assert!(worst < 400, "{worst}");
    }

    #[test]
    fn only_whole_multiples_of_the_rate() {
        assert!(Resampled::new(MuLawDecoder::new(), 44_100).is_err());
        assert!(Resampled::new(MuLawDecoder::new(), 4_000).is_err());
        assert!(Resampled::new(MuLawDecoder::new(), 16_000).is_ok());
    }
}
