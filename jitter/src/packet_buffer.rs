//! The packet store: buffered packets ordered by (unwrapped) timestamp,
//! bounded by a packet count.

use std::collections::BTreeMap;

/// One buffered packet.
#[derive(Debug, Clone)]
pub struct Stored {
    /// RTP sequence number.
    pub seq: u16,
    /// Codec payload.
    pub payload: Vec<u8>,
    /// Samples of audio it holds.
    pub samples: usize,
    /// Arrival time (ms on the buffer's clock).
    pub arrival_ms: f64,
    /// Its relative delay from the estimator, ms.
    pub relative_ms: f64,
    /// It carries FEC data for the packet before it.
    pub has_fec: bool,
    /// That FEC data was used to rebuild a lost packet.
    pub fec_used: bool,
}

impl Stored {
    /// The buffering that protects this packet if its first sample plays
    /// at `now_ms`: its wait since it came plus its relative delay.
    pub fn buffering_ms(&self, now_ms: f64) -> f64 {
        now_ms - self.arrival_ms + self.relative_ms
    }
}

/// Packets keyed by unwrapped RTP timestamp.
#[derive(Debug, Default)]
pub struct PacketBuffer {
    packets: BTreeMap<i64, Stored>,
}

impl PacketBuffer {
    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Whether a packet with this timestamp is held.
    pub fn contains(&self, ts: i64) -> bool {
        self.packets.contains_key(&ts)
    }

    /// Adds a packet (the caller checked for duplicates and capacity).
    pub fn insert(&mut self, ts: i64, packet: Stored) {
        self.packets.insert(ts, packet);
    }

    /// The earliest packet.
    pub fn first(&self) -> Option<(i64, &Stored)> {
        self.packets.first_key_value().map(|(&t, p)| (t, p))
    }

    /// The earliest packet, mutably.
    pub fn first_mut(&mut self) -> Option<(i64, &mut Stored)> {
        self.packets.iter_mut().next().map(|(&t, p)| (t, p))
    }

    /// The packets in timestamp order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Stored)> {
        self.packets.iter().map(|(&t, p)| (t, p))
    }

    /// Removes the earliest packet.
    pub fn pop_first(&mut self) -> Option<(i64, Stored)> {
        self.packets.pop_first()
    }

    /// Total audio held, in samples.
    pub fn samples(&self) -> usize {
        self.packets.values().map(|p| p.samples).sum()
    }

    /// Drops every packet.
    pub fn clear(&mut self) -> Vec<(i64, Stored)> {
        std::mem::take(&mut self.packets).into_iter().collect()
    }
}
