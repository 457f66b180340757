//! The Speex echo canceller (`libspeexdsp`, `speex/speex_echo.h`: MDF,
//! with the preprocessor's residual echo suppression) behind a safe owner
//! type, the echo canceller to beat.

use std::ffi::c_void;

unsafe extern "C" {
    fn sotto_speex_echo_new(frame: i32, filter_length: i32, rate: i32) -> *mut c_void;
    fn sotto_speex_echo_run(
        st: *mut c_void,
        captured: *const i16,
        played: *const i16,
        out: *mut i16,
    );
    fn sotto_speex_echo_free(st: *mut c_void);
}

/// One Speex echo canceller.
#[derive(Debug)]
pub struct SpeexEcho {
    raw: *mut c_void,
    frame: usize,
}

impl SpeexEcho {
    /// A canceller of `frame` samples per call at `rate` Hz whose filter
    /// spans `filter_length` samples (the longest echo path it can follow).
    pub fn new(frame: usize, filter_length: usize, rate: u32) -> Option<Self> {
        let (f, l, r) = (
            i32::try_from(frame).ok()?,
            i32::try_from(filter_length).ok()?,
            i32::try_from(rate).ok()?,
        );
        // SAFETY: plain integers in; the state is freed in Drop.
        let raw = unsafe { sotto_speex_echo_new(f, l, r) };
        (!raw.is_null()).then_some(Self { raw, frame })
    }

    /// Removes from `captured` the echo of `played` (the frame played as
    /// it was recorded) into `out`. Each must hold one frame.
    pub fn run(&mut self, captured: &[i16], played: &[i16], out: &mut [i16]) {
        assert!(
            captured.len() == self.frame && played.len() == self.frame && out.len() == self.frame
        );
        // SAFETY: `raw` is live; each buffer holds the `frame` samples the
        // state was made for (checked above).
        unsafe {
            sotto_speex_echo_run(
                self.raw,
                captured.as_ptr(),
                played.as_ptr(),
                out.as_mut_ptr(),
            )
        };
    }
}

impl Drop for SpeexEcho {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `sotto_speex_echo_new` and is freed only here.
        unsafe { sotto_speex_echo_free(self.raw) };
    }
}

// SAFETY: the Speex state has no thread affinity; `&mut self` serialises use.
unsafe impl Send for SpeexEcho {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture that is the played frame, halved, 10 samples late: the
    /// canceller takes most of it out once it has adapted.
    #[test]
    fn a_plain_echo_is_cancelled() {
        let mut e = SpeexEcho::new(480, 4_800, 48_000).unwrap();
        let mut state = 1u32;
        let mut noise = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 17) as i16 - 16_384
        };
        let played: Vec<i16> = (0..48_000 * 4).map(|_| noise() / 4).collect();
        let mut out = vec![0i16; 480];
        let (mut echo_energy, mut left_energy) = (0f64, 0f64);
        for (k, far) in played.chunks_exact(480).enumerate() {
            let start = k * 480;
            let captured: Vec<i16> = (start..start + 480)
                .map(|t| if t >= 10 { played[t - 10] / 2 } else { 0 })
                .collect();
            e.run(&captured, far, &mut out);
            if start >= 48_000 * 3 {
                echo_energy += captured.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
                left_energy += out.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
        }
        assert!(
            left_energy * 100.0 < echo_energy,
            "{left_energy} of {echo_energy}"
        );
    }
}
