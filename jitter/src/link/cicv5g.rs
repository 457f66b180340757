//! CICV5G per-packet delay traces (Zhang et al. 2025, "5G communication
//! delay dataset for cloud-based vehicle planning and control", Zenodo,
//! DOI 10.5281/zenodo.17475688, CC BY 4.0) and a link that replays any
//! per-packet delay series.
//!
//! Format: a header line, then one row per publish/echo cycle with
//! whitespace-separated columns `pub_time(ms) sub_time(ms) delay(ms)`
//! followed by position, speed, cell id (hex), SINR and RSRP; some files
//! have three more columns. `pub_time` and `sub_time` are Unix
//! milliseconds on the same on-board clock, and `delay = sub - pub` is the
//! vehicle→5G→cloud→5G→vehicle **round trip**.
//!
//! **Round trip to one way.** The dataset has no one-way delays, so we
//! pick one of two documented assumptions ([`OneWay`]):
//! - [`OneWay::HalfRtt`]: the path is symmetric, so one way is `rtt / 2`.
//!   Exact when uplink and downlink delays are equal; because both legs
//!   share the same clock, no clock offset enters.
//! - [`OneWay::Variation`]: `base + fraction * (rtt - min_rtt)`, a chosen
//!   base one-way delay plus a share of the variation above the fastest
//!   round trip. `fraction = 1` puts all variation on our direction (the
//!   worst case, as when the radio uplink causes the spikes); `0.5` is
//!   the symmetric split.
//!
//! The trace holds no losses (only completed cycles are logged, and the
//! transport retransmits), so outages appear as large in-order delays. A
//! real-time stream would not wait for them: [`DelayTraceConfig::deadline`]
//! declares a packet lost once its delay exceeds a bound.

use std::path::Path;
use std::time::Duration;

use super::{Delivery, Link, LinkError, SentPacket, TraceError, check_sorted};

/// One logged publish/echo cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cicv5gRow {
    /// Publish time, ms from the first row.
    pub time_ms: u64,
    /// Round-trip delay in ms.
    pub rtt_ms: u64,
    /// Serving cell id, if the column is present and hexadecimal.
    pub cell: Option<u64>,
    /// SINR in dB, if present.
    pub sinr_db: Option<f64>,
}

/// A parsed CICV5G trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Cicv5gTrace {
    rows: Vec<Cicv5gRow>,
}

/// Times beyond this many ms (about 31 years) are rejected.
const MAX_MS: u64 = 1_000_000_000_000;

fn field<'a>(fields: &[&'a str], i: usize, line: usize, name: &str) -> Result<&'a str, TraceError> {
    fields.get(i).copied().ok_or_else(|| TraceError::Parse {
        line,
        reason: format!("missing column {name}"),
    })
}

fn number(text: &str, line: usize, name: &str) -> Result<u64, TraceError> {
    text.parse::<u64>()
        .ok()
        .filter(|&v| v <= MAX_MS * 1000)
        .ok_or_else(|| TraceError::Parse {
            line,
            reason: format!("{name} {text:?} is not a millisecond count"),
        })
}

impl Cicv5gTrace {
    /// Parses trace text: the header, then rows as described in the
    /// module documentation. Rows must have non-decreasing `pub_time` and
    /// `delay == sub_time - pub_time`.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, header)) if header.trim_start().starts_with("pub_time") => {}
            Some((i, _)) => {
                return Err(TraceError::Parse {
                    line: i + 1,
                    reason: "expected the header line starting with pub_time".into(),
                });
            }
            None => return Err(TraceError::Empty),
        }
        let mut rows = Vec::new();
        let mut first_pub = None;
        let mut last_pub = 0;
        for (i, line) in lines {
            let line_no = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pub_ms = number(field(&fields, 0, line_no, "pub_time")?, line_no, "pub_time")?;
            let sub_ms = number(field(&fields, 1, line_no, "sub_time")?, line_no, "sub_time")?;
            let rtt_ms = number(field(&fields, 2, line_no, "delay")?, line_no, "delay")?;
            if sub_ms.checked_sub(pub_ms) != Some(rtt_ms) {
                return Err(TraceError::Parse {
                    line: line_no,
                    reason: format!("delay {rtt_ms} is not sub_time - pub_time"),
                });
            }
            if pub_ms < last_pub {
                return Err(TraceError::NotAscending { line: line_no });
            }
            last_pub = pub_ms;
            let first = *first_pub.get_or_insert(pub_ms);
            rows.push(Cicv5gRow {
                time_ms: pub_ms - first,
                rtt_ms,
                cell: fields.get(7).and_then(|c| u64::from_str_radix(c, 16).ok()),
                sinr_db: fields.get(8).and_then(|s| s.parse().ok()),
            });
        }
        if rows.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Self { rows })
    }

    /// Reads and parses a trace file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let text = super::error::read_trace(path)?;
        Self::parse(&text)
    }

    /// The rows, in time order.
    pub fn rows(&self) -> &[Cicv5gRow] {
        &self.rows
    }

    /// The smallest round trip in the trace.
    pub fn min_rtt(&self) -> Duration {
        Duration::from_millis(self.rows.iter().map(|r| r.rtt_ms).min().unwrap_or(0))
    }

    /// Number of serving-cell changes (handovers) seen in the trace.
    pub fn handovers(&self) -> usize {
        self.rows
            .windows(2)
            .filter(|w| w[0].cell.is_some() && w[1].cell.is_some() && w[0].cell != w[1].cell)
            .count()
    }

    /// The one-way delay series under `one_way`.
    pub fn delay_series(&self, one_way: OneWay) -> Result<DelaySeries, LinkError> {
        let min = self.min_rtt().as_secs_f64() * 1000.0;
        let points = self
            .rows
            .iter()
            .map(|r| {
                let rtt = r.rtt_ms as f64;
                let ms = match one_way {
                    OneWay::HalfRtt => rtt / 2.0,
                    OneWay::Variation { base, fraction } => {
                        base.as_secs_f64() * 1000.0 + fraction * (rtt - min)
                    }
                };
                (r.time_ms as f64, ms)
            })
            .collect();
        DelaySeries::new(points)
    }
}

/// How a round-trip time becomes a one-way delay (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OneWay {
    /// `rtt / 2`: a symmetric path.
    HalfRtt,
    /// `base + fraction * (rtt - min_rtt)`.
    Variation {
        /// One-way delay when the round trip is at its minimum.
        base: Duration,
        /// Share of the round-trip variation that falls on this direction.
        fraction: f64,
    },
}

impl OneWay {
    /// 20 ms base plus all the variation: the pessimistic choice for a
    /// jitter buffer.
    pub fn default_variation() -> Self {
        Self::Variation {
            base: Duration::from_millis(20),
            fraction: 1.0,
        }
    }
}

/// A one-way delay sampled over time: (time ms, delay ms) points with
/// ascending times. Between points the delay is interpolated linearly;
/// after the last point the series loops, one median sampling interval
/// after its end.
#[derive(Debug, Clone, PartialEq)]
pub struct DelaySeries {
    points: Vec<(f64, f64)>,
    period_ms: f64,
}

impl DelaySeries {
    /// Builds a series; times must be finite and ascending, delays finite
    /// and non-negative.
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self, LinkError> {
        let ok = points
            .iter()
            .all(|&(t, d)| t.is_finite() && d.is_finite() && d >= 0.0)
            && points.windows(2).all(|w| w[0].0 <= w[1].0);
        if points.is_empty() || !ok {
            return Err(LinkError::Config(
                "a delay series needs ascending times and finite non-negative delays".into(),
            ));
        }
        let mut steps: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
        steps.sort_by(f64::total_cmp);
        let median = steps.get(steps.len() / 2).copied().unwrap_or(0.0).max(1.0);
        let span = points[points.len() - 1].0 - points[0].0;
        Ok(Self {
            period_ms: span + median,
            points,
        })
    }

    /// The delay (ms) at `t_ms` from the start of the series.
    pub fn delay_at(&self, t_ms: f64) -> f64 {
        let start = self.points[0].0;
        let t = start + (t_ms.max(0.0) % self.period_ms);
        let i = self.points.partition_point(|&(pt, _)| pt <= t);
        let (t0, d0) = self.points[i.saturating_sub(1)];
        let (t1, d1) = match self.points.get(i) {
            Some(&p) => p,
            // Wrap: interpolate towards the first point of the next lap.
            None => (start + self.period_ms, self.points[0].1),
        };
        if t1 > t0 {
            d0 + (d1 - d0) * (t - t0) / (t1 - t0)
        } else {
            d0
        }
    }
}

/// How a [`DelayTraceLink`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayTraceConfig {
    /// Round trip to one way.
    pub one_way: OneWay,
    /// Where in the trace the stream starts.
    pub start_offset: Duration,
    /// Packets whose delay exceeds this are lost (`None`: none are).
    pub deadline: Option<Duration>,
    /// Keep arrivals in send order. The radio link layer (RLC) delivers in
    /// order, and the trace shows outages as in-order spikes, so a packet
    /// may not overtake one sent before it even where the interpolated
    /// delay falls faster than the send interval (the tail of a spike).
    pub fifo: bool,
}

impl Default for DelayTraceConfig {
    /// Half the RTT, from the start, with a 1 s deadline (a voice packet
    /// that late is useless, and in a real UDP stream it would be lost),
    /// in order.
    fn default() -> Self {
        Self {
            one_way: OneWay::HalfRtt,
            start_offset: Duration::ZERO,
            deadline: Some(Duration::from_secs(1)),
            fifo: true,
        }
    }
}

/// A link whose per-packet delay follows a [`DelaySeries`] at each
/// packet's send time (held back behind earlier packets when
/// [`DelayTraceConfig::fifo`] is set).
#[derive(Debug, Clone)]
pub struct DelayTraceLink {
    series: DelaySeries,
    config: DelayTraceConfig,
}

impl DelayTraceLink {
    /// A link replaying `trace` under `config`.
    pub fn new(trace: &Cicv5gTrace, config: DelayTraceConfig) -> Result<Self, LinkError> {
        super::check_delays(&[config.start_offset])?;
        if let OneWay::Variation { base, .. } = config.one_way {
            super::check_delays(&[base])?;
        }
        if let OneWay::Variation { fraction, .. } = config.one_way
            && !(0.0..=1.0).contains(&fraction)
        {
            return Err(LinkError::Config(format!(
                "fraction {fraction} not in 0..=1"
            )));
        }
        Ok(Self::from_series(
            trace.delay_series(config.one_way)?,
            config,
        ))
    }

    /// A link replaying any delay series (`config.one_way` is unused).
    pub fn from_series(series: DelaySeries, config: DelayTraceConfig) -> Self {
        Self { series, config }
    }
}

impl Link for DelayTraceLink {
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError> {
        check_sorted(packets)?;
        let offset_ms = self.config.start_offset.as_secs_f64() * 1000.0;
        let mut latest = Duration::ZERO;
        Ok(packets
            .iter()
            .map(|p| {
                let ms = self
                    .series
                    .delay_at(p.send.as_secs_f64() * 1000.0 + offset_ms);
                let mut arrival = p.send + Duration::from_secs_f64(ms.clamp(0.0, 1e9) / 1000.0);
                if self.config.fifo {
                    arrival = arrival.max(latest);
                    latest = arrival;
                }
                // A packet held behind a late one is as late as it is.
                let late = self.config.deadline.is_some_and(|d| arrival - p.send > d);
                Delivery {
                    seq: p.seq,
                    send: p.send,
                    arrival: (!late).then_some(arrival),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::voice_stream;

    const TEXT: &str = "pub_time(ms) sub_time(ms) delay(ms) utmX(m) utmY(m) heading(rad) velocity(m/s) cellid(db) sinr(db) rsrp(db)
1000 1020 20 0 0 0 0 5C422503D 17 -85
1050 1090 40 0 0 0 0 5C422503D 17 -85
1100 1120 20 0 0 0 0 5C4225714 12 -90
";

    #[test]
    fn parses_rows_cells_and_handovers() {
        let t = Cicv5gTrace::parse(TEXT).unwrap();
        assert_eq!(t.rows().len(), 3);
        assert_eq!(t.rows()[1].time_ms, 50);
        assert_eq!(t.rows()[0].cell, Some(0x5C42_2503D));
        assert_eq!(t.rows()[2].sinr_db, Some(12.0));
        assert_eq!(t.handovers(), 1);
        assert_eq!(t.min_rtt(), Duration::from_millis(20));
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        assert!(matches!(Cicv5gTrace::parse(""), Err(TraceError::Empty)));
        let header = TEXT.lines().next().unwrap();
        assert!(matches!(Cicv5gTrace::parse(header), Err(TraceError::Empty)));
        assert!(matches!(
            Cicv5gTrace::parse("1 2 1\n"),
            Err(TraceError::Parse { line: 1, .. })
        ));
        let bad_delay = format!("{header}\n1000 1020 21\n");
        assert!(matches!(
            Cicv5gTrace::parse(&bad_delay),
            Err(TraceError::Parse { line: 2, .. })
        ));
        let backwards = format!("{header}\n1000 1020 20\n900 920 20\n");
        assert!(matches!(
            Cicv5gTrace::parse(&backwards),
            Err(TraceError::NotAscending { line: 3 })
        ));
        let short = format!("{header}\n1000 1020\n");
        assert!(Cicv5gTrace::parse(&short).is_err());
        let negative = format!("{header}\n1000 990 -10\n");
        assert!(Cicv5gTrace::parse(&negative).is_err());
    }

    #[test]
    fn one_way_conversions_and_interpolation() {
        let t = Cicv5gTrace::parse(TEXT).unwrap();
        let half = t.delay_series(OneWay::HalfRtt).unwrap();
        assert_eq!(half.delay_at(0.0), 10.0);
        assert_eq!(half.delay_at(25.0), 15.0); // halfway from 10 to 20
        assert_eq!(half.delay_at(50.0), 20.0);
        let var = t
            .delay_series(OneWay::Variation {
                base: Duration::from_millis(5),
                fraction: 1.0,
            })
            .unwrap();
        assert_eq!(var.delay_at(50.0), 25.0); // 5 + (40 - 20)
        // Period = 100 ms span + 50 ms median step: 150 ms wraps to 0.
        assert_eq!(half.delay_at(150.0), 10.0);
        assert_eq!(half.delay_at(125.0), 10.0); // between last (10) and wrap (10)
    }

    #[test]
    fn deadline_turns_late_packets_into_losses() {
        let t = Cicv5gTrace::parse(TEXT).unwrap();
        let mut link = DelayTraceLink::new(
            &t,
            DelayTraceConfig {
                deadline: Some(Duration::from_millis(15)),
                ..DelayTraceConfig::default()
            },
        )
        .unwrap();
        let out = link
            .run(&voice_stream(4, Duration::from_millis(25), 100))
            .unwrap();
        // Delays 10, 15, 20, 15 ms: only the 20 ms one is too late.
        let lost: Vec<bool> = out.iter().map(|d| d.arrival.is_none()).collect();
        assert_eq!(lost, [false, false, true, false]);
        assert_eq!(out[1].delay(), Some(Duration::from_millis(15)));
        let bad = DelayTraceConfig {
            one_way: OneWay::Variation {
                base: Duration::ZERO,
                fraction: 2.0,
            },
            ..DelayTraceConfig::default()
        };
        assert!(DelayTraceLink::new(&t, bad).is_err());
    }

    #[test]
    fn fifo_keeps_the_tail_of_a_spike_in_order() {
        // One-way delay falls from 200 ms to 10 ms within 50 ms.
        let text = "pub_time(ms) sub_time(ms) delay(ms)\n0 400 400\n50 70 20\n";
        let t = Cicv5gTrace::parse(text).unwrap();
        let stream = voice_stream(5, Duration::from_millis(10), 100);
        let run = |fifo| {
            DelayTraceLink::new(
                &t,
                DelayTraceConfig {
                    fifo,
                    deadline: None,
                    ..DelayTraceConfig::default()
                },
            )
            .unwrap()
            .run(&stream)
            .unwrap()
        };
        let free = run(false);
        assert!(crate::link::LinkSummary::of(&free).reordered > 0);
        let ordered = run(true);
        assert_eq!(crate::link::LinkSummary::of(&ordered).reordered, 0);
        // Held packets leave with the packet they queued behind.
        assert!(
            ordered
                .iter()
                .all(|d| d.arrival == Some(Duration::from_millis(200)))
        );
    }
}
