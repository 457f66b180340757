//! The codec traits that the jitter buffer and the engine program against.

use std::time::Duration;

use crate::CodecError;

/// Frame durations a packet may carry.
///
/// Opus supports all four; G.711 uses 10 and 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    /// 10 ms.
    Ms10,
    /// 20 ms (the default for voice).
    Ms20,
    /// 40 ms.
    Ms40,
    /// 60 ms.
    Ms60,
}

impl FrameDuration {
    /// All durations, shortest first.
    pub const ALL: [FrameDuration; 4] = [Self::Ms10, Self::Ms20, Self::Ms40, Self::Ms60];

    /// The duration in milliseconds.
    pub fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
            Self::Ms40 => 40,
            Self::Ms60 => 60,
        }
    }

    /// The duration as a [`Duration`].
    pub fn duration(self) -> Duration {
        Duration::from_millis(u64::from(self.millis()))
    }

    /// Samples per channel in one frame at `sample_rate` Hz.
    pub fn samples(self, sample_rate: u32) -> usize {
        (sample_rate as usize / 1000) * self.millis() as usize
    }
}

/// An audio encoder: one frame of interleaved PCM in, one payload out.
pub trait Encoder: Send {
    /// Input sample rate in Hz.
    fn sample_rate(&self) -> u32;

    /// Number of interleaved channels in the input.
    fn channels(&self) -> u16;

    /// The frame duration each call to [`Encoder::encode`] consumes.
    fn frame_duration(&self) -> FrameDuration;

    /// Samples per channel in one input frame.
    fn frame_samples(&self) -> usize {
        self.frame_duration().samples(self.sample_rate())
    }

    /// Encodes exactly one frame (`frame_samples() * channels()`
    /// interleaved samples) and replaces the contents of `out` with the
    /// payload. Returns the payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError>;

    /// Whether `payload` (from this codec) carries no speech and need not
    /// be sent (discontinuous transmission). Always `false` for codecs
    /// without DTX.
    fn is_dtx(&self, payload: &[u8]) -> bool {
        let _ = payload;
        false
    }
}

/// An audio decoder with loss concealment and optional in-band FEC.
///
/// The `*_into` methods append interleaved PCM to `out` and return the
/// number of samples *per channel* appended; they let a caller reuse one
/// buffer. The provided methods without `_into` allocate a fresh vector.
pub trait Decoder: Send {
    /// Output sample rate in Hz.
    fn sample_rate(&self) -> u32;

    /// Number of interleaved output channels.
    fn channels(&self) -> u16;

    /// RTP clock rate of the payloads, in Hz: the unit of their timestamps.
    /// Usually the sample rate; Opus always counts at 48 kHz (RFC 7587).
    fn clock_rate(&self) -> u32 {
        self.sample_rate()
    }

    /// Samples per channel that decoding `payload` will produce, without
    /// decoding it.
    fn payload_samples(&self, payload: &[u8]) -> Result<usize, CodecError>;

    /// Duration of the audio in `payload`.
    fn payload_duration(&self, payload: &[u8]) -> Result<Duration, CodecError> {
        let samples = self.payload_samples(payload)? as u64;
        Ok(Duration::from_micros(
            samples * 1_000_000 / u64::from(self.sample_rate()),
        ))
    }

    /// Decodes one payload, appending its PCM to `out`.
    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;

    /// Produces `samples` per channel of concealment audio (PLC) for lost
    /// packets, appending to `out`.
    fn conceal_into(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError>;

    /// Whether the first packet decoded after [`Decoder::conceal_into`]
    /// joins the concealed audio smoothly by itself, because the decoder
    /// carries its state over the concealment (Opus does). When it does
    /// not (a stateless codec such as G.711 jumps straight to the new
    /// samples), the caller fades from the concealment into the decoded
    /// audio.
    fn joins_after_concealment(&self) -> bool {
        false
    }

    /// Whether `payload` carries forward error correction data for the
    /// packet before it.
    fn has_fec(&self, payload: &[u8]) -> bool;

    /// Recovers the frame *before* `next_payload` from the FEC data in
    /// `next_payload`, appending it to `out`. Returns `Ok(None)` (and
    /// appends nothing) when the payload has no FEC data; the caller then
    /// conceals instead. The recovered frame has the duration of
    /// `next_payload`. Decode `next_payload` itself normally afterwards.
    fn decode_fec_into(
        &mut self,
        next_payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<Option<usize>, CodecError>;

    /// Whether `payload` is a discontinuous-transmission frame (no speech).
    fn is_dtx(&self, payload: &[u8]) -> bool {
        let _ = payload;
        false
    }

    /// Decodes one payload into a new vector of interleaved PCM.
    fn decode(&mut self, payload: &[u8]) -> Result<Vec<i16>, CodecError> {
        let mut out = Vec::new();
        self.decode_into(payload, &mut out)?;
        Ok(out)
    }

    /// Conceals `samples` per channel into a new vector.
    fn conceal(&mut self, samples: usize) -> Result<Vec<i16>, CodecError> {
        let mut out = Vec::new();
        self.conceal_into(samples, &mut out)?;
        Ok(out)
    }

    /// Recovers the previous frame from `next_payload`'s FEC data into a
    /// new vector, or `None` when there is none.
    fn decode_fec(&mut self, next_payload: &[u8]) -> Result<Option<Vec<i16>>, CodecError> {
        let mut out = Vec::new();
        Ok(self.decode_fec_into(next_payload, &mut out)?.map(|_| out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_samples_at_common_rates() {
        assert_eq!(FrameDuration::Ms20.samples(48_000), 960);
        assert_eq!(FrameDuration::Ms10.samples(8_000), 80);
        assert_eq!(FrameDuration::Ms60.samples(16_000), 960);
        assert_eq!(FrameDuration::Ms40.duration(), Duration::from_millis(40));
    }

    #[test]
    fn codecs_are_interchangeable_behind_trait_objects() {
        use crate::g711::{MuLawDecoder, MuLawEncoder};
        use crate::opus::{OpusConfig, OpusDecoder, OpusEncoder};

        let pairs: Vec<(Box<dyn Encoder>, Box<dyn Decoder>)> = vec![
            (
                Box::new(OpusEncoder::new(OpusConfig::default()).unwrap()),
                Box::new(OpusDecoder::new(48_000, 1).unwrap()),
            ),
            (
                Box::new(MuLawEncoder::new(FrameDuration::Ms20).unwrap()),
                Box::new(MuLawDecoder::new()),
            ),
        ];
        for (mut enc, mut dec) in pairs {
            let n = enc.frame_samples();
            let pcm: Vec<i16> = (0..n).map(|i| ((i % 50) as i16 - 25) * 300).collect();
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            assert_eq!(dec.payload_samples(&payload).unwrap(), n);
            assert_eq!(
                dec.payload_duration(&payload).unwrap(),
                Duration::from_millis(20)
            );
            assert_eq!(dec.decode(&payload).unwrap().len(), n);
            assert_eq!(dec.conceal(n).unwrap().len(), n);
        }
    }
}
