//! Two links in series, e.g. a capacity trace followed by burst loss.

use super::{Delivery, Link, LinkError, SentPacket};

/// Packets cross `first`, then enter `second` at the time they left
/// `first`; a packet lost on either is lost. Delays add up.
#[derive(Debug, Clone)]
pub struct Series<A, B> {
    first: A,
    second: B,
}

impl<A: Link, B: Link> Series<A, B> {
    /// `first`, then `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Link, B: Link> Link for Series<A, B> {
    fn run(&mut self, packets: &[SentPacket]) -> Result<Vec<Delivery>, LinkError> {
        let mut out = self.first.run(packets)?;
        // Survivors, in the order they reach the second link.
        let mut hop: Vec<(usize, SentPacket)> = out
            .iter()
            .zip(packets)
            .enumerate()
            .filter_map(|(i, (d, p))| d.arrival.map(|send| (i, SentPacket { send, ..*p })))
            .collect();
        hop.sort_by_key(|(_, p)| p.send);
        let sent: Vec<SentPacket> = hop.iter().map(|(_, p)| *p).collect();
        let second = self.second.run(&sent)?;
        for ((i, _), d) in hop.iter().zip(second) {
            out[*i].arrival = d.arrival;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::link::synthetic::{GilbertElliott, Jitter, SyntheticConfig, SyntheticLink};
    use crate::link::{LinkSummary, voice_stream};

    #[test]
    fn delays_add_and_losses_accumulate() {
        let ms = Duration::from_millis;
        let lossy = |seed| {
            SyntheticLink::new(SyntheticConfig {
                base_delay: ms(10),
                loss: Some(GilbertElliott {
                    p_good_to_bad: 0.1,
                    p_bad_to_good: 0.5,
                    loss_good: 0.0,
                    loss_bad: 1.0,
                }),
                seed,
                ..SyntheticConfig::default()
            })
            .unwrap()
        };
        let jittery = SyntheticLink::new(SyntheticConfig {
            base_delay: ms(30),
            jitter: Some(Jitter::LogNormal {
                median: ms(5),
                sigma: 0.5,
            }),
            fifo: false,
            seed: 4,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let stream = voice_stream(5000, ms(20), 100);
        let first = lossy(1).run(&stream).unwrap();
        let both = Series::new(lossy(1), jittery).run(&stream).unwrap();
        let two_losses = Series::new(lossy(1), lossy(2)).run(&stream).unwrap();
        for ((a, b), c) in first.iter().zip(&both).zip(&two_losses) {
            assert_eq!(a.arrival.is_none(), b.arrival.is_none());
            if let (Some(x), Some(y)) = (a.arrival, b.arrival) {
                assert!(y >= x + ms(30));
            }
            assert!(a.arrival.is_some() || c.arrival.is_none());
        }
        let (l1, l2) = (
            LinkSummary::of(&first).lost,
            LinkSummary::of(&two_losses).lost,
        );
        assert!(l2 > l1 + l1 / 2, "{l1} then {l2}");
    }
}
