//! Sample-format and channel-layout conversion (with `dasp`).
//!
//! Devices deliver `f32` in [-1, 1] or `i16`; codecs take `i16`. Buffers
//! are interleaved.

use dasp::Sample;

/// Converts `i16` samples to `f32` in [-1, 1).
pub fn i16_to_f32(input: &[i16]) -> Vec<f32> {
    let mut out = vec![0.0; input.len()];
    i16_to_f32_into(input, &mut out);
    out
}

/// Converts `f32` samples to `i16`, clipping anything outside [-1, 1].
pub fn f32_to_i16(input: &[f32]) -> Vec<i16> {
    let mut out = vec![0; input.len()];
    f32_to_i16_into(input, &mut out);
    out
}

/// As [`i16_to_f32`], into `out` (no allocation, for an audio thread):
/// converts as many samples as the shorter of the two holds.
pub fn i16_to_f32_into(input: &[i16], out: &mut [f32]) {
    for (o, s) in out.iter_mut().zip(input) {
        *o = s.to_sample::<f32>();
    }
}

/// As [`f32_to_i16`], into `out` (no allocation, for an audio thread):
/// converts as many samples as the shorter of the two holds.
pub fn f32_to_i16_into(input: &[f32], out: &mut [i16]) {
    for (o, s) in out.iter_mut().zip(input) {
        *o = s.clamp(-1.0, 1.0).to_sample::<i16>();
    }
}

/// Averages interleaved stereo into mono.
pub fn stereo_to_mono(input: &[i16]) -> Vec<i16> {
    input
        .chunks_exact(2)
        .map(|lr| ((i32::from(lr[0]) + i32::from(lr[1])) / 2) as i16)
        .collect()
}

/// Duplicates mono into interleaved stereo.
pub fn mono_to_stereo(input: &[i16]) -> Vec<i16> {
    input.iter().flat_map(|&s| [s, s]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_f32_round_trip_is_exact() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        assert_eq!(f32_to_i16(&i16_to_f32(&all)), all);
    }

    #[test]
    fn f32_clips_and_scales() {
        assert_eq!(
            f32_to_i16(&[2.0, -2.0, 0.0, 0.5]),
            [i16::MAX, i16::MIN, 0, 16384]
        );
        assert_eq!(i16_to_f32(&[i16::MIN]), [-1.0]);
    }

    #[test]
    fn channel_layouts() {
        assert_eq!(stereo_to_mono(&[100, 300, -5, 5, 7]), [200, 0]);
        assert_eq!(mono_to_stereo(&[1, 2]), [1, 1, 2, 2]);
    }
}
