//! Clock skew between sender and receiver, from the floor of the transit
//! times.
//!
//! A sender whose clock runs slow against the receiver's sends less than
//! a second of audio per second of the receiver's: every packet's transit
//! (arrival minus send time from its RTP timestamp) is a little longer
//! than the one before, by the skew (100 ppm: 0.1 ms per second). Jitter
//! only adds to a transit, so the smallest transit of a stretch of time is
//! the path's propagation plus the skew's drift, and its slope over a
//! minute is the skew. A path change moves that floor too, but at once
//! and by milliseconds: a slope far above what a clock can do is taken
//! for one and not reported.

use std::collections::VecDeque;

/// Length of one block whose smallest transit is kept, ms.
const BLOCK_MS: f64 = 5_000.0;
/// Blocks kept: the slope is read between the floors of the older and
/// the newer half (a minute in all).
const BLOCKS: usize = 12;
/// Largest skew reported, ppm: five times the +-100 ppm the buffer is
/// built for (issue 4); a steeper floor is the path moving, not a clock.
const MAX_PPM: f64 = 500.0;

/// The smallest transit of a block, ms, and its arrival time, ms.
#[derive(Debug, Clone, Copy)]
struct Floor {
    transit: f64,
    at: f64,
}

impl Floor {
    fn lower(self, other: Floor) -> Floor {
        if other.transit < self.transit {
            other
        } else {
            self
        }
    }
}

/// Tracks the floor of the transit times to estimate the clock skew.
#[derive(Debug, Clone, Default)]
pub struct SkewTracker {
    /// Smallest transit of each finished block and when it came (arrival
    /// ms), oldest first, ms.
    floors: VecDeque<Floor>,
    /// The block in progress: its start (arrival ms) and floor so far.
    current: Option<(f64, Floor)>,
    /// The reading, renewed when a block closes.
    lag_ppm: Option<f64>,
}

impl SkewTracker {
    /// Records a packet's transit (`arrival_ms` on the receiver clock,
    /// `transit_ms` = arrival minus send time).
    pub fn observe(&mut self, arrival_ms: f64, transit_ms: f64) {
        let packet = Floor {
            transit: transit_ms,
            at: arrival_ms,
        };
        self.current = Some(match self.current {
            Some((start, floor)) if arrival_ms - start < BLOCK_MS => (start, floor.lower(packet)),
            Some((_, floor)) => {
                self.floors.push_back(floor);
                if self.floors.len() > BLOCKS {
                    self.floors.pop_front();
                }
                self.lag_ppm = self.read();
                (arrival_ms, packet)
            }
            None => (arrival_ms, packet),
        });
    }

    /// How much slower the sender's clock runs than the receiver's, in
    /// ppm (negative: faster), once a minute of packets has been seen and
    /// while the floor moves as a clock would.
    pub fn sender_lag_ppm(&self) -> Option<f64> {
        self.lag_ppm
    }

    /// The reading from the blocks kept.
    fn read(&self) -> Option<f64> {
        if self.floors.len() < BLOCKS {
            return None;
        }
        // The floor of each half, and the slope between them over the
        // time between them (longer than half a minute after an outage).
        let half = BLOCKS / 2;
        let floor = |blocks: &mut dyn Iterator<Item = &Floor>| blocks.copied().reduce(Floor::lower);
        let (Some(older), Some(newer)) = (
            floor(&mut self.floors.iter().take(half)),
            floor(&mut self.floors.iter().skip(half)),
        ) else {
            return None;
        };
        let ppm = (newer.transit - older.transit) / (newer.at - older.at) * 1e6;
        (ppm.abs() <= MAX_PPM).then_some(ppm)
    }

    /// Forgets everything (new stream).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 100 s of 20 ms packets from a sender `ppm` slow, with 0-30
    /// ms of jitter and a transit of 40 ms, plus `step` ms from 60 s on.
    fn fed(ppm: f64, step: f64) -> SkewTracker {
        let mut s = SkewTracker::default();
        for k in 0..5_000u32 {
            let sent = f64::from(k) * 20.0;
            let jitter = f64::from((k * 7_919) % 31);
            let later = if sent >= 60_000.0 { step } else { 0.0 };
            let arrival = sent * (1.0 + ppm * 1e-6) + 40.0 + jitter + later;
            s.observe(arrival, arrival - sent);
        }
        s
    }

    #[test]
    fn a_slow_or_fast_sender_clock_is_measured() {
        for ppm in [100.0, 20.0, 0.0, -100.0] {
            let got = fed(ppm, 0.0).sender_lag_ppm().unwrap();
            assert!((got - ppm).abs() < 5.0, "{ppm}: {got}");
        }
    }

    #[test]
    fn an_outage_does_not_stretch_the_reading() {
        // 100 ppm slow, nothing arrives from 40 to 60 s: the blocks around
        // the gap are 20 s apart, not 5.
        let mut s = SkewTracker::default();
        for k in (0..5_000u32).filter(|k| !(2_000..3_000).contains(k)) {
            let sent = f64::from(k) * 20.0;
            let arrival = sent * (1.0 + 100e-6) + 40.0 + f64::from((k * 7_919) % 31);
            s.observe(arrival, arrival - sent);
        }
        let got = s.sender_lag_ppm().unwrap();
        assert!((got - 100.0).abs() < 5.0, "{got}");
    }

    #[test]
    fn nothing_is_said_before_a_minute_or_across_a_path_change() {
        let mut s = SkewTracker::default();
        for k in 0..2_000u32 {
            let sent = f64::from(k) * 20.0;
            s.observe(sent + 40.0, 40.0);
        }
        assert_eq!(s.sender_lag_ppm(), None);
        // The path grew 50 ms longer at 60 s: the floor of the last 30 s
        // against that of the 30 s before is not a clock.
        assert_eq!(fed(0.0, 50.0).sender_lag_ppm(), None);
        let mut s = fed(100.0, 0.0);
        s.reset();
        assert_eq!(s.sender_lag_ppm(), None);
    }
}
