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
//!
//! Where the audio will be heard is known only once it plays: a talkspurt
//! after a pause may start later (or sooner) than the last one ran, if the
//! buffer's delay moved in the silence. So a frame captured after a
//! talkspurt began that has arrived but not yet started to play waits for
//! it; the first words and the lips that say them come out together.

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
    /// A talkspurt's first packet that has arrived but not played: when
    /// it came, and its RTP timestamp.
    pending_start: Option<(Instant, u32)>,
    /// How long the audio has been concealing since it last played a
    /// packet.
    stalled: Duration,
}

/// When a video frame is due (see [`AvSync::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// At once: the peer's clocks (its SRs on both streams) or where its
    /// audio plays are not known yet.
    Now,
    /// When the audio captured with it plays.
    At(Instant),
    /// Once audio still to be played has started: the frame was captured
    /// after a talkspurt began that has arrived but not yet played.
    AfterAudio,
}

/// Longest a talkspurt's start is waited for: past this it was dropped
/// (too late, or the stream started over) and will not play.
const START_WAIT: Duration = Duration::from_secs(1);
/// Longest the audio's clock stands still while the buffer conceals: past
/// this the peer's audio is gone (a stalled microphone, a peer that mutes
/// by sending nothing), and the pictures go on without it.
const MAX_STALL: Duration = Duration::from_millis(500);
/// Farther apart than this, a frame and the audio being heard are not
/// worth lining up: the reports are wrong, or the audio is seconds behind
/// after an outage; frames are shown as they come.
const MAX_AHEAD: f64 = 3.0;

/// Whether RTP timestamp `a` is at or after `b` (modulo 2^32).
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
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
            pending_start: None,
            stalled: Duration::ZERO,
        }
    }

    /// The peer's clocks on its audio and its video from their latest SRs.
    pub fn set_clocks(&mut self, audio: Option<SenderClock>, video: Option<SenderClock>) {
        self.audio = audio;
        self.video = video;
    }

    /// An audio packet with RTP `timestamp` arrived at `now`; `marker`:
    /// the first of a talkspurt (RFC 3551 §4.1).
    pub fn on_audio_received(&mut self, now: Instant, timestamp: u32, marker: bool) {
        self.on_pull(now);
        if marker && self.pending_start.is_none() {
            self.pending_start = Some((now, timestamp));
        }
    }

    /// Audio from RTP `timestamp` on was handed to the speaker at `now`.
    pub fn on_audio_played(&mut self, now: Instant, timestamp: u32) {
        self.played = Some((now, timestamp));
        self.stalled = Duration::ZERO;
        if self
            .pending_start
            .is_some_and(|(_, start)| at_or_after(timestamp, start))
        {
            self.pending_start = None;
        }
    }

    /// The audio played from `now` for `d` was concealment while the
    /// buffer waited for late packets: the peer's clock, as heard, stood
    /// still, and the frames wait with it. (When it concealed a lost
    /// packet instead, the next packet played puts the clock right.) Past
    /// 500 ms the audio counts as gone: frames no longer wait.
    pub fn on_audio_stalled(&mut self, now: Instant, d: Duration) {
        let Some((at, ts)) = self.played else {
            return;
        };
        self.stalled += d;
        if self.stalled > MAX_STALL {
            self.played = None;
            return;
        }
        let heard = now.saturating_duration_since(at);
        let ticks = heard.as_nanos() * u128::from(self.audio_rate) / 1_000_000_000;
        self.played = Some((now + d, ts.wrapping_add(ticks as u32)));
    }

    /// Each pull, at `now`: a talkspurt's start that has not played within
    /// a second is no longer waited for.
    pub fn on_pull(&mut self, now: Instant) {
        if self
            .pending_start
            .is_some_and(|(at, _)| now.saturating_duration_since(at) >= START_WAIT)
        {
            self.pending_start = None;
        }
    }

    /// The peer's audio stream started over (a new SSRC, a timestamp
    /// jump): where it plays is known again once it plays.
    pub fn on_audio_reset(&mut self) {
        self.played = None;
        self.pending_start = None;
        self.stalled = Duration::ZERO;
    }

    /// When the video frame with RTP `timestamp` is due to be shown: when
    /// the audio captured at the same instant plays, at the audio's
    /// current delay ([`Due::At`]); once a talkspurt that began before it
    /// starts to play ([`Due::AfterAudio`]); at once while nothing is
    /// known to wait for ([`Due::Now`]).
    pub fn due(&self, timestamp: u32) -> Due {
        let (Some(audio), Some(video), Some((at, played))) = (self.audio, self.video, self.played)
        else {
            return Due::Now;
        };
        // Wallclock seconds from the audio's SR to the frame's capture (NTP
        // time wraps in 2036, like an RTP clock).
        let reports = video.ntp_time.wrapping_sub(audio.ntp_time) as i64 as f64 / 4_294_967_296.0;
        let captured = reports + since_report(video, timestamp, self.video_rate);
        if self
            .pending_start
            .is_some_and(|(_, start)| captured >= since_report(audio, start, self.audio_rate))
        {
            return Due::AfterAudio;
        }
        // From the audio being heard to the frame's capture.
        let ahead = captured - since_report(audio, played, self.audio_rate);
        if ahead.is_nan() || ahead.abs() > MAX_AHEAD {
            return Due::Now;
        }
        let d = Duration::from_secs_f64(ahead.abs());
        let due = if ahead >= 0.0 {
            at.checked_add(d)
        } else {
            at.checked_sub(d)
        };
        due.map_or(Due::Now, Due::At)
    }

    /// The instant of [`Due::At`], if the frame has one.
    pub fn render_at(&self, timestamp: u32) -> Option<Instant> {
        match self.due(timestamp) {
            Due::At(t) => Some(t),
            Due::Now | Due::AfterAudio => None,
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
    fn a_frame_after_a_talkspurt_start_waits_for_it_to_play() {
        let t0 = Instant::now();
        let mut s = synced();
        s.on_audio_played(t0, 5_000 + 3 * 48_000);
        // A talkspurt starting at NTP 1003.2 arrives; a frame captured at
        // 1003.25 waits for it to play, one captured at 1003.1 does not.
        let start = 5_000 + 3 * 48_000 + 9_600;
        s.on_audio_received(t0, start, true);
        let frame = |ms: u32| (u32::MAX - 9_000).wrapping_add(67_500 - 90 * (250 - ms));
        assert_eq!(s.due(frame(250)), Due::AfterAudio);
        let ms = Duration::from_millis;
        let near = |due: Due, t: Instant| matches!(due, Due::At(d) if d.max(t) - d.min(t) < Duration::from_micros(1));
        assert!(near(s.due(frame(100)), t0 + ms(100)));
        // It plays 300 ms late (the delay grew in the pause): the frame
        // comes 50 ms after it.
        s.on_audio_played(t0 + ms(500), start);
        assert!(near(s.due(frame(250)), t0 + ms(550)));
        // The first start that came is the one waited for.
        s.on_audio_received(t0 + ms(600), start + 48_000, true);
        s.on_audio_received(t0 + ms(700), start + 96_000, true);
        s.on_audio_played(t0 + ms(800), start + 30_000);
        assert!(matches!(s.due(frame(250) + 90_000 * 2), Due::AfterAudio));
        s.on_audio_played(t0 + ms(900), start + 48_000);
        assert!(matches!(s.due(frame(250) + 90_000 * 2), Due::At(_)));
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
    fn reports_across_the_ntp_wrap_line_up_and_nonsense_does_not_hold_frames() {
        let t0 = Instant::now();
        let mut s = AvSync::new(48_000, 90_000);
        let clocks = |audio, video| {
            (
                Some(SenderClock {
                    ntp_time: audio,
                    rtp_time: 0,
                }),
                Some(SenderClock {
                    ntp_time: video,
                    rtp_time: 0,
                }),
            )
        };
        // Half a second before NTP's era ends, and half a second after.
        let (a, v) = clocks(0u64.wrapping_sub(1 << 31), 1 << 31);
        s.set_clocks(a, v);
        s.on_audio_played(t0, 0);
        assert_eq!(s.due(0), Due::At(t0 + Duration::from_secs(1)));
        // Reports 68 years apart, or a frame hours from the audio: shown
        // at once rather than held.
        let (a, v) = clocks(0, 1 << 62);
        s.set_clocks(a, v);
        assert_eq!(s.due(0), Due::Now);
        let (a, v) = clocks(0, 0);
        s.set_clocks(a, v);
        assert_eq!(s.due(90_000 * 3_600), Due::Now);
        assert_eq!(s.due(90_000 * 2), Due::At(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn audio_gone_for_good_or_started_over_holds_nothing() {
        let t0 = Instant::now();
        let ten = Duration::from_millis(10);
        let mut s = synced();
        s.on_audio_played(t0, 5_000 + 3 * 48_000);
        let frame = (u32::MAX - 9_000).wrapping_add(67_500);
        // Concealing for 500 ms holds frames as long; past it, the audio
        // is gone and they are shown at once.
        for i in 0..50 {
            s.on_audio_stalled(t0 + ten * i, ten);
        }
        assert!(matches!(s.due(frame), Due::At(_)));
        s.on_audio_stalled(t0 + ten * 50, ten);
        assert_eq!(s.due(frame), Due::Now);
        // It comes back.
        s.on_audio_played(t0 + ten * 60, 5_000 + 3 * 48_000);
        assert!(matches!(s.due(frame), Due::At(_)));
        // A talkspurt that came but never plays is waited for 1 s.
        s.on_audio_received(t0 + ten * 60, 5_000 + 3 * 48_000 + 960, true);
        assert_eq!(s.due(frame), Due::AfterAudio);
        s.on_pull(t0 + ten * 159);
        assert_eq!(s.due(frame), Due::AfterAudio);
        s.on_pull(t0 + ten * 160);
        assert!(matches!(s.due(frame), Due::At(_)));
        // The stream starts over: nothing is known until it plays.
        s.on_audio_reset();
        assert_eq!(s.due(frame), Due::Now);
    }
}
