//! Lip sync: when to show a received video frame so that it appears with
//! the audio captured at the same instant.
//!
//! The audio waits in its jitter buffer (tens to hundreds of ms on a
//! mobile link); a video frame shown as soon as it decodes runs ahead of
//! the speech by that much. A sender's SRs pair each stream's RTP clock
//! with one wallclock (RFC 3550 §6.4.1), so a frame's RTP timestamp names
//! the instant it was captured on the same clock as the audio's; the
//! audio's RTP timestamp as it plays says which instant is being heard.
//! The frame is due when the audio catches up with it.

use crate::rtp::SenderClock;
use std::time::{Duration, Instant};

/// The peer's clocks and our audio playout, as far as known. Sans-IO: the
/// call feeds it the peer's SRs and what its jitter buffer played, and
/// asks when each frame is due.
#[derive(Debug, Clone)]
pub struct AvSync {
    audio_rate: u32,
    video_rate: u32,
    audio: Option<SenderClock>,
    video: Option<SenderClock>,
    /// The latest audio played from the peer's stream: when, and its RTP
    /// timestamp.
    played: Option<(Instant, u32)>,
}

/// Seconds from `c`'s SR instant to the instant of RTP `timestamp` on a
/// `rate` Hz clock (both sides of the SR: the SR is at most a few seconds
/// old, well within the ±2^31 ticks a wrapping difference tells apart).
fn since_report(c: SenderClock, timestamp: u32, rate: u32) -> f64 {
    f64::from(timestamp.wrapping_sub(c.rtp_time) as i32) / f64::from(rate)
}

impl AvSync {
    /// Sync for an audio stream on an `audio_rate` Hz RTP clock and a
    /// video stream on a `video_rate` Hz one.
    pub fn new(audio_rate: u32, video_rate: u32) -> Self {
        Self {
            audio_rate: audio_rate.max(1),
            video_rate: video_rate.max(1),
            audio: None,
            video: None,
            played: None,
        }
    }

    /// The peer's clocks on its audio and its video from their latest SRs.
    pub fn set_clocks(&mut self, audio: Option<SenderClock>, video: Option<SenderClock>) {
        self.audio = audio;
        self.video = video;
    }

    /// Audio from RTP `timestamp` on was handed to the speaker at `now`.
    pub fn on_audio_played(&mut self, now: Instant, timestamp: u32) {
        self.played = Some((now, timestamp));
    }

    /// The audio played from `now` for `d` was concealment while the
    /// buffer waited for late packets: the peer's clock, as heard, stood
    /// still, and the frames wait with it. (When it concealed a lost
    /// packet instead, the next packet played puts the clock right.)
    pub fn on_audio_stalled(&mut self, now: Instant, d: Duration) {
        let Some((at, ts)) = self.played else {
            return;
        };
        let heard = now.saturating_duration_since(at);
        let ticks = heard.as_nanos() * u128::from(self.audio_rate) / 1_000_000_000;
        self.played = Some((now + d, ts.wrapping_add(ticks as u32)));
    }

    /// When the video frame with RTP `timestamp` is due to be shown: when
    /// the audio captured at the same instant plays, at the audio's
    /// current delay. `None` until both streams' clocks and some played
    /// audio are known: then there is nothing to wait for.
    pub fn render_at(&self, timestamp: u32) -> Option<Instant> {
        let (audio, video, (at, played)) = (self.audio?, self.video?, self.played?);
        // Wallclock seconds from the audio being heard to the frame's capture.
        let reports =
            (i128::from(video.ntp_time) - i128::from(audio.ntp_time)) as f64 / 4_294_967_296.0;
        let ahead = reports + since_report(video, timestamp, self.video_rate)
            - since_report(audio, played, self.audio_rate);
        if !ahead.is_finite() {
            return None;
        }
        // Beyond a day either way the reports are nonsense; clamp so the
        // arithmetic cannot overflow (the caller caps the hold anyway).
        let d = Duration::from_secs_f64(ahead.abs().min(86_400.0));
        if ahead >= 0.0 {
            at.checked_add(d)
        } else {
            Some(at.checked_sub(d).unwrap_or(at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTP_SECOND: u64 = 1 << 32;

    /// A peer whose audio (48 kHz) and video (90 kHz) started at random
    /// RTP bases and whose SRs came at different times.
    fn synced() -> AvSync {
        let mut s = AvSync::new(48_000, 90_000);
        s.set_clocks(
            Some(SenderClock {
                ntp_time: 1000 * NTP_SECOND,
                rtp_time: 5_000,
            }),
            Some(SenderClock {
                ntp_time: 1002 * NTP_SECOND + NTP_SECOND / 2,
                rtp_time: u32::MAX - 9_000,
            }),
        );
        s
    }

    #[test]
    fn a_frame_waits_for_the_audio_captured_with_it() {
        let t0 = Instant::now();
        let mut s = synced();
        // Nothing is known until audio plays.
        assert_eq!(s.render_at(0), None);
        // At t0 the audio captured at NTP 1003.0 plays (5 000 + 3 s).
        s.on_audio_played(t0, 5_000 + 3 * 48_000);
        // The frame captured at NTP 1003.25: 0.75 s after the video SR,
        // across the RTP timestamp's wrap.
        let frame = (u32::MAX - 9_000).wrapping_add(67_500);
        assert_eq!(s.render_at(frame), Some(t0 + Duration::from_millis(250)));
        // The audio delay grew by 40 ms (it plays older audio at t0 + 1 s):
        // the frame moves with it.
        s.on_audio_played(t0 + Duration::from_secs(1), 5_000 + 3 * 48_000 + 46_080);
        let due = s.render_at(frame).unwrap() - (t0 + Duration::from_millis(250));
        assert!(due.abs_diff(Duration::from_millis(40)) < Duration::from_micros(1));
        // A frame captured before the audio playing now is due already.
        let old = (u32::MAX - 9_000).wrapping_add(9_000);
        assert!(s.render_at(old).unwrap() < t0);
    }

    #[test]
    fn frames_wait_while_the_audio_waits_for_late_packets() {
        let t0 = Instant::now();
        let mut s = synced();
        s.on_audio_played(t0, 5_000 + 3 * 48_000);
        let frame = (u32::MAX - 9_000).wrapping_add(67_500);
        let due = s.render_at(frame).unwrap();
        // 20 ms in, the buffer conceals for 30 ms: the frame waits 30 ms more.
        let ten = Duration::from_millis(10);
        for i in 2..5 {
            s.on_audio_stalled(t0 + ten * i, ten);
        }
        assert_eq!(s.render_at(frame), Some(due + 3 * ten));
    }

    #[test]
    fn without_a_report_on_either_stream_frames_do_not_wait() {
        let t0 = Instant::now();
        let clock = SenderClock {
            ntp_time: NTP_SECOND,
            rtp_time: 0,
        };
        for (audio, video) in [(Some(clock), None), (None, Some(clock)), (None, None)] {
            let mut s = AvSync::new(48_000, 90_000);
            s.set_clocks(audio, video);
            s.on_audio_played(t0, 0);
            assert_eq!(s.render_at(0), None);
        }
    }

    #[test]
    fn reports_far_apart_do_not_overflow() {
        let t0 = Instant::now();
        let mut s = AvSync::new(48_000, 90_000);
        s.set_clocks(
            Some(SenderClock {
                ntp_time: 0,
                rtp_time: 0,
            }),
            Some(SenderClock {
                ntp_time: u64::MAX,
                rtp_time: 0,
            }),
        );
        s.on_audio_played(t0, 0);
        assert!(s.render_at(0).unwrap() > t0 + Duration::from_secs(3600));
        s.set_clocks(
            Some(SenderClock {
                ntp_time: u64::MAX,
                rtp_time: 0,
            }),
            Some(SenderClock {
                ntp_time: 0,
                rtp_time: 0,
            }),
        );
        assert!(s.render_at(0).unwrap() <= t0);
    }
}
