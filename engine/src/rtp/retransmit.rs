//! The sending end of RFC 4585 generic NACK: the last packets sent, kept
//! as the SRTP datagrams they went out as, to be sent again when the peer
//! asks for them.
//!
//! A retransmission is the original datagram, byte for byte, on the
//! original SSRC and sequence number: no second encryption under the same
//! packet index (which would reuse keystream were the plaintext to differ)
//! and nothing for the receiver to learn (RFC 4588's RTX would need a
//! payload type, an SSRC and SRTP state of its own). The receiver's SRTP
//! replay window takes it as long as it is within the window, which is
//! why calls with video open a large one (see `call::media`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Least packets kept (libwebrtc's least send-side history): over a second
/// of video at the default highest bitrate.
pub const MIN_HISTORY: usize = 600;
/// Most packets kept: a second at 36 Mbit/s in 1 100-byte packets.
pub const MAX_HISTORY: usize = 4096;

/// Packets to keep for a second of video at `bitrate` bit/s in packets of
/// `payload` bytes, within [`MIN_HISTORY`] and [`MAX_HISTORY`].
pub fn history_for(bitrate: u32, payload: usize) -> usize {
    (bitrate as usize / 8 / payload.max(1)).clamp(MIN_HISTORY, MAX_HISTORY)
}
/// A retransmission handed out and not reported sent
/// ([`RetransmitHistory::on_sent`]) is not handed out again for this long:
/// it waits in a pacer, whose queue drains within 2 s
/// (`video::pace::MAX_QUEUE_TIME`); after that it was dropped there.
pub const PENDING_FOR: Duration = Duration::from_secs(2);

/// One packet to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retransmission {
    /// Its sequence number (report it with [`RetransmitHistory::on_sent`]).
    pub seq: u16,
    /// The SRTP datagram, as first sent.
    pub datagram: Vec<u8>,
    /// Its RTP payload's length (for the statistics).
    pub payload: usize,
}

#[derive(Debug, Clone)]
struct Sent {
    seq: u16,
    datagram: Vec<u8>,
    payload: usize,
    /// Handed out to be sent again, and not sent yet.
    pending_since: Option<Instant>,
    /// Last sent again.
    resent: Option<Instant>,
}

/// The last datagrams of one stream, by sequence number.
#[derive(Debug, Clone)]
pub struct RetransmitHistory {
    /// In sending order: consecutive sequence numbers.
    sent: VecDeque<Sent>,
    capacity: usize,
    resent: u64,
    refused: u64,
}

impl RetransmitHistory {
    /// An empty history keeping the last `capacity` packets (at most
    /// [`MAX_HISTORY`]).
    pub fn new(capacity: usize) -> Self {
        Self {
            sent: VecDeque::new(),
            capacity: capacity.clamp(1, MAX_HISTORY),
            resent: 0,
            refused: 0,
        }
    }

    /// Keeps the datagram of packet `seq`, just sent with `payload` bytes of
    /// RTP payload; the oldest goes when full. Numbering that does not
    /// follow on starts the history over.
    pub fn store(&mut self, seq: u16, datagram: Vec<u8>, payload: usize) {
        if self
            .sent
            .back()
            .is_some_and(|last| last.seq.wrapping_add(1) != seq)
        {
            self.sent.clear();
        }
        if self.sent.len() >= self.capacity {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            seq,
            datagram,
            payload,
            pending_since: None,
            resent: None,
        });
    }

    /// Packet `seq` to send again at `now`, unless it is no longer kept,
    /// is still waiting to be sent again, or was sent again less than
    /// `min_interval` ago (the peer asked twice before the first copy could
    /// reach it).
    pub fn resend(
        &mut self,
        now: Instant,
        seq: u16,
        min_interval: Duration,
    ) -> Option<Retransmission> {
        let Some(p) = find(&mut self.sent, seq) else {
            self.refused += 1;
            return None;
        };
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        if since(p.pending_since).is_some_and(|d| d < PENDING_FOR)
            || since(p.resent).is_some_and(|d| d < min_interval)
        {
            self.refused += 1;
            return None;
        }
        p.pending_since = Some(now);
        self.resent += 1;
        Some(Retransmission {
            seq,
            datagram: p.datagram.clone(),
            payload: p.payload,
        })
    }

    /// Whether packet `seq` is not kept or its datagram is at most
    /// `bytes` long: whether [`resend`](Self::resend) can stay within them.
    pub fn fits(&mut self, seq: u16, bytes: usize) -> bool {
        find(&mut self.sent, seq).is_none_or(|p| p.datagram.len() <= bytes)
    }

    /// Packet `seq`, handed out by [`resend`](Self::resend), left at `now`.
    pub fn on_sent(&mut self, now: Instant, seq: u16) {
        if let Some(p) = find(&mut self.sent, seq) {
            p.pending_since = None;
            p.resent = Some(now);
        }
    }

    /// Packets sent again so far.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Requests not served: the packet was too old, or just sent again.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// Packet `seq` in `sent` (consecutive sequence numbers).
fn find(sent: &mut VecDeque<Sent>, seq: u16) -> Option<&mut Sent> {
    let first = sent.front()?.seq;
    sent.get_mut(usize::from(seq.wrapping_sub(first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// What `resend` hands out, as (datagram, payload).
    fn resend(
        h: &mut RetransmitHistory,
        now: Instant,
        seq: u16,
        min: Duration,
    ) -> Option<(Vec<u8>, usize)> {
        h.resend(now, seq, min).map(|r| {
            assert_eq!(r.seq, seq);
            (r.datagram, r.payload)
        })
    }

    #[test]
    fn kept_packets_come_back_once_per_interval() {
        let t0 = Instant::now();
        let mut h = RetransmitHistory::new(MIN_HISTORY);
        for i in 0..700u32 {
            let seq = 65_000u16.wrapping_add(i as u16);
            h.store(seq, seq.to_be_bytes().to_vec(), 2);
        }
        // The first 100 are gone; the rest are there across the wrap.
        assert_eq!(resend(&mut h, t0, 65_099, MS), None);
        let newest = 65_000u16.wrapping_add(699);
        assert_eq!(
            resend(&mut h, t0, 65_100, MS),
            Some((65_100u16.to_be_bytes().to_vec(), 2))
        );
        assert_eq!(
            resend(&mut h, t0, newest, MS),
            Some((newest.to_be_bytes().to_vec(), 2))
        );
        assert_eq!(
            resend(&mut h, t0, newest.wrapping_add(1), MS),
            None,
            "not sent yet"
        );
        // Asked again while it waits to leave: it is on its way.
        assert_eq!(resend(&mut h, t0 + 100 * MS, 65_100, MS), None, "pending");
        h.on_sent(t0 + 100 * MS, 65_100);
        assert_eq!(
            resend(&mut h, t0 + 130 * MS, 65_100, 50 * MS),
            None,
            "just resent"
        );
        assert!(resend(&mut h, t0 + 150 * MS, 65_100, 50 * MS).is_some());
        // One the pacer never reported sent is handed out again in the end.
        assert!(resend(&mut h, t0 + 150 * MS + PENDING_FOR, 65_100, MS).is_some());
        assert_eq!((h.resent(), h.refused()), (4, 4));
    }

    #[test]
    fn a_jump_in_numbering_starts_over() {
        assert_eq!(history_for(1_200_000, 1_100), MIN_HISTORY);
        assert_eq!(history_for(20_000_000, 1_100), 2_272);
        assert_eq!(history_for(20_000_000, 100), MAX_HISTORY);
        let mut h = RetransmitHistory::new(2);
        h.store(1, vec![1], 1);
        h.store(2, vec![2], 1);
        h.store(9, vec![9], 1);
        let t0 = Instant::now();
        assert_eq!(resend(&mut h, t0, 2, MS), None);
        assert_eq!(resend(&mut h, t0, 9, MS), Some((vec![9], 1)));
    }
}
