//! One-way delay histograms, such as DETERMINISTIC6G's 5G measurements
//! (PD-Wireless-5G-2a, J. Ansari and J. Sachs, DETERMINISTIC6G D4.1,
//! 2024, CC BY-ND 4.0), and a link drawing each packet's delay from one.
//!
//! Format: two whitespace-separated columns per line, no header: the
//! lower bound of a bin in ms (bins equally wide, ascending), then its
//! weight (a relative frequency or a count; only ratios matter). The
//! histograms carry no time order and no loss, so consecutive packets get
//! independent delays: a clean, stationary baseline.

use std::path::Path;
use std::time::Duration;

use super::rng::Rng;
use super::{Delivery, Link, LinkError, SentPacket, TraceError, check_sorted};

/// A delay histogram with equally wide bins.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayHistogram {
    /// (lower bound ms, cumulative weight up to and including the bin).
    cumulative: Vec<(f64, f64)>,
    width_ms: f64,
}

impl DelayHistogram {
    /// Parses histogram text.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut cumulative: Vec<(f64, f64)> = Vec::new();
        let mut total = 0.0;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let parse = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
            let (Some(lower), Some(weight), 2) = (
                fields.first().and_then(|s| parse(s)),
                fields.get(1).and_then(|s| parse(s)),
                fields.len(),
            ) else {
                return Err(TraceError::Parse {
                    line: line_no,
                    reason: "expected two non-negative numbers: bin start (ms), weight".into(),
                });
            };
            if lower > 1e6 {
                return Err(TraceError::Parse {
                    line: line_no,
                    reason: format!("bin start {lower} ms is out of range"),
                });
            }
            if cumulative.last().is_some_and(|&(prev, _)| lower <= prev) {
                return Err(TraceError::NotAscending { line: line_no });
            }
            total += weight;
            cumulative.push((lower, total));
        }
        if cumulative.is_empty() {
            return Err(TraceError::Empty);
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(TraceError::Parse {
                line: 1,
                reason: "all weights are zero".into(),
            });
        }
        let mut widths: Vec<f64> = cumulative.windows(2).map(|w| w[1].0 - w[0].0).collect();
        widths.sort_by(f64::total_cmp);
        // A single bin has no width to measure: treat it as a point.
        let width_ms = widths.get(widths.len() / 2).copied().unwrap_or(0.0);
        Ok(Self {
            cumulative,
            width_ms,
        })
    }

    /// Reads and parses a histogram file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let text = super::error::read_trace(path)?;
        Self::parse(&text)
    }

    fn total(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |&(_, c)| c)
    }

    /// Mean delay in ms (each bin's weight at its centre).
    pub fn mean_ms(&self) -> f64 {
        let mut prev = 0.0;
        let mut sum = 0.0;
        for &(lower, c) in &self.cumulative {
            sum += (c - prev) * (lower + self.width_ms / 2.0);
            prev = c;
        }
        sum / self.total()
    }

    /// Smallest and largest delay a draw can give, in ms.
    pub fn range_ms(&self) -> (f64, f64) {
        let first = self
            .cumulative
            .iter()
            .find(|&&(_, c)| c > 0.0)
            .map_or(0.0, |b| b.0);
        let mut prev = 0.0;
        let mut last = first;
        for &(lower, c) in &self.cumulative {
            if c > prev {
                last = lower;
            }
            prev = c;
        }
        (first, last + self.width_ms)
    }

    /// Draws a delay in ms: a bin by weight, then uniformly inside it.
    pub fn sample_ms(&self, rng: &mut Rng) -> f64 {
        let target = rng.uniform() * self.total();
        let i = self
            .cumulative
            .partition_point(|&(_, c)| c <= target)
            .min(self.cumulative.len() - 1);
        self.cumulative[i].0 + rng.uniform() * self.width_ms
    }
}

/// A link giving each packet an independent delay from a histogram.
#[derive(Debug, Clone)]
pub struct HistogramLink {
    histogram: DelayHistogram,
    fifo: bool,
    seed: u64,
}

impl HistogramLink {
    /// A link over `histogram`; with `fifo` arrivals keep send order.
    pub fn new(histogram: DelayHistogram, fifo: bool, seed: u64) -> Self {
        Self {
            histogram,
            fifo,
            seed,
        }
    }
}

impl Link for HistogramLink {
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError> {
        check_sorted(packets)?;
        let mut rng = Rng::derive(self.seed, 4);
        let mut latest = Duration::ZERO;
        Ok(packets
            .iter()
            .map(|p| {
                let delay = Duration::from_secs_f64(self.histogram.sample_ms(&mut rng) / 1000.0);
                let mut arrival = p.send + delay;
                if self.fifo {
                    arrival = arrival.max(latest);
                    latest = arrival;
                }
                Delivery {
                    seq: p.seq,
                    send: p.send,
                    arrival: Some(arrival),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkSummary, voice_stream};

    #[test]
    fn parse_errors_are_typed() {
        assert!(matches!(DelayHistogram::parse(""), Err(TraceError::Empty)));
        assert!(matches!(
            DelayHistogram::parse("1\t0\n2\t0\n"),
            Err(TraceError::Parse { .. })
        ));
        assert!(matches!(
            DelayHistogram::parse("2\t1\n1\t1\n"),
            Err(TraceError::NotAscending { line: 2 })
        ));
        assert!(DelayHistogram::parse("1\t-1\n").is_err());
        assert!(DelayHistogram::parse("1\t1\t1\n").is_err());
        assert!(DelayHistogram::parse("x\t1\n").is_err());
        assert!(DelayHistogram::parse("NaN\t1\n").is_err());
    }

    #[test]
    fn draws_follow_the_weights() {
        // Bins [1, 2) weight 1 and [2, 3) weight 3: mean 0.25·1.5 + 0.75·2.5.
        let h = DelayHistogram::parse("1 1\n2 3\n").unwrap();
        assert!((h.mean_ms() - 2.25).abs() < 1e-12);
        assert_eq!(h.range_ms(), (1.0, 3.0));
        let mut link = HistogramLink::new(h, false, 1);
        let out = link
            .run(&voice_stream(40_000, Duration::from_millis(1), 100))
            .unwrap();
        let s = LinkSummary::of(&out);
        assert!((s.mean_delay.as_secs_f64() * 1000.0 - 2.25).abs() < 0.02);
        let in_second = out
            .iter()
            .filter(|d| d.delay().unwrap() >= Duration::from_millis(2))
            .count();
        assert!((in_second as f64 / 40_000.0 - 0.75).abs() < 0.01);
    }
}
