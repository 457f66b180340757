//! Mahimahi link-capacity traces and a FIFO bottleneck driven by them.
//!
//! Trace format (mahimahi `traces/README`): one unsigned integer per
//! line, ascending, the millisecond at which the link can deliver one
//! 1500-byte packet; a repeated value means several opportunities in that
//! millisecond. The trace loops: after the last line it starts again,
//! shifted by the last timestamp (as `mm-link` does).
//!
//! The bottleneck follows mahimahi's `LinkQueue`: packets wait in a FIFO;
//! each opportunity is a budget of 1500 bytes spent on the queue head
//! first, so small packets share one opportunity, a large one may span
//! two, and bytes left unused are lost. A packet leaves with its last
//! byte, then takes the fixed propagation delay to the receiver.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use super::rng::Rng;
use super::{Delivery, Link, LinkError, SentPacket, TraceError, check_delays, check_sorted};

/// Bytes one delivery opportunity can carry.
pub const OPPORTUNITY_BYTES: u32 = 1500;

/// Timestamps above this (about 31 years) are rejected as nonsense, which
/// keeps all arithmetic in microseconds far from overflow.
const MAX_MS: u64 = 1_000_000_000_000;

/// A parsed mahimahi trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MahimahiTrace {
    /// Opportunity times in ms, ascending.
    opportunities: Vec<u64>,
}

impl MahimahiTrace {
    /// Parses trace text. Blank lines are skipped; anything else that is
    /// not an ascending unsigned integer is an error.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut opportunities = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let field = line.trim();
            if field.is_empty() {
                continue;
            }
            let ms: u64 = field.parse().map_err(|_| TraceError::Parse {
                line: line_no,
                reason: format!("expected a millisecond count, found {field:?}"),
            })?;
            if ms > MAX_MS {
                return Err(TraceError::Parse {
                    line: line_no,
                    reason: format!("{ms} ms is out of range"),
                });
            }
            if opportunities.last().is_some_and(|&prev| ms < prev) {
                return Err(TraceError::NotAscending { line: line_no });
            }
            opportunities.push(ms);
        }
        match opportunities.last() {
            None => Err(TraceError::Empty),
            Some(0) => Err(TraceError::ZeroDuration),
            Some(_) => Ok(Self { opportunities }),
        }
    }

    /// Reads and parses a trace file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let text = super::error::read_trace(path)?;
        Self::parse(&text)
    }

    /// Number of delivery opportunities in one pass.
    pub fn opportunities(&self) -> usize {
        self.opportunities.len()
    }

    /// Length of one pass: the last timestamp, after which it loops.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms())
    }

    fn period_ms(&self) -> u64 {
        // parse() guarantees a non-empty trace ending above zero.
        self.opportunities.last().copied().unwrap_or(1)
    }

    /// Mean capacity in bit/s over one pass.
    pub fn mean_capacity_bps(&self) -> f64 {
        self.opportunities.len() as f64 * f64::from(OPPORTUNITY_BYTES) * 8.0
            / (self.period_ms() as f64 / 1000.0)
    }

    /// Longest interval without an opportunity.
    pub fn longest_gap(&self) -> Duration {
        let gap = self
            .opportunities
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        Duration::from_millis(gap)
    }

    /// Opportunity times (ms from stream start) when the stream starts at
    /// `offset_ms` into the trace, looping for ever.
    fn schedule(&self, offset_ms: u64) -> impl Iterator<Item = u64> + '_ {
        let period = self.period_ms();
        let offset = offset_ms % period;
        let first = self.opportunities.partition_point(|&t| t < offset);
        let first_lap = self.opportunities[first..].iter().map(move |&t| t - offset);
        let later_laps = (1u64..).flat_map(move |lap| {
            self.opportunities
                .iter()
                .map(move |&t| (lap * period + t).saturating_sub(offset))
        });
        first_lap.chain(later_laps)
    }
}

/// A drop-tail queue limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// At most this many packets queued; an arrival beyond it is dropped.
    Packets(usize),
    /// At most this many bytes queued.
    Bytes(u64),
}

/// Competing traffic sharing the bottleneck FIFO with the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CrossTraffic {
    /// The stream is alone on the link.
    None,
    /// A constant-bitrate flow (e.g. a video call's other streams).
    Constant {
        /// Offered load in bit/s.
        bitrate_bps: u64,
        /// Packet size in bytes.
        packet_bytes: u32,
    },
    /// A bursty on/off flow: `bitrate_bps` while on, silent while off;
    /// on and off periods are exponentially distributed.
    OnOff {
        /// Offered load while on, in bit/s.
        bitrate_bps: u64,
        /// Packet size in bytes.
        packet_bytes: u32,
        /// Mean length of an on period.
        mean_on: Duration,
        /// Mean length of an off period.
        mean_off: Duration,
    },
    /// A bulk transfer that always has data (a TCP download filling the
    /// link): it keeps `backlog` of its packets queued whenever the queue
    /// limit lets it, so the stream sees a standing queue.
    Bulk {
        /// Packet size in bytes.
        packet_bytes: u32,
        /// Packets the flow keeps in the queue.
        backlog: usize,
    },
}

/// How a [`MahimahiLink`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MahimahiConfig {
    /// Fixed one-way propagation delay added after the bottleneck.
    pub propagation: Duration,
    /// Drop-tail limit of the bottleneck queue (`None`: unlimited).
    pub queue_limit: Option<QueueLimit>,
    /// Competing traffic.
    pub cross: CrossTraffic,
    /// Where in the trace the stream starts.
    pub start_offset: Duration,
    /// Seed for the random parts (bursty cross traffic).
    pub seed: u64,
}

impl Default for MahimahiConfig {
    /// 30 ms propagation, unlimited queue, no cross traffic.
    fn default() -> Self {
        Self {
            propagation: Duration::from_millis(30),
            queue_limit: None,
            cross: CrossTraffic::None,
            start_offset: Duration::ZERO,
            seed: 0,
        }
    }
}

/// A FIFO bottleneck whose capacity follows a mahimahi trace.
#[derive(Debug, Clone)]
pub struct MahimahiLink {
    trace: MahimahiTrace,
    config: MahimahiConfig,
    stats: QueueStats,
}

/// What the bottleneck queue did in the last run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Most packets queued at once.
    pub max_packets: usize,
    /// Most bytes queued at once.
    pub max_bytes: u64,
    /// Stream packets dropped by the queue limit.
    pub stream_dropped: u64,
    /// Cross-traffic packets offered.
    pub cross_sent: u64,
    /// Cross-traffic packets dropped by the queue limit.
    pub cross_dropped: u64,
}

/// Generates cross-traffic arrival times in µs.
struct CrossSource {
    kind: CrossTraffic,
    rng: Rng,
    next_us: f64,
    /// End of the current on period (on/off flows).
    on_until_us: f64,
}

impl CrossSource {
    fn new(kind: CrossTraffic, seed: u64) -> Self {
        let mut rng = Rng::derive(seed, 1);
        let on_until_us = match kind {
            CrossTraffic::OnOff { mean_on, .. } => rng.exponential(mean_on.as_micros() as f64),
            _ => f64::INFINITY,
        };
        Self {
            kind,
            rng,
            next_us: 0.0,
            on_until_us,
        }
    }

    fn packet_bytes(&self) -> u32 {
        match self.kind {
            CrossTraffic::None => 0,
            CrossTraffic::Constant { packet_bytes, .. }
            | CrossTraffic::OnOff { packet_bytes, .. }
            | CrossTraffic::Bulk { packet_bytes, .. } => packet_bytes,
        }
    }

    /// The next timed arrival (µs), or `None` for no timed traffic.
    fn peek(&self) -> Option<u64> {
        match self.kind {
            CrossTraffic::None | CrossTraffic::Bulk { .. } => None,
            _ => Some(self.next_us as u64),
        }
    }

    /// How many packets a bulk flow wants queued (0 for timed flows).
    fn backlog(&self) -> usize {
        match self.kind {
            CrossTraffic::Bulk { backlog, .. } => backlog,
            _ => 0,
        }
    }

    fn advance(&mut self) {
        match self.kind {
            CrossTraffic::None | CrossTraffic::Bulk { .. } => {}
            CrossTraffic::Constant {
                bitrate_bps,
                packet_bytes,
            } => self.next_us += f64::from(packet_bytes) * 8e6 / bitrate_bps as f64,
            CrossTraffic::OnOff {
                bitrate_bps,
                packet_bytes,
                mean_on,
                mean_off,
            } => {
                self.next_us += f64::from(packet_bytes) * 8e6 / bitrate_bps as f64;
                while self.next_us > self.on_until_us {
                    let off = self.rng.exponential(mean_off.as_micros() as f64);
                    let on = self.rng.exponential(mean_on.as_micros() as f64);
                    self.next_us = self.next_us.max(self.on_until_us + off);
                    self.on_until_us += off + on;
                }
            }
        }
    }
}

struct Queued {
    /// Index of the stream packet, or `None` for cross traffic.
    stream: Option<usize>,
    remaining: u32,
    size: u32,
}

impl MahimahiLink {
    /// A link over `trace` configured by `config`.
    pub fn new(trace: MahimahiTrace, config: MahimahiConfig) -> Result<Self, LinkError> {
        check_delays(&[config.propagation, config.start_offset])?;
        let bad = |what: &str| Err(LinkError::Config(what.to_owned()));
        match config.cross {
            CrossTraffic::Constant {
                bitrate_bps,
                packet_bytes,
            }
            | CrossTraffic::OnOff {
                bitrate_bps,
                packet_bytes,
                ..
            } if bitrate_bps == 0 || packet_bytes == 0 => {
                return bad("cross traffic needs a positive bitrate and packet size");
            }
            CrossTraffic::OnOff {
                mean_on, mean_off, ..
            } if mean_on.is_zero() || mean_off.is_zero() => {
                return bad("on/off cross traffic needs positive mean periods");
            }
            CrossTraffic::Bulk {
                packet_bytes,
                backlog,
            } if packet_bytes == 0 || backlog == 0 => {
                return bad("bulk cross traffic needs a packet size and a backlog");
            }
            _ => {}
        }
        if matches!(
            config.queue_limit,
            Some(QueueLimit::Packets(0) | QueueLimit::Bytes(0))
        ) {
            return bad("a queue limit of zero drops everything");
        }
        Ok(Self {
            trace,
            config,
            stats: QueueStats::default(),
        })
    }

    /// Queue figures of the last run.
    pub fn queue_stats(&self) -> QueueStats {
        self.stats
    }
}

/// Whether a drop-tail queue under `limit` takes one more packet.
fn admits(limit: Option<QueueLimit>, queued: usize, queued_bytes: u64, size: u32) -> bool {
    match limit {
        None => true,
        Some(QueueLimit::Packets(n)) => queued < n,
        Some(QueueLimit::Bytes(n)) => queued_bytes + u64::from(size) <= n,
    }
}

impl Link for MahimahiLink {
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError> {
        check_sorted(packets)?;
        let mut arrival: Vec<Option<Duration>> = vec![None; packets.len()];
        let Some(last_send) = packets.last().map(|p| p.send.as_micros() as u64) else {
            return Ok(Vec::new());
        };
        let mut cross = CrossSource::new(self.config.cross, self.config.seed);
        let cross_bytes = cross.packet_bytes();
        let offset_ms = self.config.start_offset.as_millis() as u64;
        let mut queue: VecDeque<Queued> = VecDeque::new();
        let mut queued_bytes = 0u64;
        let mut next = 0usize;
        let mut unresolved = packets.len();
        let mut stats = QueueStats::default();
        let mut cross_queued = 0usize;

        let (limit, propagation) = (self.config.queue_limit, self.config.propagation);
        for opp_ms in self.trace.schedule(offset_ms) {
            if unresolved == 0 {
                break;
            }
            let now_us = opp_ms * 1000;
            // Enqueue everything that reached the bottleneck by now, in
            // time order. Cross traffic after the stream's last packet
            // cannot delay the stream in a FIFO, so it is not generated.
            loop {
                let stream_t = packets.get(next).map(|p| p.send.as_micros() as u64);
                let cross_t = cross.peek().filter(|&t| t <= last_send);
                let (is_stream, t) = match (stream_t, cross_t) {
                    (Some(s), Some(c)) if c < s => (false, c),
                    (Some(s), _) => (true, s),
                    (None, Some(c)) => (false, c),
                    (None, None) => break,
                };
                if t > now_us {
                    break;
                }
                let size = if is_stream {
                    packets[next].size
                } else {
                    cross_bytes
                };
                stats.cross_sent += u64::from(!is_stream);
                if admits(limit, queue.len(), queued_bytes, size) {
                    queued_bytes += u64::from(size);
                    queue.push_back(Queued {
                        stream: is_stream.then_some(next),
                        remaining: size,
                        size,
                    });
                    stats.max_packets = stats.max_packets.max(queue.len());
                    stats.max_bytes = stats.max_bytes.max(queued_bytes);
                    cross_queued += usize::from(!is_stream);
                } else if is_stream {
                    unresolved -= 1; // dropped: arrival stays None
                    stats.stream_dropped += 1;
                } else {
                    stats.cross_dropped += 1;
                }
                if is_stream {
                    next += 1;
                } else {
                    cross.advance();
                }
            }
            // A bulk flow tops its backlog up as far as the limit allows.
            while now_us <= last_send
                && cross_queued < cross.backlog()
                && admits(limit, queue.len(), queued_bytes, cross_bytes)
            {
                queued_bytes += u64::from(cross_bytes);
                queue.push_back(Queued {
                    stream: None,
                    remaining: cross_bytes,
                    size: cross_bytes,
                });
                cross_queued += 1;
                stats.cross_sent += 1;
                stats.max_packets = stats.max_packets.max(queue.len());
                stats.max_bytes = stats.max_bytes.max(queued_bytes);
            }
            // Spend this opportunity's budget on the queue head.
            let mut budget = OPPORTUNITY_BYTES;
            while let Some(head) = queue.front_mut() {
                if head.remaining > budget {
                    head.remaining -= budget;
                    break;
                }
                budget -= head.remaining;
                queued_bytes -= u64::from(head.size);
                match head.stream {
                    Some(i) => {
                        arrival[i] = Some(Duration::from_millis(opp_ms) + propagation);
                        unresolved -= 1;
                    }
                    None => cross_queued -= 1,
                }
                queue.pop_front();
            }
        }
        self.stats = stats;
        Ok(packets
            .iter()
            .zip(arrival)
            .map(|(p, arrival)| Delivery {
                seq: p.seq,
                send: p.send,
                arrival,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::voice_stream;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn parse_errors_are_typed() {
        assert!(matches!(MahimahiTrace::parse(""), Err(TraceError::Empty)));
        assert!(matches!(
            MahimahiTrace::parse("0\n0\n"),
            Err(TraceError::ZeroDuration)
        ));
        assert!(matches!(
            MahimahiTrace::parse("5\n3\n"),
            Err(TraceError::NotAscending { line: 2 })
        ));
        assert!(matches!(
            MahimahiTrace::parse("1\nx\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(MahimahiTrace::parse("-1").is_err());
        assert!(MahimahiTrace::parse("99999999999999999999").is_err());
        assert!(MahimahiTrace::from_path("/nonexistent/trace").is_err());
    }

    #[test]
    fn small_packets_share_an_opportunity_and_big_ones_span_two() {
        // One opportunity every 10 ms.
        let trace = MahimahiTrace::parse("10\n20\n30\n40\n").unwrap();
        let config = MahimahiConfig {
            propagation: Duration::ZERO,
            ..MahimahiConfig::default()
        };
        let mut link = MahimahiLink::new(trace.clone(), config.clone()).unwrap();
        let small = [0, 1, 2].map(|seq| SentPacket {
            seq,
            send: Duration::ZERO,
            size: 500,
        });
        let out = link.run(&small).unwrap();
        assert!(out.iter().all(|d| d.arrival == Some(MS(10))));
        // 2000 bytes need the budget of two opportunities.
        let big = [SentPacket {
            seq: 0,
            send: MS(1),
            size: 2000,
        }];
        let out = MahimahiLink::new(trace.clone(), config.clone())
            .unwrap()
            .run(&big)
            .unwrap();
        assert_eq!(out[0].arrival, Some(MS(20)));
        // The trace loops: period 40 ms, so a packet sent at 41 ms leaves at
        // the second pass's first opportunity, 40 + 10 ms.
        let late = [SentPacket {
            seq: 0,
            send: MS(41),
            size: 100,
        }];
        let out = MahimahiLink::new(trace, config)
            .unwrap()
            .run(&late)
            .unwrap();
        assert_eq!(out[0].arrival, Some(MS(50)));
    }

    #[test]
    fn drop_tail_and_bad_configs() {
        let trace = MahimahiTrace::parse("1000\n").unwrap();
        let config = MahimahiConfig {
            queue_limit: Some(QueueLimit::Packets(3)),
            ..MahimahiConfig::default()
        };
        let mut link = MahimahiLink::new(trace.clone(), config).unwrap();
        let out = link.run(&voice_stream(10, MS(20), 100)).unwrap();
        // Nothing leaves before 1000 ms; only the first 3 packets fit.
        assert_eq!(out.iter().filter(|d| d.arrival.is_some()).count(), 3);
        assert!(out[..3].iter().all(|d| d.arrival.is_some()));
        let zero = MahimahiConfig {
            queue_limit: Some(QueueLimit::Bytes(0)),
            ..MahimahiConfig::default()
        };
        assert!(MahimahiLink::new(trace.clone(), zero).is_err());
        let cross = MahimahiConfig {
            cross: CrossTraffic::Constant {
                bitrate_bps: 0,
                packet_bytes: 1500,
            },
            ..MahimahiConfig::default()
        };
        assert!(MahimahiLink::new(trace.clone(), cross).is_err());
        let endless = MahimahiConfig {
            propagation: Duration::MAX,
            ..MahimahiConfig::default()
        };
        assert!(MahimahiLink::new(trace, endless).is_err());
    }
}
