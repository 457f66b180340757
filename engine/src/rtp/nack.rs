//! The receiving end of RFC 4585 generic NACK: which packets of a stream
//! are missing, and when to ask the sender for them (again).
//!
//! A packet is missing from the moment a later one arrives. It is asked for
//! after [`REORDER_WAIT`] (a reordered packet comes within it), then again
//! every round trip and a little ([`RETRY_MARGIN`]) while it does not come,
//! up to [`MAX_REQUESTS`] times, and forgotten once it has been missing for
//! the give-up time (the call sets it, like the frame assembler's wait, from
//! [`recovery_wait`]) with no retransmission coming meanwhile (the sender
//! paces a burst of them over hundreds of ms: while they come, the rest are
//! on their way), or once the assembler has given its place up
//! ([`NackRequester::forget_through`]). Requests due within
//! [`MIN_NACK_INTERVAL`] of each other go in one NACK. A jump of more than
//! [`MAX_MISSING`] packets is a loss too large to repair this way (a key
//! frame heals it) or a sender that restarted its numbering: nothing is
//! asked for. So is a packet more than [`MAX_BEHIND`] behind the newest.
//!
//! Sans-IO: packets in with [`NackRequester::on_packet`], requests out with
//! [`NackRequester::take_due`] at [`NackRequester::poll_timeout`].
//!
//! Missing packets are kept as runs of consecutive numbers found missing
//! together, which are asked for together: a packet costs the same whatever
//! gap it opens (a sender jumping ahead every packet cannot make each one
//! cost hundreds of insertions), and one arriving inside a run splits it.

use super::extend_seq;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Round-trip time assumed until the RTCP reports measure one (libwebrtc
/// assumes the same).
pub const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// A missing packet is first asked for this long after the gap showed:
/// a packet reordered on the way arrives within it.
pub const REORDER_WAIT: Duration = Duration::from_millis(10);
/// A packet is asked for again this long after a round trip: its
/// retransmission may still be on the way.
pub const RETRY_MARGIN: Duration = Duration::from_millis(20);
/// Least time between two NACKs: requests due in between wait and go
/// together (RFC 4585 §3.5 limits feedback; a burst of loss is one NACK).
pub const MIN_NACK_INTERVAL: Duration = Duration::from_millis(10);
/// Most requests for one packet (libwebrtc's `kMaxNackRetries`).
pub const MAX_REQUESTS: u32 = 10;
/// Most packets tracked as missing, and the largest gap asked for: over a
/// second of video at 4 Mbit/s in 1 100-byte packets. A larger loss is
/// cheaper to heal with a key frame.
pub const MAX_MISSING: usize = 512;
/// A packet this far behind the newest means the sender restarted its
/// numbering. Twice the largest SRTP window a call opens, so that no late
/// packet SRTP takes is mistaken for it.
pub const MAX_BEHIND: u64 = 8_192;

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
    /// One that was missing and not asked for, or asked for less than half
    /// a round trip before: reordered on the way, not sent again.
    Reordered,
    /// One that was missing and asked for at least half a round trip
    /// before: a retransmission. It does not count as received in the RTCP
    /// loss reports, which are about the network, not the repair.
    Recovered,
    /// Behind the newest but not missing: a duplicate, or given up.
    Old,
    /// A gap too large to ask for, or numbering that started over: what
    /// was missing is forgotten.
    Restart,
}

/// Counters of a [`NackRequester`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackStats {
    /// Requests made: [`NackRequester::take_due`] calls that returned packets.
    pub requests: u64,
    /// Packet requests in them, repeats included.
    pub packets_requested: u64,
    /// Missing packets that arrived as retransmissions ([`Arrival::Recovered`]).
    pub recovered: u64,
    /// Missing packets forgotten: given up, out of room or after a restart.
    pub given_up: u64,
}

/// A run of missing packets sharing their state: found missing together,
/// so asked for and forgotten together. Keyed by its first extended
/// sequence number; never empty.
#[derive(Debug, Clone, Copy)]
struct Missing {
    /// Its last extended sequence number.
    last: u64,
    /// When it was found missing.
    since: Instant,
    /// When it was first asked for.
    first_asked: Option<Instant>,
    /// When it was last asked for: the runs of one NACK share it.
    last_asked: Option<Instant>,
    /// When the latest retransmission a NACK of it asked for came.
    progress: Option<Instant>,
    /// Requests made for it.
    requests: u32,
    /// When it is asked for next.
    next: Instant,
}

impl Missing {
    /// Since when it counts as waited for: since it was found missing, or
    /// since the latest retransmission its last NACK asked for came, if
    /// later (the sender paces a NACK's packets out over hundreds of ms:
    /// while they come, the rest are on their way).
    fn waiting_since(&self) -> Instant {
        self.progress.map_or(self.since, |p| p.max(self.since))
    }

    /// Packets in the run that starts at `first`.
    fn len(&self, first: u64) -> usize {
        (self.last - first + 1) as usize
    }
}

/// Tracks the missing packets of one stream and when to ask for them.
#[derive(Debug, Clone)]
pub struct NackRequester {
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Runs of missing packets by their first extended sequence number.
    missing: BTreeMap<u64, Missing>,
    /// Packets in the runs.
    count: usize,
    give_up_after: Duration,
    /// The round-trip time of the last requests.
    rtt: Duration,
    last_request: Option<Instant>,
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
            count: 0,
            give_up_after: recovery_wait(None),
            rtt: DEFAULT_RTT,
            last_request: None,
            stats: NackStats::default(),
        }
    }

    /// Forgets a missing packet once it has been missing for `wait`, and
    /// no retransmission has come for as long.
    pub fn set_give_up_after(&mut self, wait: Duration) {
        self.give_up_after = wait;
    }

    /// Takes the sequence number of a packet that arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, seq: u16) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some((1 << 32) + u64::from(seq));
            return Arrival::New;
        };
        let ext = extend_seq(highest, seq);
        if ext > highest + MAX_MISSING as u64 || ext + MAX_BEHIND < highest {
            self.stats.given_up += self.count as u64;
            self.missing.clear();
            self.count = 0;
            self.highest = Some(ext);
            return Arrival::Restart;
        }
        if ext <= highest {
            let half_rtt = self.rtt / 2;
            let retransmitted = |m: &Missing| {
                m.first_asked
                    .is_some_and(|t| now.saturating_duration_since(t) >= half_rtt)
            };
            return match self.remove(ext) {
                Some(m) if retransmitted(&m) => {
                    self.stats.recovered += 1;
                    // The rest of its NACK is on its way.
                    for run in self.missing.values_mut() {
                        if run.last_asked == m.last_asked {
                            run.progress = Some(now);
                        }
                    }
                    Arrival::Recovered
                }
                Some(_) => Arrival::Reordered,
                None => Arrival::Old,
            };
        }
        if ext > highest + 1 {
            let run = Missing {
                last: ext - 1,
                since: now,
                first_asked: None,
                last_asked: None,
                progress: None,
                requests: 0,
                next: now + REORDER_WAIT,
            };
            self.missing.insert(highest + 1, run);
            self.count += (ext - highest - 1) as usize;
        }
        // Out of room: the oldest go, whole runs or the front of one.
        while self.count > MAX_MISSING
            && let Some((first, run)) = self.missing.pop_first()
        {
            let dropped = run.len(first).min(self.count - MAX_MISSING);
            if dropped < run.len(first) {
                self.missing.insert(first + dropped as u64, run);
            }
            self.count -= dropped;
            self.stats.given_up += dropped as u64;
        }
        self.highest = Some(ext);
        Arrival::New
    }

    /// Takes `ext` out of the run that holds it, if one does: the state it
    /// was missing with.
    fn remove(&mut self, ext: u64) -> Option<Missing> {
        let (&first, run) = self.missing.range_mut(..=ext).next_back()?;
        if run.last < ext {
            return None;
        }
        let found = *run;
        if first < ext {
            run.last = ext - 1;
        } else {
            self.missing.remove(&first);
        }
        if ext < found.last {
            self.missing.insert(ext + 1, found);
        }
        self.count -= 1;
        Some(found)
    }

    /// Forgets the missing packets up to `seq` and before it: the frame
    /// assembler has given their places up (a key frame went past them).
    pub fn forget_through(&mut self, seq: u16) {
        let Some(highest) = self.highest else {
            return;
        };
        let through = extend_seq(highest, seq);
        // Called for every packet: usually nothing missing is that old.
        if self
            .missing
            .first_key_value()
            .is_none_or(|(first, _)| *first > through)
        {
            return;
        }
        let mut keep = self.missing.split_off(&(through + 1));
        // The last run left may reach past `through`: its tail stays.
        if let Some(mut run) = self.missing.last_entry()
            && run.get().last > through
        {
            keep.insert(through + 1, *run.get());
            run.get_mut().last = through;
        }
        let forgotten: usize = self.missing.iter().map(|(&f, run)| run.len(f)).sum();
        self.count -= forgotten;
        self.stats.given_up += forgotten as u64;
        self.missing = keep;
    }

    /// The packets to ask for at `now` (empty when none is due), with the
    /// round-trip time `rtt` measured so far; forgets those missing for
    /// longer than the give-up time or asked for [`MAX_REQUESTS`] times.
    pub fn take_due(&mut self, now: Instant, rtt: Option<Duration>) -> Vec<u16> {
        self.rtt = rtt.unwrap_or(DEFAULT_RTT);
        let give_up = self.give_up_after;
        let mut forgotten = 0;
        self.missing.retain(|&first, m| {
            let keep = now.saturating_duration_since(m.waiting_since()) < give_up
                && (m.requests < MAX_REQUESTS || m.next > now);
            if !keep {
                forgotten += m.len(first);
            }
            keep
        });
        self.count -= forgotten;
        self.stats.given_up += forgotten as u64;
        if self
            .last_request
            .is_some_and(|t| now < t + MIN_NACK_INTERVAL)
        {
            return Vec::new();
        }
        let retry = self.rtt + RETRY_MARGIN;
        let mut due = Vec::new();
        for (&first, m) in &mut self.missing {
            if m.next <= now && m.requests < MAX_REQUESTS {
                m.requests += 1;
                m.first_asked.get_or_insert(now);
                m.last_asked = Some(now);
                m.next = now + retry;
                due.extend((first..=m.last).map(|ext| ext as u16));
            }
        }
        if !due.is_empty() {
            self.last_request = Some(now);
            self.stats.requests += 1;
            self.stats.packets_requested += due.len() as u64;
        }
        due
    }

    /// When [`take_due`](Self::take_due) next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let quiet_until = self.last_request.map(|t| t + MIN_NACK_INTERVAL);
        self.missing
            .values()
            .map(|m| {
                let forget = m.waiting_since() + self.give_up_after;
                // The next request, no sooner than the NACK interval allows;
                // or when the packet is forgotten.
                let ask = quiet_until.map_or(m.next, |q| m.next.max(q));
                if m.requests < MAX_REQUESTS {
                    ask.min(forget)
                } else {
                    m.next.min(forget)
                }
            })
            .min()
    }

    /// Packets missing now.
    pub fn missing(&self) -> usize {
        self.count
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
    const NONE: Vec<u16> = Vec::new();

    #[test]
    fn a_gap_is_asked_for_after_the_reorder_wait_then_every_round_trip() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        assert_eq!(n.on_packet(t0, 65_534), Arrival::New);
        // 65 535 and 0 lost across the wrap.
        assert_eq!(n.on_packet(t0, 1), Arrival::New);
        let rtt = Some(60 * MS);
        assert_eq!(n.poll_timeout(), Some(t0 + REORDER_WAIT));
        assert_eq!(n.take_due(t0 + 9 * MS, rtt), NONE);
        let t1 = t0 + REORDER_WAIT;
        assert_eq!(n.take_due(t1, rtt), vec![65_535, 0]);
        assert_eq!(n.take_due(t1 + 79 * MS, rtt), NONE);
        assert_eq!(n.poll_timeout(), Some(t1 + 80 * MS));
        assert_eq!(n.take_due(t1 + 80 * MS, rtt), vec![65_535, 0]);
        // The retransmission of one comes; the other is still asked for.
        assert_eq!(n.on_packet(t1 + 90 * MS, 0), Arrival::Recovered);
        assert_eq!(n.on_packet(t1 + 91 * MS, 0), Arrival::Old, "a duplicate");
        assert_eq!(n.take_due(t1 + 160 * MS, rtt), vec![65_535]);
        let s = n.stats();
        assert_eq!((s.requests, s.packets_requested, s.recovered), (3, 5, 1));
    }

    #[test]
    fn requests_close_together_go_in_one_nack() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.on_packet(t0, 1);
        n.on_packet(t0, 3);
        assert_eq!(n.take_due(t0 + REORDER_WAIT, None), vec![2]);
        // Two more gaps shortly after: both wait for the interval to pass.
        n.on_packet(t0 + 12 * MS, 5);
        n.on_packet(t0 + 15 * MS, 7);
        assert_eq!(n.take_due(t0 + 22 * MS, None), vec![4]);
        assert_eq!(n.poll_timeout(), Some(t0 + 32 * MS));
        assert_eq!(n.take_due(t0 + 31 * MS, None), NONE);
        assert_eq!(n.take_due(t0 + 32 * MS, None), vec![6]);
    }

    #[test]
    fn a_packet_is_forgotten_after_the_wait_or_the_last_request() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.set_give_up_after(300 * MS);
        n.on_packet(t0, 10);
        n.on_packet(t0, 12);
        let t1 = t0 + REORDER_WAIT;
        assert_eq!(n.take_due(t1, Some(10 * MS)), vec![11]);
        assert_eq!(n.take_due(t1 + 29 * MS, None), NONE);
        assert_eq!(n.take_due(t1 + 30 * MS, Some(500 * MS)), vec![11]);
        // Its next request would come after the wait is over.
        assert_eq!(n.poll_timeout(), Some(t0 + 300 * MS));
        assert_eq!(n.take_due(t0 + 300 * MS, None), NONE);
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
    fn a_reordered_packet_is_not_a_recovery() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.on_packet(t0, 100);
        n.on_packet(t0, 102);
        assert_eq!(n.on_packet(t0 + 5 * MS, 101), Arrival::Reordered);
        assert_eq!(n.take_due(t0 + REORDER_WAIT, None), NONE);
        // Asked for, but back sooner than a retransmission could be.
        n.on_packet(t0, 104);
        let t1 = t0 + REORDER_WAIT;
        assert_eq!(n.take_due(t1, Some(80 * MS)), vec![103]);
        assert_eq!(n.on_packet(t1 + 39 * MS, 103), Arrival::Reordered);
        assert_eq!(n.stats().recovered, 0);
    }

    #[test]
    fn a_jump_a_restart_or_a_key_frame_ends_the_requests() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        n.on_packet(t0, 100);
        n.on_packet(t0, 110);
        assert_eq!(n.missing(), 9);
        // Too large a gap to repair packet by packet.
        assert_eq!(
            n.on_packet(t0, 110 + MAX_MISSING as u16 + 1),
            Arrival::Restart
        );
        assert_eq!(n.missing(), 0);
        assert_eq!(n.on_packet(t0, 700), Arrival::New);
        // Far behind: the sender started over.
        assert_eq!(
            n.on_packet(t0, 700u16.wrapping_sub(9_000)),
            Arrival::Restart
        );
        assert_eq!(n.take_due(t0 + REORDER_WAIT, None), NONE);
        // The assembler gave up up to 1 005 (a key frame started at 1 006).
        n.on_packet(t0, 1_000);
        n.on_packet(t0, 1_010);
        n.forget_through(1_005);
        assert_eq!(
            n.take_due(t0 + REORDER_WAIT, None),
            vec![1_006, 1_007, 1_008, 1_009]
        );
    }

    /// While the packets a NACK asked for keep coming (the sender paces
    /// them out over hundreds of ms), the rest of that NACK is not given up;
    /// a run asked for in another NACK, whose packets never come, is given
    /// up on time meanwhile; and once they stop coming, the rest is given
    /// up the give-up time after the last one came.
    #[test]
    fn a_nack_being_answered_is_not_given_up_but_the_others_are() {
        let t0 = Instant::now();
        let rtt = Some(60 * MS);
        let mut n = NackRequester::new();
        n.set_give_up_after(200 * MS);
        n.on_packet(t0, 0);
        n.on_packet(t0, 31);
        let t1 = t0 + REORDER_WAIT;
        assert_eq!(n.take_due(t1, rtt), (1..=30).collect::<Vec<u16>>());
        // 32..=49, in a NACK of their own, are never sent again.
        n.on_packet(t1 + 5 * MS, 50);
        assert_eq!(
            n.take_due(t1 + 20 * MS, rtt),
            (32..=49).collect::<Vec<u16>>()
        );
        // 1..=25 come one every 10 ms from a round trip on; 26..=30 never.
        let mut t = t1 + 60 * MS;
        for seq in 1..=25 {
            assert_eq!(n.on_packet(t, seq), Arrival::Recovered, "{seq}");
            n.take_due(t, rtt);
            t += 10 * MS;
        }
        let last = t - 10 * MS;
        assert_eq!(n.stats().given_up, 18, "32..=49 went on time");
        assert_eq!(n.missing(), 5);
        n.take_due(last + 199 * MS, rtt);
        assert_eq!(n.missing(), 5);
        n.take_due(last + 200 * MS, rtt);
        assert_eq!((n.missing(), n.stats().given_up), (0, 23));
    }

    /// A packet arriving inside a run of missing ones splits it, at either
    /// end, in the middle and across the wrap from 65 535 to 0; the rest
    /// keep the run's state, asked for together.
    #[test]
    fn a_packet_inside_a_run_splits_it() {
        let t0 = Instant::now();
        let rtt = Some(40 * MS);
        let mut n = NackRequester::new();
        n.on_packet(t0, 65_529);
        // 65 530 to 65 535 and 0 to 4 missing: one run.
        n.on_packet(t0, 5);
        assert_eq!((n.missing(), n.missing.len()), (11, 1));
        let t1 = t0 + REORDER_WAIT;
        let all: Vec<u16> = (65_530..=65_535).chain(0..=4).collect();
        assert_eq!(n.take_due(t1, rtt), all);
        let back = t1 + 20 * MS; // half a round trip: retransmissions
        assert_eq!(n.on_packet(back, 65_530), Arrival::Recovered, "first");
        assert_eq!(n.on_packet(back, 4), Arrival::Recovered, "last");
        assert_eq!((n.missing(), n.missing.len()), (9, 1));
        assert_eq!(n.on_packet(back, 0), Arrival::Recovered, "after the wrap");
        assert_eq!(n.on_packet(back, 65_535), Arrival::Recovered, "before it");
        assert_eq!(n.on_packet(back, 65_533), Arrival::Recovered, "middle");
        assert_eq!(n.on_packet(back, 65_533), Arrival::Old, "a duplicate");
        // 65 531-65 532, 65 534 and 1-3 are left, in three runs.
        assert_eq!((n.missing(), n.missing.len()), (6, 3));
        assert_eq!(n.stats().recovered, 5);
        let t2 = t1 + 60 * MS;
        assert_eq!(n.poll_timeout(), Some(t2));
        assert_eq!(n.take_due(t2, rtt), vec![65_531, 65_532, 65_534, 1, 2, 3]);
        // A key frame past 65 531 and 0: the runs are cut there.
        n.forget_through(65_531);
        n.forget_through(0);
        assert_eq!((n.missing(), n.missing.len()), (3, 1));
        assert_eq!(n.stats().given_up, 3);
        assert_eq!(n.take_due(t2 + 60 * MS, rtt), vec![1, 2, 3]);
        n.forget_through(2);
        assert_eq!(n.on_packet(t2 + 60 * MS, 3), Arrival::Recovered);
        assert_eq!((n.missing(), n.missing.len()), (0, 0));
    }

    /// A sender jumping ahead by almost the most asked for at every packet
    /// costs one run per packet, however many packets it leaves missing:
    /// the oldest goes, mostly or whole, to make room. What is left of it
    /// is asked for before the next packet comes.
    #[test]
    fn large_gaps_every_packet_stay_a_few_runs() {
        let t0 = Instant::now();
        let mut n = NackRequester::new();
        let jump = MAX_MISSING as u16 - 12;
        for i in 0..1_000u16 {
            let now = t0 + REORDER_WAIT * u32::from(i);
            assert_eq!(n.on_packet(now, i.wrapping_mul(jump)), Arrival::New);
            assert!(n.missing() <= MAX_MISSING);
            assert!(n.missing.len() <= 2, "{} runs", n.missing.len());
            n.take_due(now, None);
        }
        let s = n.stats();
        assert_eq!(s.given_up + n.missing() as u64, 999 * u64::from(jump - 1));
        assert!(s.packets_requested > 0);
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
            let mut asked = std::collections::HashMap::<u64, u32>::new();
            for (i, (raw, dt)) in seqs.iter().enumerate() {
                t += Duration::from_millis(*dt);
                // Mostly a stream moving forward with gaps, now and then anything.
                seq = if raw % 7 == 0 { *raw } else { seq.wrapping_add(jumps[i % jumps.len()]) };
                if n.on_packet(t, seq) == Arrival::Restart {
                    asked.clear();
                }
                let newest = n.highest.unwrap();
                for a in n.take_due(t, Some(Duration::from_millis(*dt))) {
                    // What is asked for is behind the newest packet, and
                    // asked for at most MAX_REQUESTS times.
                    let ext = extend_seq(newest, a);
                    prop_assert!(ext < newest);
                    let count = asked.entry(ext).or_default();
                    *count += 1;
                    prop_assert!(*count <= MAX_REQUESTS);
                }
                prop_assert!(n.missing() <= MAX_MISSING);
                // Nothing left to do at `t`: no busy loop.
                prop_assert!(n.poll_timeout().is_none_or(|at| at > t));
            }
        }
    }
}
