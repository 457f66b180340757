//! Paces playout to a sound device's clock.
//!
//! The call's driver ticks every 10 ms of the system clock; a sound card
//! plays at its own crystal's rate, which is never quite the same (the
//! jitter buffer is built for clocks +-100 ppm apart, issue 4). One frame
//! per tick into the device's queue then either fills it (a slow device:
//! the delay creeps up until the queue is full, 200 ms for the
//! softphone's and the SDK's rings) or drains it (a fast one: the device
//! plays silence each time it runs dry). The pacer watches how much of the
//! queue the device never used and plays one frame more or less per tick
//! to keep that small: the jitter buffer then takes up the difference
//! (it cuts or lengthens pauses), as it does for a sender's clock.
//!
//! A backlog is another matter. A device that starts pulling late (an app
//! that opens its audio unit on SecureUp) or stalls (an iOS interruption,
//! an xrun, a GC pause) finds the queue full, and at one frame a second
//! its 200 ms would take 20 s to go, every word that late. So a queue
//! whose low point over a short window is well above the spare frames is
//! cut at once, one frame withheld at each tick until the excess is gone
//! (a few hundred ms). A withheld tick does not pull the call, so no audio
//! is lost: the jitter buffer keeps it and takes the excess out in the
//! next pauses, as it does after a network outage. A backlog is judged
//! only while the device takes audio (the queue falls), and a cut stops
//! when it stops taking: withheld for a device that is still stalled, the
//! audio would only pile up in the jitter buffer, and a long interruption
//! would come back seconds stale. A cut that leaves the device to run dry
//! (its takes vary more than the window showed) makes the windows longer.

/// Ticks over which the queue's low point is measured (1 s): several
/// device callbacks even for long device periods.
const WINDOW_TICKS: u32 = 100;
/// A low point this many frames or more: audio that waited in the queue
/// for a whole window without being needed, so one frame is left out.
const SPARE_FRAMES: usize = 2;
/// Ticks over which a backlog is looked for at first (200 ms): several
/// callbacks of a device taking 2, 4 or 8 frames at a time. Doubled, up
/// to [`WINDOW_TICKS`], each time a cut is followed by the device running
/// dry.
const BACKLOG_WINDOW_TICKS: u32 = 20;
/// A low point this many frames or more over a backlog window is a
/// backlog, not drift (which the 1 s window keeps to a frame or two): it
/// is cut to [`SPARE_FRAMES`] at once.
const BACKLOG_FRAMES: usize = 5;
/// Withheld ticks with the queue not falling: longer than any device's
/// period, so the device is taking nothing and the cut stops.
const STALL_TICKS: u32 = 15;

/// How many 10 ms frames to play at each tick for a device that reports
/// its queue.
#[derive(Debug, Clone)]
pub struct PlayoutPacer {
    /// Fewest frames queued at a tick in this window.
    low: usize,
    /// Ticks into this window.
    ticks: u32,
    /// Fewest frames queued at a tick in this backlog window.
    backlog_low: usize,
    /// Ticks into this backlog window.
    backlog_ticks: u32,
    /// Whether the device took audio in this backlog window.
    took: bool,
    /// Whether a backlog window went by without the device taking audio:
    /// the next one then starts when it takes some.
    idle: bool,
    /// Frames of a backlog still to withhold, one a tick.
    cut: usize,
    /// Withheld ticks since the queue last fell.
    quiet: u32,
    /// Frames queued at the last tick.
    last: usize,
    /// Whether the last tick played nothing.
    withheld: bool,
    /// Ticks in a backlog window: longer each time a cut left the device
    /// to run dry (its takes vary more than a short window shows).
    backlog_window: u32,
    /// Ticks since a cut started or ended (`None`: none in the last
    /// [`WINDOW_TICKS`]).
    since_cut: Option<u32>,
}

impl Default for PlayoutPacer {
    fn default() -> Self {
        Self {
            low: usize::MAX,
            ticks: 0,
            backlog_low: usize::MAX,
            backlog_ticks: 0,
            took: false,
            idle: true,
            cut: 0,
            quiet: 0,
            last: 0,
            withheld: false,
            backlog_window: BACKLOG_WINDOW_TICKS,
            since_cut: None,
        }
    }
}

impl PlayoutPacer {
    /// Frames to play now, given the frames queued for the device (`None`:
    /// a port paced by the tick itself, which always gets one).
    pub fn frames_to_play(&mut self, queued: Option<usize>) -> usize {
        let Some(queued) = queued else {
            return 1;
        };
        // Only the device takes from the queue: a fall is the device
        // taking audio, whatever was played meanwhile.
        let took = queued < self.last;
        if took {
            self.quiet = 0;
        } else if self.withheld {
            // Nothing played and nothing taken.
            self.quiet += 1;
        }
        self.last = queued;
        let n = self.decide(queued, took);
        self.withheld = n == 0;
        n
    }

    fn decide(&mut self, queued: usize, took: bool) -> usize {
        if queued == 0 {
            // The device took all there was: it may run dry before the
            // next tick. One frame ahead, and no cut under way. Soon
            // after a cut, that cut was too deep: judge by longer windows.
            let mut window = self.backlog_window;
            if self.since_cut.is_some() {
                window = (window * 2).min(WINDOW_TICKS);
            }
            *self = Self {
                backlog_window: window,
                ..Self::default()
            };
            return 2;
        }
        self.since_cut = self.since_cut.map(|t| t + 1).filter(|&t| t < WINDOW_TICKS);
        if self.cut > 0 {
            if self.quiet >= STALL_TICKS {
                // The device stopped taking: withheld audio would only
                // pile up in the jitter buffer.
                self.cut = 0;
                self.idle = true;
                self.restart();
                return 1;
            }
            if queued > SPARE_FRAMES {
                self.cut -= 1;
                if self.cut == 0 {
                    self.since_cut = Some(0);
                }
                return 0;
            }
            // Down to the spare frames already (the device took faster).
            self.cut = 0;
            self.since_cut = Some(0);
            self.restart();
            return 1;
        }
        if took && self.idle {
            // Taking again, or for the first time: what it leaves from
            // now on is what counts, not the queue it found.
            self.idle = false;
            self.restart();
        }
        self.took |= took;
        self.low = self.low.min(queued);
        self.ticks += 1;
        self.backlog_low = self.backlog_low.min(queued);
        self.backlog_ticks += 1;
        if self.backlog_ticks >= self.backlog_window {
            let (low, took) = (self.backlog_low, self.took);
            self.backlog_low = usize::MAX;
            self.backlog_ticks = 0;
            self.took = false;
            if !took {
                // A stalled device (or one that has not started): its full
                // queue says nothing of what it will leave unused.
                self.idle = true;
            } else if low >= BACKLOG_FRAMES {
                // This tick's is the first frame withheld.
                self.cut = low - SPARE_FRAMES - 1;
                self.since_cut = Some(0);
                self.restart();
                return 0;
            }
        }
        if self.ticks < WINDOW_TICKS {
            return 1;
        }
        let spare = self.low >= SPARE_FRAMES;
        self.low = usize::MAX;
        self.ticks = 0;
        if spare { 0 } else { 1 }
    }

    /// Starts both windows again (after a cut, or when the device starts
    /// taking), so that what they measure is the queue from now on.
    fn restart(&mut self) {
        self.low = usize::MAX;
        self.ticks = 0;
        self.backlog_low = usize::MAX;
        self.backlog_ticks = 0;
        self.took = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten minutes of a device that takes `period_ms` of audio at a time
    /// from its queue, its clock `ppm` slow (negative: fast), fed at every
    /// 10 ms tick with what `pace` says. Returns the times the device
    /// found too little queued, and the largest queue seen, in ms.
    fn device(period_ms: f64, ppm: f64, mut pace: impl FnMut(usize) -> usize) -> (usize, f64) {
        let (mut queued, mut next, mut dry, mut most) = (0.0f64, 3.0, 0, 0.0f64);
        for tick in 0..60_000 {
            let now = f64::from(tick) * 10.0;
            while next <= now {
                if queued < period_ms {
                    dry += 1;
                    queued = 0.0;
                } else {
                    queued -= period_ms;
                }
                next += period_ms * (1.0 + ppm * 1e-6);
            }
            queued += 10.0 * pace((queued / 10.0) as usize) as f64;
            most = most.max(queued);
        }
        (dry, most)
    }

    #[test]
    fn the_queue_neither_creeps_up_nor_runs_dry_with_the_device_clock_off() {
        // Device periods of 256 samples, 10, 20 and 40 ms; clocks up to
        // 200 ppm off either way.
        for period in [256.0 / 48.0, 10.0, 20.0, 40.0] {
            for ppm in [-200.0, -100.0, 0.0, 100.0, 200.0] {
                let mut pacer = PlayoutPacer::default();
                let (dry, most) = device(period, ppm, |q| pacer.frames_to_play(Some(q)));
                // At most once, at the start, before anything was queued.
                assert!(dry <= 1, "{period} ms, {ppm} ppm: ran dry {dry} times");
                assert!(
                    most <= period + 30.0,
                    "{period} ms, {ppm} ppm: {most} ms queued"
                );
            }
        }
    }

    #[test]
    fn one_frame_per_tick_is_what_a_port_without_a_queue_gets() {
        let mut pacer = PlayoutPacer::default();
        assert!((0..1_000).all(|_| pacer.frames_to_play(None) == 1));
        // For comparison: one frame per tick into a device 200 ppm slow
        // queues 120 ms more in ten minutes; 200 ppm fast, it runs dry
        // every 50 s.
        let (_, most) = device(10.0, 200.0, |_| 1);
        assert!(most >= 120.0, "{most}");
        let (dry, _) = device(10.0, -200.0, |_| 1);
        assert!(dry >= 10, "{dry}");
    }

    /// Frames the SDK's and the softphone's rings hold (200 ms).
    const RING: usize = 20;

    /// A device on a ring of [`RING`] frames, as the pacer sees it.
    #[derive(Debug, Clone, Copy)]
    struct Device {
        /// Frames taken at each callback (a 10 ms frame each 10 ms).
        burst: usize,
        /// Its clock this many ppm slow (negative: fast).
        ppm: f64,
        /// Each callback comes up to this late, ms (pseudo-random, and not
        /// carried over to the next).
        jitter_ms: f64,
        /// When it first takes, ms.
        start_ms: f64,
        /// A while it takes nothing (start, end ms).
        stall: Option<(f64, f64)>,
    }

    impl Device {
        fn taking(burst: usize) -> Self {
            Self {
                burst,
                ppm: 0.0,
                jitter_ms: 0.0,
                start_ms: 5.0,
                stall: None,
            }
        }
    }

    /// What `seconds` of a device fed by a pacer came to.
    #[derive(Debug)]
    struct Run {
        /// Callbacks that found fewer frames than they take.
        dry: usize,
        /// Frames queued at each tick, before the pacer played.
        queued: Vec<usize>,
        /// Ticks at which the pacer played nothing.
        withheld: Vec<usize>,
    }

    impl Run {
        /// The most queued from `from_ms` on, ms.
        fn most_from(&self, from_ms: usize) -> usize {
            self.queued[from_ms / 10..].iter().max().unwrap() * 10
        }

        /// Frames withheld between `from_ms` and `to_ms`.
        fn withheld_in(&self, from_ms: usize, to_ms: usize) -> usize {
            let r = from_ms / 10..to_ms / 10;
            self.withheld.iter().filter(|t| r.contains(t)).count()
        }
    }

    fn run(d: Device, seconds: usize) -> Run {
        let mut pacer = PlayoutPacer::default();
        let period = d.burst as f64 * 10.0 * (1.0 + d.ppm * 1e-6);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut late = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64 * d.jitter_ms
        };
        let mut next = d.start_ms;
        let mut due = next + late();
        let mut r = Run {
            dry: 0,
            queued: Vec::new(),
            withheld: Vec::new(),
        };
        let mut queued = 0;
        for tick in 0..seconds * 100 {
            let now = tick as f64 * 10.0;
            while due <= now {
                if !d.stall.is_some_and(|(a, b)| (a..b).contains(&due)) {
                    if queued < d.burst {
                        r.dry += 1;
                        queued = 0;
                    } else {
                        queued -= d.burst;
                    }
                }
                next += period;
                due = next + late();
            }
            r.queued.push(queued);
            let n = pacer.frames_to_play(Some(queued));
            if n == 0 {
                r.withheld.push(tick);
            }
            // A full ring drops the rest.
            queued = (queued + n).min(RING);
        }
        r
    }

    /// The most a device taking `burst` frames at a time, up to
    /// `jitter_ms` late, finds queued once the queue is down to the spare
    /// frames, ms: what is left after a take, and what was played until
    /// the next.
    fn settled_ms(burst: usize, jitter_ms: f64) -> usize {
        (SPARE_FRAMES + burst + 1) * 10 + jitter_ms as usize
    }

    #[test]
    fn a_device_that_starts_late_is_not_kept_behind_by_the_queue_it_found() {
        // The review's case: the app opens its audio device on SecureUp,
        // 1 s after the driver started playing into the ring, and takes a
        // frame every 10 ms. Before, 180 ms stayed queued for 18 s.
        let d = Device {
            start_ms: 1_000.0,
            ..Device::taking(1)
        };
        let r = run(d, 6);
        assert_eq!(r.dry, 0);
        assert!(
            r.most_from(1_500) <= settled_ms(1, 0.0),
            "{}",
            r.most_from(1_500)
        );
        // The excess went at once, not one frame a second.
        assert!(r.withheld_in(1_000, 1_500) >= 15, "{:?}", r.withheld);
    }

    #[test]
    fn a_stall_leaves_no_backlog_and_piles_nothing_up_while_it_lasts() {
        // An xrun or a GC pause (600 ms), an iOS interruption (10 s).
        for (burst, jitter_ms, stall_s) in [(1, 0.0, 0.6), (2, 10.0, 0.6), (4, 20.0, 10.0)] {
            let (from, to) = (2_000.0, 2_000.0 + stall_s * 1_000.0);
            let d = Device {
                stall: Some((from, to)),
                jitter_ms,
                start_ms: 25.0,
                ..Device::taking(burst)
            };
            let r = run(d, 30);
            let end = to as usize;
            let most = r.most_from(end + 500);
            assert!(
                most <= settled_ms(burst, jitter_ms),
                "{burst}: {most} ms queued"
            );
            assert_eq!(r.dry, 0, "{burst}");
            // While it takes nothing, only what the drift window would
            // (one frame a second): withheld audio would wait in the
            // jitter buffer, and come back that stale.
            let during = r.withheld_in(from as usize, end);
            assert!(during <= stall_s as usize + 1, "{burst}: {during} withheld");
        }
    }

    #[test]
    fn a_bursty_device_is_cut_to_its_spare_frames_without_running_dry() {
        // Callbacks taking 2, 4 or 8 frames at a time (Android, iOS,
        // Bluetooth), each up to `jitter_ms` late; a minute each.
        for (burst, jitter_ms) in [(2, 12.0), (2, 19.0), (4, 25.0), (4, 35.0), (8, 25.0)] {
            // From its first take's worth queued: no backlog, so nothing
            // is cut.
            let early = run(
                Device {
                    jitter_ms,
                    start_ms: burst as f64 * 10.0 + 5.0,
                    ..Device::taking(burst)
                },
                60,
            );
            assert_eq!(early.dry, 0, "{burst} every {jitter_ms}");
            assert!(
                early.withheld.len() <= 60,
                "{burst}, {jitter_ms} ms: {} withheld",
                early.withheld.len()
            );
            // Late: cut without running dry.
            let late = run(
                Device {
                    jitter_ms,
                    start_ms: 1_000.0,
                    ..Device::taking(burst)
                },
                60,
            );
            assert_eq!(late.dry, 0, "{burst}, {jitter_ms} ms");
            let most = late.most_from(1_600);
            assert!(
                most <= settled_ms(burst, jitter_ms),
                "{burst}, {jitter_ms} ms: {most} ms"
            );
        }
    }

    #[test]
    fn a_device_whose_takes_vary_more_than_a_window_shows_gets_longer_windows() {
        // 80 ms callbacks up to 50 ms late: a 200 ms window sees two or
        // three takes, and its low point says more is spare than is. Cut
        // by such windows throughout, the device ran dry 46 times in ten
        // minutes; the windows grow after a cut that leaves it dry, and it
        // runs dry twice, as often as with the drift window alone.
        let d = Device {
            jitter_ms: 50.0,
            start_ms: 85.0,
            ..Device::taking(8)
        };
        let r = run(d, 600);
        assert!(r.dry <= 5, "ran dry {} times", r.dry);
        let late = run(
            Device {
                start_ms: 1_000.0,
                ..d
            },
            600,
        );
        assert!(late.dry <= 5, "ran dry {} times", late.dry);
        assert!(
            late.most_from(1_600) <= settled_ms(8, 50.0),
            "{}",
            late.most_from(1_600)
        );
    }

    #[test]
    fn drift_is_still_followed_after_a_backlog_is_cut() {
        // Ten minutes, clocks 200 ppm off either way, after a late start.
        for (burst, jitter_ms) in [(1, 0.0), (2, 10.0), (4, 20.0)] {
            for ppm in [-200.0, 200.0] {
                let d = Device {
                    ppm,
                    jitter_ms,
                    start_ms: 1_000.0,
                    ..Device::taking(burst)
                };
                let r = run(d, 600);
                assert_eq!(r.dry, 0, "{burst}, {ppm} ppm");
                let most = r.most_from(1_600);
                assert!(
                    most <= settled_ms(burst, jitter_ms),
                    "{burst}, {ppm} ppm: {most} ms"
                );
            }
        }
    }
}
