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

/// Ticks over which the queue's low point is measured (1 s): several
/// device callbacks even for long device periods.
const WINDOW_TICKS: u32 = 100;
/// A low point this many frames or more: audio that waited in the queue
/// for a whole window without being needed, so one frame is left out.
const SPARE_FRAMES: usize = 2;

/// How many 10 ms frames to play at each tick for a device that reports
/// its queue.
#[derive(Debug, Clone)]
pub struct PlayoutPacer {
    /// Fewest frames queued at a tick in this window.
    low: usize,
    /// Ticks into this window.
    ticks: u32,
}

impl Default for PlayoutPacer {
    fn default() -> Self {
        Self {
            low: usize::MAX,
            ticks: 0,
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
        if queued == 0 {
            // The device took all there was: it may run dry before the
            // next tick. One frame ahead.
            *self = Self::default();
            return 2;
        }
        self.low = self.low.min(queued);
        self.ticks += 1;
        if self.ticks < WINDOW_TICKS {
            return 1;
        }
        let spare = self.low >= SPARE_FRAMES;
        *self = Self::default();
        if spare { 0 } else { 1 }
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
}
