//! Retransmission schedules of RFC 6189 §6.

use std::time::{Duration, Instant};

/// One retransmission schedule: start, doubling, cap and retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// First interval.
    pub initial: Duration,
    /// Largest interval.
    pub cap: Duration,
    /// Retransmissions before giving up.
    pub retries: u32,
}

/// Hello: 50 ms doubling to 200 ms, 20 retransmissions (§6, T1).
pub const HELLO: Schedule = Schedule {
    initial: Duration::from_millis(50),
    cap: Duration::from_millis(200),
    retries: 20,
};
/// Commit, DHPart2, Confirm2, Error…: 150 ms doubling to 1200 ms, 10
/// retransmissions (§6, T2).
pub const MESSAGE: Schedule = Schedule {
    initial: Duration::from_millis(150),
    cap: Duration::from_millis(1200),
    retries: 10,
};

/// A message being retransmitted until acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    pub(crate) message: Vec<u8>,
    pub(crate) at: Instant,
    interval: Duration,
    left: u32,
    schedule: Schedule,
}

/// What a due timer asks for.
pub(crate) enum Due {
    /// Send the message again.
    Resend,
    /// The budget is spent.
    Exhausted,
}

impl Retransmit {
    pub(crate) fn new(now: Instant, message: Vec<u8>, schedule: Schedule) -> Self {
        Retransmit {
            message,
            at: now + schedule.initial,
            interval: schedule.initial,
            left: schedule.retries,
            schedule,
        }
    }

    /// Called at or after `at`.
    pub(crate) fn fire(&mut self, now: Instant) -> Due {
        if self.left == 0 {
            return Due::Exhausted;
        }
        self.left -= 1;
        self.interval = (self.interval * 2).min(self.schedule.cap);
        self.at = now + self.interval;
        Due::Resend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intervals(s: Schedule) -> Vec<u64> {
        let t0 = Instant::now();
        let mut r = Retransmit::new(t0, vec![], s);
        let mut out = vec![];
        let mut last = t0;
        loop {
            out.push(r.at.duration_since(last).as_millis() as u64);
            last = r.at;
            let at = r.at;
            if let Due::Exhausted = r.fire(at) {
                break;
            }
        }
        out
    }

    #[test]
    fn hello_schedule_is_50ms_doubling_to_200ms_20_retries() {
        let iv = intervals(HELLO);
        // 20 waits before a retransmission, then one last wait before giving up.
        assert_eq!(iv.len(), 21);
        assert_eq!(&iv[..4], &[50, 100, 200, 200]);
        assert!(iv.iter().all(|i| *i <= 200));
    }

    #[test]
    fn message_schedule_is_150ms_doubling_to_1200ms_10_retries() {
        let iv = intervals(MESSAGE);
        assert_eq!(iv.len(), 11);
        assert_eq!(&iv[..5], &[150, 300, 600, 1200, 1200]);
    }
}
