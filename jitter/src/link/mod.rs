//! Network link models and trace loaders: what happens to each packet of
//! a media stream between sender and receiver.
//!
//! Every model implements [`Link`]: a list of [`SentPacket`]s (sequence
//! number, send time, size) in send order goes in, one [`Delivery`] per
//! packet (its arrival time, or `None` when lost) comes out. Times are
//! offsets from the start of the stream, so any jitter-buffer evaluation
//! can replay any link in virtual time and deterministically.
//!
//! - [`mahimahi`]: cellular capacity traces (Sprout/mahimahi format),
//!   a FIFO bottleneck with optional cross traffic and drop-tail limit.
//! - [`cicv5g`]: per-packet round-trip delay traces from a 5G vehicle
//!   (CICV5G), turned into one-way delays.
//! - [`synthetic`]: Gilbert-Elliott loss, heavy-tailed jitter and handover
//!   outages, deterministic for a seed.
//! - [`histogram`]: one-way delay histograms (DETERMINISTIC6G 5G), an
//!   independent delay per packet.
//! - [`series::Series`] chains two links, e.g. a capacity trace then loss.
//!
//! ```
//! use std::time::Duration;
//! use sotto_jitter::link::synthetic::{GilbertElliott, SyntheticConfig, SyntheticLink};
//! use sotto_jitter::link::{Link, LinkSummary, voice_stream};
//!
//! let mut link = SyntheticLink::new(SyntheticConfig {
//!     loss: Some(GilbertElliott { p_good_to_bad: 0.02, p_bad_to_good: 0.3, loss_good: 0.0, loss_bad: 0.9 }),
//!     seed: 7,
//!     ..SyntheticConfig::default()
//! })?;
//! let sent = voice_stream(500, Duration::from_millis(20), 120);
//! let deliveries = link.run(&sent)?; // one per packet: arrival time or None
//! assert_eq!(deliveries.len(), 500);
//! println!("{:?}", LinkSummary::of(&deliveries));
//! # Ok::<(), sotto_jitter::link::LinkError>(())
//! ```

pub mod cicv5g;
pub mod error;
pub mod histogram;
pub mod mahimahi;
pub mod rng;
pub mod series;
pub mod synthetic;

use std::time::Duration;

pub use error::{LinkError, TraceError};

/// One packet handed to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// Position in the stream (0, 1, 2…), echoed in the [`Delivery`].
    pub seq: u64,
    /// Send time from the start of the stream.
    pub send: Duration,
    /// Size on the wire in bytes (IP packet), used by capacity models.
    pub size: u32,
}

/// What a link did with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The packet's [`SentPacket::seq`].
    pub seq: u64,
    /// Its send time.
    pub send: Duration,
    /// Arrival time at the receiver, or `None` if the link lost it.
    pub arrival: Option<Duration>,
}

impl Delivery {
    /// One-way delay, if the packet arrived.
    pub fn delay(&self) -> Option<Duration> {
        self.arrival.map(|a| a.saturating_sub(self.send))
    }
}

/// A model of a one-way network path.
pub trait Link {
    /// Runs `packets` (in non-decreasing send order) through the link and
    /// returns one [`Delivery`] per packet, in the same order.
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError>;
}

/// A constant-rate stream: `count` packets of `size` bytes, packet `k`
/// sent at `k * interval` (e.g. 20 ms voice).
pub fn voice_stream(count: u64, interval: Duration, size: u32) -> Vec<SentPacket> {
    (0..count)
        .map(|seq| SentPacket {
            seq,
            send: interval.saturating_mul(u32::try_from(seq).unwrap_or(u32::MAX)),
            size,
        })
        .collect()
}

/// Longest delay parameter a model accepts: a day is far beyond any
/// call, and keeps time arithmetic far from overflow.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// Fails with [`LinkError::Config`] if any of `delays` exceeds [`MAX_DELAY`].
pub(crate) fn check_delays(delays: &[Duration]) -> Result<(), LinkError> {
    match delays.iter().find(|&&d| d > MAX_DELAY) {
        Some(d) => Err(LinkError::Config(format!("{d:?} is longer than a day"))),
        None => Ok(()),
    }
}

/// Fails with [`LinkError::Unsorted`] unless send times never go back.
pub(crate) fn check_sorted(packets: &[SentPacket]) -> Result<(), LinkError> {
    match packets.windows(2).position(|w| w[1].send < w[0].send) {
        Some(i) => Err(LinkError::Unsorted { index: i + 1 }),
        None => Ok(()),
    }
}

/// Summary figures of a link run.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSummary {
    /// Packets sent.
    pub sent: usize,
    /// Packets lost.
    pub lost: usize,
    /// Packets that arrived before a packet sent earlier than them.
    pub reordered: usize,
    /// Mean one-way delay of the packets that arrived.
    pub mean_delay: Duration,
    /// 95th percentile of the one-way delay.
    pub p95_delay: Duration,
    /// Largest one-way delay.
    pub max_delay: Duration,
}

impl LinkSummary {
    /// Summarises `deliveries` (in send order).
    pub fn of(deliveries: &[Delivery]) -> Self {
        let mut delays: Vec<Duration> = deliveries.iter().filter_map(Delivery::delay).collect();
        delays.sort_unstable();
        let mut reordered = 0;
        let mut latest = Duration::ZERO;
        for a in deliveries.iter().filter_map(|d| d.arrival) {
            if a < latest {
                reordered += 1;
            }
            latest = latest.max(a);
        }
        let mean = if delays.is_empty() {
            Duration::ZERO
        } else {
            delays.iter().sum::<Duration>() / delays.len() as u32
        };
        let pick = |q: f64| {
            delays
                .get(((delays.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        Self {
            sent: deliveries.len(),
            lost: deliveries.len() - delays.len(),
            reordered,
            mean_delay: mean,
            p95_delay: pick(0.95),
            max_delay: delays.last().copied().unwrap_or_default(),
        }
    }

    /// Fraction of packets lost.
    pub fn loss_rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

/// Parses `data` with every trace loader and runs a short stream through
/// what parses; the fuzz target `trace_loader` calls this. Never panics.
pub fn fuzz_trace_loaders(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let stream = voice_stream(50, Duration::from_millis(20), 120);
    if let Ok(trace) = mahimahi::MahimahiTrace::parse(text) {
        let _ = trace.mean_capacity_bps();
        let _ = mahimahi::MahimahiLink::new(trace, mahimahi::MahimahiConfig::default())
            .and_then(|mut l| l.run(&stream));
    }
    if let Ok(h) = histogram::DelayHistogram::parse(text) {
        let _ = (h.mean_ms(), h.range_ms());
        let _ = histogram::HistogramLink::new(h, true, 0).run(&stream);
    }
    if let Ok(trace) = cicv5g::Cicv5gTrace::parse(text) {
        for one_way in [cicv5g::OneWay::HalfRtt, cicv5g::OneWay::default_variation()] {
            let _ = cicv5g::DelayTraceLink::new(
                &trace,
                cicv5g::DelayTraceConfig {
                    one_way,
                    ..Default::default()
                },
            )
            .and_then(|mut l| l.run(&stream));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_loss_reordering_and_quantiles() {
        let ms = Duration::from_millis;
        let d = |seq, send, arrival: Option<u64>| Delivery {
            seq,
            send: ms(send),
            arrival: arrival.map(ms),
        };
        let s = LinkSummary::of(&[
            d(0, 0, Some(50)),
            d(1, 20, Some(40)),
            d(2, 40, None),
            d(3, 60, Some(160)),
        ]);
        assert_eq!((s.sent, s.lost, s.reordered), (4, 1, 1));
        assert_eq!(s.mean_delay, ms(170) / 3);
        assert_eq!(s.p95_delay, ms(100));
        assert_eq!(s.max_delay, ms(100));
        assert!((s.loss_rate() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn voice_stream_is_evenly_spaced() {
        let s = voice_stream(3, Duration::from_millis(20), 100);
        assert_eq!(s[2].send, Duration::from_millis(40));
        assert!(check_sorted(&s).is_ok());
        let mut bad = s.clone();
        bad.swap(0, 2);
        assert!(matches!(
            check_sorted(&bad),
            Err(LinkError::Unsorted { index: 1 })
        ));
    }

    #[test]
    fn fuzz_entry_survives_random_input() {
        let mut rng = rng::Rng::new(7);
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            fuzz_trace_loaders(&bytes);
            // Mostly-digit input reaches the parsers' deeper paths.
            let digits: String = bytes
                .iter()
                .map(|b| match b % 13 {
                    10 => '\n',
                    11 => ' ',
                    12 => '-',
                    d => char::from(b'0' + d),
                })
                .collect();
            fuzz_trace_loaders(digits.as_bytes());
            fuzz_trace_loaders(format!("pub_time(ms) x\n{digits}").as_bytes());
        }
    }
}
