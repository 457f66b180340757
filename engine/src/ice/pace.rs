//! Pacing of connectivity checks (RFC 8445 §6.1.4.2 and §14).
//!
//! `rtc-ice` 0.21.1 sends, on every `check_interval` tick, a new Binding
//! request on every pair still being checked (`ping_all_candidates` in
//! `agent/mod.rs`): a peer that names 32 candidates has 32 checks a tick
//! sent to addresses nothing vouches for, again for every fresh ufrag it
//! offers. RFC 8445 allows one new check per Ta (50 ms) in all, and a
//! transaction is retried no sooner than its RTO (§14.3: at least 500 ms).
//!
//! So the session holds the agent's Binding requests to a destination
//! (local address, remote address) that has not answered one lately, and
//! lets out at most one per Ta in all. Each destination keeps only the
//! latest request the agent made for it (the agent makes a new transaction
//! a tick, rather than retransmitting one; once the first round is out the
//! session runs the agent's timer only every [`RTO_MIN`], see
//! `IceSession::agent_timeout`), and sends again after an RTO
//! of `max(500 ms, Ta × destinations)`, doubled once, to at most
//! `max(1 s, Ta × destinations)`. The RTO stops doubling there, rather
//! than going on to RFC 8489's 8 s, so that a path that comes back while
//! the call has none is found within about a second; the agent stops
//! checking a pair after about 39.5 s, RFC 8489's transaction timeout (see
//! `IceSession::new`), so that is about 40 checks to a destination that
//! never answers. Answers, and checks to a destination that answered one
//! of ours lately (nominations, consent refreshes), go at once; so does a
//! triggered check (RFC 8445 §7.3.1.4), the agent's next request to a
//! destination that has just sent us an authenticated check: it is owed
//! like the answer, one per check received, so it adds nothing a peer could
//! not get from the answers, and holding it for Ta would cost every call
//! set-up a Ta.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Least retransmission timeout (RFC 8445 §14.3).
pub(super) const RTO_MIN: Duration = Duration::from_millis(500);
/// Most the timeout grows to while a destination has not answered.
const RTO_MAX: Duration = Duration::from_secs(1);
/// A held request older than this is dropped: the agent makes a new one
/// every tick while it checks the pair, and forgets its transactions after
/// 4 s (`MAX_BINDING_REQUEST_TIMEOUT`), so an older one means it stopped.
const HELD_FOR: Duration = Duration::from_secs(2);
/// A destination that answered one of our checks this recently is sent to
/// without pacing.
const VOUCHED_FOR: Duration = Duration::from_secs(5);
/// Destinations tracked: far more than a generation's pairs (32 remote
/// candidates, 8 peer-reflexive, times our few local addresses).
const MAX_DESTINATIONS: usize = 512;

struct Destination {
    local: SocketAddr,
    to: SocketAddr,
    /// The agent's latest request to it not sent yet, and when it was made.
    held: Option<(Vec<u8>, Instant)>,
    /// Requests sent to it in this generation.
    sent: u32,
    last_sent: Option<Instant>,
    /// Whether it sent us an authenticated check since our last request to
    /// it: the agent's answering check (a triggered check, RFC 8445
    /// §7.3.1.4) goes at once, without waiting for the RTO or the pace.
    triggered: bool,
    /// Not tried again before then (the relay had no permission for it yet).
    blocked_until: Option<Instant>,
    /// When it last answered one of our checks.
    answered: Option<Instant>,
}

/// Holds Binding requests to destinations that have not answered, and
/// lets them out one per Ta (see the module documentation).
pub(super) struct Pacer {
    ta: Duration,
    last_release: Option<Instant>,
    dests: Vec<Destination>,
}

impl Pacer {
    /// A pacer letting out one check per `ta`.
    pub(super) fn new(ta: Duration) -> Self {
        Self {
            ta,
            last_release: None,
            dests: Vec::new(),
        }
    }

    fn find(&self, local: SocketAddr, to: SocketAddr) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.local == local && d.to == to)
    }

    /// Whether a request to `to` from `local` may go at once: it answered
    /// one of ours lately.
    pub(super) fn vouched(&self, now: Instant, local: SocketAddr, to: SocketAddr) -> bool {
        self.find(local, to)
            .and_then(|i| self.dests[i].answered)
            .is_some_and(|t| now.saturating_duration_since(t) < VOUCHED_FOR)
    }

    /// `to` answered, on `local`, a check of ours.
    pub(super) fn answered(&mut self, now: Instant, local: SocketAddr, to: SocketAddr) {
        if let Some(i) = self.entry(local, to) {
            self.dests[i].answered = Some(now);
        }
    }

    /// `to` sent us, on `local`, an authenticated check.
    pub(super) fn triggered(&mut self, local: SocketAddr, to: SocketAddr) {
        if let Some(i) = self.entry(local, to) {
            self.dests[i].triggered = true;
        }
    }

    /// Holds the agent's request `data` to `to` from `local`, in place of
    /// any older one for it. Dropped when [`MAX_DESTINATIONS`] are tracked
    /// (the agent makes another on its next tick).
    pub(super) fn hold(&mut self, now: Instant, local: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if let Some(i) = self.entry(local, to) {
            self.dests[i].held = Some((data, now));
        }
    }

    fn entry(&mut self, local: SocketAddr, to: SocketAddr) -> Option<usize> {
        if let Some(i) = self.find(local, to) {
            return Some(i);
        }
        if self.dests.len() >= MAX_DESTINATIONS {
            return None;
        }
        self.dests.push(Destination {
            local,
            to,
            held: None,
            sent: 0,
            last_sent: None,
            triggered: false,
            blocked_until: None,
            answered: None,
        });
        Some(self.dests.len() - 1)
    }

    /// A new ICE generation: the agent forgot its transactions, and the
    /// checks start over. The pace in all goes on.
    pub(super) fn new_generation(&mut self) {
        self.dests.clear();
    }

    /// The wait after the `sent`-th request to a destination, with
    /// `active` destinations being checked.
    fn rto(&self, sent: u32, active: usize) -> Duration {
        let spread = self
            .ta
            .saturating_mul(u32::try_from(active).unwrap_or(u32::MAX));
        let backoff = RTO_MIN
            .saturating_mul(1u32 << sent.saturating_sub(1).min(8))
            .min(RTO_MAX);
        spread.max(backoff)
    }

    /// When the held request of `d` may go, the pace in all aside.
    fn due(&self, d: &Destination, active: usize) -> Option<Instant> {
        let (_, made) = d.held.as_ref()?;
        let mut at = *made;
        if let Some(t) = d.last_sent.filter(|_| !d.triggered) {
            at = at.max(t + self.rto(d.sent, active));
        }
        if let Some(t) = d.blocked_until {
            at = at.max(t);
        }
        // One that would be stale by then will not go.
        (at <= *made + HELD_FOR).then_some(at)
    }

    fn active(&self) -> usize {
        self.dests.iter().filter(|d| d.held.is_some()).count()
    }

    fn not_before(&self) -> Option<Instant> {
        self.last_release.map(|t| t + self.ta)
    }

    /// The next request that may go at `now`, if any: its index, local
    /// address, destination and bytes. The one sent least often first (new
    /// pairs before retries), then the one waiting longest. Confirm with
    /// [`Pacer::sent`] or [`Pacer::blocked`].
    pub(super) fn next(
        &mut self,
        now: Instant,
    ) -> Option<(usize, SocketAddr, SocketAddr, Vec<u8>)> {
        for d in &mut self.dests {
            if d.held
                .as_ref()
                .is_some_and(|(_, made)| *made + HELD_FOR < now)
            {
                d.held = None;
            }
        }
        let paced_ok = self.not_before().is_none_or(|t| t <= now);
        let active = self.active();
        let i = (0..self.dests.len())
            .filter(|&i| {
                let d = &self.dests[i];
                (paced_ok || d.triggered) && self.due(d, active).is_some_and(|t| t <= now)
            })
            .min_by_key(|&i| {
                let d = &self.dests[i];
                (!d.triggered, d.sent, d.last_sent)
            })?;
        let d = &self.dests[i];
        let (data, _) = d.held.as_ref()?;
        Some((i, d.local, d.to, data.clone()))
    }

    /// The request [`Pacer::next`] gave is on its way.
    pub(super) fn sent(&mut self, now: Instant, i: usize) {
        let d = &mut self.dests[i];
        let triggered = std::mem::take(&mut d.triggered);
        d.held = None;
        d.sent += 1;
        d.last_sent = Some(now);
        d.blocked_until = None;
        if !triggered {
            self.last_release = Some(now);
        }
    }

    /// The request [`Pacer::next`] gave could not leave yet (no relay
    /// permission): tried again after Ta, without using up the pace.
    pub(super) fn blocked(&mut self, now: Instant, i: usize) {
        self.dests[i].blocked_until = Some(now + self.ta);
    }

    /// When a held request may next go.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let active = self.active();
        self.dests
            .iter()
            .filter_map(|d| {
                let due = self.due(d, active)?;
                Some(match self.not_before().filter(|_| !d.triggered) {
                    Some(t) => due.max(t),
                    None => due,
                })
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Drains what may go at `now`, as the session does.
    fn release(p: &mut Pacer, now: Instant, out: &mut Vec<(Instant, SocketAddr)>) {
        while let Some((i, _, to, _)) = p.next(now) {
            p.sent(now, i);
            out.push((now, to));
        }
    }

    /// An agent that makes a request per destination every 50 ms, none
    /// answered: one goes per Ta in all, and each destination is retried
    /// after 500 ms, then every second (or Ta × destinations when longer).
    #[test]
    fn one_check_per_ta_and_retries_after_the_rto() {
        let t0 = Instant::now();
        let local = sa("192.0.2.1:1000");
        for n in [1u16, 4, 32] {
            let mut p = Pacer::new(Duration::from_millis(50));
            let mut out = Vec::new();
            let mut now = t0;
            while now < t0 + Duration::from_secs(10) {
                for k in 0..n {
                    let to = SocketAddr::new(sa("198.51.100.7:1").ip(), 6000 + k);
                    p.hold(now, local, to, vec![0, 1]);
                }
                release(&mut p, now, &mut out);
                now += Duration::from_millis(10);
            }
            for w in out.windows(2) {
                assert!(w[1].0 - w[0].0 >= Duration::from_millis(50), "n {n}: {w:?}");
            }
            let spread = Duration::from_millis(50) * u32::from(n);
            for k in 0..n {
                let to = SocketAddr::new(sa("198.51.100.7:1").ip(), 6000 + k);
                let at: Vec<Instant> = out.iter().filter(|o| o.1 == to).map(|o| o.0).collect();
                assert!(!at.is_empty(), "n {n}: never sent to {to}");
                for (j, w) in at.windows(2).enumerate() {
                    let rto = if j == 0 { 500 } else { 1000 };
                    let min = Duration::from_millis(rto).max(spread);
                    assert!(w[1] - w[0] >= min, "n {n}, {to}: {:?}", w[1] - w[0]);
                    assert!(w[1] - w[0] <= min + spread + Duration::from_millis(10));
                }
            }
        }
    }

    /// A destination that answered goes at once; a new generation starts
    /// the retries over, but not the pace in all.
    #[test]
    fn answered_destinations_are_not_held() {
        let now = Instant::now();
        let (local, to) = (sa("192.0.2.1:1000"), sa("198.51.100.7:6000"));
        let mut p = Pacer::new(Duration::from_millis(50));
        assert!(!p.vouched(now, local, to));
        p.answered(now, local, to);
        assert!(p.vouched(now + Duration::from_secs(4), local, to));
        assert!(!p.vouched(now + Duration::from_secs(6), local, to));
        p.hold(now, local, to, vec![0, 1]);
        let (i, ..) = p.next(now).unwrap();
        p.sent(now, i);
        p.new_generation();
        assert!(!p.vouched(now, local, to));
        p.hold(now, local, to, vec![0, 1]);
        assert!(p.next(now).is_none());
        assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(50)));
        assert!(p.next(now + Duration::from_millis(50)).is_some());
    }

    /// A check from the destination lets our next one go at once, without
    /// the RTO or the pace, and without using up the pace.
    #[test]
    fn a_check_from_the_destination_is_answered_by_a_check_at_once() {
        let now = Instant::now();
        let (local, to) = (sa("192.0.2.1:1000"), sa("198.51.100.7:6000"));
        let other = sa("198.51.100.8:6000");
        let mut p = Pacer::new(Duration::from_millis(50));
        p.hold(now, local, to, vec![0, 1]);
        let (i, ..) = p.next(now).unwrap();
        p.sent(now, i);
        p.hold(now, local, to, vec![0, 1]);
        p.hold(now, local, other, vec![0, 2]);
        p.triggered(local, to);
        assert_eq!(p.poll_timeout(), Some(now));
        let (i, _, dest, _) = p.next(now).unwrap();
        assert_eq!(dest, to, "the triggered check first");
        p.sent(now, i);
        // The pace in all is where the first check left it.
        assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(50)));
        assert!(p.next(now).is_none());
        // Once: the next to `to` waits for the RTO again.
        p.hold(now, local, to, vec![0, 1]);
        let (i, _, dest, _) = p.next(now + Duration::from_millis(50)).unwrap();
        assert_eq!(dest, other);
        p.sent(now + Duration::from_millis(50), i);
        assert_eq!(p.poll_timeout(), Some(now + Duration::from_secs(1)));
    }

    /// A request the agent stopped renewing is dropped, not sent late.
    #[test]
    fn stale_requests_are_dropped() {
        let now = Instant::now();
        let (local, to) = (sa("192.0.2.1:1000"), sa("198.51.100.7:6000"));
        let mut p = Pacer::new(Duration::from_millis(50));
        p.hold(now, local, to, vec![0, 1]);
        let (i, ..) = p.next(now).unwrap();
        p.sent(now, i);
        p.hold(now, local, to, vec![0, 1]);
        // Due after 500 ms, stale after 2 s: the timeout is the due time.
        assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(500)));
        assert!(p.next(now + HELD_FOR + Duration::from_millis(1)).is_none());
        assert_eq!(p.poll_timeout(), None);
    }
}
