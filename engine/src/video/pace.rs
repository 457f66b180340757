//! Spreads video packets out in time. An encoder hands over a whole frame
//! at once, and a key frame is tens of packets: sent back to back they
//! arrive as a burst that a mobile link's shallow queue drops, losing the
//! very frame that was to heal a loss. Like libwebrtc's pacer, packets
//! leave at a multiple of the encoder's bitrate ([`PACE_FACTOR`]), so a
//! frame goes out in a fraction of a frame interval on average while a
//! key frame is spread over a few.
//!
//! A leaky bucket: sending costs a packet's bytes, the budget refills at
//! the pace rate up to [`BURST`] worth, and a packet leaves whenever the
//! budget is not negative (so a packet larger than the budget still
//! goes, and the next waits longer). When the queue would not be sent by
//! the time its oldest packet has waited [`MAX_QUEUE_TIME`], the rate
//! rises to send it by then, so that video never falls seconds behind
//! (as libwebrtc's pacer does).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Pace rate over the encoder's bitrate (libwebrtc's default is 2.5).
pub const PACE_FACTOR: f64 = 2.5;
/// Budget that may build up while idle: what may leave back to back.
pub const BURST: Duration = Duration::from_millis(5);
/// Longest the queue may take to drain.
pub const MAX_QUEUE_TIME: Duration = Duration::from_secs(2);

/// A queue of datagrams released at a bitrate. Each carries a tag of its
/// own (its payload bytes, say) that comes out with it.
#[derive(Debug)]
pub struct VideoPacer<T = usize> {
    /// Bytes per second.
    rate: f64,
    /// Bytes that may be sent now (negative: owed).
    budget: f64,
    last: Option<Instant>,
    /// Datagrams, their tags and when they were queued (the front's time is
    /// the oldest, but for a retransmission pushed ahead).
    queue: VecDeque<(Vec<u8>, T, Instant)>,
    queued_bytes: usize,
    max_queue: usize,
    dropped: u64,
}

impl<T> VideoPacer<T> {
    /// A pacer for an encoder at `bitrate` bit/s, holding at most
    /// `max_queue` datagrams.
    pub fn new(bitrate: u32, max_queue: usize) -> Self {
        let mut p = Self {
            rate: 0.0,
            budget: 0.0,
            last: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_queue,
            dropped: 0,
        };
        p.set_bitrate(bitrate);
        p
    }

    /// Follows the encoder's bitrate.
    pub fn set_bitrate(&mut self, bitrate: u32) {
        self.rate = f64::from(bitrate.max(1)) / 8.0 * PACE_FACTOR;
    }

    /// Queues a datagram with its tag at `now`; a full queue drops it
    /// (counted).
    pub fn push(&mut self, now: Instant, datagram: Vec<u8>, tag: T) {
        if self.admit(&datagram) {
            self.queue.push_back((datagram, tag, now));
        }
    }

    /// Queues a datagram ahead of all others (a retransmission the peer
    /// is waiting for); a full queue drops it (counted). It is queued at
    /// `now`: it does not take the age of the datagram it goes ahead of,
    /// which would let a stream of them keep the queue "old" and its drain
    /// rate rising (the caller bounds their rate instead).
    pub fn push_first(&mut self, now: Instant, datagram: Vec<u8>, tag: T) {
        if self.admit(&datagram) {
            self.queue.push_front((datagram, tag, now));
        }
    }

    /// Whether `datagram` fits in the queue (counted in its bytes), or is
    /// dropped (counted).
    fn admit(&mut self, datagram: &[u8]) -> bool {
        if self.queue.len() < self.max_queue {
            self.queued_bytes += datagram.len();
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// The next datagram due at `now` and its tag, if any.
    pub fn poll(&mut self, now: Instant) -> Option<(Vec<u8>, T)> {
        self.refill(now);
        if self.budget < 0.0 {
            return None;
        }
        let (d, tag, _) = self.queue.pop_front()?;
        self.queued_bytes -= d.len();
        self.budget -= d.len() as f64;
        Some((d, tag))
    }

    /// When the next queued datagram may leave (`None` when none is queued).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        let last = self.last?;
        // Rounded up: a wait that rounds to nothing would wake the caller
        // at the same instant, over and over, with the budget still short.
        let wait_ns = ((-self.budget).max(0.0) / self.drain_rate(last) * 1e9).ceil();
        Some(last + Duration::from_nanos(wait_ns as u64))
    }

    /// Datagrams dropped for a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Datagrams waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The pace rate, or more when the queue would not be sent at it by
    /// the time its oldest datagram has waited [`MAX_QUEUE_TIME`].
    fn drain_rate(&self, now: Instant) -> f64 {
        let Some((_, _, oldest)) = self.queue.front() else {
            return self.rate;
        };
        let left = MAX_QUEUE_TIME
            .saturating_sub(now.saturating_duration_since(*oldest))
            .max(Duration::from_millis(10));
        self.rate.max(self.queued_bytes as f64 / left.as_secs_f64())
    }

    fn refill(&mut self, now: Instant) {
        let cap = self.rate * BURST.as_secs_f64();
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.budget = (self.budget + dt * self.drain_rate(last)).min(cap);
        } else {
            self.budget = cap;
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When each of `n` datagrams of `size` bytes, queued at once at
    /// `t0`, leaves when polled at its poll_timeout.
    fn departures(p: &mut VideoPacer, t0: Instant, n: usize, size: usize) -> Vec<Duration> {
        for i in 0..n {
            p.push(t0, vec![0; size], i);
        }
        let mut now = t0;
        let mut out = Vec::new();
        while p.queued() > 0 {
            while let Some((_, i)) = p.poll(now) {
                assert_eq!(i, out.len(), "in order, with their tags");
                out.push(now - t0);
            }
            now = p.poll_timeout().map_or(now, |t| t.max(now));
        }
        out
    }

    #[test]
    fn a_key_frame_leaves_at_the_pace_rate_after_a_short_burst() {
        // 400 kbit/s: paced at 1 Mbit/s, 125 000 bytes/s; 5 ms of it is 625 bytes.
        let mut p = VideoPacer::new(400_000, 1024);
        let t0 = Instant::now();
        let d = departures(&mut p, t0, 40, 1_000);
        assert_eq!(d.len(), 40);
        assert_eq!(d[0], Duration::ZERO, "the first goes at once");
        assert!(d[1] > Duration::ZERO, "the second waits: over the burst");
        // 40 000 bytes at 125 000 bytes/s: the last leaves after about
        // 39 000 / 125 000 s (the first 1 000 went on the burst budget).
        let last = d[39].as_secs_f64();
        assert!((0.30..=0.32).contains(&last), "{last}");
    }

    #[test]
    fn small_frames_go_at_once_and_a_full_queue_drops() {
        let mut p = VideoPacer::new(1_000_000, 4);
        let t0 = Instant::now();
        let d = departures(&mut p, t0, 1, 300);
        assert_eq!(d, [Duration::ZERO]);
        for _ in 0..6 {
            p.push(t0, vec![0; 100], 0);
        }
        assert_eq!((p.queued(), p.dropped()), (4, 2));
    }

    #[test]
    fn a_retransmission_goes_ahead_of_the_queue() {
        let mut p = VideoPacer::new(100_000, 3);
        let t0 = Instant::now();
        for i in 0..2 {
            p.push(t0, vec![0; 1_000], i);
        }
        p.push_first(t0 + Duration::from_millis(5), vec![1; 1_000], 9);
        p.push_first(t0, vec![2; 10], 10);
        assert_eq!((p.queued(), p.dropped()), (3, 1));
        let mut order = vec![];
        let mut now = t0;
        while p.queued() > 0 {
            while let Some((_, i)) = p.poll(now) {
                order.push(i);
            }
            now = p.poll_timeout().map_or(now, |t| t.max(now));
        }
        assert_eq!(order, [9, 0, 1]);
    }

    #[test]
    fn a_long_queue_drains_within_the_time_limit() {
        // 5 s worth at the pace rate (100 kbit/s: 31 250 bytes/s) queued
        // at once is all sent by MAX_QUEUE_TIME, not in 5 s.
        let mut p = VideoPacer::new(100_000, 1024);
        let t0 = Instant::now();
        let d = departures(&mut p, t0, 156, 1_000);
        let last = d.last().unwrap().as_secs_f64();
        assert!(last <= MAX_QUEUE_TIME.as_secs_f64() + 0.05, "{last}");
        assert!(last >= 1.0, "{last}: still paced");
    }
}
