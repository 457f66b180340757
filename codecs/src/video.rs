//! Video pictures and the video codec traits.
//!
//! The engine talks to a video codec only through [`VideoEncoder`] and
//! [`VideoDecoder`], so another codec (H.264, VP9…) can be added without
//! touching callers. Pictures are [`VideoFrame`]s: 8-bit I420 (4:2:0,
//! planar Y then U then V, no padding between rows), the format cameras
//! deliver and VP8 codes natively.

use crate::CodecError;
use std::time::Duration;

/// Smallest picture side we accept, in pixels.
pub const MIN_SIDE: u32 = 2;

/// Largest picture side we accept, in pixels. Bounds the memory a decoder
/// may be asked to allocate by a (possibly hostile) stream.
pub const MAX_SIDE: u32 = 4096;

/// Whether `width` x `height` is a picture size [`VideoFrame`] can hold.
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), CodecError> {
    let ok = |side: u32| (MIN_SIDE..=MAX_SIDE).contains(&side) && side.is_multiple_of(2);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(CodecError::PictureSize { width, height })
    }
}

/// Bytes an I420 picture of `width` x `height` (both even) occupies.
fn i420_len(width: u32, height: u32) -> usize {
    let luma = width as usize * height as usize;
    luma + luma / 2
}

/// One I420 picture.
///
/// Both sides are even and from [`MIN_SIDE`] to [`MAX_SIDE`]; the data is
/// the Y plane (`width * height` bytes) followed by the U and V planes
/// (`width / 2 * height / 2` bytes each), each row tightly packed.
///
/// ```
/// use sotto_codecs::video::VideoFrame;
///
/// let a = VideoFrame::test_pattern(320, 240, 0)?;
/// let b = VideoFrame::test_pattern(320, 240, 1)?;
/// assert_eq!(a.y().len(), 320 * 240);
/// assert_eq!(a.psnr(&a), Some(f64::INFINITY));
/// assert!(a.psnr(&b).unwrap() < 40.0); // the picture moves
/// # Ok::<(), sotto_codecs::CodecError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for VideoFrame {
    // The pixels would drown the output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl VideoFrame {
    /// Wraps `data` (Y, then U, then V) as a `width` x `height` picture.
    ///
    /// Fails with [`CodecError::PictureSize`] when a side is odd or out of
    /// range and with [`CodecError::PictureData`] when `data` does not
    /// hold exactly `width * height * 3 / 2` bytes.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, CodecError> {
        check_size(width, height)?;
        let expected = i420_len(width, height);
        if data.len() != expected {
            return Err(CodecError::PictureData {
                got: data.len(),
                expected,
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A black picture (Y 16, U and V 128: video-range black).
    pub fn black(width: u32, height: u32) -> Result<Self, CodecError> {
        check_size(width, height)?;
        let luma = width as usize * height as usize;
        let mut data = vec![128; i420_len(width, height)];
        data[..luma].fill(16);
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Frame `n` of a deterministic moving test sequence.
    ///
    /// A diagonal luma gradient drifting one pixel a frame under a fixed
    /// fine texture, a vertical bar sweeping 5 pixels a frame, and a
    /// checkered box bouncing 3 pixels across and 2 down a frame with its
    /// own colour, over chroma gradients that shift slowly with `n`. It
    /// has what makes camera video compressible and what makes it hard:
    /// smooth areas, motion a codec can predict, detail it must spend bits
    /// on, and edges that show blocking.
    pub fn test_pattern(width: u32, height: u32, n: u32) -> Result<Self, CodecError> {
        check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let n = n as usize;
        let mut data = vec![0u8; i420_len(width, height)];

        let bar_w = (w / 16).max(2);
        let bar_x = (n * 5) % w;
        let box_w = (w / 5).max(2);
        let box_h = (h / 5).max(2);
        let box_x = bounce(n * 3, w - box_w);
        let box_y = bounce(n * 2, h - box_h);
        let in_bar = |x: usize| (x + w - bar_x) % w < bar_w;
        let in_box = |x: usize, y: usize| {
            (box_x..box_x + box_w).contains(&x) && (box_y..box_y + box_h).contains(&y)
        };

        let (luma, chroma) = data.split_at_mut(w * h);
        for (y, row) in luma.chunks_exact_mut(w).enumerate() {
            for (x, px) in row.iter_mut().enumerate() {
                *px = if in_box(x, y) {
                    // Checker cells move with the box, so motion search finds them.
                    let (cx, cy) = ((x - box_x) / 8, (y - box_y) / 8);
                    if (cx + cy) % 2 == 0 { 220 } else { 60 }
                } else if in_bar(x) {
                    235
                } else {
                    let period = w + h / 2;
                    let ramp = (x + y / 2 + n) % period * 160 / period;
                    (40 + ramp + texture(x, y)) as u8
                };
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        let (u, v) = chroma.split_at_mut(cw * ch);
        for y in 0..ch {
            for x in 0..cw {
                let i = y * cw + x;
                if in_box(2 * x, 2 * y) {
                    (u[i], v[i]) = (90, 200);
                } else if in_bar(2 * x) {
                    (u[i], v[i]) = (128, 128);
                } else {
                    u[i] = (64 + (x * 128 / cw + n / 2) % 128) as u8;
                    v[i] = (64 + (y * 128 / ch + n / 3) % 128) as u8;
                }
            }
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The whole picture: Y, then U, then V.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The luma plane, `width * height` bytes, row after row.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The blue-difference chroma plane, `width / 2 * height / 2` bytes.
    pub fn u(&self) -> &[u8] {
        let (l, c) = (self.luma_len(), self.chroma_len());
        &self.data[l..l + c]
    }

    /// The red-difference chroma plane, `width / 2 * height / 2` bytes.
    pub fn v(&self) -> &[u8] {
        let (l, c) = (self.luma_len(), self.chroma_len());
        &self.data[l + c..]
    }

    /// Gives the buffer back (Y, then U, then V).
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Peak signal-to-noise ratio of `other` against `self`, in dB, over
    /// all three planes together: 10 log10(255² / MSE), the MSE taken over
    /// every Y, U and V sample (chroma weighs a third of the samples, as
    /// in libvpx's "overall" PSNR).
    ///
    /// `None` when the sizes differ; [`f64::INFINITY`] when the pictures
    /// are identical.
    pub fn psnr(&self, other: &VideoFrame) -> Option<f64> {
        if (self.width, self.height) != (other.width, other.height) {
            return None;
        }
        let sse: u64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| {
                let d = u64::from(a.abs_diff(b));
                d * d
            })
            .sum();
        if sse == 0 {
            return Some(f64::INFINITY);
        }
        let mse = sse as f64 / self.data.len() as f64;
        Some(10.0 * (255.0 * 255.0 / mse).log10())
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        self.luma_len() / 4
    }
}

/// Position `travel` pixels along a path that bounces between 0 and `span`.
fn bounce(travel: usize, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let t = travel % (2 * span);
    if t <= span { t } else { 2 * span - t }
}

/// A fixed pseudo-random texture of amplitude 0..16 (an integer hash of
/// the position), standing in for the fine detail of a camera picture.
fn texture(x: usize, y: usize) -> usize {
    let mut h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 15) as usize
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedVideo {
    /// The codec's bitstream for the picture (one VP8 frame, for VP8).
    pub data: Vec<u8>,
    /// Whether a decoder can start here: the picture references no
    /// earlier one.
    pub keyframe: bool,
}

/// A video encoder: one [`VideoFrame`] in, at most one [`EncodedVideo`]
/// out, with no lookahead (a picture's data comes out of the call that
/// took it).
pub trait VideoEncoder: Send {
    /// Encodes `frame`, captured at `captured` (from any fixed start;
    /// the encoder spreads its bitrate over the frames by these times,
    /// whatever the camera's rate), as a keyframe when `force_keyframe`
    /// is set (a receiver asked for one, e.g. after loss).
    ///
    /// Returns `Ok(None)` when rate control dropped the picture to stay
    /// within the bitrate; the caller sends nothing for it.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        captured: Duration,
        force_keyframe: bool,
    ) -> Result<Option<EncodedVideo>, CodecError>;

    /// Sets the target bitrate in bit/s, effective from the next picture
    /// (congestion control calls this as its estimate moves).
    fn set_bitrate(&mut self, bits_per_second: u32) -> Result<(), CodecError>;
}

/// A video decoder: one encoded picture in, at most one [`VideoFrame`] out.
pub trait VideoDecoder: Send {
    /// Decodes one encoded picture.
    ///
    /// Returns `Ok(None)` when the data decoded to no picture to show.
    /// Corrupt, truncated or undecodable data (including a picture whose
    /// reference was lost) is an `Err`; the caller should then ask the
    /// sender for a keyframe, which the decoder accepts whatever came
    /// before.
    fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lengths_are_checked() {
        for (w, h) in [(0, 2), (2, 0), (3, 2), (2, 5), (4098, 2), (2, 4098)] {
            assert!(
                matches!(
                    VideoFrame::black(w, h),
                    Err(CodecError::PictureSize { width, height }) if (width, height) == (w, h)
                ),
                "{w}x{h}"
            );
        }
        assert!(matches!(
            VideoFrame::new(4, 2, vec![0; 11]),
            Err(CodecError::PictureData {
                got: 11,
                expected: 12
            })
        ));
        assert!(matches!(
            VideoFrame::new(5, 2, vec![0; 15]),
            Err(CodecError::PictureSize { .. })
        ));
        let f = VideoFrame::new(4, 2, (0..12).collect()).unwrap();
        assert_eq!(f.y(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.u(), &[8, 9]);
        assert_eq!(f.v(), &[10, 11]);
        assert_eq!(f.into_data().len(), 12);
        assert!(VideoFrame::black(MAX_SIDE, MIN_SIDE).is_ok());
    }

    #[test]
    fn black_is_video_range_black() {
        let f = VideoFrame::black(8, 4).unwrap();
        assert!(f.y().iter().all(|&p| p == 16));
        assert!(f.u().iter().chain(f.v()).all(|&p| p == 128));
    }

    #[test]
    fn psnr_matches_hand_computation() {
        let a = VideoFrame::black(4, 2).unwrap();
        assert_eq!(a.psnr(&a), Some(f64::INFINITY));
        // One sample off by 10 of 12: MSE 100/12.
        let mut d = a.data().to_vec();
        d[3] += 10;
        let b = VideoFrame::new(4, 2, d).unwrap();
        let expected = 10.0 * (255.0f64 * 255.0 * 12.0 / 100.0).log10();
        assert!((a.psnr(&b).unwrap() - expected).abs() < 1e-9);
        assert_eq!(a.psnr(&VideoFrame::black(2, 4).unwrap()), None);
    }

    #[test]
    fn test_pattern_is_deterministic_moves_and_fits_small_sizes() {
        let a = VideoFrame::test_pattern(64, 48, 7).unwrap();
        assert_eq!(a, VideoFrame::test_pattern(64, 48, 7).unwrap());
        let b = VideoFrame::test_pattern(64, 48, 8).unwrap();
        assert_ne!(a.y(), b.y());
        // Chroma is not flat.
        assert!(a.u().iter().any(|&p| p != a.u()[0]));
        assert!(a.v().iter().any(|&p| p != a.v()[0]));
        for n in 0..50 {
            VideoFrame::test_pattern(2, 2, n).unwrap();
            VideoFrame::test_pattern(6, 4, n).unwrap();
        }
        assert!(VideoFrame::test_pattern(7, 4, 0).is_err());
    }

    #[test]
    fn bounce_stays_in_range() {
        for t in 0..100 {
            assert!(bounce(t, 7) <= 7);
        }
        assert_eq!(bounce(9, 7), 5);
        assert_eq!(bounce(5, 0), 0);
    }
}
