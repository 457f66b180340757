//! The receiving end of RFC 4585 generic NACK: which packets of a stream
//! are missing, and when to ask the sender for them (again).
//!
//! A packet is missing from the moment a later one arrives. It is asked for
//! at once (the video pacer keeps a stream's packets in order, so a gap is
//! a loss far more often than a reordering), then again every round trip
//! and a little ([`RETRY_MARGIN`]) while it does not come, up to
//! [`MAX_REQUESTS`] times, and forgotten once it has been missing for the
//! give-up time: the frame assembler has stopped waiting for it by then
//! (the call sets both from [`recovery_wait`]). A jump of more than
//! [`MAX_GAP`] packets, or a packet far behind, is a sender that restarted
//! its numbering: nothing is asked for, and a key frame heals it instead.
//!
//! Sans-IO: packets in with [`NackRequester::on_packet`], requests out with
//! [`NackRequester::take_due`] at [`NackRequester::poll_timeout`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Round-trip time assumed until the RTCP reports measure one (libwebrtc
/// assumes the same).
pub const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// A packet is asked for again this long after a round trip: its
/// retransmission may still be on the way.
pub const RETRY_MARGIN: Duration = Duration::from_millis(20);
/// Most requests for one packet (libwebrtc's `kMaxNackRetries`).
pub const MAX_REQUESTS: u32 = 10;
/// Most packets tracked as missing; beyond it the oldest are forgotten.
/// More than a second of video at its highest bitrate.
pub const MAX_MISSING: usize = 512;
/// A forward jump of more than this many packets is not a loss but a
/// restart of the numbering; so is a packet this far behind the highest.
pub const MAX_GAP: u64 = 1_000;

/// How long a receiver waits for a missing video packet before it gives the
/// frame up (and asks for a key frame): a request and its retransmission,
/// and a second try, at `rtt` ([`DEFAULT_RTT`] before one is measured);
/// never under 200 ms (the wait without NACK, for reordering) nor over a
/// second (a picture frozen longer is worse than a key frame's cost).
pub fn recovery_wait(rtt: Option<Duration>) -> Duration {
    let rtt = rtt.unwrap_or(DEFAULT_RTT);
    (rtt * 2 + RETRY_MARGIN * 2 + Duration::from_millis(10))
        .clamp(Duration::from_millis(200), Duration::from_secs(1))
}

/// What an arriving packet was to the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The newest so far, or the first.
    New,
    /// One that was missing and had not been asked for yet (reordered).
    Reordered,
    /// One that was missing and asked for: a retransmission (or a packet
    /// that was only late). It does not count as received in the RTCP
    /// loss reports, which are about the network, not the repair.
    Recovered,
    /// Behind the newest but not missing: a duplicate, or given up.
    Old,
    /// The numbering started over: what was missing is forgotten.
    Restart,
}

/// Counters of a [`NackRequester`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackStats {
    /// NACK requests made, one per [`NackRequester::take_due`] that
    /// returned packets (W3C `nackCount` counts NACK packets sent).
    pub requests: u64,
    /// Packet requests in them, repeats included.
    pub packets_requested: u64,
    /// Missing packets that arrived after being asked for.
    pub recovered: u64,
    /// Missing packets forgotten: given up, out of room or after a restart.
    pub given_up: u64,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    /// When it was found missing.
    since: Instant,
    /// Requests made for it.
    requests: u32,
    /// When it is asked for next.
    next: Instant,
}

/// Tracks the missing packets of one stream and when to ask for them.
#[derive(Debug, Clone)]
pub struct NackRequester {
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
    give_up_after: Duration,
    stats: NackStats,
}

impl Default for NackRequester {
    fn default() -> Self {
        Self::new()
    }
}

impl NackRequester {
    /// A requester giving packets up after `recovery_wait(None)`.
    pub fn new() -> Self {
        Self {
            highest: None,
            missing: BTreeMap::new(),
            give_up_after: recovery_wait(None),
            stats: NackStats::default(),
        }
    }

    /// Forgets a missing packet once it has been missing for `wait`.
    pub fn set_give_up_after(&mut self, wait: Duration) {
        self.give_up_after = wait;
    }

    /// Takes the sequence number of a packet that arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, seq: u16) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some((1 << 32) + u64::from(seq));
            return Arrival::New;
        };
        // The nearest number with these low 16 bits, either side.
        let ext = highest.wrapping_add_signed(i64::from(seq.wrapping_sub(highest as u16) as i16));
        if ext > highest + MAX_GAP || ext + MAX_GAP < highest {
            self.restart(ext);
            return Arrival::Restart;
        }
        if ext <= highest {
            return match self.missing.remove(&ext) {
                Some(m) if m.requests > 0 => {
                    self.stats.recovered += 1;
                    Arrival::Recovered
                }
                Some(_) => Arrival::Reordered,
                None => Arrival::Old,
            };
        }
        for lost in highest + 1..ext {
            self.missing.insert(
                lost,
                Missing {
                    since: now,
                    requests: 0,
                    next: now,
                },
            );
        }
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
            self.stats.given_up += 1;
        }
        self.highest = Some(ext);
        Arrival::New
    }

    fn restart(&mut self, ext: u64) {
        self.stats.given_up += self.missing.len() as u64;
        self.missing.clear();
        self.highest = Some(ext);
    }

    /// The packets to ask for at `now` (empty when none is due), with the
    /// round-trip time `rtt` measured so far; forgets those missing for
    /// longer than the give-up time or asked for [`MAX_REQUESTS`] times.
    pub fn take_due(&mut self, now: Instant, rtt: Option<Duration>) -> Vec<u16> {
        let give_up = self.give_up_after;
        let before = self.missing.len();
        self.missing.retain(|_, m| {
            now.saturating_duration_since(m.since) < give_up
                && (m.requests < MAX_REQUESTS || m.next > now)
        });
        self.stats.given_up += (before - self.missing.len()) as u64;
        let retry = rtt.unwrap_or(DEFAULT_RTT) + RETRY_MARGIN;
        let mut due = Vec::new();
        for (ext, m) in &mut self.missing {
            if m.next <= now && m.requests < MAX_REQUESTS {
                m.requests += 1;
                m.next = now + retry;
                due.push(*ext as u16);
            }
        }
        if !due.is_empty() {
            self.stats.requests += 1;
            self.stats.packets_requested += due.len() as u64;
        }
        due
    }

    /// When [`take_due`](Self::take_due) next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.missing
            .values()
            // The next request, or when an exhausted one is forgotten.
            .map(|m| m.next.min(m.since + self.give_up_after))
            .min()
    }

    /// Packets missing now.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> NackStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_gap_is_asked_for_at_once_then_every_round_trip() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        assert_eq!(n.on_packet(t0, 65_534), Arrival::New);
        // 65 535 and 0 lost across the wrap.
        assert_eq!(n.on_packet(t0, 1), Arrival::New);
        assert_eq!(n.poll_timeout(), Some(t0));
        let rtt = Some(60 * MS);
        assert_eq!(n.take_due(t0, rtt), vec![65_535, 0]);
        assert_eq!(n.take_due(t0 + 79 * MS, rtt), Vec::<u16>::new());
        assert_eq!(n.poll_timeout(), Some(t0 + 80 * MS));
        assert_eq!(n.take_due(t0 + 80 * MS, rtt), vec![65_535, 0]);
        // The retransmission of one comes; the other is still asked for.
        assert_eq!(n.on_packet(t0 + 90 * MS, 0), Arrival::Recovered);
        assert_eq!(n.on_packet(t0 + 91 * MS, 0), Arrival::Old, "a duplicate");
        assert_eq!(n.take_due(t0 + 160 * MS, rtt), vec![65_535]);
        let s = n.stats();
        assert_eq!((s.requests, s.packets_requested, s.recovered), (3, 5, 1));
    }

    #[test]
    fn a_packet_is_forgotten_after_the_wait_or_the_last_request() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.set_give_up_after(300 * MS);
        n.on_packet(t0, 10);
        n.on_packet(t0, 12);
        assert_eq!(n.take_due(t0, Some(10 * MS)), vec![11]);
        assert_eq!(n.take_due(t0 + 29 * MS, None), Vec::<u16>::new());
        assert_eq!(n.take_due(t0 + 30 * MS, Some(500 * MS)), vec![11]);
        // Its next request would come after the wait is over.
        assert_eq!(n.poll_timeout(), Some(t0 + 300 * MS));
        assert_eq!(n.take_due(t0 + 300 * MS, None), Vec::<u16>::new());
        assert_eq!((n.missing(), n.stats().given_up), (0, 1));
        assert_eq!(n.on_packet(t0 + 301 * MS, 11), Arrival::Old);

        // With a short round trip, the requests run out first.
        n.set_give_up_after(Duration::from_secs(10));
        n.on_packet(t0, 14);
        let mut asked = 0;
        let mut t = t0;
        while let Some(at) = n.poll_timeout() {
            t = at;
            asked += n.take_due(t, Some(MS)).len();
        }
        assert_eq!(asked, MAX_REQUESTS as usize);
        assert!(t < t0 + Duration::from_secs(1), "{:?}", t - t0);
    }

    #[test]
    fn a_reordered_packet_is_not_a_recovery_and_a_jump_is_a_restart() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.on_packet(t0, 100);
        n.on_packet(t0, 102);
        assert_eq!(n.on_packet(t0, 101), Arrival::Reordered);
        assert_eq!(n.take_due(t0, None), Vec::<u16>::new());
        n.on_packet(t0, 110);
        assert_eq!(n.missing(), 7);
        assert_eq!(n.on_packet(t0, 110 + 5_000), Arrival::Restart);
        assert_eq!(n.missing(), 0, "nothing asked for over a restart");
        assert_eq!(n.on_packet(t0, 5_111), Arrival::New);
        assert_eq!(n.take_due(t0, None), Vec::<u16>::new());
    }

    #[test]
    fn the_wait_follows_the_round_trip_within_bounds() {
        assert_eq!(recovery_wait(None), 250 * MS);
        assert_eq!(recovery_wait(Some(10 * MS)), 200 * MS);
        assert_eq!(recovery_wait(Some(300 * MS)), 650 * MS);
        assert_eq!(recovery_wait(Some(Duration::from_secs(2))), 1_000 * MS);
    }

    proptest! {
        #[test]
        fn any_arrivals_keep_it_bounded_and_every_request_missing(
            seqs in proptest::collection::vec((any::<u16>(), 0u64..50), 1..400),
            jumps in proptest::collection::vec(0u16..600, 1..400),
        ) {
            let t0 = Instant::now();
            let mut n = NackRequester::new();
            let mut t = t0;
            let mut seq = 0u16;
            for (i, (raw, dt)) in seqs.iter().enumerate() {
                t += Duration::from_millis(*dt);
                // Mostly a stream moving forward with gaps, now and then anything.
                seq = if raw % 7 == 0 { *raw } else { seq.wrapping_add(jumps[i % jumps.len()]) };
                n.on_packet(t, seq);
                let newest = n.highest.unwrap() as u16;
                for asked in n.take_due(t, Some(Duration::from_millis(*dt))) {
                    // What is asked for is behind the newest packet.
                    prop_assert!(newest.wrapping_sub(asked) as i16 > 0);
                }
                prop_assert!(n.missing() <= MAX_MISSING);
                if let Some(at) = n.poll_timeout() {
                    prop_assert!(at >= t0);
                }
            }
        }
    }
}
