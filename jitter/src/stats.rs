//! Lifetime statistics with the names of the W3C `RTCInboundRtpStreamStats`
//! dictionary (webrtc-stats, "jitterBufferDelay" and neighbours).

/// Counters since the buffer was created. Delays are in seconds, summed
/// over emitted samples as the W3C definitions say; divide by
/// `jitter_buffer_emitted_count` for the average.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// `jitterBufferDelay`: for each emitted sample, the time from its
    /// packet's arrival until it is played, summed (s).
    pub jitter_buffer_delay: f64,
    /// `jitterBufferTargetDelay`: the target delay at emission, summed (s).
    pub jitter_buffer_target_delay: f64,
    /// `jitterBufferEmittedCount`: samples emitted from decoded packets.
    pub jitter_buffer_emitted_count: u64,
    /// `jitterBufferMinimumDelay`: the delay the network alone would need
    /// (the estimator's quantile, without peak hold), summed (s).
    pub jitter_buffer_minimum_delay: f64,
    /// `concealedSamples`: samples produced by concealment (PLC).
    pub concealed_samples: u64,
    /// `silentConcealedSamples`: concealed samples that are near silence.
    pub silent_concealed_samples: u64,
    /// `concealmentEvents`: runs of concealment that started after
    /// non-concealed audio.
    pub concealment_events: u64,
    /// `insertedSamplesForDeceleration`: samples added by preemptive expand.
    pub inserted_samples_for_deceleration: u64,
    /// `removedSamplesForAcceleration`: samples removed by accelerate.
    pub removed_samples_for_acceleration: u64,
    /// `packetsDiscarded`: packets dropped (late, duplicate, overflow,
    /// flushed, undecodable).
    pub packets_discarded: u64,
    /// `fecPacketsReceived`: packets received carrying in-band FEC.
    pub fec_packets_received: u64,
    /// `fecPacketsDiscarded`: FEC data not needed because the primary
    /// packet itself was played.
    pub fec_packets_discarded: u64,
    /// Not W3C: lost packets actually rebuilt from FEC.
    pub fec_packets_used: u64,
    /// Not W3C: concealed samples played while waiting for a late packet
    /// (not in place of a lost one): each adds to the playout delay. A
    /// wait that ends in the place of lost packets (no reordering seen)
    /// is their concealment, not counted here.
    pub waiting_concealed_samples: u64,
    /// Not W3C: samples of comfort noise played during DTX.
    pub comfort_noise_samples: u64,
    /// Not W3C: all samples pulled (10 ms per pull).
    pub total_samples_pulled: u64,
}

impl JitterStats {
    /// The counters under their W3C names (extra non-W3C counters last).
    pub fn w3c(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("jitterBufferDelay", self.jitter_buffer_delay),
            ("jitterBufferTargetDelay", self.jitter_buffer_target_delay),
            (
                "jitterBufferEmittedCount",
                self.jitter_buffer_emitted_count as f64,
            ),
            ("jitterBufferMinimumDelay", self.jitter_buffer_minimum_delay),
            ("concealedSamples", self.concealed_samples as f64),
            (
                "silentConcealedSamples",
                self.silent_concealed_samples as f64,
            ),
            ("concealmentEvents", self.concealment_events as f64),
            (
                "insertedSamplesForDeceleration",
                self.inserted_samples_for_deceleration as f64,
            ),
            (
                "removedSamplesForAcceleration",
                self.removed_samples_for_acceleration as f64,
            ),
            ("packetsDiscarded", self.packets_discarded as f64),
            ("fecPacketsReceived", self.fec_packets_received as f64),
            ("fecPacketsDiscarded", self.fec_packets_discarded as f64),
        ]
    }

    /// Mean `jitterBufferDelay` per emitted sample, in ms.
    pub fn mean_delay_ms(&self) -> f64 {
        if self.jitter_buffer_emitted_count == 0 {
            return 0.0;
        }
        self.jitter_buffer_delay * 1000.0 / self.jitter_buffer_emitted_count as f64
    }
}
