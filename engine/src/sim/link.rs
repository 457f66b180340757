//! Per-direction network fate for the simulator, from a `sotto_jitter`
//! link model.
//!
//! The link models take a whole packet list at once. The simulator needs
//! each datagram's fate when it is sent, so a model is run once over a
//! nominal voice-rate stream (one small packet every [`SLOT`]), and a
//! datagram sent at time `t` takes the delay (or loss) of the slot `t`
//! falls in. The delay and loss pattern is then the trace's own; what is
//! approximated is only the queueing our exact packet sizes would cause.

use sotto_jitter::link::{Delivery, Link, LinkError, LinkSummary, voice_stream};
use std::time::Duration;

/// Time resolution of a schedule.
pub const SLOT: Duration = Duration::from_millis(10);
/// Size of the nominal packet per slot: about the bitrate of the audio
/// stream (24 kbit/s Opus in 20 ms SRTP packets over IPv4/UDP).
const SLOT_BYTES: u32 = 60;

/// Delay or loss per [`SLOT`], repeating after its end.
#[derive(Debug, Clone)]
pub struct LinkSchedule {
    delays: Vec<Option<Duration>>,
}

impl LinkSchedule {
    /// Runs `link` over `duration` of nominal traffic.
    pub fn from_link(link: &mut dyn Link, duration: Duration) -> Result<Self, LinkError> {
        let slots = (duration.as_millis() / SLOT.as_millis()).max(1) as u64;
        let deliveries = link.run(&voice_stream(slots, SLOT, SLOT_BYTES))?;
        Ok(Self::from_deliveries(&deliveries))
    }

    /// A schedule from deliveries of a stream with one packet per [`SLOT`].
    pub fn from_deliveries(deliveries: &[Delivery]) -> Self {
        let delays = deliveries.iter().map(Delivery::delay).collect::<Vec<_>>();
        if delays.is_empty() {
            return Self::fixed(Duration::ZERO);
        }
        Self { delays }
    }

    /// A lossless link with a constant delay.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            delays: vec![Some(delay)],
        }
    }

    /// A link with a constant `delay` that loses everything sent during
    /// `out`, over `length` (then repeating): a network outage.
    pub fn with_outage(delay: Duration, out: std::ops::Range<Duration>, length: Duration) -> Self {
        let slots = (length.as_nanos() / SLOT.as_nanos()).max(1) as u32;
        let delays = (0..slots)
            .map(|i| {
                let send = SLOT * i;
                (!out.contains(&send)).then_some(delay)
            })
            .collect();
        Self { delays }
    }

    /// The fate of a datagram sent `at` after the start: its one-way
    /// delay, or `None` when lost.
    pub fn delay_at(&self, at: Duration) -> Option<Duration> {
        let i = (at.as_nanos() / SLOT.as_nanos()) as usize % self.delays.len();
        self.delays[i]
    }

    /// Summary of the schedule (per slot).
    pub fn summary(&self) -> LinkSummary {
        let d: Vec<Delivery> = self
            .delays
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let send = SLOT * i as u32;
                Delivery {
                    seq: i as u64,
                    send,
                    arrival: d.map(|d| send + d),
                }
            })
            .collect();
        LinkSummary::of(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_jitter::link::synthetic::{GilbertElliott, SyntheticConfig, SyntheticLink};

    #[test]
    fn schedule_follows_the_model_and_repeats() {
        let mut link = SyntheticLink::new(SyntheticConfig {
            base_delay: Duration::from_millis(35),
            loss: Some(GilbertElliott {
                p_good_to_bad: 0.05,
                p_bad_to_good: 0.5,
                loss_good: 0.0,
                loss_bad: 1.0,
            }),
            seed: 3,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let s = LinkSchedule::from_link(&mut link, Duration::from_secs(10)).unwrap();
        let sum = s.summary();
        assert_eq!(sum.sent, 1000);
        assert!(sum.lost > 20 && sum.lost < 300, "{sum:?}");
        assert_eq!(sum.mean_delay, Duration::from_millis(35));
        // Same slot, same fate; the schedule wraps after 10 s.
        let t = Duration::from_millis(1234);
        assert_eq!(s.delay_at(t), s.delay_at(t + Duration::from_millis(5)));
        assert_eq!(s.delay_at(t), s.delay_at(t + Duration::from_secs(10)));
        assert_eq!(
            LinkSchedule::fixed(Duration::from_millis(7)).delay_at(Duration::from_secs(99)),
            Some(Duration::from_millis(7))
        );
    }
}
