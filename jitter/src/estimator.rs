//! Network delay estimation: a histogram of relative arrival delays with
//! exponential forgetting, read at a quantile (raised where the packets
//! it leaves late are worth the delay), plus a peak detector that
//! raises the target for a while after a handover-style delay spike.
//!
//! The relative delay of a packet is its transit time (arrival minus send
//! time, from the RTP timestamp) minus the smallest transit time seen in the
//! last [`EstimatorConfig::window_ms`]: it is how much later than the best
//! recent packet it came, i.e. how much buffering it needed. The same idea
//! is in WebRTC NetEq's `RelativeArrivalDelayTracker`.

use std::collections::VecDeque;

/// Tuning of the [`DelayEstimator`]. Times are in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimatorConfig {
    /// Width of one histogram bucket.
    pub bucket_ms: f64,
    /// Number of buckets; the last also collects everything larger.
    pub buckets: usize,
    /// Per-packet forgetting factor (0.998 at 50 packets/s forgets with a
    /// time constant of about 10 s, so the target follows the network down).
    pub forget: f64,
    /// Quantile of the histogram the target never goes below (0.95..0.99).
    pub quantile: f64,
    /// Quantile the target may rise to when `late_cost_ms` says that the
    /// packets it covers are worth the delay.
    pub quantile_max: f64,
    /// What a late packet costs, in ms of delay per unit of probability:
    /// the target is the delay d between the two quantiles that minimises
    /// `d + late_cost_ms * P(relative delay > d)`. Where the tail beyond
    /// `quantile` is short (a few slow packets just above the rest), the
    /// target covers it; where it is long (a capacity gap of hundreds of
    /// ms), it stays at `quantile` and a late packet is waited for. 1 500:
    /// 1 % of packets late is worth 15 ms. 0: the plain `quantile`.
    pub late_cost_ms: f64,
    /// Window over which the minimum transit is tracked.
    pub window_ms: f64,
    /// A relative delay above `peak_factor * target + peak_min_ms` is a peak.
    pub peak_factor: f64,
    /// See `peak_factor`.
    pub peak_min_ms: f64,
    /// How long a peak holds the target up before it starts to decay.
    pub peak_hold_ms: f64,
    /// How fast the held peak decays afterwards (ms of target per second).
    pub peak_decay_ms_per_s: f64,
    /// A peak only raises the target when another came within this time
    /// (a lone outage is ridden out by waiting, not by a standing target).
    pub peak_window_ms: f64,
    /// A peak counts only as the head of a burst: the next packet arrives
    /// right behind it with less delay (a queue draining after a gap, as in
    /// a handover), not a lone slow packet of a jittery link, which the
    /// quantile already covers.
    pub peak_needs_burst: bool,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        Self {
            bucket_ms: 1.0,
            buckets: 2_000,
            forget: 0.998,
            quantile: 0.98,
            quantile_max: 0.995,
            late_cost_ms: 1_500.0,
            window_ms: 2_000.0,
            peak_factor: 2.0,
            peak_min_ms: 60.0,
            peak_hold_ms: 250.0,
            peak_decay_ms_per_s: 500.0,
            peak_window_ms: 10_000.0,
            peak_needs_burst: true,
        }
    }
}

impl EstimatorConfig {
    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if !(c.bucket_ms > 0.0 && c.bucket_ms.is_finite()) {
            return Err(format!("bucket_ms {} must be > 0", c.bucket_ms));
        }
        if !(2..=MAX_BUCKETS).contains(&c.buckets) {
            return Err(format!("buckets {} must be 2..={MAX_BUCKETS}", c.buckets));
        }
        // Below 1/2 the newest packet outweighs all earlier ones together:
        // no estimate, and a factor near 0 overflows the weight (`record`
        // divides it by the factor) into NaN.
        if !(c.forget >= 0.5 && c.forget <= 1.0) {
            return Err(format!("forget {} must be in [0.5, 1]", c.forget));
        }
        if !(c.quantile > 0.0 && c.quantile < 1.0) {
            return Err(format!("quantile {} must be in (0, 1)", c.quantile));
        }
        if !(c.quantile_max >= c.quantile && c.quantile_max < 1.0) {
            return Err(format!(
                "quantile_max {} must be in [quantile ({}), 1)",
                c.quantile_max, c.quantile
            ));
        }
        non_negative(&[
            ("late_cost_ms", c.late_cost_ms),
            ("window_ms", c.window_ms),
            ("peak_factor", c.peak_factor),
            ("peak_min_ms", c.peak_min_ms),
            ("peak_hold_ms", c.peak_hold_ms),
            ("peak_decay_ms_per_s", c.peak_decay_ms_per_s),
            ("peak_window_ms", c.peak_window_ms),
        ])
    }
}

/// Checks that each named setting is finite and not negative.
pub(crate) fn non_negative(settings: &[(&str, f64)]) -> Result<(), String> {
    match settings.iter().find(|(_, v)| !(*v >= 0.0 && v.is_finite())) {
        Some((name, v)) => Err(format!("{name} {v} must be finite and >= 0")),
        None => Ok(()),
    }
}

/// Checks that each named setting is not negative (nor NaN); infinity is
/// allowed, for settings where it means "always" or "never".
pub(crate) fn non_negative_or_infinite(settings: &[(&str, f64)]) -> Result<(), String> {
    match settings.iter().find(|(_, v)| v.is_nan() || *v < 0.0) {
        Some((name, v)) => Err(format!("{name} {v} must be >= 0")),
        None => Ok(()),
    }
}

/// Most histogram buckets a configuration may ask for (memory stays
/// bounded: 8 bytes each).
pub const MAX_BUCKETS: usize = 100_000;

/// Timing noise a relative delay may carry, in buckets (see
/// `DelayEstimator::update`).
const EDGE_NOISE: f64 = 1e-6;

/// Most transit samples kept for the running minimum (bounds memory even
/// when a burst of packets arrives at once).
const MAX_WINDOW_ENTRIES: usize = 1_000;

/// The delay estimator.
#[derive(Debug, Clone)]
pub struct DelayEstimator {
    config: EstimatorConfig,
    /// Bucket masses, in units where the newest packet adds
    /// `(1 - forget) * weight`: forgetting scales what is added up instead
    /// of every bucket down (only ratios matter for a quantile).
    histogram: Vec<f64>,
    /// Sum of `histogram`.
    total: f64,
    /// See `histogram`; renormalised before it overflows.
    weight: f64,
    /// What the histogram asks for, recomputed when it changes, ms.
    histogram_target: f64,
    /// (arrival ms, transit ms) of recent packets, for the running minimum.
    window: VecDeque<(f64, f64)>,
    /// Height of the held peak and when it was seen (arrival ms).
    peak: Option<(f64, f64)>,
    /// When the last peak (held or not) was seen, arrival ms.
    last_peak_ms: Option<f64>,
    /// Arrival and relative delay of the previous packet, to spot the
    /// drain of a queue (back-to-back packets with falling delay).
    previous: Option<(f64, f64)>,
    /// Packets seen, for a faster start before the histogram has mass.
    seen: u64,
    /// A peak waiting for the packet behind it (see `peak_needs_burst`):
    /// its arrival and relative delay.
    pending_peak: Option<(f64, f64)>,
}

impl DelayEstimator {
    /// A new estimator.
    pub fn new(config: EstimatorConfig) -> Self {
        let buckets = config.buckets.max(2);
        Self {
            histogram: vec![0.0; buckets],
            total: 0.0,
            weight: 1.0,
            histogram_target: 0.0,
            window: VecDeque::new(),
            peak: None,
            last_peak_ms: None,
            previous: None,
            seen: 0,
            pending_peak: None,
            config,
        }
    }

    /// Forgets everything (new stream).
    pub fn reset(&mut self) {
        self.histogram.iter_mut().for_each(|b| *b = 0.0);
        self.total = 0.0;
        self.weight = 1.0;
        self.histogram_target = 0.0;
        self.window.clear();
        self.peak = None;
        self.last_peak_ms = None;
        self.previous = None;
        self.seen = 0;
        self.pending_peak = None;
    }

    /// Records one packet: `arrival_ms` on the receiver clock and
    /// `sent_ms` from its RTP timestamp (any common origin). Returns its
    /// relative delay in ms.
    pub fn update(&mut self, arrival_ms: f64, sent_ms: f64) -> f64 {
        let transit = arrival_ms - sent_ms;
        while let Some(&(t, _)) = self.window.front() {
            if arrival_ms - t > self.config.window_ms || self.window.len() >= MAX_WINDOW_ENTRIES {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let min = self
            .window
            .iter()
            .map(|&(_, d)| d)
            .fold(f64::INFINITY, f64::min);
        // A transit below every recent one by more than the histogram
        // spans is a timestamp stamped seconds ahead (a sender's bug), not
        // a network that got seconds faster at once: taken as the new
        // minimum, it would put every packet of the next `window_ms` in
        // the last bucket and hold the target at its highest for as long
        // as the histogram takes to forget them. It is not recorded; a
        // real step down is, once the packets before it have left the
        // window.
        let span = self.histogram.len() as f64 * self.config.bucket_ms;
        if !self.window.is_empty() && transit < min - span {
            return 0.0;
        }
        self.window.push_back((arrival_ms, transit));
        let min = min.min(transit);
        let relative = (transit - min).max(0.0);
        // A packet right behind the previous one with less delay is the
        // same queueing event draining: only its head is new information.
        let draining = self.previous.is_some_and(|(t, d)| {
            arrival_ms - t < 1.0 && relative < d && relative > self.config.bucket_ms
        });
        self.previous = Some((arrival_ms, relative));
        if let Some((at, height)) = self.pending_peak.take()
            && draining
        {
            self.register_peak(at, height);
        }
        if draining {
            return relative;
        }

        // Start with a faster forgetting factor so early packets count.
        self.seen += 1;
        let f = self.config.forget.min(1.0 - 1.0 / (self.seen as f64 + 1.0));
        self.weight /= f;
        // Bucket i holds ((i - 1) b, i b]: its upper edge covers all of it,
        // and a packet as fast as the fastest (relative 0) asks for nothing.
        // Times that went through `Instant` carry noise of about 1e-12 ms,
        // which must not push a delay on an edge into the next bucket.
        let edges = (relative / self.config.bucket_ms - EDGE_NOISE)
            .ceil()
            .max(0.0);
        let bucket = (edges as usize).min(self.histogram.len() - 1);
        let add = (1.0 - f) * self.weight;
        self.histogram[bucket] += add;
        self.total += add;
        if self.weight > 1e100 {
            let w = self.weight;
            self.histogram.iter_mut().for_each(|b| *b /= w);
            self.total /= w;
            self.weight = 1.0;
        }
        self.histogram_target = self.compute_histogram_target();

        let base = self.histogram_target_ms();
        if relative > self.config.peak_factor * base + self.config.peak_min_ms {
            if self.config.peak_needs_burst {
                self.pending_peak = Some((arrival_ms, relative));
            } else {
                self.register_peak(arrival_ms, relative);
            }
        }
        relative
    }

    /// A peak of `relative` ms seen at `arrival_ms`: held if another came
    /// within `peak_window_ms`.
    fn register_peak(&mut self, arrival_ms: f64, relative: f64) {
        let repeated = self
            .last_peak_ms
            .is_some_and(|t| arrival_ms - t <= self.config.peak_window_ms);
        if repeated {
            let height = self.peak_level(arrival_ms).max(relative);
            self.peak = Some((height, arrival_ms));
        }
        self.last_peak_ms = Some(arrival_ms);
    }

    /// Whether any packet has been recorded since the start or the last
    /// reset.
    pub fn has_history(&self) -> bool {
        self.total > 0.0
    }

    /// The delay the histogram asks for (upper edge of its bucket), in
    /// ms: its `quantile`, or up to its `quantile_max` where the late cost
    /// says so.
    pub fn histogram_target_ms(&self) -> f64 {
        self.histogram_target
    }

    fn compute_histogram_target(&self) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        // From the `quantile` bucket up to the `quantile_max` one, the
        // delay whose cost (itself plus the late packets it leaves, priced
        // at `late_cost_ms`) is least.
        let c = &self.config;
        let low = c.quantile * self.total;
        let high = c.quantile_max * self.total;
        let mut acc = 0.0;
        let mut best: Option<(f64, f64)> = None;
        for (i, b) in self.histogram.iter().enumerate() {
            acc += b;
            if acc < low {
                continue;
            }
            let d = i as f64 * c.bucket_ms;
            let cost = d + c.late_cost_ms * (self.total - acc).max(0.0) / self.total;
            if best.is_none_or(|(_, bc)| cost < bc) {
                best = Some((d, cost));
            }
            if acc >= high || c.late_cost_ms <= 0.0 {
                break;
            }
        }
        best.map_or((self.histogram.len() - 1) as f64 * c.bucket_ms, |(d, _)| d)
    }

    /// What the last peak still asks for at `now_ms`: its height during the
    /// hold time, then decaying linearly to nothing.
    pub fn peak_level(&self, now_ms: f64) -> f64 {
        let Some((height, at)) = self.peak else {
            return 0.0;
        };
        let age = now_ms - at;
        if age <= self.config.peak_hold_ms {
            height
        } else {
            (height - (age - self.config.peak_hold_ms) / 1000.0 * self.config.peak_decay_ms_per_s)
                .max(0.0)
        }
    }

    /// The relative delay to buffer for at `now_ms`: the larger of the
    /// histogram's target and the held peak.
    pub fn target_ms(&self, now_ms: f64) -> f64 {
        self.histogram_target_ms().max(self.peak_level(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgetting_factor_that_would_overflow_the_weight_is_refused() {
        for forget in [0.0, 1e-310, 0.49, 1.01, f64::NAN] {
            let c = EstimatorConfig {
                forget,
                ..EstimatorConfig::default()
            };
            assert!(c.validate().is_err(), "forget {forget}");
        }
        for forget in [0.5, 0.998, 1.0] {
            let c = EstimatorConfig {
                forget,
                ..EstimatorConfig::default()
            };
            assert!(c.validate().is_ok(), "forget {forget}");
        }
    }

    #[test]
    fn steady_stream_needs_no_buffering() {
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        for k in 0..500 {
            e.update(k as f64 * 20.0 + 30.0, k as f64 * 20.0);
        }
        assert!(e.target_ms(10_000.0) <= 5.0);
    }

    #[test]
    fn jitter_raises_the_target_and_it_falls_back() {
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        // Every 10th packet is 60 ms late.
        for k in 0..1500 {
            let extra = if k % 10 == 0 { 60.0 } else { 0.0 };
            e.update(k as f64 * 20.0 + 30.0 + extra, k as f64 * 20.0);
        }
        let high = e.target_ms(30_000.0);
        assert!((60.0..=70.0).contains(&high), "{high}");
        // Then a calm network for 30 s: the target follows it down.
        for k in 1500..3000 {
            e.update(k as f64 * 20.0 + 30.0, k as f64 * 20.0);
        }
        assert!(e.target_ms(60_000.0) <= 5.0, "{}", e.target_ms(60_000.0));
    }

    /// Packets `k0..k0 + n` of a 30 ms link held up by a gap of `gap_ms`
    /// at `k0`: the queue then drains, 0.5 ms apart, until it has caught up.
    fn handover(e: &mut DelayEstimator, k0: u64, n: u64, gap_ms: f64) {
        let resume = k0 as f64 * 20.0 + 30.0 + gap_ms;
        for k in k0..k0 + n {
            let sent = k as f64 * 20.0;
            let arrival = (sent + 30.0).max(resume + (k - k0) as f64 * 0.5);
            e.update(arrival, sent);
        }
    }

    #[test]
    fn repeated_spikes_are_held_briefly_a_lone_one_is_not() {
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        for k in 0..500 {
            e.update(k as f64 * 20.0 + 30.0, k as f64 * 20.0);
        }
        // A lone 400 ms handover: ridden out by waiting, no hold.
        handover(&mut e, 500, 200, 400.0);
        assert!(e.target_ms(14_000.0) < 50.0, "{}", e.target_ms(14_000.0));
        // A second one 4 s later: now the target jumps to it...
        handover(&mut e, 700, 200, 400.0);
        assert!(e.target_ms(14_430.0) >= 400.0);
        // ...holds for 250 ms, then decays at 500 ms/s.
        assert!(e.target_ms(14_650.0) >= 400.0);
        let later = e.target_ms(14_430.0 + 250.0 + 500.0);
        assert!((100.0..=200.0).contains(&later), "{later}");
        assert!(e.target_ms(16_000.0) < 50.0, "{}", e.target_ms(16_000.0));
    }

    #[test]
    fn lone_slow_packets_are_not_peaks() {
        // Every 2 s one packet is 400 ms late while those behind it come
        // on time (a jittery link, not a queue): the quantile covers such
        // a tail, and no peak holds the target up at 400 ms.
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        for k in 0..2_000u64 {
            let extra = if k % 100 == 50 { 400.0 } else { 0.0 };
            e.update(k as f64 * 20.0 + 30.0 + extra, k as f64 * 20.0);
            assert!(
                e.peak_level(k as f64 * 20.0 + 30.0 + extra) == 0.0,
                "packet {k}"
            );
        }
        // Taking every slow packet as a peak, the second one holds the
        // target at 400 ms.
        let mut e = DelayEstimator::new(EstimatorConfig {
            peak_needs_burst: false,
            ..EstimatorConfig::default()
        });
        for k in 0..=150u64 {
            let extra = if k % 100 == 50 { 400.0 } else { 0.0 };
            e.update(k as f64 * 20.0 + 30.0 + extra, k as f64 * 20.0);
        }
        assert!(e.peak_level(3_430.0) >= 400.0, "{}", e.peak_level(3_430.0));
    }

    /// The target after 3 000 packets of which every 60th (1.7 %, a tail
    /// beyond the 98 % quantile) is `extra_ms` late.
    fn target_with_tail(config: EstimatorConfig, extra_ms: f64) -> f64 {
        let mut e = DelayEstimator::new(config);
        for k in 0..3_000u64 {
            let extra = if k % 60 == 0 { extra_ms } else { 0.0 };
            e.update(k as f64 * 20.0 + 30.0 + extra, k as f64 * 20.0);
        }
        e.target_ms(60_000.0)
    }

    #[test]
    fn a_short_tail_is_covered_a_long_one_is_left_to_waiting() {
        // 1.7 % of packets at 10 ms: covering them costs 10 ms and saves
        // 1.7 % x 1 500 ms = 25 ms of late cost, so the target rises.
        let covered = target_with_tail(EstimatorConfig::default(), 10.0);
        assert!((10.0..=11.0).contains(&covered), "{covered}");
        // At 40 ms they cost more than they save: the 98 % quantile stays.
        let left = target_with_tail(EstimatorConfig::default(), 40.0);
        assert!(left <= 1.0, "{left}");
        // Without a late cost the quantile leaves both tails to waiting.
        let plain = EstimatorConfig {
            late_cost_ms: 0.0,
            ..EstimatorConfig::default()
        };
        assert!(target_with_tail(plain, 10.0) <= 1.0);
    }

    #[test]
    fn a_steady_link_asks_for_nothing_and_a_delay_on_an_edge_for_that_edge() {
        // Transits with the noise of `Instant` arithmetic (1e-12 ms): the
        // relative delays are 0, and so is the target (not the 1 ms upper
        // edge of a bucket [0, 1), which would start a talkspurt a pull
        // later than its first packet allows).
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        let noise = |k: u64| if k.is_multiple_of(2) { 1e-12 } else { 0.0 };
        for k in 0..500u64 {
            e.update(k as f64 * 20.0 + 30.0 + noise(k), k as f64 * 20.0);
        }
        assert_eq!(e.histogram_target_ms(), 0.0);
        // Every tenth packet 5 ms slower: the target is 5 ms, not 6.
        for k in 500..3_000u64 {
            let extra = if k % 10 == 0 { 5.0 } else { 0.0 };
            e.update(k as f64 * 20.0 + 30.0 + extra + noise(k), k as f64 * 20.0);
        }
        assert_eq!(e.histogram_target_ms(), 5.0);
    }

    #[test]
    fn a_transit_seconds_below_the_rest_is_not_a_new_minimum_until_they_are_gone() {
        // A path with 3 s of delay.
        let mut e = DelayEstimator::new(EstimatorConfig::default());
        let slow =
            |e: &mut DelayEstimator, k: u64| e.update(k as f64 * 20.0 + 3_030.0, k as f64 * 20.0);
        for k in 0..300 {
            slow(&mut e, k);
        }
        // One packet stamped 3 s ahead of the rest (more than the
        // histogram's 2 s span): not recorded, and those after it are on
        // time.
        assert_eq!(e.update(8_020.0, 7_990.0), 0.0);
        for k in 300..400 {
            assert_eq!(slow(&mut e, k), 0.0);
        }
        assert_eq!(e.target_ms(11_000.0), 0.0);
        // The path does get 3 s faster: once the slow packets have left
        // the window (2 s), the fast ones set the minimum.
        for k in 550..800u64 {
            e.update(k as f64 * 20.0 + 30.0, k as f64 * 20.0);
        }
        assert_eq!(e.update(800.0 * 20.0 + 35.0, 800.0 * 20.0), 5.0);
        assert!(e.target_ms(16_040.0) <= 5.0, "{}", e.target_ms(16_040.0));
    }

    #[test]
    fn forgetting_holds_up_over_hours_of_packets() {
        // 200 000 packets (over an hour at 50/s): the lazily forgotten
        // histogram is renormalised on the way and still follows the
        // network both ways.
        let mut e = DelayEstimator::new(EstimatorConfig {
            buckets: 100,
            ..EstimatorConfig::default()
        });
        let at = |e: &mut DelayEstimator, k: u64, extra: f64| {
            e.update(k as f64 * 20.0 + 30.0 + extra, k as f64 * 20.0)
        };
        for k in 0..150_000 {
            at(&mut e, k, 0.0);
        }
        assert!(
            e.histogram_target_ms() <= 1.0,
            "{}",
            e.histogram_target_ms()
        );
        for k in 150_000..190_000 {
            at(&mut e, k, if k % 10 == 0 { 40.0 } else { 0.0 });
        }
        assert!(
            (40.0..=41.0).contains(&e.histogram_target_ms()),
            "{}",
            e.histogram_target_ms()
        );
        for k in 190_000..200_000 {
            at(&mut e, k, 0.0);
        }
        assert!(
            e.histogram_target_ms() <= 1.0,
            "{}",
            e.histogram_target_ms()
        );
        assert!(e.weight < 1e100);
    }
}
