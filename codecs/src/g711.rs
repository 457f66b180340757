//! G.711 mu-law (ITU-T G.711, 1988), 8 kHz mono.
//!
//! Present mainly to keep the [`Encoder`]/[`Decoder`] traits honest: a
//! second codec with no FEC and no built-in concealment.

use crate::CodecError;
use crate::codec::{Decoder, Encoder, FrameDuration};

/// G.711's only sample rate.
pub const SAMPLE_RATE: u32 = 8_000;

/// Bias added before the segment search (G.711 mu-law: 33 in 14-bit
/// units, 132 = 0x84 in 16-bit units).
const BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment after the bias.
const CLIP: i32 = 32_635;

/// Encodes one 16-bit linear sample as a mu-law byte.
pub fn encode_sample(pcm: i16) -> u8 {
    let mut s = i32::from(pcm);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    // Segment = position of the top bit above bit 7 (s >= 0x84, so >= 0).
    let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one mu-law byte to a 16-bit linear sample.
pub fn decode_sample(code: u8) -> i16 {
    let u = !code;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    // Largest magnitude is 32124, so the cast cannot truncate.
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

fn check_frame(frame: FrameDuration) -> Result<(), CodecError> {
    match frame {
        FrameDuration::Ms10 | FrameDuration::Ms20 => Ok(()),
        other => Err(CodecError::Config(format!(
            "G.711 packets here are 10 or 20 ms, not {} ms",
            other.millis()
        ))),
    }
}

/// A G.711 mu-law encoder (8 kHz mono).
#[derive(Debug, Clone)]
pub struct MuLawEncoder {
    frame: FrameDuration,
}

impl MuLawEncoder {
    /// Creates an encoder producing `frame`-long payloads (10 or 20 ms).
    pub fn new(frame: FrameDuration) -> Result<Self, CodecError> {
        check_frame(frame)?;
        Ok(Self { frame })
    }
}

impl Encoder for MuLawEncoder {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn channels(&self) -> u16 {
        1
    }

    fn frame_duration(&self) -> FrameDuration {
        self.frame
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        let expected = self.frame_samples();
        if pcm.len() != expected {
            return Err(CodecError::FrameSize {
                got: pcm.len(),
                expected,
            });
        }
        out.clear();
        out.extend(pcm.iter().map(|&s| encode_sample(s)));
        Ok(out.len())
    }
}

/// A G.711 mu-law decoder with a simple concealment: the last decoded
/// 10 ms are repeated, halving in level each time, so a long gap fades to
/// silence instead of buzzing.
#[derive(Debug, Clone)]
pub struct MuLawDecoder {
    /// The last 10 ms produced, the material concealment repeats.
    history: Vec<i16>,
}

impl Default for MuLawDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MuLawDecoder {
    /// Samples in the concealment period (10 ms).
    const PERIOD: usize = 80;

    /// Creates a decoder.
    pub fn new() -> Self {
        Self {
            history: vec![0; Self::PERIOD],
        }
    }

    fn remember(&mut self, produced: &[i16]) {
        let take = produced.len().min(Self::PERIOD);
        self.history.drain(..take);
        self.history
            .extend_from_slice(&produced[produced.len() - take..]);
    }
}

impl Decoder for MuLawDecoder {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn channels(&self) -> u16 {
        1
    }

    fn payload_samples(&self, payload: &[u8]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::Malformed("empty G.711 payload"));
        }
        Ok(payload.len())
    }

    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let n = self.payload_samples(payload)?;
        let start = out.len();
        out.extend(payload.iter().map(|&b| decode_sample(b)));
        self.remember(&out[start..]);
        Ok(n)
    }

    fn conceal_into(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let start = out.len();
        for i in 0..samples {
            if i % Self::PERIOD == 0 {
                self.history.iter_mut().for_each(|s| *s /= 2);
            }
            out.push(self.history[i % Self::PERIOD]);
        }
        self.remember(&out[start..]);
        Ok(samples)
    }

    fn has_fec(&self, _payload: &[u8]) -> bool {
        false
    }

    fn decode_fec_into(
        &mut self,
        _next_payload: &[u8],
        _out: &mut Vec<i16>,
    ) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_values() {
        // ITU-T G.711 Table 2a (mu-law): code 0x00/0x80 are the largest
        // negative/positive values (8031 in 14-bit units = ±32124 in
        // 16-bit), 0xFF and 0x7F are +0 and -0.
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(decode_sample(0xff), 0);
        assert_eq!(decode_sample(0x7f), 0);
        assert_eq!(encode_sample(0), 0xff);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_round_trips_and_error_is_within_half_a_step() {
        for code in 0..=255u8 {
            let lin = decode_sample(code);
            // 0x7F (-0) re-encodes as 0xFF (+0); both decode to 0.
            assert_eq!(decode_sample(encode_sample(lin)), lin, "code {code:#x}");
        }
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = i32::from(decode_sample(encode_sample(s)));
            let s = i32::from(s).clamp(-CLIP, CLIP);
            // Step size in the top segment is 1024; half of it bounds the error.
            let step = ((s.abs() + BIAS) >> 4).max(8);
            assert!((back - s).abs() <= step / 2 + 1, "{s} -> {back}");
        }
    }

    #[test]
    fn codec_through_the_traits_and_concealment_fades() {
        let mut enc = MuLawEncoder::new(FrameDuration::Ms20).unwrap();
        let mut dec = MuLawDecoder::new();
        let pcm: Vec<i16> = (0..160).map(|i| ((i % 40) as i16 - 20) * 500).collect();
        let mut payload = Vec::new();
        enc.encode(&pcm, &mut payload).unwrap();
        assert_eq!(payload.len(), 160);
        let out = dec.decode(&payload).unwrap();
        assert_eq!(out.len(), 160);
        assert!(!dec.has_fec(&payload));
        assert!(dec.decode_fec(&payload).unwrap().is_none());
        let energy = |v: &[i16]| v.iter().map(|&s| i64::from(s).pow(2)).sum::<i64>();
        let first = dec.conceal(160).unwrap();
        let second = dec.conceal(160).unwrap();
        assert!(energy(&first) > 0);
        assert!(energy(&second) < energy(&first) / 4);
        assert!(MuLawEncoder::new(FrameDuration::Ms60).is_err());
        assert!(enc.encode(&pcm[..10], &mut payload).is_err());
    }
}
