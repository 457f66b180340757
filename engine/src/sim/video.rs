//! A simulated camera and screen: the camera shows the codec's moving
//! test pattern at a fixed frame rate; the screen keeps every frame the
//! call gave it, so a test can tell which sent frame each one is and how
//! well it came through.

use crate::call::Call;
use crate::video::VideoFrame;
use sotto_codecs::CodecError;
use std::time::{Duration, Instant};

/// One side's camera and screen.
#[derive(Debug, Clone)]
pub struct SimVideo {
    /// Picture sizes, each with the first frame it applies to (in order).
    sizes: Vec<(u32, u32, u32)>,
    interval: Duration,
    next: Duration,
    sent: u32,
    /// When the camera gave the call each frame, from the start of the run.
    pub sent_at: Vec<Duration>,
    /// Frames the call gave the screen, in order.
    pub shown: Vec<VideoFrame>,
    /// When the call gave the screen each of them, from the start of the run.
    pub shown_at: Vec<Duration>,
}

impl SimVideo {
    /// A `width` x `height` camera at `fps` frames a second; the size
    /// must be one a frame can have (even, 2 to 4096).
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, CodecError> {
        VideoFrame::test_pattern(width, height, 0)?;
        Ok(Self {
            sizes: vec![(0, width, height)],
            interval: Duration::from_secs(1) / fps.max(1),
            next: Duration::ZERO,
            sent: 0,
            sent_at: Vec::new(),
            shown: Vec::new(),
            shown_at: Vec::new(),
        })
    }

    /// Frames the camera gave the call.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// From the next frame on, the camera gives `width` x `height`
    /// pictures (a camera switched, or rotated).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), CodecError> {
        VideoFrame::test_pattern(width, height, 0)?;
        self.sizes.push((self.sent, width, height));
        Ok(())
    }

    /// The frame the camera showed `n`th.
    pub fn frame(&self, n: u32) -> VideoFrame {
        let (_, w, h) = self
            .sizes
            .iter()
            .rev()
            .find(|(from, _, _)| *from <= n)
            .copied()
            .unwrap_or(self.sizes[0]);
        VideoFrame::test_pattern(w, h, n).expect("sizes checked by SimVideo::new and resize")
    }

    /// The camera's frame when one is due at `elapsed` into the run
    /// (counted as sent).
    pub fn capture(&mut self, elapsed: Duration) -> Option<VideoFrame> {
        if elapsed < self.next {
            return None;
        }
        let frame = self.frame(self.sent);
        self.sent += 1;
        self.sent_at.push(elapsed);
        self.next += self.interval;
        Some(frame)
    }

    /// The screen shows `frame` at `elapsed` into the run.
    pub fn show(&mut self, elapsed: Duration, frame: VideoFrame) {
        self.shown.push(frame);
        self.shown_at.push(elapsed);
    }

    /// At `elapsed` into the run: the camera's frame when one is due, and
    /// what the call has to show.
    pub(crate) fn tick(&mut self, now: Instant, elapsed: Duration, call: &mut Call) {
        if let Some(frame) = self.capture(elapsed) {
            let _ = call.push_video(now, &frame);
        }
        while let Some(f) = call.poll_video() {
            self.show(elapsed, f);
        }
    }

    /// For each frame this screen showed, which of the frames `camera`
    /// sent it is and its PSNR against it (dB): the best match among the
    /// frames after the previous one's match, up to `window` of them. The
    /// first is looked for among all the frames sent: it may come seconds
    /// after the first sent (when the first key frame was lost).
    pub fn matches(&self, camera: &SimVideo, window: u32) -> Vec<(u32, f64)> {
        let mut from = 0;
        let mut out = Vec::with_capacity(self.shown.len());
        for (i, shown) in self.shown.iter().enumerate() {
            let end = if i == 0 {
                camera.sent
            } else {
                camera.sent.min(from + window)
            };
            let best = (from..end)
                .map(|n| (n, camera.frame(n).psnr(shown).unwrap_or(0.0)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((from, 0.0));
            from = best.0 + 1;
            out.push(best);
        }
        out
    }
}
