//! The demo's video: each side's camera shows the codec's moving test
//! pattern and its screen keeps what the call showed, so that the report
//! can say which of the frames sent came through, how well, and how the
//! pictures waited for their sound (lip sync).

use sotto_engine::call::VideoStats;
use sotto_engine::call::driver::VideoPort;
use sotto_engine::sim::SimVideo;
use sotto_engine::video::{VideoConfig, VideoFrame};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Picture size and rate: small enough to share the LTE trace with the
/// speech without crowding it.
pub const WIDTH: u32 = 160;
pub const HEIGHT: u32 = 120;
pub const FPS: u32 = 15;

/// The demo's video settings: the size above, at 60-200 kbit/s.
pub fn config() -> VideoConfig {
    VideoConfig {
        fps: FPS,
        start_bitrate: 100_000,
        min_bitrate: 60_000,
        max_bitrate: 200_000,
        ..VideoConfig::default()
    }
}

/// One side's camera and screen, shared between the call task (as its
/// [`VideoPort`]) and the report.
#[derive(Clone)]
pub struct DemoVideo {
    side: Arc<Mutex<SimVideo>>,
    start: Instant,
}

impl DemoVideo {
    /// A camera and a screen, timed from `start`.
    pub fn new(start: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            side: Arc::new(Mutex::new(SimVideo::new(WIDTH, HEIGHT, FPS)?)),
            start,
        })
    }

    /// A port for the call.
    pub fn port(&self) -> Box<dyn VideoPort> {
        Box::new(self.clone())
    }

    fn side(&self) -> std::sync::MutexGuard<'_, SimVideo> {
        self.side.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl VideoPort for DemoVideo {
    fn capture(&mut self) -> Option<VideoFrame> {
        let elapsed = self.start.elapsed();
        self.side().capture(elapsed)
    }

    fn render(&mut self, frame: VideoFrame) {
        let elapsed = self.start.elapsed();
        self.side().show(elapsed, frame);
    }
}

/// What one side saw of the other's video.
pub struct Seen {
    /// Frames the other side's camera gave its call (some before Secure,
    /// which are not sent).
    pub sent: u32,
    /// Frames this side's screen showed.
    pub shown: usize,
    /// Lowest and median PSNR of a shown frame against the frame sent (dB).
    pub psnr_min: f64,
    pub psnr_median: f64,
    /// The call's own figures: key frames decoded, packets repaired by
    /// NACK, the mean wait for the audio, the last frame's offset.
    pub key_frames: u64,
    pub repaired: u64,
    pub mean_sync_wait_ms: f64,
    pub av_offset_ms: Option<f64>,
}

impl Seen {
    /// What `screen` showed of `camera`'s frames, with `stats` of the
    /// screen's call.
    pub fn of(screen: &DemoVideo, camera: &DemoVideo, stats: Option<&VideoStats>) -> Self {
        let (screen, camera) = (screen.side(), camera.side());
        let mut psnr: Vec<f64> = screen
            .matches(&camera, FPS)
            .into_iter()
            .map(|m| m.1)
            .collect();
        psnr.sort_by(f64::total_cmp);
        let i = stats.map(|s| s.inbound.clone()).unwrap_or_default();
        Self {
            sent: camera.sent(),
            shown: screen.shown.len(),
            psnr_min: psnr.first().copied().unwrap_or(0.0),
            psnr_median: psnr.get(psnr.len() / 2).copied().unwrap_or(0.0),
            key_frames: i.key_frames_decoded,
            repaired: i.packets_repaired,
            mean_sync_wait_ms: if i.frames_decoded > 0 {
                i.total_sync_delay / i.frames_decoded as f64 * 1000.0
            } else {
                0.0
            },
            av_offset_ms: i.av_offset_ms,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "frames_sent": self.sent,
            "frames_shown": self.shown,
            "psnr_min_db": self.psnr_min,
            "psnr_median_db": self.psnr_median,
            "key_frames_decoded": self.key_frames,
            "packets_repaired": self.repaired,
            "mean_sync_wait_ms": self.mean_sync_wait_ms,
            "av_offset_ms": self.av_offset_ms,
        })
    }
}
