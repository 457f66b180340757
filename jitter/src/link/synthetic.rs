//! Synthetic link models, deterministic for a seed: Gilbert-Elliott burst
//! loss, heavy-tailed jitter and handover outages on top of a base delay.

use std::time::Duration;

use super::rng::Rng;
use super::{Delivery, Link, LinkError, SentPacket, check_delays, check_sorted};

/// Two-state Markov burst loss (Gilbert 1960, Elliott 1963).
///
/// Before each packet the channel moves Good→Bad with probability
/// `p_good_to_bad` and Bad→Good with `p_bad_to_good`; the packet is then
/// lost with the loss probability of the state it is in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Transition probability Good→Bad per packet.
    pub p_good_to_bad: f64,
    /// Transition probability Bad→Good per packet.
    pub p_bad_to_good: f64,
    /// Loss probability in the Good state.
    pub loss_good: f64,
    /// Loss probability in the Bad state.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// Long-run fraction of time in the Bad state: the stationary
    /// distribution of the two-state chain, `p / (p + r)`.
    pub fn stationary_bad(&self) -> f64 {
        let (p, r) = (self.p_good_to_bad, self.p_bad_to_good);
        if p + r == 0.0 { 0.0 } else { p / (p + r) }
    }

    /// Long-run loss rate: `π_B·loss_bad + π_G·loss_good`.
    pub fn stationary_loss(&self) -> f64 {
        let bad = self.stationary_bad();
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    /// Mean length of a Bad period in packets, `1 / r`.
    pub fn mean_burst(&self) -> f64 {
        1.0 / self.p_bad_to_good
    }

    fn validate(&self) -> Result<(), LinkError> {
        let all = [
            self.p_good_to_bad,
            self.p_bad_to_good,
            self.loss_good,
            self.loss_bad,
        ];
        if all.iter().all(|p| (0.0..=1.0).contains(p)) {
            Ok(())
        } else {
            Err(LinkError::Config(format!(
                "probabilities must be in 0..=1: {self:?}"
            )))
        }
    }
}

/// Extra delay added to each packet independently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Lomax (Pareto II, shifted to start at zero):
    /// `scale · (U^(-1/shape) − 1)`; heavier tail for smaller `shape`,
    /// infinite variance below 2.
    Pareto {
        /// Scale of the tail.
        scale: Duration,
        /// Tail index (> 0).
        shape: f64,
    },
    /// Log-normal: `median · exp(sigma · N(0, 1))`.
    LogNormal {
        /// Median extra delay.
        median: Duration,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
}

/// Handovers: at random times (a Poisson process) the radio link stops
/// for `outage`, then delivers what it buffered with an extra `spike` of
/// delay that decays linearly to zero over `recovery`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handover {
    /// Mean time between handovers.
    pub mean_interval: Duration,
    /// How long the link delivers nothing.
    pub outage: Duration,
    /// Extra delay right after the outage.
    pub spike: Duration,
    /// Time over which the extra delay decays back to zero.
    pub recovery: Duration,
    /// Lose the packets sent during the outage instead of buffering them.
    pub drop_during_outage: bool,
}

/// A synthetic link: a base delay plus any of the impairments.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Constant one-way delay.
    pub base_delay: Duration,
    /// Burst loss.
    pub loss: Option<GilbertElliott>,
    /// Per-packet jitter.
    pub jitter: Option<Jitter>,
    /// Handover outages.
    pub handover: Option<Handover>,
    /// Upper bound on the jitter added to one packet (tames infinite
    /// tails).
    pub max_jitter: Duration,
    /// Keep arrivals in send order (a FIFO path); otherwise jitter may
    /// reorder packets.
    pub fifo: bool,
    /// Seed for every random draw.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    /// 40 ms base delay, no impairment, FIFO, seed 0.
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(40),
            loss: None,
            jitter: None,
            handover: None,
            max_jitter: Duration::from_secs(2),
            fifo: true,
            seed: 0,
        }
    }
}

/// A link built from a [`SyntheticConfig`]. Each run starts from the seed
/// again, so the same packets always get the same fate.
#[derive(Debug, Clone)]
pub struct SyntheticLink {
    config: SyntheticConfig,
}

impl SyntheticLink {
    /// Validates `config` and builds the link.
    pub fn new(config: SyntheticConfig) -> Result<Self, LinkError> {
        if let Some(ge) = &config.loss {
            ge.validate()?;
        }
        match config.jitter {
            Some(Jitter::Pareto { shape, .. }) if !(shape > 0.0 && shape.is_finite()) => {
                return Err(LinkError::Config(format!(
                    "Pareto shape {shape} must be > 0"
                )));
            }
            Some(Jitter::LogNormal { sigma, .. }) if !(sigma >= 0.0 && sigma.is_finite()) => {
                return Err(LinkError::Config(format!(
                    "log-normal sigma {sigma} must be >= 0"
                )));
            }
            _ => {}
        }
        let mut delays = vec![config.base_delay, config.max_jitter];
        if let Some(h) = config.handover {
            delays.extend([h.outage, h.spike, h.recovery]);
        }
        check_delays(&delays)?;
        if config.handover.is_some_and(|h| h.mean_interval.is_zero()) {
            return Err(LinkError::Config(
                "handover interval must be positive".into(),
            ));
        }
        Ok(Self { config })
    }

    fn jitter(&self, rng: &mut Rng) -> Duration {
        let secs = match self.config.jitter {
            None => 0.0,
            Some(Jitter::Pareto { scale, shape }) => {
                scale.as_secs_f64() * (rng.uniform_open().powf(-1.0 / shape) - 1.0)
            }
            Some(Jitter::LogNormal { median, sigma }) => {
                median.as_secs_f64() * (sigma * rng.normal()).exp()
            }
        };
        let max = self.config.max_jitter.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() {
            secs.clamp(0.0, max)
        } else {
            max
        })
    }
}

/// Handover times, drawn lazily in order.
struct Handovers {
    model: Handover,
    rng: Rng,
    /// Start of the latest handover at or before the last query, and of
    /// the next one.
    current: Option<Duration>,
    next: Duration,
}

impl Handovers {
    fn new(model: Handover, seed: u64) -> Self {
        let mut rng = Rng::derive(seed, 3);
        let next = Duration::from_secs_f64(rng.exponential(model.mean_interval.as_secs_f64()));
        Self {
            model,
            rng,
            current: None,
            next,
        }
    }

    /// Extra delay for a packet sent at `t` (queries in ascending `t`),
    /// or `None` if it is lost in an outage.
    fn extra(&mut self, t: Duration) -> Option<Duration> {
        while self.next <= t {
            self.current = Some(self.next);
            let gap = self.rng.exponential(self.model.mean_interval.as_secs_f64());
            self.next += Duration::from_secs_f64(gap).max(Duration::from_micros(1));
        }
        let Some(start) = self.current else {
            return Some(Duration::ZERO);
        };
        let m = &self.model;
        let end = start + m.outage;
        if t < end {
            return (!m.drop_during_outage).then(|| end - t + m.spike);
        }
        let since = t - end;
        if since >= m.recovery {
            return Some(Duration::ZERO);
        }
        Some(
            m.spike
                .mul_f64(1.0 - since.as_secs_f64() / m.recovery.as_secs_f64()),
        )
    }
}

impl Link for SyntheticLink {
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError> {
        check_sorted(packets)?;
        let seed = self.config.seed;
        let (mut loss_rng, mut jitter_rng) = (Rng::derive(seed, 0), Rng::derive(seed, 2));
        let mut handovers = self.config.handover.map(|h| Handovers::new(h, seed));
        let mut bad = false;
        let mut latest = Duration::ZERO;
        let mut out = Vec::with_capacity(packets.len());
        for p in packets {
            // Draw every random number whatever the outcome, so one
            // packet's fate does not shift the others' draws.
            let lost_on_channel = self.config.loss.is_some_and(|ge| {
                let flip = loss_rng.uniform();
                bad = if bad {
                    flip >= ge.p_bad_to_good
                } else {
                    flip < ge.p_good_to_bad
                };
                loss_rng.chance(if bad { ge.loss_bad } else { ge.loss_good })
            });
            let jitter = self.jitter(&mut jitter_rng);
            let extra = match handovers.as_mut() {
                Some(h) => h.extra(p.send),
                None => Some(Duration::ZERO),
            };
            let arrival = match extra {
                Some(extra) if !lost_on_channel => {
                    let mut a = p.send + self.config.base_delay + jitter + extra;
                    if self.config.fifo {
                        a = a.max(latest);
                        latest = a;
                    }
                    Some(a)
                }
                _ => None,
            };
            out.push(Delivery {
                seq: p.seq,
                send: p.send,
                arrival,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkSummary, voice_stream};

    #[test]
    fn invalid_parameters_are_rejected() {
        let bad_ge = SyntheticConfig {
            loss: Some(GilbertElliott {
                p_good_to_bad: 1.5,
                p_bad_to_good: 0.5,
                loss_good: 0.0,
                loss_bad: 1.0,
            }),
            ..SyntheticConfig::default()
        };
        assert!(SyntheticLink::new(bad_ge).is_err());
        let bad_pareto = SyntheticConfig {
            jitter: Some(Jitter::Pareto {
                scale: Duration::from_millis(5),
                shape: 0.0,
            }),
            ..SyntheticConfig::default()
        };
        assert!(SyntheticLink::new(bad_pareto).is_err());
        let endless = SyntheticConfig {
            base_delay: Duration::MAX,
            ..SyntheticConfig::default()
        };
        assert!(SyntheticLink::new(endless).is_err());
    }

    #[test]
    fn handover_outage_buffers_then_decays() {
        let mut link = SyntheticLink::new(SyntheticConfig {
            base_delay: Duration::from_millis(10),
            handover: Some(Handover {
                mean_interval: Duration::from_secs(5),
                outage: Duration::from_millis(500),
                spike: Duration::from_millis(100),
                recovery: Duration::from_millis(1000),
                drop_during_outage: false,
            }),
            seed: 9,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let out = link
            .run(&voice_stream(3000, Duration::from_millis(20), 100))
            .unwrap();
        let s = LinkSummary::of(&out);
        assert_eq!(s.lost, 0);
        assert_eq!(s.reordered, 0);
        // The worst packet is the first one of an outage: it waits the
        // whole outage (to within one packet interval) plus the spike.
        assert!(
            s.max_delay <= Duration::from_millis(610),
            "{:?}",
            s.max_delay
        );
        assert!(
            s.max_delay >= Duration::from_millis(590),
            "{:?}",
            s.max_delay
        );
        // Packets in outages all leave together at its end (+ spike).
        let burst = out
            .windows(2)
            .filter(|w| w[0].arrival == w[1].arrival)
            .count();
        assert!(burst > 20, "{burst}");
    }
}
